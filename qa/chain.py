"""LangChain components: a retriever over the store and a runnable that returns an Answer.

Both are ordinary LangChain objects, usable in other LangChain code:

    retriever = PassageRetriever(search=library.search, k=8)
    docs = retriever.invoke("Who did Putin order to pull back the forces?")
    chain = build_chain(retriever, ExtractiveAnswerer())
    answer = chain.invoke({"question": "..."})

LangChain ``Document``s stay inside this module; everything else passes ``ScoredPassage``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any, Protocol, runtime_checkable

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableLambda
from pydantic import ConfigDict

from qa.answerer import Answerer
from qa.context import widen_contexts
from qa.followup import Resolver
from qa.types import Answer
from vectorstore.types import ArticleInfo, Chunk, Filters, ScoredPassage

SearchFn = Callable[[str, int, Filters | None], list[ScoredPassage]]


@runtime_checkable
class StreamingAnswerer(Protocol):
    """An answerer that can also stream: text pieces, then the final Answer (an LLM)."""

    def answer(self, question: str, passages: Sequence[ScoredPassage]) -> Answer: ...

    def stream(
        self, question: str, passages: Sequence[ScoredPassage]
    ) -> Iterator[str | Answer]: ...


def to_document(passage: ScoredPassage) -> Document:
    """A passage as a LangChain Document (text plus everything needed to cite it)."""
    chunk, info = passage.chunk, passage.article
    return Document(
        id=chunk.id,
        page_content=chunk.text,
        metadata={
            "article_id": info.id,
            "title": info.title,
            "source": info.source,
            "url": info.url,
            "published": info.published,
            "start": chunk.start,
            "end": chunk.end,
            "score": passage.score,
        },
    )


def from_document(doc: Document) -> ScoredPassage:
    """The inverse of ``to_document``."""
    meta = doc.metadata
    chunk = Chunk(str(doc.id), meta["article_id"], doc.page_content, meta["start"], meta["end"])
    info = ArticleInfo(
        meta["article_id"],
        meta["title"],
        meta.get("source"),
        meta.get("url"),
        meta.get("published"),
    )
    return ScoredPassage(chunk, info, float(meta["score"]))


class PassageRetriever(BaseRetriever):
    """Retrieves the ``k`` passages most relevant to a query, optionally filtered."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    search: SearchFn
    k: int = 8
    filters: Filters | None = None

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [to_document(p) for p in self.search(query, self.k, self.filters)]

    def with_filters(self, filters: Filters | None) -> PassageRetriever:
        """The same retriever restricted by ``filters``."""
        return self.model_copy(update={"filters": filters})


ArticleTextFn = Callable[[str], str | None]


class AnswerSteps:
    """The steps of the answering chain: resolve a follow-up, retrieve, answer.

    Inputs: ``{"question": str, "filters": Filters | None, "history": [messages]}`` (only
    ``question`` required). ``resolver(question, history, search)`` turns a follow-up into the
    query retrieval uses (``qa.followup``); the answer keeps the user's question.
    """

    def __init__(
        self,
        retriever: PassageRetriever,
        answerer: Answerer,
        article_text: ArticleTextFn | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.retriever = retriever
        self.answerer = answerer
        self.article_text = article_text
        self.resolver = resolver

    def resolve(self, inputs: dict[str, Any]) -> dict[str, Any]:
        question, history = inputs["question"], inputs.get("history") or ()
        if not history or self.resolver is None:
            return {**inputs, "query": question}
        retriever = self.retriever.with_filters(inputs.get("filters"))

        def search(query: str) -> list[ScoredPassage]:
            return [from_document(d) for d in retriever.invoke(query)]

        return {**inputs, "query": self.resolver(question, history, search)}

    def retrieve(self, inputs: dict[str, Any]) -> dict[str, Any]:
        query = inputs.get("query") or inputs["question"]
        docs = self.retriever.with_filters(inputs.get("filters")).invoke(query)
        return {**inputs, "documents": docs}

    def answer(self, inputs: dict[str, Any]) -> Answer:
        passages = [from_document(d) for d in inputs["documents"]]
        query = inputs.get("query") or inputs["question"]
        return self.finish(self.answerer.answer(query, passages), inputs)

    def finish(self, result: Answer, inputs: dict[str, Any]) -> Answer:
        """The answer to the user's own question, each citation's context widened."""
        if result.question != inputs["question"]:
            result = replace(result, question=inputs["question"])
        if self.article_text is None or not result.citations:
            return result
        texts = {aid: self.article_text(aid) for aid in {c.article.id for c in result.citations}}
        return widen_contexts(result, texts)

    def stream(self, inputs: dict[str, Any]) -> Iterator[str | Answer]:
        """Pieces of the answer's text as they are written, then the final ``Answer``.

        With an answerer that streams (an LLM), the pieces are provisional: the final Answer,
        verified, is what to show. Otherwise the one piece is the answer's text.
        """
        inputs = self.retrieve(self.resolve(inputs))
        if not isinstance(self.answerer, StreamingAnswerer):
            result = self.answer(inputs)
            yield result.text
            yield result
            return
        passages = [from_document(d) for d in inputs["documents"]]
        query = inputs.get("query") or inputs["question"]
        for item in self.answerer.stream(query, passages):
            if isinstance(item, str):
                yield item
            else:
                yield self.finish(item, inputs)
                return

    def runnable(self) -> Runnable[dict[str, Any], Answer]:
        return (
            RunnableLambda(self.resolve)
            | RunnableLambda(self.retrieve)
            | RunnableLambda(self.answer)
        ).with_config(run_name="qa_answer")


def build_chain(
    retriever: PassageRetriever,
    answerer: Answerer,
    article_text: ArticleTextFn | None = None,
    resolver: Resolver | None = None,
) -> Runnable[dict[str, Any], Answer]:
    """``{"question": str, "filters": Filters | None, "history": [...]}`` -> ``Answer``.

    With ``article_text`` (article id -> its full text), each citation's context is widened
    from the retrieved passage to the paragraph around the quote. With ``resolver``, a
    follow-up question is resolved against ``history`` before retrieval (``qa.followup``).
    """
    return AnswerSteps(retriever, answerer, article_text, resolver).runnable()
