"""The end-of-interview report: the maths a candidate trusts, the study list, the trend, and safe rendering."""

from __future__ import annotations

import json
import struct
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from app.bank import Bank, load_bank
from app.grading.models import CriterionVerdict, Scorecard, Verdict, weighted_score
from app.report import LEVEL_RULE, SCORING_NOTE, build_report, level_verdict, render_html, render_markdown, safe_name, write_report
from app.sessions import Session, SessionConfig, Speaker, Turn, TurnKind

from .conftest import FIXTURES

BV, PR, SC = "bias-variance-tradeoff", "precision-recall-f1", "staying-current-with-ml"
T0 = datetime(2025, 3, 1, 10, 0, tzinfo=timezone.utc)
CREDIT = {Verdict.COVERED: 1.0, Verdict.PARTIAL: 0.5, Verdict.MISSING: 0.0, Verdict.CONTRADICTED: 0.0}
XSS = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def bank() -> Bank:
    return load_bank(FIXTURES / "bank")


def card(bank: Bank, qid: str, verdicts: dict[str, Verdict | tuple[Verdict, float]], *, score: float | None = None,
         evidence: dict[str, str] | None = None) -> Scorecard:
    """A scorecard for a bank question; unnamed points are covered; score computed from the verdicts unless given."""
    q = bank.get(qid)
    out = []
    for p in q.rubric:
        given = verdicts.get(p.id, Verdict.COVERED)
        verdict, credit = given if isinstance(given, tuple) else (given, CREDIT[given])
        out.append(CriterionVerdict(point_id=p.id, point=p.text, weight=p.weight, verdict=verdict, credit=credit,
                                    evidence=(evidence or {}).get(p.id)))
    return Scorecard(question_id=qid, question=q.text, score=weighted_score(out) if score is None else score, verdicts=out, engine="offline")


class Script:
    """Builds a session turn by turn, the way the interview engine records it."""

    def __init__(self, sid: str = "s1", user: str = "ada", start: datetime = T0, plan: list[str] | None = None) -> None:
        self.session = Session(id=sid, user=user, config=SessionConfig(), plan=plan or [], started_at=start,
                               finished_at=start + timedelta(minutes=30))

    def _add(self, **kw) -> int:  # type: ignore[no-untyped-def]
        index = len(self.session.turns)
        self.session.turns.append(Turn(index=index, **kw))
        return index

    def ask(self, qid: str, bank: Bank) -> int:
        if qid not in self.session.plan:
            self.session.plan.append(qid)
        return self._add(speaker=Speaker.INTERVIEWER, kind=TurnKind.QUESTION, text=bank.get(qid).text, question_id=qid)

    def answer(self, qid: str, text: str, scorecard: Scorecard | None, follow_up_of: int | None = None) -> int:
        return self._add(speaker=Speaker.CANDIDATE, kind=TurnKind.ANSWER, text=text, question_id=qid,
                         follow_up_of=follow_up_of, scorecard=scorecard)

    def probe(self, qid: str, text: str, of: int, point: str | None = None) -> int:
        return self._add(speaker=Speaker.INTERVIEWER, kind=TurnKind.FOLLOW_UP, text=text, question_id=qid,
                         follow_up_of=of, target_point=point)

    def skip(self, qid: str) -> int:
        return self._add(speaker=Speaker.CANDIDATE, kind=TurnKind.SKIP, text="skip", question_id=qid)

    def scored(self, bank: Bank, qid: str, score: float) -> Script:
        """Ask and answer one question with a fixed score."""
        self.ask(qid, bank)
        self.answer(qid, f"answer to {qid}", card(bank, qid, {}, score=score))
        return self


def session_with_scores(bank: Bank, scores: list[float | None], sid: str = "s1", **kw) -> Session:  # type: ignore[no-untyped-def]
    """Questions cycling through the bank, each answered with the given score (None = skipped)."""
    script = Script(sid, **kw)
    for i, score in enumerate(scores):
        qid = f"{[BV, PR, SC][i % 3]}"
        q = bank.get(qid)
        # distinct ids for repeated questions: unknown to the bank, so they take the scorecard's text
        qid = qid if i < 3 else f"{qid}-{i}"
        script.session.plan.append(qid)
        script._add(speaker=Speaker.INTERVIEWER, kind=TurnKind.QUESTION, text=q.text, question_id=qid)
        if score is None:
            script.skip(qid)
        else:
            script.answer(qid, "an answer", Scorecard(question=q.text, score=score, verdicts=[], engine="offline"))
    return script.session


# ------------------------------------------------------------------------------------------------ maths


def test_overall_and_per_topic_use_main_answers_with_skips_as_zero(bank: Bank) -> None:
    s = Script()
    q = s.ask(BV, bank)
    s.answer(BV, "main answer", card(bank, BV, {}, score=3.0))
    f = s.probe(BV, "How would you tell which problem you have?", q, "tradeoff-total-error")
    s.answer(BV, "follow-up answer", card(bank, BV, {}, score=5.0), follow_up_of=f)
    s.ask(PR, bank)
    s.answer(PR, "recall answer", card(bank, PR, {}, score=4.5))
    s.ask(SC, bank)
    s.skip(SC)

    report = build_report(s.session, bank)

    by_id = {r.question_id: r for r in report.per_question}
    assert [r.question_id for r in report.per_question] == [BV, PR, SC]
    assert by_id[BV].score == 3.0  # the follow-up's 5.0 is shown, not averaged in
    assert by_id[BV].follow_ups == 1
    assert [c.score for c in by_id[BV].follow_up_scorecards] == [5.0]
    assert by_id[BV].follow_up_answers[0].probe == "How would you tell which problem you have?"
    assert by_id[SC].skipped and by_id[SC].score is None and by_id[SC].status == "skipped"
    assert report.overall == pytest.approx((3.0 + 4.5 + 0.0) / 3, abs=0.01)
    assert report.per_topic == {"generalization": 3.0, "classification-metrics": 4.5, "learning": 0.0}
    assert report.scoring_note == SCORING_NOTE and "do not change" in report.scoring_note


def test_topic_average_and_unreached_planned_question(bank: Bank) -> None:
    s = Script(plan=[BV, PR, SC])
    s.ask(BV, bank)
    s.answer(BV, "a", card(bank, BV, {}, score=4.0))
    s.ask(PR, bank)
    s.answer(PR, "b", card(bank, PR, {}, score=2.0))
    report = build_report(s.session, bank)
    assert [r.status for r in report.per_question] == ["answered", "answered", "not reached"]
    assert report.overall == 2.0  # (4 + 2 + 0) / 3
    # an unreached question was never tested: it is not on the study list
    assert all(w.question_id != SC for w in report.weakest)


@pytest.mark.parametrize(
    ("scores", "verdict"),
    [
        ([4.0, 4.0, 4.0], "ready for senior"),
        ([5.0, 5.0, 5.0, 1.5], "ready for senior"),  # 4.125 and one low question: allowed
        ([5.0, 5.0, 5.0, 5.0, 5.0, 1.0, 1.5], "ready for mid"),  # 3.93: just under senior
        ([5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 1.0, 1.5], "ready for mid"),  # 4.25 but two low questions
        ([3.0, 3.0], "ready for mid"),
        ([2.9, 3.0], "ready for junior"),
        ([2.0, 2.0], "ready for junior"),
        ([1.9, 2.0], "not yet ready"),
        ([4.0, 4.0, None], "ready for junior"),  # skipped counts 0: 2.67
        ([], "not yet ready"),
    ],
)
def test_level_verdict_boundaries(bank: Bank, scores: list[float | None], verdict: str) -> None:
    report = build_report(session_with_scores(bank, scores), bank)
    assert report.level_verdict == verdict
    assert report.level_rule == LEVEL_RULE


def test_senior_rule_is_stated_and_explained() -> None:
    for words in ("4.0", "3.0", "2.0", "at most 1 question scored below 2.0", "skipped", "counts 0"):
        assert words in LEVEL_RULE
    verdict, reason = level_verdict(4.25, [5, 5, 5, 5, 5, 5, 5, 5, 1, 1.5])
    assert verdict == "ready for mid" and "2 were" in reason


# ------------------------------------------------------------------------------------------------ study list


def test_weakest_three_by_weight_then_credit_with_model_answers(bank: Bank) -> None:
    s = Script()
    s.ask(BV, bank)  # weights: bias 2, variance 2, tradeoff 2, remedies 1.5
    s.answer(BV, "a", card(bank, BV, {"variance-definition": (Verdict.PARTIAL, 0.7), "remedies": Verdict.MISSING,
                                      "tradeoff-total-error": (Verdict.PARTIAL, 0.3)}))
    s.ask(PR, bank)  # weights: precision 2, recall 2, f1 1.5
    s.answer(PR, "b", card(bank, PR, {"recall": Verdict.CONTRADICTED, "f1": Verdict.MISSING},
                           evidence={"recall": "recall is the share of predictions that are right"}))
    s.ask(SC, bank)
    s.answer(SC, "c", card(bank, SC, {}))  # all covered: nothing to study

    report = build_report(s.session, bank)

    picked = [(w.question_id, w.point_id) for w in report.weakest]
    # weight 2 first (recall 0.0, tradeoff 0.3, variance 0.7); the weight-1.5 misses lose despite credit 0
    assert picked == [(PR, "recall"), (BV, "tradeoff-total-error"), (BV, "variance-definition")]
    first = report.weakest[0]
    assert first.verdict == Verdict.CONTRADICTED and first.weight == 2 and first.credit == 0.0
    assert first.evidence == "recall is the share of predictions that are right"
    assert first.model_answer == bank.get(PR).model_answers[0].text
    assert first.model_answer_source == "mockml"
    assert first.point == bank.get(PR).point("recall").text
    # the bank's common wrong version of the point is study material too, escaped in HTML
    assert first.misconceptions == list(bank.get(PR).point("recall").misconceptions) and first.misconceptions
    assert "A common wrong version of this point: “Recall is the share" in render_markdown(report)
    html = render_html(report, None)
    assert "&lt;true positives&gt;" in html and "<true positives>" not in html
    assert report.weakest[1].misconceptions == []


def test_skipped_question_points_are_study_material(bank: Bank) -> None:
    s = Script()
    s.ask(BV, bank)
    s.answer(BV, "a", card(bank, BV, {"remedies": Verdict.MISSING}))
    s.ask(SC, bank)
    s.skip(SC)
    report = build_report(s.session, bank)
    assert [(w.question_id, w.point_id, w.verdict) for w in report.weakest] == [
        (SC, "sources", Verdict.MISSING), (SC, "hands-on", Verdict.MISSING), (SC, "production-filter", Verdict.MISSING)
    ]


# ------------------------------------------------------------------------------------------------ trend


def test_trend_uses_this_users_earlier_finished_sessions(bank: Bank) -> None:
    old = session_with_scores(bank, [2.0, 3.0], sid="old", start=T0 - timedelta(days=10))
    mid = session_with_scores(bank, [3.0, 4.0], sid="mid", start=T0 - timedelta(days=3))
    unfinished = session_with_scores(bank, [5.0], sid="open", start=T0 - timedelta(days=1))
    unfinished.finished_at = None
    other_user = session_with_scores(bank, [5.0], sid="bob", user="bob", start=T0 - timedelta(days=2))
    later = session_with_scores(bank, [1.0], sid="later", start=T0 + timedelta(days=1))
    now = session_with_scores(bank, [4.0, 4.5], sid="now")

    report = build_report(now, bank, history=[later, mid, other_user, unfinished, old, now])

    assert [p.session_id for p in report.trend] == ["old", "mid", "now"]
    assert [p.overall for p in report.trend] == [2.5, 3.5, 4.25]
    assert report.trend_delta == 0.75
    assert build_report(now, bank).trend_delta is None


# ------------------------------------------------------------------------------------------------ files


def _rich_session(bank: Bank) -> Session:
    s = Script(sid="../../etc/sess 42", plan=[BV, PR, SC])
    q = s.ask(BV, bank)
    s.answer(BV, f"Bias is underfitting {XSS} and variance is overfitting.",
             card(bank, BV, {"remedies": Verdict.MISSING, "tradeoff-total-error": Verdict.PARTIAL},
                  evidence={"bias-definition": f"underfitting {XSS}"}))
    f = s.probe(BV, "How would you tell from training and validation error which problem you have?", q)
    s.answer(BV, f"Compare the curves {XSS}", card(bank, BV, {}, score=4.0), follow_up_of=f)
    s.ask(PR, bank)
    s.answer(PR, "Precision is TP over predicted positives | recall is TP over actual positives.", card(bank, PR, {"f1": Verdict.MISSING},
                                                                         evidence={"precision": "predicted positives | recall"}))
    s.ask(SC, bank)
    s.skip(SC)
    return s.session


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_write_report_files_and_escaping(bank: Bank, tmp_path: Path) -> None:
    history = [session_with_scores(bank, [2.0, 2.5], sid="first", start=T0 - timedelta(days=7))]
    report = build_report(_rich_session(bank), bank, history)
    files = write_report(report, tmp_path / "reports")

    # names come from the sanitised id and stay inside out_dir
    for path in (files.markdown, files.html, files.chart, files.json):
        assert path.parent == tmp_path / "reports" and path.is_file()
        assert path.name.startswith(safe_name(report.session_id))
    assert safe_name(report.session_id) == "etc-sess-42"

    page = files.html.read_text()
    assert XSS not in page and "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("&lt;script&gt;") >= 3  # answer, evidence, follow-up answer
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert "data:image/png;base64," in page and "<style>" in page and "http" not in page.replace("http-equiv", "")

    width, height = _png_size(files.chart.read_bytes())
    assert 600 <= width <= 2000 and 200 <= height <= 1500
    assert files.chart.stat().st_size > 5_000

    md = files.markdown.read_text()
    assert "| # | Question | Topic | Score | Follow-ups | Status |" in md
    assert "| 1 | Explain the bias-variance tradeoff" in md and "| skipped |" in md
    assert "## What to study" in md and "Model answer to study" in md and "written by the mockml authors" in md
    # the skipped question's three weight-2 points lead; its model answer is quoted once, then referred to
    assert bank.get(SC).model_answers[0].text[:60] in md
    assert md.count(bank.get(SC).model_answers[0].text[:60]) == 1 and "the same as in 1 above" in md
    assert "## Trend" in md and "+" in md.split("## Trend")[1]
    assert XSS not in md
    assert "predicted positives \\| recall" in md  # a pipe in evidence does not break the verdict table

    data = json.loads(files.json.read_text())
    assert data["level_verdict"] == report.level_verdict and len(data["per_question"]) == 3


def test_empty_session_still_renders(bank: Bank, tmp_path: Path) -> None:
    report = build_report(Script(sid="").session, bank)
    files = write_report(report, tmp_path)
    assert files.chart.name == "session-chart.png" and _png_size(files.chart.read_bytes())[0] > 0
    assert "## Questions" in render_markdown(report)
