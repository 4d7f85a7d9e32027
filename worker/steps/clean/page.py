"""The `clean` step: RawPage -> Article (HTML or text-dump mode) | Dropped.

HTML pages: a learned classifier keeps the story's text blocks (`clean.blocks`, `clean.html`),
plus the page's own metadata (JSON-LD, meta tags); text dumps: a line scorer finds the densest
run of story lines (`clean.dump`). Every page's kind (article, product, forum, ...) is read
by `clean.page_type`: from the HTML parse, or from the dump's lines. Both outputs are NFC, free of control
characters, with paragraphs separated by exactly one blank line.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from urllib.parse import urljoin

from worker.document import Article, Dropped, RawPage
from worker.steps.clean.dump import extract_dump
from worker.steps.clean.html import extract_html
from worker.steps.clean.language import checked_language, detect_language, normalize_code
from worker.steps.clean.metadata import dump_meta
from worker.steps.clean.model import CleanModels
from worker.steps.clean.normalize import join_paragraphs, normalize_line
from worker.steps.clean.page_type import PageType, classify_text
from worker.steps.common import host, parse_timestamp

MIN_WORDS = 20
_DATE_PREFIX = re.compile(r"^\d{4}-\d{2}-\d{2}")


def source_domain(url: str | None) -> str:
    """Host of a url without a leading 'www.' ('' when there is none)."""
    return host(url)


def iso_date(value: str | None) -> str | None:
    """An ISO 8601 / RFC 3339 / RFC 2822 date or timestamp, as ISO 8601; None when it is not one."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return value
    moment = parse_timestamp(value)
    if moment is not None:
        return moment.isoformat()
    match = _DATE_PREFIX.match(value)
    return match.group(0) if match else None


def latest_day(fetched_at: str | None) -> date:
    """The last day a page read at `fetched_at` (now, when it does not say or says a time before
    any dated page, 1990) can have been published on: the UTC day after, for the time zones
    ahead of UTC."""
    fetched = parse_timestamp(fetched_at) if fetched_at else None
    if fetched is not None and fetched.tzinfo is not None:
        try:
            fetched = fetched.astimezone(timezone.utc)
        except OverflowError:  # the last day of year 9999 in a zone behind UTC
            return date.max
    if fetched is None or fetched.year < 1990:
        fetched = datetime.now(timezone.utc)
    return fetched.date() + timedelta(days=1) if fetched.date() < date.max else date.max


def not_after(published: str | None, latest: date) -> str | None:
    """`published` (ISO 8601) when its day is not after `latest`; None for a later one (a
    far-future date a page states, a two-digit year read in the wrong century)."""
    if published is None:
        return None
    try:
        return published if date.fromisoformat(published[:10]) <= latest else None
    except ValueError:  # not a whole day (a year and month): nothing to compare
        return published


def _absolute(url: str | None, base: str) -> str | None:
    """`url` made absolute against the page's url; None unless it is an http(s) url."""
    if not url:
        return None
    try:
        joined = urljoin(base, url.strip())
    except ValueError:
        return None
    return joined if joined.startswith(("http://", "https://")) else None


def _too_short(text: str) -> bool:
    return len(text) < 4 * MIN_WORDS and len(text.split()) < MIN_WORDS  # a story's text: no split


def _empty(page: RawPage, mode: str, kind: PageType | None = None) -> Dropped:
    """The dead letter of a page with no story text; it carries the page's kind when the page
    shows enough words to have one (a page of a kind not published then ends as skipped)."""
    if kind is not None and kind.words < MIN_WORDS:
        kind = None
    return Dropped(
        "empty_after_cleaning",
        f"No article text found in the {mode} of {page.url} (fewer than {MIN_WORDS} words of "
        "story after removing menus and boilerplate); check that the url is an article page, "
        "not an index, paywall or error page.",
        page_type=kind.kind if kind else None,
        page_type_confidence=kind.confidence if kind else None,
    )


def _clean_html(page: RawPage, markup: str, models: CleanModels) -> Article | Dropped:
    if "<" not in markup:
        return _clean_text(page, markup, models)  # plain text sent as html: read it as a dump
    latest = latest_day(page.fetched_at)
    found = extract_html(markup, page.url, models.blocks, latest)
    if found is None:
        return Dropped(
            "unsupported_content",
            f"The html of {page.url} could not be parsed; send the page's HTML or its text.",
        )
    text = join_paragraphs(found.paragraphs)
    if _too_short(text):
        return _empty(page, "html", found.page_type)
    meta = found.meta
    canonical = _absolute(meta.canonical_url, page.url)
    language = normalize_code(page.language) or checked_language(
        normalize_code(meta.language), text
    )
    return Article(
        url=page.url,
        title=normalize_line(meta.title or ""),
        text=text,
        mode="html",
        canonical_url=canonical,
        source_domain=source_domain(canonical or page.url),
        authors=[a for a in (normalize_line(x) for x in meta.authors) if a][:10],
        published_at=not_after(iso_date(meta.published_at), latest),
        fetched_at=page.fetched_at,
        language=language,
        site_name=normalize_line(meta.site_name) if meta.site_name else None,
        page_type=found.page_type.kind,
        page_type_confidence=found.page_type.confidence,
    )


def _clean_text(page: RawPage, dump: str, models: CleanModels) -> Article | Dropped:
    kind = classify_text(dump, page.url, models.lines.page_types if models.lines else None)
    found = extract_dump(dump, normalize_code(page.language), models.lines, page.url, kind.kind)
    text = join_paragraphs(found.paragraphs)
    if _too_short(text):
        return _empty(page, "text dump", kind)
    stated = dump_meta(dump, found.title, found.paragraphs[0], page.url)
    return Article(
        url=page.url,
        title=found.title,
        text=text,
        mode="text",
        source_domain=source_domain(page.url),
        authors=stated.authors,
        published_at=not_after(stated.published_at, latest_day(page.fetched_at)),
        fetched_at=page.fetched_at,
        language=found.language or detect_language(text),
        page_type=kind.kind,
        page_type_confidence=kind.confidence,
    )


def clean(page: RawPage, models: CleanModels | None = None) -> Article | Dropped:
    """RawPage -> Article (html or text-dump mode) or Dropped('empty_after_cleaning', detail).
    `models` replaces the shipped learned models (the evaluation trains its own per fold)."""
    models = models or CleanModels()
    if isinstance(page.html, str) and page.html.strip():
        return _clean_html(page, page.html, models)
    if isinstance(page.text, str) and page.text.strip():
        return _clean_text(page, page.text, models)
    if page.html is not None or page.text is not None:
        return _empty(page, "page")
    return Dropped(
        "unsupported_content",
        f"The page {page.url} has neither html nor text; send one of the two fields.",
    )
