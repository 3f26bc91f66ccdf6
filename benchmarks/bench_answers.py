"""Answer benchmark: the offline answerer as shipped, on SQuAD v1.1 dev (issue #4's targets).

    python benchmarks/bench_answers.py [--questions 2000] [--work DIR] [--json FILE]

Corpus: all 48 SQuAD dev articles; questions: the same seeded 2,000-question sample as
``bench_retrieval.py``. Every question goes through ``Library.ask`` (the code path of
``qa ask``) with the default settings, abstention threshold included. Reported:

- short answer exact match and F1 (official SQuAD normalization) of the answer's short form:
  ``short_answer`` when the answerer gives one, else its first quote (as ``qa eval``);
- how often the first citation quotes the gold answer (its span covers a gold answer span);
- abstention on answerable questions (the whole corpus), and on the same questions with their
  gold article removed from the corpus (retrieval restricted to the other 47 articles), where
  the right answer is to abstain.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench_retrieval import eval_data_dir, squad_data  # noqa: E402

from qa.evaluation import (  # noqa: E402
    best_exact_match,
    best_f1,
    is_hit,
    percentile,
    short_answer,
)
from qa.service import Library  # noqa: E402
from qa.settings import Settings  # noqa: E402
from qa.squad import write_corpus_jsonl  # noqa: E402
from vectorstore.types import Filters  # noqa: E402

TARGETS = {
    "f1": 45.0,
    "exact_match": 35.0,
    "first_citation_has_answer": 0.75,
    "abstain_without_gold": 0.80,
    "abstain_answerable": 0.10,
}


def check(label: str, ok: bool) -> str:
    return f"  [{'PASS' if ok else 'FAIL'}] {label}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--questions", type=int, default=2000, help="questions asked [2000]")
    ap.add_argument("--work", type=Path, help="keep the library here (re-runs skip the ingest)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-answers-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        articles, questions = squad_data(eval_data_dir(), args.questions)
        corpus = write_corpus_jsonl(articles, work / "squad-dev.jsonl")
        library = Library(Settings(data_dir=work / "library"))
        library.ingest([corpus], progress=False)
        all_ids = [a.id for a in articles]

        ems, f1s, first_hits, abstained, abstained_without = [], [], [], 0, 0
        given, latencies = 0, []
        library.ask(questions[0].question)  # loads the models: not a question's latency
        started = time.perf_counter()
        for i, q in enumerate(questions, start=1):
            asked = time.perf_counter()
            answer = library.ask(q.question)
            latencies.append(1000 * (time.perf_counter() - asked))
            given += answer.short_answer is not None
            prediction = short_answer(answer)
            ems.append(best_exact_match(prediction, q.answers))
            f1s.append(best_f1(prediction, q.answers))
            first_hits.append(bool(answer.citations) and is_hit(answer.citations[0], q))
            abstained += answer.abstained
            others = Filters(article_ids=tuple(a for a in all_ids if a != q.article_id))
            abstained_without += library.ask(q.question, filters=others).abstained
            if i % 250 == 0:
                print(f"{i}/{len(questions)} questions", flush=True)
        seconds = time.perf_counter() - started

    n = len(questions)
    figures = {
        "questions": n,
        "exact_match": 100 * sum(ems) / n,
        "f1": 100 * sum(f1s) / n,
        "first_citation_has_answer": sum(first_hits) / n,
        "abstain_answerable": abstained / n,
        "abstain_without_gold": abstained_without / n,
        "short_answers_given": given / n,
        "ask_ms_p50": percentile(latencies, 50),
        "seconds": seconds,
    }
    print(f"\nSQuAD v1.1 dev, {n} questions, 48 articles, default settings ({seconds:.0f} s)")
    print(f"  short answer: exact match {figures['exact_match']:.1f}, F1 {figures['f1']:.1f}")
    print(f"  short answers given:                   {figures['short_answers_given']:.3f}")
    print(f"  Library.ask p50:                       {figures['ask_ms_p50']:.1f} ms")
    print(f"  first citation quotes the gold answer: {figures['first_citation_has_answer']:.3f}")
    print(f"  abstains, answerable questions:        {figures['abstain_answerable']:.3f}")
    print(f"  abstains, gold article left out:       {figures['abstain_without_gold']:.3f}")
    print("\nTargets")
    print(check(f"F1 {figures['f1']:.1f} >= 45", figures["f1"] >= TARGETS["f1"]))
    em = figures["exact_match"]
    print(check(f"exact match {em:.1f} >= 35", em >= TARGETS["exact_match"]))
    first = figures["first_citation_has_answer"]
    print(check(f"first citation has the answer {first:.3f} >= 0.75", first >= 0.75))
    without = figures["abstain_without_gold"]
    print(check(f"abstains without the gold article {without:.3f} >= 0.80", without >= 0.80))
    answerable = figures["abstain_answerable"]
    print(check(f"abstains on answerable {answerable:.3f} <= 0.10", answerable <= 0.10))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
