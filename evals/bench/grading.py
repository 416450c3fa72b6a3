"""Benchmark: offline grading latency and batch throughput, and SemEval-2013 agreement beside its baseline.

    python -m evals.bench.grading           # writes evals/bench/results/grading.json

Targets (2-core machine): single answer p50 <= 150 ms after warm-up, batch >= 50 answers/s;
SemEval held-out ROC AUC (correct vs rest) aimed at >= 0.85, with plain MiniLM cosine measured beside it.
Answers are the bank's model answers and the eval ladders' written answers (realistic interview
length); each is graded once per phase with the embedding cache cleared, so no answer is free.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import app  # noqa: F401 - offline environment defaults
from evals.bench import write_results
from app.config import get_settings
from app.embeddings import get_embedder
from app.grading import Grader
from app.runtime import get_bank
from evals.grading import ladders as ladder_data
from evals.grading.run import semeval_agreement



def _answers() -> list[dict[str, str]]:
    bank = get_bank(get_settings())
    items = [{"question": q.id, "answer": a.text} for q in bank.questions for a in q.model_answers]
    for ladder in ladder_data.load(bank):
        items += [{"question": ladder.question.id, "answer": a.text} for a in ladder.answers.values()]
    return items


def main() -> dict[str, object]:
    grader = Grader()
    items = _answers()
    grader.grade(items[0]["question"], "warm up: bias is underfitting and variance is overfitting.")
    embedder = get_embedder()
    for q in get_bank(get_settings()).questions:  # rubric embeddings are cached in any real session
        grader.offline.embedder.encode([q.text] + [p.text for p in q.rubric])
    rubric_cache = dict(embedder._cache)

    latencies = []
    for item in items:
        card = grader.grade(item["question"], item["answer"])
        latencies.append(card.latency_ms)
    embedder._cache.clear()
    embedder._cache.update(rubric_cache)
    started = time.perf_counter()
    n = sum(1 for _ in grader.grade_many(items))
    batch_s = time.perf_counter() - started

    # Short answers (SemEval: a sentence or two, graded against a reference answer given with each item).
    from evals.semeval import load as load_semeval

    short = [{"question": it.question, "answer": it.answer, "reference": it.references[0]} for it in load_semeval()[::9][:1000]]
    embedder._cache.clear()
    embedder._cache.update(rubric_cache)
    started = time.perf_counter()
    n_short = sum(1 for _ in grader.grade_many(short))
    short_s = time.perf_counter() - started

    semeval = semeval_agreement(None, None)
    words = [len(i["answer"].split()) for i in items]
    result = {
        "answers": len(items),
        "answer_words_median": statistics.median(words),
        "single_latency_ms": {"p50": round(statistics.median(latencies), 1), "p95": round(sorted(latencies)[int(0.95 * (len(latencies) - 1))], 1)},
        "batch_answers_per_s": round(n / batch_s, 1),
        "batch_short_answers": n_short,
        "batch_short_answers_per_s": round(n_short / short_s, 1),
        "semeval": semeval,
        "targets": {"single_p50_ms": 150, "batch_answers_per_s": 50, "semeval_auc": 0.85},
    }
    return write_results("grading", result)


if __name__ == "__main__":
    main()
