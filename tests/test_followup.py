"""Follow-up questions: resolved against the conversation for retrieval, answered as asked."""

from __future__ import annotations

from typing import Any

import pytest

from qa.followup import (
    context_questions,
    context_words,
    make_resolver,
    needs_context,
    plain_text,
    previous_questions,
    rewrite_query,
)
from qa.service import Library
from tests.conftest import SEED_ARTICLE
from tests.fakes import BagOfWordsEmbedder
from vectorstore.types import ArticleInfo, Chunk, ScoredPassage

WITHDRAWAL = "Did Russia pull its troops back from the Ukrainian border?"
NATO_FOLLOW_UP = "What did NATO say about it?"
NO_EVIDENCE = "not seen any evidence at all that the Russians have started withdrawal of troops"
DIALOGUE = "NATO remains open to a political dialogue with Moscow"


def conversation(*turns: str) -> list[dict[str, Any]]:
    """User and assistant messages alternating, starting with the user."""
    roles = ("user", "assistant")
    return [{"role": roles[i % 2], "content": text} for i, text in enumerate(turns)]


# -- when a question needs the conversation ---------------------------------------------------


@pytest.mark.parametrize(
    "question",
    [
        NATO_FOLLOW_UP,
        "And the US?",
        "What about Crimea?",
        "Why?",
        "Which regions?",
        "When did they leave?",
        "Where did he say that?",
    ],
)
def test_short_or_referring_questions_need_context(question: str) -> None:
    assert needs_context(question)


@pytest.mark.parametrize(
    "question",
    [
        WITHDRAWAL,
        "Who did Putin order to pull back the forces?",
        "What did NATO say about the withdrawal of Russian troops?",
        "Did NATO say that Russia had started withdrawing troops from the border?",
    ],
)
def test_standalone_questions_do_not(question: str) -> None:
    assert not needs_context(question)


# -- reading the history ----------------------------------------------------------------------


def test_history_is_read_as_plain_text_whatever_its_shape() -> None:
    assert plain_text("<p>Who said <b>that</b>? &amp; why</p>") == "Who said that ? & why"
    assert plain_text([{"type": "text", "text": "Hello"}, "there"]) == "Hello there"
    assert plain_text(None) == ""
    history: list[Any] = [
        {"role": "user", "content": WITHDRAWAL},
        {"role": "assistant", "content": "<p>Mr Putin ordered ... <a href='#c1'>[1]</a></p>"},
        {"role": "system", "content": "ignored"},
        "not a message",
        {"role": "user", "content": "  what did NATO   say about it? "},  # the chat's own copy
    ]
    assert previous_questions(history, NATO_FOLLOW_UP) == [WITHDRAWAL]
    assert previous_questions(None, NATO_FOLLOW_UP) == []


def test_the_context_goes_back_through_follow_ups() -> None:
    earlier = ["What sanctions were imposed?", WITHDRAWAL, NATO_FOLLOW_UP]
    assert context_questions(earlier) == [NATO_FOLLOW_UP, WITHDRAWAL]
    assert context_questions([WITHDRAWAL]) == [WITHDRAWAL]
    words = context_words([NATO_FOLLOW_UP, WITHDRAWAL], "And the US?")
    assert words == ["NATO", "Russia", "pull", "troops", "back", "Ukrainian", "border"]
    assert "NATO" not in context_words([WITHDRAWAL, NATO_FOLLOW_UP], "What did NATO say?")


# -- rewriting the query ----------------------------------------------------------------------

INFO = ArticleInfo("a", "Troops")
PASSAGES = [
    f"He said that {DIALOGUE}, and has proposed holding a meeting next week.",
    f"The US and NATO said they saw no sign of a pullout. NATO has {NO_EVIDENCE}.",
    "Mr Putin ordered forces to pull back from the border regions to their home bases.",
]


def search_passages(query: str) -> list[ScoredPassage]:
    """A stand-in for the library's search: every passage, the dialogue one first."""
    return [
        ScoredPassage(Chunk(f"a:{i}", "a", text, 0, len(text)), INFO, 0.9 - i / 10)
        for i, text in enumerate(PASSAGES)
    ]


def test_a_follow_up_carries_the_words_of_the_passage_about_it_closest_to_the_context() -> None:
    history = conversation(WITHDRAWAL, "Mr Putin ordered forces to pull back [1]")
    query = rewrite_query(NATO_FOLLOW_UP, history, search_passages, BagOfWordsEmbedder())
    # "NATO" passages: the dialogue one and the no-evidence one; the latter is closer to the
    # withdrawal question, and of its words only "troops" comes from the question
    assert query == f"{NATO_FOLLOW_UP} troops"


def test_without_a_library_the_names_are_carried_first() -> None:
    history = conversation(WITHDRAWAL, "...")
    assert rewrite_query(NATO_FOLLOW_UP, history) == f"{NATO_FOLLOW_UP} Russia Ukrainian pull"
    assert rewrite_query("Why?", history) == "Why? Russia Ukrainian pull"


def test_questions_that_stand_alone_are_searched_as_asked() -> None:
    history = conversation(WITHDRAWAL, "...")
    question = "Who did Putin order to pull back the forces?"
    assert rewrite_query(question, history, search_passages, BagOfWordsEmbedder()) == question
    assert rewrite_query(NATO_FOLLOW_UP, [], search_passages) == NATO_FOLLOW_UP
    assert rewrite_query(NATO_FOLLOW_UP, conversation(NATO_FOLLOW_UP)) == NATO_FOLLOW_UP


def test_the_offline_resolver_is_used_without_a_model() -> None:
    resolve = make_resolver(object(), BagOfWordsEmbedder())
    history = conversation(WITHDRAWAL, "...")
    assert resolve(NATO_FOLLOW_UP, history, search_passages) == f"{NATO_FOLLOW_UP} troops"


# -- through the library ------------------------------------------------------------------------


def quotes(answer: Any) -> list[str]:
    return [c.quote for c in answer.citations]


def check_follow_up(library: Library) -> Any:
    """Asks the seed conversation; returns the follow-up asked alone, without its history."""
    first = library.ask(WITHDRAWAL)
    history = conversation(WITHDRAWAL, first.text)

    alone = library.ask(NATO_FOLLOW_UP)
    followed = library.ask(NATO_FOLLOW_UP, history=history)

    assert followed.question == NATO_FOLLOW_UP
    assert followed.citations and NO_EVIDENCE in followed.citations[0].quote, quotes(followed)

    *_, streamed = library.ask_stream(NATO_FOLLOW_UP, history=history)
    assert streamed == followed

    history += conversation(NATO_FOLLOW_UP, followed.text)
    us = library.ask("And the US?", history=history)
    assert us.citations and "The US and NATO said they saw no sign" in us.citations[0].quote
    return alone


def test_a_follow_up_is_answered_about_the_conversation(fake_library: Library) -> None:
    fake_library.ingest([SEED_ARTICLE], progress=False)
    check_follow_up(fake_library)


@pytest.mark.slow
def test_a_follow_up_is_answered_about_the_conversation_with_the_real_model(
    real_library: Library,
) -> None:
    """With all-MiniLM-L6-v2: "What did NATO say about it?" alone finds NATO's offer of talks;
    after the question about the withdrawal, NATO's "no evidence of withdrawal"."""
    real_library.ingest([SEED_ARTICLE], progress=False)
    alone = check_follow_up(real_library)
    assert alone.citations and DIALOGUE in alone.citations[0].quote, quotes(alone)
