"""The offline engine: per-point verdicts from MiniLM similarity, key terms and contradiction cues.

A multinomial logistic model over `features.FEATURES` gives P(correct), P(contradictory), P(incorrect)
for each (rubric point, answer) pair. Its coefficients and the verdict thresholds were fitted on
SemEval-2013 (see `evals/grading/calibrate.py`) and are read from `params.json`; nothing is fitted at
run time, so the same input always gets the same verdicts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from typing import Any

import numpy as np

from app.bank import RubricPoint
from app.embeddings import Embedder, get_embedder
from app.grading.features import FEATURES, AnswerUnits, PointFeatures, point_features, term_groups
from app.grading.guards import strip_instructions
from app.grading.models import CriterionVerdict, Verdict
from app.text import clauses, content_stems, sentences

MAX_EVIDENCE_CHARS = 320
# A sentence whose best cosine to the question and every rubric point is below this is filler. MiniLM puts
# unrelated sentences at 0.0-0.2 and on-topic ones at 0.35 and above.
FILLER_SIM = 0.25
# A point is contradicted when a clause of its best sentence reads as one of the point's listed misconceptions: at
# least MISCONCEPTION_SIM to it (plainly about the same claim) and nearer to it than to the point by more than
# MISCONCEPTION_MARGIN; and the sentence uses MISCONCEPTION_WORDS more of the misconception's own words than of the
# point's. MiniLM cannot read a denial ("does not mean a 3% chance the null is true"); the word condition keeps
# correct answers safe. On the ladders' written answers (held-out folds) contradicted verdicts go from 1 to 19 of the
# 133 truly contradicted points and from 6 to 8 of the 613 correctly covered ones, ordering 0.934 -> 0.9513; one of
# the bank's 173 model answers is flagged. Whole sentences instead of clauses: 16 and 10, ordering 0.947. Without the
# word condition ordering reached 0.951, but 7 of 40 typed and spoken model answers were told they stated a
# misconception (`python -m evals.grading.misconception_rule`).
MISCONCEPTION_SIM = 0.5
MISCONCEPTION_MARGIN = 0.1
MISCONCEPTION_WORDS = 2
_TERM_RECALL = FEATURES.index("term_recall")


def fails_key_terms(point: RubricPoint, values: np.ndarray) -> bool:
    """True when a point has key terms and its best sentence names none of them: no credit, whatever P says.

    Key terms are the words an answer cannot make the point without (knowledge/README.md).
    """
    return bool(point.key_terms) and values[_TERM_RECALL] == 0


@dataclass(frozen=True)
class OfflineParams:
    """Fitted parameters: feature standardisation, class weights, and verdict thresholds."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray  # (3, n_features): rows = correct, contradictory, incorrect
    intercept: np.ndarray
    covered: float  # P(correct) at or above this is "covered"
    partial: float  # P(correct) at or above this (and below `covered`) is "partial"
    contradicted: float  # P(contradictory) at or above this, and above P(correct), is "contradicted"

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> OfflineParams:
        return cls(
            mean=np.array(raw["mean"]),
            scale=np.array(raw["scale"]),
            coef=np.array(raw["coef"]),
            intercept=np.array(raw["intercept"]),
            covered=float(raw["thresholds"]["covered"]),
            partial=float(raw["thresholds"]["partial"]),
            contradicted=float(raw["thresholds"]["contradicted"]),
        )

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities (correct, contradictory, incorrect) for feature rows x."""
        z = ((x - self.mean) / self.scale) @ self.coef.T + self.intercept
        z -= z.max(axis=-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=-1, keepdims=True)


@lru_cache(maxsize=1)
def load_params() -> OfflineParams:
    """The shipped parameters (fitted on all SemEval folds)."""
    raw = json.loads(files("app.grading").joinpath("params.json").read_text(encoding="utf-8"))
    return OfflineParams.from_dict(raw["final"])


def verdict_from(p_correct: float, p_contra: float, params: OfflineParams) -> tuple[Verdict, float]:
    """Verdict and credit from the class probabilities; credit rises monotonically with P(correct)."""
    if p_contra >= params.contradicted and p_contra > p_correct:
        return Verdict.CONTRADICTED, 0.0
    if p_correct >= params.covered:
        return Verdict.COVERED, round(0.75 + 0.25 * (p_correct - params.covered) / max(1e-9, 1 - params.covered), 3)
    if p_correct >= params.partial:
        return Verdict.PARTIAL, round(0.25 + 0.5 * (p_correct - params.partial) / max(1e-9, params.covered - params.partial), 3)
    return Verdict.MISSING, 0.0


def _evidence(answer: str, span: tuple[int, int]) -> str:
    """A verbatim substring of the answer, cut at a word boundary when long."""
    a, b = span
    text = answer[a:b]
    if len(text) <= MAX_EVIDENCE_CHARS:
        return text
    cut = text.rfind(" ", 0, MAX_EVIDENCE_CHARS)
    return text[: cut if cut > 40 else MAX_EVIDENCE_CHARS]


class OfflineEngine:
    """Deterministic rubric grader that needs no LLM."""

    name = "offline"

    def __init__(self, embedder: Embedder | None = None, params: OfflineParams | None = None) -> None:
        self.embedder = embedder or get_embedder()
        self.params = params or load_params()

    def features(
        self, question: str, rubric: list[RubricPoint], answer: str, pairs: bool = False, spoken: bool = False
    ) -> tuple[AnswerUnits, list[PointFeatures]]:
        """Feature vectors for every rubric point against the answer (`pairs`: adjacent sentences joined too;
        `spoken`: the answer is a transcript)."""
        # Sentences addressed to the grader are removed before anything is measured, so an answer with
        # them gets exactly the features (and score) of the same answer without them.
        units = AnswerUnits.build(answer, strip_instructions(answer, sentences(answer)), pairs=pairs, spoken=spoken)
        question_stems = set(content_stems(question))
        # No credit for text that only repeats the question, nor for a bare list of terms (keyword stuffing).
        usable = [bool(stems - question_stems) and not units.keyword_list(i) for i, stems in enumerate(units.unit_stems)]
        vectors = self.embedder.encode([question] + [p.text for p in rubric] + units.unit_texts)
        question_vec, point_vecs, unit_vecs = vectors[0], vectors[1 : len(rubric) + 1], vectors[len(rubric) + 1 :]
        # Filler ("great question, communication is key") relates to neither the question nor any point;
        # it earns nothing alone, and a pair that contains it is not allowed to borrow its neighbour's credit.
        relevance = np.max(unit_vecs @ np.vstack([question_vec[None, :], point_vecs]).T, axis=1) if len(unit_vecs) else np.zeros(0)
        filler = {parts[0] for parts, rel in zip(units.unit_parts, relevance, strict=True) if len(parts) == 1 and rel < FILLER_SIM}
        usable = [ok and not filler.intersection(parts) for ok, parts in zip(usable, units.unit_parts, strict=True)]
        feats = [
            point_features(
                point_vecs[i], p.text, term_groups(p.term_alternatives(), p.text, question), question_stems,
                units, unit_vecs, question_vec, usable,
            )
            for i, p in enumerate(rubric)
        ]
        return units, feats

    def prefetch(self, answers: list[str]) -> None:
        """Embed the sentences of many answers in one batch, so grading them afterwards hits the cache."""
        texts: list[str] = []
        for answer in answers:
            if len(answer) > 50_000:
                continue  # will be refused by validation anyway
            units = AnswerUnits.build(answer, strip_instructions(answer, sentences(answer)))
            texts += units.unit_texts
        if texts:
            # Small length-sorted batches: measured faster than 64 or 128 on 2 CPU cores (less padding).
            self.embedder.encode(sorted(set(texts), key=len), batch_size=16)

    def misconception(self, point: RubricPoint, sentence: str) -> str | None:
        """The point's listed misconception this sentence reads as, if any (see MISCONCEPTION_MARGIN)."""
        # Cosine cannot see a denial or a contrast, so the whole sentence must also use more of the misconception's own
        # words (those the point does not use) than of the point's own words. Checked first: it is cheap, and most
        # sentences fail it for every misconception, which spares embedding their clauses.
        said, right = set(content_stems(sentence)), set(content_stems(point.text))
        word_lean: list[int] = []
        for wrong in point.misconceptions:
            own = set(content_stems(wrong))
            word_lean.append(len(said & (own - right)) - len(said & (right - own)))
        if max(word_lean, default=0) < MISCONCEPTION_WORDS:
            return None
        pieces = clauses(sentence)
        vectors = self.embedder.encode([point.text, *point.misconceptions, *pieces])
        point_vec, wrong_vecs, piece_vecs = vectors[0], vectors[1 : len(point.misconceptions) + 1], vectors[len(point.misconceptions) + 1 :]
        # The clause that leans furthest from the point towards a misconception: a wrong claim is often one clause
        # of a sentence whose other clause restates the point correctly.
        to_wrong = piece_vecs @ wrong_vecs.T  # (clauses, misconceptions)
        lean = to_wrong.max(axis=1) - piece_vecs @ point_vec
        c = int(np.argmax(lean))
        k = int(np.argmax(to_wrong[c]))
        if to_wrong[c, k] < MISCONCEPTION_SIM or lean[c] <= MISCONCEPTION_MARGIN or word_lean[k] < MISCONCEPTION_WORDS:
            return None
        return point.misconceptions[k]

    def judge(self, question: str, rubric: list[RubricPoint], answer: str, spoken: bool = False) -> list[CriterionVerdict]:
        """One verdict per rubric point, with the best-supporting sentence of the answer as evidence.

        `spoken`: the answer is a speech transcript, whose full stops are the recogniser's guesses at pauses. It is
        read twice, sentence by sentence and with adjacent sentences also joined (features.AnswerUnits), and each
        point keeps the better verdict: joining mends a claim split by a heard full stop, but can also pull in a
        neighbour's negation, so it must not cost a point the sentence reading gives. A misconception found in a
        sentence stands. Measured over the bank's 143 spoken model answers (evals/bench/speech.py --whole-bank):
        within 0.5 of typed 115 (sentences) -> 124 (joined only) -> 130 (the better of the two) -> 133 (with the reading
        fixes of README "How good is the grading?", among them features.spoken_prose for a transcript's commas) -> 135
        (evidence that names a key term when any sentence does, and notation's "not" no denial) -> 137 (a misheard
        word break repaired in app.speech_terms, and a concession, "necessary but not enough", no denial) -> 138 (a
        typographic apostrophe read as one: the typed testing-ml answer's "don’t" now negates as the transcript's does).
        """
        verdicts = self._judge(question, rubric, answer, pairs=False, spoken=spoken)
        if not spoken:
            return verdicts
        joined = self._judge(question, rubric, answer, pairs=True, spoken=True)
        return [s if s.verdict is Verdict.CONTRADICTED or s.credit >= j.credit else j for s, j in zip(verdicts, joined, strict=True)]

    def _judge(self, question: str, rubric: list[RubricPoint], answer: str, pairs: bool, spoken: bool) -> list[CriterionVerdict]:
        units, feats = self.features(question, rubric, answer, pairs, spoken)
        probs = self.params.probabilities(np.stack([f.values for f in feats])) if feats else np.zeros((0, 3))
        out: list[CriterionVerdict] = []
        for point, f, (p_correct, p_contra, _) in zip(rubric, feats, probs, strict=True):
            verdict, credit = verdict_from(float(p_correct), float(p_contra), self.params)
            note = None
            if fails_key_terms(point, f.values) and verdict in (Verdict.COVERED, Verdict.PARTIAL):
                verdict, credit, note = Verdict.MISSING, 0.0, "none of this point's key terms were used"
            elif verdict in (Verdict.COVERED, Verdict.PARTIAL) and f.best_unit >= 0:
                wrong = self.misconception(point, units.unit_texts[f.best_unit])
                if wrong:
                    verdict, credit = Verdict.CONTRADICTED, 0.0
                    note = f"this reads closer to a common misconception than to the point: {wrong}"
            evidence = _evidence(answer, units.unit_spans[f.best_unit]) if f.best_unit >= 0 and verdict is not Verdict.MISSING else None
            out.append(
                CriterionVerdict(
                    point_id=point.id, point=point.text, weight=point.weight, verdict=verdict, credit=credit,
                    evidence=evidence, confidence=round(float(max(p_correct, p_contra, 1 - p_correct)), 3), note=note,
                )
            )
        return out
