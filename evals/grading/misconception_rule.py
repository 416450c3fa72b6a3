"""Experiment (not adopted): mark a rubric point contradicted when the answer states one of its misconceptions.

The rule: take the answer sentence the offline engine chose as the point's best evidence; if its MiniLM cosine
to one of the point's listed misconceptions is at least MIN_SIM and exceeds its cosine to the point by more
than --margin, the point is contradicted (no credit). This script grades every ladder with the rule patched
onto the offline engine (held-out calibration folds, as `mockml eval grading` does) and prints how many truly
contradicted and how many correctly covered points it flags, with the ordering and paraphrase metrics.

    python -m evals.grading.misconception_rule --margin 0.1

Measured on this bank (587 points with misconceptions): margin 0 flags 80 of 133 contradicted points and 74
of 613 covered ones (ordering 0.946, paraphrase change 0.65); margin 0.1 flags 45 and 25 (0.943, 0.52). The
false flags on correct answers are why the offline grader does not use the rule.
"""

from __future__ import annotations

import argparse
import statistics
from collections import Counter

from app.bank import RubricPoint
from app.grading import Grader, Verdict
from app.grading import offline
from app.grading.models import CriterionVerdict
from app.runtime import get_bank
from evals.grading.ladders import load
from evals.grading.run import held_out_graders, ordering

MIN_SIM = 0.5  # the sentence must plainly be about the same thing as the misconception
WRITTEN = ("model", "paraphrase", "good", "partial", "vague", "wrong", "off_topic")


def patch(margin: float) -> None:
    """Replace `OfflineEngine.judge` with a version that applies the misconception rule."""
    original = offline.OfflineEngine.judge

    def judge(self: offline.OfflineEngine, question: str, rubric: list[RubricPoint], answer: str) -> list[CriterionVerdict]:
        verdicts = original(self, question, rubric, answer)
        units, feats = self.features(question, rubric, answer)
        out = []
        for point, f, v in zip(rubric, feats, verdicts, strict=True):
            if point.misconceptions and f.best_unit >= 0:
                vecs = self.embedder.encode([point.text, *point.misconceptions, units.unit_texts[f.best_unit]])
                unit = vecs[-1]
                to_wrong = vecs[1:-1] @ unit
                if to_wrong.max() >= MIN_SIM and to_wrong.max() - float(vecs[0] @ unit) > margin:
                    evidence = offline._evidence(answer, units.unit_spans[f.best_unit])
                    v = v.model_copy(update={"verdict": Verdict.CONTRADICTED, "credit": 0.0, "evidence": evidence})
            out.append(v)
        return out

    offline.OfflineEngine.judge = judge  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--margin", type=float, default=0.0, help="how much nearer the misconception than the point")
    args = parser.parse_args()
    patch(args.margin)
    grader = Grader()
    ladders = load(get_bank())
    per_question = held_out_graders(grader)
    scores: dict[tuple[str, str], float] = {}
    flagged: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for ladder in ladders:
        use = per_question.get(ladder.question.id, grader)
        listed = {p.id for p in ladder.question.rubric if p.misconceptions}
        for kind, answer in ladder.answers.items():
            card = use.grade(ladder.question.id, answer.text, engine="offline")
            scores[(ladder.question.id, kind)] = card.score
            if kind not in WRITTEN:
                continue
            for v in card.verdicts:
                if v.point_id in listed:
                    truth = "contradicted" if v.point_id in answer.contradicts else "covered" if v.point_id in answer.covers else "neither"
                    total[truth] += 1
                    flagged[truth] += v.verdict is Verdict.CONTRADICTED
    qids = [l.question.id for l in ladders]
    print(f"margin {args.margin}: flagged " + ", ".join(f"{flagged[k]} of {total[k]} {k}" for k in ("contradicted", "covered", "neither")))
    print("pairwise ordering", ordering(ladders, lambda q, k: scores[(q, k)])["pairwise_ordering"])
    print("paraphrase mean change", round(statistics.mean(abs(scores[(q, "paraphrase")] - scores[(q, "model")]) for q in qids), 3))


if __name__ == "__main__":
    main()
