"""Ingestion: idempotent re-runs, replacement of changed articles, bad files beside good ones,
and the pipelined ingest: exact chunks and report, failures of the store or the model."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qa.service import Library
from tests.conftest import SEED_ARTICLE
from tests.fakes import BagOfWordsEmbedder
from vectorstore.errors import StoreError
from vectorstore.ingest import IngestOptions, ingest
from vectorstore.loaders import LoadFailure
from vectorstore.store import ChromaStore
from vectorstore.types import Article, Chunk


def write_jsonl(path: Path, records: list[dict[str, str]]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    return path


def test_reingesting_unchanged_articles_embeds_nothing(
    fake_library: Library, fake_embedder: BagOfWordsEmbedder
) -> None:
    first = fake_library.ingest([SEED_ARTICLE], progress=False)
    assert first.new == ["000_624088a241e45b64"] and first.ok
    ids_before = sorted(fake_library.store.chunk_ids("000_624088a241e45b64"))
    embedded = fake_embedder.texts_embedded
    assert embedded == len(ids_before) > 1

    again = fake_library.ingest([SEED_ARTICLE], progress=False)
    assert again.unchanged == ["000_624088a241e45b64"]
    assert again.new == again.updated == [] and again.chunks_written == 0
    assert fake_embedder.texts_embedded == embedded  # the model was not asked for anything
    assert sorted(fake_library.store.chunk_ids("000_624088a241e45b64")) == ids_before


def test_a_changed_article_replaces_all_its_old_chunks(
    fake_library: Library, tmp_path: Path
) -> None:
    long_text = " ".join(f"Sentence number {i} tells of troops and sanctions." for i in range(60))
    path = write_jsonl(tmp_path / "a.jsonl", [{"id": "x", "title": "X", "text": long_text}])
    fake_library.ingest([path], progress=False)
    old_ids = set(fake_library.store.chunk_ids("x"))
    assert len(old_ids) > 3

    short = "Only one short sentence remains."
    write_jsonl(path, [{"id": "x", "title": "X", "text": short}])
    report = fake_library.ingest([path], progress=False)
    assert report.updated == ["x"]
    new_ids = set(fake_library.store.chunk_ids("x"))
    assert len(new_ids) == 1 and not (new_ids & old_ids)
    [row] = fake_library.articles()
    assert row.chunks == 1 and row.chars == len(short)
    article = fake_library.article("x")
    assert article is not None and article.text == short


def test_changing_only_metadata_updates_the_article(fake_library: Library, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [{"id": "x", "title": "Old", "text": "Troops left."}])
    fake_library.ingest([path], progress=False)
    write_jsonl(path, [{"id": "x", "title": "New", "text": "Troops left.", "source": "Wire"}])
    assert fake_library.ingest([path], progress=False).updated == ["x"]
    [row] = fake_library.articles()
    assert (row.info.title, row.info.source) == ("New", "Wire")
    [hit] = fake_library.search("troops", 1)
    assert hit.article.title == "New"  # chunk metadata follows the article


def test_bad_files_are_reported_and_good_ones_still_ingested(
    fake_library: Library, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.txt").write_text("Good title\n\nTroops returned to base.", encoding="utf-8")
    (folder / "empty.txt").write_text("   \n", encoding="utf-8")
    (folder / "binary.txt").write_bytes(b"\x00\x01\x02binary\x00")
    (folder / "mixed.jsonl").write_text(
        '{"id": "j1", "text": "A good record."}\n{not json\n{"id": "j3", "title": "no text"}\n',
        encoding="utf-8",
    )
    report = fake_library.ingest([folder], progress=False)
    assert sorted(report.new) == ["good", "j1"]
    reasons = {(Path(f.path).name, f.line): f.reason for f in report.failed}
    assert set(reasons) == {
        ("empty.txt", None),
        ("binary.txt", None),
        ("mixed.jsonl", 2),
        ("mixed.jsonl", 3),
    }
    assert "empty" in reasons[("empty.txt", None)]
    assert "binary" in reasons[("binary.txt", None)]
    assert not report.ok
    assert sorted(r.info.id for r in fake_library.articles()) == ["good", "j1"]


def test_duplicate_ids_in_one_run_keep_the_first(fake_library: Library, tmp_path: Path) -> None:
    a = write_jsonl(tmp_path / "a.jsonl", [{"id": "same", "text": "First version."}])
    b = write_jsonl(tmp_path / "b.jsonl", [{"id": "same", "text": "Second version."}])
    report = fake_library.ingest([a, b], progress=False)
    assert report.new == ["same"]
    [failure] = report.failed
    assert "duplicate article id 'same'" in failure.reason and failure.path.endswith("b.jsonl")
    article = fake_library.article("same")
    assert article is not None and article.text == "First version."


def test_a_rerun_after_an_interrupted_write_converges(
    fake_library: Library, tmp_path: Path
) -> None:
    """Chunks written but no registry record (a crash mid-article): the next run repairs it."""
    from vectorstore.chunking import chunk_article
    from vectorstore.loaders import load_file

    path = write_jsonl(tmp_path / "a.jsonl", [{"id": "x", "text": "Troops returned. " * 80}])
    [article] = list(load_file(path))
    chunks = chunk_article(article, 100)
    half = chunks[: len(chunks) // 2]
    fake_library.store._open()
    fake_library.store._chunks.upsert(  # what a crash after the first batch leaves behind
        ids=[c.id for c in half],
        documents=[c.text for c in half],
        embeddings=fake_library.embedder.embed([c.text for c in half]),
        metadatas=[{"article_id": "x", "title": "t", "start": c.start, "end": c.end} for c in half],
    )
    assert fake_library.articles() == []
    report = fake_library.ingest([path], progress=False)
    assert report.new == ["x"]
    stored = set(fake_library.store.chunk_ids("x"))
    assert stored == {c.id for c in chunk_article(article, fake_library.settings.chunk_chars)}


# -- the pipelined ingest ----------------------------------------------------------------------


def many_articles(n: int) -> list[dict[str, str]]:
    """Articles of different lengths, so groups of chunks split inside and between them."""
    return [
        {
            "id": f"a{i:02d}",
            "title": f"Article {i}",
            "text": " ".join(
                f"Report {i} sentence {j} mentions troops, talks and sanctions number {i * j}."
                for j in range(1 + (i * 7) % 23)
            ),
        }
        for i in range(n)
    ]


def stored_chunks(library: Library) -> dict[str, tuple[str, int, int, str, list[float]]]:
    """Every stored chunk: id -> (article id, start, end, text, vector)."""
    library.store._open()
    got = library.store._chunks.get(include=["documents", "metadatas", "embeddings"])
    return {
        cid: (str(meta["article_id"]), int(meta["start"]), int(meta["end"]), text, list(vector))
        for cid, text, meta, vector in zip(
            got["ids"], got["documents"], got["metadatas"], got["embeddings"], strict=True
        )
    }


def expected_chunks(
    path: Path, chunk_chars: int, embedder: BagOfWordsEmbedder
) -> dict[str, tuple[str, int, int, str, list[float]]]:
    """What ``chunk_article`` and the embedder make of every article in ``path``."""
    from vectorstore.chunking import chunk_article
    from vectorstore.loaders import load_file

    out = {}
    for article in load_file(path):
        assert not isinstance(article, LoadFailure)
        for chunk in chunk_article(article, chunk_chars):
            vector = embedder.embed([chunk.text])[0]
            out[chunk.id] = (article.id, chunk.start, chunk.end, chunk.text, vector)
    return out


def test_pipelined_ingest_stores_exactly_the_chunks_of_chunk_article(
    fake_library: Library, fake_embedder: BagOfWordsEmbedder, tmp_path: Path
) -> None:
    """Small groups and hash-lookup batches: every chunk, with its own vector, lands once."""
    records = many_articles(30)
    path = write_jsonl(tmp_path / "many.jsonl", records)
    options = IngestOptions(chunk_chars=120, embed_group=7, check_batch=4, progress=False)
    report = ingest([path], fake_library.store, fake_embedder, options)
    assert report.ok and report.new == [r["id"] for r in records]  # exact, in input order
    assert report.updated == report.unchanged == []
    expected = expected_chunks(path, 120, fake_embedder)
    assert report.chunks_written == len(expected) > 60
    got = stored_chunks(fake_library)
    assert got.keys() == expected.keys()
    for cid, (aid, start, end, text, vector) in expected.items():
        g_aid, g_start, g_end, g_text, g_vector = got[cid]
        assert (g_aid, g_start, g_end, g_text) == (aid, start, end, text)
        assert max(abs(a - b) for a, b in zip(g_vector, vector, strict=True)) < 1e-6, cid
    rows = {r.info.id: r.chunks for r in fake_library.articles()}
    assert rows == {r["id"]: sum(1 for v in expected.values() if v[0] == r["id"]) for r in records}


def test_pipelined_ingest_reports_new_updated_and_unchanged_exactly(
    fake_library: Library, fake_embedder: BagOfWordsEmbedder, tmp_path: Path
) -> None:
    records = many_articles(12)
    path = write_jsonl(tmp_path / "many.jsonl", records)
    options = IngestOptions(chunk_chars=150, embed_group=5, check_batch=5, progress=False)
    ingest([path], fake_library.store, fake_embedder, options)
    records[3]["text"] += " A new closing sentence."
    records[8]["title"] = "Renamed"
    records.append({"id": "late", "text": "A late article about talks."})
    write_jsonl(path, records)
    embedded = fake_embedder.texts_embedded
    report = ingest([path], fake_library.store, fake_embedder, options)
    assert report.updated == ["a03", "a08"] and report.new == ["late"]
    assert report.unchanged == [r["id"] for r in records if r["id"] not in ("a03", "a08", "late")]
    assert report.chunks_written == fake_embedder.texts_embedded - embedded
    assert stored_chunks(fake_library).keys() == expected_chunks(path, 150, fake_embedder).keys()


class RefusingStore(ChromaStore):
    """A real store that refuses to write some articles (once each, or always)."""

    def __init__(self, store: ChromaStore, refuse: set[str], error: type[Exception]) -> None:
        super().__init__(store._config, store._model_id)
        self.refuse = refuse
        self.error = error
        self.calls = 0

    def write_articles(self, items: Sequence[tuple[Article, Sequence[Chunk], Any]]) -> None:
        self.calls += 1
        if any(article.id in self.refuse for article, _, _ in items):
            # what a failure half-way leaves behind: some chunks, no registry record
            article, chunks, vectors = items[0]
            self._open()
            self._chunks.upsert(
                ids=[c.id for c in chunks[:1]],
                documents=[c.text for c in chunks[:1]],
                embeddings=np.asarray(vectors[:1], dtype=np.float32),
                metadatas=[{"article_id": article.id, "title": "", "start": 0, "end": 1}],
            )
            raise self.error(f"refused {sorted(self.refuse)}")
        super().write_articles(items)


def assert_consistent(library: Library, chunk_chars: int) -> None:
    """Every recorded article has exactly the chunks chunk_article gives it."""
    from vectorstore.chunking import chunk_article

    for row in library.articles():
        article = library.article(row.info.id)
        assert article is not None
        want = {c.id for c in chunk_article(article, chunk_chars)}
        assert set(library.store.chunk_ids(article.id)) == want, article.id
        assert row.chunks == len(want)


def test_an_article_the_store_refuses_is_reported_and_a_rerun_stores_it(
    fake_library: Library, fake_embedder: BagOfWordsEmbedder, tmp_path: Path
) -> None:
    records = many_articles(10)
    path = write_jsonl(tmp_path / "many.jsonl", records)
    options = IngestOptions(chunk_chars=150, embed_group=9, progress=False)
    refusing = RefusingStore(fake_library.store, {"a04"}, ValueError)
    report = ingest([path], refusing, fake_embedder, options)
    assert report.new == [r["id"] for r in records if r["id"] != "a04"]
    [failure] = report.failed
    assert failure.path == str(path) and "'a04' could not be stored: refused" in failure.reason
    assert "a04" not in {r.info.id for r in fake_library.articles()}
    assert_consistent(fake_library, 150)

    again = ingest([path], fake_library.store, fake_embedder, options)
    assert again.ok and again.new == ["a04"] and len(again.unchanged) == 9
    assert_consistent(fake_library, 150)
    assert len(fake_library.articles()) == 10


def test_a_lost_store_stops_the_run_and_a_rerun_finishes_the_job(
    fake_library: Library, fake_embedder: BagOfWordsEmbedder, tmp_path: Path
) -> None:
    records = many_articles(20)
    path = write_jsonl(tmp_path / "many.jsonl", records)
    options = IngestOptions(chunk_chars=150, embed_group=6, progress=False)
    lost = RefusingStore(fake_library.store, {"a11"}, StoreError)
    with pytest.raises(StoreError, match=r"refused.*articles were stored before it; run") as e:
        ingest([path], lost, fake_embedder, options)
    stored = sorted(r.info.id for r in fake_library.articles())
    assert f"({len(stored)} articles were stored" in str(e.value)
    assert 5 < len(stored) <= 11 and stored == [r["id"] for r in records[: len(stored)]]
    assert_consistent(fake_library, 150)  # whole groups written, the failing one not recorded

    again = ingest([path], fake_library.store, fake_embedder, options)
    assert again.ok and again.new == [r["id"] for r in records[len(stored) :]]
    assert again.unchanged == stored
    assert_consistent(fake_library, 150)
    assert len(fake_library.articles()) == 20


def test_an_embedding_failure_stops_the_run_cleanly(fake_library: Library, tmp_path: Path) -> None:
    class FailingEmbedder(BagOfWordsEmbedder):
        def embed(self, texts: Sequence[str]) -> list[list[float]]:
            if self.calls == 2:
                raise RuntimeError("out of memory")
            return super().embed(texts)

    path = write_jsonl(tmp_path / "many.jsonl", many_articles(20))
    options = IngestOptions(chunk_chars=150, embed_group=6, progress=False)
    with pytest.raises(RuntimeError, match="out of memory"):
        ingest([path], fake_library.store, FailingEmbedder(), options)
    written = len(fake_library.articles())
    assert 0 < written < 20
    assert_consistent(fake_library, 150)


def test_the_model_is_loaded_only_when_something_needs_embedding(
    fake_library: Library, tmp_path: Path
) -> None:
    class CountingEmbedder(BagOfWordsEmbedder):
        warm_ups = 0

        def warm_up(self) -> None:
            self.warm_ups += 1

    embedder = CountingEmbedder()
    path = write_jsonl(tmp_path / "a.jsonl", many_articles(3))
    options = IngestOptions(progress=False)
    ingest([path], fake_library.store, embedder, options)
    assert embedder.warm_ups == 1 and embedder.calls == 1
    ingest([path], fake_library.store, embedder, options)
    assert embedder.warm_ups == 1 and embedder.calls == 1
