"""An ingest that dies anywhere leaves a library the next run completes, exactly.

After the re-run, the library is what one uninterrupted ingest makes: the same articles with
their current hashes, the same chunks (ids and texts), no chunk of a replaced version, and a
lexical index (as the app loads it: cached file or rebuilt) holding exactly Chroma's chunks.

An ingest dies in-process, deterministically, just before each single write request in turn:
every point where a real crash can leave the store.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from qa.service import Library
from qa.settings import Settings
from tests.fakes import BagOfWordsEmbedder
from vectorstore.chunking import chunk_article
from vectorstore.ingest import IngestOptions, ingest
from vectorstore.store import ChromaStore
from vectorstore.types import Article

CHUNK_CHARS = 100
WORDS = [
    *("market", "city", "council", "river", "energy", "school", "police", "court", "budget"),
    *("storm", "vote", "health", "water", "road", "train", "team", "game", "music", "film"),
    *("bank", "price", "harbour", "mayor", "bridge", "festival", "museum"),
]


# -- articles and what a library of them must hold ------------------------------------------


def make_text(seed: int, chars: int) -> str:
    """Deterministic sentences, about ``chars`` long."""
    rng = random.Random(seed)
    sentences: list[str] = []
    while sum(len(s) + 1 for s in sentences) < chars:
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 12))]
        sentences.append(" ".join(words).capitalize() + ".")
    return " ".join(sentences)


def make_articles(n: int) -> list[Article]:
    return [
        Article(f"a{i:03d}", f"Article {i}", make_text(i, 120 + (i * 37) % 500), "Wire")
        for i in range(n)
    ]


def revise(articles: Sequence[Article]) -> list[Article]:
    """A second version: every third article rewritten (longer, shorter or other words, so
    chunks come and go), every seventh retitled (same chunk ids, new metadata), one new."""
    out = []
    for i, a in enumerate(articles):
        if i % 3 == 0:
            chars = len(a.text) // 2 if i % 2 else len(a.text) * 2
            a = Article(a.id, a.title, make_text(10_000 + i, chars), a.source)
        elif i % 7 == 1:
            a = Article(a.id, f"{a.title}, revised", a.text, a.source)
        out.append(a)
    return [*out, Article("new", "A new one", make_text(99_999, 300), "Wire")]


def write_jsonl(path: Path, articles: Iterable[Article]) -> Path:
    lines = (
        json.dumps({"id": a.id, "title": a.title, "text": a.text, "source": a.source})
        for a in articles
    )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@dataclass(frozen=True)
class Snapshot:
    """What a library holds, as the app sees it."""

    articles: dict[str, tuple[str, str, int]]  # id -> content hash, title, chunk count
    chunks: dict[str, tuple[str, int, str, str]]  # id -> article id, start, text, title
    lexical: frozenset[str]  # the chunk ids of the lexical index the app would use


def expected(articles: Iterable[Article]) -> Snapshot:
    """The library one clean ingest of ``articles`` makes."""
    registry: dict[str, tuple[str, str, int]] = {}
    chunks: dict[str, tuple[str, int, str, str]] = {}
    for a in articles:
        parts = chunk_article(a, CHUNK_CHARS)
        registry[a.id] = (a.content_hash, a.title, len(parts))
        chunks.update({c.id: (a.id, c.start, c.text, a.title) for c in parts})
    return Snapshot(registry, chunks, frozenset(chunks))


def library(data_dir: Path) -> Library:
    settings = Settings(data_dir=data_dir, chunk_chars=CHUNK_CHARS)
    return Library(settings, embedder=BagOfWordsEmbedder())


def snapshot(data_dir: Path) -> Snapshot:
    lib = library(data_dir)
    registry = {s.info.id: (s.content_hash, s.info.title, s.chunks) for s in lib.articles()}
    records = list(lib.store.iter_records())
    ids = [r.id for r in records]
    assert len(ids) == len(set(ids))
    vector = lib.embedder.embed(["any"])[0]
    titles = {p.chunk.id: p.article.title for p in lib.store.get_passages(ids, vector)}
    chunks = {r.id: (r.article_id, r.start, r.text, titles[r.id]) for r in records}
    return Snapshot(registry, chunks, frozenset(lib.lexical.refresh().ids))


def assert_library(data_dir: Path, articles: Sequence[Article]) -> None:
    got, want = snapshot(data_dir), expected(articles)
    assert got.articles == want.articles
    orphans = {cid: c[0] for cid, c in got.chunks.items() if cid not in want.chunks}
    assert not orphans, f"chunks of no current article version: {orphans}"
    assert got.chunks == want.chunks
    assert got.lexical == set(got.chunks), "the lexical index disagrees with Chroma"


# -- dying just before any one write ---------------------------------------------------------


class Killed(BaseException):
    """The process dies here (a BaseException: nothing may take it for a refused write)."""


class DyingCollection:
    """A Chroma collection whose writes go through until the shared countdown runs out; the
    write it ran out on never happens, nor does anything after it."""

    WRITES = frozenset({"add", "upsert", "update", "delete", "modify"})

    def __init__(self, inner: Any, countdown: list[int], log: list[str]) -> None:
        self._inner = inner
        self._countdown = countdown
        self._log = log

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name not in self.WRITES:
            return attr

        def write(*args: Any, **kwargs: Any) -> Any:
            if self._countdown[0] == 0:
                raise Killed
            self._countdown[0] -= 1
            self._log.append(f"{self._inner.name}.{name}")
            return attr(*args, **kwargs)

        return write


def ingest_dying(data_dir: Path, source: Path, writes: int, group: int) -> list[str]:
    """Ingest ``source`` in embedding groups of ``group`` chunks, dying before write number
    ``writes`` (0-based) if it gets there; the writes made."""
    store = ChromaStore(Settings(data_dir=data_dir).store, BagOfWordsEmbedder().model_id)
    store._open()
    countdown, log = [writes], []
    store._chunks = DyingCollection(store._chunks, countdown, log)
    store._articles = DyingCollection(store._articles, countdown, log)
    options = IngestOptions(CHUNK_CHARS, embed_group=group, check_batch=4, progress=False)
    with contextlib.suppress(Killed):
        ingest([source], store, BagOfWordsEmbedder(), options)
    return log


@pytest.mark.parametrize(
    "group",
    [pytest.param(10_000, id="one-batch"), pytest.param(8, id="batches", marks=pytest.mark.slow)],
)
@pytest.mark.parametrize("replacing", [False, True], ids=["new", "replacing"])
def test_dying_before_any_write_then_running_again_converges(
    tmp_path: Path, replacing: bool, group: int
) -> None:
    v1 = make_articles(10)
    v2 = revise(v1)
    first = write_jsonl(tmp_path / "v1.jsonl", v1)
    second = write_jsonl(tmp_path / "v2.jsonl", v2)
    target, wanted = (second, v2) if replacing else (first, v1)

    def prepared(data: Path) -> Path:
        if replacing:  # a finished first version, its lexical index cached
            lib = library(data)
            lib.ingest([first], progress=False)
            lib.close()
        return data

    clean = prepared(tmp_path / "clean")
    writes = ingest_dying(clean, target, 10_000, group)
    assert "articles-chunks.modify" in writes and len(writes) >= (3 if group > 100 else 12)
    assert_library(clean, wanted)

    for n in range(len(writes)):
        data = prepared(tmp_path / f"died-{n}")
        assert ingest_dying(data, target, n, group) == writes[:n]
        lib = library(data)
        lib.ingest([target], progress=False)  # running it again
        lib.close()
        assert_library(data, wanted)
