"""The HTTP API over real HTTP: ask, stream, filters, validation, CORS, framing, articles.

One server per module (``ui.server.create_server`` run by uvicorn in a thread on a free loopback
port) over a library with the real model: the seed article plus two articles with sources and
dates, so filters have something to choose between.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qa.output import answer_dict
from qa.service import Library
from qa.settings import Settings
from tests.conftest import SEED_ARTICLE
from tests.fakes import BagOfWordsEmbedder
from tests.servers import free_port, stop, wait_http
from vectorstore.embeddings import Embedder

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
SEED_ID = "000_624088a241e45b64"
ALLOWED = "https://news.example"
REFUSED = "https://evil.example"
QUESTION = "Who did Putin order to pull back the forces?"

# Articles with sources and dates, and one whose text tries every trick on a browser.
EXTRA = [
    {
        "id": "nato-2014",
        "title": "NATO sees no sign of Russian pullback",
        "source": "Reuters",
        "url": "https://news.example/nato",
        "published": "2014-05-20",
        "text": "NATO said on Tuesday it had seen no sign that Russia was withdrawing its troops "
        "from the Ukrainian border. The alliance's secretary general said he had not seen any "
        "evidence of a pullout.",
    },
    {
        "id": "bakery",
        "title": "A <script>window.__xss=1</script> bakery <img src=x onerror=window.__xss=2>",
        "source": "Local <b>Gazette</b>",
        "published": "2021-03-07",
        "text": "Hackers wrote <script>window.__xss=1</script> and <img src=x "
        'onerror="window.__xss=2"> into the bakery page. The bakery on Main Street sold 412 '
        "croissants ${window.__xss=3} {{constructor.constructor('window.__xss=4')()}} on "
        "Sunday morning. [click](javascript:window.__xss=5) Nothing else happened.",
    },
]


def make_library(data_dir: Path, embedder: Embedder, **settings: Any) -> Library:
    """A library over the seeds and ``EXTRA``, everything stored under ``data_dir``."""
    extra = data_dir.parent / f"{data_dir.name}-extra.jsonl"
    extra.write_text("".join(json.dumps(a) + "\n" for a in EXTRA), encoding="utf-8")
    library = Library(Settings(data_dir=data_dir, chroma_url=None, **settings), embedder=embedder)
    report = library.ingest([SEEDS, extra], progress=False)
    assert not report.failed and len(report.new) == 3, report
    return library


@contextlib.contextmanager
def running_server(library: Library) -> Iterator[str]:
    """``create_server(library)`` served by uvicorn in a thread; yields its base URL."""
    import uvicorn

    from ui.server import create_server

    port = free_port()
    config = uvicorn.Config(
        create_server(library),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=2,  # the pages' open event streams need not end by themselves
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        assert not thread.is_alive(), "the server did not stop"


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, real_embedder: Embedder) -> Library:
    return make_library(
        tmp_path_factory.mktemp("api") / "data", real_embedder, allowed_origins=[ALLOWED]
    )


@pytest.fixture(scope="module")
def base(library: Library) -> Iterator[str]:
    with running_server(library) as url:
        yield url


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    url: str,
    method: str = "GET",
    body: Any = None,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """One HTTP request; error statuses are returned, not raised."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    headers = {"Content-Type": "application/json"} | (headers or {}) if data else headers or {}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return Reply(r.status, {k.lower(): v for k, v in r.headers.items()}, r.read())
    except urllib.error.HTTPError as e:
        return Reply(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())


def events(body: bytes) -> list[tuple[str, Any]]:
    """Server-sent events as (event, parsed JSON data), in order."""
    out = []
    for block in body.decode("utf-8").split("\n\n"):
        if not block.strip():
            continue
        fields: dict[str, list[str]] = {}
        for line in block.split("\n"):
            name, _, value = line.partition(":")
            fields.setdefault(name, []).append(value.removeprefix(" "))
        out.append((fields["event"][0], json.loads("\n".join(fields["data"]))))
    return out


# -- asking ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_ask_returns_the_json_of_qa_ask(base: str, library: Library) -> None:
    reply = call(f"{base}/api/ask", "POST", {"question": QUESTION})

    assert reply.status == 200, reply.body
    assert reply.headers["content-type"] == "application/json"
    got = reply.json()
    assert got == answer_dict(library.ask(QUESTION))  # exactly what `qa ask --json` prints
    assert got["question"] == QUESTION and not got["abstained"]
    assert "Sergei Shoigu" in got["answer"]
    assert got["citations"], got
    assert {f"[{c['n']}]" for c in got["citations"]} == set(
        m for m in ("[1]", "[2]", "[3]") if m in got["answer"]
    )
    for c in got["citations"]:
        article = call(f"{base}/api/articles/{c['article_id']}").json()
        assert article["text"][c["start"] : c["end"]] == c["quote"]


@pytest.mark.slow
def test_history_is_accepted(base: str) -> None:
    body = {
        "question": QUESTION,
        "history": [
            {"role": "user", "content": "What happened near Ukraine?"},
            {"role": "assistant", "content": "Troops were ordered home. [1]"},
        ],
        "filters": {},
    }
    reply = call(f"{base}/api/ask", "POST", body)
    assert reply.status == 200 and reply.json()["citations"]


@pytest.mark.slow
def test_stream_sends_deltas_then_the_answer(base: str) -> None:
    reply = call(f"{base}/api/ask/stream", "POST", {"question": QUESTION})

    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/event-stream")
    got = events(reply.body)
    kinds = [kind for kind, _ in got]
    assert kinds[-1] == "answer" and set(kinds[:-1]) == {"delta"} and len(kinds) > 3, kinds
    final = got[-1][1]
    assert "".join(data["text"] for _, data in got[:-1]) == final["answer"]
    assert final == call(f"{base}/api/ask", "POST", {"question": QUESTION}).json()
    assert final["citations"] and "Sergei Shoigu" in final["answer"]


@pytest.mark.slow
def test_stream_validates_before_streaming(base: str) -> None:
    reply = call(f"{base}/api/ask/stream", "POST", {"question": " "})
    assert reply.status == 422
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {"detail": "question: Please type a question."}


# -- filters -----------------------------------------------------------------------------------


def ask_with(base: str, question: str, **filters: Any) -> dict[str, Any]:
    reply = call(f"{base}/api/ask", "POST", {"question": question, "filters": filters})
    assert reply.status == 200, reply.body
    result: dict[str, Any] = reply.json()
    return result


@pytest.mark.slow
def test_filters_restrict_the_articles(base: str) -> None:
    question = "Did NATO see any sign of a Russian pullout?"
    everything = ask_with(base, question)
    assert {c["article_id"] for c in everything["citations"]} >= {"nato-2014"}, everything

    reuters = ask_with(base, question, sources=["Reuters"])
    assert reuters["citations"] and {c["source"] for c in reuters["citations"]} == {"Reuters"}

    seed_only = ask_with(base, question, article_ids=[SEED_ID])
    assert {c["article_id"] for c in seed_only["citations"]} == {SEED_ID}

    in_may = ask_with(base, question, since="2014-05-01", until="2014-05-31")
    assert {c["article_id"] for c in in_may["citations"]} == {"nato-2014"}

    for nothing in ({"sources": ["No Such Paper"]}, {"until": "2000-01-01"}):
        none = ask_with(base, question, **nothing)
        assert none["abstained"] and none["citations"] == [], nothing
        assert none["answer"] == "The articles don't say."


# -- validation --------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"question": ""}, 422, "question: Please type a question."),
        ({"question": " \n\t "}, 422, "question: Please type a question."),
        ({"question": "why " * 600}, 422, "question: The question is too long (2,399 characters"),
        ({}, 422, "question: required"),
        ({"question": 42}, 422, "question: Input should be a valid string"),
        ([QUESTION], 422, 'the body must be a JSON object like {"question": "..."}'),
        ({"question": QUESTION, "colour": "red"}, 422, "unknown key 'colour' (the keys are: "),
        (
            {"question": QUESTION, "filters": {"source": ["BBC"]}},
            422,
            "unknown key 'filters.source' (the keys are: sources, article_ids, since, until)",
        ),
        (
            {"question": QUESTION, "filters": {"since": "2014-13-01"}},
            422,
            "filters.since: '2014-13-01' is not a date like 2014-05-19",
        ),
        (
            {"question": QUESTION, "filters": {"until": "yesterday"}},
            422,
            "filters.until: 'yesterday' is not a date like 2014-05-19",
        ),
        (
            {"question": QUESTION, "filters": {"since": "2014-06-01", "until": "2014-05-01"}},
            422,
            "filters: since (2014-06-01) is after until (2014-05-01): no article can match",
        ),
        (
            {"question": QUESTION, "filters": {"sources": "Reuters"}},
            422,
            "filters.sources: Input should be a valid list",
        ),
        (
            {"question": QUESTION, "history": [{"role": "system", "content": "x"}]},
            422,
            "history[0].role: Input should be 'user' or 'assistant'",
        ),
    ],
)
def test_bad_requests_get_a_clear_message(base: str, body: Any, status: int, detail: str) -> None:
    for path in ("/api/ask", "/api/ask/stream"):
        reply = call(f"{base}{path}", "POST", body)
        assert reply.status == status, (path, reply.body)
        assert reply.headers["content-type"] == "application/json"
        got = reply.json()
        assert list(got) == ["detail"] and isinstance(got["detail"], str)
        assert got["detail"].startswith(detail), got


@pytest.mark.slow
@pytest.mark.parametrize("raw", [b'{"question": ', b"question=hi", b"\xff\xfe", b""])
def test_bad_json_is_a_400(base: str, raw: bytes) -> None:
    reply = call(f"{base}/api/ask", "POST", raw=raw)
    if raw == b"":  # no body at all: nothing is missing but the question
        assert reply.status == 422 and reply.json()["detail"].startswith("body: required")
        return
    assert reply.status == 400, reply.body
    assert reply.json()["detail"].startswith("the body is not valid JSON")


# -- articles ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_articles_are_listed_and_read(base: str, library: Library) -> None:
    listed = call(f"{base}/api/articles")
    assert listed.status == 200
    rows = listed.json()
    assert [r["id"] for r in rows] == ["000_624088a241e45b64", "bakery", "nato-2014"]
    nato = rows[2]
    assert nato == {
        "id": "nato-2014",
        "title": "NATO sees no sign of Russian pullback",
        "source": "Reuters",
        "url": "https://news.example/nato",
        "published": "2014-05-20",
        "chunks": nato["chunks"],
        "chars": len(EXTRA[0]["text"]),
    }
    assert nato["chunks"] >= 1

    seed = call(f"{base}/api/articles/{SEED_ID}")
    assert seed.status == 200
    article = library.article(SEED_ID)
    assert article is not None
    assert seed.json() == {
        "id": SEED_ID,
        "title": article.title,
        "source": None,
        "url": None,
        "published": None,
        "text": article.text,
    }

    missing = call(f"{base}/api/articles/no-such-article")
    assert missing.status == 404
    assert missing.json() == {"detail": "no such article: 'no-such-article'"}


# -- browsers on other sites: CORS and framing -------------------------------------------------


@pytest.mark.slow
def test_cors_allows_the_listed_origin_only(base: str) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    allowed = call(f"{base}/api/ask", "OPTIONS", headers={"Origin": ALLOWED, **preflight})
    assert allowed.status == 200
    assert allowed.headers["access-control-allow-origin"] == ALLOWED
    assert "POST" in allowed.headers["access-control-allow-methods"]

    refused = call(f"{base}/api/ask", "OPTIONS", headers={"Origin": REFUSED, **preflight})
    assert refused.status == 400
    assert "access-control-allow-origin" not in refused.headers

    for path in ("/api/articles", "/config", "/embed/config", "/gradio_api/info"):
        ok = call(f"{base}{path}", headers={"Origin": ALLOWED})
        assert ok.status == 200, path
        assert ok.headers["access-control-allow-origin"] == ALLOWED, path
        no = call(f"{base}{path}", headers={"Origin": REFUSED})
        assert "access-control-allow-origin" not in no.headers, path
        # Gradio's own (looser) policy for localhost origins is replaced by ours too.
        local = call(f"{base}{path}", headers={"Origin": "http://localhost:9999"})
        assert "access-control-allow-origin" not in local.headers, path

    posted = call(f"{base}/api/ask", "POST", {"question": QUESTION}, headers={"Origin": ALLOWED})
    assert posted.status == 200
    assert posted.headers["access-control-allow-origin"] == ALLOWED


@pytest.mark.slow
def test_only_the_listed_origins_may_frame_the_pages(base: str) -> None:
    for path in ("/", "/embed/", "/embed-example", "/api/articles", "/docs"):
        reply = call(f"{base}{path}")
        assert reply.status == 200, path
        assert reply.headers["content-security-policy"] == f"frame-ancestors 'self' {ALLOWED}"


@pytest.mark.slow
def test_defaults_same_origin_only_and_the_upload_limit(
    tmp_path: Path, real_embedder: Embedder
) -> None:
    library = Library(
        Settings(data_dir=tmp_path / "data", upload_max_mb=0.001), embedder=real_embedder
    )
    with running_server(library) as url:
        page = call(f"{url}/embed/", headers={"Origin": ALLOWED})
        assert page.headers["content-security-policy"] == "frame-ancestors 'self'"
        assert "access-control-allow-origin" not in page.headers
        empty = call(f"{url}/api/articles")
        assert empty.status == 200 and empty.json() == []
        # The browser's uploads stop at the limit (1,000 bytes here) before reaching the app.
        assert upload(url, b"x" * 900).status == 200
        too_big = upload(url, b"x" * 1500)
        assert too_big.status == 413
        assert b"maximum allowed size of 1000 bytes" in too_big.body


def upload(url: str, content: bytes) -> Reply:
    """Posts one file to Gradio's upload route, as the chat's upload box does."""
    boundary = "qa-test-boundary"
    body = (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="files"; filename="a.txt"\r\n'
            "Content-Type: text/plain\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return call(
        f"{url}/gradio_api/upload",
        "POST",
        raw=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )


# -- what else the server serves ---------------------------------------------------------------


@pytest.mark.slow
def test_docs_and_assets_are_served_locally(base: str) -> None:
    docs = call(f"{base}/docs")
    assert docs.status == 200
    page = docs.body.decode()
    assert "/static-qa/swagger-ui-bundle.js" in page and "/static-qa/swagger-ui.css" in page
    assert "cdn" not in page.lower() and "https://" not in page
    assert '"validatorUrl": null' in page
    for asset in ("/static-qa/swagger-ui-bundle.js", "/static-qa/swagger-ui.css"):
        assert call(f"{base}{asset}").status == 200
    assert call(f"{base}/static-qa/..%2Fserver.py").status == 404
    assert call(f"{base}/static-qa/app.py").status == 404

    schema = call(f"{base}/openapi.json").json()
    assert {"/api/ask", "/api/ask/stream", "/api/articles", "/api/articles/{article_id}"} <= set(
        schema["paths"]
    )

    js = call(f"{base}/gradio.js")
    assert js.status == 200 and js.headers["content-type"].startswith("text/javascript")
    assert b"import(" in js.body
    example = call(f"{base}/embed-example").body.decode()
    assert '<script type="module" src="/gradio.js"></script>' in example
    assert "<gradio-app" in example and "<iframe" in example
    assert call(f"{base}/embed").status == 200  # redirected to /embed/


@pytest.mark.slow
def test_qa_serve_runs_it_all_in_one_process(tmp_path: Path) -> None:
    """The real command: chat, embed view, API and docs from one `qa serve` process."""
    port = free_port()
    qa = Path(sys.executable).with_name("qa")
    env = {**os.environ, "QA_ALLOWED_ORIGINS": "", "GRADIO_ANALYTICS_ENABLED": "False"}
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [
            *(str(qa), "serve", "--port", str(port), "--data-dir", str(tmp_path / "data")),
            *("--allow-origin", ALLOWED, "--allow-origin", "http://127.0.0.1:9/"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/api/articles", timeout=120, proc=proc)
        for path in ("/", "/embed/", "/docs", "/gradio.js", "/embed-example"):
            reply = call(f"{url}{path}")
            assert reply.status == 200, path
            assert reply.headers["content-security-policy"] == (
                f"frame-ancestors 'self' {ALLOWED} http://127.0.0.1:9"
            )
        assert call(f"{url}/api/articles").json() == []
        empty = call(f"{url}/api/ask", "POST", {"question": "Anything?"}).json()
        assert empty["abstained"] and empty["citations"] == []
    finally:
        stop(proc)
        log.close()
    printed = (tmp_path / "serve.log").read_text(encoding="utf-8", errors="replace")
    assert f"Serving the chat on {url}/" in printed
    assert "Traceback" not in printed


def test_bad_origins_are_refused_by_the_command(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from qa.cli import cli

    result = CliRunner().invoke(
        cli, ["serve", "--data-dir", str(tmp_path), "--allow-origin", "news.example/path"]
    )
    assert result.exit_code == 2
    assert "'news.example/path' is not an origin like https://news.example" in result.output


# -- streaming with an LLM ---------------------------------------------------------------------


@pytest.mark.slow
def test_stream_sends_the_models_words_as_they_come_then_the_verified_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.openai_fake import Reply as ModelReply
    from tests.openai_fake import fake_openai
    from tests.test_llm import GOOD_NATO, KEY, KEY_ENV

    monkeypatch.setenv(KEY_ENV, KEY)
    gate = threading.Event()  # the model sends the rest once the client has the first words
    with fake_openai() as model:
        library = Library(
            Settings(
                data_dir=tmp_path / "data",
                llm_base_url=model.url,
                llm_model="fake-model",
                llm_api_key_env=KEY_ENV,
                llm_timeout=10.0,
                min_score=0.0,
            ),
            embedder=BagOfWordsEmbedder(),
        )
        library.ingest([SEED_ARTICLE], progress=False)
        pieces = [GOOD_NATO[:21], GOOD_NATO[21:], " [1", "]. Also [99]."]
        model.script(ModelReply(pieces=pieces, gate=gate))
        with running_server(library) as url:
            request = urllib.request.Request(
                f"{url}/api/ask/stream",
                data=json.dumps({"question": "What did NATO say about the withdrawal?"}).encode(),
                headers={"Content-Type": "application/json"},
            )
            got: list[tuple[str, Any]] = []
            with urllib.request.urlopen(request, timeout=30) as response:
                block = b""
                for line in response:
                    block += line
                    if line.strip():
                        continue
                    got.extend(events(block))
                    block = b""
                    if got[-1][0] == "delta":
                        gate.set()
    first_kind, first = got[0]
    assert first_kind == "delta" and first["text"] == GOOD_NATO[:21]  # before the rest existed
    kinds = [kind for kind, _ in got]
    assert kinds[-1] == "answer" and set(kinds[:-1]) == {"delta"}
    provisional = "".join(d["text"] for _, d in got[:-1])
    assert provisional.startswith(f"{GOOD_NATO} [1]. Also")  # as written (markers renumbered)
    final = got[-1][1]
    assert final["answerer"] == "llm"
    assert len(final["citations"]) == 1  # verified: the phantom marker is gone
    assert "[99]" not in final["answer"] and "[2]" not in final["answer"]
    assert final["answer"].startswith(GOOD_NATO)


@pytest.mark.slow
def test_a_stream_given_up_by_its_client_frees_its_turn(fake_library: Library) -> None:
    fake_library.settings.max_concurrent_questions = 1
    fake_library.ingest([SEED_ARTICLE], progress=False)
    with running_server(fake_library) as url:
        for _ in range(3):  # each stream read only in part, then dropped
            request = urllib.request.Request(
                f"{url}/api/ask/stream",
                data=json.dumps({"question": QUESTION}).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                response.readline()
        # the one turn is free again: a whole answer comes
        assert call(f"{url}/api/ask", "POST", {"question": QUESTION}).status == 200
