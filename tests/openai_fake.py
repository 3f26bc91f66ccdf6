"""A tiny OpenAI-compatible chat server on 127.0.0.1 for tests: replies are scripted.

It speaks ``POST /v1/chat/completions`` like OpenAI, Ollama or llama.cpp's server: a JSON
``chat.completion`` for ordinary requests, and for ``"stream": true`` a ``text/event-stream``
of ``chat.completion.chunk`` objects (``data: {...}`` lines) ending with ``data: [DONE]``.

Each request takes the next ``Reply`` from the queue (an empty queue answers 500) and is
recorded (path, headers, raw body) so tests can check what was sent.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted reply.

    ``content``: the assistant's text. ``pieces``: for a streamed reply, the text cut into
    these chunks (default: word by word). ``status``: anything but 200 answers an error.
    ``delay``: seconds to wait before answering. ``gate``: for a streamed reply, wait for this
    event after the first chunk (a test sets it once it has seen that chunk). ``error_after``:
    for a streamed reply, send only this many pieces, then an error event (``data:
    {"error": {...}}``, as servers do when generation fails midway) and end the stream.
    """

    content: str = ""
    pieces: list[str] | None = None
    status: int = 200
    delay: float = 0.0
    gate: threading.Event | None = None
    error_after: int | None = None


@dataclass
class Request:
    """One request as received; ``headers`` with lower-case names."""

    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FakeOpenAI:
    """The running server: ``url`` is its base URL (ending in /v1)."""

    url: str
    replies: queue.Queue[Reply] = field(default_factory=queue.Queue)
    requests: list[Request] = field(default_factory=list)

    def script(self, *replies: Reply | str) -> None:
        for reply in replies:
            self.replies.put(Reply(reply) if isinstance(reply, str) else reply)


def _completion(content: str, model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def _chunk(delta: dict[str, Any], model: str, finish: str | None = None) -> bytes:
    data = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(data)}\n\n".encode()


def _words(text: str) -> list[str]:
    pieces: list[str] = []
    for word in text.split(" "):
        pieces.append(word if not pieces else " " + word)
    return pieces


def _handler(server: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            server.requests.append(Request(self.path, headers, body))
            try:
                reply = server.replies.get_nowait()
            except queue.Empty:
                reply = Reply(status=500, content="no scripted reply")
            try:
                time.sleep(reply.delay)
                if self.path != "/v1/chat/completions":
                    self._send_json(404, {"error": {"message": f"no route {self.path}"}})
                elif reply.status != 200:
                    self._send_json(reply.status, {"error": {"message": reply.content}})
                else:
                    request = json.loads(body)
                    model = str(request.get("model", "fake"))
                    if request.get("stream"):
                        self._stream(reply, model)
                    else:
                        self._send_json(200, _completion(reply.content, model))
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

        def _send_json(self, status: int, data: Any) -> None:
            payload = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _stream(self, reply: Reply, model: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(_chunk({"role": "assistant", "content": ""}, model))
            pieces = reply.pieces if reply.pieces is not None else _words(reply.content)
            for n, piece in enumerate(pieces):
                if n == reply.error_after:
                    error = {"message": "generation failed", "type": "server_error"}
                    self.wfile.write(f"data: {json.dumps({'error': error})}\n\n".encode())
                    break
                self.wfile.write(_chunk({"content": piece}, model))
                self.wfile.flush()
                if n == 0 and reply.gate is not None:
                    reply.gate.wait(timeout=10)
            else:
                self.wfile.write(_chunk({}, model, finish="stop"))
                self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
            self.close_connection = True

    return Handler


@contextlib.contextmanager
def fake_openai() -> Iterator[FakeOpenAI]:
    """A FakeOpenAI listening on a free loopback port, stopped afterwards."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    httpd.daemon_threads = True
    fake = FakeOpenAI(f"http://127.0.0.1:{httpd.server_address[1]}/v1")
    httpd.RequestHandlerClass = _handler(fake)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield fake
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
