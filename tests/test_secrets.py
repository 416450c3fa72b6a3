"""Secrets: the API key comes from the environment and is never written to the database, logs, exports, reports,
error messages or the terminal, even when the provider fails and its error text quotes the key back.

A whole interview runs through the real `LLM` class over HTTP to the loopback fake server
(tests/fake_openai_server.py), which echoes the request's Authorization header in its error bodies the way some
proxies do; then everything written is searched for the key, byte for byte (the SQLite file and its WAL included).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import Any

import pytest

import app.llm as llm_module
from app.bank import Level
from app.config import Settings, get_settings
from app.errors import LLMError
from app.grading import Grader
from app.interview import Interviewer
from app.llm import LLM
from app.runtime import get_bank
from app.sessions import Mode, Phase, SessionConfig
from app.store import Store

from .conftest import FIXTURES
from .fake_openai_server import FakeOpenAIServer, Response, schema_reply

pytestmark = pytest.mark.slow  # the offline fallback loads MiniLM

KEY = "sk-test-SECRET-1234567890abcdef"
PROVIDER_KEY = "sk-proj-PROVIDER-abcdef1234567890"
# Pieces of the keys that must not appear either (a key cut short is still a leak).
NEEDLES = (KEY, "SECRET-1234567890abcdef", "1234567890abcdef", PROVIDER_KEY, "PROVIDER-abcdef1234567890")


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as srv:
        yield srv


def echoing(server: FakeOpenAIServer) -> Any:
    """A provider that fails in every way that can quote the key back, between valid replies."""
    n = count()

    def reply(payload: dict[str, Any]) -> Response:
        auth = server.requests[-1]["headers"].get("Authorization", "")
        i = next(n) % 5
        quoted = json.dumps({"error": {"message": f"Incorrect API key provided: {auth}. api_key={auth[7:]}", "type": "x"}})
        if i == 0:
            return Response(status=500, body=quoted.encode())
        if i == 1:
            return Response(status=429, headers={"Retry-After": "0"}, body=quoted.encode())
        if i == 2:
            return Response(content=f"I cannot comply. Your key is {auth[7:]}")  # invalid JSON that quotes the key
        if i == 3:
            return Response(status=401, body=quoted.encode())  # not retried: the offline engine takes over
        return schema_reply(payload)

    return reply


def leaks(blob: bytes | str) -> list[str]:
    data = blob if isinstance(blob, bytes) else blob.encode("utf-8", "surrogateescape")
    found = [n for n in NEEDLES if n.encode() in data]
    # SQLite stores text as UTF-8 by default, but check the wide encodings too.
    found += [f"{n} (utf-16)" for n in NEEDLES[:1] if n.encode("utf-16-le") in data]
    return found


def scan_dir(root: Path) -> dict[str, list[str]]:
    """Every file under root whose bytes hold (part of) a key."""
    return {str(p): found for p in root.rglob("*") if p.is_file() and (found := leaks(p.read_bytes()))}


@pytest.fixture()
def key_env(server: FakeOpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The environment a user sets: the key in MOCKML_API_KEY, the model on the loopback server."""
    data = tmp_path / "data"
    server.reset(echoing(server))
    for name, value in {"MOCKML_API_KEY": KEY, "MOCKML_MODEL": "openai/fake", "MOCKML_API_BASE": server.url,
                        "MOCKML_DATA_DIR": str(data), "MOCKML_KNOWLEDGE_DIR": str(FIXTURES / "bank"),
                        "MOCKML_COLLECTION": f"s{tmp_path.name[-20:]}", "MOCKML_LLM_TIMEOUT": "5",
                        "MOCKML_JUDGE_MODE": "rubric"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    get_settings.cache_clear()
    return data


def test_whole_interview_with_faults_writes_the_key_nowhere(
    key_env: Path, server: FakeOpenAIServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(llm_module, "_sleep", lambda seconds: None)
    caplog.set_level(logging.DEBUG)  # root at DEBUG, as `logging.basicConfig(level=logging.DEBUG)` would
    settings = get_settings()
    assert settings.api_key is not None and settings.api_key.get_secret_value() == KEY  # read from the environment
    assert not leaks(repr(settings)) and not leaks(settings.model_dump_json()) and not leaks(repr(LLM(settings)))

    bank = get_bank(settings)
    store = Store.from_settings(settings)
    interviewer = Interviewer(bank, Grader(settings, bank), store, llm=LLM(settings))
    reply = interviewer.start("kim", SessionConfig(level=Level.JUNIOR, questions=2, mode=Mode.COACH, engine="llm"))
    shown: list[str] = []
    for n in range(12):
        if reply.phase is Phase.DONE:
            break
        text = "no questions" if reply.phase is Phase.CANDIDATE_QUESTIONS else (
            "Bias is error from a model that is too simple, so it underfits; variance is sensitivity to the training "
            f"data, so it overfits. Precision is TP over predicted positives. ({n})")
        reply = interviewer.respond(reply.session_id, text)
        shown += [t.text for t in reply.turns] + reply.notes + ([reply.scorecard.model_dump_json()] if reply.scorecard else [])
    assert reply.phase is Phase.DONE
    # The key was used (every request carried it), and faults happened and were reported, redacted.
    requests = server.chat_requests
    assert requests and all(r["headers"].get("Authorization") == f"Bearer {KEY}" for r in requests)
    assert any("***" in n for n in shown), "a provider error quoting the key reached a note, redacted"
    session_id = reply.session_id
    exports = [store.export(session_id, "json"), store.export(session_id, "md")]
    assert all(p.is_file() for p in exports)
    reports = list((key_env / "reports").glob("*"))
    assert {p.suffix for p in reports} >= {".md", ".html", ".json", ".png"}
    store.close()

    assert not leaks("\n".join(shown))
    assert scan_dir(key_env) == {}  # database (+ WAL), exports, reports
    records = [(r.name, r.getMessage(), r.exc_text or "") for r in caplog.records]
    assert any("attempt" in m and "failed" in m for _, m, _ in records)  # the failures were logged ...
    assert [r for r in records if leaks(" ".join(r))] == []  # ... without the key
    assert not leaks(caplog.text)


def test_cli_with_debug_logging_prints_and_writes_no_key(key_env: Path, server: FakeOpenAIServer) -> None:
    """The real entry point with every logger at DEBUG on stderr: interview, history and export."""
    env = {**os.environ, "MOCKML_LLM_RETRIES": "1"}
    debug = ("import logging, sys; logging.basicConfig(level=logging.DEBUG); "
             "[logging.getLogger(n).setLevel(logging.DEBUG) for n in ('LiteLLM', 'openai', 'httpx', 'httpcore')]; "
             "from app.cli import main; sys.argv = ['mockml'] + sys.argv[1:]; main()")

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", debug, *args], input=stdin, capture_output=True, text=True, env=env, timeout=300)

    interview = run("interview", "-u", "lee", "--level", "junior", "-n", "1", "--engine", "llm",
                    stdin="Bias underfits; variance overfits.\n" * 3 + "no questions\n")
    assert interview.returncode == 0, interview.stderr[-3000:]
    assert "DEBUG" in interview.stderr  # debug logging really was on
    history = run("history", "-u", "lee", "--json")
    (row,) = json.loads(history.stdout)
    outputs = [interview, history]
    for fmt in ("json", "md"):
        exported = run("export", row["id"], "-f", fmt)
        assert exported.returncode == 0, exported.stderr
        outputs.append(exported)
    assert server.chat_requests and all(r["headers"].get("Authorization") == f"Bearer {KEY}" for r in server.chat_requests)
    for proc in outputs:
        assert not leaks(proc.stdout), proc.args
        assert not leaks(proc.stderr), [line for line in proc.stderr.splitlines() if leaks(line)][:3]
    assert scan_dir(key_env) == {}


def test_provider_variable_is_used_and_redacted(server: FakeOpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """With only OPENAI_API_KEY set, that key is sent, and a provider error quoting it is redacted."""
    monkeypatch.setattr(llm_module, "_sleep", lambda seconds: None)
    monkeypatch.setenv("OPENAI_API_KEY", PROVIDER_KEY)
    caplog.set_level(logging.DEBUG)
    server.reset(echoing(server))
    llm = LLM(Settings(data_dir=tmp_path, model="openai/fake", api_base=server.url, llm_retries=1))
    with pytest.raises(LLMError) as info:
        llm.complete_text([{"role": "user", "content": "hi"}])
    assert server.chat_requests[0]["headers"]["Authorization"] == f"Bearer {PROVIDER_KEY}"
    assert "***" in str(info.value) and not leaks(str(info.value))
    assert not leaks(caplog.text)


def test_speech_api_errors_are_redacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A transcription provider error that quotes the key (it used to be passed through verbatim)."""
    import litellm
    import numpy as np

    from app.speech import transcribe

    monkeypatch.setenv("MOCKML_API_KEY", KEY)
    monkeypatch.setenv("MOCKML_MODEL", "openai/fake")
    get_settings.cache_clear()

    def failing(**kwargs: Any) -> Any:
        raise RuntimeError(f"401 Incorrect API key provided: {kwargs.get('api_key')} (header Bearer {kwargs.get('api_key')})")

    monkeypatch.setattr(litellm, "transcription", failing)
    with pytest.raises(LLMError) as info:
        transcribe(np.full(16_000, 0.1, dtype=np.float32), engine="api")
    assert "Incorrect API key" in str(info.value) and not leaks(str(info.value))
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no traceback chain that quotes it
