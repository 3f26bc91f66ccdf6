"""The Gradio chat app, and ``serve`` to run it on the configured host and port."""

from __future__ import annotations

import logging
import os
import threading
import uuid
from typing import Any

from qa.service import Library
from ui.render import answer_html, escape
from vectorstore.errors import QAError

log = logging.getLogger(__name__)

API_NAME = "ask"
TITLE = "Ask the articles"
DESCRIPTION = (
    "Ask a question in plain language. Every sentence of the answer is quoted from an article, "
    "and its marker [n] leads to the exact passage."
)


def reply(library: Library, message: str) -> str:
    """The chat's reply to ``message`` as HTML; errors become a plain message, never a trace."""
    try:
        answer = library.ask(message)
    except QAError as exc:
        return f"<p><b>Sorry:</b> {escape(str(exc))}</p>"
    except Exception:
        log.exception("answering %r failed", message[:200])
        return "<p><b>Sorry:</b> something went wrong while answering; please try again.</p>"
    return answer_html(answer, prefix=f"cite-{uuid.uuid4().hex[:8]}")


def build_app(library: Library) -> Any:
    """The chat as a ``gr.Blocks``; its function is the API endpoint ``/ask``."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    def respond(message: str, history: list[dict[str, Any]]) -> str:
        return reply(library, message)

    with gr.Blocks(title=TITLE, analytics_enabled=False) as app:
        gr.ChatInterface(
            respond,
            title=TITLE,
            description=DESCRIPTION,
            api_name=API_NAME,
            chatbot=gr.Chatbot(
                height=560, sanitize_html=True, render_markdown=True, label="Answers"
            ),
            textbox=gr.Textbox(placeholder="Which regions did Putin order troops to leave?"),
            save_history=False,
        )
    return app


def serve(library: Library) -> None:
    """Serve the chat until interrupted. The model loads in the background meanwhile."""
    settings = library.settings
    threading.Thread(target=_warm_up, args=(library,), daemon=True).start()
    app = build_app(library)
    app.queue(default_concurrency_limit=4).launch(
        server_name=settings.host,
        server_port=settings.port,
        share=False,
        show_error=False,
        inbrowser=False,
    )


def _warm_up(library: Library) -> None:
    try:
        library.search("warm up", 1)
    except Exception:  # the first real question will report the problem
        log.debug("warm-up failed", exc_info=True)
