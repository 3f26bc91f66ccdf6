"""Contract tests for ChromaStore, run against the embedded client and a real Chroma server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes import BagOfWordsEmbedder
from tests.servers import chroma_server
from vectorstore.errors import ConfigError, StoreError
from vectorstore.store import ChromaStore, StoreConfig
from vectorstore.types import Article, Chunk, Filters

EMBEDDER = BagOfWordsEmbedder()


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with chroma_server(tmp_path_factory.mktemp("chroma-server") / "db") as url:
        yield url


_collections = iter(range(10_000))


@pytest.fixture(params=["embedded", "server"])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> StoreConfig:
    name = f"lib{next(_collections)}"  # a fresh library per test on the shared server
    if request.param == "server":
        return StoreConfig(tmp_path, request.getfixturevalue("server_url"), name)
    return StoreConfig(tmp_path, None, name)


@pytest.fixture
def store(config: StoreConfig) -> ChromaStore:
    return ChromaStore(config, EMBEDDER.model_id)


def article(aid: str, text: str, **meta: str) -> Article:
    return Article(aid, meta.pop("title", f"Title {aid}"), text, **meta)


def chunks_of(a: Article, size: int) -> list[Chunk]:
    """Fixed-size test chunks with exact offsets (chunking itself is tested elsewhere)."""
    out = []
    for start in range(0, len(a.text), size):
        text = a.text[start : start + size]
        out.append(Chunk(f"{a.id}:{start}", a.id, text, start, start + len(text)))
    return out


def write(store: ChromaStore, a: Article, size: int = 20) -> list[Chunk]:
    chunks = chunks_of(a, size)
    store.write_article(a, chunks, EMBEDDER.embed([c.text for c in chunks]))
    return chunks


def test_written_article_is_listed_and_read_back(store: ChromaStore) -> None:
    a = article(
        "a1",
        "Troops return to their home bases near Rostov.",
        source="Wire",
        published="2014-05-19",
    )
    chunks = write(store, a)
    [row] = store.list_articles()
    assert row.info.id == "a1" and row.info.source == "Wire" and row.info.published == "2014-05-19"
    assert row.chunks == len(chunks) and row.chars == len(a.text)
    assert row.content_hash == a.content_hash
    assert store.get_article("a1") == a
    assert store.get_article("nope") is None
    assert sorted(store.chunk_ids("a1")) == sorted(c.id for c in chunks)
    assert store.stored_hashes(["a1", "nope"]) == {"a1": a.content_hash}


def test_rewriting_with_fewer_chunks_leaves_none_behind(store: ChromaStore) -> None:
    write(store, article("a1", "x" * 100), size=10)
    assert len(store.chunk_ids("a1")) == 10
    new = write(store, article("a1", "y" * 30), size=10)
    assert sorted(store.chunk_ids("a1")) == sorted(c.id for c in new)
    assert store.count_chunks() == 3


def test_delete_removes_article_and_every_chunk(store: ChromaStore) -> None:
    write(store, article("a1", "Putin ordered the troops back."))
    write(store, article("a2", "NATO saw no sign of a pullout."))
    assert store.delete_article("a1") is True
    assert store.delete_article("a1") is False
    assert [r.info.id for r in store.list_articles()] == ["a2"]
    assert store.chunk_ids("a1") == []
    assert store.count_chunks() == len(store.chunk_ids("a2"))


def test_search_scores_best_first_with_exact_offsets(store: ChromaStore) -> None:
    texts = {
        "putin": "Putin ordered troops near Ukraine back to their home bases.",
        "nato": "NATO said it had seen no evidence of a withdrawal.",
        "sanctions": "The EU threatened sanctions on entire sectors of the economy.",
    }
    for aid, text in texts.items():
        write(store, article(aid, text), size=1000)
    hits = store.search(EMBEDDER.embed(["troops back to home bases"])[0], k=3)
    assert hits[0].article.id == "putin"
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    for h in hits:
        assert texts[h.article.id][h.chunk.start : h.chunk.end] == h.chunk.text


def test_filters_by_source_date_and_id(store: ChromaStore) -> None:
    write(store, article("old", "troops troops", source="A", published="2014-05-01"), size=1000)
    write(store, article("new", "troops troops", source="B", published="2014-06-01"), size=1000)
    write(store, article("undated", "troops troops", source="A"), size=1000)
    q = EMBEDDER.embed(["troops"])[0]

    def ids(f: Filters) -> set[str]:
        return {h.article.id for h in store.search(q, 10, f)}

    assert ids(Filters()) == {"old", "new", "undated"}
    assert ids(Filters(sources=("A",))) == {"old", "undated"}
    assert ids(Filters(article_ids=("new",))) == {"new"}
    assert ids(Filters(published_from="2014-05-15")) == {"new"}
    assert ids(Filters(published_to="2014-05-15")) == {"old"}
    assert ids(Filters(sources=("A",), published_from="2014-01-01")) == {"old"}


def test_a_different_embedding_model_is_refused(store: ChromaStore, config: StoreConfig) -> None:
    write(store, article("a1", "some text"))
    other = ChromaStore(config, "another-model")
    with pytest.raises(ConfigError, match="bag-of-words"):
        other.list_articles()


def test_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    from tests.servers import free_port

    store = ChromaStore(StoreConfig(tmp_path, f"http://127.0.0.1:{free_port()}"), "m")
    with pytest.raises(StoreError, match="Chroma server"):
        store.list_articles()


def test_a_malformed_url_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="http://HOST:PORT"):
        ChromaStore(StoreConfig(tmp_path, "localhost:8000"), "m").list_articles()
