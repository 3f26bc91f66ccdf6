"""The BM25 index, its persistence, and how it follows the store across writes and restarts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from qa.service import Library
from qa.settings import Settings
from tests.fakes import BagOfWordsEmbedder
from vectorstore.lexical import ChunkRecord, LexicalIndex, top_indices
from vectorstore.types import Filters

RECORDS = [
    ChunkRecord("b:0", "b", 0, "NATO saw no evidence of a withdrawal.", "Wire", 20140520),
    ChunkRecord("a:40", "a", 40, "Shoigu was told to pull back the forces.", "Kremlin", 20140519),
    ChunkRecord("a:0", "a", 0, "Putin ordered troops near Ukraine home.", "Kremlin", 20140519),
    ChunkRecord("a:80", "a", 80, "The Kremlin gave no numbers.", "Kremlin", 20140519),
]


def test_scores_are_normalized_and_rank_the_matching_chunk_first() -> None:
    index = LexicalIndex.build("r1", RECORDS)
    assert index.ids == ["a:0", "a:40", "a:80", "b:0"]  # sorted by article and offset
    scores = index.scores("Who told Shoigu to pull back the forces?")
    assert scores.dtype == np.float32 and len(scores) == 4
    assert ((scores >= 0) & (scores <= 1)).all()
    assert index.ids[top_indices(scores, 1)[0]] == "a:40"
    assert scores[index.position["b:0"]] == 0.0
    # a question whose words are all absent scores nothing anywhere
    assert not index.scores("zebra quantum").any()


def test_missing_terms_lower_the_normalized_score() -> None:
    index = LexicalIndex.build("r1", RECORDS)
    full = index.scores("Shoigu forces")[index.position["a:40"]]
    half = index.scores("Shoigu forces zebra")[index.position["a:40"]]
    assert 0 < half < full


def test_filters_and_neighbours() -> None:
    index = LexicalIndex.build("r1", RECORDS)
    scores = index.scores("Kremlin NATO", Filters(sources=("Wire",)))
    assert [index.ids[i] for i in top_indices(scores, 5)] == ["b:0"]
    dated = index.scores("Kremlin NATO", Filters(published_to="2014-05-19"))
    assert dated[index.position["b:0"]] == 0 and dated[index.position["a:80"]] > 0
    by_id = index.scores("Kremlin NATO", Filters(article_ids=("a",)))
    assert by_id[index.position["b:0"]] == 0
    assert index.neighbours(index.position["a:40"]) == [0, 2]
    assert index.neighbours(index.position["a:80"]) == [1]  # b:0 is another article


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    index = LexicalIndex.build("r7", RECORDS)
    path = tmp_path / "lex" / "x.npz"
    index.save(path)
    loaded = LexicalIndex.load(path)
    assert loaded is not None and loaded.revision == "r7" and loaded.ids == index.ids
    q = "Putin troops Ukraine"
    assert np.allclose(loaded.scores(q), index.scores(q))
    assert not list(path.parent.glob("*.tmp"))


def test_a_damaged_cache_file_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "x.npz"
    path.write_bytes(b"not an index")
    assert LexicalIndex.load(path) is None


def corpus(tmp_path: Path, records: list[dict[str, str]]) -> Path:
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    return path


def test_the_index_follows_ingest_delete_and_restart(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    lib = Library(settings, embedder=BagOfWordsEmbedder())
    lib.ingest(
        [corpus(tmp_path, [{"id": "a", "text": "Putin ordered the troops home."}])],
        progress=False,
    )
    assert lib.lexical.get().ids and lib.lexical.get().revision == lib.store.revision()
    cache = tmp_path / "data" / "lexical" / "articles.npz"
    assert cache.exists()

    lib.ingest(
        [corpus(tmp_path, [{"id": "b", "text": "NATO saw no sign of a zebra pullout."}])],
        progress=False,
    )
    assert [p.article.id for p in lib.search("zebra", 1)] == ["b"]

    # a restart reads the cached index instead of rebuilding it
    stamp = cache.stat().st_mtime_ns
    again = Library(settings, embedder=BagOfWordsEmbedder())
    assert again.lexical.get().revision == again.store.revision()
    assert cache.stat().st_mtime_ns == stamp

    assert lib.delete("b")
    assert all(p.article.id != "b" for p in lib.search("zebra pullout", 5))
    # the other process's index is stale now, yet it never returns the deleted article
    assert all(p.article.id != "b" for p in again.search("zebra pullout", 5))


def test_lexical_only_candidates_get_their_exact_dense_score(tmp_path: Path) -> None:
    lib = Library(Settings(data_dir=tmp_path / "data"), embedder=BagOfWordsEmbedder())
    records = [
        {"id": f"n{i}", "text": f"Filler story number {i} about weather."} for i in range(60)
    ]
    records.append({"id": "target", "text": "Shoigu pulled back forces from Rostov."})
    lib.ingest([corpus(tmp_path, records)], progress=False)
    lib.searcher.candidates = 5  # too few dense candidates to include the target by cosine
    cands = {c.passage.article.id: c for c in lib.searcher.candidates_for("Rostov Shoigu")}
    assert "target" in cands
    vector = lib.embedder.embed(["Rostov Shoigu"])[0]
    [stored] = lib.store.get_passages(lib.store.chunk_ids("target"), vector)
    assert abs(cands["target"].features[0] - stored.score) < 1e-6
    assert lib.search("Rostov Shoigu", 1)[0].article.id == "target"
