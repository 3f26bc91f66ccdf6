"""An Answer as JSON (``qa ask --json``, the API) and as plain text (``qa ask``)."""

from __future__ import annotations

import textwrap
from typing import Any

from qa.types import Answer, Citation
from vectorstore.types import ArticleSummary


def citation_dict(c: Citation) -> dict[str, Any]:
    return {
        "n": c.n,
        "article_id": c.article.id,
        "title": c.article.title,
        "source": c.article.source,
        "url": c.article.url,
        "published": c.article.published,
        "quote": c.quote,
        "start": c.start,
        "end": c.end,
        "score": c.score,
    }


def answer_dict(answer: Answer) -> dict[str, Any]:
    return {
        "question": answer.question,
        "answer": answer.text,
        "abstained": answer.abstained,
        "citations": [citation_dict(c) for c in answer.citations],
        "short_answer": answer.short_answer,
        "answerer": answer.answerer,
        "note": answer.note,
        "sentences": [
            {"text": s.text, "citations": list(s.citations), "supported": s.supported}
            for s in answer.sentences
        ],
    }


def summary_dict(row: ArticleSummary) -> dict[str, Any]:
    """One article of ``qa list --json`` and ``GET /api/articles``."""
    return {
        "id": row.info.id,
        "title": row.info.title,
        "source": row.info.source,
        "url": row.info.url,
        "published": row.info.published,
        "chunks": row.chunks,
        "chars": row.chars,
    }


def byline(c: Citation) -> str:
    """'Title — source, 2014-05-19' with whatever is known."""
    extra = ", ".join(x for x in (c.article.source, c.article.published) if x)
    return f"{c.article.title} — {extra}" if extra else c.article.title


def answer_text(answer: Answer, width: int = 100) -> str:
    """A readable rendering for a terminal."""
    lines = [textwrap.fill(f"Note: {answer.note}", width), ""] if answer.note else []
    # a short answer is its own paragraph, before the quotes
    lines.append("\n\n".join(textwrap.fill(part, width) for part in answer.text.split("\n\n")))
    unsupported = [s for s in answer.sentences if not s.supported]
    if unsupported:
        lines += ["", "Not supported by the passages it cites:"]
        lines += [
            textwrap.indent(textwrap.fill(f"“{s.text}”", width - 4), "    ") for s in unsupported
        ]
    if answer.citations:
        lines += ["", "Sources:"]
    for c in answer.citations:
        lines.append(f"[{c.n}] {byline(c)}")
        where = f"article {c.article.id}, characters {c.start}-{c.end}, score {c.score:.2f}"
        lines.append(f"    {where}" + (f"\n    {c.article.url}" if c.article.url else ""))
        lines.append(textwrap.indent(textwrap.fill(f"“{c.quote}”", width - 4), "    "))
    return "\n".join(lines)
