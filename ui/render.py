"""An Answer as the HTML of one chat reply: the answer with its markers, then its sources.

All article text and user text is escaped twice over: as HTML (so ``<script>`` shows as text)
and as Markdown (so ``[x](javascript:...)`` or ``**`` in an article stays literal), because the
chat renders Markdown with inline HTML.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence, Set
from dataclasses import dataclass, replace

from qa.types import Answer, Citation, short_answer_lead
from vectorstore.ingest import IngestReport
from vectorstore.types import Article, ArticleInfo

# One pass over the raw text: escaping HTML first and Markdown second would re-escape the
# "#" of "&#x27;" and show apostrophes as "&#x27;".
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"} | {
    c: f"&#{ord(c)};" for c in "\\`*_{}[]()#+-.!|~:"
}
# Line breaks become <br>: a blank line would end the reply's HTML block, and an indented
# line after it would become a Markdown code block showing the entities raw.
_NEWLINE = re.compile(r"\r\n|\r|\n")
_MARKER = re.compile(r"\[(\d+)\]")


def escape(text: str) -> str:
    """``text`` as inert HTML+Markdown: shown exactly as written, never interpreted."""
    return _NEWLINE.sub("<br>", "".join(_ESCAPES.get(ch, ch) for ch in text))


def _marker_links(escaped_answer: str, prefix: str, known: Set[int] | None = None) -> str:
    """Turns the escaped markers ``&#91;n&#93;`` into links to their citation.

    With ``known`` (the numbers of the answer's citations), a marker pointing at none of them
    is dropped: a phantom marker is never shown as if it led somewhere.
    """

    def link(m: re.Match[str]) -> str:
        n = m.group(1)
        if known is not None and int(n) not in known:
            return ""
        return f'<a class="qa-marker" href="#{prefix}-{n}">[{n}]</a>'

    return re.sub(r"&#91;(\d+)&#93;", link, escaped_answer)


UNSUPPORTED_TITLE = "Not supported by the cited passages"
UNSUPPORTED_LABEL = "⚠ unsupported"


def _segments(answer: Answer) -> list[tuple[str, bool]]:
    """``answer.text`` in pieces, each with whether it is supported.

    Each unsupported sentence is one piece, from where it starts in the text to where the
    next sentence starts (so with its markers). A sentence not found in the text (it should
    always be) makes the pieces the sentences themselves, each followed by its markers.
    """
    if all(s.supported for s in answer.sentences):
        return [(answer.text, True)]
    starts: list[int] = []
    at = 0
    for s in answer.sentences:
        found = answer.text.find(s.text, at)
        if found < 0 or not s.text:
            return [
                (" ".join([s.text, *(f"[{n}]" for n in s.citations)]) + " ", s.supported)
                for s in answer.sentences
            ]
        starts.append(found)
        at = found + len(s.text)
    pieces = [(answer.text[: starts[0]], True)] if starts[0] else []
    for i, s in enumerate(answer.sentences):
        end = starts[i + 1] if i + 1 < len(starts) else len(answer.text)
        pieces.append((answer.text[starts[i] : end], s.supported))
    return pieces


def _answer_text_html(answer: Answer, prefix: str) -> str:
    """The answer's text: escaped, markers linked, unsupported sentences visibly marked
    (a label, not only a colour)."""
    known = {c.n for c in answer.citations}
    parts: list[str] = []
    for text, supported in _segments(answer):
        body = _marker_links(escape(text.rstrip()), prefix, known)
        space = escape(text[len(text.rstrip()) :])
        if supported:
            parts.append(body + space)
        else:
            parts.append(
                f'<span class="qa-unsupported" title="{UNSUPPORTED_TITLE}">{body} '
                f'<span class="qa-flag">{UNSUPPORTED_LABEL}</span></span>{space}'
            )
    return "".join(parts).rstrip()


def _answer_inner(answer: Answer, prefix: str) -> str:
    """The answer's note, if it has one (why these are the quotes, or that some sentences are
    unsupported), then its text."""
    note = (
        f'<p class="qa-answer-note"><b>Note:</b> {escape(answer.note)}</p>' if answer.note else ""
    )
    lead = short_answer_lead(answer.short_answer or "")
    if answer.short_answer and answer.text.startswith(lead) and len(answer.sentences) > 1:
        # the short answer stands out above the quotes it comes from
        marker = _marker_links(escape("[1]"), prefix, {c.n for c in answer.citations})
        rest = replace(answer, text=answer.text[len(lead) :], sentences=answer.sentences[1:])
        return (
            f'{note}<p class="qa-short"><strong>{escape(answer.short_answer)}</strong> {marker}</p>'
            f"<p>{_answer_text_html(rest, prefix)}</p>"
        )
    return f"{note}<p>{_answer_text_html(answer, prefix)}</p>"


def quote_in_context(c: Citation) -> str:
    """The citation's passage with the quoted span highlighted."""
    at = c.start - c.context_start
    before, quote, after = (
        c.context[:at],
        c.context[at : at + len(c.quote)],
        c.context[at + len(c.quote) :],
    )
    return f"{escape(before)}<mark>{escape(quote)}</mark>{escape(after)}"


def citation_html(c: Citation, prefix: str) -> str:
    meta = " · ".join(escape(x) for x in (c.article.source, c.article.published) if x)
    link = ""
    if c.article.url and c.article.url.startswith(("http://", "https://")):
        href = html.escape(c.article.url, quote=True)
        link = f' · <a href="{href}" target="_blank" rel="noopener noreferrer">link</a>'
    return (
        f'<div class="qa-citation" id="{prefix}-{c.n}">'
        f"<p><b>[{c.n}]</b> {escape(c.article.title)}"
        + (f" — {meta}" if meta else "")
        + link
        + f" <small>(score {c.score:.2f}, characters {c.start}–{c.end})</small></p>"
        f"<blockquote>{quote_in_context(c)}</blockquote></div>"
    )


def answer_html(answer: Answer, prefix: str = "cite") -> str:
    """One chat reply: answer first, then the numbered sources. No blank lines (one HTML block)."""
    parts = [f'<div class="qa-answer">{_answer_inner(answer, prefix)}']
    if answer.citations:
        parts.append('<div class="qa-sources"><p><b>Sources</b></p>')
        parts += [citation_html(c, prefix) for c in answer.citations]
        parts.append("</div>")
    parts.append("</div>")
    return "".join(parts)


def markers(text: str) -> list[int]:
    """The citation numbers used in ``text``, in order of appearance."""
    return [int(n) for n in _MARKER.findall(text)]


# -- the chat page: answer bubbles, the sources panel, the article view, upload reports ---------


def answer_body_html(answer: Answer, prefix: str) -> str:
    """One chat bubble: the final answer, its markers linking to its sources (in the panel),
    unsupported sentences marked, and its note if it has one."""
    return f'<div class="qa-answer">{_answer_inner(answer, prefix)}</div>'


# What a bubble adds for the reader (the "unsupported" labels, the note), not said by anyone.
_READER_AIDS = re.compile(r'<span class="qa-flag">[^<]*</span>|<p class="qa-answer-note">.*?</p>')


def without_reader_aids(content: str) -> str:
    """A chat bubble as the conversation that follow-up questions are resolved against:
    without the labels and the note added for the reader (the answer's own words stay)."""
    return _READER_AIDS.sub("", content)


PROVISIONAL_STATUS = "Writing… the answer is checked against its sources when it is complete."


def provisional_html(text: str) -> str:
    """One chat bubble while the answer is being written: the text so far, as plain text
    (markers too), visibly not final; ``answer_body_html`` replaces it once verified."""
    return (
        f'<div class="qa-answer qa-provisional"><p>{escape(text)}</p>'
        f'<p class="qa-status">{escape(PROVISIONAL_STATUS)}</p></div>'
    )


def deltas(text: str, words: int = 3) -> list[str]:
    """``text`` cut into pieces of a few words each, for streaming; ``"".join`` gives it back."""
    pieces = re.findall(r"\s*\S+(?:\s+\Z)?|\s+\Z", text)
    return ["".join(pieces[i : i + words]) for i in range(0, len(pieces), words)]


@dataclass(frozen=True)
class Turn:
    """One answered question as the sources panel shows it; ``prefix`` makes its ids unique."""

    question: str
    answer: Answer
    prefix: str


def _meta(info: ArticleInfo) -> str:
    """'source · date · link' with whatever is known; the link only for web URLs."""
    parts = [escape(x) for x in (info.source, info.published) if x]
    if info.url and info.url.startswith(("http://", "https://")):
        href = html.escape(info.url, quote=True)
        parts.append(
            f'<a class="qa-link" href="{href}" target="_blank" rel="noopener noreferrer">'
            "original</a>"
        )
    return " · ".join(parts)


def source_card_html(c: Citation, prefix: str) -> str:
    """A citation in the sources panel: title, source, date, link, score, quote in its passage."""
    meta = _meta(c.article)
    article_id = html.escape(c.article.id, quote=True)
    return (
        f'<article class="qa-citation" id="{prefix}-{c.n}">'
        f'<header><span class="qa-n">{c.n}</span>'
        f'<span class="qa-title">{escape(c.article.title)}</span></header>'
        f'<p class="qa-meta">{meta + " · " if meta else ""}'
        f'<span class="qa-score" title="relevance, 0 to 1">score {c.score:.2f}</span></p>'
        f"<blockquote>{quote_in_context(c)}</blockquote>"
        f'<button type="button" class="qa-open" data-article="{article_id}" '
        f'data-prefix="{prefix}">Open article</button>'
        "</article>"
    )


EMPTY_SOURCES = (
    '<div class="qa-empty">The sources of each answer appear here: the article, its date '
    "and the quoted passage, highlighted.</div>"
)


def sources_html(turns: Sequence[Turn]) -> str:
    """The sources panel: every answered question, the latest first and open."""
    if not turns:
        return f'<div class="qa-sources-panel">{EMPTY_SOURCES}</div>'
    parts = ['<div class="qa-sources-panel">']
    for i, turn in enumerate(reversed(turns)):
        cited = turn.answer.citations
        count = f"{len(cited)} source{'s' if len(cited) != 1 else ''}" if cited else "no sources"
        parts.append(
            f'<details class="qa-turn" id="{turn.prefix}"{" open" if i == 0 else ""}>'
            f'<summary><span class="qa-question">{escape(turn.question)}</span>'
            f'<span class="qa-count">{count}</span></summary>'
        )
        if cited:
            parts += [source_card_html(c, turn.prefix) for c in cited]
        else:
            parts.append(f'<p class="qa-none">{escape(turn.answer.text)}</p>')
        parts.append("</details>")
    parts.append("</div>")
    return "".join(parts)


def article_html(article: Article, citations: Sequence[Citation] = ()) -> str:
    """The whole article with every span the citations quote from it highlighted.

    A citation whose quote is no longer at its offsets (the article changed since the answer)
    is listed as such instead of highlighting the wrong text.
    """
    mine = [c for c in citations if c.article.id == article.id]
    found = [c for c in mine if article.text[c.start : c.end] == c.quote and c.end > c.start]
    stale = [c for c in mine if c not in found]
    meta = _meta(article.info)
    parts = [
        '<div class="qa-article">',
        f"<h3>{escape(article.title)}</h3>",
        f'<p class="qa-meta">{meta + " · " if meta else ""}'
        f"{len(article.text):,} characters · id {escape(article.id)}</p>",
    ]
    if stale:
        numbers = ", ".join(f"[{c.n}]" for c in stale)
        parts.append(
            f'<p class="qa-stale">The article has changed since the answer: {numbers} '
            "no longer found at the cited place.</p>"
        )
    parts.append(f'<div class="qa-text">{_highlighted(article.text, found)}</div></div>')
    return "".join(parts)


def _highlighted(text: str, citations: Sequence[Citation]) -> str:
    """``text`` escaped, each cited span in a <mark> followed by its marker(s)."""
    spans: list[tuple[int, int, list[int]]] = []  # merged, non-overlapping, in order
    for c in sorted(citations, key=lambda c: (c.start, c.end)):
        if spans and c.start < spans[-1][1]:
            start, end, ns = spans[-1]
            spans[-1] = (start, max(end, c.end), [*ns, c.n])
        else:
            spans.append((c.start, c.end, [c.n]))
    out: list[str] = []
    at = 0
    for start, end, ns in spans:
        label = "".join(f"[{n}]" for n in sorted(ns))
        out.append(escape(text[at:start]))
        out.append(
            f'<mark class="qa-cited" data-n="{label}">{escape(text[start:end])}</mark>'
            f'<sup class="qa-n-ref">{label}</sup>'
        )
        at = end
    out.append(escape(text[at:]))
    return "".join(out)


def ingest_report_html(report: IngestReport, seconds: float) -> str:
    """What ``qa ingest`` prints, as HTML: counts, then the articles and the failures."""
    counts = (
        f"{len(report.new)} new, {len(report.updated)} updated, "
        f"{len(report.unchanged)} unchanged, {len(report.failed)} failed "
        f"({report.chunks_written} passages written in {seconds:.1f} s)"
    )
    status = "qa-ok" if report.ok else "qa-partial"
    parts = [f'<div class="qa-report {status}"><p><b>{escape(counts)}</b></p><ul>']
    for label, ids in (
        ("new", report.new),
        ("updated", report.updated),
        ("unchanged", report.unchanged),
    ):
        parts += [f'<li class="qa-{label}">{label}: {escape(aid)}</li>' for aid in ids]
    for failure in report.failed:
        where = failure.path + (f":{failure.line}" if failure.line else "")
        reason = escape(failure.reason)
        parts.append(f'<li class="qa-failed">failed: {escape(where)}: {reason}</li>')
    parts.append("</ul></div>")
    return "".join(parts)
