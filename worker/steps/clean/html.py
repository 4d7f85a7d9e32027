"""Main text from HTML: learned block selection over one parse; page metadata comes from
`clean.metadata`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from lxml import etree
from lxml import html as lxml_html

from worker.steps.clean.blocks import PageBlocks, page_blocks
from worker.steps.clean.boilerplate import (
    LEAD_IN_INLINE,
    SECTION_END,
    is_junk_line,
    is_lead_in,
    is_markup,
)
from worker.steps.clean.metadata import PageMeta, read_meta
from worker.steps.clean.page_type import PageType, classify_tree
from worker.steps.clean.trees import BlockModel, shipped_blocks


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
            try:
                el.drop_tree()  # its tail text stays where it was
            except ValueError:  # lxml keeps control characters it parsed but will not set them
                _without_control_characters(el)
                el.drop_tree()
    return tree


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _without_control_characters(el: Any) -> None:
    """`el`'s tail and the text it joins when `el` is dropped (its previous sibling's tail, or
    its parent's text), without the control characters lxml refuses to set."""
    el.tail = _CONTROL.sub("", el.tail) if el.tail else el.tail
    previous = el.getprevious()
    if previous is not None:
        previous.tail = _CONTROL.sub("", previous.tail) if previous.tail else previous.tail
    else:
        parent = el.getparent()
        parent.text = _CONTROL.sub("", parent.text) if parent.text else parent.text


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


@dataclass(frozen=True, slots=True)
class HtmlCandidates:
    """A parsed page's candidate blocks with their features, and its metadata."""

    blocks: PageBlocks
    meta: PageMeta
    page_type: PageType


def html_candidates(markup: str, url: str | None, latest: date | None = None) -> HtmlCandidates | None:
    """Candidate blocks and metadata of an HTML page (parsed once; no date after `latest`, the
    day it was read), and its page type from the same parse; None when it cannot be parsed."""
    tree = parse_html(markup)
    if tree is None:
        return None
    drop_code(tree)
    kind = classify_tree(tree, url)
    meta = read_meta(tree, url, latest)
    return HtmlCandidates(page_blocks(tree, url), meta, kind)


def select_paragraphs(blocks: PageBlocks, model: BlockModel) -> list[str]:
    """The blocks the model keeps (`BlockModel.keep`), in document order, past the paragraph
    filter when the model was trained with it (`filter_paragraphs`), else past the junk-line
    filter (`drop_junk`)."""
    keep = model.keep(blocks)
    kept = join_row_cells(blocks, [k for k, chosen in enumerate(keep) if chosen])
    return filter_paragraphs(kept) if model.filter_after else drop_junk(kept)


def join_row_cells(blocks: PageBlocks, kept: list[int]) -> list[str]:
    """The texts of the kept blocks, in order, the kept cells of one table row joined into one
    line (`PageBlocks.table_rows`): a row of a table is one line of the page's text, as a text
    dump of the page shows it, not one line per value."""
    rows = blocks.table_rows
    out: list[str] = []
    last = -1
    for k in kept:
        row = rows[k] if rows else -1
        if row >= 0 and row == last:
            out[-1] = f"{out[-1]} {blocks.texts[k]}"
        else:
            out.append(blocks.texts[k])
        last = row
    return out


def drop_junk(paragraphs: list[str]) -> list[str]:
    """The paragraphs without whole-line site furniture (share prompts, newsletter boxes,
    cookie notices: `boilerplate.is_junk_line`) and leaked markup, in order."""
    return [p for p in paragraphs if not is_junk_line(p.lstrip("-•* ").strip()) and not is_markup(p)]


def block_model() -> BlockModel:
    """The shipped block model (`worker/data/clean-blocks.lgb.gz`)."""
    return shipped_blocks()


def extract_html(
    markup: str, url: str | None, model: BlockModel | None = None, latest: date | None = None,
) -> HtmlArticle | None:
    """Main-content paragraphs and metadata of an HTML page (no date after `latest`, the day it
    was read); None when it cannot be parsed.

    Each text block of the page is kept or dropped by a learned model (`model`, by default the
    shipped one) reading the block's text, its place in the DOM, the elements around it and
    the page as a whole (`clean.blocks`).
    """
    found = html_candidates(markup, url, latest)
    if found is None:
        return None
    return HtmlArticle(select_paragraphs(found.blocks, model or block_model()), found.meta, found.page_type)
