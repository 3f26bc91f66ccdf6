"""The chat in a real browser: Debian's headless Chromium driven by Playwright.

The server is ``ui.server.create_server`` on a free loopback port, over the seeds plus a source
filtered article and one whose text tries every trick (see ``tests.test_api.EXTRA``). Every test
records every request the browser makes and asserts that none leaves this server. Screenshots
(desktop 1280x800, phone 390x844) go to ``test-artifacts/``.

Needs /usr/bin/chromium (``make browser-deps``); Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    FrameLocator,
    Locator,
    Page,
    sync_playwright,
)

from qa.service import Library
from qa.settings import Settings
from tests.conftest import SEED_ARTICLE
from tests.fakes import BagOfWordsEmbedder
from tests.openai_fake import FakeOpenAI, Reply, fake_openai
from tests.test_api import QUESTION, make_library, running_server
from tests.test_llm import GOOD_NATO, KEY, KEY_ENV
from ui.render import UNSUPPORTED_LABEL, UNSUPPORTED_TITLE
from vectorstore.embeddings import Embedder

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
ANSWER_TIMEOUT = 60_000  # ms; the first question loads the model
EXAMPLE = "What has Russian President Vladimir Putin ordered?"  # made from the seed's title


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, real_embedder: Embedder) -> Iterator[str]:
    library: Library = make_library(tmp_path_factory.mktemp("browser") / "data", real_embedder)
    with running_server(library) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser-deps` (Debian's chromium)")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


class Visit:
    """A fresh browser context; records every request and every script error."""

    def __init__(self, browser: Browser, base: str, viewport: dict[str, int]) -> None:
        phone = viewport["width"] < 600
        self.base = base
        self.context: BrowserContext = browser.new_context(
            viewport=viewport, is_mobile=phone, has_touch=phone, device_scale_factor=1
        )
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.context.on("request", lambda r: self.requests.append(r.url))
        self.page: Page = self.context.new_page()
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def open(self, path: str = "/") -> Page:
        self.page.goto(self.base + path, wait_until="load")
        return self.page

    def screenshot(self, name: str, full_page: bool = False) -> None:
        self.page.screenshot(path=str(ARTIFACTS / name), full_page=full_page)

    def check_stayed_local(self) -> None:
        elsewhere = [
            u for u in self.requests if not u.startswith((self.base + "/", "data:", "blob:"))
        ]
        assert elsewhere == [], elsewhere
        assert self.requests, "nothing was requested"
        assert self.errors == [], self.errors


@pytest.fixture
def visit(browser: Browser, base: str) -> Iterator[Callable[[dict[str, int]], Visit]]:
    visits: list[Visit] = []

    def make(viewport: dict[str, int]) -> Visit:
        visits.append(Visit(browser, base, viewport))
        return visits[-1]

    yield make
    for v in visits:
        v.context.close()


Scope = Page | FrameLocator | Locator


def wait_ready(scope: Scope) -> None:
    scope.locator(".qa-sources-panel").first.wait_for(timeout=30_000)


def ask(scope: Scope, question: str) -> Locator:
    """Asks ``question`` and waits for its sources; returns the newest answer's bubble."""
    turns = scope.locator("#qa-sources details.qa-turn")
    before = turns.count()
    scope.locator("#qa-question textarea").fill(question)
    scope.locator("#qa-ask").click()
    turns.nth(before).wait_for(timeout=ANSWER_TIMEOUT)
    expect_enabled = scope.locator("#qa-question textarea")
    for _ in range(100):  # the box is enabled again once the reply is complete
        if expect_enabled.is_enabled():
            break
        time.sleep(0.1)
    return scope.locator("#qa-chatbot .bot-row").last


def newest_turn(scope: Scope) -> Locator:
    return scope.locator("#qa-sources details.qa-turn").first


# -- the chat ----------------------------------------------------------------------------------


def test_chat_on_a_desktop(visit: Callable[[dict[str, int]], Visit]) -> None:
    v = visit(DESKTOP)
    page = v.open("/")
    wait_ready(page)
    examples = page.locator("#qa-chatbot").inner_text()
    assert EXAMPLE in examples
    # Record how the reply grows: streamed, it is seen at several lengths before the last.
    page.evaluate(
        """() => {
        window.__lengths = [];
        new MutationObserver(() => {
          const bots = document.querySelectorAll('#qa-chatbot .bot-row');
          if (bots.length) window.__lengths.push(bots[bots.length - 1].innerText.length);
        }).observe(document.querySelector('#qa-chatbot'),
                   {subtree: true, childList: true, characterData: true});
      }"""
    )

    bubble = ask(page, QUESTION)

    assert "Sergei Shoigu" in bubble.inner_text()
    lengths = sorted(set(page.evaluate("window.__lengths")))
    assert len(lengths) >= 3, lengths  # streamed in pieces
    turn = newest_turn(page)
    assert turn.get_attribute("open") is not None
    assert QUESTION in turn.locator("summary").inner_text()
    cards = turn.locator("article.qa-citation")
    assert cards.count() >= 1
    marked = turn.locator("blockquote mark").all_inner_texts()
    assert any("Sergei Shoigu" in m for m in marked), marked
    first = cards.first
    assert "Russian President Vladimir Putin" in first.locator(".qa-title").inner_text()
    assert "score 0." in first.locator(".qa-meta").inner_text()
    v.screenshot("chat-desktop.png")

    # A marker leads to its citation.
    marker = bubble.locator("a.qa-marker").first
    target = marker.get_attribute("href")
    assert target and target.startswith("#cite-")
    marker.click()
    card = page.locator(f"[id='{target[1:]}']")
    card.wait_for()
    page.wait_for_function(
        "id => document.getElementById(id).classList.contains('qa-flash')", arg=target[1:]
    )
    box = card.bounding_box()
    assert box and 0 <= box["y"] < DESKTOP["height"], box
    assert page.url.rstrip("/") == v.base  # handled in the page, not by navigating

    # "Open article" shows the whole article with the cited spans highlighted.
    quote = card.locator("blockquote mark").inner_text()
    card.locator("button.qa-open").click()
    article = page.locator("#qa-article .qa-article")
    article.wait_for(timeout=30_000)
    assert "Russian President Vladimir Putin" in article.locator("h3").inner_text()
    cited = " ".join(article.locator("mark.qa-cited").all_inner_texts())
    assert " ".join(quote.split()) in " ".join(cited.split())
    assert "NATO" in article.locator(".qa-text").inner_text()  # the whole text, not the quote
    page.wait_for_function(  # it comes into view, scrolled to the first cited span
        """() => {
          const box = document.getElementById('qa-article-box').getBoundingClientRect();
          const mark = document.querySelector('#qa-article mark.qa-cited').getBoundingClientRect();
          return box.top >= -1 && box.top < 80 && mark.top >= 0 && mark.bottom <= innerHeight;
        }""",
        timeout=5_000,
    )
    time.sleep(0.5)  # the smooth scroll's last frames
    stacked = page.evaluate(  # the article is below the sources, in the same column
        """() => {
          const s = document.getElementById('qa-sources').getBoundingClientRect();
          const b = document.getElementById('qa-article-box').getBoundingClientRect();
          return s.bottom <= b.top + 1 && Math.abs(s.left - b.left) < 2;
        }"""
    )
    assert stacked
    v.screenshot("chat-desktop-article.png")
    page.locator("#qa-article button.qa-close").click()
    page.locator("#qa-article-box").wait_for(state="hidden")

    # Clearing starts over.
    page.locator("#qa-clear").click()
    page.locator("#qa-sources .qa-empty").wait_for()
    assert page.locator("#qa-chatbot .bot-row").count() == 0
    assert not page.locator("#qa-article-box").is_visible()
    v.check_stayed_local()


def test_chat_on_a_phone(visit: Callable[[dict[str, int]], Visit]) -> None:
    v = visit(PHONE)
    page = v.open("/")
    wait_ready(page)
    v.screenshot("chat-phone-empty.png")

    # An example question, tapped, is asked.
    page.locator("#qa-chatbot").get_by_text(EXAMPLE).tap()
    newest_turn(page).wait_for(timeout=ANSWER_TIMEOUT)
    assert EXAMPLE in newest_turn(page).locator("summary").inner_text()
    page.locator("#qa-question textarea").wait_for(state="visible")
    page.wait_for_function("() => !document.querySelector('#qa-question textarea').disabled")

    bubble = ask(page, QUESTION)

    assert "Sergei Shoigu" in bubble.inner_text()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width} px wide on a {PHONE['width']} px phone"
    chat_box = page.locator("#qa-chatbot").bounding_box()
    sources_box = page.locator("#qa-sources").bounding_box()
    assert chat_box and sources_box and sources_box["y"] > chat_box["y"]  # stacked, not squeezed
    v.screenshot("chat-phone.png")
    bubble.locator("a.qa-marker").first.tap()
    time.sleep(1)  # the smooth scroll
    card = newest_turn(page).locator("article.qa-citation").first
    box = card.bounding_box()
    assert box and box["y"] < PHONE["height"] and box["y"] + box["height"] > 0, box
    v.screenshot("chat-phone-sources.png")
    v.check_stayed_local()


# -- with a language model ---------------------------------------------------------------------


@pytest.fixture
def llm_base(tmp_path: Path) -> Iterator[tuple[str, FakeOpenAI]]:
    """The server over the seed article, answering with the fake OpenAI server."""
    with pytest.MonkeyPatch.context() as mp, fake_openai() as model:
        mp.setenv(KEY_ENV, KEY)
        settings = Settings(
            data_dir=tmp_path / "data",
            chroma_url=None,
            llm_base_url=model.url,
            llm_model="fake-model",
            llm_api_key_env=KEY_ENV,
            min_score=0.0,
        )
        library = Library(settings, embedder=BagOfWordsEmbedder())
        library.ingest([SEED_ARTICLE], progress=False)
        with running_server(library) as url:
            yield url, model


def test_streamed_words_then_unsupported_sentences_labelled(
    browser: Browser, llm_base: tuple[str, FakeOpenAI]
) -> None:
    url, model = llm_base
    gate = threading.Event()  # the model sends the rest once the page shows its first words
    invented = "NATO <b>confirmed</b> that all Russian soldiers had gone home by Friday"
    pieces = [GOOD_NATO[:21], f"{GOOD_NATO[21:]} [1]. ", f"{invented} [1]."]
    model.script(Reply(pieces=pieces, gate=gate))
    v = Visit(browser, url, DESKTOP)
    try:
        page = v.open("/")
        wait_ready(page)
        page.locator("#qa-question textarea").fill("What did NATO say about the withdrawal?")
        page.locator("#qa-ask").click()

        writing = page.locator("#qa-chatbot .qa-provisional")
        writing.wait_for(timeout=ANSWER_TIMEOUT)
        assert GOOD_NATO[:21] in writing.inner_text() and "Writing…" in writing.inner_text()
        gate.set()
        newest_turn(page).wait_for(timeout=ANSWER_TIMEOUT)

        bubble = page.locator("#qa-chatbot .bot-row").last
        assert bubble.locator(".qa-provisional").count() == 0
        flagged = bubble.locator(".qa-unsupported")
        flag = flagged.locator(".qa-flag")
        assert flagged.count() == 1 and flag.is_visible()
        assert flag.inner_text().strip() == UNSUPPORTED_LABEL
        assert flagged.get_attribute("title") == UNSUPPORTED_TITLE
        assert f"{invented}. [1]" in flagged.inner_text()  # the model's tags shown as text
        assert bubble.locator("b", has_text="confirmed").count() == 0
        assert "wavy" in flagged.evaluate("e => getComputedStyle(e).textDecorationStyle")
        assert "could not be verified" in bubble.locator(".qa-answer-note").inner_text()
        assert GOOD_NATO in bubble.inner_text()
        v.screenshot("chat-unsupported.png")
        v.check_stayed_local()
    finally:
        gate.set()
        v.context.close()


# -- embedding ---------------------------------------------------------------------------------


def test_embed_example_page(visit: Callable[[dict[str, int]], Visit]) -> None:
    v = visit(DESKTOP)
    page = v.open("/embed-example")

    frame = page.frame_locator("#qa-iframe")
    wait_ready(frame)
    assert frame.locator("#qa-filters").count() == 0  # the compact view: chat and sources
    bubble = ask(frame, QUESTION)
    assert "Sergei Shoigu" in bubble.inner_text()
    marked = newest_turn(frame).locator("blockquote mark").all_inner_texts()
    assert any("Sergei Shoigu" in m for m in marked), marked
    page.locator("#qa-iframe").scroll_into_view_if_needed()
    v.screenshot("embed-iframe.png")

    component = page.locator("gradio-app")
    component.scroll_into_view_if_needed()  # it loads when it comes into view
    wait_ready(component)
    bubble = ask(component, "Did NATO see any sign of a Russian pullout?")
    assert "NATO" in bubble.inner_text()
    turn = newest_turn(component)
    assert any("NATO" in m for m in turn.locator("blockquote mark").all_inner_texts())
    bubble.locator("a.qa-marker").first.click()
    page.wait_for_function(
        "() => !!document.querySelector('gradio-app .qa-citation.qa-flash')", timeout=10_000
    )
    v.screenshot("embed-component.png")
    v.check_stayed_local()


def test_embed_view_on_a_phone(visit: Callable[[dict[str, int]], Visit]) -> None:
    v = visit(PHONE)
    page = v.open("/embed/")
    wait_ready(page)
    assert page.locator(".qa-header").count() == 0
    ask(page, QUESTION)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    v.screenshot("embed-phone.png")
    v.check_stayed_local()


# -- hostile text ------------------------------------------------------------------------------


def test_hostile_article_is_shown_and_never_run(visit: Callable[[dict[str, int]], Visit]) -> None:
    v = visit(DESKTOP)
    page = v.open("/")
    wait_ready(page)
    title = "A <script>window.__xss=1</script> bakery <img src=x onerror=window.__xss=2>"
    assert title in page.locator("#qa-chatbot").inner_text()  # an example made from the title

    bubble = ask(page, "How many croissants did the bakery on Main Street sell?")

    said = bubble.inner_text()
    assert "412" in said, said
    card = newest_turn(page).locator("article.qa-citation").first
    shown = card.inner_text()
    assert title in shown and "Local <b>Gazette</b>" in shown
    assert "<script>window.__xss=1</script>" in shown
    assert '<img src=x onerror="window.__xss=2">' in shown
    assert "${window.__xss=3}" in shown + said
    card.locator("button.qa-open").click()
    article = page.locator("#qa-article .qa-article")
    article.wait_for(timeout=30_000)
    text = article.inner_text()
    for literal in (
        "<script>window.__xss=1</script>",
        '<img src=x onerror="window.__xss=2">',
        "${window.__xss=3}",
        "{{constructor.constructor('window.__xss=4')()}}",
        "[click](javascript:window.__xss=5)",
    ):
        assert literal in text, literal
    time.sleep(0.5)
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert (
        page.evaluate('document.querySelectorAll(\'img[src="x"], a[href^="javascript"]\').length')
        == 0
    )
    # The only script mentioning it is Gradio's config, where the title is an escaped JSON string.
    scripts = page.evaluate(
        "[...document.scripts].map(s => s.text).filter(t => t.includes('__xss'))"
    )
    assert all(t.lstrip().startswith("window.gradio_config = {") for t in scripts), scripts
    assert all("<script>window" not in t and "<img" not in t for t in scripts), scripts
    v.screenshot("hostile-article.png")
    v.check_stayed_local()


# -- filters and uploads -----------------------------------------------------------------------


def test_filters_apply_to_the_next_question(visit: Callable[[dict[str, int]], Visit]) -> None:
    v = visit(DESKTOP)
    page = v.open("/")
    wait_ready(page)
    page.locator("#qa-filters").get_by_text("Filters").first.click()
    sources = page.locator("#qa-sources-filter input")
    sources.click()
    sources.fill("Reuters")
    page.get_by_role("option", name="Reuters").click()
    page.keyboard.press("Escape")
    page.locator(".qa-note", has_text="Only articles from Reuters").wait_for()

    ask(page, "Did NATO see any sign of a Russian pullout?")
    cards = newest_turn(page).locator("article.qa-citation .qa-meta")
    assert cards.count() >= 1
    assert all(m.startswith("Reuters") for m in cards.all_inner_texts())

    until = page.locator("#qa-until input").first
    until.fill("2014-13-01")
    until.press("Enter")
    page.locator(".qa-note.qa-bad", has_text="until: '2014-13-01' is not a date").wait_for()
    bubble = ask_and_get_reply(page, "Did NATO see any sign of a Russian pullout?")
    assert "Sorry: until: '2014-13-01' is not a date like 2014-05-19" in bubble

    until.fill("2000-01-01")
    until.press("Enter")
    page.locator(".qa-note", has_text="published on or before 2000-01-01").wait_for()
    bubble = ask_and_get_reply(page, "Did NATO see any sign of a Russian pullout?")
    assert bubble == "The articles don't say."
    v.screenshot("filters.png")
    v.check_stayed_local()


def ask_and_get_reply(page: Page, question: str) -> str:
    """Asks a question that gets no sources (an error, an abstention); the reply's text."""
    bots = page.locator("#qa-chatbot .bot-row")
    before = bots.count()
    page.locator("#qa-question textarea").fill(question)
    page.locator("#qa-ask").click()
    page.wait_for_function(
        """n => {
          const bots = document.querySelectorAll('#qa-chatbot .bot-row');
          return bots.length > n && !bots[bots.length - 1].innerText.includes('Searching');
        }""",
        arg=before,
        timeout=ANSWER_TIMEOUT,
    )
    time.sleep(0.3)
    return " ".join(bots.last.inner_text().split())


def test_upload_from_the_browser(visit: Callable[[dict[str, int]], Visit]) -> None:
    v = visit(DESKTOP)
    page = v.open("/")
    wait_ready(page)
    page.locator("#qa-upload").get_by_text("Add articles").first.click()
    harbour = (
        "Harbour reopens\n\nThe old harbour of Port Ellen reopened on Friday after a storm "
        "closed it for nine days. Fishermen landed 40 tonnes of cod on the first morning."
    )
    page.locator("#qa-files input[type=file]").set_input_files(
        [
            {"name": "harbour.txt", "mimeType": "text/plain", "buffer": harbour.encode()},
            {"name": "broken.json", "mimeType": "application/json", "buffer": b'{"text": '},
        ]
    )
    page.locator("#qa-files").get_by_text("broken", exact=True).wait_for(timeout=30_000)  # uploaded
    page.locator("#qa-add").click()
    report = page.locator("#qa-report .qa-report")
    report.wait_for(timeout=ANSWER_TIMEOUT)
    lines = report.inner_text().splitlines()
    assert lines[0].startswith("1 new, 0 updated, 0 unchanged, 1 failed ("), lines
    assert "new: harbour" in lines
    assert any(line.startswith("failed: broken.json:1: ") for line in lines), lines
    v.screenshot("upload.png")

    bubble = ask(page, "How much cod did the fishermen land at Port Ellen?")
    assert "40 tonnes of cod" in bubble.inner_text()
    assert "Harbour reopens" in newest_turn(page).inner_text()
    v.check_stayed_local()


# -- the API from a browser -------------------------------------------------------------------


def test_the_readmes_stream_reader_works(visit: Callable[[dict[str, int]], Visit]) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    after = readme.split("Reading the stream in a browser", 1)[1]
    snippet = after.split("```js\n", 1)[1].split("```", 1)[0]
    v = visit(DESKTOP)
    page = v.open("/embed-example")
    code = snippet.replace("http://127.0.0.1:7860", v.base)

    got = page.evaluate(f"async () => {{\n{code}\nreturn {{text, answer}};\n}}")

    answer = got["answer"]
    assert answer["question"] == "What did NATO say?" and answer["citations"]
    assert got["text"] == answer["answer"] and "NATO" in got["text"]
    v.check_stayed_local()


# -- the API docs ------------------------------------------------------------------------------


def test_api_docs_work_offline(visit: Callable[[dict[str, int]], Visit]) -> None:
    v = visit(DESKTOP)
    page = v.open("/docs")
    page.locator(".opblock-summary-path", has_text="/api/ask/stream").wait_for(timeout=30_000)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert {"/api/ask", "/api/ask/stream", "/api/articles"} <= {p.strip() for p in paths}
    v.screenshot("api-docs.png")
    v.check_stayed_local()
