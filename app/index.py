"""The Chroma index of the bank and hybrid (dense + BM25, reciprocal-rank-fused) retrieval."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

import bm25s
import numpy as np
from pydantic import BaseModel, Field

from app.bank import Bank, Question
from app.config import Settings
from app.errors import BadInput, MockmlError
from app.text import content_stems

Mode = Literal["hybrid", "dense", "bm25"]
RRF_K = 60  # the constant from Cormack et al. (2009); rank fusion is insensitive to it in 10..100
MAX_QUERY_CHARS = 2_000
# HNSW search is approximate, and its graph differs from build to build of the same documents. At
# Chroma's default ef (100), 3 of 4 fresh builds of the bank missed a query's true nearest document for 1 of the 198
# retrieval-eval queries ("rope vs alibi" lost positional-encoding-methods), so one query ranked differently on two
# installs and CI's Recall@1 moved between 0.894 and 0.899. At 512, far above the bank's few hundred documents, every
# build measured returned exactly the cosine ranking (tests/test_index.py::test_dense_search_ranks_exactly_by_cosine).
HNSW_EF = 512
ProgressFn = Callable[[int, int], None]


class IndexStats(BaseModel):
    """What one `mockml index` run did."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    documents: int = 0
    seconds: float = 0.0


class SearchHit(BaseModel):
    """One ranked question with the evidence for its rank."""

    question: Question
    score: float = Field(description="fused reciprocal-rank score (higher is better)")
    dense_rank: int | None = None
    bm25_rank: int | None = None
    similarity: float | None = Field(default=None, description="best cosine similarity of the query to the question's documents")


def question_documents(q: Question) -> list[tuple[str, str, dict[str, Any]]]:
    """The documents one question contributes to the index: its wordings and its model answers."""
    meta: dict[str, Any] = {
        "question_id": q.id,
        "track": q.track.value,
        "topic": q.topic,
        "kind": q.kind.value,
        "level": q.level.value,
        "sources": json.dumps([s.model_dump() for s in q.sources], ensure_ascii=False),
    }
    docs = [(f"{q.id}::q", q.text, {**meta, "part": "question"})]
    wordings = list(dict.fromkeys(s.original for s in q.sources if s.original != q.text))
    docs += [(f"{q.id}::w{i}", text, {**meta, "part": "wording"}) for i, text in enumerate(wordings)]
    docs += [(f"{q.id}::a{i}", a.text, {**meta, "part": "answer"}) for i, a in enumerate(q.model_answers)]
    for _, text, m in docs:
        m["hash"] = hashlib.sha256((text + m["sources"] + m["track"] + m["topic"] + m["kind"] + m["level"]).encode()).hexdigest()[:32]
    return docs


def lexical_text(q: Question) -> str:
    """Everything BM25 sees for one question."""
    parts = [q.text, q.topic.replace("-", " "), *(s.original for s in q.sources), *(p.text for p in q.rubric)]
    parts += [" ".join(t.replace("|", " ") for t in p.key_terms) for p in q.rubric]
    parts += [a.text for a in q.model_answers]
    return "\n".join(parts)


def validate_query(query: str) -> str:
    """A clean query, or a BadInput saying what to change."""
    if not isinstance(query, str) or not query.strip():
        raise BadInput("the search query is empty: type a few words, e.g. `mockml search \"bias variance\"`")
    if len(query) > MAX_QUERY_CHARS:
        raise BadInput(f"the search query is {len(query):,} characters; keep it under {MAX_QUERY_CHARS:,} (a sentence or two)")
    cleaned = "".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in query).strip()
    if not cleaned:
        raise BadInput("the search query has no readable characters: type a few words")
    return cleaned


class Index:
    """The Chroma collection holding the bank's documents, embedded or on a Chroma server."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: Any = None
        self._collection: Any = None
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._connect()
        return self._client

    def _connect(self) -> Any:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        chroma_settings = ChromaSettings(anonymized_telemetry=False)
        s = self.settings
        if s.chroma_host:
            try:
                client = chromadb.HttpClient(host=s.chroma_host, port=s.chroma_port, settings=chroma_settings)
                client.heartbeat()
            except Exception as exc:
                raise BadInput(
                    f"cannot reach the Chroma server at {s.chroma_host}:{s.chroma_port} ({type(exc).__name__}): "
                    "start it (`chroma run --path DIR --port PORT`) or unset MOCKML_CHROMA_HOST to use the embedded index"
                ) from exc
            return client
        s.ensure_data_dir()
        try:
            return chromadb.PersistentClient(path=str(s.chroma_dir), settings=chroma_settings)
        except Exception as exc:
            raise BadInput(
                f"cannot open the index at {s.chroma_dir} ({exc}): set MOCKML_DATA_DIR to a writable folder "
                "or run `mockml index --rebuild`"
            ) from exc

    def _open(self, name: str) -> Any:
        from app.embeddings import ChromaEmbedding

        collection = self.client.get_or_create_collection(
            name=name, embedding_function=ChromaEmbedding(),
            configuration={"hnsw": {"space": "cosine", "ef_construction": HNSW_EF, "ef_search": HNSW_EF}},
        )
        # A collection built before HNSW_EF keeps its old search width until told (creation settings do not apply
        # to an existing collection); the search width, unlike the build width, can be changed in place.
        hnsw = (collection.configuration or {}).get("hnsw") or {}
        if hnsw.get("ef_search", HNSW_EF) < HNSW_EF:
            collection.modify(configuration={"hnsw": {"ef_search": HNSW_EF}})
        return collection

    @property
    def collection(self) -> Any:
        with self._lock:
            if self._collection is None:
                self._collection = self._open(self.settings.collection)
            return self._collection

    def _fresh(self, use: Callable[[Any], Any]) -> Any:
        """Run `use(collection)`, reopening once if another process rebuilt (replaced) the collection meanwhile."""
        try:
            return use(self.collection)
        except Exception as exc:  # noqa: BLE001 - chromadb raises several types for a vanished collection
            if "does not exist" not in str(exc):
                raise
            with self._lock:
                self._collection = None
            return use(self.collection)

    def count(self) -> int:
        return int(self._fresh(lambda c: c.count()))

    def sync(self, bank: Bank, *, rebuild: bool = False, progress: ProgressFn | None = None, batch: int = 64) -> IndexStats:
        """Bring the collection in line with the bank: embed new or changed documents, delete removed ones.

        Content hashes make an unchanged bank a no-op. `rebuild` builds a fresh collection beside the old
        one and swaps it in only when complete, so a failure leaves the old index intact.
        """
        started = time.perf_counter()
        from app.embeddings import get_embedder

        wanted = {doc_id: (text, meta) for q in bank.questions for doc_id, text, meta in question_documents(q)}
        existing: dict[str, str] = {}
        if rebuild:
            scratch = self.settings.collection + "__rebuild"
            try:
                self.client.delete_collection(scratch)  # left over from an interrupted rebuild
            except Exception:  # noqa: BLE001 - nothing to clean up
                pass
            target = self._open(scratch)
        else:
            target = self.collection
            got = target.get(include=["metadatas"])
            existing = {i: (m or {}).get("hash", "") for i, m in zip(got["ids"], got["metadatas"], strict=True)}
        stats = IndexStats()
        # Length-sorted batches pad less, which roughly halves embedding time.
        todo = sorted((i for i in wanted if existing.get(i) != wanted[i][1]["hash"]), key=lambda i: len(wanted[i][0]))
        stats.added = sum(1 for i in todo if i not in existing)
        stats.updated = len(todo) - stats.added
        stats.unchanged = len(wanted) - len(todo)
        stale = [i for i in existing if i not in wanted]
        embedder = get_embedder()
        for start in range(0, len(todo), batch):
            ids = todo[start : start + batch]
            texts = [wanted[i][0] for i in ids]
            vectors = embedder.encode(texts)
            target.upsert(ids=ids, documents=texts, metadatas=[wanted[i][1] for i in ids], embeddings=[v for v in vectors])
            if progress:
                progress(min(start + batch, len(todo)), len(todo))
        if stale:
            target.delete(ids=stale)
            stats.removed = len(stale)
        if rebuild:
            with self._lock:
                try:
                    self.client.delete_collection(self.settings.collection)
                except Exception:  # noqa: BLE001 - there was no old collection to replace
                    pass
                target.modify(name=self.settings.collection)
                self._collection = None
        stats.documents = len(wanted)
        stats.seconds = round(time.perf_counter() - started, 3)
        return stats

    def dense(self, query_vector: np.ndarray, n: int, where: dict[str, Any] | None) -> list[tuple[str, float]]:
        """Question ids ranked by their best document's cosine similarity to the query."""
        total = self.count()
        if total == 0:
            return []
        res = self._fresh(lambda c: c.query(
            query_embeddings=[query_vector.tolist()], n_results=min(total, n), where=where, include=["metadatas", "distances"]
        ))
        best: dict[str, float] = {}
        for meta, dist in zip(res["metadatas"][0], res["distances"][0], strict=True):
            qid = meta["question_id"]
            best[qid] = max(best.get(qid, -1.0), 1.0 - float(dist))
        # Questions sharing a source wording tie exactly, and Chroma returns equal distances in no fixed order; the
        # id breaks the tie so the same query ranks the same on every install (the dense rank feeds the fusion).
        return sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))


class Retriever:
    """Hybrid retrieval over the bank: Chroma dense search and BM25, fused by reciprocal rank."""

    def __init__(self, bank: Bank, index: Index) -> None:
        self.bank = bank
        self.index = index
        self._ids = [q.id for q in bank.questions]
        self._bm25 = bm25s.BM25()
        self._bm25.index([content_stems(lexical_text(q)) for q in bank.questions], show_progress=False)

    def ensure_indexed(self, progress: ProgressFn | None = None) -> IndexStats | None:
        """Index the bank when the collection is empty or out of date (cheap when it is current)."""
        return self.index.sync(self.bank, progress=progress)

    def _bm25_rank(self, query: str, allowed: set[str] | None) -> list[tuple[str, float]]:
        tokens = content_stems(query)
        if not tokens:
            return []
        scores = self._bm25.get_scores(tokens)
        order = np.argsort(-scores, kind="stable")
        return [(self._ids[i], float(scores[i])) for i in order if scores[i] > 0 and (allowed is None or self._ids[i] in allowed)]

    def _filter(self, track: str | None, kind: str | None, level: str | None) -> tuple[dict[str, Any] | None, set[str] | None]:
        clauses = [{k: v} for k, v in (("track", track), ("kind", kind), ("level", level)) if v]
        if not clauses:
            return None, None
        allowed = {
            q.id
            for q in self.bank.questions
            if (not track or q.track.value == track) and (not kind or q.kind.value == kind) and (not level or q.level.value == level)
        }
        return (clauses[0] if len(clauses) == 1 else {"$and": clauses}), allowed

    def search(
        self,
        query: str,
        k: int = 5,
        *,
        mode: Mode = "hybrid",
        track: str | None = None,
        kind: str | None = None,
        level: str | None = None,
    ) -> list[SearchHit]:
        """The k best questions for a query, optionally filtered by track, kind and level."""
        query = validate_query(query)
        if not 1 <= k <= 100:
            raise BadInput(f"-k must be between 1 and 100, not {k}")
        where, allowed = self._filter(track, kind, level)
        if allowed is not None and not allowed:
            return []
        dense: list[tuple[str, float]] = []
        if mode in ("hybrid", "dense"):
            from app.embeddings import get_embedder

            try:
                vector = get_embedder().encode([query])[0]
                dense = self.index.dense(vector, n=max(60, 8 * k), where=where)
            except MockmlError:
                raise
            except Exception as exc:
                raise MockmlError(f"the index could not be searched ({exc}): run `mockml index --rebuild`") from exc
        lexical = self._bm25_rank(query, allowed) if mode in ("hybrid", "bm25") else []
        fused: dict[str, float] = {}
        dense_rank = {qid: r for r, (qid, _) in enumerate(dense, 1)}
        lex_rank = {qid: r for r, (qid, _) in enumerate(lexical, 1)}
        for ranks in (dense_rank, lex_rank):
            for qid, r in ranks.items():
                fused[qid] = fused.get(qid, 0.0) + 1.0 / (RRF_K + r)
        sims = dict(dense)
        by_id = self.bank.by_id
        ordered = sorted(fused, key=lambda qid: (-fused[qid], dense_rank.get(qid, 10**6), qid))
        return [
            SearchHit(
                question=by_id[qid],
                score=round(fused[qid], 6),
                dense_rank=dense_rank.get(qid),
                bm25_rank=lex_rank.get(qid),
                similarity=round(sims[qid], 4) if qid in sims else None,
            )
            for qid in ordered[:k]
            if qid in by_id
        ]
