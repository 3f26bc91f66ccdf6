"""The reranker's cheap features: what a query asks for, where a passage sits, what its article
holds; and which reranker ranks a query."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa.service import Library
from qa.settings import Settings
from tests.conftest import SEED_ARTICLE
from tests.fakes import BagOfWordsEmbedder
from vectorstore.features import (
    FEATURE_NAMES,
    LEAD_CHARS,
    ArticleEvidence,
    passage_features,
    question_info,
)
from vectorstore.hybrid import STATEMENT_REPEAT_DECAY, best_passage_first, spread_over_articles
from vectorstore.reranker import BUNDLED, BUNDLED_STATEMENTS, Reranker
from vectorstore.types import ArticleInfo, Chunk, ScoredPassage

TEXT = "Jurors found Dzhokhar Tsarnaev guilty on all 30 counts he faced."
STATEMENT = "Dzhokhar Tsarnaev is found guilty on all 30 charges he faced."


def features(
    query: str,
    start: int = 0,
    evidence: ArticleEvidence = ArticleEvidence(),  # noqa: B008 (frozen)
    best: ArticleEvidence = ArticleEvidence(),  # noqa: B008 (frozen)
) -> dict[str, float]:
    row = passage_features(
        question_info(query), TEXT, 0.6, 0.5, 0.4, 0.6, 0.5, 0.6, 0.5, 0.7, start, evidence, best
    )
    assert len(row) == len(FEATURE_NAMES)
    return dict(zip(FEATURE_NAMES, row, strict=True))


@pytest.mark.parametrize(
    ("query", "statement"),
    [
        ("Who is the Secretary General of NATO?", False),
        ("how many counts did Tsarnaev face", False),
        ("Is Ukraine voting on Sunday", False),
        ("Putin orders troops back?", False),
        ("And the US? NATO evidence", False),  # a follow-up's query: context words appended
        (STATEMENT, True),
        ("Putin orders troops back to base!", True),
        ('Putin said the troops would go "home."', True),
        ("putin troops donetsk", False),  # keywords ask for passages
        ("Telnet was sold to", False),  # SQuAD's cloze questions
        ("_____ helps the biosphere from UV.", False),
    ],
)
def test_a_query_states_unless_it_asks(query: str, statement: bool) -> None:
    assert question_info(query).statement is statement


def test_lead_is_1_at_the_start_and_halves_every_lead_chars() -> None:
    assert features(STATEMENT, 0)["lead"] == 1.0
    assert features(STATEMENT, LEAD_CHARS)["lead"] == pytest.approx(0.5)
    assert features(STATEMENT, 3 * LEAD_CHARS)["lead"] == pytest.approx(0.125)


def test_article_evidence_and_its_gaps_to_the_best_candidate() -> None:
    row = features(STATEMENT, 0, ArticleEvidence(0.8, 0.5, 0.3), ArticleEvidence(0.9, 0.5, 0.7))
    assert row["article_coverage"] == 0.8
    assert row["article_coverage_gap"] == pytest.approx(0.1)
    assert row["lead_coverage"] == 0.5 and row["lead_coverage_gap"] == 0.0
    assert row["lead_lexical"] == 0.3 and row["lead_lexical_gap"] == pytest.approx(0.4)
    evidence = [n for n in FEATURE_NAMES if n.startswith(("article_coverage", "lead_"))]
    assert len(evidence) == 6 and all(features(STATEMENT)[n] == 0.0 for n in evidence)


def test_there_is_a_trained_reranker_for_each_kind_of_query() -> None:
    assert BUNDLED.is_file() and BUNDLED_STATEMENTS.is_file()
    questions, statements = Reranker.bundled(), Reranker.bundled(statements=True)
    assert questions.weights != statements.weights


def test_the_bundled_statement_reranker_prefers_the_article_that_holds_the_statement() -> None:
    """For a statement, the article that holds its words (in its lead) ranks above an article
    matching one passage as well but holding less of the statement."""
    reranker = Reranker.bundled(statements=True)
    best = ArticleEvidence(1.0, 0.9, 0.8)
    summed_up = features(STATEMENT, 0, best, best)
    sibling = features(STATEMENT, 0, ArticleEvidence(0.6, 0.3, 0.4), best)
    assert reranker.score(list(summed_up.values())) > reranker.score(list(sibling.values()))


def test_a_statement_is_ranked_by_the_statement_reranker(tmp_path: Path) -> None:
    library = Library(Settings(data_dir=tmp_path), embedder=BagOfWordsEmbedder())
    searcher = library.searcher
    assert searcher.reranker_for("Who ordered the troops back?") is searcher.reranker
    assert searcher.reranker_for(STATEMENT) is searcher.statement_reranker
    assert searcher.statement_reranker == Reranker.bundled(statements=True)
    assert searcher.reranker == Reranker.bundled()


def passage(article: str, start: int, score: float) -> ScoredPassage:
    chunk = Chunk(f"{article}:{start}", article, "text", start, start + 4)
    return ScoredPassage(chunk, ArticleInfo(article, article, None, None, None), score)


def test_a_statements_passages_are_spread_over_articles() -> None:
    """An article's second-best passage weighs decay x its score, its third decay^2 x: the
    second article's best passage comes before the first article's second."""
    ranked = spread_over_articles(
        [
            passage("a", 0, 0.9),
            passage("a", 100, 0.85),
            passage("a", 200, 0.8),
            passage("b", 0, 0.6),
        ],
        0.5,
    )
    by_id = {p.chunk.id: p.score for p in ranked}
    assert by_id == pytest.approx({"a:0": 0.9, "a:100": 0.425, "a:200": 0.2, "b:0": 0.6})
    assert spread_over_articles([], 0.5) == []
    assert [p.score for p in spread_over_articles([passage("a", 0, 0.9)], 0.5)] == [0.9]


def test_only_a_statements_search_is_spread_over_articles(tmp_path: Path) -> None:
    library = Library(Settings(data_dir=tmp_path), embedder=BagOfWordsEmbedder())
    library.ingest([SEED_ARTICLE], progress=False)
    searcher = library.searcher

    def raw(query: str) -> list[ScoredPassage]:
        reranker = searcher.reranker_for(query)
        return [
            ScoredPassage(c.passage.chunk, c.passage.article, reranker.score(c.features))
            for c in searcher.candidates_for(query)
        ]

    def ranked(passages: list[ScoredPassage]) -> list[tuple[str, float]]:
        return sorted(((p.chunk.id, p.score) for p in passages), key=lambda r: (-r[1], r[0]))

    statement = "Putin ordered troops near Ukraine back to their home bases."
    within = {
        p.chunk.id: searcher.reranker.score(c.features)
        for p, c in zip(raw(statement), searcher.candidates_for(statement), strict=True)
    }
    spread = spread_over_articles(
        best_passage_first(raw(statement), within), STATEMENT_REPEAT_DECAY
    )
    assert [(p.chunk.id, p.score) for p in library.search(statement, 5)] == ranked(spread)[:5]
    question = "Who ordered the troops back to their bases?"
    assert [(p.chunk.id, p.score) for p in library.search(question, 5)] == ranked(raw(question))[:5]
    # one article: the statement's second passage is decayed, the question's is not
    assert library.search(statement, 2)[1].score < 0.5 * library.search(statement, 1)[0].score


def test_an_articles_scores_go_to_its_passages_in_the_question_rerankers_order() -> None:
    ranked = best_passage_first(
        [
            passage("a", 0, 0.9),
            passage("a", 100, 0.7),
            passage("b", 0, 0.5),
            passage("a", 200, 0.8),
        ],
        {"a:0": 0.1, "a:100": 0.9, "a:200": 0.5, "b:0": 0.3},
    )
    by_id = {p.chunk.id: p.score for p in ranked}
    assert by_id == {"a:100": 0.9, "a:200": 0.8, "a:0": 0.7, "b:0": 0.5}


@pytest.mark.slow
def test_a_statement_is_answered_with_the_passage_that_says_it(tmp_path: Path) -> None:
    """The real model on the seed article: restating its lead finds the lead, not another
    passage of the same article."""
    library = Library(Settings(data_dir=tmp_path))
    library.ingest([SEED_ARTICLE], progress=False)
    answer = library.ask("Putin ordered troops near Ukraine to return to their bases.")
    assert answer.citations and answer.citations[0].start == 0
    assert "ordered troops deployed near Ukraine to return to their home bases" in (
        answer.citations[0].quote
    )
