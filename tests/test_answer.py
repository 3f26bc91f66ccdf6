"""The offline answerer and the LangChain components around it."""

from __future__ import annotations

import re

import pytest
from langchain_core.documents import Document

from qa.answerer import NO_ANSWER, ExtractiveAnswerer
from qa.chain import PassageRetriever, build_chain, from_document, to_document
from qa.context import paragraph_around
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
    """Every marker refers to a listed citation and every citation is used, in order of first
    use (a short answer cites [1] before the quotes cite it again)."""
    used = list(dict.fromkeys(int(n) for n in re.findall(r"\[(\d+)\]", answer.text)))
    assert used == [c.n for c in answer.citations] == list(range(1, len(answer.citations) + 1))


def test_answer_quotes_the_best_passages_exactly_in_rank_order() -> None:
    nato, putin = passage(64, 102, 0.9), passage(0, 34, 0.6)
    answer = ExtractiveAnswerer(min_score=0.3).answer("What did NATO say?", [putin, nato])
    assert not answer.abstained
    assert [c.quote for c in answer.citations] == [TEXT[64:102], TEXT[0:34]]
    for c in answer.citations:
        assert TEXT[c.start : c.end] == c.quote
    assert answer.text == f"{TEXT[64:102]} [1] {TEXT[0:34]} [2]"
    check_consistent(answer)


def test_weaker_passages_are_not_cited() -> None:
    answer = ExtractiveAnswerer(min_score=0.3, keep_ratio=0.5).answer(
        "q", [passage(64, 102, 0.9), passage(0, 34, 0.44)]
    )
    assert [c.quote for c in answer.citations] == [TEXT[64:102]]
    capped = ExtractiveAnswerer(min_score=0.0, max_citations=2, keep_ratio=0.0).answer(
        "q", [passage(0, 34, 0.3), passage(35, 63, 0.2), passage(64, 102, 0.1)]
    )
    assert len(capped.citations) == 2
    check_consistent(capped)


def test_repeated_passages_are_cited_once() -> None:
    other = ArticleInfo("a2", "Syndicated copy", None, None, None)
    answer = ExtractiveAnswerer(min_score=0.3, max_citations=5, keep_ratio=0.0).answer(
        "Who ordered troops back to base?",
        [passage(0, 34, 0.7), passage(103, len(TEXT), 0.69), passage(0, 34, 0.68, other)],
    )
    assert [c.quote for c in answer.citations] == ["Putin ordered troops back to base."]
    check_consistent(answer)


def test_weak_evidence_abstains() -> None:
    answerer = ExtractiveAnswerer(min_score=0.5)
    assert answerer.answer("anything", []).abstained
    answer = answerer.answer("What did NATO say?", [passage(0, len(TEXT), 0.2)])
    assert answer.abstained and answer.text == NO_ANSWER and answer.citations == ()


def test_context_is_widened_to_the_paragraph() -> None:
    article = "First paragraph.\n\nSecond one. It has the quote here. And more.\n\nThird."
    start = article.index("It has")
    end = start + len("It has the quote here.")
    assert paragraph_around(article, start, end) == (18, article.index("\n\nThird"))
    long = "x " * 2000 + "QUOTE" + " y" * 2000
    left, right = paragraph_around(long, 4000, 4005, limit=300)
    assert left <= 4000 and right >= 4005 and right - left <= 300


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
    assert isinstance(answer, Answer) and answer.citations[0].quote == TEXT
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
    assert answer.short_answer == "Sergei Shoigu"
    first = answer.citations[0]
    article_text = SEED_ARTICLE.read_text(encoding="utf-8").strip()
    assert "Sergei Shoigu" in first.quote
    assert article_text[first.start : first.end] == first.quote
    assert first.quote.startswith("Mr Putin specifically ordered Defence Minister Sergei Shoigu")
    assert first.article.id == "000_624088a241e45b64"
    assert len(first.quote) <= real_library.settings.chunk_chars
    # the context is the paragraph around the quote, taken from the article itself
    assert first.context_start <= first.start and first.quote in first.context
    assert article_text[first.context_start :].startswith(first.context)

    unrelated = real_library.ask("What is the boiling point of tungsten?")
    assert unrelated.abstained and unrelated.citations == ()
