"""Load on ``qa serve``: many clients asking through the API at once, every citation checked.

    python benchmarks/bench_load.py [--clients 16] [--seconds 60] [--articles 200] [--work DIR]
                                    [--overload [--overload-clients 64] [--overload-seconds 15]]
                                    [--json FILE]

The library: the project's ``seeds/`` plus the first N CNN/Daily Mail articles of HaluEval's
summarization file when the evaluation data is at hand (scripts/fetch-eval-data.sh; without it,
the seeds alone), ingested with ``qa ingest``; ``--work DIR`` keeps it for later runs (re-ingest
is idempotent). The questions: the first sentence of each article's published highlights, and a
few about the seed article.

``qa serve`` is started as a subprocess on 127.0.0.1 and a free port with its default capacity
(``--concurrent``/``--queued`` override ``QA_MAX_CONCURRENT_QUESTIONS``/``QA_MAX_QUEUED_QUESTIONS``)
and asked until it answers. Then:

1. ``--clients`` threads, each with its own keep-alive connection, ask ``POST /api/ask`` one
   question after another for ``--seconds``. Every 200's citations are checked against the
   article (``GET /api/articles/{id}``, cached): ``text[start:end] == quote``. A 503 must carry
   ``Retry-After``; its client waits that long, as a well-behaved client does.
2. With ``--overload``, the same with more clients than the server answers and queues at once
   (64 for 15 s by default against 4 + 32): the surplus must get 503 with ``Retry-After``,
   never an error, and the server must still answer afterwards.

Pass: zero errors (a status other than 200 and 503, a failed connection, an invalid citation, a
503 without Retry-After), the server alive at the end with no traceback in its log. Throughput
and the latency of the 200s (p50, p95) are reported. Run it on a quiet machine: latency is
measured from the client, on the same cores as the server.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from qa.evaluation import percentile  # noqa: E402

SEED_QUESTIONS = [
    "Who did Putin order to pull back the forces?",
    "Which regions were the troops ordered to leave?",
    "What did NATO say about the withdrawal of troops?",
    "Why did Putin order the troops home?",
    "What did the Kremlin statement not say?",
]
HOST = "127.0.0.1"


# -- the library and the server ----------------------------------------------------------------


def child_env(concurrent: int | None, queued: int | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    env |= {"HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    if concurrent is not None:
        env["QA_MAX_CONCURRENT_QUESTIONS"] = str(concurrent)
    if queued is not None:
        env["QA_MAX_QUEUED_QUESTIONS"] = str(queued)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def corpus(work: Path, articles: int) -> tuple[list[Path], list[str]]:
    """What to ingest and the questions to ask: the seeds, plus CNN/DM articles if at hand."""
    paths, questions = [ROOT / "seeds"], list(SEED_QUESTIONS)
    if articles <= 0:
        return paths, questions
    try:
        from bench_retrieval import cnn_data, eval_data_dir

        from qa.squad import write_corpus_jsonl

        cnn, asked = cnn_data(eval_data_dir(), articles)
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"no CNN/Daily Mail data ({exc}); the seed article alone", flush=True)
        return paths, questions
    paths.append(write_corpus_jsonl(cnn, work / f"corpus-{len(cnn)}.jsonl"))
    return paths, questions + [q.question for q in asked]


def ingest(paths: list[Path], data_dir: Path) -> float:
    started = time.perf_counter()
    command = [sys.executable, "-m", "qa.cli", "ingest", "--quiet", "--data-dir", str(data_dir)]
    subprocess.run([*command, *map(str, paths)], check=True, cwd=ROOT, env=child_env(None, None))
    return time.perf_counter() - started


def start_server(
    data_dir: Path, log: Path, env: dict[str, str], limit: float = 300
) -> tuple[subprocess.Popen[bytes], int, float]:
    """``qa serve`` on a free loopback port, once it has answered a first question."""
    port = free_port()
    command = [sys.executable, "-m", "qa.cli", "serve", "--data-dir", str(data_dir)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*command, "--host", HOST, "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=env,
        )
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        if proc.poll() is not None:
            raise SystemExit(f"qa serve exited ({proc.returncode}); see {log}")
        try:
            status, _, _ = request(port, "POST", "/api/ask", {"question": SEED_QUESTIONS[0]})
            if status == 200:
                return proc, port, time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.2)
    stop(proc)
    raise SystemExit(f"qa serve did not answer within {limit} s; see {log}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def request(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    connection: http.client.HTTPConnection | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request (on ``connection`` if given, else a new one): status, headers, body."""
    own = connection is None
    conn = connection or http.client.HTTPConnection(HOST, port, timeout=120)
    try:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        got = {k.lower(): v for k, v in response.getheaders()}
        return response.status, got, response.read()
    finally:
        if own:
            conn.close()


# -- the clients -------------------------------------------------------------------------------


@dataclass
class Phase:
    """What the clients of one phase saw."""

    name: str
    clients: int
    seconds: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)  # of the 200s
    citations: int = 0
    abstained: int = 0
    retry_after: Counter[int] = field(default_factory=Counter)  # seconds asked, of the 503s
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def error(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)

    @property
    def answered(self) -> int:
        return self.statuses[200]

    @property
    def busy(self) -> int:
        return self.statuses[503]


class Articles:
    """Article texts fetched once over the API, shared by the client threads."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.texts: dict[str, str] = {}
        self.lock = threading.Lock()

    def text(self, article_id: str, connection: http.client.HTTPConnection) -> str:
        with self.lock:
            if article_id in self.texts:
                return self.texts[article_id]
        status, _, body = request(
            self.port, "GET", f"/api/articles/{quote(article_id, safe='')}", connection=connection
        )
        if status != 200:
            raise ValueError(f"GET /api/articles/{article_id}: {status}")
        text: str = json.loads(body)["text"]
        with self.lock:
            self.texts[article_id] = text
        return text


def check_answer(
    body: bytes, articles: Articles, connection: http.client.HTTPConnection
) -> tuple[int, bool, list[str]]:
    """How many citations, whether it abstained, and what is wrong with them."""
    answer = json.loads(body)
    problems = []
    citations = answer["citations"]
    if answer["abstained"] and citations:
        problems.append("an abstention with citations")
    for c in citations:
        text = articles.text(c["article_id"], connection)
        if not 0 <= c["start"] < c["end"] <= len(text):
            problems.append(f"citation [{c['n']}] offsets {c['start']}-{c['end']} out of range")
        elif text[c["start"] : c["end"]] != c["quote"]:
            problems.append(f"citation [{c['n']}] quote is not text[{c['start']}:{c['end']}]")
    return len(citations), bool(answer["abstained"]), problems


def client(
    port: int, phase: Phase, questions: list[str], turn: itertools.count[int], until: float
) -> None:
    articles = ARTICLES[port]
    connection = http.client.HTTPConnection(HOST, port, timeout=120)
    try:
        while time.perf_counter() < until:
            question = questions[next(turn) % len(questions)]
            started = time.perf_counter()
            try:
                status, headers, body = request(
                    port, "POST", "/api/ask", {"question": question}, connection
                )
            except (OSError, http.client.HTTPException) as exc:
                phase.error(f"request failed: {type(exc).__name__}: {exc}")
                connection.close()
                connection = http.client.HTTPConnection(HOST, port, timeout=120)
                time.sleep(0.1)
                continue
            elapsed_ms = (time.perf_counter() - started) * 1000
            with phase.lock:
                phase.statuses[status] += 1
            if status == 200:
                try:
                    n, abstained, problems = check_answer(body, articles, connection)
                except (OSError, ValueError, KeyError, http.client.HTTPException) as exc:
                    phase.error(f"checking the answer to {question!r} failed: {exc}")
                    continue
                with phase.lock:
                    phase.latencies_ms.append(elapsed_ms)
                    phase.citations += n
                    phase.abstained += abstained
                for problem in problems:
                    phase.error(f"{question!r}: {problem}")
            elif status == 503 and headers.get("retry-after", "").isdigit():
                wait = int(headers["retry-after"])
                with phase.lock:
                    phase.retry_after[wait] += 1
                time.sleep(min(wait, max(0.0, until - time.perf_counter())))
            elif status == 503:
                phase.error(f"503 without Retry-After: {body[:200]!r}")
            else:
                phase.error(f"{status}: {body[:200]!r}")
    finally:
        connection.close()


ARTICLES: dict[int, Articles] = {}


def run_phase(name: str, port: int, clients: int, seconds: float, questions: list[str]) -> Phase:
    phase = Phase(name, clients)
    ARTICLES.setdefault(port, Articles(port))
    turn = itertools.count()
    started = time.perf_counter()
    until = started + seconds
    threads = [
        threading.Thread(target=client, args=(port, phase, questions, turn, until), daemon=True)
        for _ in range(clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    phase.seconds = time.perf_counter() - started
    return phase


# -- the report --------------------------------------------------------------------------------


def describe(phase: Phase) -> str:
    lat = phase.latencies_ms
    others = {s: n for s, n in phase.statuses.items() if s not in (200, 503)}
    retry = ", ".join(f"{s} s x{n}" for s, n in sorted(phase.retry_after.items())) or "none"
    lines = [
        f"{phase.name}: {phase.clients} clients for {phase.seconds:.1f} s",
        f"  requests  {sum(phase.statuses.values())}: 200 x{phase.answered}, "
        f"503 x{phase.busy}, other {others or 0}, failed connections/checks "
        f"{sum(e.startswith(('request failed', 'checking')) for e in phase.errors)}",
        f"  answers   {phase.answered / phase.seconds:.1f}/s; latency of the 200s: "
        f"p50 {percentile(lat, 50):.0f} ms, p95 {percentile(lat, 95):.0f} ms, "
        f"max {max(lat, default=0):.0f} ms",
        f"  checked   {phase.citations} citations against their articles; "
        f"{phase.abstained} answers abstained",
        f"  503s      Retry-After: {retry}",
    ]
    for message in phase.errors[:10]:
        lines.append(f"  error     {message}")
    if len(phase.errors) > 10:
        lines.append(f"  ...       {len(phase.errors) - 10} more errors")
    return "\n".join(lines)


def check(label: str, ok: bool) -> tuple[str, bool]:
    return f"{'PASS' if ok else 'FAIL'}  {label}", ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=16, help="concurrent clients [16]")
    ap.add_argument("--seconds", type=float, default=60, help="how long they ask [60]")
    ap.add_argument("--articles", type=int, default=200, help="CNN/DM articles besides seeds")
    ap.add_argument("--work", type=Path, help="keep the library here (re-runs skip the ingest)")
    ap.add_argument("--overload", action="store_true", help="then a phase beyond capacity")
    ap.add_argument("--overload-clients", type=int, default=64, help="[64]")
    ap.add_argument("--overload-seconds", type=float, default=15, help="[15]")
    ap.add_argument("--concurrent", type=int, help="QA_MAX_CONCURRENT_QUESTIONS [server: 4]")
    ap.add_argument("--queued", type=int, help="QA_MAX_QUEUED_QUESTIONS [server: 32]")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        paths, questions = corpus(work, args.articles)
        data_dir = work / f"library-{args.articles}"
        ingest_s = ingest(paths, data_dir)
        print(
            f"library: {', '.join(p.name for p in paths)}; {len(questions)} questions; "
            f"qa ingest {ingest_s:.1f} s (an existing library is reused)",
            flush=True,
        )
        log = work / "serve.log"
        proc, port, startup_s = start_server(data_dir, log, child_env(args.concurrent, args.queued))
        print(f"qa serve on {HOST}:{port} answered {startup_s:.1f} s after start\n", flush=True)
        try:
            phases = [run_phase("load", port, args.clients, args.seconds, questions)]
            print(describe(phases[0]) + "\n", flush=True)
            if args.overload:
                overload = run_phase(
                    "overload", port, args.overload_clients, args.overload_seconds, questions
                )
                phases.append(overload)
                print(describe(overload) + "\n", flush=True)
            alive = proc.poll() is None
            try:
                after, _, _ = request(port, "POST", "/api/ask", {"question": questions[0]})
            except OSError:
                after = 0
        finally:
            stop(proc)
        printed = log.read_text(encoding="utf-8", errors="replace")

    load = phases[0]
    results = [
        check(
            f"load: zero errors in {sum(load.statuses.values())} requests "
            f"({len(load.errors)} errors)",
            not load.errors and load.answered > 0,
        ),
        check(
            f"load: every answer's citations valid ({load.citations} checked)",
            not any("citation" in e or "abstention" in e for e in load.errors),
        ),
    ]
    if args.overload:
        over = phases[1]
        results += [
            check(
                f"overload: {over.busy} requests beyond capacity got 503 with Retry-After, "
                f"{over.answered} answered, {len(over.errors)} errors",
                over.busy > 0 and not over.errors,
            )
        ]
    results += [
        check(f"server alive at the end and answering (status {after})", alive and after == 200),
        check("no traceback in the server's log", "Traceback" not in printed),
    ]
    print("\n".join(line for line, _ in results))
    if args.json:
        figures = {
            "startup_s": startup_s,
            "phases": [
                {
                    "name": p.name,
                    "clients": p.clients,
                    "seconds": p.seconds,
                    "statuses": dict(p.statuses),
                    "answers_per_s": p.answered / p.seconds,
                    "p50_ms": percentile(p.latencies_ms, 50),
                    "p95_ms": percentile(p.latencies_ms, 95),
                    "citations": p.citations,
                    "errors": p.errors,
                }
                for p in phases
            ],
            "pass": all(ok for _, ok in results),
        }
        args.json.write_text(json.dumps(figures, indent=2))
    sys.exit(0 if all(ok for _, ok in results) else 1)


if __name__ == "__main__":
    main()
