"""Benchmark: one offline interview turn (grade + choose follow-up + persist), after warm-up.

    python -m evals.bench.interview       # writes evals/bench/results/interview.json

Target (2-core machine): p50 <= 300 ms. Each turn is a real `Interviewer.respond()` with a realistic answer
(a ladder answer for the question being asked), committed to SQLite in WAL mode with synchronous=FULL.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import app  # noqa: F401 - offline environment defaults
from evals.bench import write_results
from app.config import Settings
from app.grading import Grader
from app.interview import Interviewer
from app.runtime import get_bank
from app.sessions import Phase, SessionConfig, TurnKind
from app.store import Store
from evals.grading.ladders import load



def main(sessions: int = 8) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp))
        bank = get_bank(settings)
        answers = {l.question.id: [a.text for k, a in l.answers.items() if k in ("good", "partial", "paraphrase")] for l in load(bank)}
        grader = Grader(settings, bank)
        interviewer = Interviewer(bank, grader, Store.from_settings(settings))
        grader.grade("bias-variance-tradeoff", "warm up: bias underfits, variance overfits.")
        embedder = grader.offline.embedder
        for q in bank.questions:  # rubric and question embeddings stay cached in any running interviewer
            embedder.encode([q.text] + [p.text for p in q.rubric])
        warm = dict(embedder._cache)
        latencies: list[float] = []
        for n in range(sessions):
            reply = interviewer.start(f"bench{n}", SessionConfig(questions=6, repeat_answered=True))
            turn = 0
            while reply.phase not in (Phase.CANDIDATE_QUESTIONS, Phase.DONE):
                asked = reply.turns[-1]
                pool = answers.get(asked.question_id or "", []) or [bank.get(asked.question_id).model_answers[0].text]
                text = pool[turn % len(pool)] if asked.kind is TurnKind.QUESTION else "I would measure it on held-out data first."
                embedder._cache.clear()
                embedder._cache.update(warm)  # no answer is ever free: its sentences are embedded for real
                started = time.perf_counter()
                reply = interviewer.respond(reply.session_id, text)
                latencies.append((time.perf_counter() - started) * 1000)
                turn += 1
            interviewer.respond(reply.session_id, "no questions")
    ordered = sorted(latencies)
    result = {
        "turns": len(latencies),
        "turn_ms": {"p50": round(statistics.median(ordered), 1), "p95": round(ordered[int(0.95 * (len(ordered) - 1))], 1)},
        "target_p50_ms": 300,
    }
    return write_results("interview", result)


if __name__ == "__main__":
    main()
