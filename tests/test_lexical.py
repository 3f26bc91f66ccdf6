"""The BM25 index, its persistence, and how it follows the store across writes and restarts."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from qa.service import Library
from qa.settings import Settings
from tests.fakes import BagOfWordsEmbedder
from vectorstore.features import FEATURE_NAMES
from vectorstore.hybrid import LexicalCache
from vectorstore.lexical import ChunkRecord, LexicalIndex, top_indices
from vectorstore.store import ChromaStore
from vectorstore.types import Filters, ScoredPassage

ARTICLE_BM25 = FEATURE_NAMES.index("article_bm25")
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
    assert np.allclose(loaded.article_scores(q), index.article_scores(q))
    assert loaded.article_scores(q).any()
    assert not list(path.parent.glob("*.tmp"))


# "summit" is split over two chunks of article s; d has three of the four words in one chunk
SPREAD = [
    ChunkRecord("s:0", "s", 0, "Shoigu Rostov filler filler", "Kremlin", 20140519),
    ChunkRecord("s:100", "s", 100, "summit pullout filler filler", "Kremlin", 20140519),
    ChunkRecord("d:0", "d", 0, "Shoigu Rostov summit filler", "Wire", 20140520),
    ChunkRecord("d:100", "d", 100, "weather report filler filler", "Wire", 20140520),
    ChunkRecord("e:0", "e", 0, "weather report today filler", "Wire", 20140521),
]
SUMMARY = "Shoigu at Rostov summit announced a pullout"


def test_article_scores_find_an_article_whose_words_are_spread_over_chunks() -> None:
    index = LexicalIndex.build("r1", SPREAD)
    chunk = index.scores(SUMMARY)
    article = index.article_scores(SUMMARY)
    assert article.dtype == np.float32 and len(article) == len(index)
    assert ((article >= 0) & (article <= 1)).all()
    # by chunk, d's single chunk beats each half of s; by article, s wins
    assert index.ids[top_indices(chunk, 1)[0]] == "d:0"
    assert index.article_ids[top_indices(article, 1)[0]] == "s"
    pos = index.position
    assert article[pos["s:0"]] == article[pos["s:100"]] > article[pos["d:0"]]
    assert article[pos["d:0"]] == article[pos["d:100"]] > 0  # every chunk of d gets d's score
    assert article[pos["e:0"]] == 0.0
    # a query word no article holds lowers the normalized score
    assert 0 < index.article_scores(SUMMARY + " zebra")[pos["s:0"]] < article[pos["s:0"]]
    assert not index.article_scores("zebra quantum").any()
    assert not LexicalIndex.build("r0", []).article_scores(SUMMARY).any()


def test_coverage_is_the_share_of_the_query_in_the_article_and_in_its_lead() -> None:
    index = LexicalIndex.build("r1", SPREAD)
    pos = index.position
    assert [index.ids[i] for i in index.lead_of] == ["d:0", "d:0", "e:0", "s:0", "s:0"]
    article, lead = index.coverage("Shoigu Rostov summit pullout")
    assert article.dtype == lead.dtype == np.float32 and len(article) == len(lead) == len(index)
    # s holds all four words (over two chunks), its first chunk two; d's first chunk three
    assert article[pos["s:0"]] == article[pos["s:100"]] == pytest.approx(1.0)
    idf = {t: float(index.idf[index.vocab[t]]) for t in ("shoigu", "rostov", "summit", "pullout")}
    total = sum(idf.values())
    assert article[pos["d:100"]] == pytest.approx((total - idf["pullout"]) / total)
    assert (
        lead[pos["s:100"]]
        == lead[pos["s:0"]]
        == pytest.approx((idf["shoigu"] + idf["rostov"]) / total)
    )
    assert lead[pos["d:100"]] == lead[pos["d:0"]] == article[pos["d:0"]]
    assert article[pos["e:0"]] == lead[pos["e:0"]] == 0.0
    # a word no chunk holds counts against every article; no known word: nothing covered
    zebra, _ = index.coverage("Shoigu Rostov summit pullout zebra")
    assert 0 < zebra[pos["s:0"]] < article[pos["s:0"]]
    assert not any(x.any() for x in index.coverage("zebra quantum"))
    assert not any(x.any() for x in LexicalIndex.build("r0", []).coverage(SUMMARY))


def test_article_scores_respect_filters() -> None:
    index = LexicalIndex.build("r1", SPREAD)
    pos = index.position
    wire = index.article_scores(SUMMARY, Filters(sources=("Wire",)))
    assert wire[pos["s:0"]] == wire[pos["s:100"]] == 0.0 and wire[pos["d:0"]] > 0
    only_s = index.article_scores(SUMMARY, Filters(article_ids=("s",)))
    assert only_s[pos["d:0"]] == 0.0 and only_s[pos["s:0"]] > 0
    dated = index.article_scores(SUMMARY, Filters(published_from="2014-05-20"))
    assert not dated[[pos["s:0"], pos["s:100"]]].any() and dated[pos["d:0"]] > 0


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
    index = lib.lexical.get()
    whole = index.article_scores("Rostov Shoigu")
    for c in cands.values():
        assert c.features[ARTICLE_BM25] == float(whole[index.position[c.passage.chunk.id]])
    assert cands["target"].features[ARTICLE_BM25] > 0
    vector = lib.embedder.embed(["Rostov Shoigu"])[0]
    [stored] = lib.store.get_passages(lib.store.chunk_ids("target"), vector)
    assert abs(cands["target"].features[0] - stored.score) < 1e-6
    assert lib.search("Rostov Shoigu", 1)[0].article.id == "target"


def _corpus(seed: int, articles: int) -> list[ChunkRecord]:
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(60)] + ["Kremlin", "troops", "Shoigu", "NATO"]
    records = []
    for a in range(articles):
        for c in range(rng.randint(1, 4)):
            text = " ".join(rng.choice(vocab) for _ in range(rng.randint(3, 25)))
            records.append(ChunkRecord(f"art{a}:{c}", f"art{a}", c * 100, text, "S", 20140500 + a))
    return records


def _same_index(got: LexicalIndex, want: LexicalIndex, queries: list[str]) -> None:
    assert got.ids == want.ids and got.article_ids == want.article_ids
    assert got.sources == want.sources and list(got.starts) == list(want.starts)
    assert list(got.published) == list(want.published)
    for q in queries:
        np.testing.assert_allclose(got.scores(q), want.scores(q), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            got.article_scores(q), want.article_scores(q), rtol=1e-5, atol=1e-6
        )
        for g, w in zip(got.coverage(q), want.coverage(q), strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    assert list(got.lead_of) == list(want.lead_of)


def test_an_updated_index_equals_one_built_from_scratch() -> None:
    old = _corpus(1, 30)
    replaced = {"art3", "art7", "art20"}
    deleted = {"art11"}
    fresh = [r for r in _corpus(2, 40) if r.article_id in replaced | {"art35", "art36"}]
    fresh += [ChunkRecord("new:0", "new", 0, "Shoigu zebra quantum", "S", 0)]  # new words
    current = [r for r in old if r.article_id not in replaced | deleted] + fresh
    queries = ["Kremlin troops w3 w17", "Shoigu zebra", "w1 w2 w3 w4 w5", "quantum NATO w59"]

    updated = LexicalIndex.build("r1", old).updated("r2", replaced | deleted, fresh)
    assert updated.revision == "r2"
    assert not any(cid.startswith("art11:") for cid in updated.ids)
    _same_index(updated, LexicalIndex.build("r2", current), queries)
    # an empty index updated with every record is the index built from them
    assert (
        LexicalIndex.build("r0", []).updated("r1", [], old).ids == LexicalIndex.build("r1", old).ids
    )


def test_updated_article_scores_equal_those_built_from_scratch() -> None:
    extra = [
        ChunkRecord("n:0", "n", 0, "summit pullout today", "Wire", 0),
        ChunkRecord("n:50", "n", 50, "Shoigu filler", "Wire", 0),
    ]
    updated = LexicalIndex.build("r1", SPREAD).updated("r2", ["d"], extra)
    fresh = LexicalIndex.build("r2", [r for r in SPREAD if r.article_id != "d"] + extra)
    for q in (SUMMARY, "weather report", "summit zebra"):
        np.testing.assert_allclose(updated.article_scores(q), fresh.article_scores(q), rtol=1e-6)
    assert updated.article_scores(SUMMARY)[updated.position["n:50"]] > 0


def test_update_round_trips_through_the_cache_file(tmp_path: Path) -> None:
    old = _corpus(3, 10)
    path = tmp_path / "x.npz"
    LexicalIndex.build("r1", old).save(path)
    loaded = LexicalIndex.load(path)
    assert loaded is not None
    extra = [ChunkRecord("z:0", "z", 0, "Kremlin troops", "S", 0)]
    _same_index(
        loaded.updated("r2", ["art0"], extra),
        LexicalIndex.build("r2", [r for r in old if r.article_id != "art0"] + extra),
        ["Kremlin troops", "w5 w6"],
    )


class CountingSource:
    """A real ChromaStore, counting the full reads a rebuild makes."""

    def __init__(self, store: ChromaStore) -> None:
        self.store = store
        self.full_reads = 0

    def revision(self) -> str:
        return self.store.revision()

    def iter_records(self) -> Iterator[ChunkRecord]:
        self.full_reads += 1
        return self.store.iter_records()

    def records_of(self, article_ids: Sequence[str]) -> list[ChunkRecord]:
        return self.store.records_of(article_ids)

    def search(
        self, vector: list[float], k: int, filters: Filters | None = None
    ) -> list[ScoredPassage]:
        return self.store.search(vector, k, filters)

    def get_passages(self, chunk_ids: list[str], query_vector: list[float]) -> list[ScoredPassage]:
        return self.store.get_passages(chunk_ids, query_vector)


def test_small_ingests_and_deletes_update_the_index_without_a_rebuild(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    lib = Library(settings, embedder=BagOfWordsEmbedder())
    source = CountingSource(lib.store)
    lib.lexical = LexicalCache(source, tmp_path / "data" / "lexical" / "articles.npz")
    first = [{"id": f"n{i}", "text": f"Filler story {i} about the weather."} for i in range(8)]
    lib.ingest([corpus(tmp_path, first)], progress=False)
    assert source.full_reads == 1  # the first ingest builds it

    more = [
        {"id": "n3", "text": "A replaced story: Shoigu pulled back the forces."},
        {"id": "x", "text": "NATO saw no zebra pullout."},
    ]
    lib.ingest([corpus(tmp_path, more)], progress=False)
    assert lib.delete("n5")
    assert source.full_reads == 1  # updated in place, twice

    index = lib.lexical.get()
    rebuilt = LexicalIndex.build(lib.store.revision(), lib.store.iter_records())
    _same_index(index, rebuilt, ["Shoigu forces", "zebra NATO", "weather story 5"])
    assert index.revision == lib.store.revision()
    assert [p.article.id for p in lib.search("zebra pullout", 1)] == ["x"]
    # the cache holds the updated index: another process starts from it
    again = LexicalCache(CountingSource(lib.store), tmp_path / "data" / "lexical" / "articles.npz")
    assert again.get().ids == index.ids


def test_an_update_from_an_unexpected_revision_rebuilds(tmp_path: Path) -> None:
    lib = Library(Settings(data_dir=tmp_path / "data"), embedder=BagOfWordsEmbedder())
    lib.ingest([corpus(tmp_path, [{"id": "a", "text": "Putin ordered troops home."}])], False)
    source = CountingSource(lib.store)
    cache = LexicalCache(source, None)
    cache.get()
    lib.ingest([corpus(tmp_path, [{"id": "b", "text": "NATO saw no zebra."}])], False)
    # told it starts from a revision its index is not at (another writer came between)
    index = cache.apply("some-other-revision", ["b"])
    assert source.full_reads == 2 and index.revision == lib.store.revision()
    assert set(index.article_ids) == {"a", "b"}
