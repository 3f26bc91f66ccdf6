"""Cheap features of a (question, passage) pair, for the reranker.

Nothing here needs a model: what the question asks for (a year, a number, a name), whether
the passage holds such a thing that the question does not already contain, how much of
the question's wording (single words and pairs) the passage repeats, how well the
passage's whole article matches it, how much of the query its article's first passage holds,
and how near the passage is to its article's start.

The last two are the news writer's inverted pyramid: a report states what happened in its
first sentences, so a statement that summarizes a story (a highlight, a headline, a claim to
check) matches the lead of the report it summarizes, and the middle of related ones. Such a
statement is ranked by a reranker of its own (``reranker.py``): a question asks for a passage,
a statement for the article it sums up.
"""

from __future__ import annotations

import functools
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

# A query that asks (vs. states): has a "?" (a follow-up's query carries words after it) or
# opens with an interrogative or an auxiliary.
_ASKS = re.compile(
    r"\?|^\W*(who|whom|whose|what|when|where|which|why|how|is|are|was|were|do|does|did|"
    r"can|could|should|would|will|has|have|had|name|list|tell|explain|describe)\b",
    re.IGNORECASE,
)
# ... and a statement is a sentence: it ends as one ("Telnet was sold to", keywords: asking),
# with no blank to fill in ("_____ protects the biosphere from UV.").
_SENTENCE_END = re.compile(r"[.!][\"'”’)\]]*\s*$")
_BLANK = re.compile(r"_{2,}")
LEAD_CHARS = 1000  # the lead feature halves every LEAD_CHARS characters into the article


@dataclass(frozen=True)
class ArticleEvidence:
    """How a passage's whole article matches a query, from the lexical index: the shares of the
    query's term weight (IDF) found anywhere in the article (``coverage``) and in its first
    passage (``lead_coverage``), and the BM25 score of that first passage (``lead_lexical``)."""

    coverage: float = 0.0
    lead_coverage: float = 0.0
    lead_lexical: float = 0.0


@dataclass(frozen=True)
class QuestionInfo:
    """What the features need to know about a question, computed once per question."""

    terms: frozenset[str]
    bigrams: frozenset[tuple[str, str]]
    answer_type: str | None
    lower_words: frozenset[str]
    statement: bool = False  # the query states something rather than asks


@functools.lru_cache(maxsize=1024)
def question_info(question: str) -> QuestionInfo:
    """What the features need of ``question`` (cached: retrieval and the rerankers ask)."""
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
        is_statement(question),
    )


def is_statement(query: str) -> bool:
    """Does ``query`` state something (a headline, a highlight, a claim to check) rather than
    ask (a question, a cloze, keywords)?"""
    return bool(
        _SENTENCE_END.search(query) and not _ASKS.search(query) and not _BLANK.search(query)
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
    "lead",
    "article_coverage",
    "article_coverage_gap",
    "lead_coverage",
    "lead_coverage_gap",
    "lead_lexical",
    "lead_lexical_gap",
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
    start: int = 0,
    evidence: ArticleEvidence = ArticleEvidence(),
    best: ArticleEvidence = ArticleEvidence(),
) -> list[float]:
    """The feature vector (in ``FEATURE_NAMES`` order) of one candidate passage.

    ``article_bm25`` is the normalized BM25 score of the passage's whole article (all its
    chunks as one document), which finds an article a query summarizes. ``start`` is the
    passage's first character in its article: ``lead`` is 1 at the article's start and
    halves every ``LEAD_CHARS`` characters. ``evidence`` is the article's ``ArticleEvidence``,
    ``best`` the highest of each of its figures among the query's candidates (the ``_gap``
    features: how far below the best article this one is).
    """
    terms = content_terms(text)
    term_set = set(terms)
    coverage = len(info.terms & term_set) / len(info.terms) if info.terms else 0.0
    bigrams = set(itertools.pairwise(terms))
    bigram_share = len(info.bigrams & bigrams) / len(info.bigrams) if info.bigrams else 0.0
    asked = info.answer_type is not None
    lead = 0.5 ** (start / LEAD_CHARS)
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
        lead,
        evidence.coverage,
        best.coverage - evidence.coverage,
        evidence.lead_coverage,
        best.lead_coverage - evidence.lead_coverage,
        evidence.lead_lexical,
        best.lead_lexical - evidence.lead_lexical,
    ]
