"""Process-wide, lazily built services (bank, index, retriever) shared by the CLI, the UI and the API."""

from __future__ import annotations

import threading
from functools import lru_cache

from app.bank import Bank, load_bank
from app.config import Settings, get_settings
from app.index import Index, ProgressFn, Retriever

_lock = threading.Lock()


@lru_cache(maxsize=4)
def _bank(knowledge_dir: str) -> Bank:
    from pathlib import Path

    return load_bank(Path(knowledge_dir))


def get_bank(settings: Settings | None = None) -> Bank:
    """The validated bank (loaded once per folder)."""
    s = settings or get_settings()
    return _bank(str(s.knowledge_dir))


_retrievers: dict[tuple[str, ...], Retriever] = {}


def get_retriever(settings: Settings | None = None, *, auto_index: bool = True, progress: ProgressFn | None = None) -> Retriever:
    """The hybrid retriever, indexing the bank first when the index is missing or stale."""
    s = settings or get_settings()
    key = (str(s.knowledge_dir), str(s.data_dir), str(s.chroma_host), str(s.chroma_port), s.collection)
    with _lock:
        if key not in _retrievers:
            retriever = Retriever(get_bank(s), Index(s))
            if auto_index:
                retriever.ensure_indexed(progress)
            _retrievers[key] = retriever
        return _retrievers[key]
