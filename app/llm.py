"""The one seam to language models: litellm calls with structured output, bounded retries and token accounting.

Every model call in mockml goes through `LLM`. Failures are retried with exponential backoff (tenacity) when
retrying can help (timeout, rate limit, connection, 5xx, empty reply, invalid or off-schema output) and end in
one `LLMError(kind=..., attempts=...)`; callers fall back to the offline engine. The API key never appears in a
message or a log line: provider error texts are redacted before they are used.

Streaming choice: a stream that fails before its first piece of text is retried like any other call; one that
fails after text was yielded raises `StreamInterrupted` (an LLMError carrying the text received so far in
`.partial`), because text already shown to the user cannot be taken back and a silent retry would repeat it.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ValidationError
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from app.config import Settings
from app.errors import ConfigError, LLMError
from app.prompts import render

logger = logging.getLogger("mockml.llm")

Message = dict[str, Any]
# What litellm's `mock_response` accepts: reply text, an exception to raise, or a ModelResponse-like dict.
MockResponse = str | Exception | dict[str, Any]
MockArg = MockResponse | Sequence[MockResponse] | None
T = TypeVar("T", bound=BaseModel)
R = TypeVar("R")

NO_MODEL_MESSAGE = (
    "no model configured: set MOCKML_MODEL=openai/gpt-4o-mini and OPENAI_API_KEY, or use the offline default"
)
LOCAL_NOT_READY_MESSAGE = "the embedded model is not set up yet: run `mockml local setup`"

DEFAULT_MAX_TOKENS = 1024
BACKOFF_INITIAL = 0.5  # seconds before the first retry; doubles each time
BACKOFF_MAX = 8.0
BACKOFF_JITTER = 0.25  # up to +25 %: spreads retries of parallel graders hitting the same rate limit
RETRY_AFTER_CAP = 30.0  # a server asking for longer than this gets this; the user is waiting
MAX_DETAIL_CHARS = 300
MAX_REPAIR_REPLY_CHARS = 4000

KINDS = ("timeout", "rate_limit", "connection", "server", "empty", "invalid_output", "auth", "config")
RETRYABLE_KINDS = frozenset({"timeout", "rate_limit", "connection", "server", "empty", "invalid_output"})

_KIND_TEXT = {
    "timeout": "timed out (raise MOCKML_LLM_TIMEOUT or use a faster model)",
    "rate_limit": "was rate-limited by the provider (wait a minute or lower the request rate)",
    "connection": "could not be reached (check MOCKML_API_BASE and that the server is running)",
    "server": "failed with a server error",
    "empty": "returned an empty reply",
    "invalid_output": "did not return valid JSON for the requested schema",
    "auth": "rejected the credentials (check MOCKML_API_KEY or the provider's key variable, e.g. OPENAI_API_KEY)",
    "config": "rejected the request (check MOCKML_MODEL, e.g. openai/gpt-4o-mini, and MOCKML_API_BASE)",
}

# Response-format levels, strongest first; a provider that rejects one is asked with the next.
_FORMATS = ("json_schema", "json_object", "none")
_FORMAT_REJECTED = re.compile(r"response_format|json_schema|json_object|structured output|json mode", re.IGNORECASE)
_MISSING_KEY = re.compile(r"missing credentials|api_key client option must be set|no api key", re.IGNORECASE)
# Stands in for a `mock_response=""` (see `_send`); token counts match litellm's other mock replies.
_EMPTY_REPLY: dict[str, Any] = {
    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": ""}}],
    "usage": {"prompt_tokens": 10, "completion_tokens": 0, "total_tokens": 10},
}
_EXCEPTION_CHAIN = re.compile(r"^(?:(?:litellm\.)?\w*(?:Error|Exception|Timeout)\s*(?::|-)\s*)+")
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL | re.IGNORECASE)
_GENERIC_SECRETS = (
    (re.compile(r"\b(sk|rk|pk)-[A-Za-z0-9_\-*]{8,}"), r"\1-***"),
    (re.compile(r"(Bearer\s+)[^\s\"',]+", re.IGNORECASE), r"\1***"),
    (re.compile(r"(api[_-]?key[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+", re.IGNORECASE), r"\1***"),
)


def _sleep(seconds: float) -> None:
    """Back off between attempts (module-level so tests can patch it away)."""
    time.sleep(seconds)


@lru_cache(maxsize=1)
def _litellm() -> Any:
    """litellm, imported on first use: the import alone takes about 3 s."""
    import litellm

    litellm.suppress_debug_info = True  # no "Give Feedback / Get Help" banners on the user's terminal
    litellm.telemetry = False
    # litellm's own INFO/DEBUG lines echo request details; our "mockml.llm" logger reports what matters.
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
        if logging.getLogger(name).level == logging.NOTSET:
            logging.getLogger(name).setLevel(logging.WARNING)
    return litellm


@dataclass
class Usage:
    """Token and attempt accounting for one LLM instance (retry tokens = tokens of replies that were not used)."""

    calls: int = 0
    attempts: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retry_prompt_tokens: int = 0
    retry_completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def retry_tokens(self) -> int:
        return self.retry_prompt_tokens + self.retry_completion_tokens


@dataclass(frozen=True)
class Health:
    """The result of an explicit health check."""

    ok: bool
    model: str
    latency_ms: float
    detail: str


@dataclass(frozen=True)
class _Target:
    """A resolved litellm target; the key is kept out of repr so it cannot leak through logging."""

    model: str
    api_base: str | None = None
    api_key: str | None = field(default=None, repr=False)


class StreamInterrupted(LLMError):
    """A stream failed after some text was already yielded; `partial` is that text."""

    def __init__(self, message: str, *, kind: str, attempts: int, partial: str) -> None:
        super().__init__(message, kind=kind, attempts=attempts)
        self.partial = partial


class _Failure(Exception):
    """One failed attempt, classified; internal to the retry loop."""

    def __init__(
        self,
        kind: str,
        detail: str,
        *,
        retryable: bool | None = None,
        retry_after: float | None = None,
        reply: str | None = None,
        tokens: tuple[int, int] = (0, 0),
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.retryable = kind in RETRYABLE_KINDS if retryable is None else retryable
        self.retry_after = retry_after
        self.reply = reply
        self.tokens = tokens


class ChatModel(Protocol):
    """What callers need from a language model; `LLM` and the tests' `FakeLLM` both provide it."""

    model: str
    usage: Usage

    def complete_json(
        self, messages: list[Message], schema: type[T], *, temperature: float = 0.0, max_tokens: int = DEFAULT_MAX_TOKENS
    ) -> T: ...

    def complete_text(
        self, messages: list[Message], *, temperature: float = 0.0, max_tokens: int = DEFAULT_MAX_TOKENS
    ) -> str: ...

    def stream_text(
        self, messages: list[Message], *, temperature: float = 0.0, max_tokens: int = DEFAULT_MAX_TOKENS
    ) -> Iterator[str]: ...

    def health(self) -> Health: ...


def _resolve_local(settings: Settings) -> _Target:
    """`MOCKML_MODEL=local`: the embedded llama.cpp server's loopback target, starting the server on first use.

    A ConfigError says how to fix a missing extra (pip install -e '.[local]') or model (`mockml local setup`).
    """
    from app import local_llm  # lazily: only `local` users pay for it

    try:
        endpoint = local_llm.local_endpoint(settings)
    except local_llm.LocalServerError as exc:
        raise LLMError(str(exc), kind="connection", attempts=1) from exc
    return _Target(model=endpoint.model, api_base=endpoint.api_base, api_key=endpoint.api_key)


def resolve_target(settings: Settings) -> _Target:
    """The litellm model id, base URL and key for these settings, or a ConfigError saying how to configure one."""
    model = settings.model.strip()
    if settings.offline:
        raise ConfigError(NO_MODEL_MESSAGE)
    if model.lower() == "local":
        return _resolve_local(settings)
    key = settings.api_key.get_secret_value() if settings.api_key is not None else None
    return _Target(model=model, api_base=settings.api_base or None, api_key=key or None)


def _status(exc: BaseException) -> int | None:
    code = getattr(exc, "status_code", None)
    return code if isinstance(code, int) else None


def _retry_after(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait (Retry-After / retry-after-ms), if it said."""
    headers: dict[str, str] = {}
    for source in (getattr(getattr(exc, "response", None), "headers", None), getattr(exc, "litellm_response_headers", None)):
        try:
            headers.update({str(k).lower(): str(v) for k, v in dict(source or {}).items()})
        except (TypeError, ValueError):
            continue
    if "retry-after-ms" in headers:
        try:
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return None


def _causes(exc: BaseException, limit: int = 8) -> Iterator[BaseException]:
    """The exceptions `exc` was raised from or during (not `exc` itself), nearest first."""
    seen = {id(exc)}
    cause = exc.__cause__ or exc.__context__
    while cause is not None and id(cause) not in seen and len(seen) <= limit:
        seen.add(id(cause))
        yield cause
        cause = cause.__cause__ or cause.__context__


def classify(exc: BaseException) -> tuple[str, float | None]:
    """The failure kind of a provider exception, and the Retry-After it carried."""
    import httpx
    import openai

    lit = _litellm()
    status = _status(exc)
    # Timeouts subclass connection errors in openai's hierarchy, so they are checked first.
    if isinstance(exc, (lit.Timeout, openai.APITimeoutError, TimeoutError, httpx.TimeoutException)):
        return "timeout", None
    if isinstance(exc, openai.RateLimitError) or status == 429:
        return "rate_limit", _retry_after(exc)
    if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)) or status in (401, 403):
        return "auth", None
    if _MISSING_KEY.search(str(exc)):
        return "auth", None  # litellm reports a missing key as a 500; retrying cannot conjure one
    if isinstance(exc, (openai.BadRequestError, openai.NotFoundError, openai.UnprocessableEntityError)) or status in (
        400,
        404,
        413,
        422,
    ):
        return "config", None
    if isinstance(exc, (openai.APIConnectionError, httpx.TransportError, ConnectionError)):
        return "connection", None
    # litellm re-raises a refused or dropped connection as a status-500 InternalServerError ("Connection error.");
    # the transport error underneath says what happened, and its hint (check MOCKML_API_BASE) is the useful one.
    if any(isinstance(cause, (openai.APIConnectionError, httpx.TransportError, ConnectionError)) for cause in _causes(exc)):
        return "connection", None
    # Anything else from the provider layer (5xx, litellm wrapping an unexpected provider error) may be transient.
    return "server", _retry_after(exc) if status == 503 else None


def _strip_reasoning(text: str) -> str:
    """Drop <think> blocks that reasoning models put before their answer."""
    return _THINK.sub("", text).strip()


def parse_json(text: str) -> Any:
    """JSON from a model reply, tolerating a Markdown fence or a sentence around one object."""
    text = _strip_reasoning(text)
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        first, last = text.find("{"), text.rfind("}")
        if 0 <= first < last:
            try:
                return json.loads(text[first : last + 1])
            except json.JSONDecodeError:
                pass
        raise ValueError(f"not JSON ({exc.msg} at character {exc.pos})") from None


def _validation_summary(exc: ValidationError, limit: int = 3) -> str:
    parts = []
    for err in exc.errors()[:limit]:
        where = ".".join(str(p) for p in err["loc"]) or "the object"
        parts.append(f"{where}: {err['msg']}")
    more = f" (and {exc.error_count() - limit} more)" if exc.error_count() > limit else ""
    return "; ".join(parts) + more


def _pick(mock: MockArg, attempt: int) -> MockResponse | None:
    """The mock reply for this attempt: a sequence gives one reply per attempt, its last repeating."""
    if mock is None or isinstance(mock, (str, Exception, dict)):
        return mock
    items = list(mock)
    return items[min(attempt, len(items)) - 1] if items else None


def _backoff(attempt: int, failure: BaseException | None) -> float:
    """Exponential backoff with jitter after `attempt`, stretched to a server's Retry-After (up to a cap)."""
    if isinstance(failure, _Failure) and failure.kind == "config":
        return 0.0  # a response-format downgrade: nothing to wait for
    delay: float = min(BACKOFF_MAX, BACKOFF_INITIAL * 2.0 ** (attempt - 1))
    delay += random.uniform(0, delay * BACKOFF_JITTER)
    if isinstance(failure, _Failure) and failure.retry_after is not None:
        delay = max(delay, min(failure.retry_after, RETRY_AFTER_CAP))
    return delay


def _wait(state: RetryCallState) -> float:
    """tenacity wait strategy: `_backoff` for the attempt that just failed."""
    return _backoff(state.attempt_number, state.outcome.exception() if state.outcome else None)


def _content(response: Any) -> tuple[str, str | None]:
    """The reply text and finish reason of a litellm ModelResponse."""
    try:
        choice = response.choices[0]
    except (AttributeError, IndexError, TypeError):
        return "", None
    message = getattr(choice, "message", None)
    return (getattr(message, "content", None) or ""), getattr(choice, "finish_reason", None)


def _tokens(usage: Any) -> tuple[int, int]:
    if usage is None:
        return 0, 0
    get = usage.get if isinstance(usage, dict) else lambda k, d=None: getattr(usage, k, d)
    return int(get("prompt_tokens", 0) or 0), int(get("completion_tokens", 0) or 0)


def _secrets(settings: Settings | None) -> list[str]:
    """Every credential that could surface in a provider's error text."""
    found = []
    if settings is not None and settings.api_key is not None:
        found.append(settings.api_key.get_secret_value())
    found += [v for k, v in os.environ.items() if k.upper().endswith(("API_KEY", "_TOKEN", "_SECRET")) and v]
    return sorted({s for s in found if len(s) >= 6}, key=len, reverse=True)


def redact(text: str, settings: Settings | None = None) -> str:
    """The text with every known credential (settings, *_API_KEY/_TOKEN/_SECRET variables) and key-looking token as ***."""
    for secret in _secrets(settings):
        text = text.replace(secret, "***")
    for pattern, repl in _GENERIC_SECRETS:
        text = pattern.sub(repl, text)
    return text


class LLM:
    """A litellm-backed model from Settings; construction never touches the network (see `health()`)."""

    def __init__(self, settings: Settings, *, mock_response: MockArg = None) -> None:
        if settings.offline:
            raise ConfigError(NO_MODEL_MESSAGE)
        self.settings = settings
        self.model = settings.model.strip()
        self.usage = Usage()
        self._mock = mock_response
        self._lock = threading.Lock()
        self._target_cache: _Target | None = None
        self._format: str | None = None

    def __repr__(self) -> str:
        return f"LLM(model={self.model!r})"

    # ---- public API -------------------------------------------------------------------------------------

    def complete_json(
        self,
        messages: list[Message],
        schema: type[T],
        *,
        temperature: float = 0.0,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        retries: int | None = None,
        mock_response: MockArg = None,
    ) -> T:
        """A reply validated against `schema`; retried on transient errors and on invalid or off-schema output."""
        target = self._target()
        base = self._with_schema(messages, schema)
        repair: list[Message] = []

        def attempt(n: int) -> T:
            params: dict[str, Any] = {"temperature": temperature, "max_tokens": max_tokens}
            fmt = self._format_for(target)
            if fmt == "json_schema":
                params["response_format"] = {
                    "type": "json_schema",
                    # strict=False: OpenAI's strict mode rejects optional fields; pydantic validates anyway.
                    "json_schema": {"name": schema.__name__, "schema": schema.model_json_schema(), "strict": False},
                }
            elif fmt == "json_object":
                params["response_format"] = {"type": "json_object"}
            response, tokens = self._send("complete_json", target, base + repair, n, mock_response, fmt=fmt, **params)
            text, finish = _content(response)
            if not text.strip():
                raise _Failure("empty", f"no text (finish_reason={finish})", tokens=tokens)
            cut = " (cut off at max_tokens)" if finish == "length" else ""
            try:
                data = parse_json(text)
                return schema.model_validate(data)
            except ValueError as exc:
                if isinstance(exc, ValidationError):
                    problem = f"the JSON does not match the schema {schema.__name__}: {_validation_summary(exc)}{cut}"
                else:
                    problem = f"the reply is {exc}{cut}"
                # The next attempt sees its own bad reply and what was wrong with it, which fixes most slips.
                # Redacted: a reply that quotes a credential would otherwise be re-sent and echoed by debug logs.
                repair[:] = [
                    {"role": "assistant", "content": self._redact(text[:MAX_REPAIR_REPLY_CHARS])},
                    {"role": "user", "content": render("json_repair.md", problem=problem)},
                ]
                raise _Failure("invalid_output", problem, reply=text, tokens=tokens) from None

        return self._run("complete_json", attempt, retries)

    def complete_text(
        self,
        messages: list[Message],
        *,
        temperature: float = 0.0,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        retries: int | None = None,
        mock_response: MockArg = None,
    ) -> str:
        """The reply text (reasoning blocks removed); retried on transient errors and empty replies."""
        target = self._target()

        def attempt(n: int) -> str:
            response, tokens = self._send(
                "complete_text", target, list(messages), n, mock_response, temperature=temperature, max_tokens=max_tokens
            )
            raw, finish = _content(response)
            text = _strip_reasoning(raw)
            if not text:
                raise _Failure("empty", f"no text (finish_reason={finish})", tokens=tokens)
            return text

        return self._run("complete_text", attempt, retries)

    def stream_text(
        self,
        messages: list[Message],
        *,
        temperature: float = 0.0,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        retries: int | None = None,
        mock_response: MockArg = None,
    ) -> Iterator[str]:
        """Yield the reply in pieces; retried only until the first piece (see the module docstring)."""
        target = self._target()
        total = self._attempts(retries)
        with self._lock:
            self.usage.calls += 1
        # A hand-written loop, not tenacity's: its attempt context would swallow GeneratorExit when the
        # consumer stops reading early.
        for attempt in range(1, total + 1):
            received: list[str] = []
            tokens = (0, 0)
            try:
                stream, _ = self._send(
                    "stream_text", target, list(messages), attempt, mock_response, stream=True,
                    temperature=temperature, max_tokens=max_tokens, stream_options={"include_usage": True},
                )
                for chunk in stream:
                    if getattr(chunk, "usage", None):
                        tokens = _tokens(chunk.usage)
                    choices = getattr(chunk, "choices", None) or []
                    piece = getattr(getattr(choices[0], "delta", None), "content", None) if choices else None
                    if piece:
                        received.append(piece)
                        yield piece
            except Exception as exc:  # noqa: BLE001 - every provider failure is classified
                failure = exc if isinstance(exc, _Failure) else self._failure(exc)
                failure.tokens = tokens
                if received:
                    failure.retryable = False  # text already shown cannot be taken back
                    failure.detail = f"the stream stopped after {sum(map(len, received))} characters: {failure.detail}"
            else:
                if received:
                    self._charge(tokens)
                    self._log_tokens("stream_text", attempt, total, tokens)
                    return
                failure = _Failure("empty", "the stream ended without text", tokens=tokens)
            self._charge(tokens)
            self._note_failure("stream_text", attempt, total, failure)
            if received:
                message = self._message(failure, attempt)
                raise StreamInterrupted(message, kind=failure.kind, attempts=attempt, partial="".join(received))
            if not failure.retryable or attempt == total:
                raise LLMError(self._message(failure, attempt), kind=failure.kind, attempts=attempt)
            delay = _backoff(attempt, failure)
            logger.info("llm %s: retrying after %s in %.2f s (attempt %d)", self.model, failure.kind, delay, attempt)
            _sleep(delay)

    def health(self, *, mock_response: MockArg = None) -> Health:
        """One tiny request, no retries: is the configured model reachable and answering?"""
        started = time.perf_counter()
        try:
            text = self.complete_text(
                [{"role": "user", "content": render("health.md")}], max_tokens=5, retries=0, mock_response=mock_response
            )
        except (LLMError, ConfigError) as exc:
            return Health(False, self.model, round((time.perf_counter() - started) * 1000, 1), str(exc))
        return Health(True, self.model, round((time.perf_counter() - started) * 1000, 1), f"replied {text[:20]!r}")

    # ---- internals --------------------------------------------------------------------------------------

    def _target(self) -> _Target:
        if self._target_cache is None:
            self._target_cache = resolve_target(self.settings)
        return self._target_cache

    def _attempts(self, retries: int | None) -> int:
        return 1 + max(0, self.settings.llm_retries if retries is None else retries)

    def _retrying(self, total: int) -> Retrying:
        return Retrying(
            stop=stop_after_attempt(total),
            wait=_wait,
            retry=retry_if_exception(lambda e: isinstance(e, _Failure) and e.retryable),
            sleep=lambda seconds: _sleep(seconds),  # looked up at call time so tests can patch `_sleep`
            before_sleep=self._before_sleep,
            reraise=True,
        )

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        kind = exc.kind if isinstance(exc, _Failure) else type(exc).__name__
        logger.info("llm %s: retrying after %s in %.2f s (attempt %d)", self.model, kind, wait, state.attempt_number)

    def _run(self, op: str, attempt: Callable[[int], R], retries: int | None) -> R:
        total = self._attempts(retries)
        counter = itertools.count(1)
        last = 0
        with self._lock:
            self.usage.calls += 1

        def once() -> R:
            nonlocal last
            last = next(counter)
            try:
                return attempt(last)
            except _Failure as failure:
                self._note_failure(op, last, total, failure)
                raise

        try:
            return self._retrying(total)(once)
        except _Failure as failure:
            raise LLMError(self._message(failure, last), kind=failure.kind, attempts=last) from None

    def _send(
        self,
        op: str,
        target: _Target,
        messages: list[Message],
        attempt: int,
        mock_response: MockArg,
        *,
        fmt: str | None = None,
        stream: bool = False,
        **params: Any,
    ) -> tuple[Any, tuple[int, int]]:
        """One request; returns the response and its (prompt, completion) tokens, or raises a classified _Failure."""
        lit = _litellm()
        kwargs: dict[str, Any] = {
            "model": target.model,
            "messages": messages,
            "timeout": self.settings.llm_timeout,
            "num_retries": 0,  # retries are ours: counted, logged and bounded in one place
            "drop_params": True,  # e.g. models that refuse a temperature: drop it rather than fail
            **params,
        }
        if stream:
            kwargs["stream"] = True
        if target.api_base:
            kwargs["api_base"] = target.api_base
        if target.api_key:
            kwargs["api_key"] = target.api_key
        mock = _pick(mock_response if mock_response is not None else self._mock, attempt)
        if mock is not None:
            # litellm tests `if mock_response:`, so an empty string would silently make a real request.
            kwargs["mock_response"] = lit.ModelResponse(**_EMPTY_REPLY) if mock == "" else mock
        with self._lock:
            self.usage.attempts += 1
        try:
            response = lit.completion(**kwargs)
        except Exception as exc:  # noqa: BLE001 - every provider failure is classified
            failure = self._failure(exc)
            if failure.kind == "config" and fmt not in (None, "none") and _FORMAT_REJECTED.search(failure.detail):
                # The provider refuses this response_format: ask again with a weaker one (the schema is in the prompt).
                self._format = _FORMATS[_FORMATS.index(fmt) + 1]
                failure.retryable = True
                failure.detail += f" (retrying with response_format {self._format})"
            raise failure from None
        if stream:
            return response, (0, 0)  # a stream's tokens arrive with its last chunk
        tokens = _tokens(getattr(response, "usage", None))
        self._charge(tokens)
        self._log_tokens(op, attempt, None, tokens)
        return response, tokens

    def _charge(self, tokens: tuple[int, int]) -> None:
        """Add an attempt's tokens to the totals (retry tokens are a subset, added by `_note_failure`)."""
        with self._lock:
            self.usage.prompt_tokens += tokens[0]
            self.usage.completion_tokens += tokens[1]

    def _log_tokens(self, op: str, attempt: int, total: int | None, tokens: tuple[int, int]) -> None:
        logger.info(
            "llm %s: %s attempt %d%s: prompt_tokens=%d completion_tokens=%d",
            self.model, op, attempt, f"/{total}" if total else "", tokens[0], tokens[1],
        )

    def _note_failure(self, op: str, attempt: int, total: int, failure: _Failure) -> None:
        """Count a failed attempt; the tokens it spent were wasted, so they are retry tokens."""
        prompt, completion = failure.tokens
        with self._lock:
            self.usage.failures += 1
            self.usage.retry_prompt_tokens += prompt
            self.usage.retry_completion_tokens += completion
        logger.warning(
            "llm %s: %s attempt %d/%d failed (%s): %s; prompt_tokens=%d completion_tokens=%d",
            self.model, op, attempt, total, failure.kind, failure.detail, prompt, completion,
        )

    def _failure(self, exc: BaseException) -> _Failure:
        kind, retry_after = classify(exc)
        # litellm prefixes the provider's words with its exception chain ("litellm.InternalServerError:
        # InternalServerError: OpenAIException - "); the user is shown what the provider said, nothing else.
        text = _EXCEPTION_CHAIN.sub("", " ".join(str(exc).split()))
        detail = self._redact(text)[:MAX_DETAIL_CHARS] or type(exc).__name__
        return _Failure(kind, detail, retry_after=retry_after)

    def _format_for(self, target: _Target) -> str:
        if self._format is None:
            self._format = self._initial_format(target)
        return self._format

    @staticmethod
    def _initial_format(target: _Target) -> str:
        """The strongest structured-output mode the provider is known to accept."""
        lit = _litellm()
        try:
            if lit.supports_response_schema(model=target.model):
                return "json_schema"
            _, provider, _, _ = lit.get_llm_provider(model=target.model, api_base=target.api_base)
            # OpenAI-compatible servers (vLLM, llama.cpp, LM Studio, Ollama) accept json_schema though litellm's
            # price list does not know their model names.
            if target.api_base and provider in {"openai", "hosted_vllm", "lm_studio"}:
                return "json_schema"
            supported = lit.get_supported_openai_params(model=target.model, custom_llm_provider=provider) or []
            return "json_object" if "response_format" in supported else "none"
        except Exception:  # noqa: BLE001 - an unknown model id is reported by the request itself
            return "none"

    @staticmethod
    def _with_schema(messages: list[Message], schema: type[BaseModel]) -> list[Message]:
        """The messages with the schema stated in the system message (providers without response_format need it)."""
        # Compact: the schema is repeated in every request, and indentation costs tokens (and time on a CPU model).
        schema_json = json.dumps(schema.model_json_schema(), separators=(",", ":"))
        out = [dict(m) for m in messages]
        if out and out[0].get("role") == "system":
            out[0]["content"] = render(
                "json_output.md", instructions=str(out[0].get("content") or ""), schema_name=schema.__name__, schema_json=schema_json
            )
        else:
            out.insert(0, {"role": "system", "content": render("json_output.md", instructions="", schema_name=schema.__name__, schema_json=schema_json)})
        return out

    def _redact(self, text: str) -> str:
        """The text with every known credential and key-looking token replaced by ***."""
        return redact(text, self.settings)

    def _message(self, failure: _Failure, attempts: int) -> str:
        what = _KIND_TEXT.get(failure.kind, "failed")
        return self._redact(f"model {self.model} {what} after {attempts} attempt(s): {failure.detail}")
