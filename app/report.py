"""The end-of-interview report: scores per question and topic, a level verdict with its rule, what to study, the trend.

`build_report` turns a finished `Session` (plus the user's earlier sessions) into a `Report`;
`write_report` renders it as Markdown, a self-contained HTML page, a PNG chart and JSON.
Every piece of candidate or model text is HTML-escaped before it reaches the HTML page.
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from app.bank import AUTHORED, Bank, Question
from app.grading.models import Scorecard, Verdict
from app.sessions import Session, Speaker, Turn, TurnKind

if TYPE_CHECKING:
    from matplotlib.axes import Axes

# Level thresholds on the 0–5 overall score, highest first.
SENIOR, MID, JUNIOR = 4.0, 3.0, 2.0
LOW_SCORE = 2.0  # a question below this is a "low" question
MAX_LOW_FOR_SENIOR = 1  # "ready for senior" tolerates at most this many low questions
WEAKEST_COUNT = 3

LEVEL_RULE = (
    f"Overall is the plain mean of the question scores (0–5, every question weighted equally; a skipped or "
    f"unreached question counts 0). Overall ≥ {SENIOR:.1f} with at most {MAX_LOW_FOR_SENIOR} question scored below "
    f"{LOW_SCORE:.1f} → ready for senior; overall ≥ {MID:.1f} → ready for mid; overall ≥ {JUNIOR:.1f} → ready for "
    f"junior; otherwise → not yet ready."
)
SCORING_NOTE = (
    "A question's score is the score of its main answer. Answers to follow-up questions are graded and shown, "
    "but they do not change the question's score."
)

Status = Literal["answered", "skipped", "not graded", "not reached"]


class FollowUpAnswer(BaseModel):
    """One follow-up probe and the candidate's answer to it."""

    probe: str
    answer: str
    target_point: str | None = None
    scorecard: Scorecard | None = None


class QuestionResult(BaseModel):
    """How one planned question went."""

    question_id: str
    question: str
    topic: str
    track: str
    score: float | None = Field(description="the main answer's 0–5 score; None when there is no graded main answer")
    skipped: bool = Field(description="no graded main answer (skipped, not graded or not reached); counts 0")
    status: Status = "answered"
    answer: str | None = None
    follow_ups: int = Field(default=0, description="follow-up probes the interviewer asked")
    scorecard: Scorecard | None = None
    follow_up_scorecards: list[Scorecard] = Field(default_factory=list)
    follow_up_answers: list[FollowUpAnswer] = Field(default_factory=list)

    @property
    def counted(self) -> float:
        """The score as it counts toward the overall (0 when skipped)."""
        return 0.0 if self.score is None else self.score


class WeakArea(BaseModel):
    """One rubric point the candidate did not cover, with the model answer to study."""

    question_id: str
    question: str
    topic: str
    point_id: str
    point: str
    weight: float
    verdict: Verdict
    credit: float
    evidence: str | None = None
    model_answer: str
    model_answer_source: str
    misconceptions: list[str] = Field(default_factory=list, description="common wrong versions of this point, from the bank")


class TrendPoint(BaseModel):
    session_id: str
    started_at: datetime
    overall: float


class Report(BaseModel):
    """Everything the candidate studies from after an interview."""

    session_id: str
    user: str
    started_at: datetime
    finished_at: datetime | None
    target_level: str
    overall: float = Field(ge=0, le=5)
    level_verdict: str
    level_rule: str = LEVEL_RULE
    level_reason: str = Field(description="why this verdict, in one sentence, with the numbers")
    scoring_note: str = SCORING_NOTE
    per_question: list[QuestionResult]
    per_topic: dict[str, float]
    weakest: list[WeakArea]
    trend: list[TrendPoint]
    trend_delta: float | None = None


@dataclass(frozen=True)
class ReportFiles:
    """Where `write_report` put each rendering."""

    markdown: Path
    html: Path
    chart: Path
    json: Path


# ---------------------------------------------------------------------------------------------- scoring


def _utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC so that old and new sessions compare."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _is_answer(turn: Turn) -> bool:
    return turn.kind == TurnKind.ANSWER and turn.speaker == Speaker.CANDIDATE and turn.question_id is not None


def _probe_text(turns: list[Turn], position: int, qid: str) -> tuple[str, str | None]:
    """The follow-up probe an answer at `position` replies to: the latest follow-up turn before it for this question."""
    by_index = {t.index: t for t in turns}
    answer = turns[position]
    linked = by_index.get(answer.follow_up_of) if answer.follow_up_of is not None else None
    if linked is not None and linked.kind == TurnKind.FOLLOW_UP:
        return linked.text, linked.target_point
    for turn in reversed(turns[:position]):
        if turn.kind == TurnKind.FOLLOW_UP and turn.question_id in (qid, None):
            return turn.text, turn.target_point
    return "", answer.target_point


def _question_ids(session: Session) -> list[str]:
    """The plan's ids in order, then any other question met in the turns."""
    ids = list(dict.fromkeys(session.plan))
    for turn in session.turns:
        if turn.question_id and turn.question_id not in ids:
            ids.append(turn.question_id)
    return ids


def _results(session: Session, bank: Bank) -> list[QuestionResult]:
    questions = bank.by_id
    results: list[QuestionResult] = []
    for qid in _question_ids(session):
        q = questions.get(qid)
        mine = [(i, t) for i, t in enumerate(session.turns) if t.question_id == qid]
        asked = any(t.kind == TurnKind.QUESTION for _, t in mine) or any(_is_answer(t) or t.kind == TurnKind.SKIP for _, t in mine)
        main = next((t for _, t in mine if _is_answer(t) and t.follow_up_of is None), None)
        follow_ups: list[FollowUpAnswer] = []
        for i, t in mine:
            if _is_answer(t) and t.follow_up_of is not None:
                probe, target = _probe_text(session.turns, i, qid)
                follow_ups.append(FollowUpAnswer(probe=probe, answer=t.text, target_point=target, scorecard=t.scorecard))
        probes = sum(1 for _, t in mine if t.kind == TurnKind.FOLLOW_UP and t.speaker == Speaker.INTERVIEWER)
        scorecard = main.scorecard if main else None
        if scorecard is not None:
            status: Status = "answered"
        elif main is not None:
            status = "not graded"
        elif asked:
            status = "skipped"
        else:
            status = "not reached"
        asked_text = next((t.text for _, t in mine if t.kind == TurnKind.QUESTION), None)
        results.append(
            QuestionResult(
                question_id=qid,
                question=q.text if q else (scorecard.question if scorecard else asked_text or qid),
                topic=q.topic if q else "unknown",
                track=str(q.track) if q else "unknown",
                score=round(scorecard.score, 2) if scorecard else None,
                skipped=scorecard is None,
                status=status,
                answer=main.text if main else None,
                follow_ups=max(probes, len(follow_ups)),
                scorecard=scorecard,
                follow_up_scorecards=[f.scorecard for f in follow_ups if f.scorecard is not None],
                follow_up_answers=follow_ups,
            )
        )
    return results


def _overall(results: Sequence[QuestionResult]) -> float:
    return round(sum(r.counted for r in results) / len(results), 2) if results else 0.0


def level_verdict(overall: float, scores: Sequence[float]) -> tuple[str, str]:
    """The level verdict for an overall score and the per-question scores, and the reason in words."""
    low = sum(1 for s in scores if s < LOW_SCORE)
    if overall >= SENIOR and low <= MAX_LOW_FOR_SENIOR:
        return "ready for senior", f"overall {_fmt(overall)} ≥ {SENIOR:.1f} and {low} question(s) below {LOW_SCORE:.1f}"
    held = f" (the senior bar also needs at most {MAX_LOW_FOR_SENIOR} question below {LOW_SCORE:.1f}; {low} were)" if overall >= SENIOR else ""
    if overall >= MID:
        return "ready for mid", f"overall {_fmt(overall)} ≥ {MID:.1f}{held}"
    if overall >= JUNIOR:
        return "ready for junior", f"overall {_fmt(overall)} ≥ {JUNIOR:.1f} but below {MID:.1f}"
    return "not yet ready", f"overall {_fmt(overall)} is below {JUNIOR:.1f}"


def _model_answer(q: Question | None) -> tuple[str, str]:
    if q is None or not q.model_answers:
        return "", ""
    answer = q.model_answers[0]
    return answer.text, answer.source


_SEVERITY = {Verdict.CONTRADICTED: 0, Verdict.MISSING: 1, Verdict.PARTIAL: 2, Verdict.COVERED: 3}


def _weakest(results: Sequence[QuestionResult], bank: Bank) -> list[WeakArea]:
    """Uncovered points with the highest weight; ties by lowest credit, then contradicted first, then session order."""
    questions = bank.by_id
    found: list[tuple[tuple[float, float, int, int], WeakArea]] = []
    order = 0
    for r in results:
        q = questions.get(r.question_id)
        text, source = _model_answer(q)
        if r.scorecard is not None:
            points = [(v.point_id, v.point, v.weight, v.verdict, v.credit, v.evidence) for v in r.scorecard.verdicts]
        elif r.status in ("skipped", "not graded") and q is not None:
            # An asked question without a graded answer showed none of its points: all of them are study material.
            points = [(p.id, p.text, p.weight, Verdict.MISSING, 0.0, None) for p in q.rubric]
        else:
            continue  # never asked: nothing was tested
        wrong = {p.id: list(p.misconceptions) for p in q.rubric} if q is not None else {}
        for point_id, point, weight, verdict, credit, evidence in points:
            order += 1
            if verdict == Verdict.COVERED:
                continue
            area = WeakArea(
                question_id=r.question_id, question=r.question, topic=r.topic, point_id=point_id, point=point,
                weight=weight, verdict=verdict, credit=credit, evidence=evidence, model_answer=text, model_answer_source=source,
                misconceptions=wrong.get(point_id, []),
            )
            found.append(((-weight, credit, _SEVERITY[verdict], order), area))
    found.sort(key=lambda item: item[0])
    return [area for _, area in found[:WEAKEST_COUNT]]


def build_report(session: Session, bank: Bank, history: Sequence[Session] = ()) -> Report:
    """The report for a session; `history` may hold any sessions, only this user's earlier finished ones are used."""
    results = _results(session, bank)
    overall = _overall(results)
    verdict, reason = level_verdict(overall, [r.counted for r in results])
    per_topic: dict[str, list[float]] = {}
    for r in results:
        per_topic.setdefault(r.topic, []).append(r.counted)
    start = _utc(session.started_at)
    earlier = sorted(
        (s for s in history if s.user == session.user and s.id != session.id and s.finished_at is not None and _utc(s.started_at) < start),
        key=lambda s: _utc(s.started_at),
    )
    trend = [TrendPoint(session_id=s.id, started_at=_utc(s.started_at), overall=_overall(_results(s, bank))) for s in earlier]
    trend.append(TrendPoint(session_id=session.id, started_at=start, overall=overall))
    return Report(
        session_id=session.id,
        user=session.user,
        started_at=start,
        finished_at=_utc(session.finished_at) if session.finished_at else None,
        target_level=str(session.config.level),
        overall=overall,
        level_verdict=verdict,
        level_reason=reason,
        per_question=results,
        per_topic={topic: round(sum(v) / len(v), 2) for topic, v in per_topic.items()},
        weakest=_weakest(results, bank),
        trend=trend,
        trend_delta=round(trend[-1].overall - trend[-2].overall, 2) if len(trend) > 1 else None,
    )


# ---------------------------------------------------------------------------------------------- rendering


def safe_name(session_id: str) -> str:
    """A file-name stem from a session id: no separators, no leading dots, at most 80 characters."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", session_id).strip("-._")[:80].rstrip("-._")
    return stem or "session"


def _source_credit(source: str) -> str:
    if not source:
        return "no model answer in the bank"
    return "written by the mockml authors" if source == AUTHORED else f"from seed document {source}"


def _fmt(score: float | None, sign: bool = False) -> str:
    """A score with one decimal, or two when rounding to one would change what it means (3.96 is not 4.0)."""
    if score is None:
        return "—"
    text = f"{score:+.2f}" if sign else f"{score:.2f}"
    return text[:-1] if text.endswith("0") else text


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "not finished"


def _band(score: float) -> str:
    if score >= SENIOR:
        return "#2e9d5b"
    if score >= MID:
        return "#8cbf3f"
    if score >= JUNIOR:
        return "#f0a830"
    return "#d9534f"


_LEVELS = ((JUNIOR, "junior"), (MID, "mid"), (SENIOR, "senior"))


def _topic_panel(ax: Axes, report: Report) -> None:
    topics = list(report.per_topic)[::-1]  # first topic on top
    scores = [report.per_topic[t] for t in topics]
    ax.set_xlim(0, 5)
    ax.set_xticks(range(6))
    ax.set_xlabel("score (0–5)", color="#444444")
    ax.set_title(f"Score by topic — overall {_fmt(report.overall)} / 5, {report.level_verdict}", loc="left",
                 fontsize=12, fontweight="bold", pad=16)
    for x, label in _LEVELS:
        ax.axvline(x, color="#666666", linestyle=(0, (4, 3)), linewidth=1, zorder=3)
        ax.text(x, 1.01, label, transform=ax.get_xaxis_transform(), ha="center", va="bottom", fontsize=8, color="#555555")
    ax.tick_params(axis="y", length=0)
    if not topics:
        ax.set_yticks([])
        ax.text(2.5, 0.5, "no questions were asked", ha="center", va="center", color="#777777", zorder=4,
                transform=ax.get_xaxis_transform(), bbox={"facecolor": "white", "edgecolor": "none"})
        return
    ys = range(len(topics))
    ax.barh(ys, [5] * len(topics), height=0.6, color="#eeeeee", zorder=1)  # the track shows where 5 is, and makes 0 visible
    bars = ax.barh(ys, scores, height=0.6, color=[_band(s) for s in scores], zorder=2)
    ax.set_yticks(ys, [t.replace("-", " ") for t in topics], fontsize=10)
    ax.set_ylim(-0.6, len(topics) - 0.4)
    for bar, score in zip(bars, scores, strict=True):
        inside = score >= 0.7
        # the label's box, filled with what lies behind it, hides a threshold line running through the number
        ax.text(
            score - 0.08 if inside else score + 0.08, bar.get_y() + bar.get_height() / 2, _fmt(score),
            ha="right" if inside else "left", va="center", fontsize=10, fontweight="bold",
            color="white" if inside else "#333333", zorder=4,
            bbox={"boxstyle": "square,pad=0.15", "facecolor": _band(score) if inside else "#eeeeee", "edgecolor": "none"},
        )


def _trend_panel(ax: Axes, report: Report) -> None:
    xs = list(range(len(report.trend)))
    ys = [p.overall for p in report.trend]
    ax.set_ylim(0, 5.4)
    ax.set_yticks(range(6))
    ax.set_xlim(-0.5, len(ys) - 0.5)
    ax.set_title("Overall, session by session", loc="left", fontsize=11, fontweight="bold", pad=16)
    for y, label in _LEVELS:
        ax.axhline(y, color="#999999", linestyle=(0, (4, 3)), linewidth=0.8, zorder=1)
        ax.text(1.0, y, f" {label}", transform=ax.get_yaxis_transform(), ha="left", va="center", fontsize=8, color="#555555")
    ax.plot(xs, ys, color="#3a6ea5", marker="o", linewidth=2, zorder=2)
    ax.scatter([xs[-1]], [ys[-1]], s=110, color="#3a6ea5", edgecolor="white", linewidth=1.5, zorder=3)
    for x, y in zip(xs, ys, strict=True):
        ax.annotate(_fmt(y), (x, y), textcoords="offset points", xytext=(0, 9), ha="center", fontsize=8, zorder=4,
                    fontweight="bold" if x == xs[-1] else "normal",
                    bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none"})
    labels = [p.started_at.strftime("%d %b") for p in report.trend]
    labels[-1] = "this one"
    ax.set_xticks(xs, labels, fontsize=8, rotation=30 if len(labels) > 4 else 0)
    ax.tick_params(axis="x", length=0)


def render_chart(report: Report) -> bytes:
    """The per-topic bar chart (plus a trend panel when there is history) as PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # lazy: matplotlib is not needed until now
    from matplotlib.figure import Figure

    history = len(report.trend) > 1
    height = max(2.8, 1.5 + 0.5 * max(len(report.per_topic), 1))
    fig = Figure(figsize=(11 if history else 8, height), dpi=130, layout="constrained")
    FigureCanvasAgg(fig)  # Figure + canvas directly: no pyplot global state, safe from UI threads
    if history:
        left, right = fig.subplots(1, 2, width_ratios=(2.3, 1))
        _trend_panel(right, report)
    else:
        left = fig.subplots()
    _topic_panel(left, report)
    for ax in fig.axes:
        ax.spines[["top", "right"]].set_visible(False)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", facecolor="white")
    return buffer.getvalue()


def _md(text: str | None, cell: bool = False) -> str:
    """Candidate/model text made inert for Markdown renderers (HTML escaped; pipes and newlines tamed in cells)."""
    out = html.escape(text or "", quote=False)
    if cell:
        out = re.sub(r"\s+", " ", out).replace("|", "\\|")
    return out


def _quote(text: str) -> str:
    return "\n".join("> " + line for line in _md(text).splitlines() or [""])


def render_markdown(report: Report, chart_name: str | None = None) -> str:
    """The report as Markdown: summary, per-question table, what to study, the trend."""
    lines = [
        f"# Interview report — {_md(report.user)}",
        "",
        f"Session `{safe_name(report.session_id)}` · started {_when(report.started_at)} · finished {_when(report.finished_at)} · "
        f"target level {report.target_level}",
        "",
        f"**Overall: {_fmt(report.overall)} / 5 — {report.level_verdict}** ({report.level_reason})",
        "",
        f"*How the verdict is decided:* {report.level_rule}",
        "",
        f"*{report.scoring_note}*",
        "",
    ]
    if chart_name:
        lines += [f"![Score by topic]({chart_name})", ""]
    lines += ["## Questions", "", "| # | Question | Topic | Score | Follow-ups | Status |", "|---|---|---|---|---|---|"]
    for n, r in enumerate(report.per_question, 1):
        lines.append(f"| {n} | {_md(r.question, True)} | {r.topic} | {_fmt(r.score)} | {r.follow_ups} | {r.status} |")
    lines += ["", "## By topic", "", "| Topic | Score |", "|---|---|"]
    lines += [f"| {t} | {_fmt(s)} |" for t, s in report.per_topic.items()]
    lines += ["", "## What to study", ""]
    if not report.weakest:
        lines += ["Every rubric point was covered. Nothing to add here.", ""]
    shown: dict[str, str] = {}  # question id -> study item that already quotes its model answer
    for n, w in enumerate(report.weakest, 1):
        lines += [
            f"### {n}. {_md(w.point)}",
            "",
            f"Question: {_md(w.question)} ({w.topic}) · weight {w.weight:g} · {w.verdict.value}, credit {w.credit:.2f}",
            "",
        ]
        if w.evidence:
            lines += [f"What you said: “{_md(w.evidence)}”", ""]
        lines += [f"A common wrong version of this point: “{_md(m)}”" for m in w.misconceptions] + ([""] if w.misconceptions else [])
        if w.question_id in shown:
            lines += [f"Model answer to study: the same as in {shown[w.question_id]} above.", ""]
        elif w.model_answer:
            shown[w.question_id] = f"{n}"
            lines += ["Model answer to study:", "", _quote(w.model_answer), "", f"— {_source_credit(w.model_answer_source)}", ""]
    lines += ["## Question by question", ""]
    for n, r in enumerate(report.per_question, 1):
        lines += [f"### {n}. {_md(r.question)}", "", f"Score {_fmt(r.score)} · {r.status}", ""]
        if r.answer:
            lines += ["Your answer:", "", _quote(r.answer), ""]
        if r.scorecard:
            lines += ["| Point | Verdict | Evidence |", "|---|---|---|"]
            lines += [f"| {_md(v.point, True)} | {v.verdict.value} | {_md(v.evidence, True) or '—'} |" for v in r.scorecard.verdicts]
            lines.append("")
            if r.scorecard.improvement:
                lines += [f"To improve: {_md(r.scorecard.improvement)}", ""]
        for f in r.follow_up_answers:
            score = f" (scored {_fmt(f.scorecard.score)}, not counted)" if f.scorecard else ""
            lines += [f"Follow-up: {_md(f.probe)}{score}", "", _quote(f.answer), ""]
    lines += ["## Trend", ""]
    if len(report.trend) < 2:
        lines += ["This is your first finished interview; the trend starts here.", ""]
    else:
        lines += ["| Session | Started | Overall |", "|---|---|---|"]
        lines += [f"| {safe_name(p.session_id)} | {_when(p.started_at)} | {_fmt(p.overall)} |" for p in report.trend]
        delta = report.trend_delta or 0.0
        lines += ["", f"Change since your previous interview: {_fmt(delta, sign=True)}", ""]
    return "\n".join(lines)


_CSS = """
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#222;max-width:980px;margin:2rem auto;padding:0 1rem}
h1{margin-bottom:.2rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
.meta{color:#666}.verdict{font-size:1.3rem;margin:1rem 0 .3rem}.rule,.note{color:#555;font-size:.9rem}
table{border-collapse:collapse;width:100%;margin:.6rem 0}th,td{border:1px solid #ddd;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f5f5f5}td.num{text-align:right;white-space:nowrap}
blockquote{margin:.5rem 0;padding:.4rem .8rem;border-left:4px solid #3a6ea5;background:#f4f7fb;white-space:pre-wrap}
.study{border:1px solid #e3e3e3;border-radius:6px;padding:.6rem 1rem;margin:.8rem 0}
.credit{color:#666;font-size:.85rem}img{max-width:100%;height:auto}
.covered{color:#2e7d32}.partial{color:#b26a00}.missing,.contradicted{color:#c62828}
"""


def render_html(report: Report, chart_png: bytes | None) -> str:
    """A self-contained HTML page (inline CSS, chart as a data URI); all candidate and model text escaped."""
    e = html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        # defence in depth behind html.escape: the page may run no script and load nothing from anywhere
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">",
        f"<title>mockml report — {e(report.user)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Interview report — {e(report.user)}</h1>",
        f"<p class='meta'>Session {e(report.session_id)} · started {e(_when(report.started_at))} · finished "
        f"{e(_when(report.finished_at))} · target level {e(report.target_level)}</p>",
        f"<p class='verdict'><strong>Overall {_fmt(report.overall)} / 5 — {e(report.level_verdict)}</strong></p>",
        f"<p class='rule'>{e(report.level_reason[:1].upper() + report.level_reason[1:])}.<br>How the verdict is decided: {e(report.level_rule)}</p>",
        f"<p class='note'>{e(report.scoring_note)}</p>",
    ]
    if chart_png:
        data = base64.b64encode(chart_png).decode("ascii")
        parts.append(f"<img alt='Score by topic' src='data:image/png;base64,{data}'>")
    parts += ["<h2>Questions</h2><table><tr><th>#</th><th>Question</th><th>Topic</th><th>Score</th><th>Follow-ups</th><th>Status</th></tr>"]
    for n, r in enumerate(report.per_question, 1):
        parts.append(
            f"<tr><td class='num'>{n}</td><td>{e(r.question)}</td><td>{e(r.topic)}</td><td class='num'>{_fmt(r.score)}</td>"
            f"<td class='num'>{r.follow_ups}</td><td>{e(r.status)}</td></tr>"
        )
    parts.append("</table><h2>What to study</h2>")
    if not report.weakest:
        parts.append("<p>Every rubric point was covered.</p>")
    shown: dict[str, str] = {}
    for n, w in enumerate(report.weakest, 1):
        parts.append(
            f"<div class='study'><h3>{n}. {e(w.point)}</h3><p>Question: {e(w.question)} ({e(w.topic)}) · weight {w.weight:g} · "
            f"<span class='{e(w.verdict.value)}'>{e(w.verdict.value)}</span>, credit {w.credit:.2f}</p>"
        )
        if w.evidence:
            parts.append(f"<p>What you said: “{e(w.evidence)}”</p>")
        parts += [f"<p class='misconception'>A common wrong version of this point: “{e(m)}”</p>" for m in w.misconceptions]
        if w.question_id in shown:
            parts.append(f"<p>Model answer to study: the same as in {shown[w.question_id]} above.</p>")
        elif w.model_answer:
            shown[w.question_id] = f"{n}"
            parts.append(
                f"<p>Model answer to study:</p><blockquote>{e(w.model_answer)}</blockquote>"
                f"<p class='credit'>— {e(_source_credit(w.model_answer_source))}</p>"
            )
        parts.append("</div>")
    parts.append("<h2>Question by question</h2>")
    for n, r in enumerate(report.per_question, 1):
        parts.append(f"<h3>{n}. {e(r.question)}</h3><p>Score {_fmt(r.score)} · {e(r.status)}</p>")
        if r.answer:
            parts.append(f"<p>Your answer:</p><blockquote>{e(r.answer)}</blockquote>")
        if r.scorecard:
            parts.append("<table><tr><th>Point</th><th>Verdict</th><th>Evidence</th></tr>")
            for v in r.scorecard.verdicts:
                parts.append(
                    f"<tr><td>{e(v.point)}</td><td class='{e(v.verdict.value)}'>{e(v.verdict.value)}</td><td>{e(v.evidence or '—')}</td></tr>"
                )
            parts.append("</table>")
            if r.scorecard.improvement:
                parts.append(f"<p>To improve: {e(r.scorecard.improvement)}</p>")
        for f in r.follow_up_answers:
            score = f" (scored {_fmt(f.scorecard.score)}, not counted)" if f.scorecard else ""
            parts.append(f"<p>Follow-up: {e(f.probe)}{score}</p><blockquote>{e(f.answer)}</blockquote>")
    parts.append("<h2>Trend</h2>")
    if len(report.trend) < 2:
        parts.append("<p>This is your first finished interview; the trend starts here.</p>")
    else:
        parts.append("<table><tr><th>Session</th><th>Started</th><th>Overall</th></tr>")
        parts += [
            f"<tr><td>{e(p.session_id)}</td><td>{e(_when(p.started_at))}</td><td class='num'>{_fmt(p.overall)}</td></tr>" for p in report.trend
        ]
        parts.append(f"</table><p>Change since your previous interview: {_fmt(report.trend_delta or 0.0, sign=True)}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)  # readers never see a half-written report


def write_report(report: Report, out_dir: Path) -> ReportFiles:
    """Write the report as Markdown, HTML, PNG chart and JSON into `out_dir`, named after the session id."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = safe_name(report.session_id)
    files = ReportFiles(
        markdown=out_dir / f"{stem}-report.md",
        html=out_dir / f"{stem}-report.html",
        chart=out_dir / f"{stem}-chart.png",
        json=out_dir / f"{stem}-report.json",
    )
    png = render_chart(report)
    _write(files.chart, png)
    _write(files.markdown, render_markdown(report, files.chart.name).encode("utf-8"))
    _write(files.html, render_html(report, png).encode("utf-8"))
    _write(files.json, report.model_dump_json(indent=2).encode("utf-8"))
    return files
