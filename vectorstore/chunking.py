"""Sentence-aware, non-overlapping chunks of an article's text.

Consecutive sentences are packed into a chunk until the next one would make it longer than
``max_chars`` (measured on the chunk's span, whitespace between sentences included). A chunk
never starts or ends inside a sentence, except for a sentence longer than ``max_chars``: that one
is cut at whitespace into balanced pieces of at most ``max_chars`` (a single "word" longer than
that is cut hard). A blank line always ends a chunk: a paragraph is a unit of meaning, and a
passage that straddles two answers neither well. Other line breaks are preferred break points:
when a chunk must be closed and it holds one past half its budget, it is closed there and the
rest moves to the next chunk.

Every chunk satisfies ``article.text[c.start:c.end] == c.text``, has no surrounding whitespace,
and every non-whitespace character of the article belongs to exactly one chunk, so each
character is embedded exactly once.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from vectorstore.sentences import sentence_spans
from vectorstore.types import Article, Chunk

__all__ = ["DEFAULT_MAX_CHARS", "chunk_article", "chunk_id", "chunk_spans"]

DEFAULT_MAX_CHARS = 600

# Close a chunk at an earlier paragraph break only if what stays is at least this full.
_MIN_PARAGRAPH_FILL = 0.5

_PARAGRAPH_BREAK = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_BLANK_LINE = re.compile(r"\n[^\S\n]*\n")
_NON_SPACE_RUN = re.compile(r"\S+")

Span = tuple[int, int]


def chunk_id(article_id: str, start: int, end: int, text: str) -> str:
    """Deterministic chunk id: ``"{article_id}:{start}-{end}:{first 12 hex of sha256(text)}"``."""
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{article_id}:{start}-{end}:{digest}"


def chunk_article(article: Article, max_chars: int = DEFAULT_MAX_CHARS) -> list[Chunk]:
    """Split ``article.text`` into ordered, non-overlapping chunks of at most ``max_chars``."""
    return [_chunk(article, start, end) for start, end in chunk_spans(article.text, max_chars)]


def _chunk(article: Article, start: int, end: int) -> Chunk:
    """The chunk of ``article`` spanning ``start``-``end``, with its id."""
    text = article.text[start:end]
    return Chunk(chunk_id(article.id, start, end, text), article.id, text, start, end)


def chunk_spans(text: str, max_chars: int = DEFAULT_MAX_CHARS) -> list[Span]:
    """The ``(start, end)`` spans :func:`chunk_article` turns into chunks."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, not {max_chars}")
    spans: list[Span] = []
    pending: list[Span] = []  # sentences of the chunk being built
    for sentence in sentence_spans(text):
        if pending and _BLANK_LINE.search(text, pending[-1][1], sentence[0]):
            _flush(pending, spans)
        if sentence[1] - sentence[0] > max_chars:
            _flush(pending, spans)
            spans.extend(_split_long(text, sentence, max_chars))
        elif pending and sentence[1] - pending[0][0] > max_chars:
            pending = _close(text, pending, sentence, max_chars, spans)
            pending.append(sentence)
        else:
            pending.append(sentence)
    _flush(pending, spans)
    return spans


def _flush(pending: list[Span], spans: list[Span]) -> None:
    """Emit the sentences in ``pending`` as one chunk, if any, and empty ``pending``."""
    if pending:
        spans.append((pending[0][0], pending[-1][1]))
        pending.clear()


def _close(
    text: str, pending: list[Span], following: Span, max_chars: int, spans: list[Span]
) -> list[Span]:
    """Emit a chunk from ``pending`` because ``following`` does not fit; return what is kept.

    If ``pending`` holds a paragraph break past the fill threshold and the sentences after that
    break fit together with ``following``, only the part before the break is emitted.
    """
    cut = _last_paragraph_cut(text, pending, max_chars)
    if cut and following[1] - pending[cut][0] <= max_chars:
        spans.append((pending[0][0], pending[cut - 1][1]))
        return pending[cut:]
    _flush(pending, spans)
    return []


def _last_paragraph_cut(text: str, pending: Sequence[Span], max_chars: int) -> int:
    """Index of the last sentence of ``pending`` that opens a paragraph late enough; 0 if none."""
    start = pending[0][0]
    for i in range(len(pending) - 1, 0, -1):
        if pending[i - 1][1] - start < _MIN_PARAGRAPH_FILL * max_chars:
            return 0
        if _PARAGRAPH_BREAK.search(text, pending[i - 1][1], pending[i][0]):
            return i
    return 0


def _split_long(text: str, sentence: Span, max_chars: int) -> list[Span]:
    """Cut a sentence longer than ``max_chars`` at whitespace into balanced pieces."""
    units = _word_units(text, sentence, max_chars)
    pieces = _pack(units, max_chars)
    low, high = max(-(-(sentence[1] - sentence[0]) // len(pieces)), _longest(units)), max_chars
    while low < high:  # smallest limit that needs no more pieces than max_chars does
        mid = (low + high) // 2
        if len(_pack(units, mid)) <= len(pieces):
            high = mid
        else:
            low = mid + 1
    return _pack(units, high)


def _word_units(text: str, sentence: Span, max_chars: int) -> list[Span]:
    """Whitespace-separated words of ``sentence``; words over ``max_chars`` are cut hard."""
    units: list[Span] = []
    for word in _NON_SPACE_RUN.finditer(text, sentence[0], sentence[1]):
        start, end = word.span()
        units.extend((i, min(i + max_chars, end)) for i in range(start, end, max_chars))
    return units


def _longest(units: Sequence[Span]) -> int:
    """Length of the longest unit."""
    return max(end - start for start, end in units)


def _pack(units: Sequence[Span], limit: int) -> list[Span]:
    """Greedily group consecutive units into spans of at most ``limit`` characters."""
    groups: list[Span] = []
    start, end = units[0]
    for unit_start, unit_end in units[1:]:
        if unit_end - start > limit:
            groups.append((start, end))
            start = unit_start
        end = unit_end
    groups.append((start, end))
    return groups
