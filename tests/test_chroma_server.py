"""Server mode: with MOCKML_CHROMA_HOST set, indexing and search go to a real Chroma server (on loopback)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import Settings
from app.index import Index, Retriever
from app.runtime import get_bank

pytestmark = pytest.mark.slow
CHROMA = Path(sys.executable).parent / "chroma"


@pytest.fixture()
def chroma_server(tmp_path: Path) -> Iterator[int]:
    if not CHROMA.exists():
        pytest.skip("the chroma CLI is not installed next to this Python")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([str(CHROMA), "run", "--path", str(tmp_path / "srv"), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        else:
            pytest.fail("chroma server did not start")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_index_and_search_against_a_chroma_server(tiny_settings: Settings, chroma_server: int) -> None:
    settings = tiny_settings.model_copy(update={"chroma_host": "127.0.0.1", "chroma_port": chroma_server})
    bank = get_bank(settings)
    index = Index(settings)
    stats = index.sync(bank)
    assert stats.added == stats.documents > 0
    assert not settings.chroma_dir.exists()  # nothing was written to the embedded store
    again = Index(settings).sync(bank)  # a second process sees the same server-side collection
    assert again.unchanged == stats.documents and again.added == 0
    hits = Retriever(bank, Index(settings)).search("overfitting versus underfitting", 1)
    assert hits[0].question.id == "bias-variance-tradeoff"
