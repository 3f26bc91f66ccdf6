"""The HTTP API, served beside the chat: ask (whole or streamed) and read the articles.

``POST /api/ask`` answers with exactly the JSON of ``qa ask --json`` (``qa.output.answer_dict``);
``POST /api/ask/stream`` sends the same answer as server-sent events: ``delta`` events with
pieces of the answer's text as it is written (with an LLM, the model's words as they come,
provisional), then one ``answer`` event with the whole, verified JSON (or one ``error``
event). Bad requests get a 4xx with ``{"detail": "a sentence saying what is wrong"}``.

Answering is CPU-bound, so questions are answered a few at a time on worker threads, a bounded
number more wait their turn (``Capacity``), and beyond that a question gets ``503`` with
``Retry-After`` at once instead of slowing everyone down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, Literal, TypeVar

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from starlette.types import Receive, Scope, Send

from qa.output import answer_dict, summary_dict
from qa.service import Library
from qa.types import Answer
from ui.filters import check_date, make_filters
from ui.render import deltas
from vectorstore.errors import QAError
from vectorstore.types import Filters

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_HISTORY = 100  # messages
MAX_MESSAGE_CHARS = 20_000
MAX_FILTER_VALUES = 100


# -- requests ----------------------------------------------------------------------------------


class Message(BaseModel):
    """One earlier message of the conversation."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    content: str = Field(max_length=MAX_MESSAGE_CHARS)


class FiltersIn(BaseModel):
    """Which articles to search; every key is optional and an empty filter searches all."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"sources": ["BBC"], "since": "2014-05-01"}]},
    )

    sources: list[str] = Field(
        default_factory=list,
        max_length=MAX_FILTER_VALUES,
        description="Only articles from these sources.",
    )
    article_ids: list[str] = Field(
        default_factory=list, max_length=MAX_FILTER_VALUES, description="Only these articles."
    )
    since: str | None = Field(
        default=None, description="Only articles published on or after (YYYY-MM-DD)."
    )
    until: str | None = Field(
        default=None, description="Only articles published on or before (YYYY-MM-DD)."
    )

    @field_validator("since", "until")
    @classmethod
    def _date(cls, value: str | None) -> str | None:
        try:
            return check_date(value)
        except QAError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _order(self) -> FiltersIn:
        try:
            self.as_filters()
        except QAError as exc:
            raise ValueError(str(exc)) from None
        return self

    def as_filters(self) -> Filters:
        return make_filters(self.sources, self.article_ids, self.since, self.until)


class AskRequest(BaseModel):
    """A question, the conversation so far (accepted, not yet used) and filters."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "question": "Who did Putin order to pull back the forces?",
                    "history": [],
                    "filters": {},
                }
            ]
        },
    )

    question: str = Field(description="The question, in plain language.")
    history: list[Message] = Field(
        default_factory=list,
        max_length=MAX_HISTORY,
        description="Earlier messages, oldest first: a follow-up such as 'What did NATO say "
        "about it?' is resolved against them.",
    )
    filters: FiltersIn = Field(default_factory=lambda: FiltersIn())


# -- responses ---------------------------------------------------------------------------------


class CitationOut(BaseModel):
    n: int = Field(description="The marker [n] in the answer.")
    article_id: str
    title: str
    source: str | None
    url: str | None
    published: str | None = Field(description="YYYY-MM-DD")
    quote: str = Field(description="Exactly the article's text[start:end].")
    start: int
    end: int
    score: float = Field(description="Relevance, 0 to 1.")


class SentenceOut(BaseModel):
    text: str = Field(description="One sentence of the answer, without its markers.")
    citations: list[int] = Field(description="The markers [n] it carries.")
    supported: bool = Field(description="False when its cited passages do not back it up.")


class AnswerOut(BaseModel):
    """The JSON of ``qa ask --json``."""

    question: str
    answer: str = Field(description="Every sentence ends with the marker [n] of its citation.")
    abstained: bool = Field(description="True when the articles don't say: then no citations.")
    citations: list[CitationOut]
    short_answer: str | None = Field(None, description="A short form of the answer, if any.")
    answerer: str = Field(description="extractive, llm or llm-fallback")
    note: str | None = Field(None, description="Why the answer is as it is, when notable.")
    sentences: list[SentenceOut]


class ArticleSummaryOut(BaseModel):
    id: str
    title: str
    source: str | None
    url: str | None
    published: str | None
    chunks: int = Field(description="How many passages the article is stored as.")
    chars: int


class ArticleOut(BaseModel):
    id: str
    title: str
    source: str | None
    url: str | None
    published: str | None
    text: str


class ErrorOut(BaseModel):
    detail: str


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "The body is not JSON."},
    422: {"model": ErrorOut, "description": "The request is not a question that can be asked."},
    503: {
        "model": ErrorOut,
        "description": "The article store cannot be used right now, or the server is busy: "
        "then the header `Retry-After` says in how many seconds to ask again.",
    },
}

STREAM_DOC = """Server-sent events (`text/event-stream`):

```
event: delta
data: {"text": "Mr Putin specifically"}

event: delta
data: {"text": " ordered Defence Minister"}
...
event: answer
data: {"question": ..., "answer": ..., "abstained": false, "citations": [...]}
```

The last event is `answer` (the JSON of `POST /api/ask`) or, when answering failed, `error`
with `{"detail": "..."}`. Offline, the `delta` texts joined are the answer. With an LLM they are
the model's words as it writes them, before verification: show them as provisional and replace
them with the `answer` event, the verified answer (markers that point at no passage removed,
unsupported sentences flagged).
"""


# -- capacity ----------------------------------------------------------------------------------


class Capacity:
    """At most ``concurrent`` questions answered at once, each on a worker thread, and at most
    ``queued`` more waiting for a turn; beyond that ``run`` refuses at once with a 503 whose
    ``Retry-After`` estimates when a turn frees up. Used from the event loop only."""

    def __init__(self, concurrent: int, queued: int) -> None:
        self.concurrent = concurrent
        self.queued = queued
        self.running = 0
        self.waiting = 0
        self.seconds = 0.1  # moving average of one answer's time
        self._turns = asyncio.Semaphore(concurrent)

    def retry_after(self) -> int:
        """Seconds until the questions ahead are likely answered; at least 1."""
        ahead = self.running + self.waiting + 1
        return max(1, math.ceil(ahead / self.concurrent * self.seconds))

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on a worker thread when its turn comes, or a 503 now when full."""
        started = await self.enter()
        try:
            return await run_in_threadpool(fn, *args)
        finally:
            self.leave(started)

    async def enter(self) -> float:
        """Wait for a turn (a 503 at once when too many wait); when it started, for ``leave``."""
        if self.running + self.waiting >= self.concurrent + self.queued:
            raise HTTPException(
                503,
                detail="The server is busy answering other questions; please ask again shortly.",
                headers={"Retry-After": str(self.retry_after())},
            )
        self.waiting += 1
        try:
            await self._turns.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        return time.perf_counter()

    def leave(self, started: float) -> None:
        """End the turn ``enter`` gave at ``started``."""
        self.running -= 1
        self._turns.release()
        self.seconds = 0.8 * self.seconds + 0.2 * (time.perf_counter() - started)


class TurnResponse(StreamingResponse):
    """A streamed answer that ends its ``Capacity`` turn when the response ends, however it
    ends (finished, failed, or the client gone before the first byte)."""

    def __init__(self, content: AsyncIterator[str], end_turn: Callable[[], None], **kw: Any):
        super().__init__(content, **kw)
        self._end_turn: Callable[[], None] | None = end_turn

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            end, self._end_turn = self._end_turn, None
            if end is not None:
                end()


async def iterate_in_thread(make: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
    """The items of ``make()``, produced on a worker thread as they come (the model's words as
    it writes them). Closing this iterator early stops the thread's after its next item."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    stop = threading.Event()

    def put(kind: str, value: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is listening
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))

    def work() -> None:
        try:
            items = make()
            try:
                for item in items:
                    put("item", item)
                    if stop.is_set():
                        break
            finally:
                close = getattr(items, "close", None)
                if close is not None:
                    close()
        except BaseException as exc:  # handed to the loop, raised there
            put("error", exc)
        else:
            put("end", None)

    loop.run_in_executor(None, work)
    try:
        while True:
            kind, value = await queue.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()


# -- routes ------------------------------------------------------------------------------------


def api_router(library: Library) -> APIRouter:
    """The ``/api`` routes over ``library``."""
    router = APIRouter(prefix="/api", tags=["questions and articles"])
    settings = library.settings
    capacity = Capacity(settings.max_concurrent_questions, settings.max_queued_questions)

    def history(request: AskRequest) -> list[dict[str, str]]:
        return [m.model_dump() for m in request.history]

    def checked(request: AskRequest) -> tuple[str, Filters]:
        try:
            question = library.check_question(request.question)
        except QAError as exc:
            raise HTTPException(422, detail=f"question: {exc}") from None
        return question, request.filters.as_filters()

    def answer(question: str, filters: Filters, turns: list[dict[str, str]]) -> Answer:
        try:
            return library.ask(question, filters, turns)
        except QAError as exc:
            raise HTTPException(503, detail=str(exc)) from None

    @router.post("/ask", response_model=AnswerOut, responses=ERRORS, summary="Ask a question")
    async def ask(request: AskRequest) -> dict[str, Any]:
        """The answer with its citations: the same JSON as `qa ask --json`."""
        question, filters = checked(request)
        return answer_dict(await capacity.run(answer, question, filters, history(request)))

    @router.post(
        "/ask/stream",
        response_class=StreamingResponse,
        responses={
            **ERRORS,
            200: {"content": {"text/event-stream": {}}, "description": STREAM_DOC},
        },
        summary="Ask a question, the answer streamed",
    )
    async def ask_stream(request: AskRequest) -> StreamingResponse:
        """The answer as server-sent events: text deltas, then the whole answer JSON."""
        question, filters = checked(request)
        turns = history(request)
        started = await capacity.enter()  # before the response starts: a full server says 503

        async def events() -> AsyncIterator[str]:
            try:
                pieces = iterate_in_thread(lambda: library.ask_stream(question, filters, turns))
                async for item in pieces:
                    if isinstance(item, Answer):
                        yield sse("answer", answer_dict(item))
                        return
                    for piece in deltas(item):
                        yield sse("delta", {"text": piece})
                yield sse("error", {"detail": "the answer ended before it was complete"})
            except QAError as exc:
                yield sse("error", {"detail": str(exc)})
            except Exception:
                log.exception("answering %r failed", question[:200])
                yield sse("error", {"detail": "something went wrong while answering"})

        return TurnResponse(
            events(),
            end_turn=lambda: capacity.leave(started),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @router.get("/articles", response_model=list[ArticleSummaryOut], summary="List the articles")
    def articles() -> list[dict[str, Any]]:
        """Every article in the library (what `qa list --json` prints), ordered by id."""
        try:
            rows = library.articles()
        except QAError as exc:
            raise HTTPException(503, detail=str(exc)) from None
        return [summary_dict(r) for r in rows]

    @router.get(
        "/articles/{article_id:path}",
        response_model=ArticleOut,
        responses={404: {"model": ErrorOut, "description": "No such article."}, 503: ERRORS[503]},
        summary="Read one article",
    )
    def article(article_id: str) -> dict[str, Any]:
        """The whole article; citations' `start`/`end` are offsets into its `text`."""
        try:
            found = library.article(article_id)
        except QAError as exc:
            raise HTTPException(503, detail=str(exc)) from None
        if found is None:
            raise HTTPException(404, detail=f"no such article: {article_id!r}")
        return {
            "id": found.id,
            "title": found.title,
            "source": found.source,
            "url": found.url,
            "published": found.published,
            "text": found.text,
        }

    return router


def sse(event: str, data: dict[str, Any]) -> str:
    """One server-sent event; the JSON is on one line, so it is one ``data:`` field."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


# -- errors as one clear sentence --------------------------------------------------------------

_KEYS: dict[str, type[BaseModel]] = {
    "body": AskRequest,
    "filters": FiltersIn,
    "history": Message,
}


def describe_errors(errors: Sequence[Any]) -> tuple[int, str]:
    """The status and one readable message for pydantic's validation errors."""
    messages: list[str] = []
    status = 422
    for error in errors:
        kind = str(error.get("type", ""))
        loc = [p for p in error.get("loc", ()) if p != "body"]
        where = _where(loc)
        if kind == "json_invalid":
            status = 400
            reason = error.get("ctx", {}).get("error", "")
            messages.append(f"the body is not valid JSON ({reason})" if reason else "bad JSON")
        elif kind == "extra_forbidden":
            parent = next(
                (str(p) for p in reversed(error.get("loc", ())[:-1]) if isinstance(p, str)), "body"
            )
            model = _KEYS.get(parent, AskRequest)
            allowed = ", ".join(model.model_fields)
            messages.append(f"unknown key {where!r} (the keys are: {allowed})")
        elif kind == "missing":
            messages.append(f"{where or 'body'}: required")
        elif kind in {"model_attributes_type", "dict_type"} and not loc:
            messages.append('the body must be a JSON object like {"question": "..."}')
        else:
            msg = str(error.get("msg", "invalid")).removeprefix("Value error, ")
            messages.append(f"{where}: {msg}" if where else msg)
    return status, "; ".join(dict.fromkeys(messages)) or "invalid request"


def _where(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def install_error_handlers(app: FastAPI) -> None:
    """Validation errors of ``app``'s own routes as ``{"detail": "..."}`` with 400 or 422."""

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        status, message = describe_errors(exc.errors())
        return JSONResponse({"detail": message}, status_code=status)
