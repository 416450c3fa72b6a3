"""The rubric grader: `grade(question, answer, reference=None, engine=None) -> Scorecard`.

Engines decide one verdict per rubric point; the score is always computed here, in code, from those
verdicts and the points' weights. When an LLM engine fails, the offline engine answers and the
scorecard says so.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Iterator
from typing import Any

from app.bank import SLUG, Bank, RubricPoint
from app.config import Settings, get_settings
from app.errors import BadInput, LLMError, MockmlError
from app.grading.guards import has_substance, validate_answer, validate_question, validate_reference
from app.grading.models import CriterionVerdict, RubricSource, Scorecard, Verdict, weighted_score
from app.grading.rubric import ResolvedRubric, resolve

__all__ = ["Grader", "Scorecard", "CriterionVerdict", "Verdict", "grade"]
log = logging.getLogger("mockml.grading")
ENGINES = ("offline", "llm", "local")
FALLBACK_NOTE = "the language model failed"  # how a scorecard's note about an offline fallback starts
SPOKEN_NOTE = ("graded as a speech transcript: its full stops are where the recogniser heard pauses, so adjacent "
               "sentences were also read together")


def _gap(v: CriterionVerdict) -> str:
    """One unmet point as the candidate reads it; a contradiction says what it was taken for."""
    if v.verdict is Verdict.CONTRADICTED:
        return f"Contradicted: {v.point}" + (f" ({v.note})" if v.note else "")
    return f"Only partly: {v.point}" if v.verdict is Verdict.PARTIAL else v.point


def _summarise(verdicts: list[CriterionVerdict]) -> tuple[list[str], list[str], str]:
    """Strengths, gaps and one concrete improvement, from the verdicts."""
    strengths = [v.point for v in sorted(verdicts, key=lambda v: -v.weight) if v.verdict is Verdict.COVERED]
    unmet = sorted((v for v in verdicts if v.verdict is not Verdict.COVERED), key=lambda v: (-v.weight, v.credit))
    gaps = [_gap(v) for v in unmet]
    if not unmet:
        improvement = "Every rubric point is covered: tighten the answer and add a concrete example or trade-off."
    else:
        top = unmet[0]
        if top.verdict is Verdict.CONTRADICTED:
            improvement = f"Re-check this point — your answer says the opposite: {top.point}"
        elif top.verdict is Verdict.PARTIAL:
            improvement = f"Finish this point explicitly, in your own words: {top.point}"
        else:
            improvement = f"Add this point (it carries the most weight of what you missed): {top.point}"
    return strengths, gaps, improvement


class Grader:
    """Grades answers with the configured engine, reusing the bank, retriever and models across calls."""

    def __init__(self, settings: Settings | None = None, bank: Bank | None = None) -> None:
        self.settings = settings or get_settings()
        self._bank = bank
        self._offline: Any = None
        self._judges: dict[str, Any] = {}

    @property
    def bank(self) -> Bank:
        if self._bank is None:
            from app.runtime import get_bank

            self._bank = get_bank(self.settings)
        return self._bank

    @property
    def offline(self) -> Any:
        if self._offline is None:
            from app.grading.offline import OfflineEngine

            self._offline = OfflineEngine()
        return self._offline

    def _search(self, query: str, k: int) -> list[Any]:
        from app.runtime import get_retriever

        return get_retriever(self.settings).search(query, k)

    def _engine_name(self, engine: str | None) -> str:
        name = (engine or ("offline" if self.settings.offline else "llm")).strip().lower()
        if name not in ENGINES:
            raise BadInput(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
        return name

    def _judge(self, name: str) -> Any:
        if name not in self._judges:
            from app.grading.judge import LLMJudge
            from app.llm import LLM

            settings = self.settings if name == "llm" else self.settings.model_copy(update={"model": "local"})
            self._judges[name] = LLMJudge(settings, LLM(settings))
        return self._judges[name]

    def chat_model(self, engine: str | None) -> Any | None:
        """The language model behind an engine, for the interviewer's follow-ups; None for the offline engine.

        The same object grades, so a session on `local` starts one embedded server, not two; a model that is
        not configured gives None (the offline follow-ups answer) instead of an error mid-interview.
        """
        name = self._engine_name(engine)
        if name == "offline":
            return None
        try:
            return self._judge(name).llm
        except MockmlError as exc:
            log.warning("no language model for follow-ups (%s); using offline follow-ups", exc)
            return None

    def resolve(self, question: str, reference: str | None = None) -> ResolvedRubric:
        """The rubric this question would be graded with."""
        question = validate_question(question)
        reference = validate_reference(reference, self.settings.max_answer_chars)
        if re.fullmatch(SLUG, question) and "-" in question:
            self.bank.get(question)  # looks like an id: an unknown one is a typo, not a question to grade
        return resolve(question, reference, self.bank, self._search)

    def grade(self, question: str, answer: str, reference: str | None = None, engine: str | None = None,
              spoken: bool = False) -> Scorecard:
        """Grade one answer; bad input raises BadInput, a failing model falls back to the offline engine.

        `spoken`: the answer is a speech transcript. The offline engine then also reads adjacent sentences
        together, because a recogniser's full stops mark pauses, not where a claim ends.
        """
        started = time.perf_counter()
        name = self._engine_name(engine)
        answer = validate_answer(answer, self.settings.max_answer_chars)
        rubric = self.resolve(question, reference)
        notes = list(rubric.notes)
        if not has_substance(answer):
            verdicts = [_missing(p) for p in rubric.points]
            return self._card(rubric, verdicts, "offline" if name == "offline" else name, started, notes + ["no answer given"], answer)
        used = "offline"
        if name == "offline":
            verdicts = self.offline.judge(rubric.question_text, rubric.points, answer, spoken)
        else:
            try:
                judge = self._judge(name)
                verdicts = judge.judge(rubric.question_text, rubric.points, answer)
                used = judge.name
            except (LLMError, MockmlError) as exc:
                kind = getattr(exc, "kind", "error")
                log.warning("LLM grading failed (%s); falling back to the offline engine", kind)
                verdicts = self.offline.judge(rubric.question_text, rubric.points, answer, spoken)
                used = f"offline (fallback from {name}: {kind})"
                notes.append(f"{FALLBACK_NOTE} ({exc}); graded by the offline engine instead")
        if spoken and used.startswith("offline"):
            notes.append(SPOKEN_NOTE)
        return self._card(rubric, verdicts, used, started, notes, answer)

    def _card(self, rubric: ResolvedRubric, verdicts: list[CriterionVerdict], engine: str, started: float,
              notes: list[str], answer: str) -> Scorecard:
        strengths, gaps, improvement = _summarise(verdicts)
        if not has_substance(answer):
            improvement = "Give an answer: even a partial one earns credit for each point it makes."
        return Scorecard(
            question_id=rubric.question.id if rubric.question else None,
            question=rubric.question_text,
            score=weighted_score(verdicts),
            verdicts=verdicts,
            strengths=strengths,
            gaps=gaps,
            improvement=improvement,
            rubric_source=rubric.source,
            engine=engine,
            latency_ms=round((time.perf_counter() - started) * 1000, 1),
            notes=notes,
            answer_chars=len(answer),
        )

    def grade_many(
        self, requests: Iterable[dict[str, Any]], engine: str | None = None, chunk: int = 32
    ) -> Iterator[Scorecard | MockmlError]:
        """Grade a stream of {question, answer, reference?} dicts in order; a bad item yields its error, never stops the run.

        Offline, each chunk's sentences are embedded in one length-sorted batch first, which is what makes
        batch grading several times faster than grading answers one by one.
        """
        pending: list[dict[str, Any]] = []
        for req in requests:
            pending.append(req)
            if len(pending) >= chunk:
                yield from self._grade_chunk(pending, engine)
                pending = []
        if pending:
            yield from self._grade_chunk(pending, engine)

    def _grade_chunk(self, chunk: list[dict[str, Any]], engine: str | None) -> Iterator[Scorecard | MockmlError]:
        try:
            offline = self._engine_name(engine) == "offline"
        except BadInput:
            offline = False  # every item will report the bad engine below
        if offline:
            self.offline.prefetch([r["answer"] for r in chunk if isinstance(r, dict) and isinstance(r.get("answer"), str)])
        for req in chunk:
            try:
                if not isinstance(req, dict):
                    raise BadInput("each item must be an object with question and answer")
                if "error" in req and "answer" not in req:
                    raise BadInput(str(req["error"]))  # a line the caller could not parse keeps its place
                yield self.grade(str(req.get("question") or ""), req.get("answer") or "", req.get("reference"), engine)
            except MockmlError as exc:
                yield exc


def _missing(point: RubricPoint) -> CriterionVerdict:
    return CriterionVerdict(point_id=point.id, point=point.text, weight=point.weight, verdict=Verdict.MISSING, credit=0.0)


_default: Grader | None = None


def grade(question: str, answer: str, reference: str | None = None, engine: str | None = None,
          spoken: bool = False) -> Scorecard:
    """Grade one answer with the process-wide grader (see Grader.grade)."""
    global _default
    if _default is None:
        _default = Grader()
    return _default.grade(question, answer, reference, engine, spoken)


__all__ += ["RubricSource"]
