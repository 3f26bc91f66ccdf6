"""The offline answerer and the LangChain components around it."""

from __future__ import annotations

import re

import pytest
from langchain_core.documents import Document

from qa.answerer import NO_ANSWER, ExtractiveAnswerer
from qa.chain import PassageRetriever, build_chain, from_document, to_document
from qa.service import Library
from qa.types import Answer
from tests.conftest import SEED_ARTICLE, SEEDS
from vectorstore.errors import QAError
from vectorstore.types import ArticleInfo, Chunk, Filters, ScoredPassage

TEXT = (
    "Putin ordered troops back to base. The Kremlin gave no numbers. "
    "NATO said it saw no sign of a pullout. Putin ordered troops back to base."
)
INFO = ArticleInfo("a1", "Troops", "Wire", "https://example.org/a1", "2014-05-19")


def passage(start: int, end: int, score: float, info: ArticleInfo = INFO) -> ScoredPassage:
    return ScoredPassage(
        Chunk(f"{info.id}:{start}", info.id, TEXT[start:end], start, end), info, score
    )


def check_consistent(answer: Answer) -> None:
    """Every marker refers to a listed citation and every citation is used, in order."""
    used = [int(n) for n in re.findall(r"\[(\d+)\]", answer.text)]
    assert used == [c.n for c in answer.citations] == list(range(1, len(answer.citations) + 1))


def test_answer_quotes_the_best_sentence_exactly() -> None:
    whole = passage(0, len(TEXT), 0.6)
    answer = ExtractiveAnswerer(min_score=0.3).answer("What did NATO say about a pullout?", [whole])
    assert not answer.abstained
    first = answer.citations[0]
    assert first.quote == "NATO said it saw no sign of a pullout."
    assert TEXT[first.start : first.end] == first.quote
    assert first.context == TEXT and first.context_start == 0
    assert answer.text.startswith(f"{first.quote} [1]")
    check_consistent(answer)


def test_repeated_sentences_are_cited_once() -> None:
    other = ArticleInfo("a2", "Syndicated copy", None, None, None)
    answer = ExtractiveAnswerer(min_score=0.3, max_citations=5, keep_ratio=0.0).answer(
        "Who ordered troops back to base?",
        [passage(0, len(TEXT), 0.7), passage(0, len(TEXT), 0.7, other)],
    )
    quotes = [c.quote for c in answer.citations]
    assert quotes.count("Putin ordered troops back to base.") == 1
    check_consistent(answer)


def test_weak_evidence_abstains() -> None:
    answerer = ExtractiveAnswerer(min_score=0.5)
    assert answerer.answer("anything", []).abstained
    answer = answerer.answer("What did NATO say?", [passage(0, len(TEXT), 0.2)])
    assert answer.abstained and answer.text == NO_ANSWER and answer.citations == ()


def test_documents_round_trip() -> None:
    p = passage(35, 63, 0.42)
    doc = to_document(p)
    assert isinstance(doc, Document) and doc.page_content == TEXT[35:63]
    assert from_document(doc) == p


def test_retriever_and_chain_are_langchain_runnables() -> None:
    calls: list[tuple[str, int, Filters | None]] = []

    def search(query: str, k: int, filters: Filters | None) -> list[ScoredPassage]:
        calls.append((query, k, filters))
        return [passage(0, len(TEXT), 0.8)]

    retriever = PassageRetriever(search=search, k=4)
    docs = retriever.invoke("pullout")
    assert [d.metadata["article_id"] for d in docs] == ["a1"]
    chain = build_chain(retriever, ExtractiveAnswerer(min_score=0.3))
    only_wire = Filters(sources=("Wire",))
    answer = chain.invoke({"question": "What did NATO say?", "filters": only_wire})
    assert isinstance(answer, Answer) and answer.citations[0].quote.startswith("NATO")
    assert calls[-1] == ("What did NATO say?", 4, only_wire)
    check_consistent(answer)


@pytest.mark.parametrize("question", ["", "   ", "\x00\x01"])
def test_empty_questions_get_a_clear_error(fake_library: Library, question: str) -> None:
    with pytest.raises(QAError, match="type a question"):
        fake_library.ask(question)


def test_overlong_questions_get_a_clear_error(fake_library: Library) -> None:
    with pytest.raises(QAError, match="too long"):
        fake_library.ask("why " * 10_000)


@pytest.mark.slow
def test_end_to_end_with_the_real_model(real_library: Library) -> None:
    report = real_library.ingest([SEEDS], progress=False)
    assert report.new == ["000_624088a241e45b64"] and report.ok
    answer = real_library.ask("Who did Putin order to pull back the forces?")
    check_consistent(answer)
    first = answer.citations[0]
    article_text = SEED_ARTICLE.read_text(encoding="utf-8").strip()
    assert "Sergei Shoigu" in first.quote
    assert article_text[first.start : first.end] == first.quote
    assert first.quote.startswith("Mr Putin specifically ordered Defence Minister Sergei Shoigu")
    assert first.article.id == "000_624088a241e45b64"

    unrelated = real_library.ask("What is the boiling point of tungsten?")
    assert unrelated.abstained and unrelated.citations == ()
