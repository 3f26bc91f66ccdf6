"""Cheap features of a (question, passage) pair, for the reranker.

Nothing here needs a model: what the question asks for (a year, a number, a name), whether
the passage holds such a thing that the question does not already contain, how much of
the question's wording (single words and pairs) the passage repeats, and how well the
passage's whole article matches it.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from vectorstore.text import content_terms, words

_YEAR = re.compile(r"\b(1[0-9]{3}|20[0-9]{2})s?\b")
_MONTH = re.compile(
    r"\b(January|February|March|April|May|June|July|August|September|October|November|December"
    r"|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\b"
)
_NUMBER = re.compile(
    r"\b\d[\d,.]*\b|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty"
    r"|thirty|forty|fifty|hundred|thousand|million|billion|dozen)\b",
    re.IGNORECASE,
)
_NAME = re.compile(r"\b[A-Z][a-z\u00C0-\u024F'’-]+(?:\s+[A-Z][a-z\u00C0-\u024F'’-]+)*")

_DATE_Q = re.compile(r"\b(when|what year|which year|what decade|what century|what date)\b")
_NUMBER_Q = re.compile(
    r"\bhow (many|much|long|old|far|large|big|high|tall|often|fast|deep|wide)\b"
    r"|\bwhat (percentage|percent|number|amount|proportion)\b"
)
_PERSON_Q = re.compile(r"^(who|whom|whose)\b|\b(who|whom|whose)\b")
_PLACE_Q = re.compile(r"\bwhere\b|\bwhat (country|city|state|region|town|continent|nation)\b")

ANSWER_TYPES = ("date", "number", "person", "place")


@dataclass(frozen=True)
class QuestionInfo:
    """What the features need to know about a question, computed once per question."""

    terms: frozenset[str]
    bigrams: frozenset[tuple[str, str]]
    answer_type: str | None
    lower_words: frozenset[str]


def question_info(question: str) -> QuestionInfo:
    terms = content_terms(question)
    lowered = question.lower()
    answer_type = None
    if _DATE_Q.search(lowered):
        answer_type = "date"
    elif _NUMBER_Q.search(lowered):
        answer_type = "number"
    elif _PERSON_Q.search(lowered):
        answer_type = "person"
    elif _PLACE_Q.search(lowered):
        answer_type = "place"
    return QuestionInfo(
        frozenset(terms),
        frozenset(itertools.pairwise(terms)),
        answer_type,
        frozenset(words(question)),
    )


def has_answer_type(info: QuestionInfo, text: str) -> bool:
    """Does ``text`` contain something of the type the question asks for, not in the question?"""
    if info.answer_type == "date":
        found = [m.group(0) for m in _YEAR.finditer(text)] + [
            m.group(0) for m in _MONTH.finditer(text)
        ]
    elif info.answer_type == "number":
        found = [m.group(0) for m in _NUMBER.finditer(text)]
    elif info.answer_type in ("person", "place"):
        found = [m.group(0) for m in _NAME.finditer(text)]
    else:
        return False
    return any(not set(words(f)) <= info.lower_words for f in found)


FEATURE_NAMES = (
    "dense",
    "lexical",
    "context",
    "article_dense",
    "article_lexical",
    "coverage",
    "bigrams",
    "type_match",
    "type_asked",
    "dense_gap",
    "lexical_gap",
    "article_bm25",
)


def passage_features(
    info: QuestionInfo,
    text: str,
    dense: float,
    lexical: float,
    context: float,
    article_dense: float,
    article_lexical: float,
    best_dense: float,
    best_lexical: float,
    article_bm25: float,
) -> list[float]:
    """The feature vector (in ``FEATURE_NAMES`` order) of one candidate passage.

    ``article_bm25`` is the normalized BM25 score of the passage's whole article (all its
    chunks as one document), which finds an article a query summarizes.
    """
    terms = content_terms(text)
    term_set = set(terms)
    coverage = len(info.terms & term_set) / len(info.terms) if info.terms else 0.0
    bigrams = set(itertools.pairwise(terms))
    bigram_share = len(info.bigrams & bigrams) / len(info.bigrams) if info.bigrams else 0.0
    asked = info.answer_type is not None
    return [
        dense,
        lexical,
        context,
        article_dense,
        article_lexical,
        coverage,
        bigram_share,
        1.0 if asked and has_answer_type(info, text) else 0.0,
        1.0 if asked else 0.0,
        best_dense - dense,
        best_lexical - lexical,
        article_bm25,
    ]
