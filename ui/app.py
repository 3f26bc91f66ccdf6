"""The Gradio chat: streamed answers, a sources panel beside them, filters and uploads.

``build_app(library)`` is the full page and ``build_app(library, embed=True)`` the compact one
for other web pages (just the chat and its sources). Either is served by ``ui.server``, which
also passes ``PAGE_CSS``/``PAGE_JS`` (Gradio 6 takes them when an app is mounted, not built).
Every reply is rendered by ``ui.render``, which escapes all article and user text.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.events import api

from qa.service import Library
from qa.types import Answer
from ui.filters import describe, make_filters
from ui.render import (
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
from ui.uploads import ingest_uploads
from vectorstore.errors import QAError
from vectorstore.loaders import SUPPORTED_SUFFIXES

log = logging.getLogger(__name__)

API_NAME = "ask"
TITLE = "Ask the articles"
DESCRIPTION = (
    "Ask a question in plain language. Every sentence of the answer is quoted from an article, "
    "and its marker [n] leads to the exact passage."
)
PLACEHOLDER = "Ask about the articles…"
FORMATS = SUPPORTED_SUFFIXES  # what `qa ingest` reads
EMPTY_LIBRARY = {
    False: "<b>The library is empty.</b> Add articles below, then ask about them.",
    True: "<b>There are no articles to ask about yet.</b>",
}
STREAM_PAUSE = 0.02  # seconds between revealed pieces: fast, but visibly streaming
REVEAL_WORDS = 6  # a streamed piece longer than this is revealed a few words at a time
SORRY = "something went wrong while answering; please try again."
THINKING = '<p class="qa-thinking">Searching the articles…</p>'
MAX_EXAMPLES = 4


def reply(library: Library, message: str) -> str:
    """The whole reply to ``message`` as HTML (answer, then sources); errors as a message.

    This is the API endpoint ``/ask`` of the Gradio app, for ``gradio_client``.
    """
    result = answer_or_error(library, message)
    if isinstance(result, str):
        return result
    return answer_html(result, prefix=new_prefix())


def answer_or_error(
    library: Library,
    question: str,
    filters: Any = None,
    history: list[dict[str, Any]] | None = None,
) -> Answer | str:
    """The answer, or an HTML message for a question that cannot be answered; never a trace.

    ``history`` is the conversation so far (Gradio messages), so follow-ups are understood.
    """
    try:
        return library.ask(question, filters, history)
    except QAError as exc:
        return sorry(str(exc))
    except Exception:
        log.exception("answering %r failed", question[:200])
        return sorry(SORRY)


def sorry(message: str) -> str:
    return f"<p><b>Sorry:</b> {escape(message)}</p>"


def new_prefix() -> str:
    """A fresh prefix for the ids of one answer's citations (unique on the page)."""
    return f"cite-{uuid.uuid4().hex[:8]}"


def stream_reply(
    library: Library,
    question: str,
    filters: Any = None,
    history: list[dict[str, Any]] | None = None,
    prefix: str = "cite",
) -> Iterator[tuple[str, Answer | None]]:
    """The chat bubble as it grows, as ``(html, answer)``: ``answer`` is None until the last.

    The text arrives from ``library.ask_stream`` and is shown as it comes, as plain text
    marked provisional (``provisional_html``); a long piece (the offline answer comes in
    one) is revealed a few words at a time. The verified Answer then replaces it
    (``answer_body_html``). An error, before the first piece or midway, ends the bubble with
    the same message as ``answer_or_error`` (never a trace, never provisional text left
    looking final): ``(message, None)``.
    """
    stream: Iterator[str | Answer] | None = None
    try:
        stream = library.ask_stream(question, filters, history)
        written = ""
        for item in stream:
            if isinstance(item, Answer):
                yield answer_body_html(item, prefix), item
                return
            pieces = deltas(item) if len(item.split()) > REVEAL_WORDS else [item]
            for i, piece in enumerate(pieces):
                if i:
                    time.sleep(STREAM_PAUSE)
                written += piece
                yield provisional_html(written), None
        raise RuntimeError("the answer stream ended without an answer")
    except QAError as exc:
        yield sorry(str(exc)), None
    except Exception:
        log.exception("answering %r failed", question[:200])
        yield sorry(SORRY), None
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()  # e.g. the page went away: stop reading the model's reply


def chat_turn(
    library: Library,
    question: str,
    history: list[dict[str, Any]],
    answered: list[Turn],
    chosen: tuple[Any, ...] = (),
) -> Iterator[tuple[Any, Any, Any]]:
    """The chat's reply to ``question``, step by step, as (chat messages, sources panel,
    answered turns); ``gr.skip()`` for what does not change.

    ``history`` ends with the question as the chat shows it; ``chosen`` are the filter
    inputs (sources, from, until), empty in the embed view.
    """
    if not question:
        yield gr.skip(), gr.skip(), gr.skip()
        return
    earlier = list(history)

    def bubble(content: str) -> list[dict[str, Any]]:
        return [*earlier, {"role": "assistant", "content": content}]

    yield bubble(THINKING), gr.skip(), gr.skip()
    try:
        filters = make_filters(chosen[0] or (), (), chosen[1], chosen[2]) if chosen else None
    except QAError as exc:
        yield bubble(sorry(str(exc))), gr.skip(), gr.skip()
        return
    prefix = new_prefix()
    conversation = [
        {**m, "content": without_reader_aids(m["content"])}
        if m.get("role") == "assistant" and isinstance(m.get("content"), str)
        else m
        for m in earlier
    ]
    for content, answer in stream_reply(library, question, filters, conversation, prefix):
        if answer is None:
            yield bubble(content), gr.skip(), gr.skip()
        else:
            answered = [*answered, Turn(question, answer, prefix)]
            yield bubble(content), sources_html(answered), answered


# -- example questions -------------------------------------------------------------------------

_PERFECT = re.compile(
    r"(?P<subject>\S+(?: \S+){0,7}?) (?P<aux>has|have|had) (?P<verb>[a-z]+(?:ed|en|un|ld|ght))\b"
)


def question_from_title(title: str) -> str:
    """A question a headline answers: "X has ordered Y" -> "What has X ordered?"."""
    title = " ".join(title.split()).rstrip(" .!?:;,")
    m = _PERFECT.match(title)
    if m:
        return f"What {m['aux']} {m['subject']} {m['verb']}?"
    words = title.split()
    topic = " ".join(words[:10]) + ("…" if len(words) > 10 else "")
    return f"What do the articles say about {topic}?"


def example_questions(library: Library, limit: int = MAX_EXAMPLES) -> list[str]:
    """Questions made from the titles of the newest articles; none for an empty library."""
    try:
        rows = library.articles()
    except Exception:  # an unreachable store shows no examples; asking reports the problem
        log.warning("could not list the articles for example questions", exc_info=True)
        return []
    rows.sort(key=lambda r: (r.info.published or "", r.info.id), reverse=True)
    questions: list[str] = []
    for row in rows:
        q = question_from_title(row.info.title)
        if q not in questions:
            questions.append(q)
        if len(questions) == limit:
            break
    return questions


def source_names(library: Library) -> list[str]:
    try:
        return sorted({r.info.source for r in library.articles() if r.info.source})
    except Exception:
        log.warning("could not list the sources", exc_info=True)
        return []


# -- the page ----------------------------------------------------------------------------------

# Opens the article of a clicked "Open article" button (the sources panel's own handler).
OPEN_ARTICLE_JS = """
element.addEventListener('click', (event) => {
  const button = event.target.closest('button.qa-open');
  if (button) trigger('click', {article: button.dataset.article, prefix: button.dataset.prefix});
});
"""

# The article view's "Close article" button.
CLOSE_ARTICLE_JS = """
element.addEventListener('click', (event) => {
  if (event.target.closest('button.qa-close')) trigger('click');
});
"""
ARTICLE_BAR = (
    '<div class="qa-article-bar"><b>The whole article</b>'
    '<button type="button" class="qa-close">Close article</button></div>'
)

# A click on a marker [n] in an answer brings its citation into view and flashes it.
PAGE_JS = """
() => {
  if (window.__qaMarkers) return;
  window.__qaMarkers = true;
  document.addEventListener('click', (event) => {
    const link = event.target.closest && event.target.closest('a.qa-marker');
    if (!link) return;
    const id = (link.getAttribute('href') || '').replace(/^#/, '');
    const root = link.getRootNode();
    const card = (root.getElementById ? root.getElementById(id) : null)
      || document.getElementById(id);
    event.preventDefault();
    event.stopPropagation();
    if (!card) return;
    const turn = card.closest('details');
    if (turn) turn.open = true;
    card.scrollIntoView({behavior: 'smooth', block: 'center'});
    card.classList.remove('qa-flash');
    void card.offsetWidth;
    card.classList.add('qa-flash');
  }, true);
}
"""

# After "Open article": the article comes into view, scrolled to its first cited span.
SCROLL_TO_ARTICLE_JS = """
() => {
  setTimeout(() => {
    const box = document.getElementById('qa-article-box');
    if (!box) return;
    box.scrollIntoView({behavior: 'smooth', block: 'start'});
    const text = box.querySelector('.qa-text');
    const mark = box.querySelector('mark.qa-cited');
    if (text && mark) text.scrollTop = mark.offsetTop - text.offsetTop - 24;
  }, 60);
}
"""

PAGE_CSS = (Path(__file__).with_name("app.css")).read_text(encoding="utf-8")


def build_app(library: Library, embed: bool = False) -> Any:
    """The chat as a ``gr.Blocks``; the full page, or the compact one with ``embed``.

    Besides the page, the app has the API endpoint ``/ask`` (``reply``).
    """
    examples = example_questions(library)
    hidden = "private"  # the page's own events are not part of the Gradio API

    with gr.Blocks(
        title=TITLE,
        analytics_enabled=False,
        fill_width=True,
        delete_cache=(3600, 3600),
    ) as app:
        turns = gr.State([])  # list[Turn], the answered questions of this conversation
        pending = gr.State("")  # the question being answered
        if not embed:
            gr.HTML(
                f'<header class="qa-header"><h1>{escape(TITLE)}</h1>'
                f"<p>{escape(DESCRIPTION)}</p></header>",
                js_on_load=None,
            )
        with gr.Row(equal_height=False, elem_classes=["qa-main"]):
            with gr.Column(scale=3, min_width=320, elem_classes=["qa-chat-col"]):
                chatbot = gr.Chatbot(
                    label="Conversation",
                    show_label=False,
                    height="min(560px, 62vh)" if not embed else "min(440px, 60vh)",
                    elem_id="qa-chatbot",
                    sanitize_html=True,
                    render_markdown=True,
                    latex_delimiters=[],
                    allow_tags=False,
                    buttons=["copy"],
                    feedback_options=None,
                    layout="bubble",
                    examples=[{"text": q} for q in examples] or None,
                    placeholder=None if examples else EMPTY_LIBRARY[embed],
                )
                with gr.Row(elem_classes=["qa-input"], equal_height=True):
                    box = gr.Textbox(
                        show_label=False,
                        placeholder=PLACEHOLDER,
                        lines=1,
                        max_lines=4,
                        max_length=library.settings.max_question_chars,
                        scale=5,
                        min_width=160,
                        elem_id="qa-question",
                        autofocus=not embed,
                    )
                    ask_btn = gr.Button(
                        "Ask", variant="primary", scale=0, min_width=76, elem_id="qa-ask"
                    )
                with gr.Row(elem_classes=["qa-tools"]):
                    clear_btn = gr.Button(
                        "Clear conversation", size="sm", variant="secondary", elem_id="qa-clear"
                    )
                    filter_note = gr.HTML(
                        "" if embed else _filter_note(describe(make_filters())),
                        js_on_load=None,
                        elem_classes=["qa-filter-note"],
                    )
                filter_inputs: list[Any] = []
                if not embed:
                    with gr.Accordion("Filters", open=False, elem_id="qa-filters"):
                        source_dd = gr.Dropdown(
                            choices=source_names(library),
                            multiselect=True,
                            label="Sources",
                            info="Only articles from these sources (none chosen: all).",
                            elem_id="qa-sources-filter",
                        )
                        with gr.Row():
                            since = gr.DateTime(
                                include_time=False,
                                type="string",
                                label="Published from",
                                elem_id="qa-since",
                            )
                            until = gr.DateTime(
                                include_time=False,
                                type="string",
                                label="Published until",
                                elem_id="qa-until",
                            )
                        gr.Markdown("Filters apply to the next question.")
                    filter_inputs = [source_dd, since, until]
                    with gr.Accordion("Add articles", open=False, elem_id="qa-upload"):
                        mb = library.settings.upload_max_mb
                        files = gr.File(
                            file_count="multiple",
                            type="filepath",
                            label=f"Articles ({', '.join(FORMATS)}; up to {mb:g} MB each)",
                            elem_id="qa-files",
                            height=140,
                        )
                        upload_btn = gr.Button("Add to the library", elem_id="qa-add")
                        report = gr.HTML(js_on_load=None, elem_id="qa-report")
            with gr.Column(scale=2, min_width=300, elem_classes=["qa-side-col"]):
                sources = gr.HTML(
                    sources_html([]),
                    js_on_load=OPEN_ARTICLE_JS,
                    elem_id="qa-sources",
                )
                with gr.Column(visible=False, elem_id="qa-article-box") as article_box:
                    article_view = gr.HTML(js_on_load=CLOSE_ARTICLE_JS, elem_id="qa-article")

        # -- asking: take the question, then stream the reply ------------------------------

        def take(question: str, history: list[dict[str, Any]]) -> tuple[Any, ...]:
            question = question.strip()
            if not question:
                return question, gr.skip(), gr.skip(), gr.skip()
            history = [*history, {"role": "user", "content": escape(question)}]
            return (
                question,
                gr.Textbox(value="", interactive=False),
                gr.Button(interactive=False),
                history,
            )

        def take_example(history: list[dict[str, Any]], evt: gr.SelectData) -> tuple[Any, ...]:
            value = evt.value if isinstance(evt.value, dict) else {"text": str(evt.value)}
            return take(str(value.get("text", "")), history)

        def respond(
            question: str, history: list[dict[str, Any]], answered: list[Turn], *chosen: Any
        ) -> Iterator[tuple[Any, ...]]:
            yield from chat_turn(library, question, history, answered, chosen)

        def ready() -> tuple[Any, Any]:
            return gr.Textbox(interactive=True), gr.Button(interactive=True)

        asked = gr.on(
            [box.submit, ask_btn.click],
            take,
            inputs=[box, chatbot],
            outputs=[pending, box, ask_btn, chatbot],
            queue=False,
            api_visibility=hidden,
        )
        picked = chatbot.example_select(
            take_example,
            inputs=[chatbot],
            outputs=[pending, box, ask_btn, chatbot],
            queue=False,
            api_visibility=hidden,
        )
        for event in (asked, picked):
            event.then(
                respond,
                inputs=[pending, chatbot, turns, *filter_inputs],
                outputs=[chatbot, sources, turns],
                api_visibility=hidden,
                show_progress="hidden",
            ).then(ready, outputs=[box, ask_btn], queue=False, api_visibility=hidden)

        def clear() -> tuple[Any, ...]:
            return [], [], sources_html([]), gr.Column(visible=False), ""

        gr.on(
            [clear_btn.click, chatbot.clear],
            clear,
            outputs=[chatbot, turns, sources, article_box, article_view],
            queue=False,
            api_visibility=hidden,
        )

        # -- the article of a citation ---------------------------------------------------

        def open_article(answered: list[Turn], evt: gr.EventData) -> tuple[Any, Any]:
            data = evt._data if isinstance(evt._data, dict) else {}
            article_id, prefix = str(data.get("article", "")), str(data.get("prefix", ""))
            cited = next((t.answer.citations for t in answered if t.prefix == prefix), ())
            try:
                article = library.article(article_id) if article_id else None
            except QAError as exc:
                return gr.Column(visible=True), ARTICLE_BAR + sorry(str(exc))
            if article is None:
                gone = sorry("this article is no longer in the library.")
                return gr.Column(visible=True), ARTICLE_BAR + gone
            return gr.Column(visible=True), ARTICLE_BAR + article_html(article, cited)

        sources.click(
            open_article,
            inputs=[turns],
            outputs=[article_box, article_view],
            api_visibility=hidden,
        ).then(None, js=SCROLL_TO_ARTICLE_JS, api_visibility=hidden)
        article_view.click(
            lambda: gr.Column(visible=False),
            outputs=article_box,
            queue=False,
            api_visibility=hidden,
        )

        # -- filters and uploads ---------------------------------------------------------

        if not embed:

            def note(chosen_sources: list[str] | None, start: str | None, end: str | None) -> str:
                try:
                    return _filter_note(
                        describe(make_filters(chosen_sources or (), (), start, end))
                    )
                except QAError as exc:
                    return _filter_note(str(exc), bad=True)

            gr.on(
                [source_dd.change, since.change, until.change],
                note,
                inputs=filter_inputs,
                outputs=filter_note,
                queue=False,
                api_visibility=hidden,
            )

            tracker = gr.Progress(track_tqdm=True)  # follows ingestion's progress bar

            def add(paths: list[str] | None, progress: Any = tracker) -> tuple[Any, ...]:
                if not paths:
                    return sorry("choose one or more files first."), gr.skip(), gr.skip()
                progress(0, desc="Reading the files")
                uploads = [(Path(p).name, p) for p in paths]
                try:
                    result = ingest_uploads(
                        library,
                        uploads,
                        upload_limit(library),
                        progress=True,
                    )
                except QAError as exc:
                    return sorry(str(exc)), gr.skip(), gr.skip()
                return (
                    ingest_report_html(result.report, result.seconds),
                    gr.Dropdown(choices=source_names(library)),
                    None,
                )

            upload_btn.click(
                add,
                inputs=[files],
                outputs=[report, source_dd, files],
                api_visibility=hidden,
                concurrency_limit=1,
                concurrency_id="ingest",
            )
            app.load(
                lambda: gr.Dropdown(choices=source_names(library)),
                outputs=source_dd,
                queue=False,
                api_visibility=hidden,
            )

        def ask(message: str) -> str:
            """The reply to ``message`` as HTML: the answer with its markers, then its sources."""
            return reply(library, message)

        api(ask, api_name=API_NAME)
    return app


def upload_limit(library: Library) -> int:
    """The largest file the chat accepts, in bytes."""
    return int(library.settings.upload_max_mb * 1_000_000)


def _filter_note(text: str, bad: bool = False) -> str:
    return f'<p class="qa-note{" qa-bad" if bad else ""}">{escape(text)}</p>'


def serve(library: Library) -> None:
    """Serve the chat, the embed view and the API (``ui.server.serve``)."""
    from ui.server import serve as serve_all

    serve_all(library)
