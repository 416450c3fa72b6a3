"""The interface every grading engine implements (offline rubric matcher, LLM judge)."""

from __future__ import annotations

from typing import Protocol

from app.bank import RubricPoint
from app.grading.models import CriterionVerdict


class GradingEngine(Protocol):
    """Decides one verdict per rubric point; the score is computed by the caller, in code."""

    name: str

    def judge(self, question: str, rubric: list[RubricPoint], answer: str) -> list[CriterionVerdict]:
        """One CriterionVerdict per rubric point, in rubric order; evidence must be a verbatim substring of `answer`."""
        ...
