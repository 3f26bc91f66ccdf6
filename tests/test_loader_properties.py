"""Properties of the loaders over generated input: they never raise, and what they yield is
exactly one result per file (text, Markdown, HTML) or per non-blank line (JSONL), with clean
article text.

The expected text is computed here from the documented rules (line endings normalized, C0
controls but tab and newline dropped, stripped), not with the loaders' own helpers.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from vectorstore.loaders import TITLE_MAX_CHARS, LoadFailure, LoadResult, load_file
from vectorstore.types import Article

NOT_TEXT = "not valid text (tried UTF-8, UTF-16, cp1252)"
FILE_REASONS = {"empty file", "binary file (not text)", NOT_TEXT}


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


def load(folder: Path, name: str, content: bytes, max_bytes: int = 20_000_000) -> list[LoadResult]:
    path = folder / name
    path.write_bytes(content)
    results = list(load_file(path, max_bytes))
    for result in results:
        assert isinstance(result, Article | LoadFailure), result
        if isinstance(result, LoadFailure):
            assert result.path == str(path)
            assert result.reason.strip(), result
        else:
            assert_clean_article(result)
    return results


def cleaned(text: str) -> str:
    """What an article's text is, by the documented rules."""
    for ending in ("\r\n", "\r", "\f", "\v"):
        text = text.replace(ending, "\n")
    return "".join(c for c in text if c in "\n\t" or not (c < " " or c == "\x7f")).strip()


def assert_clean_article(article: Article) -> None:
    assert article.text and article.text == article.text.strip()
    assert not any(c < " " and c not in "\n\t" for c in article.text), repr(article.text)
    assert "\x7f" not in article.text
    assert article.id and article.title
    assert "\n" not in article.title and len(article.title) <= TITLE_MAX_CHARS


# --- text files -------------------------------------------------------------------------------

_PIECES = st.one_of(
    st.text(max_size=12),
    st.text(alphabet=st.characters(codec="cp1252"), max_size=12),
    st.sampled_from(
        [
            *("\r\n", "\r", "\n", "\t", " ", "\x00", "\x07", "\x1b[0m", "\x0b\x0c", "\x7f"),
            *("\ufeff", "\x85", "\u2028", "\u00a0", "é", "Київ", "\U0001f600", "# ", "**x**"),
            "---\n",
        ]
    ),
)
ANY_TEXT = st.lists(_PIECES, max_size=20).map("".join)


def written(text: str, encoding: str) -> bytes:
    """``text`` as a file in ``encoding``; "utf-16" and "utf-8-sig" write a BOM."""
    return text.encode(encoding)


@settings(max_examples=200, deadline=None)
@given(
    text=ANY_TEXT,
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252"]),
    suffix=st.sampled_from([".txt", ".md"]),
)
@example(text="\x10", encoding="utf-16", suffix=".txt")  # FF FE 10 00: UTF-16, not UTF-32
@example(text="\x00a", encoding="utf-16", suffix=".txt")  # FF FE 00 00 ...: the UTF-32 BOM
def test_any_text_file_is_one_clean_article_or_one_failure(
    folder: Path, text: str, encoding: str, suffix: str
) -> None:
    try:
        raw = written(text, encoding)
    except UnicodeEncodeError:
        assume(False)
    results = load(folder, "doc" + suffix, raw)
    assert len(results) == 1, results
    [result] = results
    if encoding == "utf-16":
        expected = cleaned(text)
        if raw.startswith(codecs.BOM_UTF32_LE):
            # A UTF-16 LE BOM then U+0000 is also the UTF-32 LE BOM, which wins if it fits.
            with contextlib.suppress(UnicodeDecodeError):
                expected = cleaned(raw.decode("utf-32"))
    else:
        try:
            # Bytes that are valid UTF-8 are read as UTF-8, whatever they were written as.
            expected = cleaned(raw.decode("utf-8-sig"))
        except UnicodeDecodeError:
            expected = cleaned(text)
    if isinstance(result, Article):
        assert result.text == expected
        assert result.id == "doc"
        return
    assert result.reason in FILE_REASONS, result
    must_load = encoding != "cp1252" and not (encoding == "utf-8" and "\x00" in text)
    assert not (must_load and expected), f"{result.reason} for {raw!r}"


# --- JSONL ------------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=6,
)
FIELD_VALUES = st.one_of(
    JSON_VALUES,
    ANY_TEXT,
    st.dates().map(str),
    st.sampled_from(["2014-05-19", "May 19, 2014", "2014-05-19T10:00:00Z", "May 2014", "1"]),
)
RECORDS = st.fixed_dictionaries(
    {},
    optional={name: FIELD_VALUES for name in ("id", "text", "title", "url", "source", "published")},
)
LINES = st.lists(
    st.one_of(
        st.tuples(st.one_of(JSON_VALUES, RECORDS), st.booleans()).map(
            lambda v: json.dumps(v[0], ensure_ascii=v[1])
        ),
        st.sampled_from(["", "  ", "\t", "{", '{"text": }', "[1,", "nul"]),
    ),
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(
    lines=LINES,
    crlf=st.booleans(),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-32"]),
    max_bytes=st.one_of(st.just(20_000_000), st.integers(min_value=1, max_value=80)),
)
def test_each_nonblank_jsonl_line_is_one_result_with_its_line_number(
    folder: Path, lines: list[str], crlf: bool, encoding: str, max_bytes: int
) -> None:
    newline = "\r\n" if crlf else "\n"
    raw = written("".join(line + newline for line in lines), encoding)
    results = load(folder, "lines.jsonl", raw, max_bytes)

    def size(line: str) -> int:
        return len(line.encode(f"{encoding}-le" if encoding in ("utf-16", "utf-32") else "utf-8"))

    # A line over the limit is reported without being looked at, even if it is blank.
    numbered = [
        (n, line) for n, line in enumerate(lines, start=1) if line.strip() or size(line) > max_bytes
    ]
    if not numbered:
        assert [(r.reason, r.line) for r in results if isinstance(r, LoadFailure)] == [
            ("empty file", None)
        ]
        assert len(results) == 1
        return
    assert len(results) == len(numbered), results
    ids = [r.id for r in results if isinstance(r, Article)]
    assert len(ids) == len(set(ids))
    for (n, line), result in zip(numbered, results, strict=True):
        if isinstance(result, LoadFailure):
            assert result.line == n
            assert result.reason.startswith(f"line {n}: "), result
            too_large = result.reason.startswith(f"line {n}: record too large: ")
            assert too_large == (size(line) > max_bytes), (result, size(line))
        else:
            assert size(line) <= max_bytes
            value = json.loads(line)
            assert isinstance(value, dict)
            assert result.text == cleaned(value["text"])


# --- arbitrary bytes --------------------------------------------------------------------------

_BYTE_PIECES = st.one_of(
    st.binary(max_size=40),
    st.sampled_from(
        [
            *(codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE),
            *(b"\n", b"\r\n", b"\x00", b'{"text": "x"}\n', b"\xe9", b"\xc3\xa9", b"\x00\xd8"),
        ]
    ),
)
ANY_BYTES = st.lists(_BYTE_PIECES, max_size=12).map(b"".join)


@settings(max_examples=200, deadline=None)
@given(
    raw=ANY_BYTES,
    suffix=st.sampled_from([".txt", ".md", ".json", ".jsonl"]),
    max_bytes=st.one_of(st.just(20_000_000), st.integers(min_value=1, max_value=64)),
)
def test_arbitrary_bytes_never_raise(folder: Path, raw: bytes, suffix: str, max_bytes: int) -> None:
    results = load(folder, "any" + suffix, raw, max_bytes)
    assert results
    if suffix in (".txt", ".md"):
        assert len(results) == 1


@settings(max_examples=40, deadline=None)
@given(raw=ANY_BYTES)
def test_arbitrary_bytes_as_html_never_raise(folder: Path, raw: bytes) -> None:
    assert len(load(folder, "any.html", raw)) == 1


# --- HTML-ish ---------------------------------------------------------------------------------

_TAGS = ["p", "div", "article", "main", "h1", "title", "script", "style", "a", "br", "nav", "li"]
_TAG = st.builds(
    lambda name, closing, attrs, unclosed: (
        f"<{'/' if closing else ''}{name}{attrs}{'' if unclosed else '>'}"
    ),
    st.sampled_from([*_TAGS, "x-y", "!DOCTYPE html", "?xml", "meta"]),
    st.booleans(),
    st.sampled_from(["", ' class="c"', " href='http://x.test'", ' content="2014-05-19"', " a=<"]),
    st.booleans(),
)
_HTML_PIECES = st.one_of(
    _TAG,
    st.text(max_size=20),
    st.sampled_from(
        [
            *("&amp;", "&#x41;", "&#99999999;", "&bogus;", "&", "<!--", "-->", "<![CDATA[", "]]>"),
            '<meta property="article:published_time" content="May 2014">',
            *("\x00", "\r\n"),
        ]
    ),
)
HTML_ISH = st.lists(_HTML_PIECES, max_size=30).map("".join)


@settings(max_examples=100, deadline=None)
@given(markup=HTML_ISH, encoding=st.sampled_from(["utf-8", "utf-16"]))
def test_html_ish_strings_never_raise(folder: Path, markup: str, encoding: str) -> None:
    results = load(folder, "page.html", markup.encode(encoding))
    assert len(results) == 1
