"""Hybrid retrieval: dense vectors from Chroma and BM25 over the same chunks, reranked.

For a query, the candidates are the union of the best chunks by cosine (Chroma) and by BM25
(the lexical index). Every candidate gets both scores exactly (a lexical-only candidate's
vector is fetched and compared with the query), a context score (the best BM25 score of its
neighbouring chunks: the sentence that answers often sits beside the one that names the
subject), article-level evidence (the BM25 score of the whole article, how much of the query
the article and its first passage hold: for a query that summarizes one), and the cheap
features of ``features.py``. A small logistic model (``reranker.py``, trained by
``benchmarks/train_reranker.py``; one for questions, one for statements) turns them into one
score in [0, 1]: an estimate of the chance that the chunk answers the question.

Chunks are fetched from Chroma last, so a chunk deleted since the lexical index was built is
never returned.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from vectorstore.embeddings import Embedder, embed_query
from vectorstore.features import ArticleEvidence, passage_features, question_info
from vectorstore.lexical import ChunkRecord, LexicalIndex, top_indices
from vectorstore.reranker import Reranker
from vectorstore.types import Filters, ScoredPassage

log = logging.getLogger(__name__)


class HybridSource(Protocol):
    """The part of a store hybrid retrieval needs."""

    def revision(self) -> str:
        """A marker that changes with every write or delete."""
        ...

    def iter_records(self) -> Iterable[ChunkRecord]:
        """Every stored chunk."""
        ...

    def records_of(self, article_ids: Sequence[str]) -> Iterable[ChunkRecord]:
        """The stored chunks of ``article_ids``."""
        ...

    def search(
        self, vector: list[float], k: int, filters: Filters | None = None
    ) -> list[ScoredPassage]:
        """The ``k`` chunks nearest to ``vector``."""
        ...

    def get_passages(self, chunk_ids: list[str], query_vector: list[float]) -> list[ScoredPassage]:
        """The chunks that still exist, scored by cosine to ``query_vector``."""
        ...


class LexicalCache:
    """Keeps a ``LexicalIndex`` in step with the store's revision.

    The first use loads the cached file (or builds it). Later, a changed revision triggers a
    reload at most every ``min_interval`` seconds, in the background, while the previous index
    keeps answering (its hits are re-read from Chroma, so nothing deleted is returned): of the
    cached file when the writing process left it at the new revision (``apply``), else a
    rebuild from the store.
    """

    INCREMENTAL_MIN = 50  # articles an update may always change; beyond, a quarter of them

    def __init__(self, source: HybridSource, path: Path | None, min_interval: float = 5.0):
        self._source = source
        self._path = path
        self._min_interval = min_interval
        self._index: LexicalIndex | None = None
        self._lock = threading.Lock()
        self._rebuilding = False
        self._last_check = 0.0

    def get(self) -> LexicalIndex:
        """The freshest index available without waiting (except the very first time)."""
        if self._index is None:
            with self._lock:
                if self._index is None:
                    self._index = self._load_or_build(self._source.revision())
            return self._index
        now = time.monotonic()
        if now - self._last_check >= self._min_interval and not self._rebuilding:
            self._last_check = now
            revision = self._source.revision()
            if revision != self._index.revision:
                self._rebuilding = True
                threading.Thread(target=self._rebuild, args=(revision,), daemon=True).start()
        return self._index

    def refresh(self) -> LexicalIndex:
        """Bring the index up to date now (after an ingest or delete in this process)."""
        with self._lock:
            revision = self._source.revision()
            if self._index is None or self._index.revision != revision:
                self._index = self._load_or_build(revision)
            return self._index

    def apply(self, before: str, changed_articles: Sequence[str]) -> LexicalIndex:
        """Bring the index up to date after this process changed ``changed_articles`` (wrote,
        replaced or deleted them) starting from revision ``before``, with no other writer.

        When the index is at ``before`` and the change is small beside it, only the changed
        articles' chunks are read back and tokenized (``LexicalIndex.updated``); otherwise
        the index is rebuilt. Either way it ends at the store's revision and is cached.
        """
        with self._lock:
            revision = self._source.revision()
            current = self._index
            if current is None and self._path is not None:
                current = LexicalIndex.load(self._path)
            small = len(changed_articles) <= max(
                self.INCREMENTAL_MIN, len(set(current.article_ids)) // 4 if current else 0
            )
            if current is not None and current.revision == revision:
                index = current  # already current (the file was loaded above, not again)
            elif current is None or current.revision != before or not small:
                index = self._build(revision)
            else:
                started = time.perf_counter()
                records = self._source.records_of(list(changed_articles))
                index = current.updated(revision, changed_articles, records)
                self._save(index)
                log.info(
                    "lexical index: %d articles updated in %.2f s",
                    len(changed_articles),
                    time.perf_counter() - started,
                )
            self._index = index
            return index

    def _rebuild(self, revision: str) -> None:
        try:
            index = self._load_or_build(revision)
            with self._lock:
                self._index = index
        except Exception:  # keep serving the old index; the next check tries again
            log.exception("rebuilding the lexical index failed")
        finally:
            self._rebuilding = False

    def _load_or_build(self, revision: str) -> LexicalIndex:
        if self._path is not None:
            cached = LexicalIndex.load(self._path)
            if cached is not None and cached.revision == revision:
                return cached
        return self._build(revision)

    def _build(self, revision: str) -> LexicalIndex:
        started = time.perf_counter()
        index = LexicalIndex.build(revision, self._source.iter_records())
        self._save(index)
        log.info("lexical index: %d chunks in %.2f s", len(index), time.perf_counter() - started)
        return index

    def _save(self, index: LexicalIndex) -> None:
        if self._path is not None:
            try:
                index.save(self._path)
            except OSError as exc:  # a read-only cache folder only costs rebuild time
                log.warning("could not cache the lexical index at %s: %s", self._path, exc)


@dataclass(frozen=True)
class Candidate:
    """A retrieved chunk with its feature vector (``FEATURE_NAMES`` order)."""

    passage: ScoredPassage
    features: list[float]


class HybridSearcher:
    """Dense + BM25 candidates, each described by cheap features, ranked by the reranker."""

    def __init__(
        self,
        source: HybridSource,
        embedder: Embedder,
        lexical: LexicalCache,
        reranker: Reranker | None = None,
        candidates: int = 40,
        statement_reranker: Reranker | None = None,
    ) -> None:
        self.source = source
        self.embedder = embedder
        self.lexical = lexical
        self.reranker = reranker or Reranker.bundled()
        self.statement_reranker = statement_reranker or Reranker.bundled(statements=True)
        self.candidates = candidates

    def candidates_for(self, query: str, filters: Filters | None = None) -> list[Candidate]:
        """The union of the best chunks by cosine and by BM25, with their features."""
        vector = embed_query(self.embedder, query)
        found = {p.chunk.id: p for p in self.source.search(vector, self.candidates, filters)}
        index = self.lexical.get()
        lex = index.scores(query, filters)
        lexical_ids = [index.ids[i] for i in top_indices(lex, self.candidates)]
        missing = [cid for cid in lexical_ids if cid not in found]
        for p in self.source.get_passages(missing, vector):
            found[p.chunk.id] = p
        if not found:
            return []
        article_lex = index.article_scores(query)  # (every candidate already passed filters)
        in_article, in_lead = index.coverage(query)
        rows = []
        for cid, passage in found.items():
            pos = index.position.get(cid)
            lexical = float(lex[pos]) if pos is not None else 0.0
            context = 0.0
            evidence = ArticleEvidence()
            if pos is not None:
                context = max((float(lex[j]) for j in index.neighbours(pos)), default=0.0)
                evidence = ArticleEvidence(
                    float(in_article[pos]), float(in_lead[pos]), float(lex[index.lead_of[pos]])
                )
            whole = float(article_lex[pos]) if pos is not None else 0.0
            rows.append((passage, lexical, context, whole, evidence))
        art_dense: dict[str, float] = {}
        art_lex: dict[str, float] = {}
        for passage, lexical, _, _, _ in rows:
            aid = passage.article.id
            art_dense[aid] = max(art_dense.get(aid, 0.0), passage.score)
            art_lex[aid] = max(art_lex.get(aid, 0.0), lexical)
        best_dense = max(art_dense.values())
        best_lex = max(art_lex.values())
        best = ArticleEvidence(
            *(max(getattr(r[4], f) for r in rows) for f in ArticleEvidence.__dataclass_fields__)
        )
        info = question_info(query)
        return [
            Candidate(
                passage,
                passage_features(
                    info,
                    passage.chunk.text,
                    passage.score,
                    lexical,
                    context,
                    art_dense[passage.article.id],
                    art_lex[passage.article.id],
                    best_dense,
                    best_lex,
                    whole,
                    passage.chunk.start,
                    evidence,
                    best,
                ),
            )
            for passage, lexical, context, whole, evidence in rows
        ]

    def reranker_for(self, query: str) -> Reranker:
        """The statement reranker for a query that states (a highlight, a headline, a claim
        to check: it sums up an article), the question reranker for one that asks."""
        return self.statement_reranker if question_info(query).statement else self.reranker

    def search(self, query: str, k: int, filters: Filters | None = None) -> list[ScoredPassage]:
        """The ``k`` best chunks for ``query``, best first; a score is the reranker's estimate
        of the chance that the chunk answers the question (for a statement: that it is from
        the article the statement sums up)."""
        reranker = self.reranker_for(query)
        candidates = self.candidates_for(query, filters)
        ranked = [
            ScoredPassage(c.passage.chunk, c.passage.article, reranker.score(c.features))
            for c in candidates
        ]
        if reranker is self.statement_reranker:
            # which article: the statement reranker; which of its passages: the question one
            within = {c.passage.chunk.id: self.reranker.score(c.features) for c in candidates}
            ranked = best_passage_first(ranked, within)
            ranked = spread_over_articles(ranked, STATEMENT_REPEAT_DECAY)
        ranked.sort(key=lambda p: (-p.score, p.chunk.id))
        return ranked[:k]


# For a statement, an article's second-best passage weighs this much of its score, its third
# this much of that, and so on (``spread_over_articles``).
STATEMENT_REPEAT_DECAY = 0.2


def best_passage_first(
    passages: Sequence[ScoredPassage], within: dict[str, float]
) -> list[ScoredPassage]:
    """``passages`` with each article's scores given to its passages in the order of
    ``within`` (chunk id -> score): its best score to the passage ``within`` ranks first.

    The statement reranker tells the article a statement sums up, not which of its passages
    says it: any passage of that article was right in its training, so within an article its
    order means nothing and the question reranker's is used.
    """
    by_article: dict[str, list[ScoredPassage]] = {}
    for p in passages:
        by_article.setdefault(p.article.id, []).append(p)
    out: list[ScoredPassage] = []
    for group in by_article.values():
        scores = sorted((p.score for p in group), reverse=True)
        order = sorted(group, key=lambda p: (-within.get(p.chunk.id, 0.0), p.chunk.id))
        out.extend(ScoredPassage(p.chunk, p.article, s) for p, s in zip(order, scores, strict=True))
    return out


def spread_over_articles(passages: Sequence[ScoredPassage], decay: float) -> list[ScoredPassage]:
    """``passages`` with the score of each article's n-th best passage (from 0) times
    ``decay ** n``.

    The statement reranker estimates whether a passage is from the article a statement sums
    up, which all of that article's passages are about equally: unspread, the best article's
    passages would fill the list before the second article's best one.
    """
    seen: dict[str, int] = {}
    out = []
    for p in sorted(passages, key=lambda p: (-p.score, p.chunk.id)):
        n = seen.get(p.article.id, 0)
        seen[p.article.id] = n + 1
        out.append(p if n == 0 else ScoredPassage(p.chunk, p.article, p.score * decay**n))
    return out
