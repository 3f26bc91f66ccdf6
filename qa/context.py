"""The paragraph around a quote, so a reader sees the quote where it stands in the article."""

from __future__ import annotations

from dataclasses import replace

from qa.types import Answer, Citation


def paragraph_around(text: str, start: int, end: int, limit: int = 900) -> tuple[int, int]:
    """The span of the paragraph(s) holding ``text[start:end]``, at most about ``limit`` chars.

    A paragraph ends at a blank line; a very long one is cut to a window centred on the quote.
    """
    left = text.rfind("\n\n", 0, start)
    left = 0 if left < 0 else left + 2
    right = text.find("\n\n", end)
    right = len(text) if right < 0 else right
    spare = max(0, limit - (end - start))
    if right - left > limit:
        left = max(left, start - spare // 2)
        right = min(right, end + spare - (start - left))
    return left, right


def with_context(citation: Citation, article_text: str | None) -> Citation:
    """The citation with its context widened to the surrounding paragraph."""
    if article_text is None or article_text[citation.start : citation.end] != citation.quote:
        return citation  # the article changed since retrieval: keep the passage as context
    left, right = paragraph_around(article_text, citation.start, citation.end)
    return replace(citation, context=article_text[left:right], context_start=left)


def widen_contexts(answer: Answer, article_text: dict[str, str | None]) -> Answer:
    """``answer`` with every citation's context widened, given the texts of its articles."""
    citations = tuple(with_context(c, article_text.get(c.article.id)) for c in answer.citations)
    return replace(answer, citations=citations)
