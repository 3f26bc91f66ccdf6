"""The retrieval benchmark's account of its misses (benchmarks/bench_retrieval.py)."""

from __future__ import annotations

from benchmarks.bench_retrieval import Misses, explain_misses
from qa.evaluation import EvalQuestion
from vectorstore.types import Article

ARTICLES = [
    Article("cnn", "Lennon", "Cynthia Lennon, John Lennon's first wife, died at 75."),
    Article("dm", "Tributes", "Yoko Ono led tributes to Cynthia, John Lennon's first wife."),
    Article("other", "Quake", "A strong earthquake struck Nepal on Saturday."),
    Article("warn1", "Crash", "Footage of the crash. WARNING: GRAPHIC CONTENT."),
    Article("warn2", "Attack", "Video of the attack. WARNING: GRAPHIC CONTENT."),
]


def question(text: str, article_id: str) -> EvalQuestion:
    return EvalQuestion(text, article_id)


def test_a_hit_is_not_a_miss() -> None:
    qs = [question("Cynthia Lennon was John Lennon's first wife.", "cnn")]
    assert explain_misses(ARTICLES, qs, ["cnn"]) == Misses(0, 0, 0)


def test_a_sibling_report_covering_the_query_as_well_is_counted() -> None:
    # the DM tribute holds "Cynthia", "John", "Lennon", "first", "wife", as the gold CNN report
    qs = [question("Cynthia Lennon was John Lennon's first wife.", "cnn")]
    assert explain_misses(ARTICLES, qs, ["dm"]) == Misses(1, 0, 1)


def test_a_sibling_report_missing_a_word_of_the_query_is_a_plain_miss() -> None:
    qs = [question("John Lennon's first wife has died.", "cnn")]  # "died": not in the DM one
    assert explain_misses(ARTICLES, qs, ["dm"]) == Misses(1, 0, 0)


def test_an_unrelated_first_article_is_a_plain_miss() -> None:
    qs = [question("Cynthia Lennon was John Lennon's first wife.", "cnn")]
    assert explain_misses(ARTICLES, qs, ["other"]) == Misses(1, 0, 0)


def test_no_citation_is_a_plain_miss() -> None:
    qs = [question("Cynthia Lennon was John Lennon's first wife.", "cnn")]
    assert explain_misses(ARTICLES, qs, [None]) == Misses(1, 0, 0)


def test_a_query_shared_by_two_gold_articles_is_counted_as_shared() -> None:
    qs = [
        question("WARNING: GRAPHIC CONTENT.", "warn1"),
        question("WARNING: GRAPHIC CONTENT.", "warn2"),
    ]
    # the first is answered by the other's article, the second by its own
    assert explain_misses(ARTICLES, qs, ["warn2", "warn2"]) == Misses(1, 1, 0)
