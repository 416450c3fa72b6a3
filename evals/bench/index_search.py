"""Benchmark: full index build, no-change re-index, and search latency over the retrieval eval queries.

    python -m evals.bench.index_search      # writes evals/bench/results/index_search.json

Targets (2-core machine): full build <= 20 s excluding model load, no-change re-index <= 2 s,
hybrid search p50 <= 30 ms. Medians over repeated runs; the model is loaded before timing starts.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import app  # noqa: F401 - offline environment defaults
from evals.bench import write_results
from app.config import Settings
from app.embeddings import get_embedder
from app.index import Index, Retriever
from app.runtime import get_bank
from evals.retrieval.run import load_queries



def main(builds: int = 3) -> dict[str, object]:
    started = time.perf_counter()
    get_embedder().encode(["warm up"])  # model load is excluded from every timing
    model_load_s = time.perf_counter() - started
    full, incremental = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(builds):
            settings = Settings(data_dir=Path(tmp) / f"run{n}")
            bank = get_bank(settings)
            index = Index(settings)
            get_embedder()._cache.clear()  # a cold build embeds everything for real
            t = time.perf_counter()
            stats = index.sync(bank)
            full.append(time.perf_counter() - t)
            t = time.perf_counter()
            again = index.sync(bank)
            incremental.append(time.perf_counter() - t)
            assert again.added == again.updated == again.removed == 0
        retriever = Retriever(bank, index)
        queries = [q["query"] for q in load_queries()]
        latencies: dict[str, list[float]] = {}
        for mode in ("hybrid", "dense", "bm25"):
            retriever.search(queries[0], 5, mode=mode)  # type: ignore[arg-type]
            get_embedder()._cache.clear()  # each query pays for its own embedding
            times = []
            for q in queries:
                t = time.perf_counter()
                retriever.search(q, 5, mode=mode)  # type: ignore[arg-type]
                times.append((time.perf_counter() - t) * 1000)
            latencies[mode] = times
    result = {
        "questions": len(bank.questions),
        "documents": stats.documents,
        "model_load_s": round(model_load_s, 2),
        "full_build_s_median": round(statistics.median(full), 2),
        "full_build_s_runs": [round(x, 2) for x in full],
        "noop_reindex_s_median": round(statistics.median(incremental), 3),
        "search_queries": len(queries),
        "search_ms": {
            mode: {"p50": round(statistics.median(t), 2), "p95": round(sorted(t)[int(0.95 * (len(t) - 1))], 2)}
            for mode, t in latencies.items()
        },
        "targets": {"full_build_s": 20, "noop_reindex_s": 2, "hybrid_search_p50_ms": 30},
    }
    return write_results("index_search", result)


if __name__ == "__main__":
    main()
