"""One exception family, carrying data; translated to a one-line message at the CLI/UI edge."""

from __future__ import annotations


class MockmlError(Exception):
    """Base class: `str(error)` is a message a user can act on."""

    exit_code: int = 1


class BadInput(MockmlError):
    """The user gave input we cannot use; the message says how to fix it (CLI exit code 2)."""

    exit_code = 2


class ConfigError(BadInput):
    """A setting is missing or wrong; the message names the variable to set."""


class LLMError(MockmlError):
    """The language model failed after bounded retries; callers fall back to the offline engine."""

    def __init__(self, message: str, *, kind: str = "error", attempts: int = 0) -> None:
        super().__init__(message)
        self.kind = kind
        self.attempts = attempts
