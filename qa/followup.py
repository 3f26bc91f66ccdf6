"""Follow-up questions: what to search for when a question leans on the conversation.

"What did NATO say about it?" after "Did Russia pull its troops back from the Ukrainian
border?" is about the pullback. The answer keeps the user's words as its question; only the
retrieval query is resolved against the previous turns:

- with a language model (``llm_base_url`` set): the model rewrites the follow-up as one
  standalone question (``qa.llm.LLMAnswerer.condense``, one call);
- offline (and whenever that call fails): ``rewrite_query`` below.

Offline, a question needs the conversation when it is short, or refers back:

- it starts like a continuation ("and ...", "what about ...", "how about ...", "also ...");
- it has at most ``MAX_SHORT_TERMS`` content terms ("Why?", "Which regions?"); or
- it has a pronoun or demonstrative (it, they, this, that, he, ... ``ANAPHORS``) and at most
  ``MAX_ANAPHOR_TERMS`` content terms.

Its context is the previous user question, and the ones before it while each of them was a
follow-up too (at most ``MAX_CONTEXT_QUESTIONS``). A few of the context's words
(``MAX_CARRIED_TERMS``) are appended to the query. Which ones matters: the retriever rewards
passages that repeat the query's words, so appending every word of the previous question
drowns the follow-up's own subject ("NATO"). So the words carried are those of the passage
that is about the follow-up's own subject *and* closest to the context: the passages found
for the bare follow-up that contain its content terms are embedded, the one nearest to the
context questions is chosen, and the context words it contains are carried ("What did NATO
say about it?" + "troops"). When no such passage exists (no library at hand, or the
follow-up has no content terms of its own), the context's names (capitalized words) and then
its other content words are carried.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from vectorstore.embeddings import Embedder
from vectorstore.text import STOP_WORDS, content_terms, stem
from vectorstore.types import ScoredPassage

Message = Mapping[str, Any]
SearchFn = Callable[[str], list[ScoredPassage]]
Resolver = Callable[[str, Sequence[Message], SearchFn], str]

ANAPHORS = frozenset(
    """
    it its itself they them their theirs themselves this that these those he him his she her
    hers there
    """.split()  # noqa: SIM905 - a word list reads best as text
)
CONTINUATIONS = re.compile(
    r"^(?:and|but|also|so|then|what about|how about|what else|anything else)\b", re.IGNORECASE
)
MAX_SHORT_TERMS = 1
MAX_ANAPHOR_TERMS = 3
MAX_CONTEXT_QUESTIONS = 3
MAX_CARRIED_TERMS = 3
# Words that say nothing about the topic of a conversation.
GENERIC = frozenset(
    """
    tell know happen happened happening think article articles news report reported reports
    mention mentioned mentions explain details detail more else anything something thing
    things please
    """.split()  # noqa: SIM905 - a word list reads best as text
)
_GENERIC_STEMS = frozenset(stem(w) for w in GENERIC)

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?")
_TAG = re.compile(r"<[^>]*>")


@runtime_checkable
class Condenser(Protocol):
    """An answerer that can rewrite a follow-up as a standalone question (an LLM)."""

    def condense(self, question: str, history: Sequence[Message]) -> str | None:
        """The standalone question, or None when it cannot be had."""
        ...


def plain_text(content: Any) -> str:
    """A message's content as plain text: HTML tags dropped, entities decoded.

    Accepts a string or Gradio's list of parts (``[{"type": "text", "text": ...}]``).
    """
    if isinstance(content, list):
        content = " ".join(
            str(part.get("text", "")) if isinstance(part, Mapping) else str(part)
            for part in content
        )
    if not isinstance(content, str):
        return ""
    return " ".join(html.unescape(_TAG.sub(" ", content)).split())


def turns(history: Sequence[Message] | None, question: str) -> list[tuple[str, str]]:
    """``(role, text)`` of the conversation before ``question``, oldest first.

    Only "user" and "assistant" messages with text are kept. A last user message equal to
    ``question`` is the question itself (a chat appends it before answering) and is dropped.
    """
    out: list[tuple[str, str]] = []
    for message in history or ():
        if not isinstance(message, Mapping):
            continue
        role = message.get("role")
        text = plain_text(message.get("content"))
        if role in ("user", "assistant") and text:
            out.append((str(role), text))
    last_user = next((i for i in range(len(out) - 1, -1, -1) if out[i][0] == "user"), None)
    if last_user is not None and _same(out[last_user][1], question):
        del out[last_user:]
    return out


def _same(a: str, b: str) -> bool:
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def previous_questions(history: Sequence[Message] | None, question: str) -> list[str]:
    """The user's earlier questions, oldest first."""
    return [text for role, text in turns(history, question) if role == "user"]


def _topic_terms(text: str) -> list[str]:
    return [t for t in content_terms(text) if t not in _GENERIC_STEMS]


def needs_context(question: str) -> bool:
    """True when ``question`` probably leans on the conversation (see the module docstring)."""
    lowered = [w.lower() for w in _WORD.findall(question)]
    terms = _topic_terms(question)
    if CONTINUATIONS.match(question.strip()) or len(terms) <= MAX_SHORT_TERMS:
        return True
    return len(terms) <= MAX_ANAPHOR_TERMS and any(w in ANAPHORS for w in lowered)


def context_questions(earlier: Sequence[str]) -> list[str]:
    """The questions that give the latest one its context: the last one, and the ones before
    it while each was itself a follow-up; newest first."""
    chosen: list[str] = []
    for question in reversed(earlier):
        chosen.append(question)
        if len(chosen) == MAX_CONTEXT_QUESTIONS or not needs_context(question):
            break
    return chosen


def context_words(context: Sequence[str], question: str) -> list[str]:
    """The context's content words as written (one per stem, names keep their capitals),
    without those the question already has; in order, newest question first."""
    have = set(content_terms(question))
    seen: set[str] = set()
    words: list[str] = []
    for text in context:
        for raw in _WORD.findall(text):
            word = re.sub(r"['’]s$", "", raw)
            lower = word.lower()
            if lower in STOP_WORDS or lower in GENERIC or lower in ANAPHORS:
                continue
            key = stem(lower)
            if key in have or key in seen:
                continue
            seen.add(key)
            words.append(word)
    return words


def rewrite_query(
    question: str,
    history: Sequence[Message] | None,
    search: SearchFn | None = None,
    embedder: Embedder | None = None,
) -> str:
    """The retrieval query for ``question`` given the conversation so far (offline).

    ``question`` itself unless it needs context; then with a few context words appended.
    """
    earlier = previous_questions(history, question)
    if not earlier or not needs_context(question):
        return question
    context = context_questions(earlier)
    carried = carried_words(question, context, search, embedder)
    return f"{question} {' '.join(carried)}" if carried else question


def carried_words(
    question: str,
    context: Sequence[str],
    search: SearchFn | None,
    embedder: Embedder | None,
) -> list[str]:
    """The context words to append to ``question``'s query (see the module docstring)."""
    words = context_words(context, question)
    if not words:
        return []
    focus = set(_topic_terms(question))
    if focus and search is not None and embedder is not None:
        about = [p for p in search(question) if focus & set(content_terms(p.chunk.text))]
        if about:
            vectors = embedder.embed([" ".join(context), *(p.chunk.text for p in about)])
            nearest = max(range(len(about)), key=lambda i: _cosine(vectors[0], vectors[i + 1]))
            terms = set(content_terms(about[nearest].chunk.text))
            chosen = [w for w in words if stem(w.lower()) in terms]
            if chosen:
                return chosen[:MAX_CARRIED_TERMS]
    names = [w for w in words if w[:1].isupper()]
    others = [w for w in words if not w[:1].isupper()]
    return (names + others)[:MAX_CARRIED_TERMS]


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def make_resolver(answerer: object, embedder: Embedder | None) -> Resolver:
    """The chain's follow-up resolver: the answerer's LLM when it has one, else offline."""

    def resolve(question: str, history: Sequence[Message], search: SearchFn) -> str:
        if isinstance(answerer, Condenser):
            standalone = answerer.condense(question, history)
            if standalone:
                return standalone
        return rewrite_query(question, history, search, embedder)

    return resolve
