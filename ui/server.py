"""One process serving everything: the chat at ``/``, its embed view at ``/embed``, the API at
``/api`` (documented at ``/docs``), Gradio's JavaScript at ``/gradio.js`` for ``<gradio-app>``
and an example page at ``/embed-example``.

Nothing here fetches from or points browsers at another host: Gradio's assets, the web component's
JavaScript and the API docs' Swagger UI are all served from this server.

Which other origins may frame the pages (CSP ``frame-ancestors``) and call the API or the chat
from a browser (CORS) is ``Settings.allowed_origins``; by default only the server's own origin.
With ``Settings.access_token`` every route asks for the token (``ui.auth``). Questions are
answered a few at a time, the rest wait in a bounded queue: the API's and the chat's own
(``Settings.max_concurrent_questions``, ``max_queued_questions``).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import gradio as gr
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qa.service import Library
from ui.api import api_router, install_error_handlers
from ui.app import PAGE_CSS, PAGE_JS, TITLE, build_app, upload_limit
from ui.auth import AccessToken

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
EMBED_PATH = "/embed"
EXAMPLE_PATH = "/embed-example"
STATIC = {  # our own files served at /static-qa/NAME
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
}


def gradio_js() -> Path:
    """The installed Gradio's web-component loader (``<script type="module" src=...>``)."""
    path = Path(gr.__file__).resolve().parent / "templates" / "frontend" / "gradio.js"
    if not path.is_file():
        raise FileNotFoundError(f"Gradio's front end is missing: {path}")
    return path


class FrameAncestors:
    """Adds ``Content-Security-Policy: frame-ancestors 'self' ORIGIN...`` to every response."""

    def __init__(self, app: ASGIApp, origins: list[str]) -> None:
        self.app = app
        self.policy = "frame-ancestors " + (
            "*" if "*" in origins else " ".join(["'self'", *origins])
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if "content-security-policy" not in headers:
                    headers["Content-Security-Policy"] = self.policy
            await send(message)

        await self.app(scope, receive, send_with_policy)


def create_server(library: Library) -> FastAPI:
    """The FastAPI app: API routes first, then the embed view and the chat mounted by Gradio."""
    settings = library.settings
    origins = list(settings.allowed_origins)
    app = FastAPI(
        title=f"{TITLE}: API",
        version="1",
        description=(
            "Questions answered from news articles; every sentence of an answer carries a "
            "marker [n] leading to the exact quoted passage (`citations[n-1]`, with the "
            "character offsets of the quote in its article)."
        ),
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    install_error_handlers(app)
    app.include_router(api_router(library))

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{TITLE}: API",
            swagger_js_url="/static-qa/swagger-ui-bundle.js",
            swagger_css_url="/static-qa/swagger-ui.css",
            swagger_favicon_url="/favicon.ico",
            swagger_ui_parameters={"validatorUrl": None, "defaultModelsExpandDepth": 0},
        )

    @app.get("/static-qa/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in STATIC:
            return Response(status_code=404)
        return FileResponse(HERE / name, media_type=STATIC[name])

    js = gradio_js()

    @app.get("/gradio.js", include_in_schema=False)
    def web_component() -> FileResponse:
        return FileResponse(js, media_type="text/javascript")

    @app.get(EXAMPLE_PATH, include_in_schema=False)
    def example() -> FileResponse:
        return FileResponse(HERE / "embed-example.html", media_type="text/html")

    @app.get(EMBED_PATH, include_in_schema=False)
    def embed_slash() -> RedirectResponse:
        return RedirectResponse(f"{EMBED_PATH}/")

    # The last added runs first: FrameAncestors, CORS (which answers preflights, which carry
    # no token, and marks refusals readable), then the token check.
    allow_headers = ["Content-Type"]
    if settings.access_token is not None:
        app.add_middleware(AccessToken, token=settings.access_token)
        allow_headers.append("Authorization")
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_methods=["GET", "POST"],
        allow_headers=allow_headers,
        max_age=600,
    )
    app.add_middleware(FrameAncestors, origins=origins)

    mount: dict[str, Any] = {
        "server_name": settings.host,
        "server_port": settings.port,
        "css": PAGE_CSS,
        "js": PAGE_JS,
        "theme": theme(),
        "ssr_mode": False,
        "max_file_size": upload_limit(library),
        "show_error": False,
        "run_history": False,
        "mcp_server": False,
        "pwa": False,
        "enable_monitoring": False,
    }
    # A full queue refuses a question at once with "queue is full" instead of piling up.
    queue = {
        "default_concurrency_limit": settings.max_concurrent_questions,
        "max_size": settings.max_queued_questions,
    }
    embed = build_app(library, embed=True).queue(**queue)
    gr.mount_gradio_app(app, embed, path=EMBED_PATH, footer_links=[], **mount)
    chat = build_app(library).queue(**queue)
    gr.mount_gradio_app(app, chat, path="/", footer_links=["api", "settings"], **mount)
    return app


def theme() -> Any:
    """Gradio's default look in indigo, in the reader's own system fonts (nothing to load)."""
    return gr.themes.Default(
        primary_hue="indigo",
        secondary_hue="amber",
        neutral_hue="slate",
        font=["system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"],
    )


def serve(library: Library) -> None:
    """Serve until interrupted on the configured host and port. The model loads meanwhile."""
    import uvicorn

    settings = library.settings
    library.hold_writer_lock("qa serve")  # uploads write: refuse a second writer at once
    threading.Thread(target=_warm_up, args=(library,), daemon=True).start()
    app = create_server(library)
    url = f"http://{settings.host}:{settings.port}"
    print(f"Serving the chat on {url}/ (API docs: {url}/docs)", flush=True)
    # Open pages keep event streams open: on Ctrl-C, wait for them a few seconds, not forever.
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=5,
    )


def _warm_up(library: Library) -> None:
    try:
        library.warm_up()
    except Exception:  # the first real question will report the problem
        log.debug("warm-up failed", exc_info=True)
