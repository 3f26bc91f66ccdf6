"""The offline answerer: the best evidence passages, quoted exactly, each with its marker.

No language model: the answer *is* the evidence. Passages are sentence windows (a sentence or
a few, never more than ``chunk_chars``), ranked by the retriever (and, where the best ones are
a close call for a factoid question, by the reader). Every sentence of the answer
is a verbatim quote of one retrieved passage, followed by the marker of the citation that quotes
it, so every marker points at a listed citation and every listed citation is used.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from qa.types import Answer, AnswerSentence, short_answer_lead
from qa.verify import citation
from vectorstore.text import words
from vectorstore.types import ScoredPassage

if TYPE_CHECKING:
    from qa.reader import Span

NO_ANSWER = "The articles don't say."

# For a factoid question, the reader compares the best READ_TOP passages when the first two are
# a close call (their retrieval log-odds less than CLOSE_CALL apart): each passage's rank is its
# retrieval log-odds plus READER_WEIGHT x the reader's score for it. Tuned on SQuAD v1.1 *train*
# questions by benchmarks/tune_reading.py.
READ_TOP = 3
READER_WEIGHT = 0.2
CLOSE_CALL = 1.5

# Questions asking for a name, a date, a place, a number, a thing: a short answer fits them.
_WH = (
    r"(who|whom|whose|when|where|which|what|how (many|much|long|old|far|big|large|tall|often|"
    r"fast|high|deep|wide|early|late|heavy))\b"
)
_FACTOID_START = re.compile(
    r"^\W*((in|at|on|to|for|from|by|with|during|of|since|until|after|before|under)\s+)?"
    + _WH
    + r"|^\W*name (the|a|an|one|two|three)\b",
    re.IGNORECASE,
)
_WH_ANYWHERE = re.compile(r"\b" + _WH, re.IGNORECASE)
# ... unless they ask for an explanation, an account or a yes/no.
_OPEN = re.compile(
    r"^\W*(why|how (do|does|did|is|are|was|were|can|could|should|would|to|has|have)\b|"
    r"(is|are|was|were|do|does|did|can|could|has|have|had|will|would|should)\b|explain|"
    r"describe|summari[sz]e|tell me|give me an overview)|\bwhat (happened|did .* say|does .* say|"
    r"do .* say|is .* about|was .* about)\b",
    re.IGNORECASE,
)


def asks_for_short_answer(question: str) -> bool:
    """True for a factoid question (who, when, where, how many, which..., or a question ending
    in "?" with such a word), false for why, how (a process), yes/no questions, requests for an
    account, and statements or keywords."""
    question = question.strip()
    factoid = bool(_FACTOID_START.search(question)) or (
        question.endswith("?") and bool(_WH_ANYWHERE.search(question))
    )
    return factoid and not _OPEN.search(question)


class SpanReader(Protocol):
    """Finds the words of each passage that answer a question (``qa.reader.Reader``)."""

    def read(self, question: str, passages: Sequence[str]) -> list[Span | None]:
        """The best answer span of each passage, or None."""
        ...


class Answerer(Protocol):
    """Turns a question and its retrieved passages into a cited answer."""

    def answer(self, question: str, passages: Sequence[ScoredPassage]) -> Answer:
        """Answer ``question`` from ``passages`` alone; abstain when they do not support one."""
        ...


def near_duplicate(a: str, b: str, threshold: float = 0.9) -> bool:
    """True when two passages say the same thing (a syndicated copy, a re-published story)."""
    wa, wb = set(words(a)), set(words(b))
    if not wa or not wb:
        return a.strip() == b.strip()
    return len(wa & wb) / len(wa | wb) >= threshold


class ExtractiveAnswerer:
    """Answers with the best evidence passages; needs no LLM and no network.

    ``min_score``: below this retrieval score for the best passage, abstain.
    ``keep_ratio``: cite further passages only while their score is at least this share of
    the best one's (0 cites up to ``max_citations`` whatever their score; ``qa eval`` uses it).
    ``reader``: with one, a factoid question also gets a short answer, the words of the first
    cited passage the reader finds most likely to answer it, shown first with that passage's
    marker; none when the reader's probability is below ``min_short_probability``. When the
    best passages are a close call, the reader's scores also decide their order
    (``read_ranked``); whether to abstain stays the retrieval score's decision, as calibrated.
    """

    def __init__(
        self,
        min_score: float = 0.35,
        max_citations: int = 3,
        keep_ratio: float = 0.5,
        reader: SpanReader | None = None,
        min_short_probability: float = 0.0,
    ) -> None:
        self.min_score = min_score
        self.max_citations = max_citations
        self.keep_ratio = keep_ratio
        self.reader = reader
        self.min_short_probability = min_short_probability

    def answer(self, question: str, passages: Sequence[ScoredPassage]) -> Answer:
        ranked = sorted(passages, key=lambda p: -p.score)
        if not ranked or ranked[0].score < self.min_score:
            return Answer(question, NO_ANSWER, abstained=True)
        best = ranked[0].score
        spans: dict[str, Span] = {}
        if self.reader is not None and asks_for_short_answer(question):
            ranked, spans = read_ranked(self.reader, question, ranked)
        chosen: list[ScoredPassage] = []
        for passage in ranked:
            if len(chosen) == self.max_citations:
                break
            if chosen and passage.score < self.keep_ratio * best:
                continue  # (the first cited passage may be one the reader promoted)
            if any(near_duplicate(passage.chunk.text, c.chunk.text) for c in chosen):
                continue
            chosen.append(passage)
        citations = tuple(citation(n, p) for n, p in enumerate(chosen, start=1))
        text = " ".join(f"{c.quote} [{c.n}]" for c in citations)
        sentences = tuple(AnswerSentence(c.quote, (c.n,), True) for c in citations)
        short = self.short_answer(spans.get(chosen[0].chunk.id))
        if short is None:
            return Answer(question, text, citations, sentences=sentences)
        return Answer(
            question,
            short_answer_lead(short) + text,
            citations,
            sentences=(AnswerSentence(short, (1,), True), *sentences),
            short_answer=short,
        )

    def short_answer(self, span: Span | None) -> str | None:
        """The words of ``span`` as the short answer, unless the reader is unsure of them."""
        if span is None or span.probability < self.min_short_probability or not span.text.strip():
            return None
        return span.text.strip()


def read_ranked(
    reader: SpanReader, question: str, ranked: list[ScoredPassage]
) -> tuple[list[ScoredPassage], dict[str, Span]]:
    """``ranked`` with its first passages reordered by the reader where they are a close
    call, and the reader's span of each passage it read (by chunk id).

    The first passage is always read (its span is the short answer); the first
    ``READ_TOP`` when the first two are within ``CLOSE_CALL`` in retrieval log-odds. A
    passage read ranks by its log-odds plus ``READER_WEIGHT`` x the reader's score.
    """
    gap = log_odds(ranked[0].score) - log_odds(ranked[1].score) if len(ranked) > 1 else math.inf
    read = ranked[:READ_TOP] if gap < CLOSE_CALL else ranked[:1]
    found = reader.read(question, [p.chunk.text for p in read])
    spans = {p.chunk.id: s for p, s in zip(read, found, strict=True) if s is not None}

    def rank(p: ScoredPassage) -> float:
        span = spans.get(p.chunk.id)
        return log_odds(p.score) + (READER_WEIGHT * span.score if span else -math.inf)

    return sorted(read, key=rank, reverse=True) + ranked[len(read) :], spans


def log_odds(p: float) -> float:
    """``log(p / (1 - p))``, bounded for a score of exactly 0 or 1."""
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))
