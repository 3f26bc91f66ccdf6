"""Tests for vectorstore.loaders: every input format and every kind of bad input."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

from vectorstore.errors import LoadError
from vectorstore.loaders import (
    SUPPORTED_SUFFIXES,
    LoadFailure,
    LoadResult,
    iter_files,
    load_file,
    load_paths,
    normalize_published,
)
from vectorstore.types import Article

REPO = Path(__file__).resolve().parent.parent
SEED = REPO / "seeds" / "000_624088a241e45b64.txt"


def articles(results: list[LoadResult]) -> list[Article]:
    return [r for r in results if isinstance(r, Article)]


def failures(results: list[LoadResult]) -> list[LoadFailure]:
    return [r for r in results if isinstance(r, LoadFailure)]


def only_failure(path: Path, max_bytes: int = 20_000_000) -> LoadFailure:
    results = list(load_file(path, max_bytes))
    assert len(results) == 1, results
    assert isinstance(results[0], LoadFailure), results
    assert results[0].path == str(path)
    return results[0]


def only_article(path: Path) -> Article:
    results = list(load_file(path))
    assert len(results) == 1, results
    assert isinstance(results[0], Article), results
    assert results[0].text.strip()
    return results[0]


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- the seed


def test_real_seed_article() -> None:
    article = only_article(SEED)
    assert article.id == "000_624088a241e45b64"
    assert article.title == (
        "Russian President Vladimir Putin has ordered troops deployed near Ukraine "
        "to return to their home bases."
    )
    assert "Sergei Shoigu" in article.text
    assert article.text.startswith(article.title)  # the opening sentence stays in the text
    assert article.text == article.text.strip()
    assert "\r" not in article.text


# --------------------------------------------------------------------------- .txt


def test_txt_title_is_first_nonempty_line_and_text_is_whole_file(tmp_path: Path) -> None:
    path = write(tmp_path / "story.txt", b"\r\n\r\n  Opening line.  \r\nSecond line.\r\n\r\n")
    article = only_article(path)
    assert article == Article(
        id="story", title="Opening line.", text="Opening line.  \nSecond line."
    )


def test_txt_long_first_line_is_cut_at_a_word_boundary(tmp_path: Path) -> None:
    line = " ".join(["word"] * 100)  # 499 chars
    article = only_article(write(tmp_path / "long.txt", line + "\nmore"))
    assert len(article.title) <= 200
    assert article.title.endswith("word…")
    assert article.text.startswith(line)


def test_control_characters_are_removed_but_tabs_and_newlines_kept(tmp_path: Path) -> None:
    article = only_article(write(tmp_path / "ctl.txt", "Title\x07 here\nA\tB\x1b[0m\x0bC\n"))
    assert article.title == "Title here"
    assert article.text == "Title here\nA\tB[0m\nC"


# --------------------------------------------------------------------------- Markdown


def test_markdown_heading_is_the_title(tmp_path: Path) -> None:
    text = "# The **Big** _Story_ of `snake_case_names` #\n\nBody with [a link](http://x.test).\n"
    article = only_article(write(tmp_path / "note.md", text))
    assert article.id == "note"
    assert article.title == "The Big Story of snake_case_names"
    assert article.text == text.strip()


def test_markdown_without_leading_heading_uses_first_line(tmp_path: Path) -> None:
    text = "---\ntitle: ignored\n---\n\n*Breaking:* markets fall\n\n# Later heading\n"
    article = only_article(write(tmp_path / "news.markdown", text))
    assert article.title == "Breaking: markets fall"
    assert article.text == text.strip()


# --------------------------------------------------------------------------- HTML

HTML_PAGE = """<!doctype html>
<html><head>
<title>Ignored Tab Title | Daily Planet</title>
<link rel="canonical" href="https://news.example.com/2014/05/troops">
<meta property="og:site_name" content="Daily Planet">
<meta property="article:published_time" content="2014-05-19T10:00:00Z">
<script>var trackingCode = "SCRIPT_MARKER_SHOULD_NOT_APPEAR";</script>
</head><body>
<nav><ul><li><a href="/">Home</a></li><li><a href="/world">NAVMARKER World</a></li>
<li><a href="/sport">NAVMARKER Sport</a></li></ul></nav>
<article>
<h1>Putin orders troops back to base</h1>
<p>Russian President Vladimir Putin has ordered troops deployed near Ukraine to return to
their home bases, in a move believed to be an effort to ease tensions with the West.</p>
<p>Mr Putin specifically ordered Defence Minister Sergei Shoigu to pull back forces involved
in planned spring drills in the Rostov, Belgorod and Bryansk regions, the Kremlin said.</p>
<script>document.write("SCRIPT_MARKER_SHOULD_NOT_APPEAR")</script>
</article>
<footer>FOOTERMARKER All rights reserved.</footer>
</body></html>
"""


def test_html_main_text_and_metadata(tmp_path: Path) -> None:
    article = only_article(write(tmp_path / "troops.html", HTML_PAGE))
    assert article.id == "troops"
    assert article.title == "Putin orders troops back to base"
    assert "Sergei Shoigu" in article.text
    assert "SCRIPT_MARKER" not in article.text
    assert "NAVMARKER" not in article.text
    assert "trackingCode" not in article.text
    assert article.url == "https://news.example.com/2014/05/troops"
    assert article.source == "Daily Planet"
    assert article.published == "2014-05-19"


def test_html_without_article_text(tmp_path: Path) -> None:
    page = "<html><head><title>Nothing</title><script>var x = 1;</script></head><body></body>"
    failure = only_failure(write(tmp_path / "blank.htm", page))
    assert failure.reason == "no article text found in HTML"


# --------------------------------------------------------------------------- JSON / JSONL


def test_jsonl_good_lines_load_and_bad_line_is_reported(tmp_path: Path) -> None:
    lines = [
        json.dumps({"id": "a1", "title": "First", "text": "Alpha text.", "source": "Wire"}),
        "",
        '{"id": "broken", "text": "no closing brace"',
        json.dumps({"id": 7, "text": "Seven text.\nSecond line", "published": "May 19, 2014"}),
        json.dumps({"text": "Default id text.", "url": "https://x.test/a"}),
    ]
    path = write(tmp_path / "batch.jsonl", "\n".join(lines) + "\n")
    results = list(load_file(path))
    assert [a.id for a in articles(results)] == ["a1", "7", "batch-5"]
    first, seven, default = articles(results)
    assert (first.title, first.text, first.source) == ("First", "Alpha text.", "Wire")
    assert (seven.title, seven.published) == ("Seven text.", "2014-05-19")
    assert default.url == "https://x.test/a"
    [bad] = failures(results)
    assert bad.line == 3
    assert bad.reason.startswith("line 3: invalid JSON: Expecting ',' delimiter at column ")
    assert results.index(bad) == 1  # reported in file order


def test_json_array(tmp_path: Path) -> None:
    records = [
        {"id": "x", "text": "  X body  ", "published": "2014-05-19T23:30:00-05:00"},
        {"title": "Why", "text": "Y body", "source": "  Reuters "},
    ]
    results = list(load_file(write(tmp_path / "arr.json", json.dumps(records))))
    assert results == [
        Article(id="x", title="X body", text="X body", published="2014-05-19"),
        Article(id="arr-2", title="Why", text="Y body", source="Reuters"),
    ]


def test_json_object_with_articles_key(tmp_path: Path) -> None:
    data = {"articles": [{"id": "one", "text": "One."}, {"id": "two", "text": "Two."}]}
    results = list(load_file(write(tmp_path / "feed.json", json.dumps(data))))
    assert [(a.id, a.text) for a in articles(results)] == [("one", "One."), ("two", "Two.")]
    assert failures(results) == []


def test_json_single_object_uses_the_file_stem_as_id(tmp_path: Path) -> None:
    path = write(tmp_path / "solo.json", json.dumps({"text": "Solo text", "title": "Solo"}))
    assert only_article(path) == Article(id="solo", title="Solo", text="Solo text")


def test_json_record_problems_are_reported_per_record(tmp_path: Path) -> None:
    records: list[object] = [
        {"id": "ok", "text": "Fine."},
        {"id": "no-text", "title": "Missing"},
        {"id": "blank", "text": "   \n "},
        {"id": "when", "text": "Dated.", "published": "yesterday"},
        "just a string",
        {"id": "ok", "text": "Same id again."},
        {"id": "num", "text": 42},
        {"id": "partial", "text": "Month only.", "published": "May 2014"},
    ]
    results = list(load_file(write(tmp_path / "mixed.json", json.dumps(records))))
    assert [a.id for a in articles(results)] == ["ok"]
    assert [(f.line, f.reason) for f in failures(results)] == [
        (2, "record 2: missing 'text'"),
        (3, "record 3: empty 'text'"),
        (4, "record 4: published: not a date: 'yesterday'"),
        (5, "record 5: expected a JSON object, got string"),
        (6, "record 6: duplicate id 'ok' (first used in record 1)"),
        (7, "record 7: 'text' must be a string, got number"),
        (8, "record 8: published: not a full date (needs year, month and day): 'May 2014'"),
    ]


def test_malformed_json_file_reports_parser_position(tmp_path: Path) -> None:
    failure = only_failure(write(tmp_path / "bad.json", '[\n  {"text": "a"},\n  {"text": }\n]'))
    assert failure.reason == "invalid JSON: Expecting value at line 3, column 12"
    assert failure.line == 3


def test_json_with_no_records(tmp_path: Path) -> None:
    assert only_failure(write(tmp_path / "none.json", "[]")).reason == "no records found"
    scalar = only_failure(write(tmp_path / "num.json", "12"))
    assert scalar.reason == "expected a JSON object or an array of objects, got number"


# --------------------------------------------------------------------------- large JSONL


def jsonl(records: list[dict[str, str]], newline: str = "\n") -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + newline for r in records)


def test_jsonl_over_the_limit_is_streamed_and_the_limit_applies_per_line(tmp_path: Path) -> None:
    records = [{"id": f"r{i}", "text": f"Record {i} text."} for i in range(300)]
    path = write(tmp_path / "corpus.jsonl", jsonl(records))
    assert path.stat().st_size > 10_000  # ten times the limit below
    results = list(load_file(path, max_bytes=1_000))
    assert failures(results) == []
    assert [a.id for a in articles(results)] == [r["id"] for r in records]
    assert len(list(load_paths([tmp_path], max_bytes=1_000))) == 300
    whole = write(tmp_path / "corpus.json", json.dumps(records))  # .json is still read whole
    assert only_failure(whole, max_bytes=1_000).reason.startswith("file too large: ")


def test_jsonl_over_long_line_is_reported_with_its_line_number(tmp_path: Path) -> None:
    lines = [
        json.dumps({"id": "a", "text": "Alpha."}),
        json.dumps({"id": "long", "text": "x" * 2_500}),  # 2,526 bytes
        "",
        json.dumps({"id": "b", "text": "Beta."}),
        json.dumps({"id": "a", "text": "Alpha again."}),
    ]
    path = write(tmp_path / "feed.jsonl", "\r\n".join(lines) + "\r\n")
    results = list(load_file(path, max_bytes=1_000))
    assert [a.id for a in articles(results)] == ["a", "b"]
    assert [(f.line, f.reason) for f in failures(results)] == [
        (2, "line 2: record too large: 2.5 KB (limit 1.0 KB)"),
        (5, "line 5: duplicate id 'a' (first used in line 1)"),
    ]
    assert results.index(failures(results)[0]) == 1  # in file order


def test_jsonl_line_limit_is_exact_and_ignores_the_line_ending(tmp_path: Path) -> None:
    def line(size: int) -> bytes:
        return b'{"text": "' + b"x" * (size - 12) + b'"}'

    path = write(tmp_path / "edge.jsonl", line(100) + b"\r\n" + line(101) + b"\n" + line(100))
    results = list(load_file(path, max_bytes=100))
    assert [len(a.text) for a in articles(results)] == [88, 88]
    assert [(f.line, f.reason) for f in failures(results)] == [
        (2, "line 2: record too large: 101 bytes (limit 100 bytes)")
    ]


@pytest.mark.parametrize(
    ("codec", "bom", "long_size"),
    [
        ("utf-16-le", b"\xff\xfe", "1.3 KB"),
        ("utf-16-be", b"\xfe\xff", "1.3 KB"),
        ("utf-32-le", b"\xff\xfe\x00\x00", "2.5 KB"),
    ],
)
def test_utf16_and_utf32_jsonl_are_streamed(
    tmp_path: Path, codec: str, bom: bytes, long_size: str
) -> None:
    records = [{"id": f"k{i}", "text": f"Київ talks, part {i}."} for i in range(200)]
    records[50] = {"id": "long", "text": "x" * 600}  # 626 characters
    path = write(tmp_path / "wide.jsonl", bom + jsonl(records, "\r\n").encode(codec))
    assert path.stat().st_size > 10_000
    results = list(load_file(path, max_bytes=1_000))
    assert len(articles(results)) == 199
    assert articles(results)[0] == Article(
        id="k0", title="Київ talks, part 0.", text=("Київ talks, part 0.")
    )
    assert [(f.line, f.reason) for f in failures(results)] == [
        (51, f"line 51: record too large: {long_size} (limit 1.0 KB)")
    ]


def test_undecodable_utf16_line_is_reported_and_the_rest_still_load(tmp_path: Path) -> None:
    records = [{"id": f"k{i}", "text": f"Story number {i}."} for i in range(2_000)]
    content = bytearray(b"\xff\xfe" + jsonl(records).encode("utf-16-le"))
    assert len(content) > 70_000  # past the start that is checked for the whole file
    at = content.index('"k1999"'.encode("utf-16-le"))
    content[at : at + 2] = b"\x00\xd8"  # a lone high surrogate in line 2,000
    results = list(load_file(write(tmp_path / "late.jsonl", bytes(content))))
    assert len(articles(results)) == 1_999
    assert [(f.line, f.reason) for f in failures(results)] == [
        (2_000, "line 2000: not valid UTF-16 text")
    ]
    early = write(tmp_path / "early.jsonl", b"\xff\xfe\x00\xd8" + bytes(content[2:]))
    assert only_failure(early).reason == "not valid text (tried UTF-8, UTF-16, cp1252)"


def test_jsonl_lines_are_decoded_one_by_one(tmp_path: Path) -> None:
    content = b'{"text": "caf\xc3\xa9 one"}\n{"text": "caf\xe9 two"}\n{"text": "\x93q\x94"}\n'
    results = list(load_file(write(tmp_path / "mixed.jsonl", content)))
    assert [a.text for a in articles(results)] == ["café one", "café two", "“q”"]


def test_jsonl_is_never_held_whole_in_memory(tmp_path: Path) -> None:
    import tracemalloc

    text = "Troops returned to their bases. " * 100  # 3.2 KB a record
    path = write(tmp_path / "big.jsonl", jsonl([{"text": text}] * 500))
    assert path.stat().st_size > 1_500_000
    tracemalloc.start()
    try:
        count = sum(1 for r in load_file(path, max_bytes=10_000) if isinstance(r, Article))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 500
    assert peak < 400_000, peak  # reading it whole would take over 3 MB


def test_published_normalization() -> None:
    assert normalize_published("2014-05-19") == "2014-05-19"
    assert normalize_published("2014-05-19T10:00:00Z") == "2014-05-19"
    assert normalize_published("May 19, 2014") == "2014-05-19"
    assert normalize_published("Mon, 19 May 2014 10:00:00 +0000") == "2014-05-19"
    assert normalize_published("") is None
    assert normalize_published(None) is None
    for bad in ("yesterday", "5", "2014-13-45"):
        with pytest.raises(ValueError):
            normalize_published(bad)


# --------------------------------------------------------------------------- decoding


def test_empty_and_whitespace_only_files(tmp_path: Path) -> None:
    assert only_failure(write(tmp_path / "empty.txt", b"")).reason == "empty file"
    assert only_failure(write(tmp_path / "ws.md", b" \r\n\t\n  ")).reason == "empty file"
    assert only_failure(write(tmp_path / "bom.txt", b"\xef\xbb\xbf\n")).reason == "empty file"
    assert only_failure(write(tmp_path / "blank.jsonl", b"\n\n")).reason == "empty file"


def test_binary_file(tmp_path: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10"
    assert only_failure(write(tmp_path / "image.txt", png)).reason == "binary file (not text)"
    assert only_failure(write(tmp_path / "image.jsonl", png)).reason == "binary file (not text)"


def test_cp1252_fallback(tmp_path: Path) -> None:
    article = only_article(write(tmp_path / "latin.txt", b"Caf\xe9 society \x96 \x93quoted\x94\n"))
    assert article.text == "Café society – “quoted”"


def test_undecodable_bytes(tmp_path: Path) -> None:
    junk = bytes(range(1, 256)) * 4  # no NUL, but cp1252-undefined bytes and control chars
    for name in ("junk.txt", "junk.jsonl"):
        assert only_failure(write(tmp_path / name, junk)).reason == (
            "not valid text (tried UTF-8, UTF-16, cp1252)"
        )


def test_cp1252_decodable_but_not_text(tmp_path: Path) -> None:
    undefined_in_cp1252 = {0x81, 0x8D, 0x8F, 0x90, 0x9D}
    junk = bytes(b for b in range(1, 256) if b not in undefined_in_cp1252) * 4
    junk.decode("cp1252")  # decodes cleanly, but is full of control characters
    assert only_failure(write(tmp_path / "junk.md", junk)).reason == (
        "not valid text (tried UTF-8, UTF-16, cp1252)"
    )


def test_utf8_bom_and_utf16_with_bom(tmp_path: Path) -> None:
    assert only_article(write(tmp_path / "bom8.txt", "\ufeffNaïve title\nbody".encode())).title == (
        "Naïve title"
    )
    for name, codec in (("le.txt", "utf-16"), ("be.txt", "utf-16-be")):
        content = "Київ talks\r\nbody text".encode(codec)
        if codec == "utf-16-be":
            content = b"\xfe\xff" + content
        article = only_article(write(tmp_path / name, content))
        assert (article.title, article.text) == ("Київ talks", "Київ talks\nbody text")
    # FF FE 00 00 is the UTF-32 LE mark, or the UTF-16 LE one then U+0000: tried both ways.
    nul_first = write(tmp_path / "nul.txt", b"\xff\xfe" + "\x00Kyiv talks".encode("utf-16-le"))
    assert only_article(nul_first).text == "Kyiv talks"


# --------------------------------------------------------------------------- file-level errors


def test_too_large_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "big.txt", "x" * 2_500)
    assert only_failure(path, max_bytes=1_000).reason == "file too large: 2.5 KB (limit 1.0 KB)"
    assert only_article(path).text == "x" * 2_500
    results = list(load_paths([tmp_path], max_bytes=1_000))
    assert results == [LoadFailure(str(path), "file too large: 2.5 KB (limit 1.0 KB)")]


def test_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    assert list(iter_files([missing])) == [LoadFailure(str(missing), "no such file or directory")]
    assert only_failure(missing).reason == "no such file or directory"


def test_unsupported_explicit_file(tmp_path: Path) -> None:
    pdf = write(tmp_path / "report.pdf", b"%PDF-1.4")
    bare = write(tmp_path / "README", "text")
    assert list(iter_files([pdf, str(bare)])) == [
        LoadFailure(str(pdf), "unsupported file type '.pdf'"),
        LoadFailure(str(bare), "unsupported file type (no extension)"),
    ]
    assert only_failure(pdf).reason == "unsupported file type '.pdf'"


def test_directory_passed_to_load_file(tmp_path: Path) -> None:
    folder = tmp_path / "looks_like.txt"
    folder.mkdir()
    assert only_failure(folder).reason == "is a directory"


def test_named_pipe_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    assert only_failure(fifo).reason == "not a regular file (named pipe)"
    assert list(load_paths([tmp_path])) == [
        LoadFailure(str(fifo), "not a regular file (named pipe)")
    ]


def test_broken_symlink(tmp_path: Path) -> None:
    link = tmp_path / "gone.txt"
    os.symlink(tmp_path / "missing-target.txt", link)
    assert list(iter_files([tmp_path])) == [
        LoadFailure(str(link), "broken symlink (target missing)")
    ]


def _run_unprivileged(paths: list[Path]) -> list[str]:
    """Load ``paths`` in a child process without root's permission override.

    Root ignores file modes, so a forked child drops to uid/gid 65534 before loading; the
    failures come back through a pipe. Non-root runs load in-process.
    """
    if os.geteuid() != 0:
        return [str(r) for r in load_paths(paths)]
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            out = json.dumps([str(r) for r in load_paths(paths)]).encode()
            os.write(write_end, out)
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as fh:
        data = fh.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    result: list[str] = json.loads(data)
    return result


def test_permission_denied_on_file_and_folder() -> None:
    # Not under tmp_path: the child must be able to reach the files (tmp_path's parents are 0700).
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        secret = write(root / "secret.txt", "hidden words")
        secret.chmod(0o000)
        locked = root / "locked"
        write(locked / "inside.txt", "more hidden words")
        locked.chmod(0o000)
        readable = write(root / "ok.txt", "Visible text")
        readable.chmod(0o644)
        try:
            lines = _run_unprivileged([root])
        finally:
            locked.chmod(0o755)
    assert lines == [
        f"{locked}: permission denied",
        "Article(id='ok', title='Visible text', text='Visible text', source=None, url=None, "
        "published=None)",
        f"{secret}: permission denied",
    ]


# --------------------------------------------------------------------------- folders


def test_folder_recursion_is_sorted_and_skips_hidden_and_unsupported(tmp_path: Path) -> None:
    write(tmp_path / "b.txt", "B text")
    write(tmp_path / "a" / "z.md", "# Z\nz body")
    write(tmp_path / "a" / "deeper" / "y.jsonl", '{"text": "y"}\n')
    write(tmp_path / "a" / "image.png", b"\x89PNG\x00")
    write(tmp_path / "c.JSON", '{"text": "upper-case suffix"}')
    write(tmp_path / "notes.pdf", b"%PDF")
    write(tmp_path / ".git" / "HEAD.txt", "ref: refs/heads/main")
    write(tmp_path / ".hidden.txt", "secret")
    found = list(iter_files([tmp_path]))
    assert found == [
        tmp_path / "a" / "deeper" / "y.jsonl",
        tmp_path / "a" / "z.md",
        tmp_path / "b.txt",
        tmp_path / "c.JSON",
    ]
    results = list(load_paths([str(tmp_path)]))
    assert [(a.id, a.title) for a in articles(results)] == [
        ("y-1", "y"),
        ("z", "Z"),
        ("b", "B text"),
        ("c", "upper-case suffix"),
    ]
    assert failures(results) == []


def test_explicit_hidden_file_is_loaded(tmp_path: Path) -> None:
    hidden = write(tmp_path / ".draft.txt", "Draft")
    assert list(iter_files([hidden])) == [hidden]


def test_symlink_loop_is_reported_not_followed(tmp_path: Path) -> None:
    write(tmp_path / "docs" / "a.txt", "A text")
    loop = tmp_path / "docs" / "again"
    os.symlink(tmp_path / "docs", loop)  # docs/again -> docs
    self_link = tmp_path / "docs" / "self.txt"
    os.symlink(self_link, self_link)  # a link to itself: ELOOP on stat
    assert list(iter_files([tmp_path])) == [
        tmp_path / "docs" / "a.txt",
        LoadFailure(str(loop), "symlink loop"),
        LoadFailure(str(self_link), "symlink loop"),
    ]
    assert list(iter_files([self_link])) == [LoadFailure(str(self_link), "symlink loop")]


def test_same_file_reached_twice_is_yielded_once(tmp_path: Path) -> None:
    real = write(tmp_path / "real" / "x.txt", "X")
    os.symlink(tmp_path / "real", tmp_path / "twin")  # another path to the same folder
    assert list(iter_files([tmp_path, real])) == [real]


def test_duplicate_ids_across_files(tmp_path: Path) -> None:
    first = write(tmp_path / "a" / "story.txt", "One")
    second = write(tmp_path / "b" / "story.md", "Two")
    results = list(load_paths([tmp_path]))
    assert [a.text for a in articles(results)] == ["One"]
    assert failures(results) == [
        LoadFailure(str(second), f"duplicate article id 'story' (already loaded from {first})")
    ]


def test_failure_formats_as_a_load_error(tmp_path: Path) -> None:
    failure = only_failure(write(tmp_path / "e.txt", ""))
    error = failure.as_error()
    assert isinstance(error, LoadError)
    assert str(error) == f"{tmp_path / 'e.txt'}: empty file"


def test_supported_suffixes() -> None:
    assert SUPPORTED_SUFFIXES == (".txt", ".md", ".markdown", ".html", ".htm", ".json", ".jsonl")
