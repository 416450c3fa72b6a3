"""Grading contracts: per-point verdicts and the scorecard (scores are computed in code, never by a model)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field



class Verdict(StrEnum):
    COVERED = "covered"
    PARTIAL = "partial"
    MISSING = "missing"
    CONTRADICTED = "contradicted"


# Credit each verdict earns toward the weighted score. A partial verdict may carry a finer credit
# in (0, 1) from the engine's confidence; these are the defaults and the bounds.
VERDICT_CREDIT: dict[Verdict, float] = {
    Verdict.COVERED: 1.0,
    Verdict.PARTIAL: 0.5,
    Verdict.MISSING: 0.0,
    Verdict.CONTRADICTED: 0.0,
}


class RubricSource(StrEnum):
    """Where the rubric used for grading came from."""

    BANK = "bank"                  # the question is a bank question (by id or recognised as the same)
    REFERENCE = "reference"        # derived from the claims of a reference answer the user gave
    RETRIEVED = "retrieved"        # borrowed from the nearest bank questions (no reference, no match)


class CriterionVerdict(BaseModel):
    """The verdict on one rubric point, with a verbatim quote from the answer as evidence."""

    model_config = ConfigDict(frozen=True)
    point_id: str
    point: str = Field(description="the rubric point's text")
    weight: float
    verdict: Verdict
    credit: float = Field(ge=0, le=1, description="share of the point's weight earned")
    evidence: str | None = Field(default=None, description="a verbatim substring of the answer, or None")
    confidence: float = Field(default=0.0, ge=0, le=1)
    note: str | None = None


class Scorecard(BaseModel):
    """The result of grading one answer."""

    question_id: str | None = None
    question: str
    score: float = Field(ge=0, le=5, description="0–5, weighted from the per-point verdicts")
    verdicts: list[CriterionVerdict]
    strengths: list[str] = []
    gaps: list[str] = []
    improvement: str = ""
    rubric_source: RubricSource = RubricSource.BANK
    engine: str = Field(description="offline | llm:<model> | offline (fallback from llm:<model>)")
    latency_ms: float = 0.0
    notes: list[str] = Field(default_factory=list, description="anything the candidate should know about how this was graded")
    answer_chars: int = 0


def weighted_score(verdicts: list[CriterionVerdict]) -> float:
    """The 0–5 score from per-point credits and weights, rounded to one decimal."""
    total = sum(v.weight for v in verdicts)
    if total <= 0:
        return 0.0
    return round(5.0 * sum(v.weight * v.credit for v in verdicts) / total, 1)

