"""The chat UI: rendering an Answer as HTML, the real Gradio app over HTTP, and its errors."""

from __future__ import annotations

import html
import re
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qa.service import Library
from qa.settings import Settings
from qa.types import Answer, Citation
from tests.servers import free_port
from ui.app import API_NAME, build_app, reply
from ui.render import answer_html, escape
from vectorstore.types import ArticleInfo

SEEDS = Path(__file__).resolve().parent.parent / "seeds"

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
MD_LINK = "[click](javascript:alert(1))"
BOLD = "**bold**"


def cite(n: int, text: str, quote: str, context_start: int = 0, **info: Any) -> Citation:
    """A citation of ``quote`` (found in ``text``) with ``text[context_start:]`` as context."""
    start = text.index(quote, context_start)
    article = ArticleInfo(info.pop("id", f"a{n}"), info.pop("title", f"Article {n}"), **info)
    return Citation(
        n=n,
        article=article,
        quote=quote,
        start=start,
        end=start + len(quote),
        score=0.75,
        context=text[context_start:],
        context_start=context_start,
    )


def shown(fragment: str) -> str:
    """The text a browser shows for an HTML fragment without tags (line breaks as newlines)."""
    return html.unescape(re.sub(r"<(?!br>)[^>]*>", "", fragment).replace("<br>", "\n"))


def blockquotes(page: str) -> list[str]:
    return re.findall(r"<blockquote>(.*?)</blockquote>", page, flags=re.S)


# -- rendering ---------------------------------------------------------------------------------


def test_markers_link_to_their_citation() -> None:
    text_a = "Putin ordered troops home. Nothing else happened."
    text_b = "Shoigu was told to pull back the forces. The Kremlin said so."
    answer = Answer(
        "q",
        "Putin ordered troops home. [1] Shoigu was told to pull back the forces. [2]",
        (cite(1, text_a, "Putin ordered troops home."), cite(2, text_b, "Shoigu was told")),
    )
    page = answer_html(answer, prefix="p")

    assert '<a class="qa-marker" href="#p-1">[1]</a>' in page
    assert '<a class="qa-marker" href="#p-2">[2]</a>' in page
    hrefs = re.findall(r'class="qa-marker" href="#([^"]+)"', page)
    ids = re.findall(r'<div class="qa-citation" id="([^"]+)"', page)
    assert hrefs == ids == ["p-1", "p-2"]
    assert page.startswith('<div class="qa-answer">') and page.endswith("</div>")
    assert '<div class="qa-sources"><p><b>Sources</b></p>' in page
    assert page.index("qa-sources") > page.index("qa-marker")  # answer first, then sources


def test_quote_is_marked_inside_its_context() -> None:
    text = "First sentence here. Mr Putin ordered Sergei Shoigu to pull back. Last one."
    c = cite(1, text, "Mr Putin ordered Sergei Shoigu to pull back.", context_start=6)
    page = answer_html(Answer("q", f"{c.quote} [1]", (c,)))

    (quote_html,) = blockquotes(page)
    before, rest = quote_html.split("<mark>")
    marked, after = rest.split("</mark>")
    assert shown(before) == "sentence here. "
    assert shown(marked) == "Mr Putin ordered Sergei Shoigu to pull back."
    assert shown(after) == " Last one."
    assert shown(quote_html) == c.context


def test_hostile_article_is_shown_literally() -> None:
    hostile = f"{SCRIPT} {IMG} {MD_LINK} {BOLD} _em_ `code` # heading"
    text = f"Intro line. The quote {hostile} ends here. Outro."
    quote = f"The quote {hostile} ends here."
    c = cite(1, text, quote, title=f"Title {hostile}", source=f"Src {BOLD}", published="2014-05-19")
    page = answer_html(Answer("q", f"{quote} [1]", (c,)))

    # Nothing interpretable as HTML or Markdown is left ...
    lowered = page.lower()
    for raw in ("<script", "<img", "javascript:", "onerror=alert(1)>", "](", "**", "`", "_em_"):
        assert raw not in lowered, raw
    assert "[click]" not in page
    # ... because everything is escaped ...
    assert "&lt;script&gt;alert&#40;1&#41;&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert&#40;1&#41;&gt;" in page
    assert "&#91;click&#93;&#40;javascript&#58;alert&#40;1&#41;&#41;" in page
    assert "&#42;&#42;bold&#42;&#42;" in page
    # ... and still reads exactly as written: in the answer, the title and the quote.
    assert shown(page.split("</p>")[0]) == f"{quote} [1]"
    assert f"Title {hostile}" in shown(page)
    assert f"Src {BOLD} · 2014-05-19" in shown(page)
    (quote_html,) = blockquotes(page)
    assert shown(quote_html) == text
    assert re.findall(r"<(\w+)", page) == [  # the only tags are the renderer's own
        "div", "p", "a", "div", "p", "b", "div", "p", "b", "small", "blockquote", "mark",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "JavaScript:alert(1)", " javascript:alert(1)", "data:text/html,x"],
)
def test_unsafe_url_is_not_a_link(url: str) -> None:
    c = cite(1, "Some text.", "Some text.", url=url)
    page = answer_html(Answer("q", "Some text. [1]", (c,)))

    assert ">link</a>" not in page
    assert "href" not in page.replace('href="#cite-1"', "")
    assert "javascript:" not in page.lower()


def test_web_url_is_a_safe_link() -> None:
    url = 'https://news.example/a?b=1&c="><script>x</script>'
    c = cite(1, "Some text.", "Some text.", url=url)
    page = answer_html(Answer("q", "Some text. [1]", (c,)))

    href = html.escape(url, quote=True)
    assert f'<a href="{href}" target="_blank" rel="noopener noreferrer">link</a>' in page
    assert "<script" not in page


def test_abstained_answer_has_no_sources() -> None:
    page = answer_html(Answer("q", "The articles don't say.", abstained=True))

    assert "qa-sources" not in page and "Sources" not in page
    assert "<a " not in page and "<blockquote>" not in page
    assert shown(page) == "The articles don't say."


def test_apostrophes_and_quotes_are_not_escaped_twice() -> None:
    text = "Putin's \"planned spring drills\" & NATO's <doubts>."
    assert html.unescape(escape(text)) == text  # once is enough
    assert "&&" not in escape(text)


def test_paragraph_breaks_do_not_split_the_reply() -> None:
    """A blank line would end the HTML block the chat's Markdown renders the reply as."""
    text = "First paragraph.\n\n    Indented second paragraph.\r\nThird line."
    c = cite(1, text, "Indented second paragraph.")
    page = answer_html(Answer("q", "Indented second paragraph. [1]", (c,)))

    assert "\n" not in page and "\r" not in page
    (quote_html,) = blockquotes(page)
    assert shown(quote_html) == text.replace("\r\n", "\n")


@pytest.mark.parametrize(
    "text",
    ["", "plain words", "a\\b `c` *d* _e_ {f} [g] (h) #i +j -k .l !m |n ~o >p :q", "é 😀 \t x"],
)
def test_escape_round_trips(text: str) -> None:
    escaped = escape(text)
    assert html.unescape(escaped) == text
    assert not set(escaped) & set("\\`*_{}[]()+-.!|~<>:'\"")


# -- the chat over HTTP ------------------------------------------------------------------------

_remote: list[object] | None = None  # non-loopback network use, recorded while not None
_LOCAL = {"127.0.0.1", "localhost", "::1", "0.0.0.0", None}


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _remote is None:
        return
    if event == "socket.getaddrinfo":
        host = args[0].decode() if isinstance(args[0], bytes) else args[0]
        if host not in _LOCAL:
            _remote.append(("getaddrinfo", host))
    elif event == "socket.connect":
        address = args[1]
        if isinstance(address, tuple) and address[0] not in _LOCAL:
            _remote.append(("connect", address))


_hook_installed = False


def watch_network() -> list[object]:
    """Starts recording every attempt to reach a host other than this one."""
    global _remote, _hook_installed
    if not _hook_installed:
        sys.addaudithook(_audit)  # audit hooks cannot be removed; it is idle when _remote is None
        _hook_installed = True
    _remote = []
    return _remote


def unwatch_network() -> None:
    global _remote
    _remote = None


@pytest.fixture(scope="module")
def chat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str, list[object]]]:
    """The real app over the seed articles, served on loopback; yields (client, url, remote)."""
    with pytest.MonkeyPatch.context() as mp:
        # gradio_client 2 sends telemetry unless this variable is "False", even when it is
        # given analytics_enabled=False; gradio reads it too (version check, analytics).
        mp.setenv("GRADIO_ANALYTICS_ENABLED", "False")
        mp.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        remote = watch_network()
        library = Library(Settings(data_dir=tmp_path_factory.mktemp("ui-data"), chroma_url=None))
        report = library.ingest([SEEDS], progress=False)
        assert report.new and not report.failed
        app = build_app(library)
        try:
            port = free_port()
            app.queue().launch(
                server_name="127.0.0.1",
                server_port=port,
                prevent_thread_lock=True,
                share=False,
                quiet=True,
                ssr_mode=False,
            )
            url = f"http://127.0.0.1:{port}/"
            from gradio_client import Client

            client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
            try:
                assert client.analytics_enabled is False
                yield client, url, remote
            finally:
                client.close()
        finally:
            app.close()
            unwatch_network()


def ask(client: Any, message: str) -> str:
    result = client.predict(message, api_name=f"/{API_NAME}")
    assert isinstance(result, str), result
    return result


@pytest.mark.slow
def test_chat_answers_with_the_cited_passage(chat: tuple[Any, str, list[object]]) -> None:
    client, url, remote = chat
    with urllib.request.urlopen(url, timeout=10) as page:
        assert page.status == 200
    assert (
        f"/{API_NAME}" in client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    )

    result = ask(client, "Who did Putin order to pull back the forces?")

    answer = result.split('<div class="qa-sources">')[0]
    assert "Sergei Shoigu" in answer
    marker = re.search(r'<a class="qa-marker" href="#([\w-]+-1)">\[1\]</a>', answer)
    assert marker, answer
    assert '<div class="qa-sources"><p><b>Sources</b></p>' in result
    assert f'<div class="qa-citation" id="{marker.group(1)}">' in result
    marked = re.findall(r"<mark>(.*?)</mark>", result)
    assert any("Sergei Shoigu" in html.unescape(m) for m in marked), marked
    assert "\n\n" not in result
    assert remote == []


@pytest.mark.slow
@pytest.mark.parametrize("message", ["", "   ", " \n\t "])
def test_chat_asks_for_a_question(chat: tuple[Any, str, list[object]], message: str) -> None:
    client, _, remote = chat
    assert ask(client, message) == "<p><b>Sorry:</b> Please type a question&#46;</p>"
    assert remote == []


@pytest.mark.slow
def test_chat_abstains_on_nonsense(chat: tuple[Any, str, list[object]]) -> None:
    client, _, remote = chat
    result = ask(client, "xyzzy plugh frobnicate quux glorp?")

    assert "qa-sources" not in result and "<mark>" not in result
    assert shown(result) == "The articles don't say."
    assert remote == []


# -- errors ------------------------------------------------------------------------------------


def test_reply_reports_an_unreachable_store(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    library = Library(Settings(data_dir=tmp_path, chroma_url=url))

    result = reply(library, "Who did Putin order to pull back the forces?")

    assert result.startswith("<p><b>Sorry:</b> ") and result.endswith("</p>")
    assert f"cannot reach the Chroma server at {url}" in shown(result)
    assert "Traceback" not in result
    # Questions that cannot be asked are refused before the store is needed.
    assert "too long" in reply(library, "why " * 1000)
    assert "Please type a question." in shown(reply(library, "\x00 \x1b"))


def test_reply_reports_a_bad_store_url(tmp_path: Path) -> None:
    library = Library(Settings(data_dir=tmp_path, chroma_url="ftp://<b>x</b>"))

    result = reply(library, "Who?")

    assert result.startswith("<p><b>Sorry:</b> chroma URL must look like")
    assert "<b>x</b>" not in result  # the message is escaped like any other text
    assert "ftp://<b>x</b>" in shown(result)
