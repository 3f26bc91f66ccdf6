"""The access token over real HTTP: refused without it, let in with a bearer token or the cookie
that ``?token=`` sets, and never written to a log.

One server per module (``running_server`` from ``tests.test_api``) over the seeds and that
module's extra articles, embedded by the bag-of-words fake: this is about access, not answers.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from qa.service import Library
from qa.settings import Settings
from tests.fakes import BagOfWordsEmbedder
from tests.servers import free_port, stop
from tests.test_api import QUESTION, Reply, make_library, running_server
from ui.auth import COOKIE

TOKEN = "s3cret-Token-for-tests-0123456789"
WRONG = "wrong-Token-for-tests-0123456789x"
ORIGIN = "https://news.example"


def fetch(
    base: str,
    path: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: object = None,
) -> Reply:
    """One request, redirects not followed; error statuses are returned, not raised."""
    url = urlsplit(base)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=60)
    data = None if body is None else json.dumps(body).encode()
    headers = dict(headers or {})
    if data is not None:
        headers["Content-Type"] = "application/json"
    try:
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        got = {k.lower(): v for k, v in response.getheaders()}
        return Reply(response.status, got, response.read())
    finally:
        connection.close()


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Records(logging.Handler):
    """Every log record, formatted, from the moment it is attached."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        self.lines.append(f"{record.name}: {text}")


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Library:
    data = tmp_path_factory.mktemp("auth") / "data"
    return make_library(data, BagOfWordsEmbedder(), access_token=TOKEN, allowed_origins=[ORIGIN])


@pytest.fixture(scope="module")
def served(library: Library) -> Iterator[tuple[str, Records]]:
    """The server's base URL, and every log record of this process while it runs, the access
    log included (``running_server`` starts uvicorn at level warning; raised here)."""
    records = Records()
    names = ["", "uvicorn", "uvicorn.access", "uvicorn.error"]
    loggers = [logging.getLogger(name) for name in names]
    with running_server(library) as base:
        levels = [logger.level for logger in loggers]
        for logger in loggers:
            logger.addHandler(records)
            logger.setLevel(logging.DEBUG)
        try:
            yield base, records
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.removeHandler(records)
                logger.setLevel(level)


@pytest.fixture(scope="module")
def base(served: tuple[str, Records]) -> str:
    return served[0]


# -- refused -----------------------------------------------------------------------------------

SCRIPTS = [  # the API, its schema and Gradio's own routes: refused with JSON
    ("GET", "/api/articles"),
    ("POST", "/api/ask"),
    ("POST", "/api/ask/stream"),
    ("GET", "/openapi.json"),
    ("GET", "/config"),
    ("GET", "/gradio_api/info"),
    ("POST", "/gradio_api/queue/join"),
    ("POST", "/gradio_api/upload"),
    ("GET", "/embed/config"),
    ("GET", "/embed/gradio_api/info"),
]
PAGES = ["/", "/embed/", "/docs", "/embed-example", "/gradio.js", "/static-qa/swagger-ui.css"]


@pytest.mark.slow
@pytest.mark.parametrize(("method", "path"), SCRIPTS)
@pytest.mark.parametrize("credentials", ["none", "wrong bearer", "wrong cookie"])
def test_scripts_without_the_token_get_a_json_401(
    base: str, method: str, path: str, credentials: str
) -> None:
    headers = {
        "none": {},
        "wrong bearer": bearer(WRONG),
        "wrong cookie": {"Cookie": f"{COOKIE}=0123abcd"},
    }[credentials]
    body = {"question": QUESTION} if method == "POST" else None

    reply = fetch(base, path, method, headers, body)

    assert reply.status == 401, (path, reply.body)
    assert reply.headers["content-type"] == "application/json"
    assert reply.headers["www-authenticate"].startswith('Bearer realm="qa-articles"')
    assert ('error="invalid_token"' in reply.headers["www-authenticate"]) == (
        credentials == "wrong bearer"
    )
    got = reply.json()
    assert got["error"] == "unauthorized" and "Authorization: Bearer" in got["detail"]
    assert TOKEN.encode() not in reply.body


@pytest.mark.slow
@pytest.mark.parametrize("path", PAGES)
def test_pages_without_the_token_say_how_to_get_in(base: str, path: str) -> None:
    reply = fetch(base, path, headers={"Accept": "text/html,*/*;q=0.8"})

    assert reply.status == 401, path
    assert reply.headers["content-type"] == "text/html; charset=utf-8"
    page = reply.body.decode()
    assert "?token=" in page and '<input type="password" name="token"' in page
    assert "set-cookie" not in reply.headers
    # The refusal is still framed by our policy only.
    assert reply.headers["content-security-policy"] == f"frame-ancestors 'self' {ORIGIN}"


@pytest.mark.slow
def test_a_wrong_token_in_the_address_sets_no_cookie(base: str) -> None:
    reply = fetch(base, f"/?token={WRONG}")

    assert reply.status == 401
    assert "set-cookie" not in reply.headers and "location" not in reply.headers
    assert b"wrong" in reply.body and WRONG.encode() not in reply.body


# -- let in ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_bearer_token_opens_everything(base: str) -> None:
    for path in ("/", "/embed/", "/docs", "/openapi.json", "/config", "/gradio_api/info"):
        assert fetch(base, path, headers=bearer()).status == 200, path
    articles = fetch(base, "/api/articles", headers=bearer())
    assert articles.status == 200 and len(articles.json()) == 3
    answer = fetch(base, "/api/ask", "POST", bearer(), {"question": QUESTION})
    assert answer.status == 200 and answer.json()["question"] == QUESTION
    stream = fetch(base, "/api/ask/stream", "POST", bearer(), {"question": QUESTION})
    assert stream.status == 200 and b"event: answer" in stream.body
    # The scheme's case does not matter (RFC 7235).
    assert fetch(base, "/api/articles", headers={"Authorization": f"bearer {TOKEN}"}).status == 200


@pytest.mark.slow
def test_the_token_in_the_address_sets_a_cookie_and_is_taken_out(base: str) -> None:
    reply = fetch(base, f"/embed/?lang=en&token={TOKEN}&x=%20y")

    assert reply.status == 303
    assert reply.headers["location"] == "/embed/?lang=en&x=%20y"
    cookie = reply.headers["set-cookie"]
    attributes = [a.strip() for a in cookie.split(";")]
    name, _, value = attributes[0].partition("=")
    assert name == COOKIE and value and TOKEN not in cookie
    assert {"HttpOnly", "SameSite=Lax", "Path=/"} <= set(attributes)
    assert "Secure" not in attributes  # plain http on loopback

    jar = {"Cookie": f"{COOKIE}={value}"}
    page = fetch(base, "/", headers=jar)
    assert page.status == 200 and b"gradio" in page.body
    config = fetch(base, "/config", headers=jar)
    assert config.status == 200 and "components" in config.json()
    assert fetch(base, "/embed/config", headers=jar).status == 200
    assert fetch(base, "/api/articles", headers=jar).status == 200

    alone = fetch(base, f"/?token={TOKEN}")
    assert alone.status == 303 and alone.headers["location"] == "/"
    # Never a redirect to another host, whatever the path looks like.
    assert fetch(base, f"//evil.example/?token={TOKEN}").headers["location"].startswith("/e")


@pytest.mark.slow
def test_cors_preflight_needs_no_token(base: str) -> None:
    preflight = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    reply = fetch(base, "/api/ask", "OPTIONS", preflight)

    assert reply.status == 200
    assert reply.headers["access-control-allow-origin"] == ORIGIN
    assert "authorization" in reply.headers["access-control-allow-headers"].lower()
    # A refusal is readable by the listed origin's script, so it can ask for the token.
    refused = fetch(base, "/api/articles", headers={"Origin": ORIGIN})
    assert refused.status == 401 and refused.headers["access-control-allow-origin"] == ORIGIN


# -- secrets -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_token_never_reaches_the_log(served: tuple[str, Records]) -> None:
    base, records = served
    del records.lines[:]
    fetch(base, f"/?token={TOKEN}")
    fetch(base, f"/embed/?a=1&token={TOKEN}")
    fetch(base, f"/?token={TOKEN[:-1]}")  # a near miss is a secret too
    fetch(base, "/api/articles", headers=bearer())
    fetch(base, "/api/articles", headers=bearer(WRONG))
    fetch(base, "/api/ask", "POST", bearer(), {"question": QUESTION})
    deadline = time.monotonic() + 5
    while len(records.lines) < 6 and time.monotonic() < deadline:
        time.sleep(0.05)

    log = "\n".join(records.lines)
    # The access log saw every request (so this checks something) but not one token.
    assert log.count("uvicorn.access") >= 6, log
    assert '"GET /embed/?a=1 HTTP/1.1" 303' in log, log
    assert TOKEN not in log and TOKEN[:-1] not in log and WRONG not in log


def test_the_token_is_a_secret_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path).access_token is None  # off unless asked for

    monkeypatch.setenv("QA_ACCESS_TOKEN", TOKEN)
    settings = Settings(data_dir=tmp_path)
    assert settings.access_token is not None
    assert settings.access_token.get_secret_value() == TOKEN
    assert TOKEN not in repr(settings) and TOKEN not in str(settings.model_dump())

    monkeypatch.setenv("QA_ACCESS_TOKEN", "short secret")
    with pytest.raises(ValueError) as refused:
        Settings(data_dir=tmp_path)
    assert "at least 16 printable ASCII characters" in str(refused.value)
    assert "short secret" not in str(refused.value)


@pytest.mark.slow
def test_qa_serve_reads_the_token_from_a_file(tmp_path: Path) -> None:
    """The real command: the token from --access-token-file, never on the command line."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n", encoding="utf-8")
    port = free_port()
    qa = Path(sys.executable).with_name("qa")
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    env |= {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    command = [str(qa), "serve", "--port", str(port), "--data-dir", str(tmp_path / "data")]
    command += ["--access-token-file", str(token_file)]
    base = f"http://127.0.0.1:{port}"
    with (tmp_path / "serve.log").open("wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + 120
            while True:
                assert proc.poll() is None, "qa serve exited"
                assert time.monotonic() < deadline, "qa serve did not answer"
                try:
                    refused = fetch(base, "/api/articles")
                    break
                except OSError:
                    time.sleep(0.2)
            assert refused.status == 401
            assert fetch(base, "/api/articles", headers=bearer()).status == 200
            assert fetch(base, f"/?token={TOKEN}").status == 303
        finally:
            stop(proc)
    printed = (tmp_path / "serve.log").read_text(encoding="utf-8", errors="replace")
    assert "Serving the chat on" in printed and TOKEN not in printed
    assert TOKEN not in " ".join(command)
