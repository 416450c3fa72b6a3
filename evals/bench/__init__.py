"""Benchmarks: scripts that measure speed on this machine and write a results file (not timed tests)."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def write_results(name: str, result: dict[str, Any]) -> dict[str, Any]:
    """Stamp the machine on a benchmark's numbers, write results/<name>.json, and print them."""
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", **result}
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result
