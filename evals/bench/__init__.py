"""Benchmarks: scripts that measure speed on this machine and write a results file (not timed tests)."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
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


def free_port() -> int:
    """A TCP port that is free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_http(proc: subprocess.Popen[Any], url: str, launched: float, limit: float, log_tail: Callable[[], str],
                  poll_s: float = 0.1) -> float:
    """Seconds from `launched` until `url` answers HTTP 200; RuntimeError (with the log tail) if the process exits
    or `limit` seconds pass first. The caller decides what to do with a process that never answered."""
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"mockml ui exited with {proc.returncode}; log tail:\n{log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - launched
        except OSError:
            pass
        if time.monotonic() - launched > limit:
            raise RuntimeError(f"mockml ui did not answer within {limit:.0f} s; log tail:\n{log_tail()}")
        time.sleep(poll_s)
