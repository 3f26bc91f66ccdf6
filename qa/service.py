"""The library: the one object the CLI and the UI talk to.

It owns the store, the embedder and the answering chain, each created lazily, so building a
``Library`` is instant and commands that embed nothing never load the model. LangChain and the
retrieval modules are imported on first use too: ``qa ingest`` and ``qa list`` start faster.

With an embedded store, the first write (``ingest``, ``delete``) takes the data folder's writer
lock (``vectorstore.lock``) and keeps it until ``close`` or the end of the process, so a second
process writing to the same folder is refused with a ``LockedError`` instead of corrupting it;
``qa serve``, which ingests uploads, takes it at start with ``hold_writer_lock``. Reading takes
no lock; with a Chroma server there is none.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qa.answerer import Answerer, ExtractiveAnswerer
from qa.reader import Reader
from qa.settings import Settings
from qa.types import Answer
from vectorstore.embeddings import Embedder, make_embedder
from vectorstore.errors import QAError
from vectorstore.ingest import IngestOptions, IngestReport, ingest
from vectorstore.lock import WriterLock
from vectorstore.store import ChromaStore
from vectorstore.types import Article, ArticleSummary, Filters, ScoredPassage

if TYPE_CHECKING:
    from langchain_core.runnables import Runnable

    from qa.chain import AnswerSteps, PassageRetriever
    from vectorstore.hybrid import HybridSearcher, LexicalCache


class Library:
    """Articles you can ingest, list, delete and ask questions of."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder | None = None,
        answerer: Answerer | None = None,
    ) -> None:
        self.settings = settings
        self.embedder: Embedder = embedder or make_embedder(
            settings.embedding_model, settings.precision
        )
        self.answerer: Answerer = answerer or ExtractiveAnswerer(
            min_score=settings.min_score,
            max_citations=settings.max_citations,
            keep_ratio=settings.citation_keep_ratio,
            reader=Reader(precision=settings.precision) if settings.short_answers else None,
            min_short_probability=settings.min_short_probability,
        )
        if answerer is None and settings.llm_base_url:
            from qa.llm import make_answerer

            # the LLM writes the answers; the quotes are its fallback
            self.answerer = make_answerer(settings, self.embedder, self.answerer)
        embedded = settings.chroma_url is None
        self._writer_lock = WriterLock(settings.data_dir) if embedded else None

    @cached_property
    def store(self) -> ChromaStore:
        return ChromaStore(self.settings.store, self.embedder.model_id)

    @cached_property
    def lexical(self) -> LexicalCache:
        from vectorstore.hybrid import LexicalCache

        cache = self.settings.data_dir / "lexical" / f"{self.settings.collection}.npz"
        return LexicalCache(self.store, cache)

    @cached_property
    def searcher(self) -> HybridSearcher:
        from vectorstore.hybrid import HybridSearcher

        return HybridSearcher(self.store, self.embedder, self.lexical)

    @cached_property
    def retriever(self) -> PassageRetriever:
        from qa.chain import PassageRetriever

        return PassageRetriever(search=self.search, k=self.settings.top_k)

    @cached_property
    def steps(self) -> AnswerSteps:
        from qa.chain import AnswerSteps
        from qa.followup import make_resolver

        resolver = make_resolver(self.answerer, self.embedder)
        return AnswerSteps(self.retriever, self.answerer, self._article_text, resolver)

    @cached_property
    def chain(self) -> Runnable[dict[str, Any], Answer]:
        return self.steps.runnable()

    def warm_up(self) -> None:
        """Load what answering needs (the model, the store, the lexical index, the chain) now,
        so the first question is as quick as the next: for a server, at start-up."""
        self.search("warm up", 1)
        _ = self.chain

    # -- writing -------------------------------------------------------------------------

    def hold_writer_lock(self, command: str) -> None:
        """Become the one process writing to the embedded data folder, until ``close`` or the
        end of the process; ``command`` (``qa serve``) is what a refused process is told.

        Writes take the lock themselves: a long-running writer calls this at start, to be
        refused at once rather than at its first write. A ``LockedError`` when another process
        holds it; re-entrant within this process; nothing to do with a Chroma server.
        """
        if self._writer_lock is not None:
            self._writer_lock.acquire(command)

    def close(self) -> None:
        """Release the writer lock, if this library holds it; a later write takes it again."""
        if self._writer_lock is not None:
            self._writer_lock.release()

    # -- articles --------------------------------------------------------------------------

    def ingest(self, paths: Iterable[str | Path], progress: bool = True) -> IngestReport:
        self.hold_writer_lock("qa ingest")
        options = IngestOptions(
            chunk_chars=self.settings.chunk_chars,
            max_file_bytes=self.settings.max_file_bytes,
            progress=progress,
        )
        before = self._revision_before_write()
        report = ingest(paths, self.store, self.embedder, options)
        if report.new or report.updated:
            self._update_lexical(before, [*report.new, *report.updated])
        return report

    def articles(self) -> list[ArticleSummary]:
        return self.store.list_articles()

    def article(self, article_id: str) -> Article | None:
        return self.store.get_article(article_id)

    def _article_text(self, article_id: str) -> str | None:
        article = self.store.get_article(article_id)
        return article.text if article else None

    def delete(self, article_id: str) -> bool:
        self.hold_writer_lock("qa delete")
        before = self._revision_before_write()
        deleted = self.store.delete_article(article_id)
        if deleted:
            self._update_lexical(before, [article_id])
        return deleted

    def _revision_before_write(self) -> str | None:
        """The store's revision as this process starts writing, when it is the only writer
        (embedded, under the writer lock); None with a Chroma server, where others may write."""
        return None if self.settings.chroma_url else self.store.revision()

    def _update_lexical(self, before: str | None, changed: list[str]) -> None:
        if before is None:
            self.lexical.refresh()
        else:
            self.lexical.apply(before, changed)

    # -- questions -------------------------------------------------------------------------

    def search(self, query: str, k: int, filters: Filters | None = None) -> list[ScoredPassage]:
        """The ``k`` passages most relevant to ``query``."""
        return self.searcher.search(query, k, filters)

    def ask(
        self,
        question: str,
        filters: Filters | None = None,
        history: Sequence[Mapping[str, Any]] | None = None,
    ) -> Answer:
        """Answer ``question`` from the stored articles, with citations.

        ``history``: the conversation so far, oldest first, as ``{"role": "user" |
        "assistant", "content": str}`` (Gradio's messages); a follow-up question is resolved
        against it for retrieval (``qa.followup``), the answer keeps ``question``.
        """
        question = self.check_question(question)
        return self.chain.invoke({"question": question, "filters": filters, "history": history})

    def ask_stream(
        self,
        question: str,
        filters: Filters | None = None,
        history: Sequence[Mapping[str, Any]] | None = None,
    ) -> Iterator[str | Answer]:
        """``ask``, streamed: pieces of text as the answer is written, then the ``Answer``.

        With an LLM the pieces come as the model writes them and are provisional: the final
        Answer, verified, is what to show. Offline: the answer's text, then the Answer. The
        question is checked at once (a QAError here, before any piece).
        """
        question = self.check_question(question)
        return self.steps.stream({"question": question, "filters": filters, "history": history})

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
