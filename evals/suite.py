"""`mockml eval`: run the suites, write `report.md` + `results.json` (+ a plot), compare with a previous run."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from app.config import Settings

SUITES = ("grading", "retrieval", "all")
Progress = Callable[[str, int, int], None]


def _model_name(engine: str, settings: Settings) -> str:
    """The model behind an LLM engine, for the report (`--engine local` is the embedded GGUF, not MOCKML_MODEL)."""
    if engine != "local":
        return settings.model
    from app.errors import MockmlError
    from app.local_llm import model_path

    try:
        return f"local ({model_path(settings).name})"
    except MockmlError:
        return "local (not set up)"


def run_suites(
    suite: str,
    engine: str,
    settings: Settings,
    *,
    repeats: int = 5,
    semeval_sample: int | None = 0,
    ladder_limit: int | None = None,
    grader: Any = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run the chosen suite(s) and return every number plus the threshold checks."""
    results: dict[str, Any] = {
        "run_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "engine": engine,
        "model": None if engine == "offline" else _model_name(engine, settings),
    }
    started = time.perf_counter()
    if suite in ("retrieval", "all"):
        from app.runtime import get_retriever
        from evals.retrieval.run import load_queries
        from evals.retrieval.run import run as run_retrieval

        results["retrieval"] = run_retrieval(get_retriever(settings), load_queries(),
                                             (lambda d, t: progress("retrieval", d, t)) if progress else None)
    if suite in ("grading", "all"):
        from app.grading import Grader
        from app.runtime import get_bank
        from evals.grading import ladders as ladder_data
        from evals.grading.run import run as run_grading

        ladders = ladder_data.load(get_bank(settings))[:ladder_limit]
        results["grading"] = run_grading(
            grader or Grader(settings), ladders, engine, repeats=repeats, semeval_sample=semeval_sample,
            progress=(lambda d, t: progress("grading", d, t)) if progress else None,
        )
        if engine == "offline":
            from evals.followup import measure

            results["followup"] = measure(grader or Grader(settings), ladders)
    results["seconds"] = round(time.perf_counter() - started, 1)
    results["checks"] = [c for key in ("retrieval", "grading") if key in results for c in results[key]["checks"]]
    results["passed"] = all(c["passed"] for c in results["checks"])
    return results


def _flatten(value: Any, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            if k in ("scores", "hybrid_misses", "checks"):
                continue
            out.update(_flatten(v, f"{prefix}{k}."))
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        out[prefix.rstrip(".")] = float(value)
    return out


def compare(current: dict[str, Any], previous: dict[str, Any]) -> list[tuple[str, float, float]]:
    """(metric, previous, current) for every number that changed."""
    now, before = _flatten(current), _flatten(previous)
    return [(k, before[k], now[k]) for k in sorted(now) if k in before and before[k] != now[k] and k != "seconds"]


def write_report(results: dict[str, Any], out_dir: Path, previous: dict[str, Any] | None = None) -> Path:
    """Write results.json, report.md and grading.png into out_dir; return the report path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    lines = [f"# mockml eval — engine `{results['engine']}`" + (f" ({results['model']})" if results.get("model") else ""),
             "", f"Run at {results['run_at']} in {results['seconds']} s. **{'PASSED' if results['passed'] else 'FAILED'}**", "",
             "| check | value | threshold | |", "|---|---|---|---|"]
    for c in results["checks"]:
        lines.append(f"| {c['name']} | {c['value']} | {c['op']} {c['threshold']} | {'✅' if c['passed'] else '❌'} |")
    if "retrieval" in results:
        r = results["retrieval"]
        lines += ["", f"## Retrieval ({r['queries']} queries)", "", "| mode | Recall@1 | Recall@5 | MRR | p50 ms |", "|---|---|---|---|---|"]
        for mode, m in r["modes"].items():
            lines.append(f"| {mode} | {m['recall_at_1']:.3f} | {m['recall_at_5']:.3f} | {m['mrr']:.3f} | {m['latency_ms_p50']} |")
    if "grading" in results:
        g = results["grading"]
        lines += ["", f"## Grading ({g['ladders']} ladders over {len(g['tracks'])} tracks, {g['answers_graded']} gradings)", "",
                  f"Engines that produced the scorecards: {', '.join(g['engines_used'])}.", ""]
        if g.get("fallback_share"):
            lines += [f"**Warning: {g['fallback_share']:.0%} of gradings fell back to the offline engine** — these numbers "
                      "are not the requested engine's.", ""]
        for section in ("ordering", "repeatability", "invariance", "robustness", "verdicts"):
            lines.append(f"**{section}**: " + ", ".join(f"{k} = {v}" for k, v in g[section].items()))
            lines.append("")
        lines.append("**mean score by answer kind**: " + ", ".join(f"{k} {v}" for k, v in g["mean_score_by_kind"].items()))
        if "semeval" in g:
            s = g["semeval"]
            lines += ["", f"**SemEval-2013 held-out folds** ({s['items']} answers; {s['data']}): AUC(correct vs rest) = "
                      f"{s['auc_correct_vs_rest']} vs MiniLM cosine baseline {s['minilm_cosine_baseline_auc']}; "
                      f"mean score by human label: {s['mean_score_by_label']}"]
        _plot(g, out_dir / "grading.png")
        lines += ["", "![score by answer kind](grading.png)"]
    if "followup" in results:
        f = results["followup"]
        lines += ["", "## Follow-ups (offline)", "", "Share of follow-ups aimed at a point the answer missed (aim "
                  f">= {f.get('targets_missed_threshold', 0.9)}): **{f.get('targets_missed_share')}**; leak-free: "
                  f"{f.get('leak_free_share')} (see evals/followup.py)."]
    if previous:
        changes = compare(results, previous)
        lines += ["", f"## Changes since {previous.get('run_at', 'the previous run')}", ""]
        lines += [f"- {k}: {a:g} → {b:g}" for k, a, b in changes] or ["- no metric changed"]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _plot(grading: dict[str, Any], path: Path) -> None:
    """Box plot of scores per answer kind: the ladder should step down from left to right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = ["model", "paraphrase", "good", "bullets", "speech", "partial", "padding", "injection", "stuffing", "vague", "wrong", "off_topic"]
    data = [[s for key, s in grading["scores"].items() if key.endswith("/" + k)] for k in kinds]
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.boxplot(data, tick_labels=kinds, showmeans=True)
    ax.set_ylim(-0.2, 5.2)
    ax.set_ylabel("score (0–5)")
    ax.set_title(f"Scores by answer kind — engine {grading['engine']}, {grading['ladders']} ladders")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
