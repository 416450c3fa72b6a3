"""Shared fixtures: isolated settings, a tiny bank, and a data directory per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import app  # noqa: F401 - sets the offline environment defaults before anything else imports
from app.config import REPO_ROOT, Settings, get_settings

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture()
def tiny_settings(tmp_path: Path) -> Settings:
    """Settings on the three-question fixture bank with a private data directory."""
    return Settings(data_dir=tmp_path / "data", knowledge_dir=FIXTURES / "bank", collection=f"t{tmp_path.name[-20:]}")


@pytest.fixture()
def bank_settings(tmp_path: Path) -> Settings:
    """Settings on the real bank with a private data directory."""
    return Settings(data_dir=tmp_path / "data", knowledge_dir=REPO_ROOT / "knowledge")


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test reads the developer's data directory, .env or model settings."""
    monkeypatch.setenv("MOCKML_DATA_DIR", str(tmp_path / "env-data"))
    # MOCKML_LOCAL_MODEL_PATH (exported by .ci/run for tests/test_local_llm.py, which reads it at import) would
    # otherwise make every `model="local"` unit test start the real 1.1 GB model.
    for name in ("MOCKML_MODEL", "MOCKML_LOCAL_MODEL_PATH", "MOCKML_DATABASE_URL", "MOCKML_CHROMA_HOST", "MOCKML_KNOWLEDGE_DIR", "MOCKML_COLLECTION", "MOCKML_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
