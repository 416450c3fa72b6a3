"""Load (and crash) script: many simulated candidates interviewing at once through the browser app's API.

    flock /tmp/mockml-bench.lock .venv/bin/python -m evals.bench.load                 # results/load.json
    flock /tmp/mockml-bench.lock .venv/bin/python -m evals.bench.load --kill          # results/load-kill.json

Not a timed test: a script that measures and checks. It starts the real `mockml ui` (`python -m app.cli ui`)
in a subprocess on loopback with a fresh MOCKML_DATA_DIR and a free port, then runs N candidates at once,
each in its own thread with its own `gradio_client.Client` (its own Gradio session, so its own `gr.State`),
through the same named endpoints the page uses (`/start`, `/respond`, `/history`, `/resume`). Each candidate
completes interviews with the offline engine: start → answer every question and follow-up with a realistic
answer (a bank model answer or an answer-ladder rung, sometimes cut short) → "no questions" → report.

Every answer carries the candidate's marker ("[cand-07]") and a unique tag ("[cand-07#12]"), so afterwards
the store can be checked: each session holds only its own candidate's answers, and every answer a client
got acknowledged (the endpoint returned) is stored exactly once in that candidate's sessions.

With --kill the server process group is killed with SIGKILL mid-run, restarted on the same data directory
and port, and every candidate reconnects as a person reloading the page would: History → load → Resume
for each of its unfinished sessions, then continues each to its report. The check then also requires that
every turn acknowledged before the kill survived, and that every interrupted session finished.

Errors are calls that failed for any other reason, and must be 0. One kind of failure is told apart: a call
whose result gradio_client loses when its own event-stream reader closes under it while the server is up
(seen once in about 1,000 calls; the server had run the call and committed the turn). That is counted as
`client_stream_drops` and the candidate reconnects through History → Resume, as a browser reload would.

The machine has 2 cores shared with other benchmarks: run under `flock /tmp/mockml-bench.lock`.
"""

from __future__ import annotations

import concurrent.futures
import html
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

import app  # noqa: F401 - offline environment defaults before gradio_client loads
from evals.bench import free_port, wait_for_http, write_results

ROOT = Path(__file__).resolve().parents[2]
MARKER_RE = re.compile(r"\[cand-(\d+)")
MAX_STREAM_DROPS = 5  # per candidate; more than that is reported as an error
CALL_TIMEOUT_S = 120.0  # one endpoint call; generous because 20 clients share a 4-slot queue on 2 cores
NO_QUESTIONS = "no questions"
GENERIC_FOLLOW_UP = ("I would check it on held-out data first, compare it against a simple baseline, and look at "
                     "the errors by segment before trusting the number.")
CANDIDATE_QUESTIONS = (
    "How does the team decide when a model is ready to ship?",
    "What does the on-call rotation look like for the ML services?",
    "How do you measure the impact of a model after launch?",
)


# ---------------------------------------------------------------------------------------------- the server


def _children(pid: int) -> list[int]:
    """Direct children of pid, from /proc (no psutil needed)."""
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            # The command name may hold spaces and parentheses: the ppid is the 2nd field after the last ')'.
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry))
    return kids


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of pid and all its descendants (psutil when installed, else /proc)."""
    try:
        import psutil  # optional

        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0
        total = 0
        for p in procs:
            try:
                total += p.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total
    except ImportError:
        pass
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
        todo += _children(p)
    return total


class AppServer:
    """One `mockml ui` subprocess in its own process group (so kill -9 takes the whole tree)."""

    def __init__(self, data_dir: Path, port: int, *, env: dict[str, str] | None = None,
                 log_path: Path | None = None) -> None:
        self.data_dir = data_dir
        self.port = port
        self.url = f"http://127.0.0.1:{port}/"
        self.log_path = log_path or data_dir.parent / f"server-{port}.log"
        base = {k: v for k, v in os.environ.items()
                if k not in ("MOCKML_MODEL", "MOCKML_AUTH", "MOCKML_DATABASE_URL", "MOCKML_CHROMA_HOST")}
        # Offline engine and a private data directory unless the caller says otherwise (e.g. a shared database).
        self.env = {**base, "MOCKML_DATA_DIR": str(data_dir), "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout: float = 180.0) -> float:
        """Launch and wait for HTTP 200; returns the seconds it took."""
        self.starts += 1
        log = self.log_path.open("a")
        log.write(f"\n---- start #{self.starts} ----\n")
        log.flush()
        launched = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "app.cli", "ui", "--host", "127.0.0.1", "--port", str(self.port)],
                                     cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()  # the child keeps its own copy of the descriptor
        try:
            return wait_for_http(self.proc, self.url, launched, timeout, self.log_tail)
        except RuntimeError:
            self.kill9()  # a server that never answered must not outlive the benchmark
            raise

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def kill9(self) -> None:
        """SIGKILL the whole process group, as a crash or `kill -9` would, and reap it."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        """Terminate politely, then kill."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            self.kill9()

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


class RssSampler(threading.Thread):
    """Samples the server tree's RSS every `every` seconds; keeps the peak."""

    def __init__(self, server: AppServer, every: float = 0.25) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.server, self.every = server, every
        self.peak = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.every):
            pid = self.server.pid
            if pid is not None:
                self.peak = max(self.peak, tree_rss_bytes(pid))

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)


# ---------------------------------------------------------------------------------------------- answers


class AnswerBook:
    """Realistic answers per bank question: its model answers and, where a ladder exists, the good,
    paraphrase and partial rungs; recognises bank questions by their text as the chat shows it."""

    def __init__(self, knowledge_dir: Path | None = None) -> None:
        from app.bank import load_bank
        from app.config import REPO_ROOT

        self.bank = load_bank(knowledge_dir or REPO_ROOT / "knowledge")
        self.by_text = {q.text.strip(): q.id for q in self.bank.questions}
        self.full: dict[str, list[str]] = {q.id: [a.text.strip() for a in q.model_answers] for q in self.bank.questions}
        self.partial: dict[str, list[str]] = defaultdict(list)
        try:
            from evals.grading.ladders import load as load_ladders

            for ladder in load_ladders(self.bank):
                qid = ladder.question.id
                self.full[qid] += [ladder.answers[k].text for k in ("good", "paraphrase") if k in ladder.answers]
                self.partial[qid] += [ladder.answers[k].text for k in ("partial",) if k in ladder.answers]
        except Exception:  # noqa: BLE001 - BadInput for ids the bank lacks, or a ladder file problem
            pass  # a bank the ladders do not describe (the test fixture bank): model answers only

    def question_id(self, shown: str) -> str | None:
        """The bank id of a question as the chat shows it (HTML-escaped), or None (a follow-up, a greeting...)."""
        return self.by_text.get(html.unescape(shown).strip())

    def answer(self, qid: str | None, rng: random.Random, follow_up: bool) -> str:
        """A complete answer most of the time; sometimes only the first half, or a partial rung."""
        full = self.full.get(qid or "", []) or [GENERIC_FOLLOW_UP]
        roll = rng.random()
        if qid and self.partial.get(qid) and roll < 0.2:
            return rng.choice(self.partial[qid])
        text = rng.choice(full)
        if roll > 0.85 or follow_up and roll > 0.6:
            words = text.split()
            text = " ".join(words[: max(8, len(words) // 2)])  # a candidate who stops halfway
        return text


def marker(cand: int) -> str:
    return f"[cand-{cand:02d}]"


def tagged(cand: int, seq: int, body: str) -> str:
    """The answer as sent: marker first, the candidate's unique tag last (so truncation would show)."""
    return f"{marker(cand)} {body} [cand-{cand:02d}#{seq}]"


def message_text(message: dict[str, Any]) -> str:
    """The plain text of one Chatbot message as gradio_client returns it (content is a list of parts)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


# ---------------------------------------------------------------------------------------------- candidates


@dataclass
class Stats:
    """What one candidate saw."""

    cand: int
    turns: int = 0
    interviews: int = 0
    starts: int = 0
    latencies: list[float] = field(default_factory=list)
    start_latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    interrupted: int = 0  # calls lost to the kill (expected with --kill, never counted as errors)
    resumed: int = 0  # sessions resumed through History → Resume after the restart
    resumed_finished: int = 0
    acked: list[str] = field(default_factory=list)  # answers whose endpoint call returned
    acked_before_kill: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)  # every answer sent, acknowledged or not
    stream_drops: list[str] = field(default_factory=list)  # client-side SSE races recovered by reconnecting


class Outage:
    """Coordinates a kill: `killed` once the kill is under way, `up` cleared until the restarted server answers."""

    def __init__(self) -> None:
        self.killed = threading.Event()
        self.up = threading.Event()
        self.up.set()


class Candidate(threading.Thread):
    """One simulated candidate: interviews back to back until the deadline, through its own Gradio session."""

    def __init__(self, cand: int, url: str, book: AnswerBook, deadline: float, outage: Outage, *,
                 questions: int = 3, seed: int = 0, final_grace: float = 90.0) -> None:
        super().__init__(name=f"cand-{cand:02d}", daemon=True)
        self.cand, self.url, self.book, self.deadline, self.outage = cand, url, book, deadline, outage
        self.run_deadline = deadline
        self.questions = questions
        self.final_grace = final_grace  # after the deadline, a resumed session may still finish within this
        self.rng = random.Random(seed * 1000 + cand)
        self.stats = Stats(cand)
        self.user = f"cand-{cand:02d}"
        self.seq = 0
        self.client: Any = None
        self.last_call = ""

    # ---- plumbing

    def _client(self) -> Any:
        from gradio_client import Client

        # download_files=False: the report chart and files stay on the server; we only need the text.
        return Client(self.url, verbose=False, download_files=False)

    def _call(self, api_name: str, *args: Any) -> Any:
        self.last_call = api_name
        return self.client.submit(*args, api_name=api_name).result(timeout=CALL_TIMEOUT_S)

    # ---- one interview

    def _play(self, chat: list[dict[str, Any]], progress: str, qid: str | None) -> bool:
        """Answer until the report; returns True when the interview finished. Raises on a failed call."""
        in_session_asks = 0
        while "Interview finished" not in progress:
            if time.monotonic() > self.deadline:
                return False
            last = message_text(chat[-1]) if chat else ""
            if "questions for the interviewer" in progress:
                if in_session_asks == 0 and self.rng.random() < 0.3:
                    text = tagged(self.cand, self._next_seq(), self.rng.choice(CANDIDATE_QUESTIONS))
                    in_session_asks += 1
                else:
                    text = NO_QUESTIONS
            else:
                asked = self.book.question_id(last)
                qid = asked or qid
                text = tagged(self.cand, self._next_seq(), self.book.answer(qid, self.rng, follow_up=asked is None))
            if text != NO_QUESTIONS:
                self.stats.sent.append(text)
            began = time.perf_counter()
            out = self._call("/respond", text, chat)
            self.stats.latencies.append(time.perf_counter() - began)
            self.stats.turns += 1
            if text != NO_QUESTIONS:
                self.stats.acked.append(text)
                if not self.outage.killed.is_set():
                    self.stats.acked_before_kill.append(text)
            chat, progress = out[0], out[1]
        return True

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def _interview(self) -> None:
        began = time.perf_counter()
        out = self._call("/start", self.user, [], "mid", self.questions, "interview", "offline")
        self.stats.start_latencies.append(time.perf_counter() - began)
        self.stats.starts += 1
        chat, progress = out[0], out[1]
        qid = self.book.question_id(message_text(chat[-1])) if chat else None
        if self._play(chat, progress, qid):
            self.stats.interviews += 1

    def _resume_all(self) -> None:
        """After the restart: a fresh page (new Gradio session), History → Resume each unfinished interview."""
        self.client = self._client()
        # Until the end of the grace period: an interrupted session must be finished even if the run is over.
        self.deadline = max(self.deadline, time.monotonic() + self.final_grace)
        table = self._call("/history", self.user)[0]
        unfinished = [row[0] for row in table["data"] if str(row[2]).startswith("unfinished")]
        for session_id in unfinished:
            out = self._call("/resume", session_id)
            self.stats.resumed += 1
            chat, progress = out[0], out[1]
            qid = None
            for message in chat:  # the question being asked is the last bank question in the transcript
                qid = self.book.question_id(message_text(message)) or qid
            if self._play(chat, progress, qid):
                self.stats.resumed_finished += 1
                self.stats.interviews += 1

    def _describe(self, exc: BaseException) -> str:
        return f"{self.last_call}: {type(exc).__name__}: {str(exc)[:300]}"

    def _is_stream_drop(self, exc: BaseException) -> bool:
        """gradio_client's SSE reader closed under a pending call while the server lived on (a client-side race:
        the server had already run the event). A browser would reconnect; so does the candidate, a few times."""
        return isinstance(exc, concurrent.futures.CancelledError) and len(self.stats.stream_drops) < MAX_STREAM_DROPS

    def _recover(self) -> bool:
        """Reconnect and resume every unfinished session, as a page reload would; False after a real error."""
        while True:
            try:
                self._resume_all()
                return True
            except Exception as exc:  # noqa: BLE001 - reported, never raised from a thread
                if not self._is_stream_drop(exc):
                    self.stats.errors.append("recovering: " + self._describe(exc))
                    return False
                self.stats.stream_drops.append(self._describe(exc))

    def run(self) -> None:
        try:
            self.client = self._client()
        except Exception as exc:  # noqa: BLE001
            self.stats.errors.append(f"connect: {type(exc).__name__}: {exc}")
            return
        resumed_after_kill = False
        while time.monotonic() < self.deadline:
            try:
                self._interview()
                continue
            except Exception as exc:  # noqa: BLE001
                if self.outage.killed.is_set() and not resumed_after_kill:
                    self.stats.interrupted += 1  # the kill, not a fault: wait for the restart
                    self.outage.up.wait(timeout=300)
                    resumed_after_kill = True
                elif self._is_stream_drop(exc):
                    self.stats.stream_drops.append(self._describe(exc))
                else:
                    self.stats.errors.append(self._describe(exc))
                    return
            if not self._recover():
                return
            self.deadline = self.run_deadline  # no new interviews after the run's end
        if self.outage.killed.is_set() and not resumed_after_kill:
            # The kill came while this candidate was between interviews or done: its sessions may still
            # be unfinished (a call cut short whose error we never saw), so reconnect and check.
            self.outage.up.wait(timeout=300)
            self._recover()


# ---------------------------------------------------------------------------------------------- checking


def check_store(store: Any, stats: list[Stats]) -> dict[str, Any]:
    """Isolation and durability from the store itself: per candidate, only its markers, every acked answer."""
    from app.sessions import Phase, Speaker, TurnKind

    foreign: list[str] = []
    missing: list[str] = []
    missing_before_kill: list[str] = []
    duplicated: list[str] = []
    gaps: list[str] = []
    in_flight = in_flight_stored = 0
    unscored: list[str] = []
    sessions_seen = finished = unfinished = answers_stored = 0
    for st in stats:
        user = f"cand-{st.cand:02d}"
        stored: list[str] = []
        for summary in store.list_sessions(user):
            session = store.load_session(summary.id)
            sessions_seen += 1
            if session.phase is Phase.DONE:
                finished += 1
            else:
                unfinished += 1
            if [t.index for t in session.turns] != list(range(len(session.turns))):
                gaps.append(session.id)  # a torn write would leave a hole in the append-only turn list
            for turn in session.turns:
                if turn.kind is TurnKind.ANSWER and turn.scorecard is None:
                    unscored.append(f"{session.id} turn {turn.index}")
                if turn.speaker is not Speaker.CANDIDATE:
                    continue
                owners = {int(m) for m in MARKER_RE.findall(turn.text)}
                if owners - {st.cand}:
                    foreign.append(f"{session.id} ({user}) turn {turn.index}: markers {sorted(owners)}")
                if owners:
                    stored.append(turn.text)
        answers_stored += len(stored)
        counts: dict[str, int] = defaultdict(int)
        for text in stored:
            counts[text] += 1
        duplicated += [t[:60] for t, n in counts.items() if n > 1]
        missing += [t[:80] for t in st.acked if counts.get(t, 0) == 0]
        missing_before_kill += [t[:80] for t in st.acked_before_kill if counts.get(t, 0) == 0]
        # An answer sent but never acknowledged (in flight at the kill) may or may not be stored; either is fine.
        unacked = set(st.sent) - set(st.acked)
        in_flight_stored += sum(1 for t in unacked if counts.get(t, 0))
        in_flight += len(unacked)
    return {
        "sessions": sessions_seen, "sessions_finished": finished, "sessions_unfinished": unfinished,
        "candidate_turns_stored": answers_stored,
        "acknowledged_answers": sum(len(s.acked) for s in stats),
        "acknowledged_missing": len(missing), "acknowledged_before_kill": sum(len(s.acked_before_kill) for s in stats),
        "acknowledged_before_kill_missing": len(missing_before_kill),
        "sent_unacknowledged": in_flight, "sent_unacknowledged_but_stored": in_flight_stored,
        "foreign_marker_turns": len(foreign), "duplicated_answers": len(duplicated),
        "sessions_with_turn_gaps": len(gaps), "answers_without_scorecard": len(unscored),
        "examples": {"foreign": foreign[:5], "missing": missing[:5], "duplicated": duplicated[:5],
                     "gaps": gaps[:5], "unscored": unscored[:5]},
        "isolation_ok": not foreign and not duplicated,
        "durability_ok": not missing and not missing_before_kill and not gaps and not unscored,
    }


def percentile(values: list[float], q: float) -> float | None:
    """The q-quantile (0..1) by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered) + 0.5)) - 1))]


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "unknown"


# ---------------------------------------------------------------------------------------------- the run


@dataclass
class RunResult:
    """Everything a run measured; `summary()` is what goes into the results file."""

    candidates: int
    seconds: float
    stats: list[Stats]
    check: dict[str, Any]
    peak_rss: int
    wall_s: float
    kill: dict[str, Any] | None
    load_before: str
    load_after: str
    warm_up_s: float
    ready_s: float

    def summary(self) -> dict[str, Any]:
        lat = [x for s in self.stats for x in s.latencies]
        starts = [x for s in self.stats for x in s.start_latencies]
        ms = lambda v: None if v is None else round(v * 1000, 1)  # noqa: E731
        return {
            "candidates": self.candidates, "seconds": self.seconds, "wall_s": round(self.wall_s, 1),
            "engine": "offline", "questions_per_interview": None,
            "turns_completed": sum(s.turns for s in self.stats),
            "interviews_completed": sum(s.interviews for s in self.stats),
            "interviews_started": sum(s.starts for s in self.stats),
            "turns_per_s": round(sum(s.turns for s in self.stats) / max(self.seconds, 1e-9), 2),
            "errors": sum(len(s.errors) for s in self.stats),
            "error_examples": [e for s in self.stats for e in s.errors][:5],
            # Calls whose result gradio_client lost to its own SSE reader closing (server alive, turn stored);
            # the candidate reconnected and resumed through History, as a browser reload would.
            "client_stream_drops": sum(len(s.stream_drops) for s in self.stats),
            "client_stream_drop_examples": [e for s in self.stats for e in s.stream_drops][:3],
            "turn_latency_ms": {"p50": ms(percentile(lat, 0.5)), "p95": ms(percentile(lat, 0.95)),
                                "max": ms(max(lat) if lat else None), "n": len(lat)},
            "start_latency_ms": {"p50": ms(percentile(starts, 0.5)), "p95": ms(percentile(starts, 0.95)), "n": len(starts)},
            "peak_rss_mb": round(self.peak_rss / 2**20, 1),
            "server_ready_s": round(self.ready_s, 1), "warm_up_s": round(self.warm_up_s, 1),
            "loadavg_before": self.load_before, "loadavg_after": self.load_after,
            "store_check": self.check,
            **({"kill": self.kill} if self.kill else {}),
        }


def run_load(*, candidates: int, seconds: float, port: int = 0, data_dir: Path, kill_at: float | None = None,
             questions: int = 3, knowledge_dir: Path | None = None, seed: int = 0,
             on_tick: Callable[[float, int], None] | None = None) -> RunResult:
    """Start the server, run the candidates (optionally killing the server at `kill_at` s), check the store."""
    from app.store import DB_FILE, Store

    port = port or free_port()
    if knowledge_dir is None and os.environ.get("MOCKML_KNOWLEDGE_DIR"):
        knowledge_dir = Path(os.environ["MOCKML_KNOWLEDGE_DIR"])  # the server reads it too: answer from the same bank
    env = {"MOCKML_KNOWLEDGE_DIR": str(knowledge_dir)} if knowledge_dir else {}
    server = AppServer(data_dir, port, env=env, log_path=data_dir.parent / f"load-server-{port}.log")
    book = AnswerBook(knowledge_dir)
    load_before = loadavg()
    ready_s = server.start()
    sampler = RssSampler(server)
    sampler.start()
    kill_info: dict[str, Any] | None = None
    try:
        # One warm-up turn so the embedding model's load is not counted as a candidate's latency.
        from gradio_client import Client

        began = time.perf_counter()
        warm = Client(server.url, verbose=False, download_files=False)
        out = warm.predict("warmup", [], "mid", 1, "interview", "offline", api_name="/start")
        warm.predict("warm-up answer about the bias variance tradeoff", out[0], api_name="/respond")
        warm_up_s = time.perf_counter() - began

        outage = Outage()
        t0 = time.monotonic()
        deadline = t0 + seconds
        threads = [Candidate(i + 1, server.url, book, deadline, outage, questions=questions, seed=seed)
                   for i in range(candidates)]
        for t in threads:
            t.start()
        killed = False
        while any(t.is_alive() for t in threads):
            now = time.monotonic()
            if kill_at is not None and not killed and now - t0 >= kill_at:
                acked_at_kill = sum(len(t.stats.acked) for t in threads)
                outage.up.clear()
                outage.killed.set()
                server.kill9()
                killed = True
                restart_s = server.start()
                outage.up.set()
                kill_info = {"killed_at_s": round(now - t0, 1), "acknowledged_at_kill": acked_at_kill,
                             "restart_s": round(restart_s, 1), "downtime_s": round(time.monotonic() - now, 1)}
            if on_tick:
                on_tick(min(now - t0, seconds), sum(t.stats.turns for t in threads))
            time.sleep(0.2)
        wall = time.monotonic() - t0
        stats = [t.stats for t in threads]
        load_after = loadavg()
        url = server.env.get("MOCKML_DATABASE_URL")
        store = Store(url) if url else Store(f"sqlite:///{data_dir / DB_FILE}")
        check = check_store(store, stats)
        store.close()
        if kill_info is not None:
            kill_info.update({
                "calls_interrupted": sum(s.interrupted for s in stats),
                "sessions_resumed": sum(s.resumed for s in stats),
                "resumed_sessions_finished": sum(s.resumed_finished for s in stats),
                "acknowledged_before_kill": check["acknowledged_before_kill"],
                "acknowledged_before_kill_missing": check["acknowledged_before_kill_missing"],
            })
    finally:
        sampler.stop()
        server.stop()
    return RunResult(candidates, seconds, stats, check, sampler.peak, wall, kill_info, load_before, load_after,
                     warm_up_s, ready_s)


cli = typer.Typer(add_completion=False)


@cli.command()
def main(
    candidates: Annotated[int, typer.Option(min=1, max=200, help="simulated candidates at once")] = 20,
    seconds: Annotated[float, typer.Option(min=5, help="how long candidates keep starting interviews")] = 120.0,
    port: Annotated[int, typer.Option(min=0, max=65535, help="server port (0: a free one)")] = 0,
    kill: Annotated[bool, typer.Option("--kill", help="kill -9 the server mid-run, restart it, resume every session")] = False,
    kill_at: Annotated[float, typer.Option(help="seconds into the run to kill the server (with --kill)")] = 45.0,
    questions: Annotated[int, typer.Option(min=1, max=20, help="questions per interview")] = 3,
    seed: Annotated[int, typer.Option(help="random seed for answer choice")] = 0,
) -> None:
    """Run the load (or crash) scenario and write evals/bench/results/load[-kill].json."""
    import tempfile

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with tempfile.TemporaryDirectory(prefix="mockml-load-") as tmp:
        with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn()) as bar:
            task = bar.add_task(f"{candidates} candidates", total=seconds)

            def tick(elapsed: float, turns: int) -> None:
                bar.update(task, completed=elapsed, description=f"{candidates} candidates · {turns} turns")

            result = run_load(candidates=candidates, seconds=seconds, port=port, data_dir=Path(tmp) / "data",
                              kill_at=kill_at if kill else None, questions=questions, seed=seed, on_tick=tick)
        summary = result.summary()
        summary["questions_per_interview"] = questions
        write_results("load-kill" if kill else "load", summary)
    ok = summary["errors"] == 0 and summary["store_check"]["isolation_ok"] and summary["store_check"]["durability_ok"]
    if kill:
        k = summary.get("kill", {})
        ok = ok and k.get("sessions_resumed", 0) == k.get("resumed_sessions_finished", -1)
    raise typer.Exit(0 if ok else 1)


if __name__ == "__main__":
    cli()
