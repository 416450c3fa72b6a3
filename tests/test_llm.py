"""The LLM seam: structured output, bounded retries per failure kind, token accounting, secrets. No network."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, SecretStr

import app.llm as llm_module
from app.config import Settings
from app.errors import ConfigError, LLMError
from app.llm import LLM, NO_MODEL_MESSAGE, StreamInterrupted, Usage, parse_json

FAKE_KEY = "sk-test-NOT-A-REAL-KEY-1234567890abcdef"
ENV_KEY = "sk-env-ALSO-FAKE-0987654321fedcba"
MODEL = "openai/gpt-4o-mini"
MSGS = [{"role": "user", "content": "Grade this."}]
GOOD = '{"name": "recall", "score": 3}'


class Reply(BaseModel):
    name: str
    score: int


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a socket fails the test: every call here must be mocked."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network access attempted in a unit test: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(autouse=True)
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Backoff sleeps, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(llm_module, "_sleep", recorded.append)
    return recorded


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", model=MODEL, api_key=SecretStr(FAKE_KEY), llm_retries=2, llm_timeout=5)


@pytest.fixture()
def lit() -> Any:
    return llm_module._litellm()


@pytest.fixture()
def spy(monkeypatch: pytest.MonkeyPatch, lit: Any) -> list[dict[str, Any]]:
    """Record every litellm.completion call's kwargs, then let litellm's mock answer it."""
    calls: list[dict[str, Any]] = []
    real = lit.completion

    def completion(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(lit, "completion", completion)
    return calls


def _request() -> httpx.Request:
    return httpx.Request("POST", "https://api.example.invalid/v1/chat/completions")


def timeout_error(lit: Any) -> Exception:
    return lit.Timeout("request timed out", model=MODEL, llm_provider="openai")


def rate_limit_error(lit: Any, headers: dict[str, str] | None = None) -> Exception:
    response = httpx.Response(429, headers=headers or {}, request=_request())
    return lit.RateLimitError("slow down", llm_provider="openai", model=MODEL, response=response)


def connection_error(lit: Any) -> Exception:
    return lit.APIConnectionError("connection refused", llm_provider="openai", model=MODEL)


def server_error(lit: Any) -> Exception:
    return lit.InternalServerError("upstream exploded", llm_provider="openai", model=MODEL)


def unavailable_error(lit: Any) -> Exception:
    return lit.ServiceUnavailableError("overloaded", llm_provider="openai", model=MODEL)


def auth_error(lit: Any, message: str = "Incorrect API key provided") -> Exception:
    return lit.AuthenticationError(message, llm_provider="openai", model=MODEL)


def bad_request_error(lit: Any, message: str = "model does not exist") -> Exception:
    return lit.BadRequestError(message, model=MODEL, llm_provider="openai")


RETRYABLE: list[tuple[str, Callable[[Any], Any]]] = [
    ("timeout", timeout_error),
    ("rate_limit", rate_limit_error),
    ("connection", connection_error),
    ("server", server_error),
    ("server", unavailable_error),
    ("empty", lambda lit: ""),
    ("invalid_output", lambda lit: "Sure! Here is the grade: recall, 3"),
    ("invalid_output", lambda lit: '{"name": "recall", "score": "three"}'),
]


# ---- configuration ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["offline", "", "  none "])
def test_offline_model_says_how_to_configure(model: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        LLM(Settings(data_dir=tmp_path, model=model))
    assert str(info.value) == NO_MODEL_MESSAGE
    assert "MOCKML_MODEL=openai/gpt-4o-mini" in str(info.value) and "OPENAI_API_KEY" in str(info.value)
    assert info.value.exit_code == 2


def test_local_model_goes_through_the_hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    llm = LLM(Settings(data_dir=tmp_path, model="local"))  # constructing is free: nothing resolved yet
    with pytest.raises(ConfigError, match="mockml local setup"):
        llm.complete_text(MSGS, mock_response="hi")
    monkeypatch.setattr(llm_module, "_resolve_local", lambda s: llm_module._Target("openai/qwen", "http://127.0.0.1:9/v1", "local"))
    assert LLM(Settings(data_dir=tmp_path, model="local")).complete_text(MSGS, mock_response="hello") == "hello"


def test_constructor_and_usage_start_clean(settings: Settings, spy: list[dict[str, Any]]) -> None:
    llm = LLM(settings)
    assert spy == [] and llm.usage == Usage()
    assert FAKE_KEY not in repr(llm) and FAKE_KEY not in repr(llm_module.resolve_target(settings))


def test_model_base_and_key_are_passed_through(tmp_path: Path, spy: list[dict[str, Any]]) -> None:
    s = Settings(data_dir=tmp_path, model="openai/qwen2.5", api_base="http://127.0.0.1:8080/v1", api_key=SecretStr(FAKE_KEY))
    LLM(s).complete_text(MSGS, mock_response="ok")
    call = spy[0]
    assert (call["model"], call["api_base"], call["api_key"]) == ("openai/qwen2.5", "http://127.0.0.1:8080/v1", FAKE_KEY)
    assert call["num_retries"] == 0 and call["timeout"] == s.llm_timeout


# ---- structured output -------------------------------------------------------------------------------------


def test_complete_json_validates_and_states_schema(settings: Settings, spy: list[dict[str, Any]]) -> None:
    reply = LLM(settings).complete_json(MSGS, Reply, mock_response=GOOD)
    assert reply == Reply(name="recall", score=3)
    call = spy[0]
    system = call["messages"][0]
    assert system["role"] == "system" and '"score"' in system["content"] and "Reply" in system["content"]
    assert call["messages"][1:] == MSGS
    assert call["temperature"] == 0.0
    fmt = call["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"]["properties"].keys() == {"name", "score"}


def test_existing_system_message_is_kept(settings: Settings, spy: list[dict[str, Any]]) -> None:
    messages = [{"role": "system", "content": "You are a strict grader."}, *MSGS]
    LLM(settings).complete_json(messages, Reply, mock_response=GOOD)
    sent = spy[0]["messages"]
    assert len(sent) == 2 and sent[0]["content"].startswith("You are a strict grader.") and '"score"' in sent[0]["content"]
    assert messages[0]["content"] == "You are a strict grader."  # the caller's list is not mutated


def test_provider_without_schema_support_gets_json_object(tmp_path: Path, spy: list[dict[str, Any]]) -> None:
    LLM(Settings(data_dir=tmp_path, model="ollama/qwen2.5")).complete_json(MSGS, Reply, mock_response=GOOD)
    assert spy[0]["response_format"] == {"type": "json_object"}


def test_rejected_response_format_is_downgraded(settings: Settings, lit: Any, spy: list[dict[str, Any]]) -> None:
    llm = LLM(settings)
    reply = llm.complete_json(
        MSGS, Reply, mock_response=[bad_request_error(lit, "response_format json_schema is not supported"), GOOD]
    )
    assert reply.score == 3
    assert spy[0]["response_format"]["type"] == "json_schema" and spy[1]["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize(
    "text",
    [GOOD, f"```json\n{GOOD}\n```", f"<think>hmm</think>\n{GOOD}", f"Here you go: {GOOD} Hope it helps."],
)
def test_parse_json_tolerates_wrapping(text: str) -> None:
    assert parse_json(text) == json.loads(GOOD)


def test_invalid_output_is_repaired_on_the_next_attempt(settings: Settings, spy: list[dict[str, Any]]) -> None:
    bad = '{"name": "recall", "score": "three"}'
    assert LLM(settings).complete_json(MSGS, Reply, mock_response=[bad, GOOD]).score == 3
    second = spy[1]["messages"]
    assert second[-2] == {"role": "assistant", "content": bad}
    assert second[-1]["role"] == "user" and "score" in second[-1]["content"] and "schema" in second[-1]["content"]


# ---- retries -----------------------------------------------------------------------------------------------


def test_the_failure_message_quotes_the_provider_not_litellms_exception_chain(settings: Settings, lit: Any, sleeps: list[float]) -> None:
    with pytest.raises(LLMError) as info:
        LLM(settings).complete_json(MSGS, Reply, mock_response=server_error(lit))
    assert "upstream exploded" in str(info.value)
    assert "litellm." not in str(info.value) and "InternalServerError" not in str(info.value)


@pytest.mark.parametrize(("kind", "make"), RETRYABLE)
def test_retryable_failure_gives_up_after_bounded_attempts(
    kind: str, make: Callable[[Any], Any], settings: Settings, lit: Any, sleeps: list[float]
) -> None:
    llm = LLM(settings)
    with pytest.raises(LLMError) as info:
        llm.complete_json(MSGS, Reply, mock_response=make(lit))
    assert (info.value.kind, info.value.attempts) == (kind, 3)
    assert llm.usage.attempts == 3 and llm.usage.failures == 3
    # Exponential backoff: 0.5 s then 1 s, each with at most 25 % jitter.
    assert len(sleeps) == 2
    assert 0.5 <= sleeps[0] <= 0.625 and 1.0 <= sleeps[1] <= 1.25


@pytest.mark.parametrize(("kind", "make"), RETRYABLE)
def test_retryable_failure_then_success(kind: str, make: Callable[[Any], Any], settings: Settings, lit: Any) -> None:
    llm = LLM(settings)
    assert llm.complete_json(MSGS, Reply, mock_response=[make(lit), GOOD]).name == "recall"
    assert llm.usage.attempts == 2 and llm.usage.failures == 1 and llm.usage.calls == 1


@pytest.mark.parametrize(
    ("kind", "make"),
    [
        ("auth", auth_error),
        ("config", bad_request_error),
        ("config", lambda lit: lit.NotFoundError("no such model", model=MODEL, llm_provider="openai")),
        ("auth", lambda lit: lit.InternalServerError("Missing credentials. Please pass an `api_key`", llm_provider="openai", model=MODEL)),
    ],
)
def test_non_retryable_failure_fails_at_once(
    kind: str, make: Callable[[Any], Any], settings: Settings, lit: Any, sleeps: list[float]
) -> None:
    with pytest.raises(LLMError) as info:
        LLM(settings).complete_json(MSGS, Reply, mock_response=make(lit))
    assert (info.value.kind, info.value.attempts, sleeps) == (kind, 1, [])


def test_retries_setting_bounds_attempts(tmp_path: Path, lit: Any) -> None:
    llm = LLM(Settings(data_dir=tmp_path, model=MODEL, llm_retries=0))
    with pytest.raises(LLMError) as info:
        llm.complete_text(MSGS, mock_response=server_error(lit))
    assert info.value.attempts == 1


@pytest.mark.parametrize(
    ("headers", "low", "high"),
    [({"retry-after": "7"}, 7.0, 7.0), ({"retry-after": "600"}, 30.0, 30.0), ({"retry-after-ms": "2500"}, 2.5, 2.5), ({}, 0.5, 0.625)],
)
def test_rate_limit_honours_retry_after_up_to_a_cap(
    headers: dict[str, str], low: float, high: float, settings: Settings, lit: Any, sleeps: list[float]
) -> None:
    LLM(settings).complete_json(MSGS, Reply, mock_response=[rate_limit_error(lit, headers), GOOD])
    assert len(sleeps) == 1 and low <= sleeps[0] <= high


def test_raw_transport_errors_are_classified(settings: Settings, lit: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    raised: list[Exception] = [httpx.ConnectError("refused"), httpx.ReadTimeout("slow")]

    def completion(**kwargs: Any) -> Any:
        raise raised.pop(0)

    monkeypatch.setattr(lit, "completion", completion)
    llm = LLM(settings)
    with pytest.raises(LLMError) as info:
        llm.complete_text(MSGS, retries=0)
    assert info.value.kind == "connection"
    with pytest.raises(LLMError) as info:
        llm.complete_text(MSGS, retries=0)
    assert info.value.kind == "timeout"


# ---- usage and logging -------------------------------------------------------------------------------------


def test_every_attempt_logs_tokens_and_retry_tokens_are_counted(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mockml.llm")
    llm = LLM(settings)
    llm.complete_json(MSGS, Reply, mock_response=["not json", GOOD])
    # litellm's mock reports 10 prompt and 20 completion tokens per reply.
    assert (llm.usage.prompt_tokens, llm.usage.completion_tokens) == (20, 40)
    assert (llm.usage.retry_prompt_tokens, llm.usage.retry_completion_tokens) == (10, 20)
    assert llm.usage.retry_tokens == 30 and llm.usage.total_tokens == 60
    token_lines = [r for r in caplog.records if r.name == "mockml.llm" and "prompt_tokens=10 completion_tokens=20" in r.getMessage()]
    assert len(token_lines) >= 2
    assert any(r.levelno == logging.WARNING and "invalid_output" in r.getMessage() for r in caplog.records)


def test_usage_accumulates_across_calls(settings: Settings) -> None:
    llm = LLM(settings)
    llm.complete_text(MSGS, mock_response="one")
    llm.complete_text(MSGS, mock_response="two")
    assert (llm.usage.calls, llm.usage.attempts, llm.usage.total_tokens) == (2, 2, 60)


def test_api_key_never_in_errors_or_logs(
    settings: Settings, lit: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    caplog.set_level(logging.DEBUG)
    llm = LLM(settings)
    failures = [
        auth_error(lit, f"Incorrect API key provided: {FAKE_KEY}"),
        lit.InternalServerError(f"boom with header Authorization: Bearer {ENV_KEY}", llm_provider="openai", model=MODEL),
        bad_request_error(lit, f"bad request api_key={FAKE_KEY}"),
    ]
    messages: list[str] = []
    for failure in failures:
        with pytest.raises(LLMError) as info:
            llm.complete_json(MSGS, Reply, mock_response=failure)
        messages.append(str(info.value))
        assert info.value.__cause__ is None and info.value.__suppress_context__
    llm.complete_json(MSGS, Reply, mock_response=GOOD)
    out = capsys.readouterr()
    for text in [*messages, caplog.text, out.out, out.err]:
        assert FAKE_KEY not in text and ENV_KEY not in text
        assert FAKE_KEY[8:20] not in text
    assert "rejected the credentials" in messages[0] and "OPENAI_API_KEY" in messages[0]


# ---- text, streaming and health -----------------------------------------------------------------------------


def test_complete_text_strips_reasoning(settings: Settings) -> None:
    assert LLM(settings).complete_text(MSGS, mock_response="<think>plan</think>\nWhat is recall?") == "What is recall?"


def test_stream_yields_pieces_and_counts_tokens(settings: Settings) -> None:
    llm = LLM(settings)
    assert "".join(llm.stream_text(MSGS, mock_response="Why does dropout help?")) == "Why does dropout help?"
    assert llm.usage.attempts == 1 and llm.usage.completion_tokens > 0


def _chunk(text: str | None) -> Any:
    return SimpleNamespace(choices=[SimpleNamespace(delta=SimpleNamespace(content=text))], usage=None)


def test_stream_failing_before_first_piece_is_retried(
    settings: Settings, lit: Any, monkeypatch: pytest.MonkeyPatch, sleeps: list[float]
) -> None:
    replies: list[Any] = [connection_error(lit), iter([_chunk("Hello"), _chunk(" there")])]

    def completion(**kwargs: Any) -> Any:
        reply = replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    monkeypatch.setattr(lit, "completion", completion)
    assert list(LLM(settings).stream_text(MSGS)) == ["Hello", " there"]
    assert len(sleeps) == 1


def test_stream_stopping_halfway_raises_with_partial_text(settings: Settings, lit: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> Iterator[Any]:
        yield _chunk("The answer ")
        yield _chunk("is")
        raise server_error(lit)

    monkeypatch.setattr(lit, "completion", lambda **kwargs: broken())
    got: list[str] = []
    with pytest.raises(StreamInterrupted) as info:
        for piece in LLM(settings).stream_text(MSGS):
            got.append(piece)
    assert got == ["The answer ", "is"] and info.value.partial == "The answer is"
    assert (info.value.kind, info.value.attempts) == ("server", 1)
    assert isinstance(info.value, LLMError)


def test_empty_stream_is_retried_then_fails(settings: Settings, sleeps: list[float]) -> None:
    with pytest.raises(LLMError) as info:
        list(LLM(settings).stream_text(MSGS, mock_response=""))
    assert (info.value.kind, info.value.attempts, len(sleeps)) == ("empty", 3, 2)


def test_health_is_explicit_and_does_not_retry(settings: Settings, lit: Any, sleeps: list[float]) -> None:
    llm = LLM(settings)
    ok = llm.health(mock_response="OK")
    assert ok.ok and ok.model == MODEL
    bad = llm.health(mock_response=connection_error(lit))
    assert not bad.ok and "could not be reached" in bad.detail and FAKE_KEY not in bad.detail
    assert sleeps == [] and llm.usage.attempts == 2
