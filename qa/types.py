"""What an answer is made of: Answer(text, citations: list[Citation], sentences)."""

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
class AnswerSentence:
    """One sentence of an answer (without its markers) and the citations ``n`` it gives.

    ``supported`` is false when the cited passages do not back the sentence up (checked by
    ``qa.verify``) or when it cites nothing; such a sentence is shown, flagged, never hidden.
    """

    text: str
    citations: tuple[int, ...]
    supported: bool


def short_answer_lead(short_answer: str) -> str:
    """How the text of an answer with a short answer begins: the words, the marker of the
    passage they come from (always the first), a blank line; the quotes follow."""
    return f"{short_answer} [1]\n\n"


@dataclass(frozen=True)
class Answer:
    """An answer whose every marker [n] refers to ``citations[n-1]``.

    ``abstained`` is true when nothing retrieved was relevant enough; then ``text`` says so
    and ``citations`` is empty. ``sentences`` is ``text`` sentence by sentence, each with its
    citations and whether the passages support it. ``answerer`` says who wrote it:
    "extractive" (quotes, no LLM), "llm" (a language model, verified), or "llm-fallback"
    (the quotes, because the model failed or could not be verified; ``note`` says why).
    """

    question: str
    text: str
    citations: tuple[Citation, ...] = field(default_factory=tuple)
    abstained: bool = False
    sentences: tuple[AnswerSentence, ...] = ()
    answerer: str = "extractive"  # "extractive" | "llm" | "llm-fallback"
    short_answer: str | None = None
    note: str | None = None
