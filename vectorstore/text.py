"""Word-level helpers shared by the answerer: tokens, stop words, a light stemmer."""

from __future__ import annotations

import re
from functools import lru_cache

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)

STOP_WORDS = frozenset(
    """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers herself him himself his how i if in into is it its itself
    just me more most my myself no nor not now of off on once only or other our ours ourselves out
    over own same she should so some such than that the their theirs them themselves then there
    these they this those through to too under until up very was we were what when where which
    while who whom why will with would you your yours yourself yourselves also said says say
    according mr mrs ms dr s t done many much may might must shall one two
    """.split()  # noqa: SIM905 - a word list reads best as text
)


def words(text: str) -> list[str]:
    """Lower-cased word tokens of ``text``."""
    return [w.replace("’", "'") for w in _WORD.findall(text.lower())]


# Words repeat (a language has far fewer words than a library has tokens): caching the stems
# cuts the time spent tokenizing candidate passages at every question by about two thirds.
@lru_cache(maxsize=1 << 18)
def stem(word: str) -> str:
    """A deliberately light suffix stripper: 'ordered' -> 'order', 'forces' -> 'forc'."""
    if word.endswith("'s"):
        word = word[:-2]
    for suffix in ("ingly", "edly", "ing", "ies", "ied", "es", "ed", "ly", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix in ("ies", "ied"):
                return word[: -len(suffix)] + "y"
            return word[: -len(suffix)]
    return word


def content_terms(text: str) -> list[str]:
    """Stemmed words of ``text`` that carry meaning (no stop words), in order."""
    return [stem(w) for w in words(text) if w not in STOP_WORDS]
