"""Tune how the reader reorders the best passages of a factoid question (``qa/answerer.py``).

    python benchmarks/tune_reading.py [--articles 48] [--questions 1500] [--work DIR]

A factoid question's first passages are a *close call* when their retrieval log-odds are less
than ``CLOSE_CALL`` apart; then the reader reads the first ``READ_TOP`` and each ranks by its
log-odds plus ``READER_WEIGHT`` x the reader's score for it. This script measures recall@1 (the
first passage covers a gold answer span) for a grid of those three numbers and prints the
setting to use: the cheapest (fewest passages read per question) within half a point of the
best recall@1.

Data: the SQuAD v1.1 *train* articles and questions that ``calibrate_abstention.py`` uses
(never seen by the reranker; the dev set, which the benchmarks report, is never used). Each
question is searched once and its first passages read once; the grid is computed from those.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from calibrate_abstention import unseen_train_questions  # noqa: E402

from qa.answerer import asks_for_short_answer, log_odds  # noqa: E402
from qa.evaluation import is_hit  # noqa: E402
from qa.reader import Reader  # noqa: E402
from qa.service import Library  # noqa: E402
from qa.settings import Settings  # noqa: E402
from qa.squad import write_corpus_jsonl  # noqa: E402
from qa.verify import citation  # noqa: E402

MOST_READ = 4
WEIGHTS = (0.0, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.6)
GAPS = (0.5, 1.0, 1.5, 2.0, 3.0, float("inf"))
TOPS = (2, 3, 4)
TOLERANCE = 0.005


@dataclass(frozen=True)
class Read:
    """One question's first passages: retrieval log-odds, reader scores, gold hits."""

    odds: list[float]
    reader: list[float]
    hits: list[bool]


def recall_at_1(reads: list[Read], top: int, weight: float, gap: float) -> tuple[float, float]:
    """Recall@1 with that setting, and the share of questions whose first ``top`` are read."""
    hits, close_calls = 0, 0
    for r in reads:
        if not r.hits:
            continue
        first = 0
        if len(r.odds) > 1 and r.odds[0] - r.odds[1] < gap:
            close_calls += 1
            n = min(top, len(r.odds))
            first = max(range(n), key=lambda i: r.odds[i] + weight * r.reader[i])
        hits += r.hits[first]
    return hits / len(reads), close_calls / len(reads)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--articles", type=int, default=48, help="SQuAD train articles [48]")
    ap.add_argument("--questions", type=int, default=1500, help="questions sampled [1500]")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--work", type=Path, help="keep the library here (re-runs skip the ingest)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="tune-reading-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        corpus, questions = unseen_train_questions(args.articles, args.questions, args.seed)
        factoid = [q for q in questions if asks_for_short_answer(q.question)]
        library = Library(Settings(data_dir=work / "library", short_answers=False))
        library.ingest([write_corpus_jsonl(corpus.articles, work / "corpus.jsonl")])
        reader = Reader()

        reads: list[Read] = []
        started = time.perf_counter()
        for i, q in enumerate(factoid, start=1):
            found = library.search(q.question, MOST_READ)
            spans = reader.read(q.question, [p.chunk.text for p in found])
            reads.append(
                Read(
                    [log_odds(p.score) for p in found],
                    [s.score if s else float("-inf") for s in spans],
                    [is_hit(citation(1, p), q) for p in found],
                )
            )
            if i % 250 == 0:
                print(f"{i}/{len(factoid)} questions read", flush=True)

    print(
        f"\nSQuAD v1.1 train: {len(factoid)} factoid questions of {len(questions)}, "
        f"{args.articles} articles ({time.perf_counter() - started:.0f} s)"
    )
    base, _ = recall_at_1(reads, 1, 0.0, float("-inf"))
    print(f"recall@1 by retrieval alone: {base:.3f}")
    results = []
    for top, gap in itertools.product(TOPS, GAPS):
        row = [recall_at_1(reads, top, w, gap) for w in WEIGHTS]
        read_share = row[0][1]
        results += [(r, top, w, gap, read_share) for w, (r, _) in zip(WEIGHTS, row, strict=True)]
        cells = " ".join(f"{r:.3f}" for r, _ in row)
        print(f"  top {top} close call < {gap:<4} (read {read_share:.0%}): {cells}")
    print("  weights:", " ".join(f"{w:>5}" for w in WEIGHTS))
    best = max(r for r, *_ in results)
    good = [x for x in results if x[0] >= best - TOLERANCE]
    r, top, weight, gap, share = min(good, key=lambda x: (x[4] * x[1] + 1 - x[4], -x[0]))
    print(
        f"\nset in qa/answerer.py: READ_TOP = {top}, READER_WEIGHT = {weight}, "
        f"CLOSE_CALL = {gap} (recall@1 {r:.3f}, best {best:.3f}, close calls {share:.0%})"
    )


if __name__ == "__main__":
    main()
