"""The offline answerer: the best evidence passages, quoted exactly, each with its marker.

No language model: the answer *is* the evidence. Passages are sentence windows (a sentence or
a few, never more than ``chunk_chars``), ranked by the retriever. Every sentence of the answer
is a verbatim quote of one retrieved passage, followed by the marker of the citation that quotes
it, so every marker points at a listed citation and every listed citation is used.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from qa.types import Answer, AnswerSentence
from qa.verify import citation
from vectorstore.text import words
from vectorstore.types import ScoredPassage

NO_ANSWER = "The articles don't say."


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
    """

    def __init__(
        self, min_score: float = 0.35, max_citations: int = 3, keep_ratio: float = 0.5
    ) -> None:
        self.min_score = min_score
        self.max_citations = max_citations
        self.keep_ratio = keep_ratio

    def answer(self, question: str, passages: Sequence[ScoredPassage]) -> Answer:
        ranked = sorted(passages, key=lambda p: -p.score)
        if not ranked or ranked[0].score < self.min_score:
            return Answer(question, NO_ANSWER, abstained=True)
        chosen: list[ScoredPassage] = []
        for passage in ranked:
            if len(chosen) == self.max_citations:
                break
            if passage.score < self.keep_ratio * ranked[0].score:
                break
            if any(near_duplicate(passage.chunk.text, c.chunk.text) for c in chosen):
                continue
            chosen.append(passage)
        citations = tuple(citation(n, p) for n, p in enumerate(chosen, start=1))
        text = " ".join(f"{c.quote} [{c.n}]" for c in citations)
        sentences = tuple(AnswerSentence(c.quote, (c.n,), True) for c in citations)
        return Answer(question, text, citations, sentences=sentences)
