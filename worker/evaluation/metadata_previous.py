"""The page metadata reader the worker had before `clean.metadata` (first JSON-LD or meta
value, first `<time>`, first `<h1>`), kept unchanged so that `eval metadata` measures the
current reader's accuracy and CPU against it in the same run."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from worker.steps.clean.normalize import normalize_line

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


def _json_ld_items(scripts: list[Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for script in scripts:
        try:
            data = json.loads(script.text or "")
        except (ValueError, TypeError, RecursionError):
            continue
        stack = [data]
        while stack and len(items) < 200:
            node = stack.pop()
            if isinstance(node, list):
                stack.extend(node)
            elif isinstance(node, dict):
                items.append(node)
                if isinstance(node.get("@graph"), list):
                    stack.extend(node["@graph"])
    return items


def _names(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return _names(value.get("name"))
    if isinstance(value, list):
        return [n for v in value for n in _names(v)]
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


def read_meta(tree: Any, url: str | None = None) -> PageMeta:
    """The previous reader: canonical url, language, site name, authors, date, title and articleBody of a page."""
    metas: dict[str, str] = {}
    scripts: list[Any] = []
    canonical = h1 = title = stamp = byline = None
    for node in tree.iter("meta", "link", "script", "h1", "title", "time"):
        tag = node.tag
        if tag == "meta":
            key = (node.get("property") or node.get("name") or node.get("itemprop") or "").lower()
            equiv = (node.get("http-equiv") or "").lower()
            value = (node.get("content") or "").strip()
            if value:
                metas.setdefault(key or equiv, value)
        elif tag == "link":
            rel = (node.get("rel") or "").lower()
            if rel == "canonical" and canonical is None:
                canonical = (node.get("href") or "").strip() or None
            elif rel == "author" and byline is None:
                byline = node.text_content()
        elif tag == "script":
            if (node.get("type") or "").lower() == "application/ld+json":
                scripts.append(node)
        elif tag == "h1" and h1 is None:
            h1 = node.text_content()
        elif tag == "title" and title is None:
            title = node.text_content()
        elif tag == "time" and stamp is None:
            stamp = node.get("datetime")

    def first(*names: str) -> str | None:
        return next((metas[n] for n in names if n in metas), None)

    meta = PageMeta()
    meta.canonical_url = canonical or first("og:url")
    lang = tree.get("lang") if tree.tag == "html" else None
    meta.language = lang or first("og:locale", "language", "content-language")
    meta.site_name = first("og:site_name", "application-name")
    meta.title = first("og:title", "twitter:title")
    meta.published_at = first(
        "article:published_time",
        "og:article:published_time",
        "datepublished",
        "pubdate",
        "publish-date",
        "date",
    )
    author = first("author", "article:author", "byl")
    for item in _json_ld_items(scripts):
        kind = item.get("@type")
        kinds = kind if isinstance(kind, list) else [kind]
        if not any(isinstance(k, str) and _ARTICLE_TYPES.search(k) for k in kinds):
            continue
        if not meta.authors:
            meta.authors = _names(item.get("author"))
        if isinstance(item.get("datePublished"), str):
            meta.published_at = item["datePublished"]
        if isinstance(item.get("headline"), str) and not meta.title:
            meta.title = item["headline"]
        if isinstance(item.get("articleBody"), str) and len(item["articleBody"]) > 200:
            meta.body = item["articleBody"]
        if not meta.site_name:
            publisher = _names(item.get("publisher"))
            meta.site_name = publisher[0] if publisher else None
    if meta.title and (
        (meta.site_name and meta.title.casefold() == meta.site_name.casefold()) or len(meta.title.split()) <= 2
    ):
        meta.title = None  # the site's name, not the story's headline
    if not meta.title:
        fallbacks = [t for t in (normalize_line(h1 or ""), normalize_line(title or "")) if t]
        # A one- or two-word h1 beside a longer <title> is usually the site's logo.
        worded = [t for t in fallbacks if len(t.split()) > 2]
        meta.title = (worded or fallbacks)[0] if fallbacks else None
    if meta.title:
        meta.title = _strip_site_suffix(meta.title, meta.site_name, url)
    meta.published_at = meta.published_at or stamp
    if not meta.authors and not author and byline:
        author = normalize_line(byline)
        author = author if author and len(author) < 80 else None
    if not meta.authors and author and not author.startswith("http"):
        meta.authors = [a.strip() for a in re.split(r"\s*(?:,|;|\band\b)\s*", author) if a.strip()]
    meta.authors = [re.sub(r"^(by|von|par|por|di|oleh)\s+", "", a, flags=re.I) for a in meta.authors]
    return meta
