"""The short-answer reader (real committed weights) and how the offline answerer uses it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from qa.answerer import CLOSE_CALL, READ_TOP, ExtractiveAnswerer, asks_for_short_answer, log_odds
from qa.reader import BUNDLED, Reader, Span, balanced_groups
from qa.service import Library
from qa.settings import Settings
from tests.conftest import ROOT, SEED_ARTICLE
from vectorstore.bert import native_bfloat16, use_bfloat16
from vectorstore.errors import ConfigError
from vectorstore.types import ArticleInfo, Chunk, ScoredPassage

SEED = SEED_ARTICLE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def reader() -> Reader:
    return Reader()


def paragraph_with(words: str) -> str:
    return next(p.strip() for p in SEED.split("\n\n") if words in p)


@pytest.mark.parametrize(
    ("question", "context_words", "expected"),
    [
        ("Who ordered troops near Ukraine back to their home bases?", "Russian President", "Putin"),
        ("Which minister was ordered to pull back forces?", "Sergei Shoigu", "Sergei Shoigu"),
        ("Who is the Secretary General of NATO?", "Rasmussen", "Anders Fogh Rasmussen"),
        ("When is Ukraine's presidential vote?", "presidential vote", "Sunday"),
        ("On which TV channel did Felgenhauer speak?", "Dozhd", "Dozhd"),
    ],
)
def test_reader_finds_the_answer_in_the_seed_article(
    reader: Reader, question: str, context_words: str, expected: str
) -> None:
    passage = paragraph_with(context_words)
    [span] = reader.read(question, [passage])
    assert span is not None
    assert passage[span.start : span.end] == span.text  # exact offsets into the passage
    assert expected in span.text and len(span.text) <= len(expected) + 25
    assert 0.0 < span.probability <= 1.0


def test_reader_reads_passages_in_a_batch_and_each_alone_the_same(reader: Reader) -> None:
    passages = [paragraph_with("Sergei Shoigu"), paragraph_with("Rasmussen"), "Short one."]
    question = "Who said NATO had not seen any evidence of a withdrawal?"
    batch = reader.read(question, passages)
    alone = [reader.read(question, [p])[0] for p in passages]
    assert [s and (s.start, s.end) for s in batch] == [s and (s.start, s.end) for s in alone]
    assert batch[1] is not None and "Rasmussen" in batch[1].text
    assert reader.read(question, []) == []


def test_a_long_question_and_a_long_passage_are_cut_not_refused(reader: Reader) -> None:
    passage = " ".join([paragraph_with("Rasmussen")] * 6)  # far beyond the reader's tokens
    [span] = reader.read("Who is NATO's secretary general? " * 20, [passage])
    assert span is not None and passage[span.start : span.end] == span.text


def test_the_readers_score_prefers_the_passage_holding_the_answer(reader: Reader) -> None:
    question = "Who is the Secretary General of NATO?"
    holding, other = paragraph_with("Rasmussen"), paragraph_with("Sergei Shoigu")
    right, wrong = reader.read(question, [holding, other])
    assert right is not None and wrong is not None
    assert right.score > wrong.score + 1.0
    # the probability compares spans within one passage, not passages: both are in (0, 1]
    assert 0.0 < wrong.probability <= 1.0


def test_bfloat16_and_float32_readers_find_the_same_answers() -> None:
    """bfloat16 products change the logits a little (so they did run in bfloat16) and the
    answers not at all."""
    fast, exact = Reader(precision="bfloat16"), Reader(precision="float32")
    assert fast.bfloat16 and not exact.bfloat16
    question = "Who is the Secretary General of NATO?"
    passages = [paragraph_with("Rasmussen"), paragraph_with("Sergei Shoigu")]
    got, want = fast.read(question, passages), exact.read(question, passages)
    for g, w in zip(got, want, strict=True):
        assert g is not None and w is not None
        assert (g.start, g.end, g.text) == (w.start, w.end, w.text)
        assert g.score == pytest.approx(w.score, abs=0.5)
    assert [g and g.score for g in got] != [w and w.score for w in want]


@pytest.mark.parametrize(
    ("lengths", "parts", "groups"),
    [
        ([120, 90, 80], 2, [[0], [1, 2]]),  # a close call: the longest alone, the others together
        ([50, 200, 60, 70], 2, [[0, 2, 3], [1]]),
        ([100], 2, [[0]]),  # one passage: one batch, no thread
        ([10, 10, 10], 1, [[0, 1, 2]]),
        ([10, 20], 4, [[0], [1]]),  # never an empty group
        ([], 2, []),
    ],
)
def test_passages_are_read_in_batches_of_about_equal_tokens(
    lengths: list[int], parts: int, groups: list[list[int]]
) -> None:
    assert balanced_groups(lengths, parts) == groups


X86_FLAGS = "fpu vme de pse tsc msr pae mce cx8 apic sep avx avx2 avx512f avx512bw"
AMD_CPUINFO = f"processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: {X86_FLAGS} avx512_bf16\n"


@pytest.mark.parametrize(
    ("cpuinfo", "native"),
    [
        (AMD_CPUINFO, True),
        (f"flags\t\t: {X86_FLAGS} amx_bf16 amx_tile\n", True),
        (f"flags\t\t: {X86_FLAGS}\n", False),  # AVX-512 alone: emulated, slower
        ("processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull\n", False),
        ("model name\t: avx512_bf16 lookalike\nflags\t\t: fpu\n", False),  # flags only
        ("", False),
    ],
)
def test_native_bfloat16_is_read_from_the_cpu_flags(cpuinfo: str, native: bool) -> None:
    assert native_bfloat16(cpuinfo) is native


def test_the_precision_setting_overrides_the_cpu(tmp_path: Path) -> None:
    with_bf16, without = tmp_path / "with", tmp_path / "without"
    with_bf16.write_text(AMD_CPUINFO)
    without.write_text(f"flags\t\t: {X86_FLAGS}\n")
    assert use_bfloat16("auto", with_bf16) and not use_bfloat16("auto", without)
    assert not use_bfloat16("float32", with_bf16) and use_bfloat16("bfloat16", without)
    assert not use_bfloat16("auto", tmp_path / "absent")  # not Linux: float32


def test_the_library_reader_takes_its_precision_from_the_settings(tmp_path: Path) -> None:
    library = Library(Settings(data_dir=tmp_path, precision="float32"))
    assert isinstance(library.answerer, ExtractiveAnswerer)
    assert isinstance(library.answerer.reader, Reader) and not library.answerer.reader.bfloat16
    with pytest.raises(ValueError, match="precision"):
        Settings(data_dir=tmp_path, precision="float16")  # type: ignore[arg-type]


def test_missing_or_broken_weights_are_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot load the short-answer reader"):
        Reader(tmp_path / "absent.safetensors").read("Who?", ["Putin."])
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not safetensors at all")
    with pytest.raises(ConfigError, match="cannot load the short-answer reader"):
        Reader(broken).read("Who?", ["Putin."])


def test_the_committed_weights_are_small() -> None:
    assert BUNDLED.is_file() and BUNDLED.stat().st_size < 12_000_000


@pytest.mark.parametrize(
    "question",
    [
        "Who ordered the withdrawal?",
        "When is the vote?",
        "Where are the troops based?",
        "How many troops were pulled back?",
        "Which regions border Ukraine?",
        "What did Putin praise?",
        "In what year did Russia annex Crimea?",
        "Name the NATO Secretary General.",
        "The troops were pulled back to which regions?",
        "For how long did the drills last?",
    ],
)
def test_factoid_questions_ask_for_a_short_answer(question: str) -> None:
    assert asks_for_short_answer(question)


@pytest.mark.parametrize(
    "question",
    [
        "Why did Putin order the troops back?",
        "How did NATO react?",
        "Did NATO see a pullout?",
        "Is the withdrawal verifiable?",
        "What did NATO say about it?",
        "What happened in Rostov?",
        "Explain the sanctions.",
        "Tell me about the Kremlin statement",
        "Putin troops Ukraine",
        "Pavel Felgenhauer, who is an analyst, said the pullout was a sign",
        "NATO which has seen no evidence",
    ],
)
def test_other_questions_get_no_short_answer(question: str) -> None:
    assert not asks_for_short_answer(question)


INFO = ArticleInfo("a1", "Troops", None, None, None)
TEXT = "Putin ordered troops back to base. NATO said it saw no sign of a pullout."


class FixedReader:
    """A reader answering with the first word of each passage, at a fixed probability; its
    score for a passage is ``scores[passage]`` (0 by default)."""

    def __init__(self, probability: float, scores: dict[str, float] | None = None) -> None:
        self.probability = probability
        self.scores = scores or {}
        self.calls: list[tuple[str, list[str]]] = []

    def read(self, question: str, passages: Sequence[str]) -> list[Span | None]:
        self.calls.append((question, list(passages)))
        return [
            Span(0, p.index(" "), p[: p.index(" ")], self.probability, self.scores.get(p, 0.0))
            for p in passages
        ]


def passages() -> list[ScoredPassage]:
    return [
        ScoredPassage(Chunk("a1:0", "a1", TEXT[:34], 0, 34), INFO, 0.9),
        ScoredPassage(Chunk("a1:35", "a1", TEXT[35:], 35, len(TEXT)), INFO, 0.8),
    ]


def test_a_factoid_answer_starts_with_its_short_answer_citing_the_first_passage() -> None:
    fixed = FixedReader(0.9)
    answer = ExtractiveAnswerer(min_score=0.3, reader=fixed).answer("Who ordered it?", passages())
    assert answer.short_answer == "Putin"
    assert answer.text == f"Putin [1]\n\n{TEXT[:34]} [1] {TEXT[35:]} [2]"
    assert [(s.text, s.citations, s.supported) for s in answer.sentences] == [
        ("Putin", (1,), True),
        (TEXT[:34], (1,), True),
        (TEXT[35:], (2,), True),
    ]
    assert answer.short_answer in answer.citations[0].quote
    # 0.9 and 0.8 are a close call: both are read, in one batch; the reader's equal scores
    # leave the order to retrieval
    assert fixed.calls == [("Who ordered it?", [TEXT[:34], TEXT[35:]])]


def test_no_short_answer_when_unsure_or_not_asked_for() -> None:
    unsure = ExtractiveAnswerer(min_score=0.3, reader=FixedReader(0.2), min_short_probability=0.3)
    answer = unsure.answer("Who ordered it?", passages())
    assert answer.short_answer is None and answer.text.startswith(TEXT[:34])
    fixed = FixedReader(0.9)
    why = ExtractiveAnswerer(min_score=0.3, reader=fixed).answer("Why was it ordered?", passages())
    assert why.short_answer is None and fixed.calls == []
    assert ExtractiveAnswerer(min_score=0.95, reader=fixed).answer("Who?", passages()).abstained


def scored(texts_and_scores: Sequence[tuple[str, float]]) -> list[ScoredPassage]:
    out, at = [], 0
    for n, (text, score) in enumerate(texts_and_scores):
        out.append(ScoredPassage(Chunk(f"a1:{n}", "a1", text, at, at + len(text)), INFO, score))
        at += len(text) + 1
    return out


def test_the_reader_decides_the_order_of_a_close_call() -> None:
    found = scored([("Putin ordered it.", 0.6), ("Shoigu ordered it.", 0.55), ("Nobody did.", 0.2)])
    assert log_odds(0.6) - log_odds(0.55) < CLOSE_CALL and READ_TOP >= 3
    fixed = FixedReader(0.9, {"Shoigu ordered it.": 4.0, "Putin ordered it.": -2.0})
    answer = ExtractiveAnswerer(min_score=0.3, reader=fixed).answer("Who ordered it?", found)
    assert fixed.calls == [("Who ordered it?", [p.chunk.text for p in found])]  # one batch
    assert [c.quote for c in answer.citations] == ["Shoigu ordered it.", "Putin ordered it."]
    assert answer.short_answer == "Shoigu" and answer.citations[0].score == 0.55
    assert answer.text.startswith("Shoigu [1]\n\nShoigu ordered it. [1] Putin ordered it. [2]")


def test_a_clear_first_passage_is_the_only_one_read() -> None:
    found = scored([("Putin ordered it.", 0.95), ("Shoigu ordered it.", 0.6)])
    assert log_odds(0.95) - log_odds(0.6) >= CLOSE_CALL
    fixed = FixedReader(0.9, {"Shoigu ordered it.": 50.0})
    answer = ExtractiveAnswerer(min_score=0.3, reader=fixed).answer("Who ordered it?", found)
    assert fixed.calls == [("Who ordered it?", ["Putin ordered it."])]
    assert answer.short_answer == "Putin" and answer.citations[0].quote == "Putin ordered it."


def test_a_passage_the_reader_promotes_is_cited_with_the_best_one() -> None:
    # the third passage scores below keep_ratio x the best, yet the reader puts it first
    found = scored([("Putin ordered it.", 0.5), ("Lavrov ordered it.", 0.45), ("Shoigu did.", 0.2)])
    fixed = FixedReader(0.9, {"Shoigu did.": 40.0})
    answer = ExtractiveAnswerer(min_score=0.3, keep_ratio=0.5, reader=fixed).answer(
        "Who ordered it?", found
    )
    assert [c.quote for c in answer.citations] == [
        "Shoigu did.",
        "Putin ordered it.",
        "Lavrov ordered it.",
    ]
    assert answer.short_answer == "Shoigu"


@pytest.mark.slow
def test_qa_ask_json_gives_a_short_answer_from_its_first_citation(tmp_path: Path) -> None:
    library = Library(Settings(data_dir=tmp_path / "data"))
    library.ingest([SEED_ARTICLE], progress=False)
    answer = library.ask("Who is the Secretary General of NATO?")
    assert answer.short_answer is not None and "Rasmussen" in answer.short_answer
    assert answer.short_answer in answer.citations[0].quote
    assert answer.text.startswith(f"{answer.short_answer} [1]\n\n")
    off = Library(Settings(data_dir=tmp_path / "data", short_answers=False))
    assert off.ask("Who is the Secretary General of NATO?").short_answer is None


@pytest.mark.slow
def test_the_training_script_writes_weights_the_reader_loads(tmp_path: Path) -> None:
    out = tmp_path / "reader.safetensors"
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks/train_reader.py"),
            "--questions",
            "96",
            "--dev-questions",
            "20",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "training examples" in run.stdout and "SQuAD dev, 20 questions" in run.stdout
    from safetensors import safe_open

    with safe_open(str(out), "pt") as f:
        names = set(f.keys())
        meta = f.metadata()
    with safe_open(str(BUNDLED), "pt") as f:
        assert names == set(f.keys())  # the same tensors as the committed file
    assert json.loads(json.dumps(meta))["trained_by"] == "benchmarks/train_reader.py"
    [span] = Reader(out).read("Who?", ["Putin ordered the troops back."])
    assert span is not None and span.text
