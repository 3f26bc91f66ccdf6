"""LangChain components: a retriever over the store and a runnable that returns an Answer.

Both are ordinary LangChain objects, usable in other LangChain code:

    retriever = PassageRetriever(search=library.search, k=8)
    docs = retriever.invoke("Who did Putin order to pull back the forces?")
    chain = build_chain(retriever, ExtractiveAnswerer())
    answer = chain.invoke({"question": "..."})

LangChain ``Document``s stay inside this module; everything else passes ``ScoredPassage``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableLambda
from pydantic import ConfigDict

from qa.answerer import Answerer
from qa.context import widen_contexts
from qa.types import Answer
from vectorstore.types import ArticleInfo, Chunk, Filters, ScoredPassage

SearchFn = Callable[[str, int, Filters | None], list[ScoredPassage]]


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


def build_chain(
    retriever: PassageRetriever, answerer: Answerer, article_text: ArticleTextFn | None = None
) -> Runnable[dict[str, Any], Answer]:
    """``{"question": str, "filters": Filters | None}`` -> ``Answer``.

    With ``article_text`` (article id -> its full text), each citation's context is widened
    from the retrieved passage to the paragraph around the quote.
    """

    def retrieve(inputs: dict[str, Any]) -> dict[str, Any]:
        docs = retriever.with_filters(inputs.get("filters")).invoke(inputs["question"])
        return {**inputs, "documents": docs}

    def answer(inputs: dict[str, Any]) -> Answer:
        passages = [from_document(d) for d in inputs["documents"]]
        result = answerer.answer(inputs["question"], passages)
        if article_text is None or not result.citations:
            return result
        texts = {aid: article_text(aid) for aid in {c.article.id for c in result.citations}}
        return widen_contexts(result, texts)

    return (RunnableLambda(retrieve) | RunnableLambda(answer)).with_config(run_name="qa_answer")
