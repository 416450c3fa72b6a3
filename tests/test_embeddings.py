"""The embedded MiniLM on onnxruntime: the same vectors as sentence-transformers, exported once per machine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import app.embeddings as embeddings

TEXTS = [
    "Bias is the error from overly simple assumptions; a high-bias model underfits.",
    "  leading and trailing spaces  ",
    "",
    "word " * 300,  # longer than 128 word pieces: truncated the same way
    "naïve café résumé — unicode and dashes",
    "x",
]


@pytest.mark.slow
def test_onnx_vectors_match_sentence_transformers() -> None:
    """The grader's calibration was fitted on sentence-transformers vectors; the fast path must not move them."""
    fast = embeddings.OnnxMiniLM(embeddings.onnx_model_path(), embeddings._model_dir() / "tokenizer.json")
    reference = embeddings._load_sentence_transformer()
    got = fast.encode(TEXTS, batch_size=4)
    want = reference.encode(TEXTS, batch_size=4, normalize_embeddings=True, convert_to_numpy=True)
    assert got.shape == (len(TEXTS), embeddings.DIMENSIONS)
    assert float(np.abs(got - want).max()) < 1e-5
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_the_export_happens_once_and_a_failed_one_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = embeddings.onnx_model_path()
    assert first.is_file() and first.parent == tmp_path / "mockml" and not list(first.parent.glob("*.part"))
    stamp = first.stat().st_mtime_ns
    assert embeddings.onnx_model_path() == first and first.stat().st_mtime_ns == stamp  # cached, not re-exported

    def broken(model_dir: Path, target: Path) -> None:
        raise RuntimeError("exporter unavailable")

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty"))
    monkeypatch.setattr(embeddings, "_export_onnx", broken)
    model = embeddings._load_model()  # the torch path still works, with a warning in the log
    assert type(model).__name__ == "SentenceTransformer"
    monkeypatch.setenv("MOCKML_EMBEDDING_BACKEND", "torch")
    assert type(embeddings._load_model()).__name__ == "SentenceTransformer"
