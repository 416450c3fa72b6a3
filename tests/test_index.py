"""The Chroma index and hybrid retrieval, with the real MiniLM model and a real embedded Chroma in tmp dirs."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import app.embeddings
from app.bank import Bank, Kind, Level, Track, load_bank
from app.config import REPO_ROOT, Settings, get_settings
from app.errors import BadInput, MockmlError
from app.index import MAX_QUERY_CHARS, Index, Retriever, question_documents, validate_query

pytestmark = pytest.mark.slow  # loads the real MiniLM model and indexes the real bank once per module

BV, PR = "bias-variance-tradeoff", "precision-recall-f1"
_REAL_GET_EMBEDDER = app.embeddings.get_embedder


class SpyEmbedder:
    """The real embedder, recording every batch it is asked for; optionally crashing on the n-th batch."""

    def __init__(self, fail_on_call: int | None = None) -> None:
        self.real = _REAL_GET_EMBEDDER()
        self.calls: list[list[str]] = []
        self.fail_on_call = fail_on_call

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        self.calls.append(list(texts))
        if self.fail_on_call is not None and len(self.calls) >= self.fail_on_call:
            raise RuntimeError("embedder crashed (simulated)")
        return self.real.encode(texts, batch_size)

    @property
    def texts(self) -> list[str]:
        return [t for call in self.calls for t in call]


@pytest.fixture()
def spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[SpyEmbedder]:
    embedder = SpyEmbedder()
    monkeypatch.setattr(app.embeddings, "get_embedder", lambda: embedder)
    yield embedder


@pytest.fixture()
def tiny_bank(tiny_settings: Settings) -> Bank:
    return load_bank(tiny_settings.knowledge_dir)


def _doc_ids(bank: Bank, qid: str | None = None) -> list[str]:
    return [doc_id for q in bank.questions if qid in (None, q.id) for doc_id, _, _ in question_documents(q)]


def _replace(bank: Bank, qid: str, **changes: Any) -> Bank:
    return bank.model_copy(
        update={"questions": tuple(q.model_copy(update=changes) if q.id == qid else q for q in bank.questions)}
    )


def _without(bank: Bank, qid: str) -> Bank:
    return bank.model_copy(update={"questions": tuple(q for q in bank.questions if q.id != qid)})


def _top(retriever: Retriever, query: str, **kw: Any) -> str:
    hits = retriever.search(query, 3, **kw)
    assert hits, query
    return hits[0].question.id


# --- incremental sync ------------------------------------------------------------------------------------


def test_first_sync_adds_every_document_and_a_second_sync_is_a_no_op(
    tiny_settings: Settings, tiny_bank: Bank, spy: SpyEmbedder
) -> None:
    index = Index(tiny_settings)
    total = len(_doc_ids(tiny_bank))
    first = index.sync(tiny_bank)
    assert (first.added, first.updated, first.removed, first.unchanged, first.documents) == (total, 0, 0, 0, total)
    assert index.count() == total
    assert sorted(index.collection.get()["ids"]) == sorted(_doc_ids(tiny_bank))
    assert len(spy.texts) == total

    spy.calls.clear()
    second = index.sync(tiny_bank)
    assert (second.added, second.updated, second.removed, second.unchanged, second.documents) == (0, 0, 0, total, total)
    assert spy.calls == [], "an unchanged bank embeds nothing"
    # A fresh process (a new Index on the same folder) sees the same collection and also does nothing.
    third = Index(tiny_settings).sync(tiny_bank)
    assert (third.added, third.updated, third.removed, third.unchanged) == (0, 0, 0, total)


def test_progress_is_reported_per_batch(tiny_settings: Settings, tiny_bank: Bank) -> None:
    seen: list[tuple[int, int]] = []
    Index(tiny_settings).sync(tiny_bank, progress=lambda done, total: seen.append((done, total)), batch=3)
    total = len(_doc_ids(tiny_bank))
    assert seen and seen[-1] == (total, total)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_editing_one_question_text_updates_exactly_that_document(
    tiny_settings: Settings, tiny_bank: Bank, spy: SpyEmbedder
) -> None:
    index = Index(tiny_settings)
    index.sync(tiny_bank)
    before = index.collection.get(include=["metadatas", "documents"])
    new_text = "Walk me through the bias-variance tradeoff and how you balance it on a real project."
    edited = _replace(tiny_bank, BV, text=new_text)
    spy.calls.clear()

    stats = index.sync(edited)
    total = len(_doc_ids(tiny_bank))
    assert (stats.added, stats.updated, stats.removed, stats.unchanged) == (0, 1, 0, total - 1)
    assert spy.texts == [new_text]
    got = index.collection.get(ids=[f"{BV}::q"], include=["documents"])
    assert got["documents"] == [new_text]
    # Every other document is byte-for-byte what it was.
    after = index.collection.get(include=["metadatas", "documents"])
    old = {i: (d, m) for i, d, m in zip(before["ids"], before["documents"], before["metadatas"], strict=True)}
    new = {i: (d, m) for i, d, m in zip(after["ids"], after["documents"], after["metadatas"], strict=True)}
    assert old.keys() == new.keys()
    assert [i for i in old if old[i] != new[i]] == [f"{BV}::q"]


def test_changing_a_question_level_updates_all_of_its_documents_and_the_filter_follows(
    tiny_settings: Settings, tiny_bank: Bank, spy: SpyEmbedder
) -> None:
    index = Index(tiny_settings)
    index.sync(tiny_bank)
    edited = _replace(tiny_bank, BV, level=Level.SENIOR)
    spy.calls.clear()
    stats = index.sync(edited)
    own = _doc_ids(tiny_bank, BV)
    assert (stats.added, stats.updated, stats.removed) == (0, len(own), 0)
    assert sorted(spy.texts) == sorted(t for _, t, _ in question_documents(edited.by_id[BV]))
    levels = {m["level"] for m in index.collection.get(where={"question_id": BV})["metadatas"]}
    assert levels == {"senior"}
    hits = Retriever(edited, index).search("bias variance tradeoff", 5, level="senior")
    assert [h.question.id for h in hits] == [BV]


def test_removing_a_question_deletes_its_documents(tiny_settings: Settings, tiny_bank: Bank, spy: SpyEmbedder) -> None:
    index = Index(tiny_settings)
    index.sync(tiny_bank)
    smaller = _without(tiny_bank, PR)
    spy.calls.clear()
    stats = index.sync(smaller)
    removed = _doc_ids(tiny_bank, PR)
    assert (stats.added, stats.updated, stats.removed) == (0, 0, len(removed))
    assert stats.documents == index.count() == len(_doc_ids(smaller))
    assert spy.calls == []
    assert index.collection.get(where={"question_id": PR})["ids"] == []
    hits = Retriever(smaller, index).search("precision recall f1 score", 5)
    assert PR not in [h.question.id for h in hits]


def test_rebuild_ends_with_the_same_documents_and_search_still_works(tiny_settings: Settings, tiny_bank: Bank) -> None:
    index = Index(tiny_settings)
    index.sync(tiny_bank)
    retriever = Retriever(tiny_bank, index)
    assert _top(retriever, "bias versus variance") == BV

    stats = index.sync(tiny_bank, rebuild=True)
    total = len(_doc_ids(tiny_bank))
    assert stats.documents == total and stats.added == total and stats.removed == 0
    assert index.count() == total
    assert sorted(index.collection.get()["ids"]) == sorted(_doc_ids(tiny_bank))
    names = {getattr(c, "name", c) for c in index.client.list_collections()}
    assert tiny_settings.collection in names
    assert not any(n.endswith("__rebuild") for n in names), names
    assert _top(retriever, "bias versus variance") == BV
    assert _top(Retriever(tiny_bank, Index(tiny_settings)), "precision and recall") == PR
    # And the rebuilt collection is incremental as usual.
    assert index.sync(tiny_bank).unchanged == total


def test_interrupted_rebuild_leaves_the_indexed_collection_intact(
    tiny_settings: Settings, tiny_bank: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = Index(tiny_settings)
    index.sync(tiny_bank)
    total = index.count()
    before = sorted(index.collection.get()["ids"])

    crashing = SpyEmbedder(fail_on_call=3)  # batches 1 and 2 reach the scratch collection, batch 3 crashes
    monkeypatch.setattr(app.embeddings, "get_embedder", lambda: crashing)
    with pytest.raises(RuntimeError, match="simulated"):
        index.sync(_replace(tiny_bank, BV, text="An entirely new wording of the bias variance question."), rebuild=True, batch=2)
    assert len(crashing.calls) == 3
    monkeypatch.setattr(app.embeddings, "get_embedder", _REAL_GET_EMBEDDER)

    # Nothing already indexed is lost: same handle, a fresh handle, and search all see the old index.
    assert index.count() == total
    fresh = Index(tiny_settings)
    assert fresh.count() == total and sorted(fresh.collection.get()["ids"]) == before
    assert fresh.collection.get(ids=[f"{BV}::q"])["documents"] == [tiny_bank.by_id[BV].text]
    assert _top(Retriever(tiny_bank, fresh), "bias versus variance") == BV
    assert _top(Retriever(tiny_bank, index), "precision and recall") == PR
    assert fresh.sync(tiny_bank).unchanged == total
    # The next rebuild clears the half-built scratch collection and completes.
    again = fresh.sync(tiny_bank, rebuild=True)
    assert again.documents == fresh.count() == total
    assert not any(getattr(c, "name", c).endswith("__rebuild") for c in fresh.client.list_collections())


def test_interrupted_incremental_sync_loses_nothing_and_the_next_sync_finishes(
    tiny_settings: Settings, tiny_bank: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = Index(tiny_settings)
    index.sync(tiny_bank)
    total = index.count()
    edited = tiny_bank
    for q in tiny_bank.questions:
        edited = _replace(edited, q.id, level=Level.MID)  # every document changes
    crashing = SpyEmbedder(fail_on_call=2)
    monkeypatch.setattr(app.embeddings, "get_embedder", lambda: crashing)
    with pytest.raises(RuntimeError):
        index.sync(edited, batch=3)
    monkeypatch.setattr(app.embeddings, "get_embedder", _REAL_GET_EMBEDDER)
    assert index.count() == total
    assert _top(Retriever(tiny_bank, index), "bias versus variance") == BV
    stats = index.sync(edited, batch=3)
    assert (stats.added, stats.removed) == (0, 0)
    assert stats.updated == total - 3 and stats.unchanged == 3  # the first batch of 3 had landed
    assert {m["level"] for m in index.collection.get()["metadatas"]} == {"mid"}


def test_a_live_index_survives_a_rebuild_done_elsewhere(tiny_settings: Settings, tiny_bank: Bank) -> None:
    live = Retriever(tiny_bank, Index(tiny_settings))
    live.ensure_indexed()
    assert _top(live, "bias versus variance") == BV
    Index(tiny_settings).sync(tiny_bank, rebuild=True)  # what `mockml index --rebuild` does in another process
    assert _top(live, "bias versus variance") == BV


# --- runtime: the process-wide retriever --------------------------------------------------------------


def test_get_retriever_indexes_once_and_is_shared(tiny_settings: Settings, spy: SpyEmbedder) -> None:
    from app.runtime import get_bank, get_retriever

    retriever = get_retriever(tiny_settings)
    assert retriever.index.count() == len(_doc_ids(retriever.bank))  # auto-indexed on first use
    assert get_retriever(tiny_settings) is retriever
    assert get_bank(tiny_settings) is retriever.bank
    embedded = len(spy.texts)
    assert _top(retriever, "bias versus variance") == BV
    assert len(spy.texts) == embedded + 1  # only the query: the index was not re-synced


def test_get_retriever_respects_the_collection(tiny_settings: Settings) -> None:
    from app.runtime import get_retriever

    other = tiny_settings.model_copy(update={"collection": tiny_settings.collection + "-other"})
    assert get_retriever(tiny_settings).index.settings.collection == tiny_settings.collection
    assert get_retriever(other).index.settings.collection == other.collection


# --- Chroma server mode -------------------------------------------------------------------------------


def test_unreachable_chroma_server_is_bad_input_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:  # a loopback port where nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("MOCKML_CHROMA_HOST", "127.0.0.1")
    monkeypatch.setenv("MOCKML_CHROMA_PORT", str(port))
    settings = get_settings()
    assert settings.chroma_host == "127.0.0.1" and settings.chroma_port == port
    with pytest.raises(BadInput, match="MOCKML_CHROMA_HOST") as info:
        Index(settings).count()
    assert f"127.0.0.1:{port}" in str(info.value)


# --- validate_query -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "hint"),
    [
        ("", "empty"),
        ("   \n\t  ", "empty"),
        ("x" * 10_000, f"under {MAX_QUERY_CHARS:,}"),
        ("\x00\x01\x02\x7f\x1b", "no readable characters"),
        ("\u200b\u202e\x00", "no readable characters"),
    ],
    ids=["empty", "whitespace", "10k-chars", "control-chars", "invisible-format-chars"],
)
def test_unusable_queries_are_bad_input_with_a_helpful_message(query: str, hint: str) -> None:
    with pytest.raises(BadInput, match=hint) as info:
        validate_query(query)
    message = str(info.value)
    assert "\n" not in message and len(message) < 200


def test_query_length_limit_is_inclusive_and_the_message_gives_the_length() -> None:
    assert validate_query("y" * MAX_QUERY_CHARS) == "y" * MAX_QUERY_CHARS
    with pytest.raises(BadInput, match="10,000 characters"):
        validate_query("y" * 10_000)


def test_control_characters_inside_a_query_are_cleaned() -> None:
    assert validate_query("  bias\x00variance\x1b tradeoff \n") == "bias variance  tradeoff"


# --- hybrid search on the real bank ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Retriever:
    """The real 143-question bank indexed once for this module (like `bank_settings`, shared across tests)."""
    data = tmp_path_factory.mktemp("real-bank") / "data"
    settings = Settings(
        _env_file=None, data_dir=data, knowledge_dir=REPO_ROOT / "knowledge", chroma_host=None, collection="mockml_test_bank"
    )
    retriever = Retriever(load_bank(settings.knowledge_dir), Index(settings))
    stats = retriever.ensure_indexed()
    assert stats is not None and stats.documents == retriever.index.count() > len(retriever.bank.questions)
    return retriever


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("l1 versus l2 penalty sparsity", "regularization-l1-l2"),
        ("why do gradients vanish or explode in deep networks", "vanishing-exploding-gradients"),
        ("self attention cost grows quadratically with sequence length", "self-attention-quadratic-complexity"),
        ("bagging vs boosting ensembles", "bagging-vs-boosting"),
        ("canary or shadow deployment of a new model", "canary-vs-shadow-deployment"),
        ("precision recall and f1 score", "precision-recall-f1"),
    ],
)
def test_hybrid_search_finds_the_obvious_question_first(real: Retriever, query: str, expected: str) -> None:
    hits = real.search(query, 5)
    assert hits[0].question.id == expected, [h.question.id for h in hits]
    assert hits[0].dense_rank is not None and hits[0].bm25_rank is not None


def test_results_are_ranked_distinct_and_carry_full_questions_with_sources(real: Retriever) -> None:
    hits = real.search("l1 versus l2 penalty sparsity", 10)
    assert len(hits) == 10
    ids = [h.question.id for h in hits]
    assert len(set(ids)) == len(ids)
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)
    top = hits[0]
    assert top.question == real.bank.by_id["regularization-l1-l2"]
    assert top.question.rubric and top.question.model_answers
    assert top.question.sources and all(s.seed and s.original for s in top.question.sources)
    assert top.similarity is not None and 0 < top.similarity <= 1


FILTERS = [
    {"track": "coding"},
    {"kind": "system_design"},
    {"level": "senior"},
    {"track": "ml-fundamentals", "kind": "theory", "level": "junior"},
    {"track": "production-mlops", "level": "senior"},
]


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: ",".join(f.values()))
def test_filters_only_return_matching_questions(real: Retriever, filters: dict[str, str], mode: str) -> None:
    hits = real.search("how would you train evaluate and deploy a model", 20, mode=mode, **filters)  # type: ignore[arg-type]
    assert hits, (filters, mode)
    for h in hits:
        q = h.question
        got = {"track": q.track.value, "kind": q.kind.value, "level": q.level.value}
        assert {k: got[k] for k in filters} == filters, (q.id, got)


def test_a_filter_matching_one_question_returns_it_whatever_the_query(real: Retriever) -> None:
    only = [q for q in real.bank.questions if q.track is Track.ML_FUNDAMENTALS and q.kind is Kind.SITUATIONAL]
    assert len(only) == 1
    hits = real.search("kubernetes helm charts", 5, track="ml-fundamentals", kind="situational")
    assert [h.question.id for h in hits] == [only[0].id]


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
@pytest.mark.parametrize(
    "filters",
    [{"track": "behavioral", "kind": "coding"}, {"track": "coding", "kind": "situational", "level": "senior"}],
    ids=["behavioral-coding", "coding-situational-senior"],
)
def test_impossible_filter_combination_returns_nothing(real: Retriever, filters: dict[str, str], mode: str) -> None:
    assert not any(all(getattr(q, k).value == v for k, v in filters.items()) for q in real.bank.questions)
    assert real.search("explain your approach", 5, mode=mode, **filters) == []  # type: ignore[arg-type]


def test_dense_only_mode(real: Retriever) -> None:
    hits = real.search("l1 versus l2 penalty sparsity", 5, mode="dense")
    assert len(hits) == 5 and hits[0].question.id == "regularization-l1-l2"
    assert all(h.dense_rank is not None and h.bm25_rank is None and h.similarity is not None for h in hits)
    assert [h.dense_rank for h in hits] == [1, 2, 3, 4, 5]
    sims = [h.similarity for h in hits]
    assert sims == sorted(sims, reverse=True)


def test_bm25_only_mode(real: Retriever) -> None:
    hits = real.search("l1 versus l2 penalty sparsity", 5, mode="bm25")
    assert len(hits) == 5 and hits[0].question.id == "regularization-l1-l2"
    assert all(h.bm25_rank is not None and h.dense_rank is None and h.similarity is None for h in hits)
    assert [h.bm25_rank for h in hits] == [1, 2, 3, 4, 5]


def test_bm25_only_with_no_content_words_returns_nothing_but_dense_still_answers(real: Retriever) -> None:
    assert real.search("the and of", 5, mode="bm25") == []
    assert len(real.search("the and of", 5, mode="dense")) == 5


@pytest.mark.parametrize("k", [0, -1, 101])
def test_k_out_of_bounds_is_bad_input(real: Retriever, k: int) -> None:
    with pytest.raises(BadInput, match="-k must be between 1 and 100"):
        real.search("bias variance", k)


@pytest.mark.parametrize("k", [1, 7, 100])
def test_k_bounds_the_number_of_results(real: Retriever, k: int) -> None:
    hits = real.search("model evaluation metrics", k)
    assert len(hits) == k
    assert len({h.question.id for h in hits}) == k


def test_search_validates_the_query(real: Retriever) -> None:
    for bad in ("", "   ", "z" * 10_000, "\x00\x01"):
        with pytest.raises(BadInput):
            real.search(bad)


# --- the dense ranking is exact and the same on every install ---------------------------------------------------


def _exact_ranking(index: Index, query_vectors: np.ndarray) -> list[list[tuple[str, float]]]:
    """Each query's questions ranked by brute-force cosine over every stored document (best document per question)."""
    got = index.collection.get(include=["embeddings", "metadatas"])
    docs = np.asarray(got["embeddings"], dtype=np.float64)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    owners = [m["question_id"] for m in got["metadatas"]]
    rankings = []
    for vector in query_vectors:
        sims = docs @ (vector / np.linalg.norm(vector))
        best: dict[str, float] = {}
        for i in np.argsort(-sims):
            best.setdefault(owners[i], float(sims[i]))
        rankings.append(sorted(best.items(), key=lambda kv: (-kv[1], kv[0])))
    return rankings


def test_dense_search_ranks_exactly_by_cosine(real: Retriever) -> None:
    """HNSW is approximate: at Chroma's default search width a fresh build lost a query's nearest document."""
    from evals.retrieval.run import load_queries

    queries = [q["query"] for q in load_queries()]
    vectors = app.embeddings.get_embedder().encode(queries)
    for query, vector, exact in zip(queries, vectors, _exact_ranking(real.index, vectors), strict=True):
        got = real.index.dense(vector, n=60, where=None)[:10]
        # Same questions with the same similarities, rank by rank (float32 vs float64 arithmetic aside).
        assert np.allclose([s for _, s in got], [s for _, s in exact[:10]], atol=1e-5), (query, got, exact[:10])
        assert {qid for qid, _ in got} <= {qid for qid, _ in exact[:15]}, query


def test_questions_tied_on_a_shared_wording_rank_by_id(real: Retriever) -> None:
    """Questions sharing a source wording tie exactly; Chroma returns ties in no fixed order, the id decides."""
    vector = app.embeddings.get_embedder().encode(["behavioral q about translating model jargon for execs / PMs"])[0]
    ranked = real.index.dense(vector, n=60, where=None)
    groups: dict[float, list[str]] = {}
    for qid, sim in ranked:
        groups.setdefault(round(sim, 6), []).append(qid)
    ties = [ids for ids in groups.values() if len(ids) > 1]
    assert ties, "the query no longer meets a tie: pick another shared wording"
    assert all(ids == sorted(ids) for ids in ties), ties


def test_an_index_built_before_the_wider_search_is_widened_on_open(tiny_settings: Settings) -> None:
    from app.embeddings import ChromaEmbedding
    from app.index import HNSW_EF

    index = Index(tiny_settings)
    old = index.client.get_or_create_collection(tiny_settings.collection, embedding_function=ChromaEmbedding(),
                                                configuration={"hnsw": {"space": "cosine"}})
    assert old.configuration["hnsw"]["ef_search"] < HNSW_EF  # Chroma's default, as earlier versions built it
    assert index.collection.configuration["hnsw"]["ef_search"] == HNSW_EF
    assert Index(tiny_settings).collection.configuration["hnsw"]["ef_search"] == HNSW_EF  # and it persists
