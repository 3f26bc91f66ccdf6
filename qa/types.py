"""What an answer is made of: Answer(text, citations: list[Citation])."""

from __future__ import annotations

from dataclasses import dataclass, field

from vectorstore.types import ArticleInfo


@dataclass(frozen=True)
class Citation:
    """One numbered source of an answer: the exact quoted span of one article.

    ``quote == article.text[start:end]``; ``context`` is the passage around the quote
    (``article.text[context_start:context_start + len(context)]``), shown so a reader sees
    the quote in its paragraph.
    """

    n: int
    article: ArticleInfo
    quote: str
    start: int
    end: int
    score: float
    context: str
    context_start: int


@dataclass(frozen=True)
class Answer:
    """An answer whose every marker [n] refers to ``citations[n-1]``.

    ``abstained`` is true when nothing retrieved was relevant enough; then ``text`` says so
    and ``citations`` is empty.
    """

    question: str
    text: str
    citations: tuple[Citation, ...] = field(default_factory=tuple)
    abstained: bool = False
