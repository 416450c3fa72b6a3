"""Model faults end to end: every failure a provider can produce ends in bounded retries with backoff, then the
offline engine's answer with a note the user sees; nothing raises to the user and no turn is lost.

Real HTTP through litellm's `openai/` provider to a loopback fake server (tests/fake_openai_server.py): the
fault is produced where a real provider produces it, not mocked inside litellm.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

import app.llm as llm_module
from app.config import Settings
from app.errors import LLMError
from app.followup import choose_follow_up
from app.grading import FALLBACK_NOTE, Grader
from app.interview import Interviewer
from app.llm import BACKOFF_INITIAL, BACKOFF_JITTER, LLM, RETRY_AFTER_CAP, StreamInterrupted
from app.runtime import get_bank
from app.bank import Level
from app.sessions import Phase, SessionConfig, Speaker, TurnKind
from app.store import Store

from .conftest import FIXTURES
from .fake_openai_server import FAULTS, FakeOpenAIServer, closed_port_url, fault, ok, schema_reply

pytestmark = pytest.mark.slow  # the offline fallback loads MiniLM

KEY = "sk-test-FAULTS-1234567890abcdef"
QID = "bias-variance-tradeoff"
ANSWER = ("Bias is the error from a model that is too simple, so it underfits. Variance is the error from being too "
          "sensitive to the training set, so it overfits and memorises noise.")
TIMEOUT = 0.3  # MOCKML_LLM_TIMEOUT for these tests; the timeout fault answers only after SLOW seconds
SLOW = 2.0
RETRIES = 2
# The LLMError kind each server-side fault is classified as.
EXPECTED_KIND = {
    "timeout": "timeout", "connection": "connection", "rate_limit": "rate_limit", "server": "server", "empty": "empty",
    "invalid_json": "invalid_output", "off_schema": "invalid_output", "stream_cut": "connection",
}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as srv:
        yield srv


@pytest.fixture()
def fresh(server: FakeOpenAIServer) -> FakeOpenAIServer:
    """The shared server with an empty log and queue (it answers valid JSON for any schema by default)."""
    return server.reset(schema_reply)


@pytest.fixture()
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Backoff delays, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(llm_module, "_sleep", recorded.append)
    return recorded


def llm_settings(tmp_path: Path, api_base: str, **extra: Any) -> Settings:
    return Settings(data_dir=tmp_path / "data", knowledge_dir=FIXTURES / "bank", collection=f"t{tmp_path.name[-20:]}",
                    model="openai/fake", api_base=api_base, api_key=SecretStr(KEY), llm_timeout=TIMEOUT,
                    llm_retries=RETRIES, judge_mode="rubric", **extra)


def inject(server: FakeOpenAIServer, kind: str, tmp_path: Path) -> Settings:
    """Settings whose every model request meets this fault (a refused connection needs a port nothing listens on)."""
    if kind == "connection":
        return llm_settings(tmp_path, closed_port_url())
    server.default = fault(kind, delay=SLOW)
    return llm_settings(tmp_path, server.url)


def assert_backoff(delays: list[float], kind: str, calls: int = 1) -> None:
    """`calls` runs of RETRIES growing delays each; a 429's Retry-After (3 s) stretches them."""
    assert len(delays) == RETRIES * calls, delays
    for run in range(calls):
        mine = delays[run * RETRIES : (run + 1) * RETRIES]
        for n, delay in enumerate(mine):
            base = BACKOFF_INITIAL * 2**n
            if kind == "rate_limit":
                assert 3.0 <= delay <= RETRY_AFTER_CAP, mine
            else:
                assert base <= delay <= base * (1 + BACKOFF_JITTER) + 1e-9, mine
        if kind != "rate_limit":
            assert mine == sorted(mine) and mine[-1] > mine[0], mine


@pytest.mark.parametrize("kind", FAULTS)
def test_grader_falls_back_to_offline_with_a_note(kind: str, fresh: FakeOpenAIServer, sleeps: list[float], tmp_path: Path) -> None:
    settings = inject(fresh, kind, tmp_path)
    grader = Grader(settings)
    card = grader.grade(QID, ANSWER)
    expected = EXPECTED_KIND[kind]
    assert card.engine == f"offline (fallback from llm: {expected})"
    notes = [n for n in card.notes if n.startswith(FALLBACK_NOTE)]
    assert len(notes) == 1 and "graded by the offline engine instead" in notes[0]
    assert f"after {RETRIES + 1} attempt(s)" in notes[0] and KEY not in notes[0]
    # The offline engine's own answer, not a degraded one.
    offline = grader.grade(QID, ANSWER, engine="offline")
    assert [v.model_dump() for v in card.verdicts] == [v.model_dump() for v in offline.verdicts]
    assert card.score == offline.score
    # Bounded retries: exactly 1 + RETRIES requests reached the server (none when the port refuses connections).
    assert len(fresh.chat_requests) == (0 if kind == "connection" else RETRIES + 1)
    assert_backoff(sleeps, kind)
    if expected == "invalid_output":
        first, second = (r["json"]["messages"] for r in fresh.chat_requests[:2])
        assert len(second) == len(first) + 2  # the retry shows the model its bad reply and what was wrong with it
    for request in fresh.chat_requests:
        assert request["headers"].get("Authorization") == f"Bearer {KEY}"


def test_grader_recovers_when_a_retry_succeeds(fresh: FakeOpenAIServer, sleeps: list[float], tmp_path: Path) -> None:
    fresh.enqueue(fault("server"), fault("rate_limit", retry_after=1.5))  # then valid verdicts (the default)
    card = Grader(llm_settings(tmp_path, fresh.url)).grade(QID, ANSWER)
    assert card.engine == "llm:openai/fake"
    assert not any(n.startswith(FALLBACK_NOTE) for n in card.notes)
    assert len(fresh.chat_requests) == 3
    assert BACKOFF_INITIAL <= sleeps[0] <= BACKOFF_INITIAL * (1 + BACKOFF_JITTER) and sleeps[1] == 1.5


def test_retry_after_is_capped(fresh: FakeOpenAIServer, sleeps: list[float], tmp_path: Path) -> None:
    fresh.default = fault("rate_limit", retry_after=3600)
    with pytest.raises(LLMError) as info:
        LLM(llm_settings(tmp_path, fresh.url)).complete_text([{"role": "user", "content": "hi"}])
    assert info.value.kind == "rate_limit" and info.value.attempts == RETRIES + 1
    assert sleeps == [RETRY_AFTER_CAP] * RETRIES


@pytest.mark.parametrize("kind", FAULTS)
def test_follow_up_falls_back_to_the_offline_choice_with_a_note(
    kind: str, fresh: FakeOpenAIServer, sleeps: list[float], tmp_path: Path
) -> None:
    settings = inject(fresh, kind, tmp_path)
    bank = get_bank(settings)
    question = bank.get(QID)
    card = Grader(settings, bank).grade(QID, "Bias means underfitting.", engine="offline")
    notes: list[str] = []
    choice = choose_follow_up(question, card, llm=LLM(settings), answer="Bias means underfitting.", notes=notes)
    assert choice == choose_follow_up(question, card, answer="Bias means underfitting.")
    assert choice is not None and choice.source != "llm"
    assert len(notes) == 1 and notes[0].startswith(FALLBACK_NOTE) and "chosen offline" in notes[0]
    assert_backoff(sleeps, kind)


@pytest.mark.parametrize("kind", FAULTS)
def test_interview_survives_every_fault_and_loses_no_turn(
    kind: str, fresh: FakeOpenAIServer, sleeps: list[float], tmp_path: Path
) -> None:
    settings = inject(fresh, kind, tmp_path)
    bank = get_bank(settings)
    store = Store.from_settings(settings)
    interviewer = Interviewer(bank, Grader(settings, bank), store, llm=LLM(settings))
    reply = interviewer.start("faulty", SessionConfig(level=Level.JUNIOR, questions=1, engine="llm"))
    said: list[str] = []
    failed_calls = 0  # each note stands for one model call that failed after its retries
    for n in range(8):
        if reply.phase is Phase.DONE:
            break
        text = "no questions" if reply.phase is Phase.CANDIDATE_QUESTIONS else f"{ANSWER} (answer {n})"
        said.append(text)
        before = len(store.load_session(reply.session_id).turns)
        reply = interviewer.respond(reply.session_id, text)
        assert reply.turns, "the interviewer always says something"
        failed_calls += len(reply.notes)
        if text == "no questions":
            continue
        # The answer turn is committed with the offline scorecard, and the user is told why.
        answer = store.load_session(reply.session_id).turns[before]
        assert answer.kind is TurnKind.ANSWER and answer.text == text
        assert answer.scorecard is not None and answer.scorecard.engine == f"offline (fallback from llm: {EXPECTED_KIND[kind]})"
        assert sum("graded by the offline engine instead" in n for n in reply.notes) == 1, reply.notes
        if reply.turns[-1].kind is TurnKind.FOLLOW_UP:
            assert sum("follow-up question was chosen offline" in n for n in reply.notes) == 1, reply.notes
    assert reply.phase is Phase.DONE and reply.report_path and Path(reply.report_path).is_file()
    session = store.load_session(reply.session_id)
    heard = [t.text for t in session.turns if t.speaker is Speaker.CANDIDATE]
    assert heard == [s for s in said if s != "no questions"]
    assert sum(t.kind is TurnKind.FOLLOW_UP for t in session.turns) >= 1  # the offline engine still probed
    assert_backoff(sleeps, kind, calls=failed_calls)


def test_stream_cut_halfway_keeps_the_partial_text_and_does_not_repeat_it(
    fresh: FakeOpenAIServer, sleeps: list[float], tmp_path: Path
) -> None:
    text = "Why does dropout help a deep network generalise, and when does it hurt?"
    llm = LLM(llm_settings(tmp_path, fresh.url))
    fresh.default = ok(text)
    assert "".join(llm.stream_text([{"role": "user", "content": "ask"}])) == text
    cut = fault("stream_cut")
    cut.content = text
    fresh.default = cut
    fresh.requests.clear()
    got: list[str] = []
    with pytest.raises(StreamInterrupted) as info:
        for piece in llm.stream_text([{"role": "user", "content": "ask"}]):
            got.append(piece)
    assert info.value.partial == "".join(got) and text.startswith(info.value.partial) and 0 < len(got)
    assert len(fresh.chat_requests) == 1 and sleeps == []  # shown text is never re-sent by a silent retry
    # A stream failing before its first piece is retried like any call.
    fresh.requests.clear()
    fresh.default = ok(text)
    fresh.enqueue(fault("server"), fault("empty"))
    assert "".join(llm.stream_text([{"role": "user", "content": "ask"}])) == text
    assert len(fresh.chat_requests) == 3 and len(sleeps) == 2


def test_cli_interview_with_a_model_failing_forever(fresh: FakeOpenAIServer, tmp_path: Path) -> None:
    """`mockml interview` piped, the model answering 500 to everything: it completes, says so, and keeps every turn."""
    fresh.default = fault("server")
    data = tmp_path / "cli-data"
    env = {**os.environ, "MOCKML_DATA_DIR": str(data), "MOCKML_KNOWLEDGE_DIR": str(FIXTURES / "bank"),
           "MOCKML_COLLECTION": f"c{tmp_path.name[-20:]}", "MOCKML_MODEL": "openai/fake", "MOCKML_API_BASE": fresh.url,
           "MOCKML_API_KEY": KEY, "MOCKML_LLM_RETRIES": "1"}
    answers = [f"{ANSWER} (answer {n})" for n in range(3)]
    proc = subprocess.run([sys.executable, "-m", "app.cli", "interview", "-u", "ivan", "--level", "junior", "-n", "1"],
                          input="\n".join(answers) + "\nno questions\n", capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "note: the language model failed (model openai/fake failed with a server error after 2 attempt(s)" in proc.stdout
    assert "graded by the offline engine instead" in proc.stdout and "report:" in proc.stdout
    store = Store.from_settings(Settings(data_dir=data))
    (summary,) = store.list_sessions("ivan")
    session = store.load_session(summary.id)
    assert session.phase is Phase.DONE
    graded = [t for t in session.turns if t.kind is TurnKind.ANSWER]
    assert graded and [t.text for t in graded] == answers[: len(graded)]
    assert all(t.scorecard and t.scorecard.engine == "offline (fallback from llm: server)" for t in graded)
    # 1 + MOCKML_LLM_RETRIES attempts per graded answer and per follow-up the model was asked to phrase.
    schemas = [r["json"]["response_format"]["json_schema"]["name"] for r in fresh.chat_requests]
    follow_ups = [t for t in session.turns if t.kind is TurnKind.FOLLOW_UP]
    assert schemas.count("RubricJudgement") == 2 * len(graded)
    assert follow_ups and schemas.count("FollowUpReply") == 2 * len(follow_ups)
    assert "the follow-up question was chosen offline instead" in proc.stdout
