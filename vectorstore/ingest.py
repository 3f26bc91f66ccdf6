"""Files in, stored chunks out: load, skip what has not changed, chunk, embed, write.

Idempotent: an article whose content hash is already stored is not chunked, embedded or
written again, and when nothing changed the embedding model is never even loaded. A changed
article replaces all its old chunks. Bad files are reported and skipped; good files in the
same run are still ingested.

The embedding model is the cost (each character is embedded once: chunks do not overlap), so
everything else runs beside it, in three threads joined by bounded queues:

- a reader loads the files, looks up the stored hashes of each batch of articles, and chunks
  the new and changed ones;
- the calling thread embeds the chunks in large groups (``embed_group`` chunks per call, sorted
  by length inside it, so batches carry little padding), loading the model as soon as the
  first article needs it;
- a writer stores each embedded group with ``write_articles``: all of the group's chunks first,
  then its articles' registry records, so an article is recorded only once every chunk of it
  is stored (see ``vectorstore.store``), and the report lists exactly what was written.

A group the store refuses is retried article by article: an article it still refuses is
reported as failed (with its file) and the others are stored. When the store itself is gone
(a ``StoreError``, or every article of a group refused), the run stops with a ``StoreError``
saying how many articles were stored; running it again finishes the job.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from vectorstore.chunking import chunk_article
from vectorstore.embeddings import Embedder, embed_array
from vectorstore.errors import StoreError
from vectorstore.loaders import LoadFailure, iter_files, load_file
from vectorstore.types import Article, Chunk

Vectors = Sequence[Sequence[float]] | npt.NDArray[np.float32]
T = TypeVar("T")


class ArticleWriter(Protocol):
    """The part of a store ingestion needs."""

    def stored_hashes(self, article_ids: Sequence[str]) -> dict[str, str]:
        """The stored content hash of each given article that is in the store."""
        ...

    def write_articles(self, items: Sequence[tuple[Article, Sequence[Chunk], Vectors]]) -> None:
        """Store each article as exactly its chunks, replacing what it had; chunks first,
        registry records last."""
        ...


@dataclass(frozen=True)
class IngestOptions:
    chunk_chars: int = 600
    max_file_bytes: int = 20_000_000
    embed_group: int = 2048  # chunks embedded in one call (sorted by length), then written together
    check_batch: int = 256  # articles whose stored hashes are looked up together
    queued_groups: int = 2  # embedded groups waiting for the writer (bounds memory)
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


@dataclass(frozen=True)
class _Todo:
    """An article to write: its chunks, the file it came from, and whether it replaces one."""

    article: Article
    chunks: list[Chunk]
    path: str
    update: bool


class _Stopped(Exception):
    """Another stage failed or the run was interrupted: stop quietly."""


_END: Any = object()


def iter_articles(
    paths: Iterable[str | Path], max_file_bytes: int, failed: list[LoadFailure]
) -> Iterator[tuple[Article, str]]:
    """Every good article under ``paths`` with its file; failures and duplicate ids go into
    ``failed``."""
    first_seen: dict[str, str] = {}
    for item in iter_files(paths):
        if isinstance(item, LoadFailure):
            failed.append(item)
            continue
        for result in load_file(item, max_file_bytes):
            if isinstance(result, LoadFailure):
                failed.append(result)
            elif result.id in first_seen:
                failed.append(
                    LoadFailure(
                        str(item),
                        f"duplicate article id {result.id!r} (already read from "
                        f"{first_seen[result.id]}); kept the first",
                    )
                )
            else:
                first_seen[result.id] = str(item)
                yield result, str(item)


def ingest(
    paths: Iterable[str | Path],
    store: ArticleWriter,
    embedder: Embedder,
    options: IngestOptions | None = None,
) -> IngestReport:
    """Ingest every article under ``paths`` into ``store``."""
    return _Run(store, embedder, options or IngestOptions()).run(paths)


class _Run:
    """One ingest: the reader and writer threads around the embedding in the calling thread."""

    def __init__(self, store: ArticleWriter, embedder: Embedder, options: IngestOptions) -> None:
        self.store = store
        self.embedder = embedder
        self.options = options
        self.report = IngestReport()
        self.load_failures: list[LoadFailure] = []  # the reader's
        self.store_failures: list[LoadFailure] = []  # the writer's
        self.todo: queue.Queue[Any] = queue.Queue(maxsize=max(options.embed_group, 64))
        self.embedded: queue.Queue[Any] = queue.Queue(maxsize=max(options.queued_groups, 1))
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.written: dict[str, bool] = {}  # article id -> was an update, in write order
        self.lock = threading.Lock()
        self.bar = tqdm(
            total=0,
            unit="chunk",
            desc="Embedding",
            disable=not options.progress,
            leave=False,
        )

    def run(self, paths: Iterable[str | Path]) -> IngestReport:
        reader = threading.Thread(target=self._stage, args=(self._read, paths), daemon=True)
        writer = threading.Thread(target=self._stage, args=(self._write,), daemon=True)
        reader.start()
        writer.start()
        try:
            self._embed()
            self._put(self.embedded, _END)
        except BaseException as exc:
            if not isinstance(exc, _Stopped):
                self.errors.insert(0, exc)
            self.stop.set()
        finally:
            writer.join()
            self.stop.set()
            reader.join()
            self.bar.close()
        report = self.report
        report.failed = self.load_failures + self.store_failures
        for aid, update in self.written.items():
            (report.updated if update else report.new).append(aid)
        if self.errors:
            error = self.errors[0]
            if isinstance(error, StoreError):
                raise StoreError(
                    f"{error} ({len(self.written)} articles were stored before it; "
                    "run the ingest again to finish)"
                ) from error
            raise error
        return report

    # -- the stages ------------------------------------------------------------------------

    def _stage(self, work: Callable[..., None], *args: Any) -> None:
        """Run one thread's work; a failure stops the others and is raised by ``run``."""
        try:
            work(*args)
        except _Stopped:
            pass
        except BaseException as exc:
            self.errors.append(exc)
            self.stop.set()

    def _read(self, paths: Iterable[str | Path]) -> None:
        articles = iter_articles(paths, self.options.max_file_bytes, self.load_failures)
        for batch in _batches(articles, self.options.check_batch):
            stored = self.store.stored_hashes([a.id for a, _ in batch])
            for article, path in batch:
                if stored.get(article.id) == article.content_hash:
                    self.report.unchanged.append(article.id)
                    continue
                chunks = chunk_article(article, self.options.chunk_chars)
                with self.lock:
                    self.bar.total += len(chunks)
                self._put(self.todo, _Todo(article, chunks, path, article.id in stored))
        self._put(self.todo, _END)

    def _embed(self) -> None:
        group: list[_Todo] = []
        size = 0
        first = True
        while (item := self._get(self.todo)) is not _END:
            if first:  # the first article to embed: load the model while the reader goes on
                self._warm_up()
                first = False
            group.append(item)
            size += len(item.chunks)
            if size >= self.options.embed_group:
                self._embed_group(group)
                group, size = [], 0
        if group:
            self._embed_group(group)

    def _warm_up(self) -> None:
        warm_up = getattr(self.embedder, "warm_up", None)
        if callable(warm_up):
            warm_up()

    def _embed_group(self, group: list[_Todo]) -> None:
        texts = [chunk.text for item in group for chunk in item.chunks]
        vectors = embed_array(self.embedder, texts, self._progress)
        self._put(self.embedded, (group, vectors))

    def _progress(self, n: int) -> None:
        if self.stop.is_set():
            raise _Stopped
        with self.lock:
            self.bar.update(n)

    def _write(self) -> None:
        while (item := self._get(self.embedded)) is not _END:
            group, vectors = item
            items = []
            at = 0
            for todo in group:
                items.append((todo, vectors[at : at + len(todo.chunks)]))
                at += len(todo.chunks)
            try:
                self.store.write_articles([(t.article, t.chunks, v) for t, v in items])
            except StoreError:
                raise
            except Exception:
                self._write_one_by_one(items)
            else:
                for todo, _ in items:
                    self._written(todo)

    def _write_one_by_one(self, items: list[tuple[_Todo, Vectors]]) -> None:
        """After a group was refused: store what the store accepts, report the rest."""
        refused: list[tuple[_Todo, Exception]] = []
        for todo, vectors in items:
            try:
                self.store.write_articles([(todo.article, todo.chunks, vectors)])
            except StoreError:
                raise
            except Exception as exc:
                refused.append((todo, exc))
            else:
                self._written(todo)
        if refused and len(refused) == len(items):
            raise StoreError(f"the store refused every article of a group: {refused[0][1]}")
        for todo, error in refused:
            reason = f"article {todo.article.id!r} could not be stored: {error}"
            self.store_failures.append(LoadFailure(todo.path, reason))

    def _written(self, todo: _Todo) -> None:
        self.written[todo.article.id] = todo.update
        self.report.chunks_written += len(todo.chunks)

    # -- queues that give up when another stage failed ---------------------------------------

    def _put(self, q: queue.Queue[Any], item: Any) -> None:
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _get(self, q: queue.Queue[Any]) -> Any:
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue


def _batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
