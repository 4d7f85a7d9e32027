"""Article text from HTML: learned block selection; page metadata comes from `clean.metadata`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
from worker.steps.clean.metadata import PageMeta, read_meta
from worker.steps.clean.model import LinearModel, shipped
from worker.steps.clean.normalize import normalize_line, split_lines


@dataclass(frozen=True, slots=True)
class HtmlArticle:
    """What an HTML page yields: the story's paragraphs and its metadata."""

    paragraphs: list[str]
    meta: PageMeta


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


def html_candidates(markup: str, url: str | None) -> HtmlCandidates | None:
    """Candidate blocks and metadata of an HTML page; None when it cannot be parsed.

    Two trafilatura runs give two independent votes per block: its default cascade (main
    extractor checked against readability and jusText) and its precision settings (main
    extractor only, fast)."""
    tree = parse_html(markup)
    if tree is None:
        return None
    drop_code(tree)
    meta = read_meta(tree, url)
    cascade = "\n".join(_trafilatura(tree, url, "balanced"))
    precise = "\n".join(_trafilatura(tree, url, "precision"))
    return HtmlCandidates(page_blocks(tree, cascade, precise, meta.body), meta)


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
    return HtmlArticle(select_paragraphs(found.blocks, model or block_model()), found.meta)
