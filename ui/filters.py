"""Filters from what a person typed (the chat) or sent (the API), checked with clear messages."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date

from vectorstore.errors import QAError
from vectorstore.types import Filters

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def check_date(value: str | None) -> str | None:
    """``value`` as an ISO date (YYYY-MM-DD), None when blank; a clear error otherwise."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if _ISO_DATE.fullmatch(text):
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            pass
    raise QAError(f"{value!r} is not a date like 2014-05-19")


def make_filters(
    sources: Iterable[str] = (),
    article_ids: Iterable[str] = (),
    since: str | None = None,
    until: str | None = None,
) -> Filters:
    """The ``Filters`` for these choices; an error when the dates are bad or out of order."""
    start, end = _date(since, "since"), _date(until, "until")
    if start and end and start > end:
        raise QAError(f"since ({start}) is after until ({end}): no article can match")
    return Filters(
        sources=tuple(dict.fromkeys(s.strip() for s in sources if s.strip())),
        article_ids=tuple(dict.fromkeys(a.strip() for a in article_ids if a.strip())),
        published_from=start,
        published_to=end,
    )


def _date(value: str | None, what: str) -> str | None:
    try:
        return check_date(value)
    except QAError as exc:
        raise QAError(f"{what}: {exc}") from None


def describe(filters: Filters) -> str:
    """A short sentence saying what the filters restrict, or that they restrict nothing."""
    if not filters:
        return "All articles."
    parts = []
    if filters.sources:
        parts.append("from " + ", ".join(filters.sources))
    if filters.article_ids:
        parts.append("articles " + ", ".join(filters.article_ids))
    if filters.published_from and filters.published_to:
        parts.append(f"published {filters.published_from} to {filters.published_to}")
    elif filters.published_from:
        parts.append(f"published on or after {filters.published_from}")
    elif filters.published_to:
        parts.append(f"published on or before {filters.published_to}")
    return "Only articles " + "; ".join(parts) + "."
