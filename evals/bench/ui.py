"""Benchmark: the browser app as a user meets it: server start, page load, and one offline turn.

    python -m evals.bench.ui       # writes evals/bench/results/ui.json

Each server is the real `python -m app.cli ui --port P` in a subprocess (as tests/test_ui.py starts it), on
the real question bank (default MOCKML_KNOWLEDGE_DIR) and a temporary MOCKML_DATA_DIR, driven by headless
Debian Chromium through Playwright's sync API.

- cold start: an empty data directory, so the search index has to be built;
- warm start: the data directory of an earlier cold start, so the index is already built.

Targets (2-core machine): server ready (HTTP 200) <= 20 s; page usable <= 3 s after ready; turn p50 <= 1 s.

"Page usable" is the later of (a) the Start button being visible and enabled after `page.goto`, and (b) the
server's background warm-up (embedding model loaded, bank indexed) being done. The app exposes no readiness
endpoint; it logs "mockml ui: models warm in N s" on the `mockml.ui` logger, which nothing configures to
print, so this script puts a `sitecustomize.py` on the server's PYTHONPATH (in a temporary folder) that sends
that one logger to stderr, and watches the server log for the line. Nothing in the app changes.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import app  # noqa: F401 - offline environment defaults
from evals.bench import free_port, wait_for_http, write_results

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
WARM_LINE = re.compile(r"models warm in ([0-9.]+) s")
SITECUSTOMIZE = (
    "import logging, sys\n"
    "_h = logging.StreamHandler(sys.stderr)\n"
    "_h.setFormatter(logging.Formatter('%(name)s: %(message)s'))\n"
    "_l = logging.getLogger('mockml.ui')\n"
    "_l.addHandler(_h)\n"
    "_l.setLevel(logging.INFO)\n"
)
FOLLOW_UP_ANSWER = "I would measure it on held-out data first, then compare against a simple baseline before trusting it."


class Server:
    """One `mockml ui` subprocess; `ready_s` is launch -> first HTTP 200."""

    def __init__(self, data: Path, hook: Path) -> None:
        self.data = data
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = data.parent / f"{data.name}-server-{self.port}.log"
        env = {**os.environ, "MOCKML_DATA_DIR": str(data), "GRADIO_ANALYTICS_ENABLED": "False",
               "PYTHONPATH": os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH", "")) if p)}
        for name in ("MOCKML_KNOWLEDGE_DIR", "MOCKML_MODEL", "MOCKML_AUTH", "MOCKML_DATABASE_URL", "MOCKML_CHROMA_HOST"):
            env.pop(name, None)  # the real bank (default knowledge dir), offline engine, local store and index
        self._log = self.log_path.open("w")
        self.launched = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "app.cli", "ui", "--port", str(self.port)], cwd=ROOT,
                                     env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self.ready_s = wait_for_http(self.proc, self.url, self.launched, 180, lambda: self.log()[-2000:], poll_s=0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_warm(self, limit: float = 300) -> tuple[float, float]:
        """Block until the warm-up line is logged: (monotonic time first seen, the app's own warm-up seconds)."""
        while True:
            found = WARM_LINE.search(self.log())
            if found:
                return time.monotonic(), float(found.group(1))
            if "warm-up failed" in self.log():
                raise RuntimeError(f"the app's warm-up failed: {self.log()[-2000:]}")
            if self.proc.poll() is not None:
                raise RuntimeError(f"the app exited with {self.proc.returncode}: {self.log()[-2000:]}")
            if time.monotonic() - self.launched > limit:
                raise RuntimeError("the app's warm-up did not finish in time")
            time.sleep(0.02)

    def stop(self) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=15)
        finally:
            self._log.close()


def new_page(browser: Any) -> tuple[Any, Any, list[str]]:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(120_000)
    return context, page, errors


def page_usable(browser: Any, server: Server) -> dict[str, float]:
    """Seconds from page.goto until the Start button is visible and enabled, and until the warm-up is done."""
    context, page, errors = new_page(browser)
    try:
        started = time.monotonic()
        page.goto(server.url)
        page.wait_for_selector("#start", state="visible")
        page.wait_for_function("() => { const b = document.querySelector('#start'); return b && !b.disabled; }")
        button = time.monotonic()
        warm_at, warm_own = server.wait_warm()
        if errors:
            raise RuntimeError(f"page errors: {errors}")
        return {"button_s": button - started, "warm_after_goto_s": max(0.0, warm_at - started),
                "usable_s": max(button, warm_at) - started, "warm_after_launch_s": warm_at - server.launched,
                "app_warm_up_s": warm_own}
    finally:
        context.close()


def counts(page: Any) -> tuple[int, int]:
    return page.evaluate(
        "() => [document.querySelectorAll(\"#chat [data-testid='user']\").length,"
        " document.querySelectorAll(\"#chat [data-testid='bot']\").length]")


def send_and_wait(page: Any, text: str) -> float:
    """Type an answer, click Send, and return the seconds until the interviewer's reply is in the chat."""
    users, bots = counts(page)
    page.fill("#answer textarea", text)
    started = time.perf_counter()
    page.click("#send")
    page.wait_for_function(
        "([u, b]) => document.querySelectorAll(\"#chat [data-testid='user']\").length > u "
        "&& document.querySelectorAll(\"#chat [data-testid='bot']\").length > b "
        "&& !document.querySelector('#progress .pending, #chat .pending')",
        arg=[users, bots], polling="raf")
    return time.perf_counter() - started


def norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def turns(browser: Any, server: Server, answers: dict[str, list[str]], texts: dict[str, str], target: int = 15,
          questions: int = 8) -> dict[str, Any]:
    """Browser-side seconds from the click on Send until the interviewer's next message is in the chat."""
    context, page, errors = new_page(browser)
    latencies: list[float] = []
    finish: list[float] = []
    first_start: list[float] = []
    kinds: list[str] = []
    shown: list[str] = []
    try:
        page.goto(server.url)
        page.wait_for_selector("#start")
        session = 0
        while len(latencies) < target:
            session += 1
            page.fill("#profile textarea, #profile input", f"bench{session}")
            page.fill("#n-questions input", str(questions))
            started = time.perf_counter()
            page.click("#start")
            page.wait_for_selector(f"#progress:has-text('question 1 of {questions}')")
            first_start.append(time.perf_counter() - started)
            current, asked = "", 0
            while len(latencies) < target:
                progress = page.locator("#progress").inner_text()
                if "Your questions" in progress or "finished" in progress:
                    break
                last_bot = norm(page.locator("#chat [data-testid='bot']").last.inner_text())
                hit = next((qid for qid, t in texts.items() if t in last_bot), None)
                if hit and hit != current:
                    current, asked = hit, 0
                    pool = answers.get(hit) or []
                    text = pool[session % len(pool)] if pool else FOLLOW_UP_ANSWER
                    kinds.append("question")
                    shown.append(f"question {hit}")
                else:  # a follow-up: another ladder answer for the same bank question (as long as a real one)
                    pool = answers.get(current) or []
                    text = pool[(session + asked) % len(pool)] if pool else FOLLOW_UP_ANSWER
                    kinds.append("follow_up")
                    shown.append("follow-up: " + last_bot[-90:])
                asked += 1
                latencies.append(send_and_wait(page, text))
                if asked > 4:  # never loop on one question
                    page.click("#cmd-skip")
                    page.wait_for_timeout(500)
            # finish the session (the report is written here; timed separately, not a normal turn)
            for _ in range(20):
                progress = page.locator("#progress").inner_text()
                if "finished" in progress:
                    break
                finish.append(send_and_wait(page, "no questions" if "Your questions" in progress else "/end"))
            page.wait_for_selector("#report-md:has-text('Interview report')")
            page.reload()
            page.wait_for_selector("#start")
        if errors:
            raise RuntimeError(f"page errors: {errors}")
    finally:
        context.close()
    ordered = sorted(latencies)
    by_kind = {k: sorted(x for x, kk in zip(latencies, kinds) if kk == k) for k in ("question", "follow_up")}
    return {
        "turns": len(latencies),
        "follow_up_turns": kinds.count("follow_up"),
        "turn_s": {"p50": round(statistics.median(ordered), 3), "p95": round(ordered[round(0.95 * (len(ordered) - 1))], 3),
                   "max": round(ordered[-1], 3)},
        "turn_p50_s_by_kind": {k: round(statistics.median(v), 3) for k, v in by_kind.items() if v},
        "answered": [f"{x:.3f} s {what}" for x, what in zip(latencies, shown)],
        "start_interview_s": [round(x, 3) for x in first_start],
        "finish_turns_s": [round(x, 3) for x in finish],
    }


def median(values: list[float]) -> float:
    return round(statistics.median(values), 2)


def main(repeats: int = 3, target_turns: int = 15) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    from app.config import Settings
    from app.runtime import get_bank
    from evals.grading.ladders import load

    with tempfile.TemporaryDirectory(prefix="mockml-bench-ui-") as tmp:
        root = Path(tmp)
        hook = root / "hook"
        hook.mkdir()
        (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
        bank = get_bank(Settings(data_dir=root / "bank-only"))
        answers = {l.question.id: [a.text for k, a in l.answers.items() if k in ("good", "partial", "paraphrase")]
                   for l in load(bank)}
        for q in bank.questions:
            answers.setdefault(q.id, [a.text for a in q.model_answers])
        texts = {q.id: norm(q.text) for q in bank.questions}
        runs: dict[str, list[dict[str, float]]] = {"cold": [], "warm": []}
        turn_result: dict[str, Any] = {}
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            try:
                for kind in ("cold", "warm"):
                    for i in range(repeats):
                        # cold: a fresh empty data dir each time; warm: the first cold run's dir (index built)
                        data = root / (f"cold{i}" if kind == "cold" else "cold0")
                        data.mkdir(exist_ok=True)
                        prebuilt = any(data.iterdir())
                        server = Server(data, hook)
                        try:
                            run = {"ready_s": server.ready_s, **page_usable(browser, server), "index_prebuilt": prebuilt}
                            print(f"{kind} start {i + 1}: ready {run['ready_s']:.2f} s, start button "
                                  f"{run['button_s']:.2f} s, usable {run['usable_s']:.2f} s after goto "
                                  f"(app warm-up {run['app_warm_up_s']:.1f} s, index prebuilt: {prebuilt})", flush=True)
                            runs[kind].append(run)
                            if kind == "warm" and i == repeats - 1:
                                turn_result = turns(browser, server, answers, texts, target_turns)
                                print(f"turns: {turn_result}", flush=True)
                        finally:
                            server.stop()
            finally:
                browser.close()

    def summary(kind: str) -> dict[str, Any]:
        rs = runs[kind]
        return {
            "index_prebuilt": all(r["index_prebuilt"] for r in rs) if kind == "warm" else any(r["index_prebuilt"] for r in rs),
            "starts": len(rs),
            "server_ready_s": median([r["ready_s"] for r in rs]),
            "page_usable_s": median([r["usable_s"] for r in rs]),
            "start_button_s": median([r["button_s"] for r in rs]),
            "warm_up_done_after_launch_s": median([r["warm_after_launch_s"] for r in rs]),
            "app_reported_warm_up_s": median([r["app_warm_up_s"] for r in rs]),
            "runs": [{k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items()} for r in rs],
        }

    result = {
        "bank": "real (default MOCKML_KNOWLEDGE_DIR)",
        "engine": "offline",
        "browser": "Debian chromium, headless, Playwright sync API",
        "page_usable_means": "page.goto -> later of: #start visible and enabled; server log 'models warm in' (background "
                             "model load + bank index done)",
        "turn_means": "click on #send -> the interviewer's next message in #chat and nothing pending (turns measured "
                      "on the last warm start; a ladder answer (good/partial/paraphrase) or the bank model answer "
                      "for the bank question being asked, and another of them for its follow-ups)",
        "cold": summary("cold"),
        "warm": summary("warm"),
        "turn": turn_result,
        "targets": {"server_ready_s": 20, "page_usable_s": 3, "turn_p50_s": 1},
    }
    return write_results("ui", result)


if __name__ == "__main__":
    main()
