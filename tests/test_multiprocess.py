"""Several app processes, one deployment: two `mockml ui` processes share a PostgreSQL database and a Chroma
server (docs/deployment.md). A candidate starts on process A, answers, resumes on process B and finishes;
both processes then show the same history.

Everything runs on loopback: a throwaway PostgreSQL cluster (initdb in a temporary folder, as the `postgres`
user when the tests run as root, because initdb refuses root), a real `chroma run`, and the real app twice,
driven through gradio_client. Skips when PostgreSQL's binaries, psycopg or the chroma CLI are missing.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evals.bench.load import AppServer, free_port, message_text

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
FIXTURE_BANK = Path(__file__).parent / "fixtures" / "bank"
CHROMA = Path(sys.executable).parent / "chroma"


def _pg_bindir() -> Path | None:
    """The newest PostgreSQL server binaries on this machine (Debian keeps them off PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, limit: float = 60) -> None:
    ends = time.monotonic() + limit
    while time.monotonic() < ends:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    pytest.fail(f"{what} did not listen on {port} within {limit:.0f} s")


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A fresh database on a throwaway cluster, stopped and deleted afterwards."""
    if importlib.util.find_spec("psycopg") is None:
        pytest.skip("pip install -e '.[postgres]' to run the multi-process test")
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql)")
    # Not pytest's tmp_path: its parent is private to root, and the cluster runs as `postgres` when we are root.
    folder = Path(tempfile.mkdtemp(prefix="mockml-pg-"))
    as_pg: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(folder, user="postgres")
        as_pg = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    data = folder / "data"
    subprocess.run([*as_pg, str(bindir / "initdb"), "-D", str(data), "-U", "mockml", "--auth=trust", "-E", "UTF8"],
                   check=True, stdout=subprocess.DEVNULL)
    pg_ctl = [*as_pg, str(bindir / "pg_ctl"), "-D", str(data)]
    # -w: return once the server accepts connections; fsync off because this cluster is thrown away.
    subprocess.run([*pg_ctl, "-l", str(folder / "server.log"), "-w", "-o",
                    f"-p {port} -c listen_addresses=127.0.0.1 -k {folder} -c fsync=off", "start"],
                   check=True, stdout=subprocess.DEVNULL)
    try:
        subprocess.run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "mockml", "mockml"], check=True)
        yield f"postgresql+psycopg://mockml@127.0.0.1:{port}/mockml"
    finally:
        subprocess.run([*pg_ctl, "-m", "fast", "-w", "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def chroma_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A real Chroma server on loopback."""
    if not CHROMA.exists():
        pytest.skip("the chroma CLI is not installed next to this Python")
    port = free_port()
    proc = subprocess.Popen([str(CHROMA), "run", "--path", str(tmp_path_factory.mktemp("chroma")), "--host", "127.0.0.1",
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(port, proc, "chroma run")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def two_apps(postgres_url: str, chroma_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[AppServer]]:
    """Process A and process B: separate data directories, the same database and Chroma server."""
    env = {"MOCKML_DATABASE_URL": postgres_url, "MOCKML_CHROMA_HOST": "127.0.0.1", "MOCKML_CHROMA_PORT": str(chroma_port),
           "MOCKML_KNOWLEDGE_DIR": str(FIXTURE_BANK), "MOCKML_COLLECTION": "mockml_multiprocess"}
    apps = []
    try:
        for name in ("a", "b"):
            root = tmp_path_factory.mktemp(f"app-{name}")
            apps.append(AppServer(root / "data", free_port(), env=env, log_path=root / "server.log"))
            apps[-1].start()
        yield apps
    finally:
        for server in apps:
            server.stop()


def client(server: AppServer) -> Any:
    from gradio_client import Client

    return Client(server.url, verbose=False, download_files=False)


def history(server: AppServer, user: str) -> list[list[Any]]:
    return client(server).predict(user, api_name="/history")[0]["data"]


def test_start_on_one_process_resume_and_finish_on_another(two_apps: list[AppServer]) -> None:
    a, b = two_apps
    user = "multi-alice"

    on_a = client(a)
    chat, progress = on_a.predict(user, [], "mid", 2, "interview", "offline", api_name="/start")[:2]
    assert "question 1 of 2" in progress
    chat, progress = on_a.predict("[alice-1] High bias underfits and high variance overfits; I compare training and "
                                  "validation error to tell which.", chat, api_name="/respond")[:2]
    rows = history(a, user)
    assert len(rows) == 1 and rows[0][2].startswith("unfinished") and rows[0][3] == 1
    session_id = rows[0][0]
    assert history(b, user) == rows  # B reads the same database

    on_b = client(b)
    on_b.predict(user, api_name="/history")  # as the page does: load the history, then pick and resume
    chat, progress = on_b.predict(session_id, api_name="/resume")[:2]
    said = [message_text(m) for m in chat]
    assert any("[alice-1]" in text for text in said)  # the answer given on A is in the transcript B shows
    for n in range(2, 20):
        if "Interview finished" in progress:
            break
        text = "no questions" if "questions for the interviewer" in progress else (
            f"[alice-{n}] I would regularize, validate on held-out data and check the learning curves.")
        chat, progress = on_b.predict(text, chat, api_name="/respond")[:2]
    assert "Interview finished" in progress

    rows_a, rows_b = history(a, user), history(b, user)
    assert rows_a == rows_b
    assert rows_a[0][0] == session_id and rows_a[0][2] == "finished" and rows_a[0][3] >= 2

    from app.store import Store

    store = Store(a.env["MOCKML_DATABASE_URL"])
    session = store.load_session(session_id)
    answers = [t.text for t in session.turns if t.kind.value == "answer"]
    assert answers[0].startswith("[alice-1]") and len(answers) >= 2
    assert [t.index for t in session.turns] == list(range(len(session.turns)))  # one gap-free transcript
    store.close()


def test_both_processes_search_the_shared_chroma_server(two_apps: list[AppServer]) -> None:
    for server in two_apps:
        html = client(server).predict("overfitting versus underfitting", "any", "any", "any", 3, api_name="/search")
        assert "bias-variance-tradeoff" in html
        assert not (server.data_dir / "chroma").exists()  # nothing went to an embedded index
