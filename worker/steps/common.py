"""Helpers more than one step needs: a page's host, timestamps, the densest run, and a cache
of short texts.

One definition each, so cleaning, dedup and decoding agree on what a site, a time and a story
span are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache, wraps
from typing import TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")

# a text longer than this is worked out each time: a cache of hostile pages' 100 KB class
# names would hold gigabytes across pages (its entries are bounded in number, not in size)
CACHED_TEXT_CHARS = 256


def host(url: str | None) -> str:
    """The url's host, lower-case, without a leading 'www.' ('' when there is none)."""
    try:
        name = urlsplit(url or "").hostname or ""
    except ValueError:
        return ""
    return name.removeprefix("www.")


def parse_timestamp(value: str | None) -> datetime | None:
    """An ISO 8601 / RFC 3339 timestamp (`Z` allowed) or an RFC 2822 one, else None."""
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        return datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        pass
    try:  # RFC 2822, as in mail and some meta tags: "Mon, 18 Nov 2019 07:45:00 GMT"
        return parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None


def rfc3339(moment: datetime) -> str:
    """A timezone-aware datetime as UTC `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def epoch_seconds(timestamp: str | None) -> float | None:
    """Seconds since the epoch of an RFC 3339 timestamp (None when absent or not one)."""
    moment = parse_timestamp(timestamp)
    if moment is None or moment.tzinfo is None:
        return None
    return moment.timestamp()


def densest_run(scores: Sequence[float]) -> tuple[float, int, int]:
    """The contiguous run with the highest total score: (total, start, end), Kadane's algorithm.

    Stories are the densest run of lines: prose lines score positive, furniture negative. The
    first run reaching the best total wins; an all-negative sequence gives (0, 0, 0).
    """
    best, best_start, best_end = 0.0, 0, 0
    total, start = 0.0, 0
    for k, score in enumerate(scores):
        if total <= 0:
            total, start = 0.0, k
        total += score
        if total > best:
            best, best_start, best_end = total, start, k + 1
    return best, best_start, best_end


def short_text_cache(maxsize: int) -> Callable[[Callable[[str], T]], Callable[[str], T]]:
    """`functools.lru_cache` for a function of one text, caching only texts of at most
    `CACHED_TEXT_CHARS` characters (pages repeat their short class names and furniture lines)."""

    def decorate(function: Callable[[str], T]) -> Callable[[str], T]:
        cached = lru_cache(maxsize=maxsize)(function)

        @wraps(function)
        def read(text: str) -> T:
            return cached(text) if len(text) <= CACHED_TEXT_CHARS else function(text)

        read.cache_info = cached.cache_info  # type: ignore[attr-defined]
        return read

    return decorate
