"""Fit the offline engine's parameters on SemEval-2013 with 5-fold cross-validation grouped by question.

    python -m evals.grading.calibrate            # writes app/grading/params.json and a results file

Each fold's model is fitted without that fold's questions, and every number reported is computed on
held-out folds only. The shipped parameters (`final`) are then fitted on all folds. Nothing here runs at
grading time. Data: SemEval-2013 Task 7 (CC-BY-SA 3.0), see evals/semeval.py.
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
from app.grading.offline import OfflineEngine, OfflineParams, verdict_from
from evals.semeval import ATTRIBUTION, LABELS, Item, load

PARAMS_PATH = Path(__file__).resolve().parents[2] / "app" / "grading" / "params.json"
RESULTS_PATH = Path(__file__).resolve().parent / "results" / "calibration.json"
N_FOLDS = 5
COVERED_PRECISION = 0.8
C = 1.0  # inverse L2 strength of the logistic regression; the default, not tuned on held-out folds


def folds_by_question(items: list[Item], n: int = N_FOLDS) -> list[list[str]]:
    """Questions dealt round-robin into n folds after a fixed shuffle (deterministic)."""
    questions = sorted({i.question_id for i in items})
    rng = np.random.default_rng(20130614)
    rng.shuffle(questions)
    return [sorted(questions[k::n]) for k in range(n)]


def item_features(engine: OfflineEngine, item: Item) -> tuple[np.ndarray, float]:
    """Features against the best-matching reference, and the plain cosine baseline (answer vs best reference)."""
    refs = [RubricPoint.model_construct(id=f"r{k}", text=r, weight=1.0, key_terms=()) for k, r in enumerate(item.references)]
    _, feats = engine.features(item.question, refs, item.answer or " ")
    best = max(range(len(feats)), key=lambda k: feats[k].values[0])
    baseline = max(f.values[1] for f in feats)
    return feats[best].values, float(baseline)


def fit(x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Multinomial logistic regression on standardised features, plus verdict thresholds from the training data."""
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    model = LogisticRegression(C=C, max_iter=2000)
    model.fit((x - mean) / scale, y)
    order = [list(model.classes_).index(k) for k in range(3)]
    raw = {"mean": mean.tolist(), "scale": scale.tolist(), "coef": model.coef_[order].tolist(),
           "intercept": model.intercept_[order].tolist()}
    probs = OfflineParams.from_dict({**raw, "thresholds": {"covered": 0.5, "partial": 0.25, "contradicted": 0.5}}).probabilities(x)
    # covered: the P(correct) cut that maximises F1 for "correct" on the training folds; partial: the cut
    # with 90% recall of correct answers, so that half-right answers still earn something.
    # covered: the lowest P(correct) cut at which 80% of "covered" verdicts are right (a covered verdict
    # should be trustworthy); partial: the cut that maximises F1 for "correct" (half credit for the
    # uncertain band); contradicted: P(contradictory) must be the largest class and at least this.
    is_correct = y == 0
    cuts = np.linspace(0.2, 0.9, 71)
    precision = [float((is_correct & (probs[:, 0] >= c)).sum()) / max(1, int((probs[:, 0] >= c).sum())) for c in cuts]
    covered = float(next((c for c, p in zip(cuts, precision) if p >= COVERED_PRECISION), cuts[-1]))
    f1 = [_f1(probs[:, 0] >= c, is_correct) for c in cuts]
    partial = min(float(cuts[int(np.argmax(f1))]), covered - 0.05)
    raw["thresholds"] = {"covered": round(covered, 3), "partial": round(partial, 3), "contradicted": 0.4}
    return raw


def _f1(pred: np.ndarray, truth: np.ndarray) -> float:
    tp = float((pred & truth).sum())
    return 2 * tp / max(1.0, float(pred.sum() + truth.sum()))


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=PARAMS_PATH)
    parser.add_argument("--results", type=Path, default=RESULTS_PATH)
    parser.add_argument("--cache", type=Path, help="reuse features saved here by an earlier run (same code)")
    args = parser.parse_args()

    started = time.perf_counter()
    items = load()
    engine = OfflineEngine(params=OfflineParams.from_dict(
        {"mean": [0] * len(FEATURES), "scale": [1] * len(FEATURES), "coef": [[0] * len(FEATURES)] * 3,
         "intercept": [0, 0, 0], "thresholds": {"covered": 0.5, "partial": 0.25, "contradicted": 0.5}}))
    if args.cache and args.cache.is_file():
        cached = np.load(args.cache)
        x, baseline = cached["x"], cached["baseline"]
    else:
        rows = [item_features(engine, it) for it in track(items, description="features")]
        x = np.stack([r[0] for r in rows])
        baseline = np.array([r[1] for r in rows])
        if args.cache:
            np.savez(args.cache, x=x, baseline=baseline)
    y = np.array([LABELS.index(it.label) for it in items])
    folds = folds_by_question(items)
    fold_of = {q: k for k, qs in enumerate(folds) for q in qs}
    item_fold = np.array([fold_of[it.question_id] for it in items])

    held_out = np.zeros(len(items))
    fold_params = []
    for k in range(N_FOLDS):
        train, test = item_fold != k, item_fold == k
        params = fit(x[train], y[train])
        fold_params.append({"test_questions": folds[k], **params})
        held_out[test] = scores_with(params, x[test])

    correct = y == 0
    corpora = sorted({it.corpus for it in items})
    report: dict[str, Any] = {
        "data": ATTRIBUTION,
        "items": len(items),
        "questions": len(fold_of),
        "protocol": f"{N_FOLDS}-fold cross-validation grouped by question; numbers on held-out folds only",
        "auc_correct_vs_rest": {"grader_score": round(auc(held_out, correct), 4), "minilm_cosine_baseline": round(auc(baseline, correct), 4)},
        "by_corpus": {
            c: {"grader_score": round(auc(held_out[m], correct[m]), 4), "minilm_cosine_baseline": round(auc(baseline[m], correct[m]), 4)}
            for c in corpora
            for m in [np.array([it.corpus == c for it in items])]
        },
        "thresholds_final": None,
        "seconds": round(time.perf_counter() - started, 1),
    }
    final = fit(x, y)
    report["thresholds_final"] = final["thresholds"]
    args.params.write_text(json.dumps({"features": list(FEATURES), "data": ATTRIBUTION, "final": final, "folds": fold_params}, indent=1) + "\n")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
