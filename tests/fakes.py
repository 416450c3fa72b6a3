"""A scripted stand-in for `app.llm.LLM` (after simonw/llm's tests/conftest.py MockModel): enqueue replies, read history."""

from __future__ import annotations

import copy
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar, Union

from pydantic import BaseModel, ValidationError

from app.errors import LLMError
from app.llm import DEFAULT_MAX_TOKENS, Health, Message, Usage, parse_json

T = TypeVar("T", bound=BaseModel)
# A reply: JSON text or plain text, a dict or model for complete_json, a list of pieces for stream_text (an
# exception among them interrupts the stream there), an exception to raise, or a callable of the messages.
Reply = Union[str, dict[str, Any], BaseModel, BaseException, list[Any], Callable[[list[Message]], Any]]


@dataclass
class Call:
    """One call made to the fake: which method, with what."""

    method: str
    messages: list[Message]
    schema: type[BaseModel] | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)


class FakeLLM:
    """Usable wherever `LLM` is; replies come from a queue, calls are recorded, no network ever."""

    def __init__(self, model: str = "fake/model", replies: Iterable[Reply] = ()) -> None:
        self.model = model
        self.usage = Usage()
        self.history: list[list[Message]] = []
        self.calls: list[Call] = []
        self._queue: deque[Reply] = deque(replies)

    def enqueue(self, *replies: Reply) -> FakeLLM:
        """Add replies, consumed one per call in order."""
        self._queue.extend(replies)
        return self

    @property
    def pending(self) -> int:
        """Replies not consumed yet (a test can assert it is 0)."""
        return len(self._queue)

    def _next(self, method: str, messages: list[Message], schema: type[BaseModel] | None, kwargs: dict[str, Any]) -> Any:
        self.history.append(copy.deepcopy(messages))
        self.calls.append(Call(method, copy.deepcopy(messages), schema, dict(kwargs)))
        self.usage.calls += 1
        self.usage.attempts += 1
        if not self._queue:
            raise AssertionError(f"FakeLLM.{method}: no reply enqueued for call {len(self.calls)}")
        reply = self._queue.popleft()
        if callable(reply) and not isinstance(reply, (BaseModel, BaseException, type)):
            reply = reply(messages)
        if isinstance(reply, BaseException):
            raise reply
        return reply

    def complete_json(
        self,
        messages: list[Message],
        schema: type[T],
        *,
        temperature: float = 0.0,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        **kwargs: Any,
    ) -> T:
        """The next reply validated against `schema`; an off-schema reply fails like the real one does."""
        reply = self._next("complete_json", messages, schema, {"temperature": temperature, "max_tokens": max_tokens, **kwargs})
        try:
            if isinstance(reply, BaseModel):
                return schema.model_validate(reply.model_dump())
            return schema.model_validate(parse_json(reply) if isinstance(reply, str) else reply)
        except ValueError as exc:  # ValidationError included
            detail = str(exc) if not isinstance(exc, ValidationError) else f"{exc.error_count()} schema error(s)"
            raise LLMError(f"model {self.model} did not return valid JSON: {detail}", kind="invalid_output", attempts=1) from None

    def complete_text(
        self, messages: list[Message], *, temperature: float = 0.0, max_tokens: int = DEFAULT_MAX_TOKENS, **kwargs: Any
    ) -> str:
        """The next reply as text."""
        reply = self._next("complete_text", messages, None, {"temperature": temperature, "max_tokens": max_tokens, **kwargs})
        return "".join(map(str, reply)) if isinstance(reply, list) else str(reply)

    def stream_text(
        self, messages: list[Message], *, temperature: float = 0.0, max_tokens: int = DEFAULT_MAX_TOKENS, **kwargs: Any
    ) -> Iterator[str]:
        """The next reply in pieces: a list as given, a string word by word."""
        reply = self._next("stream_text", messages, None, {"temperature": temperature, "max_tokens": max_tokens, **kwargs})
        pieces = reply if isinstance(reply, list) else re.findall(r"\S+\s*|\s+", str(reply))
        for piece in pieces:
            if isinstance(piece, BaseException):
                raise piece
            yield str(piece)

    def health(self, **kwargs: Any) -> Health:
        """Always healthy; does not consume a reply."""
        return Health(True, self.model, 0.0, "fake")
