"""Measuring retrieval and answers on questions with known answers (``qa eval``).

Every question is asked through :meth:`qa.service.Library.ask`, the code path of ``qa ask``,
and judged by its citations:

* a citation is a *hit* when it quotes the question's gold article and its span
  ``[start, end)`` covers one gold answer span entirely; for a question without spans, when
  the quote contains a gold answer after SQuAD normalization; for a question without answers,
  when it is from the gold article at all (:func:`is_hit`);
* recall@k is the share of questions with a hit among their first k citations, MRR the mean
  reciprocal rank of the first hit (0 without one);
* exact match and F1 use the official SQuAD v1.1 normalization and are taken over the
  questions that have answers, comparing the answer's short form (``answer.short_answer``
  when the Answer type has one, else the first citation's quote) with the best gold answer.

Fractions are in [0, 1]; latencies are milliseconds of ``Library.ask`` per question.
"""

from __future__ import annotations

import json
import random
import re
import string
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tqdm import tqdm

from qa.settings import Settings
from vectorstore.errors import QAError
from vectorstore.types import Article, Filters

if TYPE_CHECKING:
    from qa.service import Library

__all__ = [
    "DEFAULT_KS",
    "EvalQuestion",
    "EvalReport",
    "best_exact_match",
    "best_f1",
    "evaluate",
    "exact_match",
    "f1_score",
    "first_hit_rank",
    "format_report",
    "is_hit",
    "load_questions",
    "normalize_answer",
    "parse_ks",
    "percentile",
    "reciprocal_rank",
    "run_eval",
    "select_questions",
]

DEFAULT_KS = (1, 5, 10)
MAX_K = 10  # the most citations an answer may carry (Settings.max_citations)


# --------------------------------------------------------------------------- questions


@dataclass(frozen=True)
class EvalQuestion:
    """A question about one article, with its gold answers and their character spans.

    ``answer_spans`` are ``[start, end)`` offsets into the gold article's stored text.
    """

    question: str
    article_id: str
    answers: tuple[str, ...] = ()
    answer_spans: tuple[tuple[int, int], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The question as one line of the questions JSONL format."""
        data: dict[str, Any] = {"question": self.question, "article_id": self.article_id}
        if self.answers:
            data["answers"] = list(self.answers)
        if self.answer_spans:
            data["answer_spans"] = [list(span) for span in self.answer_spans]
        return data


def load_questions(path: str | Path) -> list[EvalQuestion]:
    """The questions of a JSONL file, one object a line; blank lines are skipped.

    Raises :class:`QAError` naming the line and the problem for a file that cannot be used.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise QAError(f"cannot read the questions file {path}: {exc}") from None
    questions = []
    for n, line in enumerate(text.split("\n"), start=1):  # not splitlines: U+2028 in strings
        if not line.strip():
            continue
        try:
            questions.append(question_from_record(json.loads(line)))
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            raise QAError(f"{path}:{n}: {exc}") from None
    if not questions:
        raise QAError(f"{path}: no questions found")
    return questions


def question_from_record(record: object) -> EvalQuestion:
    """Validate one JSON record of the questions format; ValueError says what is wrong."""
    if not isinstance(record, dict):
        raise ValueError("expected a JSON object")
    question = record.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ValueError("'question' must be a non-empty string")
    article_id = record.get("article_id")
    if isinstance(article_id, int) and not isinstance(article_id, bool):
        article_id = str(article_id)
    if not isinstance(article_id, str) or not article_id.strip():
        raise ValueError("'article_id' must be a non-empty string")
    answers = record.get("answers") or []
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise ValueError("'answers' must be a list of strings")
    spans = record.get("answer_spans") or []
    if not isinstance(spans, list) or not all(_is_span(s) for s in spans):
        raise ValueError("'answer_spans' must be a list of [start, end] with 0 <= start < end")
    return EvalQuestion(
        question=question,
        article_id=article_id.strip(),
        answers=tuple(answers),
        answer_spans=tuple((int(s[0]), int(s[1])) for s in spans),
    )


def _is_span(value: object) -> bool:
    return (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(x, int) and not isinstance(x, bool) for x in value)
        and 0 <= value[0] < value[1]
    )


def select_questions(
    questions: Sequence[EvalQuestion],
    limit: int | None = None,
    sample: int | None = None,
    seed: int = 0,
) -> list[EvalQuestion]:
    """A fixed random sample of ``sample`` questions (by ``seed``), then the first ``limit``."""
    chosen = list(questions)
    if sample is not None:
        chosen = random.Random(seed).sample(chosen, min(sample, len(chosen)))
    if limit is not None:
        chosen = chosen[:limit]
    return chosen


def parse_ks(text: str) -> tuple[int, ...]:
    """``"1,5,10"`` -> ``(1, 5, 10)``: sorted, distinct, each in 1..MAX_K."""
    try:
        ks = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ValueError(f"{text!r} is not a comma-separated list of numbers like 1,5,10") from None
    if not ks or ks[0] < 1 or ks[-1] > MAX_K:
        raise ValueError(f"each k must be between 1 and {MAX_K}, got {text!r}")
    return tuple(ks)


# --------------------------------------------------------------------------- SQuAD metrics

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """The official SQuAD v1.1 normalization: lowercase, drop punctuation, articles, spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, ground_truth: str) -> bool:
    """Equal after :func:`normalize_answer`."""
    return normalize_answer(prediction) == normalize_answer(ground_truth)


def f1_score(prediction: str, ground_truth: str) -> float:
    """The official SQuAD v1.1 token F1 of a prediction against one gold answer."""
    predicted = normalize_answer(prediction).split()
    gold = normalize_answer(ground_truth).split()
    common = sum((Counter(predicted) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision = common / len(predicted)
    recall = common / len(gold)
    return 2 * precision * recall / (precision + recall)


def best_exact_match(prediction: str, ground_truths: Iterable[str]) -> float:
    """1.0 when the prediction matches any gold answer, else 0.0."""
    return max((float(exact_match(prediction, g)) for g in ground_truths), default=0.0)


def best_f1(prediction: str, ground_truths: Iterable[str]) -> float:
    """The best F1 over the gold answers."""
    return max((f1_score(prediction, g) for g in ground_truths), default=0.0)


# --------------------------------------------------------------------------- hits


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


class CitationLike(Protocol):
    """What judging a citation needs (a :class:`qa.types.Citation` is one)."""

    @property
    def article(self) -> _HasId: ...
    @property
    def quote(self) -> str: ...
    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...


class AnswerLike(Protocol):
    """What evaluating an answer needs (a :class:`qa.types.Answer` is one)."""

    @property
    def citations(self) -> Sequence[CitationLike]: ...
    @property
    def abstained(self) -> bool: ...


class Asker(Protocol):
    """Anything that answers a question like :meth:`qa.service.Library.ask`."""

    def ask(self, question: str) -> AnswerLike: ...


def is_hit(citation: CitationLike, question: EvalQuestion) -> bool:
    """Whether the citation quotes the gold article where a gold answer is.

    With spans: the citation's ``[start, end)`` covers one gold span entirely. Without spans
    but with answers: the quote contains a gold answer, both normalized, at word boundaries.
    Without answers: the citation is from the gold article.
    """
    if citation.article.id != question.article_id:
        return False
    if question.answer_spans:
        return any(
            citation.start <= start and end <= citation.end for start, end in question.answer_spans
        )
    if question.answers:
        quote = f" {normalize_answer(citation.quote)} "
        wanted = (normalize_answer(a) for a in question.answers)
        return any(w and f" {w} " in quote for w in wanted)
    return True


def first_hit_rank(citations: Sequence[CitationLike], question: EvalQuestion) -> int | None:
    """The 1-based rank of the first citation that is a hit, or None."""
    return next((n for n, c in enumerate(citations, start=1) if is_hit(c, question)), None)


def reciprocal_rank(citations: Sequence[CitationLike], question: EvalQuestion) -> float:
    """1 / the rank of the first hit; 0.0 when no citation is a hit."""
    rank = first_hit_rank(citations, question)
    return 1.0 / rank if rank else 0.0


def short_answer(answer: AnswerLike) -> str:
    """The answer's short form: ``short_answer`` when it has one, else its first quote."""
    short = getattr(answer, "short_answer", None)
    if isinstance(short, str):
        return short
    return answer.citations[0].quote if answer.citations and not answer.abstained else ""


# --------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class EvalReport:
    """The figures of one evaluation run; :meth:`to_dict` is the ``qa eval --json`` object.

    ``exact_match`` and ``f1`` are None when no question has answers. ``answered`` is how
    many questions have answers (the denominator of exact match and F1).
    """

    questions: int
    recall_at_k: dict[int, float]
    mrr: float
    exact_match: float | None
    f1: float | None
    abstained: float
    latency_ms_p50: float
    latency_ms_p95: float
    mean_quote_chars: float
    with_answers: int = 0
    calibration: Calibration | None = None

    def to_dict(self) -> dict[str, Any]:
        calibration = {"calibration": self.calibration.to_dict()} if self.calibration else {}
        return calibration | {
            "questions": self.questions,
            "recall_at_k": {str(k): v for k, v in sorted(self.recall_at_k.items())},
            "mrr": self.mrr,
            "exact_match": self.exact_match,
            "f1": self.f1,
            "abstained": self.abstained,
            "latency_ms_p50": self.latency_ms_p50,
            "latency_ms_p95": self.latency_ms_p95,
            "mean_quote_chars": self.mean_quote_chars,
        }


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between ranks; 0.0 if empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def evaluate(
    library: Asker,
    questions: Sequence[EvalQuestion],
    ks: Sequence[int] = DEFAULT_KS,
    progress: bool = True,
    warm_up: bool = True,
) -> EvalReport:
    """Ask every question through ``library.ask`` and measure the answers.

    With ``warm_up`` the first question is asked once untimed first, so loading the model
    and opening the store do not count as the latency of a question.
    """
    ks = sorted(set(ks))
    if warm_up and questions:
        library.ask(questions[0].question)
    ranks: list[int | None] = []
    latencies: list[float] = []
    ems: list[float] = []
    f1s: list[float] = []
    abstained = 0
    quote_chars: list[int] = []
    for q in tqdm(questions, desc="questions", unit="q", disable=not progress):
        started = time.perf_counter()
        answer = library.ask(q.question)
        latencies.append((time.perf_counter() - started) * 1000)
        citations = answer.citations
        ranks.append(first_hit_rank(citations, q))
        if answer.abstained:
            abstained += 1
        else:
            quote_chars += [len(c.quote) for c in citations]
        if q.answers:
            prediction = short_answer(answer)
            ems.append(best_exact_match(prediction, q.answers))
            f1s.append(best_f1(prediction, q.answers))
    n = len(questions)
    return EvalReport(
        questions=n,
        recall_at_k={k: _share(sum(r is not None and r <= k for r in ranks), n) for k in ks},
        mrr=_mean([1.0 / r if r else 0.0 for r in ranks]),
        exact_match=_mean(ems) if ems else None,
        f1=_mean(f1s) if f1s else None,
        abstained=_share(abstained, n),
        latency_ms_p50=round(percentile(latencies, 50), 2),
        latency_ms_p95=round(percentile(latencies, 95), 2),
        mean_quote_chars=round(_mean([float(c) for c in quote_chars]), 1),
        with_answers=len(ems),
    )


def _ignore(message: str) -> None:
    pass


def _share(count: int, total: int) -> float:
    return round(count / total, 4) if total else 0.0


def _mean(values: Sequence[float]) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0


def format_report(report: EvalReport) -> str:
    """A small readable table of the figures."""

    def fraction(value: float | None) -> str:
        return "n/a (no question has answers)" if value is None else f"{value:.3f}"

    rows = [("questions", str(report.questions))]
    rows += [(f"recall@{k}", f"{v:.3f}") for k, v in sorted(report.recall_at_k.items())]
    rows += [
        ("MRR", f"{report.mrr:.3f}"),
        ("exact match", fraction(report.exact_match)),
        ("F1", fraction(report.f1)),
        ("abstained", f"{report.abstained:.3f}"),
        ("latency p50", f"{report.latency_ms_p50:.1f} ms"),
        ("latency p95", f"{report.latency_ms_p95:.1f} ms"),
        ("mean quote chars", f"{report.mean_quote_chars:.1f}"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


# --------------------------------------------------------------------------- abstention


class Searcher(Protocol):
    """Anything that ranks passages like :meth:`qa.service.Library.search`."""

    def search(self, query: str, k: int, filters: Filters | None = None) -> Sequence[Scored]: ...


class Scored(Protocol):
    @property
    def score(self) -> float: ...


@dataclass(frozen=True)
class Calibration:
    """The abstention threshold (``QA_MIN_SCORE``) that abstains on at most ``max_abstain`` of
    answerable questions, and how often it then abstains on the same questions asked with
    their article left out of the library (where abstaining is right).

    ``table``: ``(threshold, abstain answerable, abstain without the article)`` rows.
    """

    questions: int
    max_abstain: float
    threshold: float
    abstain_answerable: float
    abstain_without_article: float
    table: tuple[tuple[float, float, float], ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "questions": self.questions,
            "max_abstain": self.max_abstain,
            "min_score": self.threshold,
            "abstain_answerable": self.abstain_answerable,
            "abstain_without_article": self.abstain_without_article,
        }


def calibrate_abstention(
    library: Searcher,
    questions: Sequence[EvalQuestion],
    article_ids: Sequence[str],
    max_abstain: float = 0.10,
    progress: bool = True,
) -> Calibration:
    """Find the abstention threshold from the best passage's score of every question, asked
    once over the whole library and once with its own article filtered out.

    The answerer abstains when the best score is below the threshold, so the threshold is the
    highest one abstaining on at most ``max_abstain`` of the answerable questions (rounded
    down to 0.005).
    """
    if not questions:
        raise QAError("no questions to calibrate abstention on")
    if len(set(article_ids)) < 2:
        raise QAError("calibrating abstention needs a library of at least two articles")

    def best(question: str, filters: Filters | None) -> float:
        found = library.search(question, 1, filters)
        return found[0].score if found else 0.0

    with_article: list[float] = []
    without_article: list[float] = []
    for q in tqdm(questions, desc="calibrating", unit="q", disable=not progress):
        with_article.append(best(q.question, None))
        others = Filters(article_ids=tuple(a for a in article_ids if a != q.article_id))
        without_article.append(best(q.question, others))

    def share_below(scores: Sequence[float], threshold: float) -> float:
        return _share(sum(s < threshold for s in scores), len(scores))

    candidates = [round(0.005 * i, 3) for i in range(201)]
    allowed = [t for t in candidates if share_below(with_article, t) <= max_abstain]
    threshold = max(allowed)
    table = tuple(
        (t, share_below(with_article, t), share_below(without_article, t)) for t in candidates[::10]
    )
    return Calibration(
        questions=len(questions),
        max_abstain=max_abstain,
        threshold=threshold,
        abstain_answerable=share_below(with_article, threshold),
        abstain_without_article=share_below(without_article, threshold),
        table=table,
    )


def format_calibration(c: Calibration) -> str:
    """The calibration as a few readable lines and its threshold table."""
    lines = [
        f"abstention, {c.questions} questions asked with and without their article:",
        f"  QA_MIN_SCORE={c.threshold:g} abstains on {c.abstain_answerable:.1%} of answerable "
        f"questions (at most {c.max_abstain:.0%} asked) and on {c.abstain_without_article:.1%} "
        "with their article left out",
        "  min_score  abstain answerable  abstain without article",
    ]
    lines += [f"  {t:9.2f}  {a:18.1%}  {w:23.1%}" for t, a, w in c.table]
    return "\n".join(lines)


# --------------------------------------------------------------------------- a whole run


def run_eval(
    settings: Settings,
    questions: Sequence[EvalQuestion],
    ks: Sequence[int] = DEFAULT_KS,
    corpus: Sequence[str | Path] = (),
    articles: Sequence[Article] = (),
    progress: bool = True,
    warn: Callable[[str], None] = _ignore,
    calibrate: float | None = None,
) -> EvalReport:
    """Evaluate ``questions`` on a library; what ``qa eval`` does.

    With ``calibrate`` (the largest share of answerable questions it may abstain on), the
    report also carries the abstention threshold that meets it (:func:`calibrate_abstention`).

    With a ``corpus`` (paths ``qa ingest`` reads) or ``articles``, they are ingested into a
    throw-away library in a temporary folder (the embedded store, never a server), deleted
    afterwards; otherwise the library of ``settings`` is used as it is. Either way the library
    cites up to ``max(ks)`` passages per answer, however far their scores fall below the best
    one's (``citation_keep_ratio=0``), so recall@k is defined; every other setting (abstention
    included) is kept. ``warn``
    receives one line for each input that failed to load and for questions whose article is
    not in the library.
    """
    from qa.service import Library  # the model and the store load only when asked for

    update: dict[str, Any] = {"max_citations": max(ks), "citation_keep_ratio": 0.0}
    if not corpus and not articles:
        library = Library(settings.model_copy(update=update))
        return _run(library, questions, ks, progress, warn, calibrate)
    with tempfile.TemporaryDirectory(prefix="qa-eval-", ignore_cleanup_errors=True) as tmp:
        update |= {"data_dir": Path(tmp) / "data", "chroma_url": None}
        library = Library(settings.model_copy(update=update))
        paths = list(corpus)
        if articles:
            from qa.squad import write_corpus_jsonl

            paths.append(write_corpus_jsonl(articles, Path(tmp) / "corpus.jsonl"))
        report = library.ingest(paths, progress=progress)
        for failure in report.failed:
            where = f"{failure.path}" + (f":{failure.line}" if failure.line else "")
            warn(f"failed to load {where}: {failure.reason}")
        return _run(library, questions, ks, progress, warn, calibrate)


def _run(
    library: Library,
    questions: Sequence[EvalQuestion],
    ks: Sequence[int],
    progress: bool,
    warn: Callable[[str], None],
    calibrate: float | None = None,
) -> EvalReport:
    known = {summary.info.id for summary in library.articles()}
    missing = sorted({q.article_id for q in questions} - known)
    if missing:
        count = sum(q.article_id not in known for q in questions)
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        noun = "question is" if count == 1 else "questions are"
        warn(f"{count} {noun} about articles not in the library ({shown}): all misses")
    report = evaluate(library, questions, ks, progress=progress)
    if calibrate is None:
        return report
    calibration = calibrate_abstention(
        library, [q for q in questions if q.article_id in known], sorted(known), calibrate, progress
    )
    return replace(report, calibration=calibration)
