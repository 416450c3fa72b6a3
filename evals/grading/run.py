"""Grading-consistency eval: ordering, repeatability, invariance, robustness, human agreement, verdict accuracy."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from itertools import combinations
from typing import Any

import numpy as np

from app.grading import Grader, Verdict
from app.grading.models import Scorecard
from evals import thresholds as T
from evals.grading.ladders import Ladder
from evals.retrieval.run import check

Progress = Callable[[int, int], None]


def held_out_graders(grader: Grader) -> dict[str, Grader]:
    """For the offline engine: a grader per ladder question whose verdict thresholds never saw that question.

    The shipped thresholds were fitted on all ladders (evals/grading/calibrate.py), so grading a ladder with
    them would measure the fit, not the grader; each calibration fold's parameters grade its own questions.
    """
    from app.grading.offline import OfflineEngine, OfflineParams
    from evals.grading.calibrate import PARAMS_PATH

    out: dict[str, Grader] = {}
    for fold in json.loads(PARAMS_PATH.read_text()).get("ladder_folds", []):
        fold_grader = Grader(grader.settings, grader._bank)
        fold_grader._offline = OfflineEngine(grader.offline.embedder, OfflineParams.from_dict(fold))
        out.update({qid: fold_grader for qid in fold["test_questions"]})
    return out


def _grade_all(grader: Grader, ladders: list[Ladder], engine: str, repeats: int, progress: Progress | None) -> dict[tuple[str, str], list[Scorecard]]:
    cards: dict[tuple[str, str], list[Scorecard]] = {}
    total = sum(len(l.answers) for l in ladders) * repeats
    done = 0
    per_question = held_out_graders(grader) if engine == "offline" else {}
    for ladder in ladders:
        use = per_question.get(ladder.question.id, grader)
        for kind, answer in ladder.answers.items():
            runs = []
            for _ in range(repeats):
                runs.append(use.grade(ladder.question.id, answer.text, engine=engine))
                done += 1
                if progress:
                    progress(done, total)
            cards[(ladder.question.id, kind)] = runs
    return cards


def ordering(ladders: list[Ladder], score: Callable[[str, str], float]) -> dict[str, float]:
    """Share of ladder pairs at different levels in the right order (ties count half), and Spearman."""
    from scipy.stats import spearmanr

    right, pairs, levels, scores, per_ladder = 0.0, 0, [], [], []
    for ladder in ladders:
        rung = [(a.level, score(ladder.question.id, k)) for k, a in ladder.answers.items() if a.level is not None]
        for (la, sa), (lb, sb) in combinations(rung, 2):
            if la == lb:
                continue
            pairs += 1
            hi, lo = (sa, sb) if la > lb else (sb, sa)
            right += 1.0 if hi > lo else 0.5 if hi == lo else 0.0
        levels += [r[0] for r in rung]
        scores += [r[1] for r in rung]
        rho = spearmanr([r[0] for r in rung], [r[1] for r in rung]).statistic
        per_ladder.append(_finite(float(rho)))
    return {
        "pairwise_ordering": round(right / max(pairs, 1), 4),
        "pairs": pairs,
        "spearman_pooled": round(_finite(float(spearmanr(levels, scores).statistic)), 4),
        "spearman_mean_per_ladder": round(statistics.mean(per_ladder), 4),
    }


def _finite(value: float) -> float:
    """Spearman is undefined when every score ties; report that as no correlation (0), not NaN."""
    return 0.0 if np.isnan(value) else value


def verdict_accuracy(ladders: list[Ladder], card: Callable[[str, str], Scorecard]) -> dict[str, float]:
    """Per-rubric-point agreement with the known coverage of annotated answers."""
    exact = credited = total = 0
    contra_no_credit = contra_total = 0
    for ladder in ladders:
        for kind, answer in ladder.answers.items():
            if not answer.known:
                continue
            for v in card(ladder.question.id, kind).verdicts:
                truth = v.point_id in answer.covers
                exact += (v.verdict is Verdict.COVERED) == truth
                credited += (v.verdict in (Verdict.COVERED, Verdict.PARTIAL)) == truth
                total += 1
                if v.point_id in answer.contradicts:
                    contra_total += 1
                    contra_no_credit += v.credit == 0
    return {
        "covered_accuracy": round(exact / max(total, 1), 4),
        "credited_accuracy": round(credited / max(total, 1), 4),
        "points": total,
        "contradicted_points_without_credit": round(contra_no_credit / max(contra_total, 1), 4),
    }


def semeval_agreement(sample: int | None, progress: Progress | None) -> dict[str, Any]:
    """Offline engine on SemEval-2013 with each fold's parameters applied only to that fold's held-out questions."""
    from app.grading.offline import OfflineEngine, OfflineParams, load_params
    from evals.grading.calibrate import PARAMS_PATH, auc, item_features, scores_with
    from evals.semeval import ATTRIBUTION, load

    items = load()
    raw = json.loads(PARAMS_PATH.read_text())
    fold_of = {q: k for k, f in enumerate(raw["folds"]) for q in f["test_questions"]}
    if sample:
        step = max(1, len(items) // sample)
        items = items[::step]
    engine = OfflineEngine(params=load_params())
    xs, baseline = [], []
    for n, it in enumerate(items, 1):
        x, b = item_features(engine, it)
        xs.append(x)
        baseline.append(b)
        if progress:
            progress(n, len(items))
    x = np.stack(xs)
    scores = np.zeros(len(items))
    folds = np.array([fold_of[it.question_id] for it in items])
    for k, params in enumerate(raw["folds"]):
        m = folds == k
        if m.any():
            scores[m] = scores_with(params, x[m])
    labels = np.array([it.label for it in items])
    correct = labels == "correct"
    verdict = np.where(scores >= 5 * 0.75, "correct", "incorrect")
    _ = OfflineParams  # fold params are plain dicts; scores_with builds them
    return {
        "data": ATTRIBUTION,
        "items": len(items),
        "auc_correct_vs_rest": round(auc(scores, correct), 4),
        "minilm_cosine_baseline_auc": round(auc(np.array(baseline), correct), 4),
        "covered_vs_correct_accuracy": round(float(((verdict == "correct") == correct).mean()), 4),
        "mean_score_by_label": {lab: round(float(scores[labels == lab].mean()), 3) for lab in ("correct", "contradictory", "incorrect")},
    }


def run(
    grader: Grader,
    ladders: list[Ladder],
    engine: str = "offline",
    *,
    repeats: int = 5,
    semeval_sample: int | None = 0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Every grading metric for one engine, with the threshold checks that apply to it."""
    cards = _grade_all(grader, ladders, engine, repeats, progress)

    def first(qid: str, kind: str) -> Scorecard:
        return cards[(qid, kind)][0]

    def score(qid: str, kind: str) -> float:
        return first(qid, kind).score

    qids = [l.question.id for l in ladders]
    held_out = set(held_out_graders(grader)) if engine == "offline" else set()
    spreads = [max(c.score for c in runs) - min(c.score for c in runs) for runs in cards.values()]
    identical = [len({c.score for c in runs}) == 1 for runs in cards.values()]
    paraphrase = [abs(score(q, "paraphrase") - score(q, "model")) for q in qids]
    formatting = [abs(score(q, "bullets") - score(q, "good")) for q in qids]
    speech = [score(q, "speech") - score(q, "paraphrase") for q in qids]
    injection = [score(q, "injection") - score(q, "partial") for q in qids]
    result: dict[str, Any] = {
        "engine": engine,
        "engines_used": sorted({c.engine for runs in cards.values() for c in runs}),
        "fallback_share": round(sum(c.engine.startswith("offline (fallback") for runs in cards.values() for c in runs)
                                / max(1, sum(len(runs) for runs in cards.values())), 4),
        "ladders": len(ladders),
        "ladders_held_out": sum(q in held_out for q in qids),
        "answers_graded": sum(len(v) for v in cards.values()),
        "tracks": sorted({l.question.track.value for l in ladders}),
        "ordering": ordering(ladders, score),
        "repeatability": {"repeats": repeats, "identical_share": round(sum(identical) / len(identical), 4), "max_spread": round(max(spreads), 2)},
        "invariance": {
            "paraphrase_mean_abs_change": round(statistics.mean(paraphrase), 3),
            "paraphrase_max_abs_change": round(max(paraphrase), 2),
            "bullets_vs_prose_mean_abs_change": round(statistics.mean(formatting), 3),
            "bullets_vs_prose_max_abs_change": round(max(formatting), 2),
            "speech_errors_mean_change": round(statistics.mean(speech), 3),
            # the signed mean lets gains cancel losses; the mean of the absolute change does not
            "speech_errors_mean_abs_change": round(statistics.mean(abs(d) for d in speech), 3),
        },
        "robustness": {
            "injection_max_change": round(max(injection), 2),
            "injection_mean_change": round(statistics.mean(injection), 3),
            "stuffing_beats_partial_share": round(sum(score(q, "stuffing") > score(q, "partial") for q in qids) / len(qids), 4),
            "padding_beats_partial_share": round(sum(score(q, "padding") > score(q, "partial") for q in qids) / len(qids), 4),
        },
        "mean_score_by_kind": {
            kind: round(statistics.mean(score(q, kind) for q in qids), 2)
            for kind in ("model", "paraphrase", "good", "bullets", "speech", "partial", "padding", "injection", "stuffing", "vague", "wrong", "off_topic")
        },
        "verdicts": verdict_accuracy(ladders, first),
        "latency_ms_p50": round(statistics.median(c.latency_ms for runs in cards.values() for c in runs), 1),
        "scores": {f"{q}/{k}": first(q, k).score for (q, k) in cards},
    }
    if semeval_sample is not None and engine == "offline":
        result["semeval"] = semeval_agreement(semeval_sample or None, None)
    offline = engine == "offline"
    result["checks"] = [
        check("pairwise ordering", result["ordering"]["pairwise_ordering"], ">=", T.OFFLINE_PAIRWISE_ORDERING if offline else T.LLM_PAIRWISE_ORDERING),
        check("repeatability (identical share)", result["repeatability"]["identical_share"], ">=",
              T.OFFLINE_REPEATABILITY_IDENTICAL if offline else T.LLM_REPEATABILITY_IDENTICAL),
        check("paraphrase mean change", result["invariance"]["paraphrase_mean_abs_change"], "<=",
              T.OFFLINE_PARAPHRASE_MAX_MEAN_CHANGE if offline else T.LLM_PARAPHRASE_MAX_MEAN_CHANGE),
        check("injection max change", result["robustness"]["injection_max_change"], "<=",
              T.OFFLINE_INJECTION_MAX_CHANGE if offline else T.LLM_INJECTION_MAX_CHANGE),
    ]
    if offline:
        result["checks"] += [
            check("bullets vs prose mean change", result["invariance"]["bullets_vs_prose_mean_abs_change"], "<=", T.OFFLINE_FORMATTING_MAX_MEAN_CHANGE),
            check("stuffing beats partial (share)", result["robustness"]["stuffing_beats_partial_share"], "<=", T.OFFLINE_STUFFING_BEATS_PARTIAL_SHARE),
            check("padding beats partial (share)", result["robustness"]["padding_beats_partial_share"], "<=", T.OFFLINE_PADDING_BEATS_PARTIAL_SHARE),
        ]
    return result
