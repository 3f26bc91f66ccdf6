"""Scaling out on one Chroma server: ingestion and the lexical index in server mode, several app
processes answering while another ingests, and servers that are gone or never answer."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from qa.service import Library
from qa.settings import Settings
from tests.conftest import ROOT, SEED_ARTICLE, SEEDS
from tests.fakes import BagOfWordsEmbedder
from tests.servers import chroma_server, free_port, stop
from vectorstore.errors import StoreError
from vectorstore.store import ChromaStore, StoreConfig

SEED_QUESTION = "Who did Putin order to pull back the forces?"
SEED_ID = "000_624088a241e45b64"
QA = [sys.executable, "-m", "qa.cli"]

_names = iter(range(10_000))


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with chroma_server(tmp_path_factory.mktemp("scale-chroma") / "db") as url:
        yield url


def server_settings(data_dir: Path, url: str, collection: str) -> Settings:
    return Settings(data_dir=data_dir, chroma_url=url, collection=collection)


def env() -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    return {**clean, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}


def qa(*args: str, timeout: float = 300, extra_env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        [*QA, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**env(), **(extra_env or {})},
    )


# -- servers that are gone or silent ------------------------------------------------------------


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """A TCP listener on loopback that accepts connections and never answers."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                conn, _ = listener.accept()
                held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        listener.close()


def test_an_unreachable_server_is_a_clear_error_within_seconds() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    result = qa("list", "--chroma-url", url, timeout=30)
    assert time.monotonic() - started < 10
    assert result.returncode == 1
    assert f"Error: cannot reach the Chroma server at {url}" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_server_that_never_answers_is_an_error_after_the_timeout() -> None:
    with silent_server() as url:
        started = time.monotonic()
        result = qa("list", "--chroma-url", url, timeout=60, extra_env={"QA_CHROMA_TIMEOUT": "2"})
        elapsed = time.monotonic() - started
    assert result.returncode == 1 and elapsed < 15
    assert f"the Chroma server at {url} did not answer within 2 s" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_store_on_a_silent_server_raises_store_error_in_process(tmp_path: Path) -> None:
    with silent_server() as url:
        store = ChromaStore(StoreConfig(tmp_path, url, "lib", timeout=0.5), "m")
        started = time.monotonic()
        with pytest.raises(StoreError, match=r"did not answer within 0\.5 s"):
            store.list_articles()
        assert time.monotonic() - started < 5


def test_every_request_to_the_server_has_the_timeout(chroma_url: str, tmp_path: Path) -> None:
    store = ChromaStore(StoreConfig(tmp_path, chroma_url, f"t{next(_names)}", timeout=7.5), "m")
    assert store.list_articles() == []
    session = store._client._server._session  # chromadb's own session: no timeout by default
    assert isinstance(session, httpx.Client)
    assert session.timeout == httpx.Timeout(7.5)


def test_a_server_lost_after_opening_is_a_store_error(tmp_path: Path) -> None:
    embedder = BagOfWordsEmbedder()
    with chroma_server(tmp_path / "db") as url:
        library = Library(server_settings(tmp_path / "app", url, "lost"), embedder=embedder)
        library.ingest([SEED_ARTICLE], progress=False)
    started = time.monotonic()
    with pytest.raises(StoreError, match=f"cannot reach the Chroma server at {url}"):
        library.articles()
    with pytest.raises(StoreError, match="cannot reach"):
        library.ingest([SEEDS], progress=False)  # even with nothing to write
    assert time.monotonic() - started < 10


# -- ingestion and the lexical index in server mode --------------------------------------------


def test_ingest_through_the_server_is_idempotent(chroma_url: str, tmp_path: Path) -> None:
    name = f"ingest{next(_names)}"
    embedder = BagOfWordsEmbedder()
    library = Library(server_settings(tmp_path / "a", chroma_url, name), embedder=embedder)
    first = library.ingest([SEEDS], progress=False)
    assert first.new == [SEED_ID] and first.ok
    embedded = embedder.texts_embedded
    assert embedded == first.chunks_written > 1

    # another process (another data folder) sees the same library and writes nothing
    other = Library(server_settings(tmp_path / "b", chroma_url, name), embedder=embedder)
    again = other.ingest([SEEDS], progress=False)
    assert again.unchanged == [SEED_ID] and again.chunks_written == 0
    assert embedder.texts_embedded == embedded
    assert [r.info.id for r in other.articles()] == [SEED_ID]
    assert not (tmp_path / "a" / "chroma").exists()  # server mode keeps nothing but caches


def test_the_lexical_index_follows_the_server_in_each_data_folder(
    chroma_url: str, tmp_path: Path
) -> None:
    """Two app processes (two data folders) on one server: each derives its own BM25 index from
    the server, tagged with the server's revision, and rebuilds it after the other one writes."""
    name = f"lex{next(_names)}"
    a = Library(server_settings(tmp_path / "a", chroma_url, name), embedder=BagOfWordsEmbedder())
    b = Library(server_settings(tmp_path / "b", chroma_url, name), embedder=BagOfWordsEmbedder())
    a.ingest([SEEDS], progress=False)
    assert b.lexical.get().revision == b.store.revision() == a.store.revision()
    assert any(p.article.id == SEED_ID for p in b.search("Shoigu spring drills", 3))

    news = tmp_path / "news.jsonl"
    news.write_text(
        json.dumps({"id": "zorblat", "text": "The Zorblat ferry carried 417 passengers."}) + "\n",
        encoding="utf-8",
    )
    b.ingest([news], progress=False)  # b writes; a's index is now stale
    assert a.lexical.refresh().revision == b.store.revision()
    index = a.lexical.get()
    assert any(aid == "zorblat" for aid in index.article_ids)
    [hit] = a.search("Zorblat ferry passengers", 1)
    assert hit.article.id == "zorblat"
    for folder in ("a", "b"):  # one cache per data folder, each readable on its own
        assert (tmp_path / folder / "lexical" / f"{name}.npz").is_file()


@pytest.mark.slow
def test_every_command_works_through_the_server(chroma_url: str, tmp_path: Path) -> None:
    store = ("--chroma-url", chroma_url, "--collection", "cli", "--data-dir", str(tmp_path / "d"))
    ingested = qa("ingest", "-q", *store, str(SEEDS))
    assert ingested.returncode == 0 and "1 new" in ingested.stdout, ingested.stderr
    asked = qa("ask", "--json", *store, SEED_QUESTION)
    assert asked.returncode == 0, asked.stderr
    assert json.loads(asked.stdout)["citations"][0]["article_id"] == SEED_ID
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        json.dumps({"question": SEED_QUESTION, "article_id": SEED_ID, "answers": ["Shoigu"]}),
        encoding="utf-8",
    )
    evaluated = qa("eval", "-q", "--json", *store, "--questions", str(questions), "--k", "1")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["recall_at_k"]["1"] == 1.0
    deleted = qa("delete", *store, SEED_ID)
    assert deleted.returncode == 0 and f"deleted {SEED_ID}" in deleted.stdout
    listed = qa("list", "--json", *store)
    assert listed.returncode == 0 and json.loads(listed.stdout) == []
    assert not (tmp_path / "d" / "chroma").exists()  # nothing stored locally


# -- several app processes on one server while another process ingests ------------------------

PLACES = [
    "Zorblat", "Quintaro", "Velmora", "Draskin", "Ombrevale", "Kethwick", "Palundra",
    "Skorvath", "Tirneval", "Brumoss", "Yelvanne", "Casperon", "Hollowmere", "Ixtabrun",
    "Morvane", "Fenwhistle", "Glavrook", "Ulderon", "Nesquith", "Rathmoor",
]  # fmt: skip
PLACES_NOUNS = [
    "ferry terminal", "public library", "bakery", "observatory", "zoo", "maritime museum",
    "football stadium", "apple orchard", "brewery", "suspension bridge", "opera theatre",
    "railway station", "children's hospital", "music school", "flower market", "lighthouse",
    "vineyard", "regional airport", "bicycle factory", "fishing harbour",
]  # fmt: skip


def fact_articles() -> list[tuple[dict[str, str], str, str]]:
    """Twenty small articles, each with one distinctive fact: (record, question, number)."""
    out = []
    for i, (place, noun) in enumerate(zip(PLACES, PLACES_NOUNS, strict=True)):
        visitors = str(1000 + 37 * i)
        text = (
            f"The new {noun} in {place} opened on Monday after three years of building work. "
            f"Officials in {place} said the {noun} welcomed {visitors} visitors in its first "
            f"week, far more than expected. The mayor of {place} thanked the volunteers."
        )
        record = {"id": f"fact-{i:02d}", "title": f"{place} opens its {noun}", "text": text}
        question = f"How many visitors did the {noun} in {place} welcome in its first week?"
        out.append((record, question, visitors))
    return out


@contextlib.contextmanager
def qa_serve(data_dir: Path, *store_args: str, log_dir: Path) -> Iterator[str]:
    """``qa serve`` in its own process and data folder, on a free port; yields its URL once it
    answers a question. Terminated (then killed) afterwards."""
    port = free_port()
    log = open(log_dir / f"serve-{port}.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [*QA, "serve", "--data-dir", str(data_dir), "--port", str(port), *store_args],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env=env(),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"qa serve exited with {proc.returncode}: see {log.name}")
            with contextlib.suppress(httpx.HTTPError):
                if ask(url, SEED_QUESTION, timeout=30)["citations"]:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"qa serve did not answer within 240 s: see {log.name}")
            time.sleep(0.5)
        yield url
    finally:
        stop(proc, timeout=15)
        log.close()


def ask(url: str, question: str, timeout: float = 60) -> dict[str, Any]:
    response = httpx.post(f"{url}/api/ask", json={"question": question}, timeout=timeout)
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    return answer


@pytest.mark.slow
def test_app_processes_answer_from_one_server_while_another_process_ingests(
    chroma_url: str, tmp_path: Path
) -> None:
    store_args = ("--chroma-url", chroma_url, "--collection", "scale")
    seeded = qa("ingest", "-q", "--data-dir", str(tmp_path / "ingester"), *store_args, str(SEEDS))
    assert seeded.returncode == 0, seeded.stderr

    facts = fact_articles()
    corpus = tmp_path / "facts.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r, _, _ in facts), encoding="utf-8")

    with contextlib.ExitStack() as stack:
        apps = [
            stack.enter_context(qa_serve(tmp_path / f"app{i}", *store_args, log_dir=tmp_path))
            for i in range(2)
        ]
        errors: list[str] = []
        asked_during = 0
        ingest = subprocess.Popen(
            [
                *QA,
                "ingest",
                "-q",
                "--data-dir",
                str(tmp_path / "ingester"),
                *store_args,
                str(corpus),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env(),
        )
        stack.callback(lambda: ingest.poll() is None and ingest.kill())
        n = 0
        while ingest.poll() is None:  # questions to both apps all through the ingest
            url = apps[n % 2]
            question = SEED_QUESTION if n % 3 == 0 else facts[n % len(facts)][1]
            n += 1
            try:
                answer = ask(url, question)
                if question == SEED_QUESTION:
                    assert any(c["article_id"] == SEED_ID for c in answer["citations"]), answer
                asked_during += 1
            except Exception as exc:
                errors.append(f"{url}: {question}: {exc!r}")
        out, err = ingest.communicate(timeout=60)
        assert ingest.returncode == 0, err
        assert "20 new, 0 updated, 0 unchanged, 0 failed" in out
        assert errors == []
        assert asked_during >= 2

        # every app cites every new article soon (its lexical index refreshes in the background)
        pending = {(url, i) for url in apps for i in range(len(facts))}
        deadline = time.monotonic() + 60
        while pending and time.monotonic() < deadline:
            for url, i in sorted(pending):
                record, question, visitors = facts[i]
                answer = ask(url, question)
                ids = [c["article_id"] for c in answer["citations"]]
                if ids and ids[0] == record["id"] and visitors in answer["answer"]:
                    pending.discard((url, i))
            if pending:
                time.sleep(1)
        assert not pending, f"not cited within 60 s: {sorted(pending)}"
        seed = ask(apps[1], SEED_QUESTION)
        assert seed["citations"][0]["article_id"] == SEED_ID

    listed = qa("list", "--json", "--data-dir", str(tmp_path / "lister"), *store_args)
    assert len(json.loads(listed.stdout)) == 21
    for i in range(2):  # each app process kept its own, derived, lexical cache
        assert (tmp_path / f"app{i}" / "lexical" / "scale.npz").is_file()
    for log in tmp_path.glob("serve-*.log"):
        assert "Traceback" not in log.read_text(errors="replace"), log
