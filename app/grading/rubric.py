"""Which rubric grades an answer: the bank's, one derived from a reference answer, or retrieved material."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.bank import Bank, Question, RubricPoint
from app.grading.models import RubricSource
from app.text import sentences

# Cosine similarity between a typed question and a bank wording above which they are the same question.
# All-MiniLM puts rephrasings of one question at 0.80–0.95 and neighbouring topics below 0.75.
SAME_QUESTION_SIM = 0.82
MAX_DERIVED_POINTS = 7
RETRIEVED_POINTS = 5


@dataclass
class ResolvedRubric:
    """A rubric plus where it came from and what the candidate should be told about it."""

    question_text: str
    points: list[RubricPoint]
    source: RubricSource
    question: Question | None = None
    notes: list[str] = field(default_factory=list)


def from_reference(reference: str) -> list[RubricPoint]:
    """Rubric points from the claims (sentences) of a reference answer, equally weighted."""
    claims = [reference[a:b].strip() for a, b in sentences(reference)]
    claims = [c for c in claims if sum(ch.isalnum() for ch in c) >= 3]
    while len(claims) > MAX_DERIVED_POINTS:  # merge the two shortest neighbours until it fits
        i = min(range(len(claims) - 1), key=lambda k: len(claims[k]) + len(claims[k + 1]))
        claims[i : i + 2] = [claims[i] + " " + claims[i + 1]]
    # model_construct: a short claim ("It is a stack.") is still a fair rubric point here.
    return [RubricPoint.model_construct(id=f"claim-{k + 1}", text=c, weight=1.0, key_terms=()) for k, c in enumerate(claims)]


def resolve(question: str, reference: str | None, bank: Bank, retriever_search: object | None) -> ResolvedRubric:
    """Pick the rubric for a question given as a bank id or as free text."""
    if bank.has(question):
        q = bank.get(question)
        if reference and reference.strip():
            return ResolvedRubric(q.text, from_reference(reference), RubricSource.REFERENCE, q,
                                  ["graded against the reference answer you gave, not the bank rubric"])
        return ResolvedRubric(q.text, list(q.rubric), RubricSource.BANK, q)
    if reference and reference.strip():
        points = from_reference(reference)
        if points:
            return ResolvedRubric(question, points, RubricSource.REFERENCE,
                                  notes=[f"rubric derived from the {len(points)} claim(s) of your reference answer"])
    hits = retriever_search(question, 3) if callable(retriever_search) else []  # type: ignore[operator]
    if hits and (hits[0].similarity or 0.0) >= SAME_QUESTION_SIM:
        q = hits[0].question
        return ResolvedRubric(question, list(q.rubric), RubricSource.BANK, q,
                              [f"recognised as bank question {q.id!r}; graded with its rubric"])
    if not hits:
        from app.errors import BadInput

        raise BadInput("no rubric for this question: give a reference answer with --reference, or pick a bank question id")
    # Neither a reference nor a matching question: grade against the closest bank material, and say so.
    from app.embeddings import get_embedder

    candidates = [p for h in hits for p in h.question.rubric]
    vecs = get_embedder().encode([question] + [p.text for p in candidates])
    order = sorted(range(len(candidates)), key=lambda i: -float(vecs[0] @ vecs[i + 1]))[:RETRIEVED_POINTS]
    points = [candidates[i].model_copy(update={"id": f"{candidates[i].id}-{k}"}) for k, i in enumerate(order)]
    related = ", ".join(h.question.id for h in hits)
    return ResolvedRubric(question, points, RubricSource.RETRIEVED, None,
                          [f"not a bank question and no reference answer: graded against related bank material ({related}); "
                           "treat the score as indicative and add --reference for a firm grade"])
