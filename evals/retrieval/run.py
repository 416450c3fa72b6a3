"""Retrieval eval: candidate-phrased queries against the bank, hybrid vs dense-only vs BM25-only in one run."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.index import Retriever
from evals import thresholds as T

QUERIES = Path(__file__).resolve().parent / "queries.jsonl"
MODES = ("hybrid", "dense", "bm25")


def load_queries(path: Path = QUERIES) -> list[dict[str, str]]:
    """The eval queries: {"query", "expected"} per line."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def run(retriever: Retriever, queries: list[dict[str, str]], progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Recall@1, Recall@5 and MRR (over the top 10) per mode, with the misses of the hybrid mode."""
    results: dict[str, Any] = {"queries": len(queries), "modes": {}, "checks": []}
    missing = sorted({q["expected"] for q in queries} - set(retriever.bank.by_id))
    if missing:
        raise ValueError(f"queries expect ids that are not in the bank: {', '.join(missing)}")
    total, done = len(queries) * len(MODES), 0
    for mode in MODES:
        ranks: list[int | None] = []
        latencies: list[float] = []
        misses = []
        for q in queries:
            started = time.perf_counter()
            hits = retriever.search(q["query"], 10, mode=mode)  # type: ignore[arg-type]
            latencies.append((time.perf_counter() - started) * 1000)
            ids = [h.question.id for h in hits]
            rank = ids.index(q["expected"]) + 1 if q["expected"] in ids else None
            ranks.append(rank)
            if rank != 1:
                misses.append({"query": q["query"], "expected": q["expected"], "got": ids[:3], "rank": rank})
            done += 1
            if progress:
                progress(done, total)
        n = len(ranks)
        results["modes"][mode] = {
            "recall_at_1": round(sum(r == 1 for r in ranks) / n, 4),
            "recall_at_5": round(sum(r is not None and r <= 5 for r in ranks) / n, 4),
            "mrr": round(sum(1 / r for r in ranks if r) / n, 4),
            "latency_ms_p50": round(statistics.median(latencies), 2),
        }
        if mode == "hybrid":
            results["hybrid_misses"] = misses
    hybrid = results["modes"]["hybrid"]
    results["checks"] = [
        check("hybrid Recall@1", hybrid["recall_at_1"], ">=", T.RETRIEVAL_HYBRID_RECALL_AT_1),
        check("hybrid Recall@5", hybrid["recall_at_5"], ">=", T.RETRIEVAL_HYBRID_RECALL_AT_5),
    ]
    return results


def check(name: str, value: float, op: str, threshold: float) -> dict[str, Any]:
    """One gated number."""
    passed = value >= threshold if op == ">=" else value <= threshold
    return {"name": name, "value": value, "op": op, "threshold": threshold, "passed": bool(passed)}
