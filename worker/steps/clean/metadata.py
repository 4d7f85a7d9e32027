"""Page metadata: title, authors, publication date, canonical url, language and site name,
read from what the page states (JSON-LD, meta tags, the document's own elements) and from
what it shows a reader (its visible text around the headline).

- Date: every day the page states or shows is a candidate (the article's JSON-LD
  `datePublished`, `article:published_time` and the other publication meta tags, weaker
  structured dates such as `<time>` elements, the modified dates, the url's day, the days shown
  next to the headline, after the author's name or labelled 'Published' / 'Updated', and the
  other days the page shows), described by where it is stated and shown (`date_candidates`);
  a learned model (`clean.date_model`) gives the best-scored one when it scores the model's
  threshold, else no date (a wrong date is worse than none). The stated timestamp keeps its
  time zone. Text dumps, with no structured dates, are read by rules (`choose_date`): a day
  next to the headline or the author's name that is not an update, a day labelled
  'Published ...', last one shown as 'Updated ...'.
- Authors: JSON-LD authors (a Person told from an Organization), author meta tags, elements
  marked as bylines, then the byline the page shows ('By A and B', a name beside the date line
  or alone under the headline, 'Written by ...'); several authors split; credentials dropped;
  an organisation or staff byline only when no person is named; the site's own name only when
  nothing else is and the page signs the post with it (an author tag or a byline; the article's
  JSON-LD author set to the site alone does not).
- Title: the page's headline (its `<h1>`, or an h2 when the h1 is a logo) when it is the
  story's, else the OpenGraph or JSON-LD headline, else the `<title>` without the site name.

Text dumps (`dump_meta`): the same reading of the dump's lines around its headline.
Measured by `ingest-worker eval metadata` (bench/metadata.md).
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from importlib import resources
from itertools import chain, islice
from typing import Any
from urllib.parse import urlsplit

from worker.steps.clean.date_model import DateModel, shipped_date_model
from worker.steps.clean.normalize import normalize_line
from worker.steps.common import parse_timestamp, short_text_cache

_ARTICLE_TYPES = re.compile(r"(news)?article|blogposting|report|posting", re.I)


@dataclass(slots=True)
class PageMeta:
    """Metadata read from the page itself."""

    title: str | None = None
    canonical_url: str | None = None
    language: str | None = None
    site_name: str | None = None
    authors: list[str] = field(default_factory=list)
    published_at: str | None = None
    body: str | None = None  # JSON-LD articleBody
    # every day the page states or shows, with its features (`date_candidates`), and the
    # structured dates it states: what `published_at` is chosen from
    date_candidates: list[tuple[date, list[float]]] = field(default_factory=list)
    date_stated: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DumpMeta:
    """What a text dump states about its story: byline names and publication date."""

    authors: list[str]
    published_at: str | None


# --- dates ----------------------------------------------------------------------------------

_MONTH_NAMES = (
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
)
_MONTH = (
    r"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?|"
    r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_ORD = r"(?:st|nd|rd|th)?"
_SHOWN_DATE = re.compile(
    rf"\b{_MONTH}\s+(\d{{1,2}}){_ORD}[,.]?\s+(\d{{4}})\b"  # September 4, 2025; Jul. 11. 2025
    rf"|\b(\d{{1,2}}){_ORD}\.?(?:\s+|-)(?:of\s+)?{_MONTH}(?:,?\s+|-)(\d{{4}})\b"  # 4 September 2025, 19-Dec-2025
    r"|\b(\d{4})[-/.•·](\d{1,2})[-/.•·](\d{1,2})\b"  # 2025-09-04, 2025•09•04
    r"|\b(\d{1,2})[-/.](\d{1,2})[-/.](\d{4}|\d{2})\b"  # 09/04/2025, 04.09.25
    rf"|\b(\d{{4}})\s+{_MONTH}\s+(\d{{1,2}})\b(?![:.]\d|,?\s*\d{{4}})"  # 2023 Jan 7 (citations)
    r"|(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日",  # 2025年9月4日
    re.IGNORECASE,
)
_DATE_ANCHOR = re.compile(r"\d{4}|\d[-/.]\d{1,2}[-/.]\d\d")
_ISO_DAY = re.compile(r"^\s*(\d{4})-(\d{2})-(\d{2})")
_URL_DATE = re.compile(rf"/((?:19|20)\d{{2}})/(\d{{1,2}}|{_MONTH})/(\d{{1,2}})(?:/|$)", re.I)


def _month(name: str) -> int:
    return next(k for k, full in enumerate(_MONTH_NAMES, 1) if full.startswith(name.lower().rstrip(".")[:3]))


def _day(y: int, m: int, d: int) -> date | None:
    if y < 100:
        y += 2000
    if not 1990 <= y <= 2100:
        return None
    try:
        return date(y, m, d)
    except ValueError:
        return None


def _date_matches(text: str) -> Iterator[re.Match[str]]:
    """The date spellings of `text`, searched only around its digits that could be a year (a
    four-digit run, or a two-digit one closing a numeric date): most text has none."""
    done = 0
    for anchor in _DATE_ANCHOR.finditer(text):
        if anchor.end() <= done:
            continue
        end = anchor.end() + 12
        for match in _SHOWN_DATE.finditer(text, max(done, anchor.start() - 24), end):
            if match.start() < done:
                continue
            if match.end() > end - 8:  # cut by the window, or a look past it: read it again in the whole text
                whole = _SHOWN_DATE.match(text, match.start())
                if whole is None:
                    continue
                match = whole
            done = match.end()
            yield match


def shown_dates(text: str) -> list[tuple[date, int]]:
    """Every calendar day written in `text` with where it starts, in order; a numeric day-month
    order that could be read both ways gives both days."""
    days: list[tuple[date, int]] = []
    for match in _date_matches(text):
        g = match.groups()
        found: list[date | None]
        if g[0]:
            found = [_day(int(g[2]), _month(g[0]), int(g[1]))]
        elif g[4]:
            found = [_day(int(g[5]), _month(g[4]), int(g[3]))]
        elif g[6]:
            found = [_day(int(g[6]), int(g[7]), int(g[8]))]
        elif g[12]:
            found = [_day(int(g[12]), _month(g[13]), int(g[14]))]
        elif g[15]:
            found = [_day(int(g[15]), int(g[16]), int(g[17]))]
        else:
            a, b, y = int(g[9]), int(g[10]), int(g[11])
            found = [_day(y, a, b), _day(y, b, a)]
        days.extend((d, match.start()) for d in found if d is not None)
    return days


_UPDATE_WORD = re.compile(  # 'Edited', not a byline of 'editors'
    r"(?:updat\w*|modif\w*|revis\w*|review\w*|edit(?:ed)?\b|refresh\w*)\W{0,4}(?:\w+\W{1,3})?$", re.I
)
_PUBLISHED_WORD = re.compile(
    r"\b(?:publish|posted|post\s+(?:time|date)|released|written|created|dated?)\w*\W{0,4}(?:on\W+)?(?:the\W+)?$", re.I
)


def page_dates(text: str) -> tuple[dict[date, bool], list[date], list[date], dict[date, tuple[int, int]]]:
    """The days `text` shows, each with whether every showing of it is labelled as an update
    ('Updated on ...'); the days labelled as publication ('Published ...'), in order; those
    labelled as the first publication ('originally published on ...'); and where each day is
    first shown with how many times it is, in the order of their first showing."""
    shown: dict[date, bool] = {}
    published: list[date] = []
    original: list[date] = []
    places: dict[date, tuple[int, int]] = {}
    for day, at in shown_dates(text):
        first, count = places.get(day, (at, 0))
        places[day] = (first, count + 1)
        before = text[max(0, at - 30) : at]
        update = bool(_UPDATE_WORD.search(before))
        shown[day] = shown.get(day, True) and update
        if _PUBLISHED_WORD.search(before):
            published.append(day)
            if _ORIGINAL_WORD.search(text[max(0, at - 45) : at]):
                original.append(day)
    return shown, published, original, places


_ORIGINAL_WORD = re.compile(r"\b(?:originally|first)\s+(?:published|posted|appeared)\b", re.I)


_OTHER_DATE_WORD = re.compile(
    r"\b(?:today|hours|open|valid|redeem|from|until|till|active|commented|says|said|expires?|deadline|event|"
    r"ends?|starts?|closes?|opens?|since|between|to|through|copyright|©)\b\W{0,4}(?:\w+\W{1,3})?$",
    re.I,
)


def header_dates(text: str) -> tuple[list[date], list[date]]:
    """Days shown in a piece of the page's header (one line per text node), except those
    labelled, on their own line, as something other than the story's date ('Open today ...',
    'valid from ...'; not a headline ending '... to Follow' above the date): the days shown as
    the story's date, and the days labelled as its update ('Updated ...')."""
    days: list[date] = []
    updates: list[date] = []
    flat = text.replace("\n", " ")
    for day, at in shown_dates(flat):
        before = flat[max(0, at - 30) : at]
        if _OTHER_DATE_WORD.search(text[max(0, at - 30, text.rfind("\n", 0, at) + 1) : at]):
            continue
        (updates if _UPDATE_WORD.search(before) else days).append(day)
    return days, updates


def _stated_day(value: str | None) -> date | None:
    """The calendar day an ISO-like or written date states (in its own time zone)."""
    if not value:
        return None
    match = _ISO_DAY.match(value)
    if match:
        return _day(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    days = shown_dates(value)
    return days[0][0] if days else None


def _url_day(url: str | None) -> date | None:
    match = _URL_DATE.search(urlsplit(url).path) if url else None
    if match is None:
        return None
    month = match.group(2)
    return _day(int(match.group(1)), int(month) if month.isdigit() else _month(month), int(match.group(4)))


def _as_value(day: date, stated: str) -> str:
    """The stated timestamp, time zone kept, when it is ISO 8601 or RFC 2822 ('20 Nov 2019
    08:02 GMT'); else the bare day."""
    if _ISO_DAY.match(stated):
        return stated.strip()
    moment = parse_timestamp(stated)
    return moment.isoformat() if moment is not None and moment.date() == day else day.isoformat()


@dataclass(frozen=True, slots=True)
class Shown:
    """What a page shows a reader about its story's date and author, read from its visible
    text (one line per text node) around the headline."""

    text: str  # the visible text on one line
    shown: dict[date, bool]  # every day shown; True when only ever shown as an update
    labelled: list[date]  # days labelled 'Published ...', 'Posted on ...'
    original: list[date]  # days labelled 'Originally published on ...'
    header: list[date]  # days shown next to the headline (not as updates, ranges, hours)
    updates: list[date]  # days shown next to the headline as 'Updated ...'
    bylines: list[list[tuple[str, str]]]  # byline sources, most trusted first
    signed: list[date] = field(default_factory=list)  # days shown right after the author's name
    headline_at: int = -1  # where the headline starts in `text` (-1: not found)
    yearless: frozenset[tuple[int, int]] = frozenset()  # (month, day) shown under the headline without a year
    places: dict[date, tuple[int, int]] = field(default_factory=dict)  # day: (first offset in `text`, showings)


_BYLINE_CUE = re.compile(r"(?<!more )(?<!posts )(?<!articles )(?<!stories )\bby\W{0,3}$", re.I)
AUTHOR_DATE_CHARS = 60  # text after the author's name searched for the day the story was signed


def author_dates(seen: Shown, authors: Sequence[str]) -> Shown:
    """`seen` with the days shown right after the first author's name ('Written by Ana Ruiz and
    Li Wei April 8, 2024'): a byline's date, found even when the headline is not (a headline
    reworded in the page's title). The name is looked for from the headline on, so a menu or
    a 'More by ...' box above it does not lend its date; days shown there as 'Updated ...'
    stay updates."""
    if not authors:
        return seen
    name = authors[0]
    at = seen.text.find(name, seen.headline_at) if seen.headline_at >= 0 else -1
    if at < 0:  # no headline: the name as a byline gives it ('By ...'), not as a menu's link or a 'More by' box
        places = [m.start() for m in re.finditer(re.escape(name), seen.text)]
        at = next((k for k in places if _BYLINE_CUE.search(seen.text[max(0, k - 20) : k])), -1)
    if at < 0:
        return seen
    end = at + len(authors[0])
    days, updates = header_dates(seen.text[end : end + AUTHOR_DATE_CHARS])
    return replace(seen, signed=days, updates=[*seen.updates, *updates])


@dataclass(frozen=True)
class _Whole:
    """What `Shown` reads from the whole visible text, the same wherever its headline is."""

    text: str  # the visible text on one line (the same offsets)
    shown: dict[date, bool]
    labelled: list[date]
    original: list[date]
    written: list[list[tuple[str, str]]]  # a 'Written by ...' line's name, an 'Author' label's
    places: dict[date, tuple[int, int]]


def _whole(lines: str) -> _Whole:
    """`_Whole` of visible text `lines` (one line per text node)."""
    text = lines.replace("\n", " ")
    shown, labelled, original, places = page_dates(text)
    return _Whole(text, shown, labelled, original, [
        [(written.group(1), "")] if (written := _written_by(lines)) else [],
        [(label.group(1), "")] if "Author" in lines and (label := _AUTHOR_LABEL.search(lines)) else [],
    ], places)


def _read_shown(lines: str, at: int, headline: str | None, whole: _Whole | None = None) -> Shown:
    """`Shown` of visible text `lines` whose headline starts at `at` (-1: not found); `whole`,
    when given, is `_whole(lines)` read once for several headline places."""
    whole = whole if whole is not None else _whole(lines)
    days_after, updates_after = header_dates(lines[at : at + HEADER_CHARS] if at >= 0 else "")
    days_before, updates_before = header_dates(lines[max(0, at - HEADER_CHARS // 2) : at] if at >= 0 else "")
    after = lines[at : at + HEADER_CHARS] if at >= 0 else ""
    around = lines[max(0, at - HEADER_CHARS // 2) : at + HEADER_CHARS] if at >= 0 else ""
    by_line = _BY_LINE.search(after)
    bylines = [
        [(by_line.group(1), "")] if by_line else [],
        [(name, "")] if (name := _dated_name(around, headline)) else [],
        [(name, "")] if (name := _name_line(after)) else [],
        *whole.written,
    ]
    return Shown(
        whole.text, dict(whole.shown), list(whole.labelled), list(whole.original), days_after + days_before,
        updates_after + updates_before, bylines, [], at, frozenset(_yearless(after)), whole.places,
    )


_YEARLESS = re.compile(  # 'Jul 11', '11 July': a day with no year after it
    rf"\b{_MONTH}(?![a-z])\s+(\d{{1,2}}){_ORD}\b(?![,.]?\s*\d)"
    rf"|\b(\d{{1,2}}){_ORD}\s+{_MONTH}(?![a-z])(?![,.]?\s*\d)",  # not '5 decades', nor 'Jul' of 'July 2019'
    re.I,
)


def _yearless(text: str) -> Iterator[tuple[int, int]]:
    """(month, day) of the days `text` shows without a year ('Jul 11 · Written by ...')."""
    if not _ANY_DIGIT.search(text):  # each holds one
        return
    for match in _YEARLESS.finditer(text):
        month, day = (match.group(1), match.group(2)) if match.group(1) else (match.group(4), match.group(3))
        if 1 <= int(day) <= 31:
            yield _month(month), int(day)


def choose_date(
    strong: Sequence[str], weak: Sequence[str], modified: Sequence[str], url: str | None, seen: Shown,
    tagged: Sequence[str] = (),
) -> str | None:
    """The date the page gives its story (ISO 8601, the stated time zone kept). A trusted
    structured published date (ISO article JSON-LD, publication meta tags; `tagged`: those the
    meta tags give) when the page shows that day or one beside it (another time zone). When the
    page never shows it: a date a publication meta tag states is kept, unless the page shows
    another day next to the headline than the modified one (the structured date is then a
    template's); a date only the JSON-LD states is not the story's, and the page is read as if
    it stated none (the day it shows next to the headline, even as 'Updated', or nothing).
    Never the modified date instead of a published one the page shows or a meta tag states.
    Without a trusted date: a weaker structured date (a `<time>` element, a web page's JSON-LD,
    a written-out date; '02-12-2025' read as an ISO date of the page states it) when the page
    shows that day, and not only away from a headline showing another day (a related item's
    date), or the url's date when the page shows that day; a day shown next to the headline,
    a day shown right after the author's name, a day the page labels 'Published', and last a
    day shown next to the headline as 'Updated'. None when nothing states a date."""
    shown, header = seen.shown, seen.header
    days = [(d, v) for v in strong if _ISO_DAY.match(v) and (d := _stated_day(v)) is not None]
    weak = [*weak, *(v for v in strong if not _ISO_DAY.match(v))]
    url_day = _url_day(url)
    if days and url_day is not None and abs((url_day - days[0][0]).days) <= 1:
        # The url's /2025/12/18/ agrees: the structured date is the story's, on the url's day
        # (the structured moment may fall on the next day in UTC).
        return _as_value(*days[0]) if url_day == days[0][0] else url_day.isoformat()
    if days:
        # The same moment may fall on the day before or after in the reader's time zone.
        for near in (set(header), shown.keys()):  # the first structured day the header, else the page, shows
            seen_day = next((dv for dv in days if any(dv[0] + timedelta(days=k) in near for k in (-1, 0, 1))
                             or near is not shown and (dv[0].month, dv[0].day) in seen.yearless), None)
            if seen_day is not None:
                return _as_value(*seen_day)
        tagged_days = {d for v in tagged if (d := _stated_day(v)) is not None}
        # The first structured date a publication meta tag states (or agrees with, a day apart).
        kept = next((dv for dv in days if any(abs((d - dv[0]).days) <= 1 for d in tagged_days)), None)
        if kept is not None:
            changed = {d for v in modified if (d := _stated_day(v)) is not None}
            other = [d for d in header if d not in changed]
            if other:
                return _timed(other[0], [*strong, *weak, *modified])
            return _as_value(*kept)
        # Only the JSON-LD states it and the page never shows it: what the page shows decides.
    stated = {d for v in weak if _ISO_DAY.match(v) and (d := _stated_day(v)) is not None}
    for value in weak:
        day = _stated_day(value)
        if not _ISO_DAY.match(value):  # '02-12-2025': the reading an ISO date of the page states
            day = next((d for d, _ in shown_dates(value) if d in stated), day)
        if day is not None and shown.get(day) is False:
            if header and day not in header:
                break  # shown only away from a headline showing another day: a related item's
            return _as_value(day, value)
    day = _url_day(url)
    if day is not None and day in shown:
        return _timed(day, [*strong, *weak, *modified])
    found = [*seen.original, *header, *seen.signed, *seen.labelled, *seen.updates]
    return _timed(found[0], [*strong, *weak, *modified]) if found else None


DATE_SOURCES = (
    "tagged",  # a publication meta tag (article:published_time, ...)
    "ld",  # the article's JSON-LD datePublished (or a <time> marked as the publication's)
    "weak",  # a <time> element, a web page's JSON-LD, a `date` meta tag
    "modified",  # dateModified, article:modified_time, a <time> marked as the update's
    "url",  # the url's /YYYY/MM/DD/
    "header",  # shown next to the headline, not as an update
    "signed",  # shown right after the author's name
    "labelled",  # labelled 'Published ...', 'Posted on ...' anywhere
    "original",  # labelled 'Originally published on ...'
    "updates",  # shown next to the headline as 'Updated ...'
    "yearless",  # a structured day shown under the headline without its year
)
_NEAR_SOURCES = DATE_SOURCES[:5]  # a stated moment may fall a day apart from the day shown
DATE_FEATURES = (
    *(f"in_{s}" for s in DATE_SOURCES),
    *(f"first_{s}" for s in DATE_SOURCES[:4]),
    *(f"near_{s}" for s in _NEAR_SOURCES),
    "shown", "shown_near", "shown_only_update", "shown_times", "shown_order",
    "from_headline", "before_headline", "place_in_page", "sources", "sources_near",
    "page_days_shown", "page_candidates", "page_structured", "page_modified", "page_headline",
    "latest", "earliest", "after_modified", "years_to_modified", "years_before_latest_shown",
)
DATE_CANDIDATES_SHOWN = 30  # days the page shows that no source states, taken in order as candidates
DATE_SOURCE_DAYS = 200  # days read of one source (a calendar or archive page states thousands)


def date_sources(
    strong: Sequence[str], weak: Sequence[str], modified: Sequence[str], url: str | None, seen: Shown,
    tagged: Sequence[str] = (),
) -> dict[str, list[date]]:
    """The days a page states, by where it states them (`DATE_SOURCES`), each in order; the
    arguments are `choose_date`'s."""

    def days(values: Iterable[str]) -> list[date]:
        distinct = dict.fromkeys(d for v in values if (d := _stated_day(v)) is not None)
        return list(islice(distinct, DATE_SOURCE_DAYS))

    url_day = _url_day(url)
    tagged_values = set(tagged)
    return {
        "tagged": days(tagged),
        "ld": days(v for v in strong if v not in tagged_values),
        "weak": days(weak),
        "modified": days(modified),
        "url": [url_day] if url_day is not None else [],
        "header": seen.header,
        "signed": seen.signed,
        "labelled": seen.labelled,
        "original": seen.original,
        "updates": seen.updates,
        "yearless": [d for d in days(strong) if (d.month, d.day) in seen.yearless],
    }


def date_candidates(
    sources: dict[str, list[date]], seen: Shown, latest: date | None = None,
) -> list[tuple[date, list[float]]]:
    """Every day of `sources` and the first `DATE_CANDIDATES_SHOWN` other days the page shows,
    none after `latest` (the day the page was read: no story is published later), each with
    its features (`DATE_FEATURES`, in order): which sources state it, whether, how often and
    where the page shows it (from the headline, in the page), how many sources agree, the
    page's counts of days, whether it is the latest or earliest stated, how it stands to the
    modified date and to the latest day shown."""
    if latest is not None:
        sources = {s: [d for d in stated_days if d <= latest] for s, stated_days in sources.items()}
    places = seen.places
    days = list(dict.fromkeys(d for s in DATE_SOURCES for d in sources[s]))
    stated = set(days)
    by_place = [d for d in places if latest is None or d <= latest]  # in the order of their first showing
    within = {s: set(sources[s]) for s in DATE_SOURCES}
    days += [d for d in by_place[:DATE_CANDIDATES_SHOWN] if d not in stated]
    order = {d: k for k, d in enumerate(by_place)}
    changed = sources["modified"]
    last_change = max(changed) if changed else None
    latest, earliest = (max(stated), min(stated)) if stated else (None, None)
    latest_shown = max(places) if places else None
    page = [
        math.log1p(len(places)), math.log1p(len(days)),
        float(sum(bool(sources[s]) for s in ("tagged", "ld", "weak"))), float(bool(changed)),
        float(seen.headline_at >= 0),
    ]
    size = max(len(seen.text), 1)
    out: list[tuple[date, list[float]]] = []
    for day in days:
        inside = [float(day in within[s]) for s in DATE_SOURCES]
        stated_first = [float(bool(sources[s]) and sources[s][0] == day) for s in DATE_SOURCES[:4]]
        around = (day - timedelta(days=1), day, day + timedelta(days=1))
        near = [float(any(d in within[s] for d in around)) for s in _NEAR_SOURCES]
        place = places.get(day)
        if place is not None and seen.headline_at >= 0:
            offset = (place[0] - seen.headline_at) / 1000
            from_headline, before = max(-5.0, min(5.0, offset)), float(offset < 0)
        else:
            from_headline, before = 5.0, 0.0
        out.append((day, [
            *inside, *stated_first, *near,
            float(day in seen.shown), float(any(day + timedelta(days=k) in seen.shown for k in (-1, 0, 1))),
            float(seen.shown.get(day) is True),
            math.log1p(place[1]) if place else 0.0, float(min(order.get(day, 30), 30)),
            from_headline, before, place[0] / size if place else 1.0, sum(inside), sum(near),
            *page,
            float(day == latest), float(day == earliest), float(last_change is not None and day > last_change),
            max(-3.0, min(3.0, (last_change - day).days / 365)) if last_change is not None else 0.0,
            float(min(latest_shown.year - day.year, 10)) if latest_shown is not None else 0.0,
        ]))
    return out


def choose_published(
    candidates: list[tuple[date, list[float]]], stated: Sequence[str], model: DateModel | None = None,
) -> str | None:
    """The date the page gives its story among its `candidates` (`date_candidates`), chosen by
    `model` (the shipped date model, `clean.date_model`, when None): ISO 8601, with the time
    and zone of the first of the page's `stated` structured dates stating that day; None when
    no candidate scores the model's threshold (a wrong date is worse than none)."""
    day = (model or shipped_date_model()).choose(candidates)
    return _timed(day, stated) if day is not None else None


def _timed(day: date, stated: Sequence[str]) -> str:
    """A day the page shows, with the time and zone of the first structured date stating that
    same day (its JSON-LD, meta tags or `<time>` elements, the modified date too: the day shown
    is the one the page gives its story); else the bare day."""
    value = next((v for v in stated if _stated_day(v) == day), None)
    return _as_value(day, value) if value is not None else day.isoformat()


# --- authors --------------------------------------------------------------------------------

_BY = re.compile(
    r"^\s*(?:(?:(?:written|posted|reviewed|words|story|text|photos?|edited|article|published)\s+)?by\b[:\s]*|"
    r"authors?\s*:\s*|"
    r"(?:(?:view|see)\s+all\s+(?:posts|articles|stories)\s+by|read\s+more\s+(?:about|from|by)|"
    r"more\s+(?:from|by)|(?:posts|articles|stories)\s+by)\s+)",
    re.I,
)
_SPLIT = re.compile(r"\s*(?:[;|&/•·]|,(?!\s*(?:jr|sr|ii|iii)\.?\s*(?:$|,))|\band\b|\bund\b|\bwith\b)\s*", re.I)
_CREDENTIAL = re.compile(
    r"^(?:[A-Z][A-Za-z]?\.?){1,2}(?:[A-Z]\.?){0,4}(?:\s*®|\s+\d+)?$|^(?:ph\.?\s?d|m\.?d|jr|sr|esq)\.?$", re.I
)
_TITLE_WORD = re.compile(r"^(?:dr|prof|mr|mrs|ms|mx|sir|rev)\.?\s+", re.I)
_ORGANISATION = re.compile(
    r"\b(?:staff|team|editors?|editorial|desk|newsroom|news|contributors?|agency|press|media|inc|ltd|llc|"
    r"group|association|institute|center|centre|department|magazine|journal|associated press|reuters|afp|"
    r"foundation|clinic|hospital|university|college|society|council|company|corporation|official|store|shop)\b",
    re.I,
)
_ROLE = re.compile(
    r"\b(?:reporter|writer|author|editor|director|expert|manager|founder|ceo|cto|analyst|correspondent|"
    r"columnist|specialist|consultant|officer|president|head|lead|engineer|designer|marketer|strategist|"
    r"nutritionist|dietitian|attorney|professor|student|contributor|senior|junior|chief|full bio|bio|"
    r"coordinator|assistant|associate|intern|producer|host|owner|partner|advis[eo]r|educator|instructor|"
    r"teacher|coach|trainer|therapist|physician|doctor|nurse|scientist|researcher|photographer|"
    r"view|profile|posts?|articles?|follow|read|more|share|comment|reply|name|email|website|undefined|"
    r"null|none|anonymous|guest|unknown|admin|administrator|webmaster|user|login|sign|subscribe|"
    r"updated|published|min|hours?|ago|january|february|march|april|june|july|august|september|"
    r"october|november|december)\b",
    re.I,
)
_NOT_A_NAME = re.compile(r"https?:|www\.|@|\d|[*:?!<>{}=]|\.(?:com|org|net|io)\b", re.I)


@functools.cache
def _given_names() -> frozenset[str]:
    """Given names, folded (`worker/data/byline_given_names.txt`: the US Census 1990 lists)."""
    text = resources.files("worker").joinpath("data", "byline_given_names.txt").read_text(encoding="utf-8")
    return frozenset(n.strip().casefold() for n in text.splitlines() if n.strip() and not n.startswith("#"))


def _squeeze(text: str) -> str:
    return re.sub(r"[\W_]+", "", text.casefold())


def split_authors(value: str) -> list[str]:
    """'By A, B and C' -> ['A', 'B', 'C']: a byline's names, credentials ('MD', 'PhD') and a
    leading 'By' dropped."""
    text = normalize_line(_BY.sub("", value or ""))
    text = re.sub(r"\([^)]*\)", " ", text)
    names: list[str] = []
    for part in _SPLIT.split(text):
        part = normalize_line(_BY.sub("", part)).strip(" .-–—:,")
        if not part or (_CREDENTIAL.match(part) and names):
            continue
        names.append(part)
    return names


def is_organisation(name: str) -> bool:
    """A byline naming a desk, team, staff or organisation rather than a person."""
    return bool(_ORGANISATION.search(name))


# Words no name is made of: function words and the page furniture bylines sit among.
_FUNCTION_WORDS = frozenset(
    "a an the in on at of for to and or is are was this that these those with from your our my we you it "
    "as be all more here there log sign find contact home menu about search back next previous share".split()
)
_PARTICLES = frozenset({"de", "da", "van", "von", "der", "den", "la", "le", "di", "du", "bin", "al", "del"})


def _given_first(name: str) -> bool:
    """The name opens on a known given name (a title such as 'Dr' skipped)."""
    words = _TITLE_WORD.sub("", name).split()
    return bool(words) and words[0].casefold().strip(".") in _given_names()


def is_person(name: str) -> bool:
    """A name that reads as a person's: one to five capitalised words, none a common word, a
    role, an organisation or page furniture; one word only when it is a known given name."""
    bare = _TITLE_WORD.sub("", name)
    words = bare.split()
    if not 1 <= len(words) <= 5 or _NOT_A_NAME.search(bare) or is_organisation(bare) or _ROLE.search(bare):
        return False
    if any(w.casefold() in _FUNCTION_WORDS for w in words):
        return False
    if not all(w[0].isupper() or w.casefold() in _PARTICLES for w in words):
        return False
    return len(words) >= 2 or _given_first(bare)


# Words templates put in byline slots in place of a name: never read as a one-word pen name.
_BYLINE_LABELS = frozenset(
    "advertisement advertorial sponsored promoted partner paid posted published updated written admin "
    "administrator anonymous guest unknown editorial staff team newsroom byline author authors none "
    "null undefined loading trending featured breaking exclusive opinion analysis news".split()
)
_LABEL_SUFFIX = re.compile(r"(?:ment|tion|sion|ing|ed)$")


def _pen_name(word: str) -> bool:
    """One capitalised word that can stand as a pen name: not a label a template puts in the
    byline's place ('Advertisement', 'Sponsored', 'Posted'), nor a common word's shape."""
    if not re.fullmatch(r"[A-Z][a-z]{2,}", word) or word.casefold() in _BYLINE_LABELS:
        return False
    return not _LABEL_SUFFIX.search(word) or word.casefold() in _given_names()


def _names_of(raw: str, kind: str) -> tuple[list[str], list[str]]:
    """People and organisations a source names. `kind`: 'person' or 'organisation' when the
    source says (JSON-LD), 'structured' for an author field that does not (meta tags), '' for
    text on the page, where only names that read as a person's count ('element': an element
    marked as the byline, which may hold a one-word pen name)."""
    if kind == "organisation":
        name = normalize_line(raw)
        return [], [name] if name and len(name) <= 60 and not _NOT_A_NAME.search(name) else []
    people, organisations = [], []
    names = split_authors(raw)
    for name in names:
        plain = len(name.split()) <= 5 and not _NOT_A_NAME.search(name) and not _ROLE.search(name)
        if kind == "person" and plain or is_person(name):
            people.append(name)
        elif is_organisation(name) and len(name.split()) <= 5 and not _NOT_A_NAME.search(name):
            organisations.append(name)
        elif kind == "structured" and plain:
            people.append(name)
        elif kind == "element" and set(names) == {name} and _pen_name(name) and plain:
            people.append(name)  # a byline element holding one capitalised word that is no label
    return people, organisations


_STAFF = re.compile(r"\b(?:staff|team|editors?|editorial|desk|newsroom|contributors?|reporters?|writers?)\b", re.I)


def _site_name(name: str, sites: set[str], kind: str = "") -> bool:
    """A byline that is the site itself ('QCY Official' on qcy.com, 'Harbour News'). Not a
    staff byline of the site ('Podium Staff'), nor a person's name on a site named after them
    (a given name first, or a Person in JSON-LD, or a name inside a longer site name)."""
    key = _squeeze(name)
    if _STAFF.search(name):
        return key in sites
    if kind == "person":  # a site that calls itself a Person in its JSON-LD ('Harbour Clinic' on harbourclinic.org)
        return key in sites and (is_organisation(name) or not is_person(name))
    if kind != "organisation" and _given_first(name):
        return False
    for site in sites:
        if key == site or (site in key or key in site) and not (is_person(name) and len(name.split()) >= 2):
            return True
    return False


def choose_authors(
    sources: Iterable[list[tuple[str, str]]], site_names: Iterable[str], shown: str = ""
) -> list[str]:
    """The people of the first source (`sources`, in order of trust, each a list of (name,
    kind)) that names a person the page shows (`shown`: its visible text, folded), else of the
    first that names any; without a person, the first organisation or staff byline; without
    either, the site's own name when an author source gives it and the page shows it (a
    company's post signed by the company). The site's name never stands for a person who is
    named, and never comes from the site's name fields alone. `sources` may be lazy: the sources
    after the one that decides are not read."""
    sites = {_squeeze(s) for s in site_names if s and len(_squeeze(s)) >= 3}
    found: list[list[str]] = []
    organisations: list[str] = []
    signed_by_site: list[str] = []  # the site's own name given as the author
    first_shown = True  # no source read so far names a person the page shows
    for source in sources:
        people: list[str] = []
        for raw, kind in source:
            named, orgs = _names_of(raw, kind)
            for name in named:
                key = _squeeze(name)
                if _site_name(name, sites, kind):
                    signed_by_site.append(name)
                elif key not in {_squeeze(p) for p in people}:
                    people.append(name)
            for name in orgs:
                (signed_by_site if _site_name(name, sites, "organisation") else organisations).append(name)
            if not named and not orgs:  # 'Acme' as the byline of acme.com: neither kind of name
                signed_by_site += [n for n in split_authors(raw) if _squeeze(n) in sites]
        if people:
            found.append(people)
            if first_shown and (not shown or people[0].casefold() in shown):
                if len(people) > 1 or len(people[0].split()) > 1:
                    return people  # what the later sources name cannot change the choice: they are not read
                first_shown = False  # a one-word name: a later source may give it whole
    chosen = next((people for people in found if not shown or people[0].casefold() in shown), found[0] if found else [])
    if len(chosen) == 1 and len(chosen[0].split()) == 1:  # 'Marta', where another source has 'Marta Oliveira'
        whole = (p for people in found for p in people if p.split()[0] == chosen[0] and 2 <= len(p.split()) <= 4)
        chosen = [next(whole, chosen[0])]
    if chosen:
        return chosen
    shown_site = [n for n in signed_by_site if re.search(rf"(?<!\w){re.escape(n.casefold())}(?!\w)", shown)]
    return (organisations or shown_site)[:1]


# --- the html page ---------------------------------------------------------------------------


def _json_ld_items(scripts: list[Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for script in scripts:
        try:
            data = json.loads(script.text or "", strict=False)
        except (ValueError, TypeError, RecursionError):
            continue
        stack = [data]
        while stack and len(items) < 200:
            node = stack.pop()
            if isinstance(node, list):
                stack.extend(reversed(node))
            elif isinstance(node, dict):
                items.append(node)
                if isinstance(node.get("@graph"), list):
                    stack.extend(reversed(node["@graph"]))
    return items


def _names(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return _names(value.get("name"))
    if isinstance(value, list):
        return [n for v in value for n in _names(v)]
    return []


def _kinded_names(value: Any) -> list[tuple[str, str]]:
    """JSON-LD author values as (name, 'person' | 'organisation' | '')."""
    if isinstance(value, str):
        return [(value, "")]
    if isinstance(value, list):
        return [n for v in value for n in _kinded_names(v)]
    if isinstance(value, dict):
        kind = value.get("@type")
        kind = " ".join(kind) if isinstance(kind, list) else str(kind or "")
        label = "person" if "person" in kind.lower() else "organisation" if kind else ""
        return [(n, label) for n in _names(value.get("name"))]
    return []


def _strip_site_suffix(title: str, site_name: str | None, url: str | None) -> str:
    """'Headline - Site' -> 'Headline' when the last segment is the site name or its domain."""
    match = re.search(r"\s+[|\-–—:·]\s+([^|\-–—:·]{1,40})$", title) or re.search(
        r"\s*[|–—·]\s*([^|\-–—:·]{1,40})$", title
    )
    if not match or not title[: match.start()].strip():
        return title
    suffix = match.group(1).strip().casefold()
    host = (urlsplit(url).hostname or "").casefold() if url else ""
    squeezed = re.sub(r"\W+", "", suffix)
    if (site_name and suffix == site_name.strip().casefold()) or (
        len(squeezed) >= 3 and squeezed in host.replace(".", "").replace("-", "")
    ):
        return title[: match.start()].strip()
    return title


_PUBLISHED_META = (
    "article:published_time", "og:article:published_time", "og:published_time", "datepublished",
    "publishdate", "pubdate", "publish-date", "publish_date", "parsely-pub-date",
    "sailthru.date", "dc.date.issued", "citation_publication_date", "article.published",
)
_WEAK_PUBLISHED_META = ("dc.date", "dcterms.created", "dcterms.date", "citation_date", "date", "created", "published")
_MODIFIED_META = ("article:modified_time", "og:updated_time", "datemodified", "last-modified", "dcterms.modified")
_AUTHOR_META = (
    "author", "article:author", "byl", "parsely-author", "sailthru.author", "dc.creator",
    "citation_author", "dcterms.creator",
)
_BYLINE_MARK = re.compile("author|byl|by-line|writer|contributor|posted-by|submitted-by|journalist")
_NOT_BYLINE_MARK = re.compile("avatar|image|img|photo|bio|description|about|social|share|follow|date|time")
_ASIDE_MARK = re.compile(
    r"comment|respond|reply|sidebar|related|footer|widget|recommend|popular|trending|\bnav|menu|"
    r"newsletter|review|testimonial|quote|card|teaser|more-",
    re.I,
)


# A label after the name is not part of it ("By Richard Garner Updated Sep 5, 2024").
_LABEL_WORD = r"(?:Updated|Published|Posted|Last|Reviewed|Edited|Fact|Medically|Written)\b"
_NAME_WORD = rf"(?:(?!{_LABEL_WORD})[A-Z][\w'’-]*\.?|van|von|de|der|da|la|le|di|du|bin|al)"
_NAME = rf"(?!{_LABEL_WORD})[A-Z][\w'’-]*\.?(?: {_NAME_WORD}){{0,3}}"
# What may follow the names on their line: a date ("By Sofia Gonzalez December 2, 2025", "By Ana
# Ruiz on 21 January 2023", "By Dr. Vahid Osman - Mar 27, 2024") or a label ("Updated ...").
_AFTER_NAMES = rf"(?:on |- |– |— |\| )?(?i:{_MONTH}\s+\d|\d{{1,2}}{_ORD}\s+{_MONTH}|\d{{1,4}}[-/.]\d)|{_LABEL_WORD}"
# "By A, B and C" ending where its text node ends, at punctuation or before a date: a byline in
# the header. "Written by A" anywhere on the page (often under the story, with the author's box).
_NAMES = rf"({_NAME}(?:(?:, | and | & ){_NAME})*)(?= ?(?:\n|$|[,|•·–—:]|{_AFTER_NAMES}))"
_WRITTEN_BY = re.compile(rf"\b(?:[Ww]ritten|[Aa]uthored|[Pp]osted) [Bb]y:?[ \n]+{_NAMES}")
_WRITTEN_BY_CUES = ("ritten ", "uthored ", "osted ")  # one of them is in every match


def _written_by(text: str) -> re.Match[str] | None:
    """`_WRITTEN_BY`'s first match in `text`; the regex runs only on text holding one of its cues
    (it is slow over a whole page, and most pages have none)."""
    return _WRITTEN_BY.search(text) if any(cue in text for cue in _WRITTEN_BY_CUES) else None
# "Author" as a label on its own line, above the name (an initials avatar may come between).
_AUTHOR_LABEL = re.compile(rf"(?:^|\n)(?:The )?Authors?:?\n(?:[A-Z]{{1,3}}\n)?({_NAME})(?=\n|$)")
_BY_LINE = re.compile(rf"\b(?:[Bb]y|BY):?[ \n]+{_NAMES}")


def _shown_date(line: str) -> re.Match[str] | None:
    """`_SHOWN_DATE`'s first match in `line`: every date it reads holds a digit, and most lines
    of a header hold none (the regex is slow to fail)."""
    return _SHOWN_DATE.search(line) if _ANY_DIGIT.search(line) else None


_ANY_DIGIT = re.compile(r"\d")
_NAME_LINE_CUT = re.compile(r"\s+[|•·–—]\s+")
_TRAILING_PREPOSITIONS = re.compile(r"(?:\s+(?:in|on|at))+$")


def _name_line(header: str) -> str | None:
    """A line of its own under the headline that is a person's name (first word a known given
    name), alone or before the date ('Kristian Larsen July 13, 2025'): a byline without 'By'."""
    for line in header.split("\n")[1:HEADER_LINES]:
        first = _NAME_LINE_CUT.split(line, maxsplit=1)[0]
        if (day := _shown_date(first)) is not None and day.start() > 0:
            first = first[: day.start()].rstrip(" ,-–—|•·")
        first = _TRAILING_PREPOSITIONS.sub("", first)
        words = first.split()
        if 2 <= len(words) <= 4 and words[0].casefold() in _given_names() and is_person(first):
            return first
    return None


_SEPARATOR = frozenset("•|·—–-/:,")


def _dated_name(header: str, headline: str | None) -> str | None:
    """A short line next to a line that is a date, in the header ('Ana Ruiz' above 'Dec 19,
    2025', or after it past a '•'): where pages put the byline without 'By'."""
    lines = [line for line in header.split("\n") if line.strip() not in _SEPARATOR]
    for k, line in enumerate(lines):
        days = _shown_date(line)
        if days is None or len(line) > len(days.group(0)) + 14:
            continue
        for j in (k - 1, k + 1):
            if 0 <= j < len(lines):
                near = _TRAILING_PREPOSITIONS.sub("", lines[j])
                words = near.split()
                if 1 <= len(words) <= 4 and len(near) <= 40 and near != headline and not _shown_date(near):
                    return near
    return None


def _host_names(url: str | None) -> list[str]:
    """The names a site goes by in its host: 'health.clevelandclinic.org' -> ['health',
    'clevelandclinic']."""
    labels = (urlsplit(url).hostname or "").removeprefix("www.").split(".") if url else []
    if len(labels) >= 3 and labels[-2] in ("co", "com", "org", "net", "ac", "gov", "edu"):
        labels = labels[:-1]
    return list(dict.fromkeys(labels[:-1]))[-2:]


def _first_last(name: str) -> str:
    """'Roy, Aniruddha' -> 'Aniruddha Roy' (the scholarly 'Last, First' order)."""
    last, comma, first = name.partition(",")
    return f"{first.strip()} {last.strip()}" if comma and first.strip() and "," not in first else name


def _in_aside(node: Any) -> bool:
    """Whether an element sits inside comments, a sidebar, a related list or another aside
    (one of its 12 nearest ancestors is marked so by class or id)."""
    parent = node.getparent()
    for _ in range(12):
        if parent is None or parent.tag in ("body", "html"):  # a body's classes name the template
            return False
        if _ASIDE_MARK.search(f"{parent.get('class') or ''} {parent.get('id') or ''}"):
            return True
        parent = parent.getparent()
    return False


@short_text_cache(maxsize=8192)
def _byline_marks(marks: str) -> bool:
    """Whether an element's class, id and test id name it a byline (a page repeats its class
    names: each is read once)."""
    folded = marks.lower()
    return bool(_BYLINE_MARK.search(folded)) and not _NOT_BYLINE_MARK.search(folded)


def _byline(node: Any) -> tuple[str, str] | None:
    """The text of an element marked as the page's byline or author (itemprop, rel, class or
    id), its parts joined by ' | ', with its kind for `choose_authors` ('structured' when the
    markup says it is the author: itemprop or rel 'author', which may name a handle); None for
    other elements and for those inside comments, sidebars, related lists and other asides."""
    attributes = node.attrib
    if not attributes and node.tag != "author":
        return None
    prop = (attributes.get("itemprop") or "").lower()
    rel = (attributes.get("rel") or "").lower()
    marks = f"{attributes.get('class') or ''} {attributes.get('id') or ''} {attributes.get('data-testid') or ''}"
    marked = prop == "author" or rel == "author" or node.tag == "author"
    if not marked and not _byline_marks(marks):
        return None
    if _in_aside(node):
        return None
    kind = "structured" if prop == "author" or rel == "author" else "element"
    named = node.find(".//*[@itemprop='name']") if prop == "author" else None
    if named is not None:
        name = normalize_line(named.get("content") or named.text_content())
        return (name, kind) if name else None
    parts = [p for p in (normalize_line(t) for t in node.itertext()) if p]
    cut = next((k for k, p in enumerate(parts) if k and _OTHER_CREDIT.match(p)), len(parts))
    if _OTHER_CREDIT.match(parts[0] if parts else ""):
        return None
    text = " | ".join(parts[:cut])
    if len(text) > 160 and parts and is_person(parts[0]):
        return parts[0], kind
    return (text, kind) if text and len(text) <= 160 else None


# Credits that are not the author's: a byline element lists them after the author's name.
_OTHER_CREDIT = re.compile(
    r"(?:updated|reviewed|medically reviewed|fact[- ]checked|edited|illustrat\w*|photos?|photograph\w*)(?: by)?\b",
    re.I,
)
_AUTHOR_PATH = re.compile(r"/(?:authors?|writers?|contributors?)/[^/?#]+/?(?:$|[?#])", re.I)
_AUTHOR_PATH_CUES = ("/author", "/writer", "/contributor")  # in every ASCII match, lowered


def _author_link(node: Any) -> str | None:
    """The text of a link to an author's page ('/author/ana-ruiz/'), outside comments,
    sidebars and related lists: how many pages name the author without marking the byline."""
    href = node.get("href") or ""
    if href.isascii() and not any(cue in href.lower() for cue in _AUTHOR_PATH_CUES):  # most links: no regex
        return None
    if not _AUTHOR_PATH.search(href):
        return None
    text = normalize_line(node.text_content())
    return text if text and len(text) <= 60 and not _in_aside(node) else None


_BYLINE_TAGS = ("a", "span", "div", "p", "address", "li", "strong", "h3", "h4", "author")


def _element_bylines(tree: Any) -> Iterator[list[tuple[str, str]]]:
    """The page's byline elements as author sources (`_byline`: the first 12, in document
    order), then the links to an author's page among its other links (`_author_link`: the
    first 3), one source each."""
    found = 0
    bylined: set[Any] = set()  # links read as bylines
    for node in tree.iter(*_BYLINE_TAGS):
        if byline := _byline(node):
            yield [byline]
            if node.tag == "a":
                bylined.add(node)
            found += 1
            if found == 12:
                break
    found = 0
    for node in tree.iter("a"):
        if node not in bylined and (linked := _author_link(node)):
            yield [(linked, "element")]
            found += 1
            if found == 3:
                break


_PUBLISHED_CLASS = re.compile(r"publish|posted|entry-date|post-date|article-date|date-pub", re.I)
_HIDDEN = ("script", "style", "noscript", "template", "svg")
HEADER_CHARS = 600  # text around the headline searched for a shown date or a byline
# the showings of a dump's headline read, nearest the story first: a related-links block can
# repeat the headline hundreds of times, and each showing is read apart
DUMP_HEADLINE_PLACES = 16
HEADER_LINES = 8  # lines under the headline searched for a name on its own


def _visible_text(root: Any, marked: Any = None) -> tuple[str, int]:
    """The text a reader sees (script, style and template contents left out), one line per
    text node, whitespace collapsed; and where the `marked` element starts in it (-1 when it
    is not in the tree)."""
    parts: list[str] = []
    size = 0
    start = -1

    def walk(el: Any) -> None:
        nonlocal size, start
        if el is marked:
            start = size
        text = el.text
        if text and (squeezed := " ".join(text.split())):
            parts.append(squeezed)
            size += len(squeezed) + 1
        for child in el:
            tag = child.tag
            if isinstance(tag, str) and tag not in _HIDDEN:
                walk(child)
            tail = child.tail
            if tail and (squeezed := " ".join(tail.split())):
                parts.append(squeezed)
                size += len(squeezed) + 1

    try:
        walk(root)
    except RecursionError:
        pass
    return "\n".join(parts), start


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.casefold()))


_NUMERIC_PART = re.compile(r"[\d\s/.,:–—-]+")


def _heading_text(node: Any) -> str:
    """A heading's text, its parts spaced, a part that is only a date left out."""
    parts = [p for p in (" ".join(t.split()) for t in node.itertext()) if p]
    kept = [p for p in parts if not ((_ANY_DIGIT.search(p) and _SHOWN_DATE.fullmatch(p)) or _NUMERIC_PART.fullmatch(p))]
    return normalize_line(" ".join(kept or parts))


def _headline(h1s: list[str], h2s: list[str], titles: list[str], site_name: str | None) -> str | None:
    """The heading that is the story's headline: the h1 sharing most words with the page's
    other titles (none when no h1 shares a word with them: the h1 is then a logo or a section
    name, or when it is the site's name); a one-word h1 or an h2 only when it is what the
    page's title begins with."""
    site = _squeeze(site_name or "")
    leads = {_squeeze(re.split(r"\s+[|\-–—:·•]\s+", t)[0]) for t in titles}
    usable = [
        h for h in h1s
        if len(h.split()) <= 40 and _squeeze(h) != site and (len(h.split()) >= 2 or _squeeze(h) in leads)
    ]
    if usable and not titles:
        return usable[0]
    if usable:
        wanted = {w for t in titles for w in _words(t)}
        best = max(usable, key=lambda h: len(_words(h) & wanted))
        if _words(best) & wanted:
            return best
    return next((h for h in h2s if _squeeze(h) in leads and len(h.split()) >= 2), None)


def read_meta(tree: Any, url: str | None = None, latest: date | None = None) -> PageMeta:
    """Canonical url, language, site name, authors, date, title and articleBody of a page; no
    date after `latest` (the day the page was read)."""
    metas: dict[str, list[str]] = {}
    scripts: list[Any] = []
    canonical = title = None
    h1s: list[str] = []
    h2s: list[str] = []
    h1_nodes: list[tuple[str, Any]] = []
    published: list[str] = []  # structured published dates, most trusted first
    element_dates: list[str] = []
    modified: list[str] = []
    for node in tree.iter("meta", "link", "script", "h1", "title", "time", "h2"):
        tag = node.tag
        if tag == "meta":
            key = (node.get("property") or node.get("name") or node.get("itemprop") or "").lower()
            equiv = (node.get("http-equiv") or "").lower()
            value = (node.get("content") or "").strip()
            if value:
                metas.setdefault(key or equiv, []).append(value)
        elif tag == "link":
            rel = (node.get("rel") or "").lower()
            if rel == "canonical" and canonical is None:
                canonical = (node.get("href") or "").strip() or None
        elif tag == "script":
            if (node.get("type") or "").lower() == "application/ld+json":
                scripts.append(node)
        elif tag == "h1":
            text = _heading_text(node)
            if text:
                h1s.append(text)
                h1_nodes.append((text, node))
        elif tag == "h2":
            if len(h2s) < 5 and (text := _heading_text(node)):
                h2s.append(text)
                h1_nodes.append((text, node))
        elif tag == "title":
            if title is None:
                title = node.text_content()
        elif tag == "time":
            stamp = (node.get("datetime") or "").strip()
            marks = f"{node.get('itemprop') or ''} {node.get('class') or ''} {node.get('pubdate') or ''}"
            if "modif" in marks.lower() or "updated" in marks.lower():
                modified.append(stamp or node.text_content())
            elif stamp:
                (element_dates if not _PUBLISHED_CLASS.search(marks) else published).append(stamp)

    def first(*names: str) -> str | None:
        return next((metas[n][0] for n in names if n in metas), None)

    meta = PageMeta()
    meta.canonical_url = canonical or first("og:url")
    lang = tree.get("lang") if tree.tag == "html" else None
    meta.language = lang or first("og:locale", "language", "content-language")
    meta.site_name = first("og:site_name", "application-name")
    og_title = first("og:title", "twitter:title")
    headline = None
    ld_authors: list[tuple[str, str]] = []
    ld_published: list[str] = []
    ld_weak: list[str] = []
    ld_modified: list[str] = []
    publishers: list[str] = []
    for item in _json_ld_items(scripts):
        kind = item.get("@type")
        kinds = kind if isinstance(kind, list) else [kind]
        article = any(isinstance(k, str) and _ARTICLE_TYPES.search(k) for k in kinds)
        if isinstance(item.get("datePublished"), str):
            (ld_published if article else ld_weak).append(item["datePublished"])
        if isinstance(item.get("dateModified"), str):
            ld_modified.append(item["dateModified"])
        publishers.extend(_names(item.get("publisher")))
        if not article:
            continue
        if not ld_authors:
            ld_authors = _kinded_names(item.get("author")) + _kinded_names(item.get("creator"))
        if isinstance(item.get("headline"), str) and headline is None:
            headline = normalize_line(item["headline"])
        if isinstance(item.get("articleBody"), str) and len(item["articleBody"]) > 200:
            meta.body = item["articleBody"]
        if not meta.site_name and publishers:
            meta.site_name = publishers[0]
    if not meta.site_name and publishers:
        meta.site_name = publishers[0]

    # Title: the headline shown on the page.
    titles = [t for t in (og_title, headline, normalize_line(title or "")) if t]
    shown_title = _headline(h1s, h2s, titles, meta.site_name)
    chosen = shown_title or next(
        (t for t in (og_title, headline) if t and len(t.split()) > 2 and _squeeze(t) != _squeeze(meta.site_name or "")),
        None,
    ) or normalize_line(title or "") or None
    meta.title = _strip_site_suffix(chosen, meta.site_name, url) if chosen else None

    # What the page shows: its visible text around the headline.
    body = tree.find("body")
    h1_node = next((node for text, node in h1_nodes if text == shown_title), None)
    lines, at = _visible_text(body if body is not None else tree, h1_node)
    text = lines.replace("\n", " ")  # the same offsets
    if at < 0:
        named = [t for t in (meta.title, og_title, headline) if t]
        named += [re.split(r"\s+[|\-–—:·]\s+", t)[0] for t in named]
        at = next((k for t in named if len(t) > 10 and (k := text.find(t)) >= 0), -1)
    seen = _read_shown(lines, at, shown_title)

    # Authors: structured names, then byline elements, then what the page shows as a byline.
    sites = [s for s in (meta.site_name, *publishers, *_host_names(url)) if s]
    site_keys = {_squeeze(s) for s in sites if len(_squeeze(s)) >= 3}  # as choose_authors reads them
    # The article's JSON-LD author set to the site itself (a CMS filling it with the publisher)
    # does not sign the post: the site's name counts only when an author tag or the byline gives it.
    ld_authors = [(name, kind) for name, kind in ld_authors if not _site_name(name, site_keys, kind)]
    written_by = [  # <meta name="twitter:label1" content="Written by"> and its twitter:data1
        (metas[f"twitter:data{k}"][0], "structured")
        for k in "1234"
        if metas.get(f"twitter:label{k}", [""])[0].lower() == "written by" and f"twitter:data{k}" in metas
    ]
    sources = [
        ld_authors,
        [(_first_last(v) if n == "citation_author" else v, "structured")
         for n in _AUTHOR_META for v in metas.get(n, []) if not v.startswith("http")] + written_by,
    ]
    # the byline elements are read only when the structured names do not decide (`choose_authors`)
    meta.authors = choose_authors(chain(sources, _element_bylines(tree), seen.bylines), sites, seen.text.casefold())

    # Date: a structured date the page shows, or a day shown in the article's header or byline.
    strong = ld_published + (tagged := [v for n in _PUBLISHED_META for v in metas.get(n, [])])
    weak = published + ld_weak + [v for n in _WEAK_PUBLISHED_META for v in metas.get(n, [])] + element_dates
    changed = ld_modified + [v for n in _MODIFIED_META for v in metas.get(n, [])] + modified
    seen = author_dates(seen, meta.authors)
    meta.date_candidates = date_candidates(date_sources(strong, weak, changed, url, seen, tagged), seen, latest)
    meta.date_stated = [*strong, *weak, *changed]
    meta.published_at = choose_published(meta.date_candidates, meta.date_stated)
    return meta


# --- text dumps ------------------------------------------------------------------------------

_GLUED_LABEL = re.compile(r"(?<=[a-z])(?=(?:Published|Updated|Posted|Last Updated)\b)")


def _dump_line(text: str) -> str:
    """A dump's line as a text node of the page: a list bullet dropped, a label its saving
    glued to the name before it split off ('By Ana LundPublished: Jan 29, 2025')."""
    return _GLUED_LABEL.sub("\n", re.sub(r"^[*•·]\s+", "", normalize_line(text)))


def dump_meta(dump: str, title: str, first_paragraph: str, url: str | None = None) -> DumpMeta:
    """Byline names and publication date of a text dump, read as an HTML page's visible text
    is (`Shown`): the byline and date around its headline, a 'Published ...' or 'Written by
    ...' line anywhere. The headline is looked for before the story, at each place the dump
    shows it (the last first: a page repeats its headline in menus and breadcrumbs), then the
    lines just above the story stand for it (the headline the dump cleaner found may be another
    line), and when the headline is not shown before the story, its first showing after the
    story's first paragraph (shown above it as a teaser); the first place that gives a byline
    gives the authors, the first that gives a day the date. The url's day (`/2025/12/18/`) is
    the story's when the dump shows no day."""
    lines = "\n".join(line for line in (_dump_line(t) for t in dump.splitlines()) if line)
    story = lines.find(first_paragraph) if first_paragraph else -1
    end = story if story >= 0 else len(lines)
    places: list[Shown] = []
    whole = _whole(lines)
    at = lines.rfind(title, 0, end) if title else -1
    while at >= 0 and len(places) < DUMP_HEADLINE_PLACES:
        places.append(_read_shown(lines, at, title, whole))
        at = lines.rfind(title, 0, at) if at > 0 else -1
    if story > 0:  # only the lines above the story: what follows it is the story, then related posts
        places.append(_read_shown(lines[:story], story - 1, title))
    if title and len(places) <= 1 and (at := lines.find(title, end)) >= 0 \
            and first_paragraph and lines.find(first_paragraph, at) >= 0:
        # not shown before the story: its first paragraph is also shown above the headline (a
        # teaser), the story after it; a headline shown only after the story is a related post's
        places.append(_read_shown(lines, at, title, whole))
    authors = next((found for seen in places if (found := choose_authors(seen.bylines, []))), [])
    day = next((chosen for seen in places
                if (chosen := choose_date([], [], [], url, author_dates(seen, authors)))), None)
    url_day = _url_day(url)
    return DumpMeta(authors, day or (url_day.isoformat() if url_day is not None else None))
