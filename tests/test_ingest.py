"""Ingestion: idempotent re-runs, replacement of changed articles, bad files beside good ones."""

from __future__ import annotations

import json
from pathlib import Path

from qa.service import Library
from tests.conftest import SEED_ARTICLE
from tests.fakes import BagOfWordsEmbedder


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
