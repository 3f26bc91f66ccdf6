"""The chat UI: rendering an Answer as HTML, the real Gradio app over HTTP, and its errors."""

from __future__ import annotations

import html
import itertools
import logging
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from qa.service import Library
from qa.settings import Settings
from qa.types import Answer, AnswerSentence, Citation
from tests.conftest import SEED_ARTICLE
from tests.fakes import BagOfWordsEmbedder
from tests.openai_fake import FakeOpenAI, Reply, fake_openai
from tests.servers import free_port
from tests.test_api import running_server
from tests.test_llm import GOOD_NATO, KEY, KEY_ENV
from ui.app import (
    API_NAME,
    SORRY,
    THINKING,
    chat_turn,
    example_questions,
    question_from_title,
    reply,
    sorry,
)
from ui.filters import describe, make_filters
from ui.render import (
    PROVISIONAL_STATUS,
    UNSUPPORTED_LABEL,
    UNSUPPORTED_TITLE,
    Turn,
    answer_body_html,
    answer_html,
    article_html,
    deltas,
    escape,
    ingest_report_html,
    provisional_html,
    sources_html,
    without_reader_aids,
)
from ui.uploads import ingest_uploads, safe_name
from vectorstore.errors import QAError
from vectorstore.ingest import IngestReport
from vectorstore.loaders import LoadFailure
from vectorstore.types import Article, ArticleInfo, Filters

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


def test_short_answer_stands_first_with_its_marker() -> None:
    text = "Mr Putin ordered Sergei Shoigu to pull back. The <b>Kremlin</b> said so."
    c = cite(1, text, "Mr Putin ordered Sergei Shoigu to pull back.")
    quote = f"{c.quote} [1]"
    answer = Answer(
        "Who was ordered to pull back?",
        f"Sergei Shoigu [1]\n\n{quote}",
        (c,),
        sentences=(
            AnswerSentence("Sergei Shoigu", (1,), True),
            AnswerSentence(c.quote, (1,), True),
        ),
        short_answer="Sergei Shoigu",
    )
    page = answer_html(answer, prefix="p")

    short = '<p class="qa-short"><strong>Sergei Shoigu</strong> '
    assert short + '<a class="qa-marker" href="#p-1">[1]</a></p>' in page
    assert page.index(short) < page.index("Mr Putin") < page.index("qa-sources")
    assert shown(page).count("Sergei Shoigu") == 3  # short answer, quote, quote in context
    hostile = replace(answer, text=f"{SCRIPT} [1]\n\n{quote}", short_answer=SCRIPT)
    hostile_page = answer_html(hostile)
    assert SCRIPT not in hostile_page and shown(hostile_page).startswith(SCRIPT)


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


def test_provisional_text_is_plain_and_visibly_not_final() -> None:
    body = provisional_html(f"Troops go home [1]. {SCRIPT} {BOLD} NATO doubts it [2")

    assert body.startswith('<div class="qa-answer qa-provisional"><p>')
    assert "<a" not in body and "<script" not in body and "**" not in body  # plain text only
    text, status = body.split('<p class="qa-status">')
    assert shown(text) == f"Troops go home [1]. {SCRIPT} {BOLD} NATO doubts it [2"
    assert shown(status) == PROVISIONAL_STATUS


def test_answer_bubble_links_markers_and_drops_phantom_ones() -> None:
    text = "Putin ordered troops home. Nothing else happened."
    answer = Answer("q", "Troops go home. [1] NATO doubts it. [3]", (cite(1, text, "Putin"),))
    body = answer_body_html(answer, "p")

    assert body.startswith('<div class="qa-answer"><p>') and body.endswith("</p></div>")
    assert re.findall(r"<a [^>]*>", body) == ['<a class="qa-marker" href="#p-1">']
    assert shown(body) == "Troops go home. [1] NATO doubts it."  # no [3]: it leads nowhere
    assert "qa-provisional" not in body and "qa-unsupported" not in body


def flagged_answer(note: str | None = "1 sentence could not be verified.") -> Answer:
    """An LLM answer, built like ``qa.verify`` builds one, whose second sentence is flagged."""
    text = "Putin ordered troops home. NATO saw no sign of it."
    c1, c2 = cite(1, text, "Putin ordered troops home."), cite(2, text, "NATO saw no sign")
    sentences = (
        AnswerSentence("Troops were ordered home.", (1,), True),
        AnswerSentence(f"NATO saw {SCRIPT} {BOLD} tanks [x].", (2, 1), False),
        AnswerSentence("They left.", (1,), True),
    )
    body = " ".join(" ".join([s.text, *(f"[{n}]" for n in s.citations)]) for s in sentences)
    return Answer("q", body, (c1, c2), sentences=sentences, answerer="llm", note=note)


UNSUPPORTED_SPAN = re.compile(
    r'<span class="qa-unsupported" title="([^"]*)">(.*?) '
    r'<span class="qa-flag">(.*?)</span></span>'
)


@pytest.mark.parametrize("render", [answer_body_html, answer_html])
def test_unsupported_sentences_are_marked_with_a_label(render: Any) -> None:
    answer = flagged_answer(note=f"1 sentence {IMG} could not be verified.")
    page = render(answer, "p")

    ((title, sentence, label),) = UNSUPPORTED_SPAN.findall(page)
    assert title == UNSUPPORTED_TITLE and label == UNSUPPORTED_LABEL == "⚠ unsupported"
    assert shown(sentence) == f"NATO saw {SCRIPT} {BOLD} tanks [x]. [2] [1]"
    assert sentence.count('class="qa-marker"') == 2  # its markers are inside the marked span
    (text,) = re.findall(r"<p>(.*?)</p>", page.split('<div class="qa-sources">')[0])
    assert shown(text) == (
        f"Troops were ordered home. [1] NATO saw {SCRIPT} {BOLD} tanks [x]. [2] [1] "
        f"{UNSUPPORTED_LABEL} They left. [1]"
    )
    (note,) = re.findall(r'<p class="qa-answer-note">(.*?)</p>', page)
    assert shown(note) == f"Note: 1 sentence {IMG} could not be verified."
    lowered = page.lower()
    assert "<script" not in lowered and "<img" not in lowered and "**" not in page
    tags = set(re.findall(r"<(\w+)", page))
    assert tags <= {"div", "p", "a", "span", "b", "small", "blockquote", "mark"}, tags


def test_follow_ups_see_the_answer_without_the_labels_and_the_note() -> None:
    answer = flagged_answer()
    bubble = answer_body_html(answer, "p")

    assert " ".join(shown(without_reader_aids(bubble)).split()) == answer.text
    assert "qa-unsupported" in without_reader_aids(bubble)  # still says which, to the markup
    plain = answer_body_html(Answer("q", "Troops left. [1]", flagged_answer().citations), "p")
    assert without_reader_aids(plain) == plain


def test_a_sentence_missing_from_the_text_is_still_marked() -> None:
    answer = flagged_answer(note=None)
    odd = Answer("q", "Something else entirely.", answer.citations, sentences=answer.sentences)
    page = answer_body_html(odd, "p")

    ((_, sentence, _),) = UNSUPPORTED_SPAN.findall(page)
    assert shown(sentence) == f"NATO saw {SCRIPT} {BOLD} tanks [x]. [2] [1]"
    assert "qa-answer-note" not in page
    assert shown(page).startswith("Troops were ordered home. [1] NATO saw")


@pytest.mark.parametrize(
    "text", ["", "one", "Mr Putin ordered. [1]", "  lead\n\nand  trail  ", "a\tb\nc d e f g h"]
)
def test_deltas_rebuild_the_text(text: str) -> None:
    pieces = deltas(text)
    assert "".join(pieces) == text
    assert all(len(p.split()) <= 3 for p in pieces)
    assert len(pieces) == (len(text.split()) + 2) // 3 or not text.split()


def panel_turns() -> list[Turn]:
    text = f"Intro. {SCRIPT} said the Kremlin. Troops go home. {IMG} Outro."
    first = Answer(
        "Who said it?",
        "Troops go home. [1]",
        (
            cite(
                1,
                text,
                "Troops go home.",
                id='a"1<x>',
                title=f"Title {SCRIPT}",
                source=f"Src {BOLD}",
                published="2014-05-19",
                url="https://news.example/a?b=1&c=2",
            ),
        ),
    )
    second = Answer("Anything else?", "The articles don't say.", abstained=True)
    return [Turn("Who said it?", first, "cite-aaaa"), Turn(f"Else {IMG}?", second, "cite-bbbb")]


def test_sources_panel_shows_every_answer_latest_first() -> None:
    page = sources_html(panel_turns())

    turns = re.findall(r'<details class="qa-turn" id="([^"]+)"( open)?>', page)
    assert turns == [("cite-bbbb", " open"), ("cite-aaaa", "")]  # latest first, and open
    assert f"Else {IMG}?" in shown(page) and "no sources" in page
    (card,) = re.findall(r'<article class="qa-citation" id="cite-aaaa-1">.*?</article>', page)
    assert f"Title {SCRIPT}" in shown(card)
    assert f"Src {BOLD} · 2014-05-19 · original · score 0.75" in shown(card)
    assert (
        'href="https://news.example/a?b=1&amp;c=2" target="_blank" rel="noopener noreferrer"'
        in (card)
    )
    assert re.findall(r"<mark>(.*?)</mark>", card) == ["Troops go home&#46;"]
    assert f"{SCRIPT} said the Kremlin. Troops go home. {IMG} Outro." in shown(card)
    assert '<button type="button" class="qa-open" data-article="a&quot;1&lt;x&gt;"' in card
    assert 'data-prefix="cite-aaaa">Open article</button>' in card
    lowered = page.lower()
    assert "<script" not in lowered and "<img" not in lowered and "**" not in page
    assert "The sources of each answer appear here" in sources_html([])


def test_article_view_highlights_every_cited_span() -> None:
    text = "First line.\nPutin ordered troops home. NATO saw no sign. <b>Bold</b> end."
    article = Article("a1", f"Title {SCRIPT}", text, "Src", "javascript:alert(1)", "2014-05-19")
    c1 = cite(1, text, "Putin ordered troops home.", id="a1")
    c2 = cite(2, text, "NATO saw no sign.", id="a1")
    c3 = cite(3, text, "troops home. NATO", id="a1")  # overlaps both: one merged highlight
    other = cite(4, "Another article entirely.", "Another article", id="a2")
    stale = Citation(5, c1.article, "not there", 0, 9, 0.5, text, 0)

    page = article_html(article, [c2, other, c1, c3, stale])

    marks = re.findall(r'<mark class="qa-cited" data-n="([^"]+)">(.*?)</mark>', page)
    assert [(n, html.unescape(m)) for n, m in marks] == [
        ("[1][2][3]", "Putin ordered troops home. NATO saw no sign.")
    ]
    assert "[5] no longer found at the cited place" in page
    assert "[4]" not in page
    (body,) = re.findall(r'<div class="qa-text">(.*)</div></div>', page)
    assert shown(re.sub(r'<sup class="qa-n-ref">.*?</sup>', "", body)) == text
    assert "<b>Bold</b>" not in page and "<script" not in page.lower()
    assert "javascript" not in page.lower() and "href" not in page  # an unsafe URL is no link
    assert f"Title {SCRIPT}" in shown(page) and "Src · 2014-05-19" in shown(page)


def test_upload_report_reads_like_the_cli() -> None:
    report = IngestReport(
        new=["a"],
        updated=["b"],
        unchanged=["c", "d"],
        failed=[
            LoadFailure("x.jsonl", "malformed JSON: Expecting value", 3),
            LoadFailure(f"{IMG}.txt", "empty file"),
        ],
        chunks_written=7,
    )
    page = ingest_report_html(report, 1.234)

    lines = shown(re.sub(r"</(p|li)>", "\n", page)).splitlines()
    assert lines == [
        "1 new, 1 updated, 2 unchanged, 2 failed (7 passages written in 1.2 s)",
        "new: a",
        "updated: b",
        "unchanged: c",
        "unchanged: d",
        "failed: x.jsonl:3: malformed JSON: Expecting value",
        f"failed: {IMG}.txt: empty file",
    ]
    assert "<img" not in page and "qa-partial" in page
    assert "qa-ok" in ingest_report_html(IngestReport(new=["a"]), 0.1)


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("article.txt", "article.txt"),
        ("../../etc/cron.d/evil.txt", "evil.txt"),
        ("..\\..\\windows\\evil.md", "evil.md"),
        ("/abs/path/news.jsonl", "news.jsonl"),
        (".hidden.txt", "hidden.txt"),
        ("..", "upload"),
        ("", "upload"),
        ("  spaced name (1).txt", "spaced name _1_.txt"),
        ("a<b>|c:d*?.html", "a_b_c_d_.html"),
        ("Ünïcödé 报道.txt", "Ünïcödé 报道.txt"),
        ("x" * 300 + ".jsonl", "x" * 114 + ".jsonl"),
    ],
)
def test_upload_names_are_never_paths(name: str, safe: str) -> None:
    assert safe_name(name) == safe
    assert "/" not in safe and "\\" not in safe and not safe.startswith(".")


def test_uploads_are_ingested_like_the_cli(fake_library: Library, tmp_path: Path) -> None:
    gradio_cache = tmp_path / "cache"  # where the web server put the uploaded bytes
    gradio_cache.mkdir()
    files = {
        "../../outside.txt": "Outside\n\nThe bakery sold croissants on Sunday.",
        "notes.md": "# Notes\n\nThe council met on Monday.",
        "same.txt": "Same one\n\nFirst copy.",
        "same.txt ": "Same two\n\nSecond copy.",
        "bad.jsonl": '{"text": "fine"}\nnot json\n',
        "huge.txt": "x" * 2000,
        "picture.png": "not an article",
    }
    uploads = []
    for i, (name, text) in enumerate(files.items()):
        copy = gradio_cache / f"{i}.bin"
        copy.write_text(text, encoding="utf-8")
        uploads.append((name, copy))
    before = set(Path(tempfile.gettempdir()).glob("qa-upload-*"))

    result = ingest_uploads(fake_library, uploads, max_bytes=1000)

    report = result.report
    assert sorted(report.new) == ["bad-1", "notes", "outside", "same"]
    failures = [(f.path, f.line, f.reason) for f in report.failed]
    assert failures[0] == ("huge.txt", None, "too large (0.0 MB; the upload limit is 0.001 MB)")
    assert ("picture.png", None, "unsupported file type '.png'") in failures
    assert any(p == "bad.jsonl" and line == 2 for p, line, _ in failures)
    duplicate = [r for p, _, r in failures if p == "same.txt" and "duplicate" in r]
    assert duplicate == ["duplicate article id 'same' (already read from same.txt); kept the first"]
    assert all(tempfile.gettempdir() not in f.path + f.reason for f in report.failed)
    assert (
        not (tmp_path / "outside.txt").exists() and not (tmp_path.parent / "outside.txt").exists()
    )
    assert set(Path(tempfile.gettempdir()).glob("qa-upload-*")) == before  # cleaned up
    article = fake_library.article("outside")
    assert article is not None and article.title == "Outside"
    # Uploading the same files again changes nothing.
    again = ingest_uploads(fake_library, uploads, max_bytes=1000).report
    assert sorted(again.unchanged) == ["bad-1", "notes", "outside", "same"] and not again.new


def test_questions_from_titles() -> None:
    assert (
        question_from_title(
            "Russian President Vladimir Putin has ordered troops deployed near Ukraine to return."
        )
        == "What has Russian President Vladimir Putin ordered?"
    )
    assert question_from_title("Ministers have given up on the plan") == (
        "What have Ministers given?"
    )
    assert question_from_title("NATO sees no sign of Russian pullback") == (
        "What do the articles say about NATO sees no sign of Russian pullback?"
    )
    long = question_from_title("one two three four five six seven eight nine ten eleven twelve")
    assert (
        long == "What do the articles say about one two three four five six seven eight nine ten…?"
    )


def test_example_questions_come_from_the_articles(fake_library: Library) -> None:
    assert example_questions(fake_library) == []  # an empty library has no examples

    fake_library.ingest([SEEDS], progress=False)

    assert example_questions(fake_library) == ["What has Russian President Vladimir Putin ordered?"]


def test_filters_from_the_page() -> None:
    filters = make_filters([" BBC ", "BBC", ""], (), " 2014-05-01 ", "")
    assert filters == Filters(sources=("BBC",), published_from="2014-05-01")
    assert describe(filters) == "Only articles from BBC; published on or after 2014-05-01."
    assert describe(make_filters()) == "All articles." and not make_filters()
    assert describe(make_filters((), (), None, "2014-05-31")) == (
        "Only articles published on or before 2014-05-31."
    )
    for since, until, message in [
        ("2014-02-30", None, "since: '2014-02-30' is not a date like 2014-05-19"),
        ("20140501", None, "since: '20140501' is not a date like 2014-05-19"),
        (None, "May 2014", "until: 'May 2014' is not a date like 2014-05-19"),
        ("2014-06-01", "2014-05-01", "since (2014-06-01) is after until (2014-05-01)"),
    ]:
        with pytest.raises(QAError) as error:
            make_filters((), (), since, until)
        assert str(error.value).startswith(message)


def test_ui_never_imports_chromadb() -> None:
    code = (
        "import sys, ui.app, ui.api, ui.server, ui.render, ui.uploads, ui.filters; "
        "assert 'chromadb' not in sys.modules, 'ui imported chromadb'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


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
        try:
            with running_server(library) as base:  # the app as `qa serve` serves it
                url = f"{base}/"
                from gradio_client import Client

                client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
                try:
                    assert client.analytics_enabled is False
                    yield client, url, remote
                finally:
                    client.close()
        finally:
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
    # The page's own events are private: the one public endpoint is the reply to a question.
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(endpoints) == {f"/{API_NAME}"}

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


# -- the chat's reply, step by step (what the page shows after each yield) ----------------------

Step = tuple[Any, Any, Any]  # (chat messages, sources panel, answered turns); gr.skip() is a dict


def bubbles(steps: list[Step]) -> list[str]:
    """The assistant's bubble after each step."""
    return [str(messages[-1]["content"]) for messages, _, _ in steps]


def is_skip(value: Any) -> bool:
    return isinstance(value, dict) and value.get("__type__") == "update"


def provisional(bubble: str) -> bool:
    return "qa-provisional" in bubble


def check_final(steps: list[Step], question: str) -> tuple[str, Answer]:
    """The last step is the final answer, shown as such, with the panel and the turns updated;
    every step before it left both alone. Returns the last bubble and its answer."""
    *before, (messages, panel, answered) = steps
    assert all(is_skip(p) and is_skip(t) for _, p, t in before)
    assert bubbles(steps)[0] == THINKING
    final = str(messages[-1]["content"])
    assert not provisional(final) and PROVISIONAL_STATUS not in shown(final)
    assert messages[:-1] == [{"role": "user", "content": escape(question)}]
    (turn,) = answered
    assert isinstance(panel, str) and f'id="{turn.prefix}"' in panel
    assert final == answer_body_html(turn.answer, turn.prefix)
    return final, turn.answer


def run_chat(library: Library, question: str, on_step: Any = None) -> list[Step]:
    steps: list[Step] = []
    history = [{"role": "user", "content": escape(question)}]
    for step in chat_turn(library, question, history, []):
        steps.append(step)
        if on_step is not None:
            on_step(step)
    return steps


def test_offline_chat_reveals_the_answer_then_shows_it_final(fake_library: Library) -> None:
    fake_library.ingest([SEED_ARTICLE], progress=False)
    question = "Who did Putin order to pull back the forces?"

    steps = run_chat(fake_library, question)

    final, answer = check_final(steps, question)
    assert answer.answerer == "extractive" and answer.citations
    revealed = [shown(b.split('<p class="qa-status">')[0]) for b in bubbles(steps)[1:-1]]
    assert len(revealed) >= 3  # a few words at a time, each bubble longer than the last
    assert all(a != b and b.startswith(a) for a, b in itertools.pairwise(revealed))
    assert revealed[-1] == answer.text
    assert 'class="qa-marker"' in final
    # the short answer is a paragraph of its own above the quotes
    assert answer.short_answer and final.count('<p class="qa-short">') == 1
    assert shown(final.replace("</p><p>", "</p>\n\n<p>")) == answer.text


def test_chat_filters_that_are_wrong_say_so(fake_library: Library) -> None:
    steps = list(chat_turn(fake_library, "Who?", [], [], (None, "2014-13-01", None)))
    assert shown(bubbles(steps)[-1]) == "Sorry: since: '2014-13-01' is not a date like 2014-05-19"
    assert all(is_skip(p) and is_skip(t) for _, p, t in steps)


class BrokenEmbedder(BagOfWordsEmbedder):
    """Fails (like a crashed embedding service) when asked to embed a text with ``WORD``:
    the model's reply, while it is verified."""

    WORD = "Kaboom"

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if any(self.WORD in t for t in texts):
            raise RuntimeError("embedding service crashed; see /srv/secret/trace")
        return super().embed(texts)


@pytest.fixture
def llm_chat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Library, FakeOpenAI]]:
    """A library over the seed article answering with the fake OpenAI server (``llm_timeout``
    2 s), whose embedder breaks on ``BrokenEmbedder.WORD``."""
    monkeypatch.setenv(KEY_ENV, KEY)
    with fake_openai() as server:
        settings = Settings(
            data_dir=tmp_path / "data",
            llm_base_url=server.url,
            llm_model="fake-model",
            llm_api_key_env=KEY_ENV,
            llm_timeout=2.0,
            min_score=0.0,
        )
        library = Library(settings, embedder=BrokenEmbedder())
        library.ingest([SEED_ARTICLE], progress=False)
        yield library, server


NATO_QUESTION = "What did NATO say about the withdrawal of troops?"  # passage 1: NATO's


def test_chat_shows_the_models_words_as_they_come_then_the_verified_answer(
    llm_chat: tuple[Library, FakeOpenAI],
) -> None:
    library, server = llm_chat
    gate = threading.Event()  # the server sends the rest once the chat has shown the start
    server.script(Reply(pieces=[GOOD_NATO[:21], GOOD_NATO[21:], " [1", "]."], gate=gate))

    def on_step(step: Step) -> None:
        if provisional(str(step[0][-1]["content"])):
            gate.set()

    started = time.monotonic()
    steps = run_chat(library, NATO_QUESTION, on_step)
    assert time.monotonic() - started < 5  # not held until the gate or the model timed out

    final, answer = check_final(steps, NATO_QUESTION)
    assert answer.answerer == "llm" and answer.note is None
    assert all(s.supported for s in answer.sentences)
    writing = [b for b in bubbles(steps) if provisional(b)]
    assert len(writing) >= 3 and writing == bubbles(steps)[1:-1]
    first = shown(writing[0].split('<p class="qa-status">')[0])
    assert first == GOOD_NATO[:21]  # shown before the server sent the rest
    last = shown(writing[-1].split('<p class="qa-status">')[0])
    assert last == f"{GOOD_NATO} [1]."  # markers plain while provisional ...
    assert all("<a " not in b for b in writing)
    assert '<a class="qa-marker"' in final  # ... and links to the sources once verified
    assert shown(final) == f"{GOOD_NATO}. [1]"
    assert server.requests[0].json["stream"] is True


def test_chat_marks_what_the_sources_do_not_support(llm_chat: tuple[Library, FakeOpenAI]) -> None:
    library, server = llm_chat
    invented = f"NATO <b>confirmed</b> that all Russian soldiers had gone home by Friday {SCRIPT}"
    server.script(f"{GOOD_NATO} [1]. {invented} [1].")

    steps = run_chat(library, NATO_QUESTION)

    final, answer = check_final(steps, NATO_QUESTION)
    assert answer.answerer == "llm"
    assert [s.supported for s in answer.sentences] == [True, False]
    ((title, sentence, label),) = UNSUPPORTED_SPAN.findall(final)
    assert (title, label) == (UNSUPPORTED_TITLE, UNSUPPORTED_LABEL)
    assert shown(sentence) == f"{invented}. [1]"
    assert answer.note is not None and "could not be verified" in answer.note
    assert f"Note: {answer.note}" in shown(final)
    for bubble in bubbles(steps):  # provisional or final, the model's text is only text
        assert "<b>confirmed" not in bubble and "<script" not in bubble.lower()


def test_a_phantom_marker_never_reaches_the_chat(llm_chat: tuple[Library, FakeOpenAI]) -> None:
    library, server = llm_chat
    server.script(Reply(pieces=[GOOD_NATO, " [9", "9][1]", "[", "42]."]))

    steps = run_chat(library, NATO_QUESTION)

    final, answer = check_final(steps, NATO_QUESTION)
    assert answer.answerer == "llm" and [c.n for c in answer.citations] == [1]
    assert re.findall(r"\[\d+\]", shown(final)) == ["[1]"]
    assert re.findall(r'href="#[\w-]+-(\d+)"', final) == ["1"]
    for bubble in bubbles(steps):
        # what the reader sees of the answer (not the HTML: its ids are random hex, which
        # may hold "99"; not the sources: their character offsets may hold "42")
        seen = shown(bubble.split('<div class="qa-sources">')[0])
        assert "99" not in seen and "42" not in seen


def test_a_model_failing_midway_ends_in_the_quotes_with_a_note(
    llm_chat: tuple[Library, FakeOpenAI],
) -> None:
    library, server = llm_chat
    server.script(Reply(f"{GOOD_NATO} [1].", error_after=3))

    steps = run_chat(library, NATO_QUESTION)

    final, answer = check_final(steps, NATO_QUESTION)
    assert any(provisional(b) for b in bubbles(steps))  # the start of the reply was shown
    assert answer.answerer == "llm-fallback" and answer.citations
    assert answer.note == (
        f"The language model at {server.url} failed (APIError); showing the passages instead."
    )
    assert shown(final).startswith(f"Note: {answer.note}")
    assert GOOD_NATO[:20] not in shown(final).replace(answer.text, "")  # not left in the reply
    assert "Traceback" not in final


def test_a_failure_midway_replaces_the_provisional_text_with_an_apology(
    llm_chat: tuple[Library, FakeOpenAI], caplog: pytest.LogCaptureFixture
) -> None:
    library, server = llm_chat
    server.script(f"{GOOD_NATO} [1]. {BrokenEmbedder.WORD}, said the sergeant [1].")

    with caplog.at_level(logging.ERROR, logger="ui.app"):
        steps = run_chat(library, NATO_QUESTION)

    shown_steps = bubbles(steps)
    assert any(provisional(b) for b in shown_steps)  # the model's words had been shown ...
    assert shown_steps[-1] == sorry(SORRY)  # ... and the last thing shown is an apology
    assert all(is_skip(p) and is_skip(t) for _, p, t in steps)  # no answer was recorded
    assert "secret" not in shown_steps[-1] and "Traceback" not in shown_steps[-1]
    assert "embedding service crashed" in caplog.text  # the trace goes to the log


def test_chat_errors_before_any_words_are_the_usual_apologies(
    llm_chat: tuple[Library, FakeOpenAI], tmp_path: Path
) -> None:
    library, server = llm_chat
    steps = run_chat(library, "why " * 1000)
    assert shown(bubbles(steps)[-1]).startswith("Sorry: The question is too long (")
    assert len(steps) == 2 and server.requests == []

    url = f"http://127.0.0.1:{free_port()}"  # a Chroma server that is not there
    unreachable = Library(Settings(data_dir=tmp_path / "elsewhere", chroma_url=url))
    steps = run_chat(unreachable, "Who did Putin order to pull back the forces?")
    assert len(steps) == 2 and bubbles(steps)[-1] == reply(unreachable, "Who did Putin order?")
    assert f"cannot reach the Chroma server at {url}" in shown(bubbles(steps)[-1])
