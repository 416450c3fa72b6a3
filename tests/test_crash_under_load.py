"""Crash safety under load: kill -9 the browser app mid-interview, restart it, every acknowledged turn is there
and every interrupted interview resumes (through History → Resume, as a person would) and finishes.

A small, untimed version of `python -m evals.bench.load --kill`: 3 candidates on the three-question fixture
bank, the real `mockml ui` in a subprocess, the real gradio_client, SQLite in WAL mode. Plus the one crash
window a random kill rarely hits, reproduced exactly: between "let's move on" and the next question.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.config import Settings
from evals.bench.load import run_load

FIXTURE_BANK = Path(__file__).parent / "fixtures" / "bank"


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_kill_9_mid_interview_loses_no_acknowledged_turn_and_every_session_resumes(tmp_path: Path) -> None:
    result = run_load(candidates=3, seconds=16, data_dir=tmp_path / "data", kill_at=6, questions=2,
                      knowledge_dir=FIXTURE_BANK)
    summary = result.summary()
    kill, check = summary["kill"], summary["store_check"]

    assert summary["errors"] == 0, summary["error_examples"]
    assert kill["acknowledged_before_kill"] > 0  # the kill really came mid-run, after turns were committed
    assert kill["acknowledged_before_kill_missing"] == 0 and check["acknowledged_missing"] == 0, check["examples"]
    assert check["durability_ok"], check["examples"]  # also: no gaps in any transcript, every answer scored
    assert check["isolation_ok"], check["examples"]
    # Candidates never pause, so the kill finds them mid-interview: sessions were resumed, and all finished.
    assert kill["sessions_resumed"] >= 1
    assert kill["resumed_sessions_finished"] == kill["sessions_resumed"]
    assert summary["interviews_completed"] >= 3


def test_a_crash_between_moving_on_and_asking_resumes_at_the_next_question(tiny_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The transition turn ("let's move on") is committed, the next question is not yet."""
    from app.interview import Interviewer
    from app.sessions import Phase, TurnKind

    interviewer, session_id = _crash_then_resume(tiny_settings, monkeypatch, Interviewer, "_ask_current", ["/skip"])
    resumed = interviewer.resume(session_id)
    session = interviewer.store.load_session(session_id)
    asked = [t for t in resumed.turns if t.kind is TurnKind.QUESTION]
    assert asked and asked[-1].question_id == session.plan[1]  # the next question, not a repeat of "let's move on"
    assert session.phase is Phase.ANSWER and session.current == 1
    assert [t.index for t in session.turns] == list(range(len(session.turns)))


def _crash_then_resume(settings: Settings, monkeypatch: pytest.MonkeyPatch, owner: Any, attr: str,
                       script: list[str]) -> tuple[Any, str]:
    """Start a 2-question interview (or die starting, with no script), send `script`, die in `owner.attr` during the
    last input, and return a fresh interviewer (a restarted process: only the database is shared) and the session."""
    from app.grading import Grader
    from app.interview import Interviewer
    from app.runtime import get_bank
    from app.sessions import SessionConfig
    from app.store import Store

    bank = get_bank(settings)

    def fresh() -> Interviewer:
        return Interviewer(bank, Grader(settings, bank), Store.from_settings(settings))

    def killed(*_args: Any, **_kwargs: Any) -> Any:
        raise SystemExit("kill -9")

    crashing = fresh()
    if not script:
        monkeypatch.setattr(owner, attr, killed)
        with pytest.raises(SystemExit):
            crashing.start("crash-window", SessionConfig(questions=2))
        monkeypatch.undo()
        return fresh(), crashing.store.latest_unfinished("crash-window")
    session_id = crashing.start("crash-window", SessionConfig(questions=2)).session_id
    for text in script[:-1]:
        crashing.respond(session_id, text)
    monkeypatch.setattr(owner, attr, killed)
    with pytest.raises(SystemExit):
        crashing.respond(session_id, script[-1])
    monkeypatch.undo()
    return fresh(), session_id


def test_a_crash_while_starting_resumes_by_asking_the_first_question(tiny_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.sessions import Phase, TurnKind

    from app.interview import Interviewer

    interviewer, session_id = _crash_then_resume(tiny_settings, monkeypatch, Interviewer, "_ask_current", [])
    resumed = interviewer.resume(session_id)
    plan = interviewer.store.load_session(session_id).plan
    assert [t.question_id for t in resumed.turns if t.kind is TurnKind.QUESTION] == [plan[0]]
    assert resumed.phase is Phase.ANSWER


def test_a_crash_while_writing_the_report_resumes_by_finishing_it(tiny_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.sessions import Phase, TurnKind

    import app.report

    interviewer, session_id = _crash_then_resume(tiny_settings, monkeypatch, app.report, "write_report", ["/end"])
    before = interviewer.store.load_session(session_id)
    assert before.phase in (Phase.WRAP_UP, Phase.REPORT) and before.report_path is None
    resumed = interviewer.resume(session_id)
    session = interviewer.store.load_session(session_id)
    assert resumed.phase is Phase.DONE and session.phase is Phase.DONE and Path(session.report_path or "").is_file()
    assert [t.kind for t in session.turns].count(TurnKind.WRAP_UP) == 2  # the closing words once, then the score
