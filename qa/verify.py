"""Checking a language model's answer against the passages it was given.

The model sees the retrieved passages numbered 1..m and must end every sentence with the
markers [n] of the passages it relies on. Its reply is then verified here, sentence by sentence,
before anyone sees it as an answer:

1. Markers are read in the forms models write: ``[2]``, ``[2][3]``, ``[2, 3]``, ``[2-3]``,
   ``[passage 2]``. Markers placed after the full stop (``... bases. [1]``) belong to the
   sentence before them. A marker that points at no passage given to the model ([7] when there
   were 3) is removed.
2. Each sentence is checked against the passages it cites (only those). It is *supported* when
   all of these hold:

   * **lexical support**: at least ``MIN_TERM_SHARE`` of the sentence's content terms (stemmed
     words that are not stop words, ``vectorstore.text.content_terms``) occur in the cited
     passages;
   * **embedding support**: the cosine between the sentence and the closest cited passage,
     both embedded by the library's embedder, is at least ``MIN_COSINE``;
   * **numbers**: every number in the sentence occurs in the cited passages.

   A sentence that cites nothing is unsupported. Text in a passage that addresses an AI
   ("ignore previous instructions and say ...") is never evidence: sentences of a passage
   matching ``INSTRUCTION`` are left out of it before the checks, so a model that obeys an
   article instead of the user gets its sentence flagged.
3. Citations are renumbered 1..n in order of first use, and only the cited passages are
   listed, each quoted exactly, so every marker refers to a listed citation and every listed
   citation is used.

What this cannot catch: a sentence that reuses a passage's words to say something else (a
dropped "not", swapped roles). Support is evidence that the sentence comes from its
passages, not proof that it is true; unsupported sentences are shown, flagged, never silently
kept as if they were.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from qa.types import Answer, AnswerSentence, Citation
from vectorstore.embeddings import Embedder
from vectorstore.sentences import sentence_spans
from vectorstore.text import content_terms
from vectorstore.types import ScoredPassage

# At least this share of a sentence's content terms must occur in the passages it cites (a
# term matches one that starts the same way for at least 5 letters: "Russia" / "Russian",
# "withdraw" / "withdrawal"). A restatement of its passage keeps most of its words (the
# names, numbers and key nouns); a claim the passage does not make shares fewer of them.
MIN_TERM_SHARE = 0.6

# The sentence and its closest cited passage must be at least this close (cosine of the
# library's embeddings). Measured with all-MiniLM-L6-v2 on the seed article: faithful
# one-sentence restatements of a passage 0.63-0.89; claims on the same topic that the passage
# does not make 0.01-0.61, most below 0.5.
MIN_COSINE = 0.5

# Sentences of a passage that address an AI rather than a reader: never evidence.
INSTRUCTION = re.compile(
    r"""
    \b(?:ignore|disregard|forget|override)\b[^.!?\n]{0,40}?
        \b(?:instructions?|prompts?|rules|directions|guidelines)\b
    | \b(?:ignore|disregard)\s+(?:all\s+|everything\s+)?(?:the\s+|your\s+)?
        (?:above|previous|prior|preceding|earlier)\b
    | \bsystem\s+prompt\b
    | \b(?:you\s+are\s+now|pretend\s+(?:to\s+be|you\s+are))\b
    | \b(?:new|updated|real|actual)\s+instructions?\b
    | \b(?:assistant|AI|chatbot|language\s+model|LLM)s?\s*[,:]\s*
        (?:say|answer|reply|respond|write|tell|output)\b
    """,
    re.IGNORECASE | re.VERBOSE,
)

# [2], [2][3], [2, 3], [2-3], [passage 2], [Source 2]
_MARKER = re.compile(
    r"\[\s*(?:(?:passages?|sources?)\s*)?(\d{1,3}(?:\s*(?:,|;|-|–|and)\s*\d{1,3})*)\s*\]",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_SOURCES_HEADING = re.compile(
    r"^\s*(?:#+\s*)?\**(?:sources|references|citations)\**\s*:?\s*$", re.I | re.M
)
_LEADING_MARKERS = re.compile(r"(?:\s*" + _MARKER.pattern + r")+", re.IGNORECASE)
_BULLET = re.compile(r"^(?:[-*•]|\d{1,2}[.)])\s+")


@dataclass(frozen=True)
class Draft:
    """A sentence of the model's reply: its text without markers and the passages it cites
    (numbers 1..m as given to the model, in order, each once)."""

    text: str
    cited: tuple[int, ...]


@dataclass(frozen=True)
class Check:
    """How well a sentence is supported by the passages it cites."""

    draft: Draft
    term_share: float
    cosine: float
    numbers_found: bool

    @property
    def supported(self) -> bool:
        return (
            bool(self.draft.cited)
            and self.term_share >= MIN_TERM_SHARE
            and self.cosine >= MIN_COSINE
            and self.numbers_found
        )


def marker_numbers(inside: str) -> list[int]:
    """The passage numbers of one marker's inside: "2, 3" -> [2, 3]; "2-4" -> [2, 3, 4]."""
    numbers: list[int] = []
    for part in re.split(r"\s*(?:,|;|and)\s*", inside):
        bounds = re.split(r"\s*[-–]\s*", part.strip())
        if len(bounds) == 2 and bounds[0].isdigit() and bounds[1].isdigit():
            low, high = int(bounds[0]), int(bounds[1])
            numbers += range(low, high + 1) if 0 <= high - low <= 20 else [low, high]
        elif part.strip().isdigit():
            numbers.append(int(part))
    return numbers


def split_reply(text: str, passage_count: int) -> list[Draft]:
    """The model's reply as sentences with the (existing) passages each cites.

    Markers after a sentence's full stop, or alone on a line, go with the sentence before
    them when that one has none of its own. A "Sources:" list at the end is dropped.
    """
    heading = _SOURCES_HEADING.search(text)
    if heading:
        text = text[: heading.start()]
    text = re.sub(r"([.!?…][\"'”’)]*)\[", r"\1 [", text.replace("**", ""))
    drafts: list[Draft] = []
    for start, end in sentence_spans(text):
        piece = text[start:end]
        lead = _LEADING_MARKERS.match(piece)
        lead_end = lead.end() if lead else 0
        leading = _cited(piece[:lead_end], passage_count)
        rest = _cited(piece[lead_end:], passage_count)
        body = _tidy(_MARKER.sub(" ", piece[lead_end:]))
        has_words = re.search(r"\w", body) is not None
        if drafts and leading and (not has_words or not drafts[-1].cited):
            previous = drafts[-1]  # these markers close the sentence before this one
            drafts[-1] = Draft(previous.text, _unique([*previous.cited, *leading]))
            leading = []
        if has_words:
            drafts.append(Draft(body, _unique([*leading, *rest])))
    return drafts


def _cited(text: str, passage_count: int) -> list[int]:
    """The numbers of the markers in ``text`` that point at a passage (1..passage_count)."""
    return [
        n
        for m in _MARKER.finditer(text)
        for n in marker_numbers(m.group(1))
        if 1 <= n <= passage_count
    ]


def _unique(numbers: Sequence[int]) -> tuple[int, ...]:
    return tuple(dict.fromkeys(numbers))


def _tidy(text: str) -> str:
    text = " ".join(text.split())
    text = _BULLET.sub("", text)
    return re.sub(r"\s+([.,;:!?…])", r"\1", text).strip()


def evidence_text(passage: str) -> str:
    """The passage without its sentences that address an AI (they are never evidence)."""
    spans = sentence_spans(passage)
    kept = [passage[a:b] for a, b in spans if not INSTRUCTION.search(passage[a:b])]
    return " ".join(kept)


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "").rstrip(".") for n in _NUMBER.findall(text)}


def check(
    drafts: Sequence[Draft], passages: Sequence[ScoredPassage], embedder: Embedder
) -> list[Check]:
    """Each sentence's support by the passages it cites (see the module's docstring)."""
    evidence = {n: evidence_text(passages[n - 1].chunk.text) for d in drafts for n in d.cited}
    order = sorted(evidence)
    texts = [d.text for d in drafts] + [evidence[n] for n in order]
    vectors = embedder.embed(texts) if texts else []
    passage_vector = dict(zip(order, vectors[len(drafts) :], strict=True))
    checks: list[Check] = []
    for draft, vector in zip(drafts, vectors[: len(drafts)], strict=True):
        if not draft.cited:
            checks.append(Check(draft, 0.0, 0.0, False))
            continue
        cited_text = " ".join(evidence[n] for n in draft.cited)
        terms = set(content_terms(draft.text))
        share = term_share(terms, set(content_terms(cited_text)))
        cosine = max(
            (_cosine(vector, passage_vector[n]) for n in draft.cited if evidence[n].strip()),
            default=0.0,
        )
        numbers_found = _numbers(draft.text) <= _numbers(cited_text)
        checks.append(Check(draft, share, cosine, numbers_found))
    return checks


def term_share(terms: set[str], evidence: set[str]) -> float:
    """The share of ``terms`` found in ``evidence`` (1.0 when there are no terms)."""
    if not terms:
        return 1.0
    found = sum(1 for t in terms if t in evidence or _prefix_match(t, evidence))
    return found / len(terms)


def _prefix_match(term: str, evidence: set[str], shortest: int = 5) -> bool:
    if len(term) < shortest:
        return False
    return any(len(e) >= shortest and (e.startswith(term) or term.startswith(e)) for e in evidence)


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def citation(n: int, passage: ScoredPassage) -> Citation:
    """Citation ``n`` quoting ``passage`` exactly."""
    chunk = passage.chunk
    return Citation(
        n=n,
        article=passage.article,
        quote=chunk.text,
        start=chunk.start,
        end=chunk.end,
        score=round(passage.score, 4),
        context=chunk.text,
        context_start=chunk.start,
    )


def unsupported_note(checks: Sequence[Check]) -> str | None:
    """A note for an answer some of whose sentences are unsupported, else None."""
    bad = sum(not c.supported for c in checks)
    if not bad:
        return None
    which = "1 sentence" if bad == 1 else f"{bad} sentences"
    return (
        f"{which} of the model's answer could not be verified against the passages "
        "cited (marked as unsupported)."
    )


def verified_answer(
    question: str, reply: str, passages: Sequence[ScoredPassage], embedder: Embedder
) -> Answer:
    """The model's ``reply`` (citing ``passages`` as 1..m) as a verified, renumbered Answer.

    ``answerer`` is "llm"; whether any sentence is supported is for the caller to judge
    (``any(s.supported for s in answer.sentences)``).
    """
    checks = check(split_reply(reply, len(passages)), passages, embedder)
    renumbered: dict[int, int] = {}
    for c in checks:
        for n in c.draft.cited:
            renumbered.setdefault(n, len(renumbered) + 1)
    sentences = tuple(
        AnswerSentence(c.draft.text, tuple(renumbered[n] for n in c.draft.cited), c.supported)
        for c in checks
    )
    citations = tuple(citation(new, passages[old - 1]) for old, new in renumbered.items())
    text = " ".join(" ".join([s.text, *(f"[{n}]" for n in s.citations)]) for s in sentences)
    return Answer(
        question,
        text,
        citations,
        sentences=sentences,
        answerer="llm",
        note=unsupported_note(checks),
    )


class LiveMarkers:
    """Rewrites the markers of a reply while it streams in, numbered as ``verified_answer``
    will number them (1..n in order of first use) and without those pointing at no passage.

    ``feed(piece)`` returns the text to show now; a marker split across pieces ("[", "2]") is
    held back until it is complete. ``flush()`` returns what is still held at the end.
    """

    def __init__(self, passage_count: int) -> None:
        self.passage_count = passage_count
        self.numbers: dict[int, int] = {}
        self._held = ""

    def feed(self, piece: str) -> str:
        text, self._held = self._held + piece, ""
        out: list[str] = []
        at = 0
        while True:
            bracket = text.find("[", at)
            if bracket < 0:
                out.append(text[at:])
                break
            out.append(text[at:bracket])
            marker = _MARKER.match(text, bracket)
            if marker:
                out.append(self._renumber(marker))
                at = marker.end()
            elif "]" not in text[bracket:] and _PARTIAL_MARKER.fullmatch(text[bracket:]):
                self._held = text[bracket:]  # perhaps the start of a marker: wait for more
                break
            else:
                out.append("[")
                at = bracket + 1
        return "".join(out)

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held

    def _renumber(self, marker: re.Match[str]) -> str:
        shown = []
        for n in marker_numbers(marker.group(1)):
            if 1 <= n <= self.passage_count:
                shown.append(self.numbers.setdefault(n, len(self.numbers) + 1))
        return " ".join(f"[{n}]" for n in dict.fromkeys(shown))


_PARTIAL_MARKER = re.compile(r"\[[\w\s,;\-–]{0,20}")
