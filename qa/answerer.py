"""The offline answerer: the best evidence sentences, quoted exactly, each with its marker.

No language model: the answer *is* the evidence. Every sentence of the answer is a verbatim
quote of one retrieved passage, followed by the marker of the citation that quotes it, so every
marker points at a listed citation and every listed citation is used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from qa.text import content_terms
from qa.types import Answer, Citation
from vectorstore.sentences import sentence_spans
from vectorstore.types import ScoredPassage

NO_ANSWER = "The articles don't say."


class Answerer(Protocol):
    """Turns a question and its retrieved passages into a cited answer."""

    def answer(self, question: str, passages: Sequence[ScoredPassage]) -> Answer:
        """Answer ``question`` from ``passages`` alone; abstain when they do not support one."""
        ...


@dataclass(frozen=True)
class Candidate:
    """One sentence of a retrieved passage, with its absolute offsets and its score."""

    passage: ScoredPassage
    start: int  # offsets into the article text
    end: int
    score: float
    coverage: float

    @property
    def text(self) -> str:
        chunk = self.passage.chunk
        return chunk.text[self.start - chunk.start : self.end - chunk.start]


def candidates(question: str, passages: Sequence[ScoredPassage]) -> list[Candidate]:
    """Every sentence of ``passages`` scored against ``question``, best first.

    A sentence's score mixes its passage's semantic score with how much of the question's
    content it contains, each question term weighted by how rare it is among the candidates.
    """
    spans = [
        (p, p.chunk.start + s, p.chunk.start + e)
        for p in passages
        for s, e in sentence_spans(p.chunk.text)
    ]
    if not spans:
        return []
    terms = set(content_terms(question))
    sentence_terms = [
        set(content_terms(p.chunk.text[s - p.chunk.start : e - p.chunk.start])) for p, s, e in spans
    ]
    weights = {
        t: math.log(1.0 + len(spans) / (1 + sum(t in st for st in sentence_terms))) for t in terms
    }
    total = sum(weights.values())
    scored = []
    for (p, s, e), st in zip(spans, sentence_terms, strict=True):
        coverage = sum(w for t, w in weights.items() if t in st) / total if total else 0.0
        scored.append(Candidate(p, s, e, 0.5 * p.score + 0.5 * coverage, coverage))
    scored.sort(key=lambda c: (-c.score, c.passage.article.id, c.start))
    return scored


class ExtractiveAnswerer:
    """Answers with the best evidence sentences; needs no LLM and no network."""

    def __init__(self, min_score: float = 0.35, max_citations: int = 3, keep_ratio: float = 0.8):
        self.min_score = min_score
        self.max_citations = max_citations
        self.keep_ratio = keep_ratio

    def answer(self, question: str, passages: Sequence[ScoredPassage]) -> Answer:
        if not passages or max(p.score for p in passages) < self.min_score:
            return Answer(question, NO_ANSWER, abstained=True)
        chosen = self._choose(candidates(question, passages))
        if not chosen:
            return Answer(question, NO_ANSWER, abstained=True)
        citations = tuple(_citation(n, c) for n, c in enumerate(chosen, start=1))
        text = " ".join(f"{c.quote} [{c.n}]" for c in citations)
        return Answer(question, text, citations)

    def _choose(self, ranked: list[Candidate]) -> list[Candidate]:
        if not ranked:
            return []
        best = ranked[0].score
        chosen: list[Candidate] = []
        seen: set[str] = set()
        for cand in ranked:
            if len(chosen) == self.max_citations or cand.score < self.keep_ratio * best:
                break
            key = " ".join(cand.text.lower().split())
            if key in seen:  # the same sentence from a syndicated copy
                continue
            seen.add(key)
            chosen.append(cand)
        return chosen


def _citation(n: int, cand: Candidate) -> Citation:
    chunk = cand.passage.chunk
    return Citation(
        n=n,
        article=cand.passage.article,
        quote=cand.text,
        start=cand.start,
        end=cand.end,
        score=round(cand.score, 4),
        context=chunk.text,
        context_start=chunk.start,
    )
