"""A BM25 index over the stored chunks, derived from Chroma and cached beside it.

Chroma is the single source of truth. The lexical index is built from the chunks Chroma holds
and tagged with the store's *revision* (a marker every write and delete changes). A reader
whose index carries another revision rebuilds it, so the two never disagree for long, not
after a restart, a crash mid-ingest, or a write by another process, and in server mode every
app process derives the same index from the same server. The cache file only saves the
rebuild on start-up; deleting it loses nothing.

Scores are normalized per query into [0, 1]: the BM25 score divided by the sum of the query
terms' IDFs (what a unit-length chunk matching every term once would score), so 1.0 means
"contains all of the question's content words" and 0.3 "a third of its weight".
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
FORMAT = 1


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
        sources: list[str],
        published: npt.NDArray[np.int64],
        vocab: dict[str, int],
        idf: npt.NDArray[np.float32],
        weights: sparse.csc_matrix,
    ) -> None:
        self.revision = revision
        self.ids = ids
        self.article_ids = article_ids
        self.sources = sources
        self.published = published
        self.vocab = vocab
        self.idf = idf
        self.weights = weights  # documents x terms, BM25 term weights (idf included)
        self.position = {cid: i for i, cid in enumerate(ids)}
        self._article_arr = np.asarray(article_ids, dtype=object)
        self._source_arr = np.asarray(sources, dtype=object)
        self._unknown_idf = math.log(1.0 + (len(ids) + 0.5) / 0.5)

    def __len__(self) -> int:
        return len(self.ids)

    # -- building --------------------------------------------------------------------------

    @classmethod
    def build(cls, revision: str, records: Iterable[ChunkRecord]) -> LexicalIndex:
        """Index ``records`` (any order; duplicates by id keep the last)."""
        unique = {r.id: r for r in records}
        ordered = sorted(unique.values(), key=lambda r: (r.article_id, r.start, r.id))
        vocab: dict[str, int] = {}
        rows: list[int] = []
        cols: list[int] = []
        tfs: list[float] = []
        lengths = np.zeros(len(ordered), dtype=np.float32)
        for row, record in enumerate(ordered):
            terms = content_terms(record.text)
            lengths[row] = len(terms)
            counts: dict[int, int] = {}
            for term in terms:
                col = vocab.setdefault(term, len(vocab))
                counts[col] = counts.get(col, 0) + 1
            rows.extend([row] * len(counts))
            cols.extend(counts)
            tfs.extend(counts.values())
        n_docs, n_terms = len(ordered), len(vocab)
        tf = sparse.csr_matrix(
            (np.asarray(tfs, dtype=np.float32), (rows, cols)), shape=(n_docs, n_terms)
        )
        df = np.bincount(np.asarray(cols, dtype=np.int64), minlength=n_terms).astype(np.float32)
        idf = np.log(1.0 + (n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)
        avg = float(lengths.mean()) if n_docs else 1.0
        norm = K1 * (1.0 - B + B * lengths / max(avg, 1e-6))
        coo = tf.tocoo()
        data = coo.data * (K1 + 1.0) / (coo.data + norm[coo.row]) * idf[coo.col]
        weights = sparse.csc_matrix((data, (coo.row, coo.col)), shape=(n_docs, n_terms))
        return cls(
            revision,
            [r.id for r in ordered],
            [r.article_id for r in ordered],
            [r.source for r in ordered],
            np.asarray([r.published_ord for r in ordered], dtype=np.int64),
            vocab,
            idf,
            weights,
        )

    # -- scoring ---------------------------------------------------------------------------

    def scores(self, query: str, filters: Filters | None = None) -> npt.NDArray[np.float32]:
        """Every chunk's normalized BM25 score for ``query`` (0 where filtered out)."""
        terms = sorted(set(content_terms(query)))
        out = np.zeros(len(self.ids), dtype=np.float32)
        if not terms or not len(self.ids):
            return out
        cols = [self.vocab[t] for t in terms if t in self.vocab]
        total = sum(
            float(self.idf[self.vocab[t]]) if t in self.vocab else self._unknown_idf for t in terms
        )
        if cols:
            out = np.asarray(self.weights[:, cols].sum(axis=1)).ravel().astype(np.float32)
            out /= total
            np.clip(out, 0.0, 1.0, out=out)
        if filters:
            out[~self.mask(filters)] = 0.0
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
                    idf=self.idf,
                    data=self.weights.data,
                    indices=self.weights.indices,
                    indptr=self.weights.indptr,
                    shape=np.asarray(self.weights.shape, dtype=np.int64),
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
                weights = sparse.csc_matrix((z["data"], z["indices"], z["indptr"]), shape=shape)
                return cls(
                    meta["revision"],
                    meta["ids"],
                    meta["article_ids"],
                    meta["sources"],
                    z["published"],
                    {t: i for i, t in enumerate(meta["vocab"])},
                    z["idf"],
                    weights,
                )
        except (OSError, ValueError, KeyError):
            return None


def top_indices(scores: npt.NDArray[np.float32], k: int) -> Sequence[int]:
    """Positions of the ``k`` highest positive scores, best first."""
    if k <= 0 or not len(scores):
        return []
    k = min(k, len(scores))
    part = np.argpartition(-scores, k - 1)[:k]
    best = part[np.argsort(-scores[part], kind="stable")]
    return [int(i) for i in best if scores[i] > 0]
