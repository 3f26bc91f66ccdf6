"""The Chroma adapter: chunks with their vectors, and a registry of articles.

Two collections per library name:

- ``<name>-chunks``: one record per chunk (its text, its vector, the article's metadata), in
  cosine space. Searching returns ``ScoredPassage``s; distance becomes a score exactly here.
- ``<name>-articles``: one record per article (its full text and content hash) under a constant
  one-dimensional vector. It says what is stored, so re-ingesting an unchanged article costs one
  look-up and no model, and it survives in server mode like everything else.

Write order keeps the two consistent across a crash: an article's chunks are written first, its
stale chunks deleted next, the revision changed (``revision``: the lexical index is derived from
the chunks and tagged with it), its registry record (with the new hash) last. A crash in between
leaves the old hash (or none), so the next ingest writes the article again and converges; and
once a record says an article is stored, the revision has changed since its chunks did, so no
cached index of the old chunks passes for current. Deleting: the record's hash blanked (so an
ingest rewrites the article if the delete dies), chunks, revision, then the record.
``write_articles`` keeps that order for a whole batch of articles (all chunks, then stale chunks,
then the revision, then all records) in a few large requests, which is what makes ingestion's
writes cheap. ``tests/test_crash.py`` kills ingestion, and deletion, before each request in turn.

A Chroma server that does not answer within ``StoreConfig.timeout`` seconds (``QA_CHROMA_TIMEOUT``)
is a ``StoreError``, never a hang.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlparse

import numpy as np
import numpy.typing as npt

from vectorstore.errors import ConfigError, StoreError
from vectorstore.types import (
    Article,
    ArticleInfo,
    ArticleSummary,
    Chunk,
    Filters,
    ScoredPassage,
)

if TYPE_CHECKING:
    from vectorstore.lexical import ChunkRecord

_REGISTRY_VECTOR = [1.0]
_MODEL_KEY = "embedding_model"
_REVISION_KEY = "revision"
_REGISTRY_BATCH = 256  # article records (full texts) per request
_ID_FILTER_BATCH = 500  # article ids per "$in" filter

Vectors = Sequence[Sequence[float]] | npt.NDArray[np.float32]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class StoreConfig:
    """Where the store lives: an embedded data folder, or a Chroma server URL."""

    data_dir: Path
    chroma_url: str | None = None
    name: str = "articles"
    timeout: float = 30.0  # seconds a Chroma server may take to answer one request


def open_client(config: StoreConfig) -> Any:
    """A Chroma client for ``config``: embedded in ``data_dir``, or HTTP to ``chroma_url``."""
    import chromadb
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False, allow_reset=False)
    if config.chroma_url:
        return _http_client(config, settings)
    path = config.data_dir / "chroma"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the data folder {path}: {exc.strerror}") from exc
    return chromadb.PersistentClient(path=str(path), settings=settings)


def _http_client(config: StoreConfig, settings: Any) -> Any:
    """An HTTP client whose every request gives up after ``config.timeout`` seconds.

    chromadb's HTTP client waits forever (its httpx session has no timeout, and no setting
    changes that), and its constructor already sends requests. So the server is first asked for
    its heartbeat with the timeout, then the client is built and its session given the timeout.
    """
    import chromadb
    import httpx

    assert config.chroma_url
    url = urlparse(config.chroma_url)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ConfigError(f"chroma URL must look like http://HOST:PORT, got {config.chroma_url!r}")
    port = url.port or (443 if url.scheme == "https" else 8000)
    base = f"{url.scheme}://{url.netloc}"
    try:
        httpx.get(f"{base}/api/v2/heartbeat", timeout=config.timeout)
    except httpx.TransportError as exc:
        raise StoreError(_unreachable(config, exc)) from exc
    try:
        client = chromadb.HttpClient(
            host=url.hostname, port=port, ssl=url.scheme == "https", settings=settings
        )
    except Exception as exc:
        raise StoreError(f"cannot use the Chroma server at {config.chroma_url}: {exc}") from exc
    session = getattr(getattr(client, "_server", None), "_session", None)
    if isinstance(session, httpx.Client):
        session.timeout = httpx.Timeout(config.timeout)
    return client


def _unreachable(config: StoreConfig, exc: Exception) -> str:
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return (
            f"the Chroma server at {config.chroma_url} did not answer within "
            f"{config.timeout:g} s (QA_CHROMA_TIMEOUT)"
        )
    return f"cannot reach the Chroma server at {config.chroma_url}: {exc or type(exc).__name__}"


def _reports_unreachable(method: F) -> F:
    """Turn a lost or silent Chroma server (an httpx transport error) into a ``StoreError``."""

    @functools.wraps(method)
    def wrapper(self: ChromaStore, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            import httpx

            if isinstance(exc, httpx.TransportError):
                raise StoreError(_unreachable(self._config, exc)) from exc
            raise

    return wrapper  # type: ignore[return-value]


def _metadata(article: Article) -> dict[str, str | int]:
    meta: dict[str, str | int] = {"article_id": article.id, "title": article.title}
    for key in ("source", "url", "published"):
        value = getattr(article, key)
        if value:
            meta[key] = value
    if article.published:
        meta["published_ord"] = _date_ord(article.published)
    return meta


def _record(chunk_id: str, text: str, meta: dict[str, Any]) -> ChunkRecord:
    """What the lexical index keeps of a stored chunk."""
    from vectorstore.lexical import ChunkRecord  # scipy: only for the readers that need it

    return ChunkRecord(
        chunk_id,
        str(meta["article_id"]),
        int(meta["start"]),
        text,
        str(meta.get("source", "")),
        int(meta.get("published_ord", 0)),
    )


def _date_ord(iso_date: str) -> int:
    """2014-05-19 -> 20140519, so Chroma can compare dates as numbers."""
    return int(iso_date[:10].replace("-", ""))


def _info(meta: dict[str, Any], article_id: str | None = None) -> ArticleInfo:
    return ArticleInfo(
        id=article_id or str(meta["article_id"]),
        title=str(meta.get("title", "")),
        source=meta.get("source"),
        url=meta.get("url"),
        published=meta.get("published"),
    )


def where_clause(filters: Filters | None) -> dict[str, Any] | None:
    """Chroma's ``where`` for ``filters``, or None when nothing is filtered."""
    if not filters:
        return None
    parts: list[dict[str, Any]] = []
    if filters.sources:
        parts.append({"source": {"$in": list(filters.sources)}})
    if filters.article_ids:
        parts.append({"article_id": {"$in": list(filters.article_ids)}})
    if filters.published_from:
        parts.append({"published_ord": {"$gte": _date_ord(filters.published_from)}})
    if filters.published_to:
        parts.append({"published_ord": {"$lte": _date_ord(filters.published_to)}})
    return parts[0] if len(parts) == 1 else {"$and": parts}


class ChromaStore:
    """Articles and their chunk vectors in Chroma, embedded or on a server."""

    def __init__(self, config: StoreConfig, model_id: str) -> None:
        self._config = config
        self._model_id = model_id
        self._client: Any = None
        self._chunks: Any = None
        self._articles: Any = None
        self._batch_size: int | None = None

    # -- connection ------------------------------------------------------------------------

    def _open(self) -> None:
        if self._client is not None:
            return
        client = open_client(self._config)
        name = self._config.name
        try:
            chunks = client.get_or_create_collection(
                f"{name}-chunks",
                embedding_function=None,
                configuration={"hnsw": {"space": "cosine"}},
                metadata={_MODEL_KEY: self._model_id},
            )
            articles = client.get_or_create_collection(f"{name}-articles", embedding_function=None)
        except Exception as exc:
            where = self._config.chroma_url or str(self._config.data_dir)
            raise StoreError(f"cannot open the Chroma collections at {where}: {exc}") from exc
        stored_model = (chunks.metadata or {}).get(_MODEL_KEY)
        if stored_model and stored_model != self._model_id:
            raise ConfigError(
                f"library {name!r} was built with the embedding model {stored_model!r}, not "
                f"{self._model_id!r}; use that model, or another --collection or data folder"
            )
        self._client, self._chunks, self._articles = client, chunks, articles

    @property
    def batch_size(self) -> int:
        """The most records Chroma takes in one request."""
        if self._batch_size is None:
            self._open()
            self._batch_size = int(self._client.get_max_batch_size())
        return self._batch_size

    # -- reading ---------------------------------------------------------------------------

    @_reports_unreachable
    def stored_hashes(self, article_ids: Sequence[str]) -> dict[str, str]:
        """The content hash stored for each of ``article_ids`` that is in the library."""
        self._open()
        found: dict[str, str] = {}
        for batch in _batches(list(article_ids), self.batch_size):
            got = self._articles.get(ids=batch, include=["metadatas"])
            for aid, meta in zip(got["ids"], got["metadatas"], strict=True):
                found[aid] = str(meta.get("content_hash", ""))
        return found

    @_reports_unreachable
    def list_articles(self) -> list[ArticleSummary]:
        """Every article in the library, ordered by id."""
        self._open()
        got = self._articles.get(include=["metadatas"])
        rows = [
            ArticleSummary(
                info=_info(meta, aid),
                chunks=int(meta.get("chunks", 0)),
                chars=int(meta.get("chars", 0)),
                content_hash=str(meta.get("content_hash", "")),
            )
            for aid, meta in zip(got["ids"], got["metadatas"], strict=True)
        ]
        return sorted(rows, key=lambda row: row.info.id)

    @_reports_unreachable
    def get_article(self, article_id: str) -> Article | None:
        """The whole article, or None when it is not in the library."""
        self._open()
        got = self._articles.get(ids=[article_id], include=["metadatas", "documents"])
        if not got["ids"]:
            return None
        meta, text = got["metadatas"][0], got["documents"][0]
        info = _info(meta, article_id)
        return Article(info.id, info.title, text, info.source, info.url, info.published)

    @_reports_unreachable
    def chunk_ids(self, article_id: str) -> list[str]:
        """The ids of every chunk stored for ``article_id``."""
        self._open()
        got = self._chunks.get(where={"article_id": article_id}, include=[])
        return list(got["ids"])

    @_reports_unreachable
    def count_chunks(self) -> int:
        self._open()
        return int(self._chunks.count())

    @_reports_unreachable
    def revision(self) -> str:
        """A marker that changes with every write or delete, by any process."""
        self._open()
        meta = self._client.get_collection(self._chunks.name).metadata or {}
        return str(meta.get(_REVISION_KEY, ""))

    def iter_records(self, page: int = 5000) -> Iterator[ChunkRecord]:
        """Every stored chunk, for building derived indexes."""
        self._open()
        offset = 0
        while True:
            got = self._page(page, offset)
            for cid, text, meta in zip(got["ids"], got["documents"], got["metadatas"], strict=True):
                yield _record(cid, text, meta)
            if len(got["ids"]) < page:
                return
            offset += page

    @_reports_unreachable
    def records_of(self, article_ids: Sequence[str]) -> list[ChunkRecord]:
        """The stored chunks of ``article_ids`` (none for an article not in the library)."""
        self._open()
        out: list[ChunkRecord] = []
        for batch in _batches(list(article_ids), 500):
            got = self._chunks.get(
                where={"article_id": {"$in": batch}}, include=["documents", "metadatas"]
            )
            rows = zip(got["ids"], got["documents"], got["metadatas"], strict=True)
            out.extend(_record(cid, text, meta) for cid, text, meta in rows)
        return out

    @_reports_unreachable
    def _page(self, limit: int, offset: int) -> Any:
        return self._chunks.get(limit=limit, offset=offset, include=["documents", "metadatas"])

    @_reports_unreachable
    def get_passages(
        self, chunk_ids: Sequence[str], query_vector: Sequence[float]
    ) -> list[ScoredPassage]:
        """The chunks ``chunk_ids`` that still exist, scored by cosine to ``query_vector``."""
        self._open()
        if not chunk_ids:
            return []
        got = self._chunks.get(
            ids=list(chunk_ids), include=["documents", "metadatas", "embeddings"]
        )
        if not got["ids"]:
            return []
        # unit vectors: the dot product is the cosine, and distance = 1 - cosine
        cosines = np.asarray(got["embeddings"]) @ np.asarray(query_vector)
        passages = []
        for cid, text, meta, cosine in zip(
            got["ids"], got["documents"], got["metadatas"], cosines, strict=True
        ):
            chunk = Chunk(cid, str(meta["article_id"]), text, int(meta["start"]), int(meta["end"]))
            passages.append(ScoredPassage(chunk, _info(meta), _distance_to_score(1.0 - cosine)))
        return passages

    @_reports_unreachable
    def search(
        self, vector: Sequence[float], k: int, filters: Filters | None = None
    ) -> list[ScoredPassage]:
        """The ``k`` chunks nearest to ``vector``, best first, scored in [0, 1]."""
        self._open()
        if k <= 0:
            return []
        got = self._chunks.query(
            query_embeddings=[list(vector)],
            n_results=k,
            where=where_clause(filters),
            include=["documents", "metadatas", "distances"],
        )
        passages = []
        for cid, text, meta, distance in zip(
            got["ids"][0],
            got["documents"][0],
            got["metadatas"][0],
            got["distances"][0],
            strict=True,
        ):
            chunk = Chunk(cid, str(meta["article_id"]), text, int(meta["start"]), int(meta["end"]))
            passages.append(ScoredPassage(chunk, _info(meta), _distance_to_score(distance)))
        return passages

    # -- writing ---------------------------------------------------------------------------

    def write_article(self, article: Article, chunks: Sequence[Chunk], vectors: Vectors) -> None:
        """Store ``article`` as exactly ``chunks``, replacing whatever it had before."""
        self.write_articles([(article, chunks, vectors)])

    @_reports_unreachable
    def write_articles(self, items: Sequence[tuple[Article, Sequence[Chunk], Vectors]]) -> None:
        """Store each article as exactly its chunks, replacing whatever it had before.

        In as few requests as Chroma allows, in the crash-safe order: every chunk of every
        article, then the articles' stale chunks deleted, then one revision bump, then their
        registry records. (With the bump last, a crash just before it would leave the records
        saying "stored" under the old revision: the next ingest would skip every article, and
        a lexical index cached at that revision would keep the replaced chunks.)
        """
        for article, chunks, vectors in items:
            if len(chunks) != len(vectors):
                raise ValueError(f"{article.id}: {len(chunks)} chunks but {len(vectors)} vectors")
        if not items:
            return
        self._open()
        size = self.batch_size
        ids: list[str] = []
        documents: list[str] = []
        metadatas: list[dict[str, str | int]] = []
        rows: list[npt.NDArray[np.float32]] = []
        for article, chunks, vectors in items:
            base = _metadata(article)
            ids.extend(c.id for c in chunks)
            documents.extend(c.text for c in chunks)
            metadatas.extend({**base, "start": c.start, "end": c.end} for c in chunks)
            if len(chunks):
                rows.extend(np.asarray(vectors, dtype=np.float32))
        for start in range(0, len(ids), size):
            self._chunks.upsert(
                ids=ids[start : start + size],
                documents=documents[start : start + size],
                embeddings=rows[start : start + size],
                metadatas=metadatas[start : start + size],
            )
        keep = set(ids)
        stale = [cid for cid in self._chunk_ids_of([a.id for a, _, _ in items]) if cid not in keep]
        for batch in _batches(stale, size):
            self._chunks.delete(ids=batch)
        self._bump_revision()
        records = [
            {
                **_metadata(article),
                "content_hash": article.content_hash,
                "chunks": len(chunks),
                "chars": len(article.text),
            }
            for article, chunks, _ in items
        ]
        for start in range(0, len(items), min(size, _REGISTRY_BATCH)):
            part = items[start : start + min(size, _REGISTRY_BATCH)]
            self._articles.upsert(
                ids=[article.id for article, _, _ in part],
                documents=[article.text for article, _, _ in part],
                embeddings=[_REGISTRY_VECTOR] * len(part),
                metadatas=records[start : start + len(part)],
            )

    def _chunk_ids_of(self, article_ids: list[str]) -> list[str]:
        """The ids of every chunk stored for any of ``article_ids``."""
        found: list[str] = []
        for batch in _batches(article_ids, _ID_FILTER_BATCH):
            where = {"article_id": batch[0]} if len(batch) == 1 else {"article_id": {"$in": batch}}
            found.extend(self._chunks.get(where=where, include=[])["ids"])
        return found

    def _bump_revision(self) -> None:
        self._chunks.modify(metadata={_MODEL_KEY: self._model_id, _REVISION_KEY: uuid.uuid4().hex})

    @_reports_unreachable
    def delete_article(self, article_id: str) -> bool:
        """Remove the article and all its chunks; False when it was not there.

        Its registry record loses its content hash first, is deleted last: a crash in between
        leaves a record that no ingest takes for current, so running either the delete or the
        ingest of the article again makes it whole (else the ingest would skip the article,
        recorded as stored with none of its chunks left).
        """
        self._open()
        existed = bool(self._articles.get(ids=[article_id], include=[])["ids"])
        if existed:
            self._articles.update(ids=[article_id], metadatas=[{"content_hash": ""}])
        chunk_ids = self.chunk_ids(article_id)
        for batch in _batches(chunk_ids, self.batch_size):
            self._chunks.delete(ids=batch)
        if existed or chunk_ids:
            self._bump_revision()
        if existed:
            self._articles.delete(ids=[article_id])
        return existed or bool(chunk_ids)


def _distance_to_score(distance: float) -> float:
    """Cosine distance (0 = same direction, 2 = opposite) to a score in [0, 1]."""
    return max(0.0, min(1.0, 1.0 - float(distance)))


def _batches(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
