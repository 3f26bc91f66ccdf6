"""Files in, stored chunks out: load, skip what has not changed, chunk, embed, write.

Idempotent: an article whose content hash is already stored is not chunked, embedded or
written again, and when nothing changed the embedding model is never even loaded. A changed
article replaces all its old chunks. Bad files are reported and skipped; good files in the
same run are still ingested.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tqdm import tqdm

from vectorstore.chunking import chunk_article
from vectorstore.embeddings import Embedder
from vectorstore.loaders import LoadFailure, iter_files, load_file
from vectorstore.types import Article, Chunk


class ArticleWriter(Protocol):
    """The part of a store ingestion needs."""

    def stored_hashes(self, article_ids: Sequence[str]) -> dict[str, str]:
        """The stored content hash of each given article that is in the store."""
        ...

    def write_article(
        self, article: Article, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]
    ) -> None:
        """Store the article as exactly these chunks, replacing what it had."""
        ...


@dataclass(frozen=True)
class IngestOptions:
    chunk_chars: int = 600
    max_file_bytes: int = 20_000_000
    embed_group: int = 512  # chunks embedded (and then written) together
    progress: bool = True


@dataclass
class IngestReport:
    """What one ingest run did, per article id, plus every file or record it could not use."""

    new: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[LoadFailure] = field(default_factory=list)
    chunks_written: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed


def load_articles(
    paths: Iterable[str | Path], max_file_bytes: int, report: IngestReport
) -> list[Article]:
    """Every good article under ``paths``; failures and duplicate ids go into ``report``."""
    articles: list[Article] = []
    first_seen: dict[str, str] = {}
    for item in iter_files(paths):
        if isinstance(item, LoadFailure):
            report.failed.append(item)
            continue
        for result in load_file(item, max_file_bytes):
            if isinstance(result, LoadFailure):
                report.failed.append(result)
            elif result.id in first_seen:
                report.failed.append(
                    LoadFailure(
                        str(item),
                        f"duplicate article id {result.id!r} (already read from "
                        f"{first_seen[result.id]}); kept the first",
                    )
                )
            else:
                first_seen[result.id] = str(item)
                articles.append(result)
    return articles


def ingest(
    paths: Iterable[str | Path],
    store: ArticleWriter,
    embedder: Embedder,
    options: IngestOptions | None = None,
) -> IngestReport:
    """Ingest every article under ``paths`` into ``store``."""
    options = options or IngestOptions()
    report = IngestReport()
    articles = load_articles(paths, options.max_file_bytes, report)
    stored = store.stored_hashes([a.id for a in articles])
    todo: list[tuple[Article, list[Chunk]]] = []
    for article in articles:
        if stored.get(article.id) == article.content_hash:
            report.unchanged.append(article.id)
            continue
        (report.updated if article.id in stored else report.new).append(article.id)
        todo.append((article, chunk_article(article, options.chunk_chars)))
    if todo:
        write_embedded(todo, store, embedder, options, report)
    return report


def write_embedded(
    todo: Sequence[tuple[Article, list[Chunk]]],
    store: ArticleWriter,
    embedder: Embedder,
    options: IngestOptions,
    report: IngestReport,
) -> None:
    """Embed the chunks in groups and write each article as soon as its vectors exist."""
    total = sum(len(chunks) for _, chunks in todo)
    with tqdm(
        total=total, unit="chunk", desc="Embedding", disable=not options.progress, leave=False
    ) as bar:
        group: list[tuple[Article, list[Chunk]]] = []
        size = 0
        for item in todo:
            group.append(item)
            size += len(item[1])
            if size >= options.embed_group:
                _write_group(group, store, embedder, bar, report)
                group, size = [], 0
        if group:
            _write_group(group, store, embedder, bar, report)


def _write_group(
    group: list[tuple[Article, list[Chunk]]],
    store: ArticleWriter,
    embedder: Embedder,
    bar: tqdm,
    report: IngestReport,
) -> None:
    texts = [chunk.text for _, chunks in group for chunk in chunks]
    vectors = embedder.embed(texts)
    at = 0
    for article, chunks in group:
        store.write_article(article, chunks, vectors[at : at + len(chunks)])
        at += len(chunks)
        report.chunks_written += len(chunks)
        bar.update(len(chunks))
