"""The library: the one object the CLI and the UI talk to.

It owns the store, the embedder and the answering chain, each created lazily, so building a
``Library`` is instant and commands that embed nothing never load the model.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from typing import Any

from langchain_core.runnables import Runnable

from qa.answerer import Answerer, ExtractiveAnswerer
from qa.chain import PassageRetriever, build_chain
from qa.settings import Settings
from qa.types import Answer
from vectorstore.embeddings import Embedder, SentenceTransformerEmbedder
from vectorstore.errors import QAError
from vectorstore.hybrid import HybridSearcher, LexicalCache
from vectorstore.ingest import IngestOptions, IngestReport, ingest
from vectorstore.store import ChromaStore
from vectorstore.types import Article, ArticleSummary, Filters, ScoredPassage


class Library:
    """Articles you can ingest, list, delete and ask questions of."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder | None = None,
        answerer: Answerer | None = None,
    ) -> None:
        self.settings = settings
        self.embedder: Embedder = embedder or SentenceTransformerEmbedder(settings.embedding_model)
        self.answerer: Answerer = answerer or ExtractiveAnswerer(
            min_score=settings.min_score,
            max_citations=settings.max_citations,
            keep_ratio=settings.citation_keep_ratio,
        )

    @cached_property
    def store(self) -> ChromaStore:
        return ChromaStore(self.settings.store, self.embedder.model_id)

    @cached_property
    def lexical(self) -> LexicalCache:
        cache = self.settings.data_dir / "lexical" / f"{self.settings.collection}.npz"
        return LexicalCache(self.store, cache)

    @cached_property
    def searcher(self) -> HybridSearcher:
        return HybridSearcher(self.store, self.embedder, self.lexical)

    @cached_property
    def retriever(self) -> PassageRetriever:
        return PassageRetriever(search=self.search, k=self.settings.top_k)

    @cached_property
    def chain(self) -> Runnable[dict[str, Any], Answer]:
        return build_chain(self.retriever, self.answerer, self._article_text)

    # -- articles --------------------------------------------------------------------------

    def ingest(self, paths: Iterable[str | Path], progress: bool = True) -> IngestReport:
        options = IngestOptions(
            chunk_chars=self.settings.chunk_chars,
            max_file_bytes=self.settings.max_file_bytes,
            progress=progress,
        )
        report = ingest(paths, self.store, self.embedder, options)
        if report.new or report.updated:
            self.lexical.refresh()
        return report

    def articles(self) -> list[ArticleSummary]:
        return self.store.list_articles()

    def article(self, article_id: str) -> Article | None:
        return self.store.get_article(article_id)

    def _article_text(self, article_id: str) -> str | None:
        article = self.store.get_article(article_id)
        return article.text if article else None

    def delete(self, article_id: str) -> bool:
        deleted = self.store.delete_article(article_id)
        if deleted:
            self.lexical.refresh()
        return deleted

    # -- questions -------------------------------------------------------------------------

    def search(self, query: str, k: int, filters: Filters | None = None) -> list[ScoredPassage]:
        """The ``k`` passages most relevant to ``query``."""
        return self.searcher.search(query, k, filters)

    def ask(self, question: str, filters: Filters | None = None) -> Answer:
        """Answer ``question`` from the stored articles, with citations."""
        question = self.check_question(question)
        return self.chain.invoke({"question": question, "filters": filters})

    def check_question(self, question: str) -> str:
        """The question, tidied; a clear error for one that cannot be asked."""
        cleaned = " ".join("".join(ch if ch.isprintable() else " " for ch in question).split())
        if not cleaned:
            raise QAError("Please type a question.")
        limit = self.settings.max_question_chars
        if len(cleaned) > limit:
            raise QAError(
                f"The question is too long ({len(cleaned):,} characters; the limit is {limit:,})."
            )
        return cleaned
