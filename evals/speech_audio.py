"""Real test audio: espeak-ng speech, resampled to 16 kHz mono and re-encoded with PyAV, plus WER.

Shared by tests/test_speech.py and evals/bench/speech.py (an eval helper, so it lives in evals/, not tests/).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np

from app.config import REPO_ROOT

SENTENCES = REPO_ROOT / "tests" / "fixtures" / "speech_sentences.txt"
# Container, codec and sample rate per format; these are the formats browsers record (MediaRecorder) or upload.
VOICE: list[str] = ["-v", "en-us"]  # default speed (175 wpm); the US voice (the default "en" is British RP)
PAD_S = 0.5  # silence before and after, as in a real recording (someone presses record, then speaks)
FORMATS = {"wav": ("wav", "pcm_s16le", 16_000), "ogg": ("ogg", "libopus", 48_000),
           "webm": ("webm", "libopus", 48_000), "mp3": ("mp3", "libmp3lame", 16_000)}


def have_espeak() -> bool:
    return shutil.which("espeak-ng") is not None


def sentences() -> list[tuple[str, str]]:
    """(question id, sentence) pairs from the fixture file."""
    rows = []
    for line in SENTENCES.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            qid, text = (part.strip() for part in line.split("|", 1))
            rows.append((qid, text))
    return rows


def espeak_samples(text: str, workdir: Path) -> np.ndarray:
    """Speak `text` with espeak-ng (default voice and speed) and return 16 kHz mono float32 samples."""
    import av

    raw = workdir / f"espeak-{abs(hash(text))}.wav"
    subprocess.run(["espeak-ng", *VOICE, "-w", str(raw), text], check=True, capture_output=True)
    chunks = []
    resampler = av.AudioResampler(format="flt", layout="mono", rate=16_000)
    with av.open(str(raw)) as container:
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
    for out in resampler.resample(None):
        chunks.append(out.to_ndarray().reshape(-1))
    raw.unlink()
    pad = np.zeros(int(PAD_S * 16_000), np.float32)
    return np.concatenate([pad, *chunks, pad]).astype(np.float32)


def write_audio(samples: np.ndarray, path: Path, fmt: str | None = None) -> Path:
    """Encode 16 kHz mono float32 samples into WAV, OGG/Opus, WebM/Opus or MP3 with PyAV."""
    import av

    container_fmt, codec, rate = FORMATS[fmt or path.suffix.lstrip(".")]
    pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
    with av.open(str(path), "w", format=container_fmt) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = "mono"
        resampler = av.AudioResampler(format=stream.codec_context.format.name, layout="mono", rate=rate)
        frame_size = 960
        for start in range(0, len(pcm), frame_size):
            frame = av.AudioFrame.from_ndarray(pcm[None, start:start + frame_size], format="s16", layout="mono")
            frame.sample_rate = 16_000
            frame.pts = start
            frame.time_base = Fraction(1, 16_000)
            for rframe in resampler.resample(frame):
                for packet in stream.encode(rframe):
                    out.mux(packet)
        for rframe in resampler.resample(None):
            for packet in stream.encode(rframe):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


_NUMBERS = {w: str(i) for i, w in enumerate("zero one two three four five six seven eight nine ten".split())}


def normalise(text: str) -> list[str]:
    """Lowercase words without punctuation, as Whisper's English normaliser does for WER.

    Hyphens split words ("self-attention" -> "self attention"), British -isation/-ise spellings become US
    ("normalisation" -> "normalization") and number words up to ten become digits ("five" -> "5").
    """
    text = text.lower().replace("-", " ")
    words = re.sub(r"[^a-z0-9' ]+", " ", text).split()
    words = [re.sub(r"is(ation|e|ed|es|ing)$", r"iz\1", w) if len(w) > 6 and "is" in w[-8:] else w for w in words]
    return [_NUMBERS.get(w, w) for w in words]


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Word-level Levenshtein distance."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def wer(refs: list[str], hyps: list[str]) -> float:
    """Corpus word error rate: total word edits over total reference words."""
    edits = sum(edit_distance(normalise(r), normalise(h)) for r, h in zip(refs, hyps, strict=True))
    return edits / max(sum(len(normalise(r)) for r in refs), 1)


# ------------------------------------------------------------------------ spoken-vs-typed answer sets

# Issue #7: a spoken model answer must score within SPOKEN_VS_TYPED_MAX of the same answer typed.
SPOKEN_VS_TYPED_MAX = 0.5
# The five answers first measured for issue #7 (they were picked after a first measurement, so they are not blind).
TESTED_ANSWER_IDS = ("bias-variance-tradeoff", "precision-recall-f1", "cnn-image-tasks", "gradient-descent-variants",
                     "regularization-l1-l2")
# The blind sample: drawn once with this seed from the rest of the bank, never tuned on.
BLIND_SEED = 20261122
BLIND_SIZE = 5
# A second blind sample, drawn the same way with a fresh seed after the chunking and context repairs were built,
# as a generality check (reported separately; it was never tuned on).
BLIND2_SEED = 20261123
# A third, drawn after the decoding-loop redo and the grader's run-on windows were built. Those changes were made
# while reading transcripts from the first two blind samples, so from then on only this one is blind. It is drawn
# from the questions neither of them holds.
BLIND3_SEED = 20261124


def blind_answer_ids(question_ids: list[str], seed: int = BLIND_SEED, k: int = BLIND_SIZE,
                     exclude: tuple[str, ...] = ()) -> tuple[str, ...]:
    """`k` bank question ids drawn with a fixed seed from those not in TESTED_ANSWER_IDS or `exclude` (sorted: stable)."""
    import random

    pool = sorted(q for q in question_ids if q not in TESTED_ANSWER_IDS and q not in exclude)
    return tuple(random.Random(seed).sample(pool, k))
