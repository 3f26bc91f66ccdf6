"""Fast, offset-exact sentence splitting for news English.

``sentence_spans(text)`` returns ``(start, end)`` pairs such that ``text[start:end]`` is one
sentence with no surrounding whitespace. The spans are in order, never overlap, never empty, and
together cover every non-whitespace character of ``text``.

How it works, in two regex passes and a little Python per candidate:

1. Every line break (anything ``str.splitlines`` breaks on) ends a sentence: news text puts one
   paragraph on a line, and a blank line is a paragraph break.
2. Inside a line, a candidate boundary is a run of ``.``, ``?``, ``!`` or ``…`` (spaced ellipses
   ``. . .`` included), optionally followed by closing quotes or brackets, then whitespace, then
   more text. A candidate is a boundary unless the next word starts in lower case, or the word
   before a single ``.`` is an abbreviation:

   * titles (``Mr.``, ``Dr.``, ``Gen.``, ...) never end a sentence;
   * ``No.``, ``p.``, ``Art.``, ... never end one before a number (``No. 10``);
   * ambiguous ones (``U.S.``, ``p.m.``, ``St.``, ``Jan.``, ``Inc.``, initials such as ``J.``)
     end a sentence only before a word that typically starts one (``The``, ``He``, ``But``, ...)
     or an opening quote (not a bracket: ``5 p.m. (5 a.m. ET)``).

Decimals (``3.5``) and dotted names (``cnn.com``) have no whitespace after the dot and are
never candidates. Sentences are never split for length here; the chunker does that.

No dependency beyond ``re``: about 20 M chars/s on one core (see
``benchmarks/bench_sentences.py``), against about 0.1 M chars/s for pysbd. Being pure code also
keeps the boundaries, and so the chunk ids built on them, stable across library upgrades.
"""

from __future__ import annotations

import re

__all__ = ["sentence_spans", "sentences_within"]

# Characters str.splitlines() breaks on: each ends a sentence.
_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"

# One line with surrounding whitespace already stripped (starts and ends on non-space).
_LINE = re.compile(rf"\S(?:[^{_LINE_BREAKS}]*\S)?")

_TERMINATORS = ".?!\u2026\u203c\u2047\u2048\u2049"  # . ? ! … ‼ ⁇ ⁈ ⁉
_CLOSERS = "\"'\u201d\u2019\u00bb\u203a)\\]}"  # " ' ” ’ » › ) ] }
_OPENING_QUOTES = "\"'\u201c\u2018\u00ab\u2039"  # " ' “ ‘ « ‹
_OPENERS = _OPENING_QUOTES + "([{"

# A candidate boundary: terminators (a spaced ". . ." counts as one run), closers, whitespace,
# then more text on the same line (the caller bounds the search to one line).
_CANDIDATE = re.compile(
    rf"(?P<term>[{_TERMINATORS}]+(?:[^\S{_LINE_BREAKS}][{_TERMINATORS}]+)*)"
    rf"(?P<close>[{re.escape(_CLOSERS)}]*)"
    rf"\s+(?=\S)"
)

_WORD = re.compile(r"\w+")
_ACRONYM = re.compile(r"(?:[^\W\d_]\.)*[^\W\d_]")  # "U.S", "p.m", "D.C", "J"

# Longest word looked at before a ".", in characters; longer words are never abbreviations.
_TOKEN_WINDOW = 16


def _words(words: str) -> frozenset[str]:
    """The whitespace-separated words of ``words`` as a set."""
    return frozenset(words.split())


# Abbreviations after which a sentence never ends ("Mr. Putin", "Lt. Col. Smith").
_TITLES = _words(
    """
    Mr Mrs Ms Messrs Mmes Mme Mlle Dr Drs Prof Profs Rev Revd Fr Hon Rt Sir
    Gen Gens Lt Col Maj Capt Cpt Cmdr Cdr Sgt Cpl Pvt Pte Adm Brig Lieut Spc
    Gov Govs Sen Sens Rep Reps Pres Supt Det Insp Atty Amb Sec Treas Asst Assoc
    vs v cf viz approx ca
    """
)

# Abbreviations after which a sentence never ends before a number ("No. 10", "p. 5").
_BEFORE_NUMBER = _words("No Nos no nos Art Arts art Vol Vols vol Fig Figs fig p pp Ch ch Sec sec")

# Abbreviations that may end a sentence; they do only before a typical sentence starter.
_AMBIGUOUS = _words(
    """
    Jan Feb Mar Apr Jun Jul Aug Sep Sept Oct Nov Dec
    Mon Tue Tues Wed Thu Thur Thurs Fri Sat Sun
    St Ste Ave Blvd Rd Hwy Mt Ft Pt Sq Ln
    Inc Corp Co Cos Ltd Plc Bros Jr Sr Dept Univ Assn Est Intl Natl Govt
    etc al ed eds est min max mins hrs yr yrs mo mos oz lb lbs ft sq
    Ala Ariz Ark Calif Colo Conn Del Fla Ga Ill Ind Kan Kans Ky La Md Mass Mich Minn Miss
    Mo Mont Neb Nev Okla Ore Pa Tenn Tex Vt Va Wash Wis Wyo
    """
)

# Words that typically start a sentence; after an ambiguous abbreviation they signal a boundary.
_STARTERS = _words(
    """
    A An The He She It I We They You His Her Its Their Our My Your Him Them
    This That These Those There Here But And Or So Yet Then Now Still Also Instead
    However Meanwhile Although Though While When Where What Who Whom Whose Why How Which
    If In On At As After Before During Since Until For From With Without By To Of Under
    Some Many Most Several All Both Each Every Any No None Not Nor One Two Three Four Five
    Other Others Another Such Last Next Earlier Later Today Yesterday Tomorrow Tonight
    Mr Mrs Ms Dr
    """
)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Return the sentences of ``text`` as ``(start, end)`` character offsets, in order.

    Each ``text[start:end]`` is non-empty and starts and ends on a non-whitespace character;
    the spans do not overlap and cover every non-whitespace character of ``text``.
    """
    return _spans(text, 0, len(text))


def sentences_within(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Return the sentence spans of ``text[start:end]`` as absolute offsets into ``text``.

    Used to quote single sentences of a retrieved chunk without copying the article.
    """
    if not 0 <= start <= end <= len(text):
        raise ValueError(f"span {start}-{end} is outside a text of {len(text)} characters")
    return _spans(text, start, end)


def _spans(text: str, pos: int, endpos: int) -> list[tuple[int, int]]:
    """Sentence spans of ``text[pos:endpos]``: each stripped line split at its boundaries."""
    spans: list[tuple[int, int]] = []
    for line in _LINE.finditer(text, pos, endpos):
        _split_line(text, line.start(), line.end(), spans)
    return spans


def _split_line(text: str, start: int, end: int, out: list[tuple[int, int]]) -> None:
    """Append to ``out`` the sentences of the stripped line ``text[start:end]``."""
    sentence_start = start
    for cand in _CANDIDATE.finditer(text, start, end):
        term_start, close_end, next_start = cand.start(), cand.end("close"), cand.end()
        if term_start == sentence_start:
            continue  # punctuation alone (". Next") is not a sentence
        if _is_boundary(text, sentence_start, cand, end):
            out.append((sentence_start, close_end))
            sentence_start = next_start
    out.append((sentence_start, end))


def _is_boundary(text: str, sentence_start: int, cand: re.Match[str], line_end: int) -> bool:
    """Decide whether the candidate ``cand`` ends the sentence begun at ``sentence_start``."""
    next_start = cand.end()
    word_start = _skip_openers(text, next_start, line_end)
    if word_start < line_end and text[word_start].islower():
        return False  # '"Why?" he asked', "... and then", "U.S. officials"
    term = cand.group("term")
    if term != ".":
        return True  # "?", "!", ellipses
    if any(c in "\"'\u201d\u2019\u00bb\u203a" for c in cand.group("close")):
        return True  # 'said." He'
    token = _token_before(text, sentence_start, cand.start())
    if token in _TITLES or (token.isupper() and token.capitalize() in _TITLES):
        return False
    if token in _BEFORE_NUMBER and word_start < line_end and text[word_start].isdigit():
        return False
    if _is_enumerator(text, sentence_start, cand.start(), token):
        return False  # "1. The first point" stays one sentence
    if token in _AMBIGUOUS or _ACRONYM.fullmatch(token):
        return text[next_start] in _OPENING_QUOTES or _starts_sentence(text, word_start, line_end)
    return True


def _skip_openers(text: str, pos: int, end: int) -> int:
    """Return the first position at or after ``pos`` that is not an opening quote or bracket."""
    while pos < end and text[pos] in _OPENERS:
        pos += 1
    return pos


def _token_before(text: str, sentence_start: int, dot: int) -> str:
    """The word right before the ``.`` at ``dot``, without opening quotes; "" after a space."""
    window = text[max(sentence_start, dot - _TOKEN_WINDOW) : dot]
    if not window or window[-1].isspace():
        return ""
    return window.split()[-1].lstrip(_OPENERS)


def _is_enumerator(text: str, sentence_start: int, dot: int, token: str) -> bool:
    """True for a list marker such as "1." or "a." opening the sentence."""
    if dot - len(token) != sentence_start:
        return False
    return (token.isdigit() and len(token) <= 2) or (len(token) == 1 and token.isalpha())


def _starts_sentence(text: str, pos: int, end: int) -> bool:
    """True if a typical sentence-starting word (not itself an abbreviation) begins at ``pos``."""
    word = _WORD.match(text, pos, end)
    if word is None or word.group() not in _STARTERS:
        return False
    return word.end() >= end or text[word.end()] != "."
