"""Fit the offline engine's parameters, in two stages, each reported on held-out folds only.

    python -m evals.grading.calibrate            # writes app/grading/params.json and results/calibration.json

1. **How features map to P(correct)**: a multinomial logistic regression (correct / contradictory /
   incorrect) fitted on SemEval-2013's human-graded short answers, 5-fold cross-validation grouped by
   question. SemEval: CC-BY-SA 3.0, see evals/semeval.py.
2. **Where verdicts start**: the P(correct) cuts for "covered" and "partial", fitted on the rubric-point
   annotations of the answer ladders (interview-length answers, several points each, which SemEval's
   one-sentence answers cannot teach), 4-fold cross-validation grouped by question.

The shipped parameters (`final`) use all SemEval data for stage 1 and all ladders for stage 2; the
per-fold parameters are kept so `mockml eval` can grade every item with parameters that never saw it.
Nothing here runs at grading time.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import track

from app.bank import RubricPoint
from app.grading.features import FEATURES
from app.grading.offline import OfflineEngine, OfflineParams, fails_key_terms, verdict_from
from evals.semeval import ATTRIBUTION, LABELS, Item, load

PARAMS_PATH = Path(__file__).resolve().parents[2] / "app" / "grading" / "params.json"
RESULTS_PATH = Path(__file__).resolve().parent / "results" / "calibration.json"
SEMEVAL_FOLDS = 5
LADDER_FOLDS = 4
C = 1.0  # inverse L2 strength of the logistic regression; the default, not tuned on held-out folds
CONTRADICTED = 0.4  # P(contradictory) must be the largest class and at least this
PARTIAL_RECALL = 0.9  # the partial cut gives at least partial credit to 90% of truly covered points
THRESHOLD_WINDOW = 5  # cuts 0.01 apart: the covered cut is chosen on accuracy averaged over +-0.02
NEUTRAL = {"covered": 0.5, "partial": 0.25, "contradicted": CONTRADICTED}


def _folds(keys: list[str], n: int, seed: int) -> list[list[str]]:
    """Keys dealt round-robin into n folds after a fixed shuffle (deterministic)."""
    keys = sorted(set(keys))
    np.random.default_rng(seed).shuffle(keys)
    return [sorted(keys[k::n]) for k in range(n)]


def folds_by_question(items: list[Item], n: int = SEMEVAL_FOLDS) -> list[list[str]]:
    return _folds([i.question_id for i in items], n, 20130614)


def item_features(engine: OfflineEngine, item: Item) -> tuple[np.ndarray, float]:
    """Features against the best-matching reference, and the plain cosine baseline (answer vs best reference)."""
    refs = [RubricPoint.model_construct(id=f"r{k}", text=r, weight=1.0, key_terms=()) for k, r in enumerate(item.references)]
    _, feats = engine.features(item.question, refs, item.answer or " ")
    best = max(range(len(feats)), key=lambda k: feats[k].values[0])
    vectors = engine.embedder.encode([item.answer or " ", *item.references])
    baseline = float((vectors[1:] @ vectors[0]).max())  # plain MiniLM cosine of the answer to its best reference
    return feats[best].values, baseline


def fit_coefficients(x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Stage 1: multinomial logistic regression on standardised features."""
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    model = LogisticRegression(C=C, max_iter=2000).fit((x - mean) / scale, y)
    order = [list(model.classes_).index(k) for k in range(3)]
    return {"mean": mean.tolist(), "scale": scale.tolist(), "coef": model.coef_[order].tolist(),
            "intercept": model.intercept_[order].tolist()}


def fit_thresholds(p_correct: np.ndarray, covered: np.ndarray) -> dict[str, float]:
    """Stage 2: the covered cut that best separates covered from not-covered points, and the partial cut."""
    cuts = np.round(np.linspace(0.05, 0.95, 91), 3)
    accuracy = np.array([float(((p_correct >= c) == covered).mean()) for c in cuts])
    # The accuracy curve is flat near its top, and its raw argmax jumped between distant cuts (0.43 <-> 0.51 on one
    # ladder fold) when a feature change moved the coefficients in the fourth decimal. The centre of the best
    # THRESHOLD_WINDOW-cut stretch is stable to such changes and gives up nothing measurable on held-out folds.
    smoothed = np.convolve(accuracy, np.ones(THRESHOLD_WINDOW) / THRESHOLD_WINDOW, mode="same")
    cover_cut = float(cuts[int(np.argmax(smoothed))])
    partial_cut = float(np.quantile(p_correct[covered], 1 - PARTIAL_RECALL)) if covered.any() else cover_cut / 2
    return {"covered": round(cover_cut, 3), "partial": round(min(partial_cut, cover_cut - 0.05), 3), "contradicted": CONTRADICTED}


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC with ties counted as half (Mann-Whitney U)."""
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def scores_with(params: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """The 0–5 score the grader would give each single-point item."""
    p = OfflineParams.from_dict(params)
    probs = p.probabilities(x)
    return np.array([5 * verdict_from(float(a), float(b), p)[1] for a, b, _ in probs])


def ladder_points(engine: OfflineEngine) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(question id, features, covered?) for every rubric point of every annotated ladder answer."""
    from app.runtime import get_bank
    from evals.grading.ladders import load as load_ladders

    qids, xs, ys = [], [], []
    for ladder in track(load_ladders(get_bank()), description="ladders"):
        q = ladder.question
        for answer in ladder.answers.values():
            if not answer.known:
                continue
            _, feats = engine.features(q.text, list(q.rubric), answer.text)
            for point, f in zip(q.rubric, feats, strict=True):
                values = f.values.copy()
                if fails_key_terms(point, values):
                    values[:] = np.nan  # the key-term gate makes this point missing whatever P says
                qids.append(q.id)
                xs.append(values)
                ys.append(point.id in answer.covers)
    return qids, np.stack(xs), np.array(ys)


def _p_correct(coefs: dict[str, Any], x: np.ndarray) -> np.ndarray:
    p = OfflineParams.from_dict({**coefs, "thresholds": NEUTRAL}).probabilities(np.nan_to_num(x))[:, 0]
    return np.where(np.isnan(x).any(axis=1), 0.0, p)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=PARAMS_PATH)
    parser.add_argument("--results", type=Path, default=RESULTS_PATH)
    parser.add_argument("--cache", type=Path, help="reuse SemEval features saved here by an earlier run (same code)")
    args = parser.parse_args()

    started = time.perf_counter()
    engine = OfflineEngine(params=OfflineParams.from_dict(
        {"mean": [0] * len(FEATURES), "scale": [1] * len(FEATURES), "coef": [[0] * len(FEATURES)] * 3,
         "intercept": [0, 0, 0], "thresholds": NEUTRAL}))

    # Stage 1: SemEval.
    items = load()
    if args.cache and args.cache.is_file():
        cached = np.load(args.cache)
        x, baseline = cached["x"], cached["baseline"]
    else:
        rows = [item_features(engine, it) for it in track(items, description="SemEval")]
        x, baseline = np.stack([r[0] for r in rows]), np.array([r[1] for r in rows])
        if args.cache:
            np.savez(args.cache, x=x, baseline=baseline)
    y = np.array([LABELS.index(it.label) for it in items])
    semeval_folds = folds_by_question(items)
    fold_of = {q: k for k, qs in enumerate(semeval_folds) for q in qs}
    item_fold = np.array([fold_of[it.question_id] for it in items])
    semeval_coefs = [fit_coefficients(x[item_fold != k], y[item_fold != k]) for k in range(SEMEVAL_FOLDS)]
    final_coefs = fit_coefficients(x, y)

    # Stage 2: ladders, with the final SemEval coefficients (SemEval never saw a ladder).
    qids, lx, ly = ladder_points(engine)
    lp = _p_correct(final_coefs, lx)
    ladder_folds = _folds(qids, LADDER_FOLDS, 20261122)
    point_fold = np.array([next(k for k, f in enumerate(ladder_folds) if q in f) for q in qids])
    ladder_thresholds = [fit_thresholds(lp[point_fold != k], ly[point_fold != k]) for k in range(LADDER_FOLDS)]
    final_thresholds = fit_thresholds(lp, ly)

    # Held-out numbers.
    held_out = np.zeros(len(items))
    for k in range(SEMEVAL_FOLDS):
        m = item_fold == k
        held_out[m] = scores_with({**semeval_coefs[k], "thresholds": final_thresholds}, x[m])
    covered_pred = np.zeros(len(qids), dtype=bool)
    for k in range(LADDER_FOLDS):
        m = point_fold == k
        covered_pred[m] = lp[m] >= ladder_thresholds[k]["covered"]
    correct = y == 0
    report: dict[str, Any] = {
        "semeval": {
            "data": ATTRIBUTION, "items": len(items), "questions": len(fold_of),
            "protocol": f"{SEMEVAL_FOLDS}-fold cross-validation grouped by question; held-out folds only",
            "auc_correct_vs_rest": {"grader_score": round(auc(held_out, correct), 4),
                                    "minilm_cosine_baseline": round(auc(baseline, correct), 4)},
            "by_corpus": {
                c: {"grader_score": round(auc(held_out[m], correct[m]), 4), "minilm_cosine_baseline": round(auc(baseline[m], correct[m]), 4)}
                for c in sorted({it.corpus for it in items})
                for m in [np.array([it.corpus == c for it in items])]
            },
        },
        "ladders": {
            "points": len(qids), "questions": len(set(qids)),
            "protocol": f"{LADDER_FOLDS}-fold cross-validation grouped by question; held-out folds only",
            "covered_accuracy": round(float((covered_pred == ly).mean()), 4),
        },
        "thresholds_final": final_thresholds,
        "seconds": round(time.perf_counter() - started, 1),
    }
    params = {
        "features": list(FEATURES),
        "data": ATTRIBUTION,
        "final": {**final_coefs, "thresholds": final_thresholds},
        "folds": [{"test_questions": semeval_folds[k], **semeval_coefs[k], "thresholds": final_thresholds} for k in range(SEMEVAL_FOLDS)],
        "ladder_folds": [{"test_questions": ladder_folds[k], **final_coefs, "thresholds": ladder_thresholds[k]} for k in range(LADDER_FOLDS)],
    }
    args.params.write_text(json.dumps(params, indent=1) + "\n")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
