"""The page's text blocks in document order, and the names and tags of page furniture."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from lxml import etree

BLOCK_TAGS = frozenset(
    "p div li ul ol h1 h2 h3 h4 h5 h6 blockquote pre td th tr table tbody thead dd dt dl "
    "figcaption figure section article main aside header footer nav form address center "
    "details summary fieldset body".split()
)
NOT_STORY = re.compile(
    r"comment|caption|credit|related|share|social|newsletter|subscri|promo|advert|\bads?\b"
    r"|sponsor|byline|author|footer|sidebar|widget|nav|menu|breadcrumb|tags?\b|teaser|signup"
    r"|cookie|consent|popup|modal|recommend|trending|popular|disclaimer",
    re.I,
)
NOT_STORY_TAGS = frozenset("figure figcaption aside nav footer header form li td th".split())


@dataclass(slots=True)
class Block:
    """A run of text that one block element holds directly, in document order."""

    element: Any
    text: str
    link_chars: int
    order: int


# Text in these is not shown as the page's text (the text inside them; their tails are).
_NO_TEXT = frozenset({"script", "style", "noscript", "template", "button", "option", "textarea"})
_XPATH_SPACE = " \t\n\r"  # what XPath's normalize-space() strips


# A body's text nodes holding more than XPath's white space, in document order (a nested
# body's once): read in C, each with the element it is the text or the tail of.
_SHOWN_TEXTS = etree.XPath("descendant-or-self::body//text()[normalize-space()]")


def text_blocks(tree: Any) -> list[Block]:
    """Blocks of directly held text (inline children included), in document order; a line
    break (<br>) ends a block too.

    The text nodes are those of `//body//text()` that hold more than XPath's white space and
    are not held directly by a script, style, button or form field (an element's text is held
    by the element, its tail by its parent). A node belongs to the nearest block element holding
    it, and is link text when a link lies between the two."""
    blocks: list[Block] = []
    owners: dict[Any, tuple[Any, bool]] = {}  # element -> (its block, inside a link below it)
    current: Any = None
    parts: list[str] = []
    links = 0
    for text in _SHOWN_TEXTS(tree):
        el = text.getparent()
        if text.is_tail:
            holder, after_break = el.getparent(), el.tag == "br"
        else:
            holder, after_break = el, False
        if holder.tag in _NO_TEXT:
            continue
        found = owners.get(holder)
        if found is None:
            found = _owner(holder, owners)
        owner, linked = found
        if owner is not current or after_break:
            if current is not None:
                blocks.append(Block(current, " ".join("".join(parts).split()), links, len(blocks)))
            current, parts, links = owner, [], 0
        parts.append(text)
        if linked:
            links += len(text)
    if current is not None and parts:
        blocks.append(Block(current, " ".join("".join(parts).split()), links, len(blocks)))
    return blocks


def _owner(el: Any, owners: dict[Any, tuple[Any, bool]]) -> tuple[Any, bool]:
    """The nearest block element holding `el` (itself when it is one; a body is), and whether
    a link lies between the two (`el` included), remembered in `owners` for `el` and the
    elements between."""
    pending = []
    node = el
    while True:
        if node.tag in BLOCK_TAGS:
            found = owners[node] = (node, False)
            break
        pending.append(node)
        node = node.getparent()
        known = owners.get(node)
        if known is not None:
            found = known
            break
    for item in reversed(pending):  # a loop, not recursion: trees can be very deep
        found = owners[item] = (found[0], found[1] or item.tag == "a")
    return found
