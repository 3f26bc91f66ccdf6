"""Turn files and folders into :class:`Article` values, reporting every bad input.

Nothing here raises for bad input: each unreadable file, and each bad record inside a
JSON/JSONL file, comes out as a :class:`LoadFailure` with a specific reason a user can act
on, while the good records of the same file still come out as articles.

Supported inputs (suffix, case-insensitive):

    .txt                 title = first non-empty line; text = the whole file
    .md, .markdown       title = first ATX heading (or first line); text = the whole file
    .html, .htm          main text and metadata extracted with trafilatura (offline)
    .json                one object, an array of objects, or {"articles": [...]}
    .jsonl               one object per line; blank lines skipped

A file over ``max_bytes`` is refused before it is read, except a .jsonl file: a corpus of many
articles is legitimately one large file, so it is streamed line by line (never read whole)
and the limit applies to each line instead.

Records carry ``text`` (required) and optional ``id``, ``title``, ``url``, ``source`` and
``published`` (normalized to ``YYYY-MM-DD``).
"""

from __future__ import annotations

import codecs
import errno
import html
import io
import json
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, AnyStr, BinaryIO, TypeAlias

from vectorstore.errors import LoadError
from vectorstore.types import Article

__all__ = [
    "DEFAULT_MAX_BYTES",
    "SUPPORTED_SUFFIXES",
    "LoadFailure",
    "LoadResult",
    "iter_files",
    "load_file",
    "load_paths",
    "normalize_published",
]

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".json", ".jsonl")
DEFAULT_MAX_BYTES = 20_000_000
TITLE_MAX_CHARS = 200

NOT_TEXT = "not valid text (tried UTF-8, UTF-16, cp1252)"
_MISSING = "no such file or directory"


@dataclass(frozen=True)
class LoadFailure:
    """A file, or one record inside a file, that could not be turned into an article."""

    path: str
    reason: str
    line: int | None = None  # 1-based line (JSONL, JSON syntax error) or record index (JSON)

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"

    def as_error(self) -> LoadError:
        """The failure as an exception, for callers that want to raise it."""
        return LoadError(str(self))


LoadResult: TypeAlias = Article | LoadFailure


class _Bad(Exception):
    """Internal: a file or record is unusable; the message is the failure reason."""


# --------------------------------------------------------------------------- finding files


def iter_files(paths: Iterable[str | Path]) -> Iterator[Path | LoadFailure]:
    """Expand ``paths`` into the files to load, in a deterministic order.

    Folders are walked recursively in sorted order; hidden entries (``.git``, ``.DS_Store``)
    and files with unsupported suffixes found inside folders are skipped silently. A path
    named explicitly that is missing, a broken symlink, a symlink loop or of an unsupported
    type is reported as a :class:`LoadFailure`. Symlinked folders are followed, but a link
    back into one of its own ancestors is reported as ``"symlink loop"``, and a file or
    folder reached twice (hard links, two links to one folder) is only yielded once.
    """
    seen_files: set[tuple[int, int]] = set()
    seen_dirs: set[tuple[int, int]] = set()
    for raw in paths:
        if str(raw) == "":
            yield LoadFailure("", "empty path")
            continue
        path = Path(raw)
        try:
            st = os.stat(path)
        except OSError as exc:
            yield LoadFailure(str(path), _stat_error_reason(path, exc))
            continue
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(path, st, seen_files, seen_dirs)
        elif not _is_supported(path):
            yield LoadFailure(str(path), _unsupported_reason(path))
        elif _first_visit(st, seen_files):
            yield path


_Ancestors: TypeAlias = frozenset[tuple[int, int]]


def _walk(
    root: Path,
    root_st: os.stat_result,
    seen_files: set[tuple[int, int]],
    seen_dirs: set[tuple[int, int]],
) -> Iterator[Path | LoadFailure]:
    """Walk one folder in sorted pre-order, with an explicit stack (no recursion limit)."""
    if not _first_visit(root_st, seen_dirs):
        return
    stack: list[tuple[Iterator[os.DirEntry[str]], _Ancestors]] = []
    opened = _open_folder(root, frozenset({_key(root_st)}))
    if isinstance(opened, LoadFailure):
        yield opened
        return
    stack.append(opened)
    while stack:
        entries, ancestors = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            continue
        for item in _visit_entry(entry, ancestors, seen_files, seen_dirs):
            if not isinstance(item, tuple):
                yield item
                continue
            opened = _open_folder(*item)
            if isinstance(opened, LoadFailure):
                yield opened
            else:
                stack.append(opened)


def _open_folder(
    folder: Path, ancestors: _Ancestors
) -> tuple[Iterator[os.DirEntry[str]], _Ancestors] | LoadFailure:
    """The folder's entries sorted by name, or why they cannot be listed."""
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        return LoadFailure(str(folder), _os_error_reason(exc, "cannot read folder"))
    return iter(entries), ancestors


def _visit_entry(
    entry: os.DirEntry[str],
    ancestors: _Ancestors,
    seen_files: set[tuple[int, int]],
    seen_dirs: set[tuple[int, int]],
) -> Iterator[Path | LoadFailure | tuple[Path, _Ancestors]]:
    """Classify one folder entry: a file to load, a failure, or a sub-folder to walk."""
    if entry.name.startswith("."):
        return
    path = Path(entry.path)
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP or _is_supported(path):
            yield LoadFailure(str(path), _stat_error_reason(path, exc))
        return
    if stat.S_ISDIR(st.st_mode):
        key = _key(st)
        if key in ancestors:
            yield LoadFailure(str(path), "symlink loop")
        elif _first_visit(st, seen_dirs):
            yield (path, ancestors | {key})
    elif _is_supported(path) and _first_visit(st, seen_files):
        yield path


def _key(st: os.stat_result) -> tuple[int, int]:
    return (st.st_dev, st.st_ino)


def _first_visit(st: os.stat_result, seen: set[tuple[int, int]]) -> bool:
    """Record a file or folder's identity; False if it was already seen."""
    key = _key(st)
    if key in seen:
        return False
    seen.add(key)
    return True


def _is_supported(path: Path) -> bool:
    return path.suffix.lower() in SUPPORTED_SUFFIXES


def _unsupported_reason(path: Path) -> str:
    if not path.suffix:
        return "unsupported file type (no extension)"
    return f"unsupported file type '{path.suffix}'"


def _stat_error_reason(path: Path, exc: OSError) -> str:
    """Reason for a path that cannot even be stat'ed."""
    if exc.errno == errno.ENOENT:
        return "broken symlink (target missing)" if path.is_symlink() else _MISSING
    return _os_error_reason(exc, "cannot read file")


def _os_error_reason(exc: OSError, what: str) -> str:
    """A short, specific reason for an OS error."""
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    if exc.errno == errno.ENOENT:
        return "no such file or directory"
    if exc.errno == errno.EISDIR:
        return "is a directory"
    if exc.errno == errno.ENOTDIR:
        return "not a directory"
    return f"{what}: {exc.strerror or exc}"


# --------------------------------------------------------------------------- loading


def load_paths(
    paths: Iterable[str | Path], max_bytes: int = DEFAULT_MAX_BYTES
) -> Iterator[LoadResult]:
    """Load every article under ``paths`` (files and folders): iter_files + load_file.

    An article whose id was already loaded from an earlier file in the same call is
    reported as a duplicate instead of being yielded twice.
    """
    first_seen: dict[str, str] = {}
    for item in iter_files(paths):
        if isinstance(item, LoadFailure):
            yield item
            continue
        for result in load_file(item, max_bytes):
            if isinstance(result, Article):
                where = first_seen.setdefault(result.id, str(item))
                if where != str(item):
                    reason = f"duplicate article id '{result.id}' (already loaded from {where})"
                    yield LoadFailure(str(item), reason)
                    continue
            yield result


def load_file(path: str | Path, max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[LoadResult]:
    """Load one file as articles (one for text/Markdown/HTML, any number for JSON/JSONL).

    Never raises for bad input: an unreadable or unusable file yields a single
    :class:`LoadFailure`; in JSON/JSONL files each bad record yields its own failure
    (with its line or record number) and the good records are still yielded.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        yield from _load_jsonl_file(path, max_bytes)
        return
    try:
        raw = _read_bytes(path, max_bytes)
        text = _decode(raw)
    except _Bad as exc:
        yield LoadFailure(str(path), str(exc))
        return
    if suffix == ".json":
        yield from _load_records(path, _json_records(path, text), jsonl=False)
        return
    try:
        yield _load_document(path, suffix, text)
    except _Bad as exc:
        yield LoadFailure(str(path), str(exc))


def _load_document(path: Path, suffix: str, text: str) -> Article:
    """One article from a .txt, .md or .html file."""
    if suffix in (".html", ".htm"):
        return _article_from_html(path.stem, text)
    body = _clean_text(text)
    if not body:
        raise _Bad("empty file")
    title = _markdown_title(body) if suffix in (".md", ".markdown") else _title_from_text(body)
    return Article(id=path.stem, title=title or path.stem, text=body)


def _read_bytes(path: Path, max_bytes: int) -> bytes:
    """The file's bytes, refusing non-regular and too-large files before reading them."""
    size = _check_file(path)
    if size > max_bytes:
        raise _Bad(_too_large(size, max_bytes))
    try:
        with open(path, "rb") as fh:
            raw = fh.read(max_bytes + 1)
    except OSError as exc:
        raise _Bad(_os_error_reason(exc, "cannot read file")) from None
    if len(raw) > max_bytes:  # the file grew after stat()
        raise _Bad(_too_large(len(raw), max_bytes, at_least=True))
    return raw


def _check_file(path: Path) -> int:
    """The size of a regular file with a supported suffix; raises _Bad for anything else."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise _Bad(_stat_error_reason(path, exc)) from None
    if stat.S_ISDIR(st.st_mode):
        raise _Bad("is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise _Bad(f"not a regular file ({_file_kind(st.st_mode)})")
    if not _is_supported(path):
        raise _Bad(_unsupported_reason(path))
    return st.st_size


def _file_kind(mode: int) -> str:
    kinds = {
        stat.S_ISFIFO: "named pipe",
        stat.S_ISSOCK: "socket",
        stat.S_ISCHR: "character device",
        stat.S_ISBLK: "block device",
    }
    return next((name for test, name in kinds.items() if test(mode)), "special file")


def _too_large(size: int, limit: int, at_least: bool = False) -> str:
    more = "more than " if at_least else ""
    return f"file too large: {more}{_human_size(size)} (limit {_human_size(limit)})"


def _human_size(n: int) -> str:
    """Decimal units, e.g. 52_400_000 -> '52.4 MB', 1_500 -> '1.5 KB', 12 -> '12 bytes'."""
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f} MB"
    if n >= 1_000:
        return f"{n / 1_000:.1f} KB"
    return f"{n} byte" if n == 1 else f"{n} bytes"


# --------------------------------------------------------------------------- decoding

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE: it starts with the same bytes
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_BAD_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")


def _decode_bom(raw: bytes, final: bool = True) -> tuple[str, str] | None:
    """(codec, text) of bytes that start with a byte-order mark; None without one.

    ``final=False`` decodes the start of a longer file. Raises _Bad when no codec the mark
    can name decodes them: FF FE 00 00 is UTF-32 LE, or else UTF-16 LE starting with U+0000.
    """
    named = [codec for bom, codec in _BOMS if raw.startswith(bom)]
    for codec in named:
        try:
            return codec, codecs.getincrementaldecoder(codec)().decode(raw, final=final)
        except UnicodeDecodeError:
            continue
    if named:
        raise _Bad(NOT_TEXT)
    return None


def _decode(raw: bytes) -> str:
    """Decode UTF-8 (BOM optional), UTF-16/32 with a BOM, else clean-looking cp1252."""
    if not raw.strip():
        raise _Bad("empty file")
    decoded = _decode_bom(raw)
    if decoded is not None:
        text = decoded[1]
    elif b"\x00" in raw:
        raise _Bad("binary file (not text)")
    else:
        text = _decode_without_bom(raw)
    if not text.strip():
        raise _Bad("empty file")
    return text


def _decode_without_bom(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        text = raw.decode("cp1252")
    except UnicodeDecodeError:
        raise _Bad(NOT_TEXT) from None
    if not _looks_like_text(text):
        raise _Bad(NOT_TEXT)
    return text


def _looks_like_text(text: str) -> bool:
    """Few control characters: random bytes decoded as cp1252 have ~12% of them."""
    return len(_BAD_CONTROL.findall(text)) <= max(1, len(text) // 200)


def _clean_text(text: str) -> str:
    """Normalize line endings, drop C0 control characters but tab/newline, strip."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\f", "\n").replace("\v", "\n")
    return _BAD_CONTROL.sub("", text).strip()


# --------------------------------------------------------------------------- titles

_WS = re.compile(r"\s+")
_ATX = re.compile(r"^ {0,3}#{1,6}(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MD_EMPHASIS = re.compile(r"(?<![\w*_~`])(\*{1,3}|_{1,3}|~~|`+)(?=\S)(.+?)(?<=\S)\1(?![\w*_~`])")
_MD_LINE_PREFIX = re.compile(r"^(?:>\s*)+|^(?:[-*+]|\d+[.)])\s+")


def _title_from_text(text: str) -> str:
    """First non-empty line, whitespace collapsed, shortened to TITLE_MAX_CHARS."""
    for line in text.split("\n"):
        if line.strip():
            return _shorten(line)
    return ""


def _shorten(line: str, limit: int = TITLE_MAX_CHARS) -> str:
    """Collapse whitespace; cut at a word boundary with '…' if longer than ``limit``."""
    line = _WS.sub(" ", line).strip()
    if len(line) <= limit:
        return line
    cut = line[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:-") + "…"


def _markdown_title(text: str) -> str:
    """The first ATX heading if it opens the document, else the first line, de-marked."""
    for line in _skip_front_matter(text.split("\n")):
        if not line.strip():
            continue
        heading = _ATX.match(line)
        plain = heading.group(1) or "" if heading else _MD_LINE_PREFIX.sub("", line.strip())
        title = _shorten(_strip_markdown(plain))
        if title:
            return title
    return ""


def _skip_front_matter(lines: list[str]) -> list[str]:
    """Drop a leading YAML front-matter block (``---`` ... ``---``) for title detection."""
    if lines and lines[0].strip() == "---":
        for i, line in enumerate(lines[1:], start=1):
            if line.strip() in ("---", "..."):
                return lines[i + 1 :]
    return lines


def _strip_markdown(s: str) -> str:
    s = _MD_LINK.sub(r"\1", s)
    for _ in range(3):  # nested emphasis such as ***x*** or **_x_**
        s = _MD_EMPHASIS.sub(r"\2", s)
    return s.strip()


# --------------------------------------------------------------------------- HTML

_TITLE_TAG = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)


def _article_from_html(stem: str, markup: str) -> Article:
    """Main text and metadata of an HTML page via trafilatura (which stays offline)."""
    doc = _extract_html(markup)
    body = _clean_text(str(doc.get("text") or ""))
    if not body:
        raise _Bad("no article text found in HTML")
    title = _shorten(_clean_text(str(doc.get("title") or "")))
    if not title:
        tag = _TITLE_TAG.search(markup)
        title = _shorten(_clean_text(html.unescape(tag.group(1)))) if tag else ""
    published: str | None
    try:
        published = normalize_published(doc.get("date"))
    except ValueError:
        published = None  # a guessed page date is not worth rejecting the page for
    return Article(
        id=stem,
        title=title or _title_from_text(body) or stem,
        text=body,
        source=_optional_str(doc.get("sitename")),
        url=_optional_str(doc.get("url")),
        published=published,
    )


def _extract_html(markup: str) -> dict[str, Any]:
    """trafilatura's extraction as a dict; empty if it finds nothing or fails."""
    import trafilatura  # slow to import: only when an HTML file is loaded
    from trafilatura.settings import set_date_params

    try:
        doc = trafilatura.bare_extraction(
            markup,
            include_comments=False,
            include_tables=False,
            with_metadata=True,
            as_dict=True,
            # No full-text date guessing: a "Copyright 2019" footer is not a publication date.
            date_extraction_params=set_date_params(extensive=False),
        )
    except Exception:  # malformed markup can trip the parser; treat it as "no text found"
        return {}
    return doc if isinstance(doc, dict) else {}


def _optional_str(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    value = _WS.sub(" ", _clean_text(value)).strip()
    return value or None


# --------------------------------------------------------------------------- dates


def normalize_published(value: object) -> str | None:
    """``None``/empty -> None; a date, datetime or date string -> ``YYYY-MM-DD``.

    Accepts ISO dates and datetimes (``2014-05-19``, ``2014-05-19T10:00:00Z``) and common
    written forms (``May 19, 2014``, ``Mon, 19 May 2014 10:00:00 +0000``); a datetime keeps
    the calendar day it was written with. Raises ValueError (with a user-facing message)
    for anything else, including strings without a four-digit year or without a day.
    """
    if value is None:
        return None
    if isinstance(value, datetime | date):
        return value.strftime("%Y-%m-%d")
    if not isinstance(value, str):
        raise ValueError(f"must be a string, got {_json_type(value)}")
    s = value.strip()
    if not s:
        return None
    try:
        return datetime.fromisoformat(s.replace("z", "Z")).strftime("%Y-%m-%d")
    except ValueError:
        pass
    return _parse_written_date(s)


def _parse_written_date(s: str) -> str:
    from dateutil import parser

    if not re.search(r"(?<!\d)\d{4}(?!\d)", s):
        raise ValueError(f"not a date: {s!r}")
    try:
        # Two different defaults reveal fields dateutil filled in instead of reading them.
        a = parser.parse(s, default=datetime(2000, 1, 1))
        b = parser.parse(s, default=datetime(2001, 2, 2))
    except (ValueError, OverflowError):
        raise ValueError(f"not a date: {s!r}") from None
    if a.date() != b.date():
        raise ValueError(f"not a full date (needs year, month and day): {s!r}")
    return a.strftime("%Y-%m-%d")


# --------------------------------------------------------------------------- JSON / JSONL


def _load_jsonl_file(path: Path, max_bytes: int) -> Iterator[LoadResult]:
    """Articles and per-line failures of a .jsonl file, read one line at a time."""
    try:
        _check_file(path)
        fh = open(path, "rb")  # noqa: SIM115 - closed below, also when the caller stops early
    except _Bad as exc:
        yield LoadFailure(str(path), str(exc))
        return
    except OSError as exc:
        yield LoadFailure(str(path), _os_error_reason(exc, "cannot read file"))
        return
    with fh:
        yield from _load_records(path, _jsonl_records(path, fh, max_bytes), jsonl=True)


def _load_records(
    path: Path, records: Iterable[tuple[int, object]], jsonl: bool
) -> Iterator[LoadResult]:
    """Articles and per-record failures of a .json or .jsonl file."""
    seen_ids: dict[str, int] = {}
    produced = False
    for n, record in records:
        produced = True
        if isinstance(record, LoadFailure):
            yield record
        else:
            prefix = f"line {n}" if jsonl else f"record {n}"
            yield _record_result(path, n, prefix, record, seen_ids, single=n == 0)
    if not produced:
        yield LoadFailure(str(path), "no records found")


def _record_result(
    path: Path,
    n: int,
    prefix: str,
    record: object,
    seen_ids: dict[str, int],
    single: bool,
) -> LoadResult:
    """One record as an Article, or a LoadFailure naming the record and the problem."""
    default_id = path.stem if single else f"{path.stem}-{n}"
    try:
        article = _article_from_record(record, default_id)
    except _Bad as exc:
        if single:
            return LoadFailure(str(path), str(exc))
        return LoadFailure(str(path), f"{prefix}: {exc}", n)
    if article.id in seen_ids:
        first = f"{prefix.split()[0]} {seen_ids[article.id]}"
        reason = f"{prefix}: duplicate id '{article.id}' (first used in {first})"
        return LoadFailure(str(path), reason, n)
    seen_ids[article.id] = n
    return article


def _jsonl_records(path: Path, fh: BinaryIO, max_bytes: int) -> Iterator[tuple[int, object]]:
    """(line number, parsed value or failure) for every non-blank line of an open .jsonl file.

    A problem with the whole file (binary, not text, only blank lines) comes out as one
    failure with line number 0; a read error part-way through, as a failure of the next line.
    """
    n = 0  # the last line read
    blank = True
    try:
        for n, line in _jsonl_lines(fh, max_bytes):
            if isinstance(line, _Bad):
                blank = False
                yield n, LoadFailure(str(path), f"line {n}: {line}", n)
                continue
            if not line.strip():  # a trailing "\r" is JSON whitespace too
                continue
            blank = False
            try:
                value = json.loads(line, strict=False)
            except (ValueError, RecursionError) as exc:
                yield n, LoadFailure(str(path), f"line {n}: invalid JSON: {_json_error(exc)}", n)
            else:
                yield n, value
    except (_Bad, OSError) as exc:
        reason = _os_error_reason(exc, "cannot read file") if isinstance(exc, OSError) else str(exc)
        if blank:
            yield 0, LoadFailure(str(path), reason)
        else:
            where = f"line {n + 1}"
            yield n + 1, LoadFailure(str(path), f"{where}: {reason}; stopped reading here", n + 1)
        return
    if blank:
        yield 0, LoadFailure(str(path), "empty file")


_SNIFF_BYTES = 65_536


def _jsonl_lines(fh: BinaryIO, max_bytes: int) -> Iterator[tuple[int, str | _Bad]]:
    """(line number, decoded line or why it is unusable) for every line of a .jsonl file.

    The encoding is found as for other files, from the start of the file (raises _Bad when
    that start is binary or not text at all): a BOM names it (UTF-8, UTF-16, UTF-32);
    without one each line is decoded on its own (UTF-8, else cp1252). A line over
    ``max_bytes`` is reported and skipped without being held in memory.
    """
    head = fh.read(_SNIFF_BYTES)
    complete = len(head) < _SNIFF_BYTES
    decoded = _decode_bom(head, final=complete)
    codec = decoded[0] if decoded else None
    if codec is None:
        _sniff_text(head, complete)
    elif codec in ("utf-16", "utf-32"):
        fh.seek(0)
        yield from _wide_lines(fh, codec, max_bytes)
        return
    fh.seek(len(codecs.BOM_UTF8) if codec else 0)
    lines = _limited_lines(fh.readline, max_bytes + 2, (b"\r\n", b"\n"), len)
    for n, (raw, size) in enumerate(lines, start=1):
        if size > max_bytes:
            yield n, _Bad(_record_too_large(size, max_bytes))
        elif b"\x00" in raw:
            yield n, _Bad("binary data (not text)")
        else:
            try:
                yield n, _decode_without_bom(raw)
            except _Bad as exc:
                yield n, exc


def _wide_lines(fh: BinaryIO, codec: str, max_bytes: int) -> Iterator[tuple[int, str | _Bad]]:
    """Lines of a UTF-16 or UTF-32 file (with its BOM), decoded incrementally.

    A line's size is counted in the file's encoding. A line with an undecodable sequence is
    reported and the next lines are still read (the decoder stays aligned on code units).
    """
    unit = 2 if codec == "utf-16" else 4
    sizing = f"{codec}-le"  # the same size in either byte order, and no BOM

    def size(s: str) -> int:
        return len(s.encode(sizing, "surrogatepass"))

    text = io.TextIOWrapper(fh, encoding=codec, errors=_MARK_UNDECODABLE, newline="\n")
    lines = _limited_lines(text.readline, max_bytes // unit + 2, ("\r\n", "\n"), size)
    try:
        for n, (line, line_size) in enumerate(lines, start=1):
            if line_size > max_bytes:
                yield n, _Bad(_record_too_large(line_size, max_bytes))
            elif _UNDECODABLE in line:
                yield n, _Bad(f"not valid {codec.upper()} text")
            else:
                yield n, line
    finally:
        text.detach()  # the caller closes the file


# Decoding UTF-16/32 line by line, an undecodable sequence becomes a lone surrogate, which
# valid UTF-16/32 never decodes to: its line is reported and the rest of the file still read.
_UNDECODABLE = "\udcff"
_MARK_UNDECODABLE = "vectorstore.loaders.mark-undecodable"


def _mark_undecodable(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return _UNDECODABLE, exc.end


codecs.register_error(_MARK_UNDECODABLE, _mark_undecodable)


def _limited_lines(
    readline: Callable[[int], AnyStr],
    limit: int,
    endings: tuple[AnyStr, AnyStr],
    measure: Callable[[AnyStr], int],
) -> Iterator[tuple[AnyStr, int]]:
    """Each line without its ending (``endings``: CRLF and LF), with the size of that.

    At most ``limit`` units (bytes or characters) of a line are held: the rest of a longer
    line is read through in pieces and only measured, and the line comes as an empty one
    with the size of all of it. ``limit`` leaves room for the CRLF, so a line cut there is
    always over the caller's limit.
    """
    lf = endings[1]
    while line := readline(limit):
        size = measure(line)
        tail = line
        if len(line) == limit and not line.endswith(lf):
            line = line[:0]
            while not tail.endswith(lf) and (piece := readline(_SNIFF_BYTES)):
                size += measure(piece)
                tail = tail[-1:] + piece
        ending = next((e for e in endings if tail.endswith(e)), tail[:0])
        yield line[: len(line) - len(ending)], size - measure(ending)


def _sniff_text(head: bytes, complete: bool) -> None:
    """Raise _Bad if the start of a file without a BOM is binary or not text at all, as
    ``_decode`` would for the whole file."""
    if b"\x00" in head:
        raise _Bad("binary file (not text)")
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=complete)
    except UnicodeDecodeError:
        try:
            text = head.decode("cp1252")
        except UnicodeDecodeError:
            raise _Bad(NOT_TEXT) from None
        if not _looks_like_text(text):
            raise _Bad(NOT_TEXT) from None


def _record_too_large(size: int, limit: int) -> str:
    return f"record too large: {_human_size(size)} (limit {_human_size(limit)})"


def _json_records(path: Path, text: str) -> Iterator[tuple[int, object]]:
    """(record number, value or failure) of a .json file; 0 marks a lone top-level object."""
    try:
        data = json.loads(text, strict=False)
    except (ValueError, RecursionError) as exc:
        line = exc.lineno if isinstance(exc, json.JSONDecodeError) else None
        yield 0, LoadFailure(str(path), f"invalid JSON: {_json_error(exc, whole_file=True)}", line)
        return
    if isinstance(data, dict) and "articles" in data:
        data = data["articles"]
        if not isinstance(data, list):
            reason = f"'articles' must be an array, got {_json_type(data)}"
            yield 0, LoadFailure(str(path), reason)
            return
    if isinstance(data, dict):
        yield 0, data
    elif isinstance(data, list):
        yield from enumerate(data, start=1)
    else:
        reason = f"expected a JSON object or an array of objects, got {_json_type(data)}"
        yield 0, LoadFailure(str(path), reason)


def _json_error(exc: Exception, whole_file: bool = False) -> str:
    if isinstance(exc, json.JSONDecodeError):
        where = f"line {exc.lineno}, column {exc.colno}" if whole_file else f"column {exc.colno}"
        return f"{exc.msg} at {where}"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc).split(":")[0]  # e.g. "Exceeds the limit (4300 digits) for integer ..."


def _json_type(value: object) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    if type(value) in names:
        return names[type(value)]
    return "number" if isinstance(value, int | float) else type(value).__name__


def _article_from_record(record: object, default_id: str) -> Article:
    """Validate one JSON record; raises _Bad with the field and problem."""
    if not isinstance(record, dict):
        raise _Bad(f"expected a JSON object, got {_json_type(record)}")
    if "text" not in record or record["text"] is None:
        raise _Bad("missing 'text'")
    raw_text = record["text"]
    if not isinstance(raw_text, str):
        raise _Bad(f"'text' must be a string, got {_json_type(raw_text)}")
    text = _clean_text(raw_text)
    if not text:
        raise _Bad("empty 'text'")
    try:
        published = normalize_published(record.get("published"))
    except ValueError as exc:
        raise _Bad(f"published: {exc}") from None
    title = _optional_field(record, "title")
    return Article(
        id=_record_id(record.get("id"), default_id),
        title=_shorten(title) if title else _title_from_text(text),
        text=text,
        source=_optional_field(record, "source"),
        url=_optional_field(record, "url"),
        published=published,
    )


def _record_id(value: object, default: str) -> str:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _Bad(f"'id' must be a string or an integer, got {_json_type(value)}")
    ident = _clean_text(str(value))
    if not ident:
        raise _Bad("empty 'id'")
    return ident


def _optional_field(record: dict[str, Any], name: str) -> str | None:
    value = record.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Bad(f"'{name}' must be a string, got {_json_type(value)}")
    return _optional_str(value)
