"""A BM25 index over the stored chunks, derived from Chroma and cached beside it.

Chroma is the single source of truth. The lexical index is built from the chunks Chroma holds
and tagged with the store's *revision* (a marker every write and delete changes). A reader
whose index carries another revision rebuilds it, so the two never disagree for long, not
after a restart, a crash mid-ingest, or a write by another process, and in server mode every
app process derives the same index from the same server. The cache file only saves the
rebuild on start-up; deleting it loses nothing.

An ingest or delete in this process updates the index in place of a rebuild
(:meth:`LexicalIndex.updated`): the rows of the articles it replaced or removed go, the new
chunks are tokenized and added, and the term statistics are recomputed from the stored term
counts, which costs a fraction of re-reading and re-tokenizing every chunk.

Scores are normalized per query into [0, 1]: the BM25 score divided by the sum of the query
terms' IDFs (what a unit-length chunk matching every term once would score), so 1.0 means
"contains all of the question's content words" and 0.3 "a third of its weight".

Besides the chunk-level BM25, the index scores whole articles (:meth:`LexicalIndex.article_scores`):
the term counts of an article's chunks summed into one document, with their own IDFs and
lengths, so a query that summarizes an article finds it even when no single chunk matches
it well. Those statistics are derived from the chunk counts whenever an index is made, so
nothing more is stored.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy import sparse

from vectorstore.text import content_terms
from vectorstore.types import Filters

K1 = 1.2
B = 0.75
FORMAT = 2


@dataclass(frozen=True)
class ChunkRecord:
    """What the lexical index keeps of a chunk (its text only while building)."""

    id: str
    article_id: str
    start: int
    text: str
    source: str = ""
    published_ord: int = 0


class LexicalIndex:
    """BM25 over chunk texts; chunks sorted by (article, offset) so neighbours are adjacent."""

    def __init__(
        self,
        revision: str,
        ids: list[str],
        article_ids: list[str],
        starts: npt.NDArray[np.int64],
        sources: list[str],
        published: npt.NDArray[np.int64],
        vocab: dict[str, int],
        tf: sparse.csr_matrix,
    ) -> None:
        """``tf``: documents x terms term counts, rows in (article, start, id) order."""
        self.revision = revision
        self.ids = ids
        self.article_ids = article_ids
        self.starts = starts
        self.sources = sources
        self.published = published
        self.vocab = vocab
        self.tf = tf
        self.idf, self.weights = _bm25(tf)  # weights: documents x terms, idf included
        self.position = {cid: i for i, cid in enumerate(ids)}
        self._article_arr = np.asarray(article_ids, dtype=object)
        self._source_arr = np.asarray(sources, dtype=object)
        self._unknown_idf = _unknown_idf(len(ids))
        # the same statistics with each article's chunks summed into one document
        self.article_of = _article_numbers(article_ids)  # row -> article number
        self.lead_of = _first_rows(self.article_of)  # row -> its article's first row
        n_articles = int(self.article_of.max()) + 1 if len(ids) else 0
        self.article_idf, self.article_weights = _bm25(
            _per_article(tf, self.article_of, n_articles)
        )
        self._article_unknown_idf = _unknown_idf(n_articles)

    def __len__(self) -> int:
        return len(self.ids)

    # -- building --------------------------------------------------------------------------

    @classmethod
    def build(cls, revision: str, records: Iterable[ChunkRecord]) -> LexicalIndex:
        """Index ``records`` (any order; duplicates by id keep the last)."""
        empty = sparse.csr_matrix((0, 0), dtype=np.float32)
        return cls._assemble(revision, _Rows.empty(), empty, {}, records)

    def updated(
        self, revision: str, drop_articles: Iterable[str], records: Iterable[ChunkRecord]
    ) -> LexicalIndex:
        """This index without the chunks of ``drop_articles``, with ``records`` added.

        For an update whose every change is known (an ingest or delete in this process):
        only the new chunks are tokenized; everything else reuses the stored term counts.
        """
        dropped = set(drop_articles)
        keep = np.asarray([a not in dropped for a in self.article_ids], dtype=bool)
        rows = _Rows(
            [cid for cid, k in zip(self.ids, keep, strict=True) if k],
            [a for a, k in zip(self.article_ids, keep, strict=True) if k],
            self.starts[keep],
            [s for s, k in zip(self.sources, keep, strict=True) if k],
            self.published[keep],
        )
        return self._assemble(revision, rows, self.tf[keep], dict(self.vocab), records)

    @classmethod
    def _assemble(
        cls,
        revision: str,
        kept: _Rows,
        kept_tf: sparse.csr_matrix,
        vocab: dict[str, int],
        records: Iterable[ChunkRecord],
    ) -> LexicalIndex:
        """``kept`` rows (with their counts) plus ``records`` tokenized, sorted, as an index."""
        known = set(kept.ids)
        added = {r.id: r for r in records if r.id not in known}
        new = sorted(added.values(), key=lambda r: (r.article_id, r.start, r.id))
        rows: list[int] = []
        cols: list[int] = []
        counts_all: list[float] = []
        for row, record in enumerate(new):
            counts: dict[int, int] = {}
            for term in content_terms(record.text):
                col = vocab.setdefault(term, len(vocab))
                counts[col] = counts.get(col, 0) + 1
            rows.extend([row] * len(counts))
            cols.extend(counts)
            counts_all.extend(counts.values())
        n_terms = len(vocab)
        new_tf = sparse.csr_matrix(
            (np.asarray(counts_all, dtype=np.float32), (rows, cols)), shape=(len(new), n_terms)
        )
        kept_tf = sparse.csr_matrix(
            (kept_tf.data, kept_tf.indices, kept_tf.indptr), shape=(len(kept.ids), n_terms)
        )
        tf = sparse.vstack([kept_tf, new_tf], format="csr", dtype=np.float32)
        ids = kept.ids + [r.id for r in new]
        article_ids = kept.article_ids + [r.article_id for r in new]
        starts = np.concatenate([kept.starts, np.asarray([r.start for r in new], np.int64)])
        sources = kept.sources + [r.source for r in new]
        published = np.concatenate(
            [kept.published, np.asarray([r.published_ord for r in new], np.int64)]
        )
        order = sorted(range(len(ids)), key=lambda i: (article_ids[i], int(starts[i]), ids[i]))
        perm = np.asarray(order, dtype=np.int64)
        return cls(
            revision,
            [ids[i] for i in order],
            [article_ids[i] for i in order],
            starts[perm] if len(perm) else starts,
            [sources[i] for i in order],
            published[perm] if len(perm) else published,
            vocab,
            tf[perm] if len(perm) else tf,
        )

    # -- scoring ---------------------------------------------------------------------------

    def scores(self, query: str, filters: Filters | None = None) -> npt.NDArray[np.float32]:
        """Every chunk's normalized BM25 score for ``query`` (0 where filtered out)."""
        out = self._normalized(query, self.weights, self.idf, self._unknown_idf)
        if filters:
            out[~self.mask(filters)] = 0.0
        return out

    def article_scores(self, query: str, filters: Filters | None = None) -> npt.NDArray[np.float32]:
        """For every chunk, the normalized BM25 score of its *article* (one document of all
        its chunks) for ``query``; 0 where the chunk is filtered out."""
        per_article = self._normalized(
            query, self.article_weights, self.article_idf, self._article_unknown_idf
        )
        out = per_article[self.article_of]
        if filters:
            out[~self.mask(filters)] = 0.0
        return out

    def coverage(self, query: str) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """For every chunk, the share of ``query``'s term weight (each distinct term's IDF; a
        term no chunk holds counts as absent) found anywhere in its article, and found in its
        article's first chunk."""
        n = len(self.ids)
        in_article, in_lead = np.zeros(n, dtype=np.float32), np.zeros(n, dtype=np.float32)
        terms = sorted(set(content_terms(query)))
        cols = [self.vocab[t] for t in terms if t in self.vocab]
        if not cols or not n:
            return in_article, in_lead
        idf = self.idf[cols]
        total = float(idf.sum()) + self._unknown_idf * (len(terms) - len(cols))
        per_article = np.asarray((self.article_weights[:, cols] > 0) @ idf).ravel() / total
        per_row = np.asarray((self.weights[:, cols] > 0) @ idf).ravel() / total
        in_article[:] = per_article[self.article_of]
        in_lead[:] = per_row[self.lead_of]
        return in_article, in_lead

    def _normalized(
        self,
        query: str,
        weights: sparse.csc_matrix,
        idf: npt.NDArray[np.float32],
        unknown_idf: float,
    ) -> npt.NDArray[np.float32]:
        """Each row of ``weights`` scored for ``query``, divided by the sum of the query
        terms' ``idf`` (``unknown_idf`` for a term not in the vocabulary), clipped to [0, 1]."""
        terms = sorted(set(content_terms(query)))
        out = np.zeros(weights.shape[0], dtype=np.float32)
        if not terms or not weights.shape[0]:
            return out
        cols = [self.vocab[t] for t in terms if t in self.vocab]
        total = sum(float(idf[self.vocab[t]]) if t in self.vocab else unknown_idf for t in terms)
        if cols:
            out = np.asarray(weights[:, cols].sum(axis=1)).ravel().astype(np.float32)
            out /= total
            np.clip(out, 0.0, 1.0, out=out)
        return out

    def mask(self, filters: Filters) -> npt.NDArray[np.bool_]:
        """Which chunks pass ``filters``."""
        keep = np.ones(len(self.ids), dtype=bool)
        if filters.sources:
            keep &= np.isin(self._source_arr, list(filters.sources))
        if filters.article_ids:
            keep &= np.isin(self._article_arr, list(filters.article_ids))
        if filters.published_from:
            keep &= self.published >= int(filters.published_from.replace("-", ""))
        if filters.published_to:
            keep &= (self.published <= int(filters.published_to.replace("-", ""))) & (
                self.published > 0
            )
        return keep

    def neighbours(self, index: int) -> list[int]:
        """The positions of the chunks just before and after ``index`` in the same article."""
        article = self.article_ids[index]
        return [
            j
            for j in (index - 1, index + 1)
            if 0 <= j < len(self.ids) and self.article_ids[j] == article
        ]

    # -- persistence -----------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write the index to ``path`` atomically (a crash leaves the old file or the new)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT,
            "revision": self.revision,
            "ids": self.ids,
            "article_ids": self.article_ids,
            "sources": self.sources,
            "vocab": list(self.vocab),
        }
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(
                    f,
                    meta=np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8),
                    published=self.published,
                    starts=self.starts,
                    data=self.tf.data,
                    indices=self.tf.indices,
                    indptr=self.tf.indptr,
                    shape=np.asarray(self.tf.shape, dtype=np.int64),
                )
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path) -> LexicalIndex | None:
        """The index saved at ``path``, or None when there is none or it is unreadable."""
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(z["meta"].tobytes().decode("utf-8"))
                if meta.get("format") != FORMAT:
                    return None
                shape = tuple(int(x) for x in z["shape"])
                tf = sparse.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=shape)
                return cls(
                    meta["revision"],
                    meta["ids"],
                    meta["article_ids"],
                    z["starts"],
                    meta["sources"],
                    z["published"],
                    {t: i for i, t in enumerate(meta["vocab"])},
                    tf,
                )
        except (OSError, ValueError, KeyError):
            return None


@dataclass(frozen=True)
class _Rows:
    """The per-chunk columns of an index, in row order."""

    ids: list[str]
    article_ids: list[str]
    starts: npt.NDArray[np.int64]
    sources: list[str]
    published: npt.NDArray[np.int64]

    @classmethod
    def empty(cls) -> _Rows:
        none = np.zeros(0, dtype=np.int64)
        return cls([], [], none, [], none)


def _bm25(tf: sparse.csr_matrix) -> tuple[npt.NDArray[np.float32], sparse.csc_matrix]:
    """The terms' IDF and the documents' BM25 term weights (IDF included) from term counts."""
    n_docs, n_terms = tf.shape
    df = np.bincount(tf.indices, minlength=n_terms).astype(np.float32)
    idf = np.log(1.0 + (n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)
    lengths = np.asarray(tf.sum(axis=1)).ravel().astype(np.float32)
    avg = float(lengths.mean()) if n_docs else 1.0
    norm = K1 * (1.0 - B + B * lengths / max(avg, 1e-6))
    coo = tf.tocoo()
    data = coo.data * (K1 + 1.0) / (coo.data + norm[coo.row]) * idf[coo.col]
    weights = sparse.csc_matrix((data, (coo.row, coo.col)), shape=(n_docs, n_terms))
    return idf, weights


def _unknown_idf(n_docs: int) -> float:
    """The IDF of a term no document holds, among ``n_docs`` documents."""
    return math.log(1.0 + (n_docs + 0.5) / 0.5)


def _article_numbers(article_ids: Sequence[str]) -> npt.NDArray[np.int64]:
    """Each row's article as a number 0, 1, ... in order of first appearance."""
    numbers: dict[str, int] = {}
    return np.fromiter(
        (numbers.setdefault(a, len(numbers)) for a in article_ids),
        dtype=np.int64,
        count=len(article_ids),
    )


def _first_rows(article_of: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """For each row, the first row of its article (rows are grouped by article)."""
    if not len(article_of):
        return np.zeros(0, dtype=np.int64)
    first = np.r_[True, article_of[1:] != article_of[:-1]]  # the rows that start an article
    return np.asarray(np.flatnonzero(first)[np.cumsum(first) - 1])


def _per_article(
    tf: sparse.csr_matrix, article_of: npt.NDArray[np.int64], n_articles: int
) -> sparse.csr_matrix:
    """Articles x terms term counts: the rows of ``tf`` summed by ``article_of``."""
    n_rows = len(article_of)
    membership = sparse.csr_matrix(
        (np.ones(n_rows, dtype=np.float32), (article_of, np.arange(n_rows))),
        shape=(n_articles, n_rows),
    )
    return sparse.csr_matrix(membership @ tf, dtype=np.float32)


def top_indices(scores: npt.NDArray[np.float32], k: int) -> Sequence[int]:
    """Positions of the ``k`` highest positive scores, best first."""
    if k <= 0 or not len(scores):
        return []
    k = min(k, len(scores))
    part = np.argpartition(-scores, k - 1)[:k]
    best = part[np.argsort(-scores[part], kind="stable")]
    return [int(i) for i in best if scores[i] > 0]
