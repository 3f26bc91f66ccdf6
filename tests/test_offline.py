"""Nothing leaves the machine: ingest, ask and serve run with every non-loopback connection
made to fail, and nothing tries one (no telemetry from Chroma or Gradio, no model-hub look-ups).

Each command runs as a child process with ``tests/netguard`` on ``PYTHONPATH``, whose
``sitecustomize`` refuses and logs any connection or name lookup that is not loopback. The
child's environment has none of the usual offline switches (``HF_HUB_OFFLINE``,
``ANONYMIZED_TELEMETRY``, ...), not even those ``conftest.py`` sets for the test process: the
product itself must be what keeps it offline. ``test_the_guard_refuses_and_logs`` shows the
guard works, and every command's run is checked to have been guarded, so the main tests
cannot pass for want of a guard.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, SEEDS, run_qa
from tests.servers import free_port, stop, wait_http
from vectorstore.embeddings import bundled_model_path

NETGUARD = Path(__file__).resolve().parent / "netguard"
QUESTION = "Who did Putin order to pull back the forces?"
# Switches that would make the libraries stay offline on their own; the children get none.
OFFLINE_SWITCHES = (
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "HF_HUB_DISABLE_TELEMETRY",
    "ANONYMIZED_TELEMETRY",
    "GRADIO_ANALYTICS_ENABLED",
    "DO_NOT_TRACK",
)


class Guard:
    """The environment of a guarded child, and what the guard saw."""

    def __init__(self, folder: Path) -> None:
        self.log = folder / "netguard.log"
        self.started = folder / "netguard-started.log"

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("QA_") and k not in OFFLINE_SWITCHES
        }
        env.update(
            PYTHONPATH=str(NETGUARD),
            NETGUARD_LOG=str(self.log),
            NETGUARD_STARTED=str(self.started),
        )
        return env

    def attempts(self) -> list[dict[str, Any]]:
        return read_json_lines(self.log)

    def guarded(self) -> list[list[str]]:
        """The command line of every process that started with the guard in place."""
        return [entry["argv"] for entry in read_json_lines(self.started)]

    def guarded_commands(self) -> list[str]:
        """The ``qa`` commands (``python -m qa.cli COMMAND``) that ran guarded, in order."""
        return [argv[3] for argv in self.guarded() if argv[1:3] == ["-m", "qa.cli"]]

    def assert_nothing_tried(self) -> None:
        attempts = self.attempts()
        assert attempts == [], "outbound connections were tried:\n" + "\n".join(
            f"{a['call']} {a['host']}:{a['port']} from {' '.join(a['argv'])}\n    "
            + "\n    ".join(a["stack"])
            for a in attempts
        )


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def qa(guard: Guard, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return run_qa(*args, env=guard.env(), cwd=ROOT, timeout=timeout)


def fetch(url: str, body: dict[str, Any] | None = None) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=120) as reply:
        return reply.status, reply.read()


# -- the guard itself ---------------------------------------------------------------------------

GUARD_PROBE = r"""
import errno, json, os, socket, tempfile, urllib.request

results = {}

def attempt(name, fn):
    try:
        fn()
        results[name] = "ok"
    except OSError as exc:
        cause = getattr(exc, "reason", exc)  # urllib wraps the socket's error in a URLError
        results[name] = errno.errorcode.get(cause.errno, str(cause.errno))

def outbound():
    with socket.socket() as s:
        s.settimeout(5)
        s.connect(("10.255.255.1", 80))

attempt("connect", outbound)
attempt("connect_ex", lambda: socket.socket().connect_ex(("10.255.255.1", 80)))
attempt("getaddrinfo", lambda: socket.getaddrinfo("huggingface.co", 443))
attempt("urlopen", lambda: urllib.request.urlopen("http://example.com/", timeout=5))

server = socket.create_server(("127.0.0.1", 0))
port = server.getsockname()[1]
attempt("loopback", lambda: socket.create_connection(("127.0.0.1", port), timeout=5).close())
attempt("localhost", lambda: socket.create_connection(("localhost", port), timeout=5).close())
with tempfile.TemporaryDirectory() as tmp:
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(os.path.join(tmp, "s"))
    unix.listen()
    def local_unix():
        with socket.socket(socket.AF_UNIX) as c:
            c.connect(os.path.join(tmp, "s"))
    attempt("unix", local_unix)
print(json.dumps(results))
"""


def test_the_guard_refuses_and_logs(tmp_path: Path) -> None:
    guard = Guard(tmp_path)
    probe = subprocess.run(
        [sys.executable, "-c", GUARD_PROBE],
        capture_output=True,
        text=True,
        timeout=60,
        env=guard.env(),
    )
    assert probe.returncode == 0, probe.stderr
    results = json.loads(probe.stdout)
    assert results == {
        "connect": "ENETUNREACH",
        "connect_ex": "ENETUNREACH",
        "getaddrinfo": "ENETUNREACH",
        "urlopen": "ENETUNREACH",
        "loopback": "ok",
        "localhost": "ok",
        "unix": "ok",
    }
    attempts = guard.attempts()
    assert [(a["call"], a["host"], a["port"]) for a in attempts] == [
        ("connect", "'10.255.255.1'", "80"),
        ("connect_ex", "'10.255.255.1'", "80"),
        ("getaddrinfo", "'huggingface.co'", "443"),
        ("create_connection", "'example.com'", "80"),
    ]
    assert all(a["stack"] and a["pid"] for a in attempts)
    assert any("outbound" in line for line in attempts[0]["stack"])  # where it came from
    assert guard.guarded() == [[sys.executable, "-c", GUARD_PROBE]]


# -- the product --------------------------------------------------------------------------------


@pytest.mark.slow
def test_ingest_ask_and_serve_try_no_outbound_connection(tmp_path: Path) -> None:
    guard = Guard(tmp_path)
    data = str(tmp_path / "data")

    ingest = qa(guard, "ingest", str(SEEDS), "--data-dir", data, "--quiet")
    assert ingest.returncode == 0, ingest.stderr
    assert ingest.stdout.startswith("1 new, 0 updated, 0 unchanged, 0 failed"), ingest.stdout

    ask = qa(guard, "ask", QUESTION, "--data-dir", data, "--json")
    assert ask.returncode == 0, ask.stderr
    answer = json.loads(ask.stdout)
    assert "Shoigu" in answer["answer"] and answer["citations"], answer

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "qa.cli", "serve", "--data-dir", data, "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=guard.env(),
        )
        try:
            wait_http(f"{url}/api/articles", timeout=180, proc=proc)
            for path in ("/", "/embed/", "/gradio.js"):
                status, body = fetch(url + path)
                assert status == 200 and body, path
            status, body = fetch(f"{url}/api/ask", {"question": QUESTION})
            reply = json.loads(body)
            assert status == 200 and "Shoigu" in reply["answer"] and reply["citations"], reply
            time.sleep(3)  # room for anything started in the background at launch
        finally:
            stop(proc)
    printed = log_path.read_text(encoding="utf-8", errors="replace")
    assert f"Serving the chat on {url}/" in printed
    assert "Traceback" not in printed, printed

    assert guard.guarded_commands() == ["ingest", "ask", "serve"]
    guard.assert_nothing_tried()


@pytest.mark.slow
def test_a_sentence_transformers_model_folder_tries_no_outbound_connection(
    tmp_path: Path,
) -> None:
    """``--embedding-model`` loads through sentence-transformers and transformers, the
    libraries that look things up on the model hub unless told not to."""
    guard = Guard(tmp_path)
    flags = ("--data-dir", str(tmp_path / "data"), "--embedding-model", str(bundled_model_path()))
    ingest = qa(guard, "ingest", str(SEEDS), "--quiet", *flags)
    assert ingest.returncode == 0, ingest.stderr
    ask = qa(guard, "ask", QUESTION, "--json", *flags)
    assert ask.returncode == 0, ask.stderr
    assert "Shoigu" in json.loads(ask.stdout)["answer"]
    assert guard.guarded_commands() == ["ingest", "ask"]
    guard.assert_nothing_tried()
