"""A loopback OpenAI-compatible chat server for tests, standard library only (http.server in a thread).

It speaks just enough of `POST /v1/chat/completions` (plain and `stream: true`) for litellm's `openai/` provider,
and injects the faults a real provider produces: a reply slower than the client's timeout, 429 with Retry-After,
500, an empty reply, text that is not JSON, JSON that violates the requested schema, and a reply cut off halfway
(a non-streamed body shorter than its Content-Length, or an SSE stream closed after a few chunks). A refused
connection needs no server at all: `closed_port_url()` names a port nothing listens on.

    with FakeOpenAIServer() as server:
        server.enqueue(fault("server"), ok('{"score": 3}'))   # one reply per request, in order
        server.default = fault("server")                       # what every request gets once the queue is empty
        ... MOCKML_API_BASE=server.url, MOCKML_MODEL=openai/fake ...
        server.requests                                        # every request: path, headers, JSON body
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Union

FAULTS = ("timeout", "connection", "rate_limit", "server", "empty", "invalid_json", "off_schema", "stream_cut")


@dataclass
class Response:
    """What the server sends for one request."""

    status: int = 200
    content: str | None = ""  # the assistant message text (None: send `body` as is)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (longer than the client's timeout = a timeout)
    cut: bool = False  # send only part of the reply, then close the connection
    body: bytes | None = None  # a raw body instead of a chat completion
    drop: bool = False  # hang up without answering (the listening-socket cousin of a refused connection)


# A reply, or a function of the request's JSON body that returns one.
Script = Union[Response, Callable[[dict[str, Any]], Response]]


def ok(content: str) -> Response:
    """A successful reply with this assistant text."""
    return Response(content=content)


def fault(kind: str, *, retry_after: float = 3.0, delay: float = 5.0) -> Response:
    """The server side of one fault kind from FAULTS ("connection" hangs up; for a refused one use closed_port_url())."""
    if kind == "timeout":
        return Response(content='{"late": true}', delay=delay)
    if kind == "connection":
        return Response(drop=True)
    if kind == "rate_limit":
        return Response(status=429, headers={"Retry-After": f"{retry_after:g}"},
                        body=json.dumps({"error": {"message": "Rate limit reached for requests", "type": "rate_limit_exceeded",
                                                   "code": "rate_limit_exceeded"}}).encode())
    if kind == "server":
        return Response(status=500, body=json.dumps({"error": {"message": "The server had an error", "type": "server_error"}}).encode())
    if kind == "empty":
        return Response(content="")
    if kind == "invalid_json":
        return Response(content="Sure! Here is my assessment: the answer is {mostly right, I think")
    if kind == "off_schema":
        return Response(content='{"verdicts": "all good", "question": 42, "answer": "MAYBE", "score": 5}')
    if kind == "stream_cut":
        return Response(content='{"verdicts": [{"point_id": "a", "verdict": "covered", "evidence": "some long quote"}]}', cut=True)
    raise ValueError(f"no server-side fault {kind!r}; one of {FAULTS}")


def closed_port_url() -> str:
    """A base URL on a loopback port that nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def _completion(content: str, model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": max(1, len(content) // 4), "total_tokens": 11 + max(1, len(content) // 4)},
    }


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    data: dict[str, Any] = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
                            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(data)}\n\n".encode()


class FakeOpenAIServer:
    """An OpenAI-compatible fake on 127.0.0.1 (a random port), serving scripted replies from a thread."""

    def __init__(self, default: Script | None = None) -> None:
        self.default: Script = default or ok("OK")
        self.requests: list[dict[str, Any]] = []
        self._queue: deque[Script] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                body = json.dumps({"object": "list", "data": [{"id": "fake", "object": "model"}]}).encode()
                self._send(200, body, {"Content-Type": "application/json"})

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    payload = json.loads(raw or b"{}")
                except ValueError:
                    payload = {"_raw": raw.decode("utf-8", "replace")}
                with server._lock:
                    server.requests.append({"path": self.path, "headers": dict(self.headers.items()), "json": payload})
                    script = server._queue.popleft() if server._queue else server.default
                reply = script(payload) if callable(script) else script
                if reply.delay and server._stop.wait(reply.delay):
                    return  # shutting down
                if reply.drop:
                    self.close_connection = True
                    return
                try:
                    self._answer(reply, payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (e.g. its timeout fired first)

            def _send(self, status: int, body: bytes, headers: dict[str, str], *, length: int | None = None) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body) if length is None else length))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()

            def _answer(self, reply: Response, payload: dict[str, Any]) -> None:
                model = str(payload.get("model") or "fake")
                headers = {"Content-Type": "application/json", **reply.headers}
                if reply.body is not None or reply.content is None:
                    self._send(reply.status, reply.body or b"", headers)
                    return
                if payload.get("stream"):
                    self._stream(reply, model)
                    return
                body = json.dumps(_completion(reply.content, model)).encode()
                if reply.cut:
                    # Promise the whole body, send half of it, hang up: the reply stops halfway.
                    self.close_connection = True
                    self._send(reply.status, body[: len(body) // 2], {**headers, "Connection": "close"}, length=len(body))
                    return
                self._send(reply.status, body, headers)

            def _stream(self, reply: Response, model: str) -> None:
                # Chunked transfer encoding, as real servers stream: a cut leaves the body without its last chunk.
                self.close_connection = True
                self.send_response(reply.status)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Transfer-Encoding", "chunked")
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.end_headers()

                def event(data: bytes) -> None:
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    self.wfile.flush()

                text = reply.content or ""
                pieces = [text[i : i + 8] for i in range(0, len(text), 8)]
                if reply.cut:
                    pieces = pieces[: max(1, len(pieces) // 2)]
                event(_chunk(model, {"role": "assistant", "content": ""}))
                for piece in pieces:
                    event(_chunk(model, {"content": piece}))
                if reply.cut:
                    event(b'data: {"id": "chatcmpl-fake", "choi')  # half an event, then the line goes dead
                    return
                usage = {"prompt_tokens": 11, "completion_tokens": max(1, len(pieces)), "total_tokens": 11 + max(1, len(pieces))}
                event(_chunk(model, {}, "stop"))
                last = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
                        "choices": [], "usage": usage}
                event(f"data: {json.dumps(last)}\n\n".encode())
                event(b"data: [DONE]\n\n")
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-openai", daemon=True)

    def enqueue(self, *replies: Script) -> FakeOpenAIServer:
        """Replies for the next requests, one each, in order (then `default`)."""
        with self._lock:
            self._queue.extend(replies)
        return self

    def reset(self, default: Script | None = None) -> FakeOpenAIServer:
        """Forget requests and queued replies; serve `default` (or "OK") from now on."""
        with self._lock:
            self.requests.clear()
            self._queue.clear()
            self.default = default or ok("OK")
        return self

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        """The chat completion requests received so far."""
        with self._lock:
            return [r for r in self.requests if r["path"].rstrip("/").endswith("/chat/completions")]

    def start(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def schema_reply(payload: dict[str, Any]) -> Response:
    """A valid reply for whatever schema mockml asked for (judge verdicts, yes/no, follow-up), else plain text.

    The rubric judge's schema lists the point ids (an enum), so every point gets a `partial` verdict quoting the
    answer's first words; a follow-up request gets one short question.
    """
    fmt = payload.get("response_format") or {}
    schema = (fmt.get("json_schema") or {}).get("schema") or {}
    name = (fmt.get("json_schema") or {}).get("name") or ""
    messages = payload.get("messages") or []
    prompt = " ".join(str(m.get("content") or "") for m in messages)
    props = schema.get("properties") or {}
    if "verdicts" in props or name == "RubricJudgement":
        ids = (((schema.get("$defs") or {}).get("PointVerdict") or {}).get("properties") or {}).get("point_id", {}).get("enum") or []
        return ok(json.dumps({"verdicts": [{"point_id": i, "verdict": "missing", "evidence": None, "reason": "not said"} for i in ids]}))
    if "answer" in props and name == "YesNoJudgement":
        return ok('{"answer": "NO", "evidence": null}')
    if "question" in props:
        return ok('{"question": "What would you monitor once this model is in production?", "target_point": null}')
    return ok("OK" if "health" in prompt.lower() else "Fine.")
