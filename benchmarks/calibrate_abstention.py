"""Calibrate the abstention threshold (``QA_MIN_SCORE``) on SQuAD v1.1 *train* questions.

    python benchmarks/calibrate_abstention.py [--articles 48] [--questions 2000]
        [--max-abstain 0.08] [--work DIR]

The default ``min_score`` in ``qa/settings.py`` comes from this script. Corpus: ``--articles``
SQuAD train articles that ``benchmarks/train_reranker.py`` never saw (the next ones in its
seeded shuffle), so the reranker's scores are not flattered; questions: a seeded sample of
theirs. Runs ``qa eval --calibrate``'s code: every question is searched once over the whole
library and once with its article filtered out; the threshold is the highest that abstains on
at most ``--max-abstain`` of the answerable questions (below the issue's 10 %, leaving a
margin for other question sets). The dev set, which the benchmarks report, is never used.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from train_reranker import ARTICLES, SEED, shuffled_train_articles  # noqa: E402

from qa.evaluation import (  # noqa: E402
    EvalQuestion,
    calibrate_abstention,
    format_calibration,
)
from qa.service import Library  # noqa: E402
from qa.settings import Settings  # noqa: E402
from qa.squad import SquadCorpus, build_squad, write_corpus_jsonl  # noqa: E402


def unseen_train_questions(
    articles: int, questions: int, seed: int
) -> tuple[SquadCorpus, list[EvalQuestion]]:
    """``articles`` SQuAD train articles the reranker never saw (the next ones in
    ``train_reranker.py``'s seeded shuffle, at its defaults) and a seeded sample of
    ``questions`` of theirs."""
    entries = shuffled_train_articles(SEED)[ARTICLES : ARTICLES + articles]
    corpus = build_squad({"data": entries})
    answerable = [q for q in corpus.questions if q.answer_spans]
    return corpus, random.Random(seed).sample(answerable, min(questions, len(answerable)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--articles", type=int, default=48, help="SQuAD train articles [48]")
    ap.add_argument("--questions", type=int, default=2000, help="questions sampled [2000]")
    ap.add_argument("--max-abstain", type=float, default=0.08, help="on answerable [0.08]")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--work", type=Path, help="keep the library here (re-runs skip the ingest)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="calibrate-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        corpus, questions = unseen_train_questions(args.articles, args.questions, args.seed)
        library = Library(Settings(data_dir=work / "library"))
        library.ingest([write_corpus_jsonl(corpus.articles, work / "corpus.jsonl")], progress=True)
        article_ids = [a.id for a in corpus.articles]
        calibration = calibrate_abstention(library, questions, article_ids, args.max_abstain)
        print(f"\nSQuAD v1.1 train: {len(article_ids)} articles unseen by the reranker")
        print(format_calibration(calibration))
        print(f"\nset in qa/settings.py: min_score = {calibration.threshold:g}")


if __name__ == "__main__":
    main()
