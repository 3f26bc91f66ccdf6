"""An Answer as the HTML of one chat reply: the answer with its markers, then its sources.

All article text and user text is escaped twice over: as HTML (so ``<script>`` shows as text)
and as Markdown (so ``[x](javascript:...)`` or ``**`` in an article stays literal), because the
chat renders Markdown with inline HTML.
"""

from __future__ import annotations

import html
import re

from qa.types import Answer, Citation

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


def _marker_links(escaped_answer: str, prefix: str) -> str:
    """Turns the escaped markers ``&#91;n&#93;`` into links to their citation."""

    def link(m: re.Match[str]) -> str:
        n = m.group(1)
        return f'<a class="qa-marker" href="#{prefix}-{n}">[{n}]</a>'

    return re.sub(r"&#91;(\d+)&#93;", link, escaped_answer)


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
    body = _marker_links(escape(answer.text), prefix)
    parts = [f'<div class="qa-answer"><p>{body}</p>']
    if answer.citations:
        parts.append('<div class="qa-sources"><p><b>Sources</b></p>')
        parts += [citation_html(c, prefix) for c in answer.citations]
        parts.append("</div>")
    parts.append("</div>")
    return "".join(parts)


def markers(text: str) -> list[int]:
    """The citation numbers used in ``text``, in order of appearance."""
    return [int(n) for n in _MARKER.findall(text)]
