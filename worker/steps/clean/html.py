"""Article text and metadata from HTML: learned block selection plus page metadata (JSON-LD, meta tags)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import trafilatura
from lxml import etree
from lxml import html as lxml_html

from worker.steps.clean.blocks import FEATURES, PageBlocks, page_blocks
from worker.steps.clean.boilerplate import (
    LEAD_IN_INLINE,
    SECTION_END,
    is_junk_line,
    is_lead_in,
    is_markup,
)
from worker.steps.clean.model import LinearModel, shipped
from worker.steps.clean.normalize import normalize_line, split_lines
from worker.steps.clean.page_type import PageType, classify_tree

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


@dataclass(frozen=True, slots=True)
class HtmlArticle:
    """What an HTML page yields: the story's paragraphs and its metadata."""

    paragraphs: list[str]
    meta: PageMeta
    page_type: PageType


_PARSER = lxml_html.HTMLParser(
    collect_ids=False,
    default_doctype=False,
    encoding="utf-8",
    remove_comments=True,
    remove_pis=True,
)
# lxml.html's own lookup picks each element's class in Python (forms, inputs, labels get
# classes of their own), a call for every element object made; the trafilatura runs make
# thousands a page. One class for every element is picked in C, and no step here
# uses the form classes' extras.
_PARSER.set_element_class_lookup(
    etree.ElementDefaultClassLookup(
        element=lxml_html.HtmlElement,
        comment=lxml_html.HtmlComment,
        pi=lxml_html.HtmlProcessingInstruction,
        entity=lxml_html.HtmlEntity,
    )
)


def parse_html(markup: str) -> Any | None:
    """The document tree of the markup (a bare fragment gets its html and body), or None when
    it cannot be parsed."""
    try:
        return lxml_html.document_fromstring(markup, parser=_PARSER)
    except ValueError:  # a str carrying an XML encoding declaration
        pass
    except Exception:  # lxml raises many types on junk input (empty document...)
        return None
    try:
        return lxml_html.document_fromstring(markup.encode("utf-8", "surrogatepass"), parser=_PARSER)
    except Exception:
        return None


def drop_code(tree: Any) -> Any:
    """The tree without its scripts and style sheets (JSON-LD kept: it is page data): text no
    step reads, which every later pass over the tree would otherwise walk again."""
    for el in list(tree.iter("script", "style")):
        if el.tag == "script" and (el.get("type") or "").strip().lower() == "application/ld+json":
            continue
        if el.getparent() is not None:
            el.drop_tree()  # its tail text stays where it was
    return tree


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
    """Canonical url, language, site name, authors, date, title and articleBody of a page."""
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


def filter_paragraphs(paragraphs: list[str]) -> list[str]:
    """Drop share prompts, newsletter boxes, 'Read more:' blocks and trailing related lists."""
    kept: list[str] = []
    skip_headlines = skip_items = False
    for paragraph in paragraphs:
        item = paragraph.startswith(("- ", "• ", "* "))
        text = paragraph.lstrip("-•* ").strip()
        if SECTION_END.match(text) and len(kept) >= 3:
            break
        if is_lead_in(text):
            skip_headlines = skip_items = True
            continue
        if LEAD_IN_INLINE.match(text) and len(text.split()) <= 25:
            skip_items = True
            continue
        if skip_headlines and len(text.split()) <= 20 and not text.endswith("."):
            continue
        if skip_items and item and len(text.split()) <= 20:
            continue
        skip_headlines = skip_items = False
        if is_junk_line(text) or is_markup(text):
            continue
        kept.append(paragraph)
    return kept


def _words(text: str) -> int:
    return len(text.split())


def _trafilatura(tree: Any, url: str | None, focus: str) -> list[str]:
    """Trafilatura's paragraphs: 'precision' and 'recall' run fast (main extractor only),
    'balanced' adds trafilatura's own fallbacks (readability, jusText)."""
    try:
        doc = trafilatura.bare_extraction(
            tree,
            url=url,
            favor_precision=focus == "precision",
            favor_recall=focus == "recall",
            include_comments=False,
            with_metadata=False,
            fast=focus != "balanced",
        )
    except Exception:  # trafilatura can fail on pathological trees
        return []
    text = getattr(doc, "text", None) or ""
    return [p for p in (normalize_line(x) for x in split_lines(text)) if p]


@dataclass(frozen=True, slots=True)
class HtmlCandidates:
    """A parsed page's candidate blocks with their features, and its metadata."""

    blocks: PageBlocks
    meta: PageMeta
    page_type: PageType


def html_candidates(markup: str, url: str | None) -> HtmlCandidates | None:
    """Candidate blocks and metadata of an HTML page; None when it cannot be parsed.

    Two trafilatura runs give two independent votes per block: its default cascade (main
    extractor checked against readability and jusText) and its precision settings (main
    extractor only, fast). The page's type is read from the same parse."""
    tree = parse_html(markup)
    if tree is None:
        return None
    drop_code(tree)
    kind = classify_tree(tree, url)
    meta = read_meta(tree, url)
    cascade = "\n".join(_trafilatura(tree, url, "balanced"))
    precise = "\n".join(_trafilatura(tree, url, "precision"))
    return HtmlCandidates(page_blocks(tree, cascade, precise, meta.body), meta, kind)


def select_paragraphs(blocks: PageBlocks, model: LinearModel) -> list[str]:
    """The blocks the model keeps, in document order, past the boilerplate filter."""
    keep = model.probabilities(blocks.features) >= model.threshold
    return filter_paragraphs([text for text, kept in zip(blocks.texts, keep, strict=True) if kept])


def block_model() -> LinearModel:
    """The shipped block classifier (`worker/data/clean-blocks.json`)."""
    return shipped("blocks", FEATURES)


def extract_html(markup: str, url: str | None, model: LinearModel | None = None) -> HtmlArticle | None:
    """Story paragraphs and metadata of an HTML page; None when it cannot be parsed.

    Each text block of the page is kept or dropped by a learned classifier (`model`, by default
    the shipped one) reading trafilatura's two votes, the block's text and its place in the DOM.
    """
    found = html_candidates(markup, url)
    if found is None:
        return None
    return HtmlArticle(select_paragraphs(found.blocks, model or block_model()), found.meta, found.page_type)
