"""The interviewer end to end: scripted interviews (offline and with a scripted fake LLM), commands, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from app.bank import Level, Track
from app.config import Settings
from app.grading import Grader
from app.grading.judge import LLMJudge
from app.interview import MAX_FOLLOW_UPS, Interviewer, plan_questions
from app.runtime import get_bank
from app.sessions import Mode, Phase, SessionConfig, Speaker, TurnKind
from app.store import Store

from .fakes import FakeLLM

pytestmark = pytest.mark.slow  # the offline grader loads MiniLM

ANSWERS = {
    "bias-variance-tradeoff": (
        "Bias is the error from a model that is too simple, so it underfits. Variance is the error from being too "
        "sensitive to the training set, so it overfits and memorises noise."
    ),
    "precision-recall-f1": "Precision is true positives over predicted positives. Recall is true positives over actual positives.",
    "staying-current-with-ml": "I read arXiv papers every week and reproduce the promising ones before using them.",
}
FOLLOW_UP_ANSWER = "I would pick the complexity that minimises validation error and add regularization or more data."


def make(settings: Settings, llm: Any = None) -> Interviewer:
    bank = get_bank(settings)
    return Interviewer(bank, Grader(settings, bank), Store.from_settings(settings), llm=llm)


def run_script(interviewer: Interviewer, reply: Any, answer_for: Any) -> Any:
    """Answer whatever is asked until the interview is done; returns the last reply."""
    for _ in range(60):
        if reply.phase is Phase.DONE:
            return reply
        reply = interviewer.respond(reply.session_id, answer_for(reply))
    raise AssertionError("the interview did not finish")


def scripted(reply: Any) -> str:
    asked = [t for t in reply.turns if t.speaker is Speaker.INTERVIEWER][-1]
    if reply.phase is Phase.CANDIDATE_QUESTIONS:
        return "no questions"
    if asked.kind is TurnKind.FOLLOW_UP:
        return FOLLOW_UP_ANSWER
    return ANSWERS[asked.question_id]


def test_full_offline_interview(tiny_settings: Settings) -> None:
    interviewer = make(tiny_settings)
    reply = interviewer.start("alice", SessionConfig(level=Level.JUNIOR, questions=3))
    assert reply.turns[0].kind is TurnKind.GREETING and reply.turns[1].kind is TurnKind.QUESTION
    assert "go through 3 questions" in reply.turns[0].text
    assert reply.progress == "question 1 of 3"
    last = run_script(interviewer, reply, scripted)
    assert last.report_path and Path(last.report_path).is_file()
    session = interviewer.store.load_session(last.session_id)
    assert session.phase is Phase.DONE and session.finished_at is not None
    answers = [t for t in session.turns if t.kind is TurnKind.ANSWER]
    assert {t.question_id for t in answers} == set(ANSWERS)
    assert all(t.scorecard is not None for t in answers)
    follow_ups = [t for t in session.turns if t.kind is TurnKind.FOLLOW_UP]
    for qid in ANSWERS:
        assert sum(1 for t in follow_ups if t.question_id == qid) <= MAX_FOLLOW_UPS
    # a follow-up never probes a point the answers already covered
    for t in follow_ups:
        before = [a.scorecard for a in session.turns[: t.index] if a.kind is TurnKind.ANSWER and a.question_id == t.question_id]
        covered = {v.point_id for c in before for v in c.verdicts if v.verdict.value == "covered"}
        assert t.target_point not in covered
    # interview mode withholds feedback
    assert not any(t.kind is TurnKind.FEEDBACK for t in session.turns)
    assert [t.index for t in session.turns] == list(range(len(session.turns)))


def test_coach_mode_gives_feedback_and_a_model_answer(tiny_settings: Settings) -> None:
    interviewer = make(tiny_settings)
    reply = interviewer.start("bob", SessionConfig(level=Level.JUNIOR, questions=1, mode=Mode.COACH))
    assert "go through 1 question on" in reply.turns[0].text  # not "1 questions"
    qid = reply.turns[-1].question_id
    reply = interviewer.respond(reply.session_id, ANSWERS[qid])
    feedback = [t for t in reply.turns if t.kind is TurnKind.FEEDBACK]
    assert feedback and "Score" in feedback[0].text and "model answer" in feedback[0].text
    assert reply.scorecard is not None


def test_a_spoken_answer_is_graded_as_a_transcript_and_a_typed_one_is_not(tiny_settings: Settings) -> None:
    """The microphone path says so to the grader (adjacent sentences read together), and the scorecard says so too."""
    interviewer = make(tiny_settings)
    notes = []
    for spoken in (False, True):
        reply = interviewer.start("dan", SessionConfig(level=Level.JUNIOR, questions=1, mode=Mode.COACH))
        reply = interviewer.respond(reply.session_id, ANSWERS[reply.turns[-1].question_id], spoken=spoken)
        assert reply.scorecard is not None
        notes.append(" ".join(reply.scorecard.notes))
    assert "speech transcript" not in notes[0] and "speech transcript" in notes[1]


def test_commands_skip_repeat_hint_end(tiny_settings: Settings) -> None:
    interviewer = make(tiny_settings)
    reply = interviewer.start("carol", SessionConfig(level=Level.JUNIOR, questions=3))
    first = reply.turns[-1]
    repeated = interviewer.respond(reply.session_id, "/repeat")
    assert repeated.turns[-1].text == first.text
    hint = interviewer.respond(reply.session_id, "/hint").turns[-1]
    assert hint.kind is TurnKind.HINT and hint.text
    second_hint = interviewer.respond(reply.session_id, "/hint").turns[-1]
    assert second_hint.text != hint.text
    skipped = interviewer.respond(reply.session_id, "/skip")
    assert skipped.turns[-1].kind is TurnKind.QUESTION and skipped.turns[-1].question_id != first.question_id
    assert skipped.progress == "question 2 of 3"
    ended = interviewer.respond(reply.session_id, "/end")
    assert ended.phase is Phase.DONE and ended.report_path
    session = interviewer.store.load_session(reply.session_id)
    assert len(session.plan) == 2  # an early end judges only what was asked


def test_empty_answer_is_bad_input_and_changes_nothing(tiny_settings: Settings) -> None:
    from app.errors import BadInput

    interviewer = make(tiny_settings)
    reply = interviewer.start("dan", SessionConfig(level=Level.JUNIOR, questions=1))
    before = len(interviewer.store.load_session(reply.session_id).turns)
    with pytest.raises(BadInput, match="answer is empty"):
        interviewer.respond(reply.session_id, "   ")
    assert len(interviewer.store.load_session(reply.session_id).turns) == before


def test_planning_avoids_questions_answered_before(bank_settings: Settings) -> None:
    bank = get_bank(bank_settings)
    config = SessionConfig(tracks=[Track.ML_FUNDAMENTALS, Track.EVALUATION_STATISTICS], level=Level.MID, questions=6)
    first = plan_questions(bank, config, set(), "s1")
    assert len(first) == 6 and len(set(first)) == 6
    assert {bank.get(q).track for q in first} == {Track.ML_FUNDAMENTALS, Track.EVALUATION_STATISTICS}
    assert len({bank.get(q).topic for q in first}) >= 5  # topics balanced
    second = plan_questions(bank, config, set(first), "s2")
    assert not set(first) & set(second)
    again = plan_questions(bank, config.model_copy(update={"repeat_answered": True}), set(first), "s1")
    assert again == first  # deterministic for a session id


def test_interview_with_a_scripted_fake_llm(tiny_settings: Settings) -> None:
    settings = tiny_settings.model_copy(update={"model": "openai/gpt-4o-mini"})
    bank = get_bank(settings)
    grader = Grader(settings, bank)

    def judge(messages: list[dict[str, str]]) -> dict[str, Any]:
        prompt = messages[-1]["content"]
        ids = [p.id for q in bank.questions for p in q.rubric if f"`{p.id}`" in prompt or f"id: {p.id}" in prompt or p.id in prompt]
        return {"verdicts": [{"point_id": i, "verdict": "missing", "evidence": None} for i in dict.fromkeys(ids)]}

    fake = FakeLLM(model="openai/gpt-4o-mini")
    grader._judges["llm"] = LLMJudge(settings, fake, mode="rubric")
    follow = FakeLLM(model="openai/gpt-4o-mini")
    interviewer = Interviewer(bank, grader, Store.from_settings(settings), llm=follow)
    reply = interviewer.start("erin", SessionConfig(level=Level.JUNIOR, questions=1, engine="llm"))
    qid = reply.turns[-1].question_id
    target = bank.get(qid).rubric[-1].id
    fake.enqueue(judge, judge, judge)
    follow.enqueue({"question": "How would you check that in practice before shipping?", "target_point": target})
    reply = interviewer.respond(reply.session_id, ANSWERS[qid])
    asked = reply.turns[-1]
    assert asked.kind is TurnKind.FOLLOW_UP and asked.text == "How would you check that in practice before shipping?"
    assert asked.target_point == target
    session = interviewer.store.load_session(reply.session_id)
    answer = [t for t in session.turns if t.kind is TurnKind.ANSWER][-1]
    assert answer.scorecard is not None and answer.scorecard.engine == "llm:openai/gpt-4o-mini"
    assert follow.history and "How would you" not in json.dumps(follow.history[0])  # the fake saw the prompt, not its reply


def test_follow_ups_use_the_session_engines_model(tiny_settings: Settings) -> None:
    """As the CLI and the browser app build it (no `llm=`): an `llm` session's follow-ups come from its model."""
    settings = tiny_settings.model_copy(update={"model": "openai/gpt-4o-mini"})
    bank = get_bank(settings)
    grader = Grader(settings, bank)
    model = FakeLLM(model="openai/gpt-4o-mini")
    grader._judges["llm"] = LLMJudge(settings, model, mode="rubric")
    interviewer = Interviewer(bank, grader, Store.from_settings(settings))
    assert grader.chat_model("offline") is None and grader.chat_model("llm") is model

    reply = interviewer.start("fay", SessionConfig(level=Level.JUNIOR, questions=1, engine="llm"))
    question = bank.get(reply.turns[-1].question_id)
    target = question.rubric[-1].id
    missing = {"verdicts": [{"point_id": p.id, "verdict": "missing", "evidence": None} for p in question.rubric]}
    model.enqueue(missing, {"question": "What would you measure first, and why?", "target_point": target})
    reply = interviewer.respond(reply.session_id, ANSWERS[question.id])
    assert reply.turns[-1].kind is TurnKind.FOLLOW_UP and reply.turns[-1].text == "What would you measure first, and why?"
    assert model.pending == 0

    offline = interviewer.start("fay", SessionConfig(level=Level.JUNIOR, questions=1, engine="offline", repeat_answered=True))
    interviewer.respond(offline.session_id, ANSWERS[offline.turns[-1].question_id])
    assert len(model.history) == 2  # the offline session never called the model


def _cli(settings: Settings, *args: str, **kw: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "MOCKML_DATA_DIR": str(settings.data_dir), "MOCKML_KNOWLEDGE_DIR": str(settings.knowledge_dir),
           "MOCKML_COLLECTION": settings.collection}
    return subprocess.Popen([sys.executable, "-m", "app.cli", "interview", *args], env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)


def test_kill_9_mid_interview_then_resume_loses_nothing(tiny_settings: Settings) -> None:
    proc = _cli(tiny_settings, "-u", "frank", "--level", "junior", "-n", "3")
    assert proc.stdin and proc.stdout
    lines: list[str] = []
    deadline = time.time() + 120
    answered = 0
    while time.time() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if "Interviewer:" in line and ("(question" in line):
            if answered == 2:
                break  # two answers are committed and the interviewer has replied: kill now
            proc.stdin.write("Bias underfits and variance overfits; precision and recall trade off.\n")
            proc.stdin.flush()
            answered += 1
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    store = Store.from_settings(tiny_settings)
    session_id = store.latest_unfinished("frank")
    assert session_id, "".join(lines)
    before = store.load_session(session_id)
    assert sum(1 for t in before.turns if t.kind is TurnKind.ANSWER) == 2
    resumed = subprocess.run(
        [sys.executable, "-m", "app.cli", "interview", "-u", "frank", "--resume", "last"],
        input="I would use cross-validation.\n" * 12 + "no questions\n", capture_output=True, text=True, timeout=300,
        env={**os.environ, "MOCKML_DATA_DIR": str(tiny_settings.data_dir), "MOCKML_KNOWLEDGE_DIR": str(tiny_settings.knowledge_dir),
             "MOCKML_COLLECTION": tiny_settings.collection},
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    after = store.load_session(session_id)
    assert after.phase is Phase.DONE
    assert [t.model_dump() for t in after.turns[: len(before.turns)]] == [t.model_dump() for t in before.turns]
    assert "report:" in resumed.stdout


def test_cli_interview_with_piped_input_writes_a_report(tiny_settings: Settings) -> None:
    proc = _cli(tiny_settings, "-u", "gina", "--level", "junior", "-n", "2", "--mode", "coach")
    out, _ = proc.communicate("Bias underfits; variance overfits.\n/skip\n/skip\n/skip\nno questions\n", timeout=300)
    assert proc.returncode == 0, out
    assert "report:" in out and "Score" in out  # coach feedback shown
    path = out.rsplit("report:", 1)[1].strip()
    assert Path(path).is_file()


def test_cli_interview_bad_options_exit_2(tiny_settings: Settings) -> None:
    for args in (["--level", "guru"], ["--track", "astrology"], ["--mode", "exam"], ["--resume", "last", "-u", "nobody"]):
        proc = _cli(tiny_settings, *args)
        out, _ = proc.communicate("", timeout=120)
        assert proc.returncode == 2, (args, out)
        assert "error:" in out


def test_cli_history_and_export(tiny_settings: Settings) -> None:
    proc = _cli(tiny_settings, "-u", "hana", "--level", "junior", "-n", "1")
    out, _ = proc.communicate("Bias underfits; variance overfits.\n/skip\n/skip\nno questions\n", timeout=300)
    assert proc.returncode == 0, out
    session_id = out.rsplit("session ", 1)[1].split(";")[0].strip()
    env = {**os.environ, "MOCKML_DATA_DIR": str(tiny_settings.data_dir), "MOCKML_KNOWLEDGE_DIR": str(tiny_settings.knowledge_dir)}
    history = subprocess.run([sys.executable, "-m", "app.cli", "history", "-u", "hana", "--json"], capture_output=True,
                             text=True, env=env, timeout=120)
    rows = json.loads(history.stdout)
    assert [r["id"] for r in rows] == [session_id] and rows[0]["phase"] == "done"
    for fmt in ("json", "md"):
        exported = subprocess.run([sys.executable, "-m", "app.cli", "export", session_id, "--format", fmt],
                                  capture_output=True, text=True, env=env, timeout=120)
        path = Path(exported.stdout.strip())
        assert exported.returncode == 0 and path.is_file() and path.parent == tiny_settings.data_dir / "exports"
    bad = subprocess.run([sys.executable, "-m", "app.cli", "export", "../../etc/passwd"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert bad.returncode == 2 and "error:" in bad.stderr
