"""Plain values passed between layers: Article -> Chunk -> ScoredPassage."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class ArticleInfo:
    """What a citation shows about an article: everything but its text."""

    id: str
    title: str
    source: str | None = None
    url: str | None = None
    published: str | None = None  # ISO date, YYYY-MM-DD


@dataclass(frozen=True)
class Article:
    """One news article as loaded from a file or a JSON record."""

    id: str
    title: str
    text: str
    source: str | None = None
    url: str | None = None
    published: str | None = None  # ISO date, YYYY-MM-DD

    @property
    def info(self) -> ArticleInfo:
        return ArticleInfo(self.id, self.title, self.source, self.url, self.published)

    @property
    def content_hash(self) -> str:
        """Changes whenever anything stored about the article changes."""
        h = hashlib.sha256()
        for part in (self.id, self.title, self.source, self.url, self.published, self.text):
            h.update((part or "").encode("utf-8", "surrogatepass"))
            h.update(b"\x00")
        return h.hexdigest()


@dataclass(frozen=True)
class Chunk:
    """A span of an article's text: ``article.text[start:end] == text``."""

    id: str
    article_id: str
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class ScoredPassage:
    """A retrieved chunk with its article and a relevance score in [0, 1], higher is better."""

    chunk: Chunk
    article: ArticleInfo
    score: float


@dataclass(frozen=True)
class ArticleSummary:
    """One line of ``qa list``."""

    info: ArticleInfo
    chunks: int
    chars: int
    content_hash: str


@dataclass(frozen=True)
class Filters:
    """Restricts retrieval to some articles; empty means no restriction."""

    sources: tuple[str, ...] = ()
    article_ids: tuple[str, ...] = ()
    published_from: str | None = None  # inclusive ISO date
    published_to: str | None = None  # inclusive ISO date

    def __bool__(self) -> bool:
        return bool(self.sources or self.article_ids or self.published_from or self.published_to)
