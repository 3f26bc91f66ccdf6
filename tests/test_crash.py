"""An ingest that dies anywhere leaves a library the next run completes, exactly.

After the re-run, the library is what one uninterrupted ingest makes: the same articles with
their current hashes, the same chunks (ids and texts), no chunk of a replaced version, and a
lexical index (as the app loads it: cached file or rebuilt) holding exactly Chroma's chunks.

Two ways of dying:

- in-process, deterministically, just before each single write request of an ingest in turn:
  every point where a crash can leave the store;
- real processes killed with SIGKILL at seeded random moments (loading, embedding, writing, and
  building the lexical index) over 300 articles, then run again: what the first cannot see,
  such as Chroma's own files cut off mid-write, or the writer lock left behind.

The processes ingest through ``Library`` as ``qa ingest`` does, with a fake embedder that
sleeps instead of computing: where the kills land then does not depend on how busy the machine
is, and the runs are quick (the bundled model embeds a few thousand characters a second on a
busy CPU: minutes for this many runs).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from qa.service import Library
from qa.settings import Settings
from tests.conftest import ROOT
from tests.fakes import BagOfWordsEmbedder
from vectorstore.chunking import chunk_article
from vectorstore.ingest import IngestOptions, ingest
from vectorstore.store import ChromaStore
from vectorstore.types import Article

CHUNK_CHARS = 150
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
        Article(f"a{i:03d}", f"Article {i}", make_text(i, 100 + (i * 37) % 400), "Wire")
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
    dense: frozenset[str]  # the chunk ids a vector search for all of them returns


def expected(articles: Iterable[Article]) -> Snapshot:
    """The library one clean ingest of ``articles`` makes."""
    registry: dict[str, tuple[str, str, int]] = {}
    chunks: dict[str, tuple[str, int, str, str]] = {}
    for a in articles:
        parts = chunk_article(a, CHUNK_CHARS)
        registry[a.id] = (a.content_hash, a.title, len(parts))
        chunks.update({c.id: (a.id, c.start, c.text, a.title) for c in parts})
    return Snapshot(registry, chunks, frozenset(chunks), frozenset(chunks))


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
    assert set(titles) == set(ids), "chunks without their vector"
    chunks = {r.id: (r.article_id, r.start, r.text, titles[r.id]) for r in records}
    dense = {p.chunk.id for p in lib.store.search(vector, len(ids))}
    return Snapshot(registry, chunks, frozenset(lib.lexical.refresh().ids), frozenset(dense))


def stored(data_dir: Path) -> Snapshot:
    """``snapshot`` without its approximate vector search, to compare two libraries: two HNSW
    indexes with the same vectors but another history of adds and deletes may each return
    fewer than all n for a search for all n, and not the same ones (``assert_library`` checks
    what can be: every chunk has its vector, no search returns a gone chunk)."""
    return replace(snapshot(data_dir), dense=frozenset())


def assert_library(data_dir: Path, articles: Sequence[Article]) -> None:
    got, want = snapshot(data_dir), expected(articles)
    assert got.articles == want.articles
    orphans = {cid: c[0] for cid, c in got.chunks.items() if cid not in want.chunks}
    assert not orphans, f"chunks of no current article version: {orphans}"
    assert got.chunks == want.chunks
    assert got.lexical == set(got.chunks), "the lexical index disagrees with Chroma"
    # Every chunk has its vector (get_passages scores each from it, see snapshot), and the
    # vector index returns no chunk that is gone. (Not "finds every chunk": HNSW search is
    # approximate, and after deletions a search for all n items may return fewer.)
    assert got.dense <= set(got.chunks), "the vector index returns chunks that are gone"


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


def dying_store(data_dir: Path, writes: int) -> tuple[ChromaStore, list[str]]:
    """A store of ``data_dir`` that dies before its write number ``writes`` (0-based), and the
    list of the writes it makes."""
    store = ChromaStore(Settings(data_dir=data_dir).store, BagOfWordsEmbedder().model_id)
    store._open()
    countdown, log = [writes], list[str]()
    store._chunks = DyingCollection(store._chunks, countdown, log)
    store._articles = DyingCollection(store._articles, countdown, log)
    return store, log


def ingest_dying(data_dir: Path, source: Path, writes: int, group: int) -> list[str]:
    """Ingest ``source`` in embedding groups of ``group`` chunks, dying before write number
    ``writes`` if it gets there; the writes made."""
    store, log = dying_store(data_dir, writes)
    options = IngestOptions(CHUNK_CHARS, embed_group=group, check_batch=4, progress=False)
    with contextlib.suppress(Killed):
        ingest([source], store, BagOfWordsEmbedder(), options)
    return log


def delete_dying(data_dir: Path, article_id: str, writes: int) -> list[str]:
    """Delete an article, dying before write number ``writes`` if it gets there."""
    store, log = dying_store(data_dir, writes)
    with contextlib.suppress(Killed):
        store.delete_article(article_id)
    return log


@pytest.mark.parametrize(
    "group",
    [pytest.param(10_000, id="one-batch"), pytest.param(4, id="batches", marks=pytest.mark.slow)],
)
@pytest.mark.parametrize("replacing", [False, True], ids=["new", "replacing"])
def test_dying_before_any_write_then_running_again_converges(
    tmp_path: Path, replacing: bool, group: int
) -> None:
    v1 = make_articles(6)
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
    batches = writes.count("articles-chunks.modify")  # one revision change per written batch
    assert batches == 1 if group > 100 else batches >= 2
    assert_library(clean, wanted)

    for n in range(len(writes)):
        data = prepared(tmp_path / f"died-{n}")
        assert ingest_dying(data, target, n, group) == writes[:n]
        lib = library(data)
        lib.ingest([target], progress=False)  # running it again
        lib.close()
        assert_library(data, wanted)


@pytest.mark.parametrize("repair", ["delete", "ingest"])
def test_dying_while_deleting_then_deleting_or_ingesting_again_converges(
    tmp_path: Path, repair: str
) -> None:
    """Whichever the user runs again, the delete or the ingest of the article, it ends whole."""
    articles = make_articles(6)
    source = write_jsonl(tmp_path / "v1.jsonl", articles)
    gone = articles[2].id
    rest = [a for a in articles if a.id != gone]

    def prepared(data: Path) -> Path:
        lib = library(data)
        lib.ingest([source], progress=False)
        lib.close()
        return data

    clean = prepared(tmp_path / "clean")
    writes = delete_dying(clean, gone, 10_000)
    assert writes.count("articles-chunks.delete") == 1
    assert_library(clean, rest)

    for n in range(len(writes)):
        data = prepared(tmp_path / f"died-{n}")
        assert delete_dying(data, gone, n) == writes[:n]
        lib = library(data)
        if repair == "delete":
            assert lib.delete(gone)
        else:
            lib.ingest([source], progress=False)
        lib.close()
        assert_library(data, rest if repair == "delete" else articles)


# -- real processes killed with SIGKILL ------------------------------------------------------

# One `qa ingest` through Library, with a fake embedder that sleeps instead of computing and
# says when it starts and ends: the kills can aim at the embedding or at the writes after it.
INGEST = """
import sys, time
from pathlib import Path
from qa.service import Library
from qa.settings import Settings
from tests.fakes import BagOfWordsEmbedder

class SlowEmbedder(BagOfWordsEmbedder):
    def embed(self, texts):
        print("embedding", flush=True)
        time.sleep(0.001 * len(texts))
        vectors = super().embed(texts)
        print("embedded", flush=True)
        return vectors

settings = Settings(data_dir=Path(sys.argv[1]), chunk_chars=int(sys.argv[3]))
report = Library(settings, embedder=SlowEmbedder()).ingest([sys.argv[2]], progress=False)
print("done", len(report.new), len(report.updated), len(report.unchanged), flush=True)
"""


@dataclass
class Run:
    """One ingest process: when it printed each marker (seconds after start), whether it was
    killed and after which marker, and how it ended."""

    seen: dict[str, float]
    killed_after: str | None
    returncode: int
    output: str


def run_ingest(
    data_dir: Path, source: Path, kill_after: str | None = None, delay: float = 0.0
) -> Run:
    """Ingest ``source`` into ``data_dir`` in a new process; with ``kill_after``, SIGKILL it
    ``delay`` seconds after it printed that marker (unless it has finished by then)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", INGEST, str(data_dir), str(source), str(CHUNK_CHARS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.stdout is not None
    started = time.monotonic()
    seen = {"started": 0.0}
    lines: list[str] = []
    killed_after = None

    def note(line: str) -> None:
        lines.append(line)
        seen.setdefault(line.split(" ")[0].strip(), time.monotonic() - started)

    try:
        while kill_after is not None and kill_after not in seen:
            line = proc.stdout.readline()
            if not line:  # it finished before getting there
                break
            note(line)
        if kill_after in seen:
            time.sleep(delay)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                killed_after = kill_after
        for line in proc.stdout:
            note(line)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return Run(seen, killed_after, proc.returncode, "".join(lines))


@dataclass(frozen=True)
class Corpus:
    v1: list[Article]
    v2: list[Article]
    first: Path  # v1 as JSONL
    second: Path  # v2 as JSONL
    reference: Path  # v1 ingested without interruption
    base: Path  # a copy of it, never opened by this process
    clean: Run  # that uninterrupted run


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    root = tmp_path_factory.mktemp("crash")
    v1 = make_articles(300)
    v2 = revise(v1)
    first = write_jsonl(root / "v1.jsonl", v1)
    second = write_jsonl(root / "v2.jsonl", v2)
    reference = root / "reference-v1"
    run = run_ingest(reference, first)
    assert run.returncode == 0 and run.output.endswith("done 300 0 0\n"), run.output
    shutil.copytree(reference, root / "base")
    return Corpus(v1, v2, first, second, reference, root / "base", run)


def kill_repeatedly(data_dir: Path, source: Path, plan: Sequence[tuple[str, float]]) -> list[Run]:
    """A run killed per each (marker, delay) of ``plan`` in turn, then one to completion."""
    runs = [run_ingest(data_dir, source, after, delay) for after, delay in plan]
    for run in runs:
        assert run.killed_after or run.returncode == 0, run.output
        assert run.killed_after is None or run.returncode == -signal.SIGKILL
    final = run_ingest(data_dir, source)
    assert final.returncode == 0 and "Traceback" not in final.output, final.output
    return [*runs, final]


def plan(rng: random.Random, clean: Run, kills: dict[str, int]) -> list[tuple[str, float]]:
    """``kills[marker]`` kills after each marker, at seeded random delays within what followed
    that marker in the uninterrupted run ``clean``: loading and reading; embedding; writing
    and indexing (half as long again: a run after a kill rewrites more slowly). Each marker's
    delays ascend, so that later kills reach further into runs that still have it all to do."""
    seen = clean.seen
    spans = {
        "started": seen["embedding"],
        "embedding": seen["embedded"] - seen["embedding"],
        "embedded": 1.5 * (seen["done"] - seen["embedded"]),
    }
    return [
        (marker, delay)
        for marker, n in kills.items()
        for delay in sorted(rng.uniform(0.0, spans[marker]) for _ in range(n))
    ]


@pytest.mark.slow
def test_sigkill_while_ingesting_then_running_again(corpus: Corpus, tmp_path: Path) -> None:
    kills = plan(random.Random(6), corpus.clean, {"started": 1, "embedding": 1, "embedded": 4})
    runs = kill_repeatedly(tmp_path / "data", corpus.first, kills)
    landed = [r.killed_after for r in runs if r.killed_after]
    assert landed.count("embedding") >= 1 and landed.count("embedded") >= 1, runs
    assert stored(tmp_path / "data") == stored(corpus.reference)
    assert_library(tmp_path / "data", corpus.v1)


@pytest.mark.slow
def test_sigkill_while_replacing_then_running_again(corpus: Corpus, tmp_path: Path) -> None:
    reference, crashed = tmp_path / "reference-v2", tmp_path / "data"
    shutil.copytree(corpus.base, reference)
    shutil.copytree(corpus.base, crashed)
    clean = run_ingest(reference, corpus.second)
    assert clean.returncode == 0 and clean.output.endswith("done 1 129 171\n"), clean.output
    kills = plan(random.Random(7), clean, {"embedding": 1, "embedded": 4})
    runs = kill_repeatedly(crashed, corpus.second, kills)
    assert [r.killed_after for r in runs].count("embedded") >= 1, runs
    assert stored(crashed) == stored(reference)
    assert_library(crashed, corpus.v2)
