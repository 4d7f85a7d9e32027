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


def text_blocks(tree: Any) -> list[Block]:
    """Blocks of directly held text (inline children included), in document order; a line
    break (<br>) ends a block too.

    The text nodes are those of `//body//text()` that hold more than XPath's white space and
    are not inside a script, style, button or form field, read in one walk over the body's
    elements: an element's text when it opens, its tail when it closes (a comment's tail where
    it stands). A node belongs to the nearest block element holding it, and is link text when
    a link lies between the two."""
    blocks: list[Block] = []
    current: Any = None
    parts: list[str] = []
    links = 0

    def add(text: str, owner: Any, linked: bool, after_break: bool = False) -> None:
        nonlocal current, parts, links
        if owner is not current or after_break:
            if current is not None:
                blocks.append(Block(current, " ".join("".join(parts).split()), links, len(blocks)))
            current, parts, links = owner, [], 0
        parts.append(text)
        if linked:
            links += len(text)

    for body in tree.iter("body"):
        if next(body.iterancestors("body"), None) is not None:
            continue  # read with the body holding it
        open_elements: list[tuple[Any, Any, bool]] = []  # (element, its block, inside a link)
        for event, el in etree.iterwalk(body, events=("start", "end", "comment", "pi")):
            tag = el.tag if isinstance(el.tag, str) else ""
            if event == "start":
                if not open_elements or tag in BLOCK_TAGS:
                    entry = (el, el, False)
                else:
                    _, owner, linked = open_elements[-1]
                    entry = (el, owner, linked or tag == "a")
                open_elements.append(entry)
                text = el.text if tag else None
                if text and tag not in _NO_TEXT and text.strip(_XPATH_SPACE):
                    add(text, entry[1], entry[2])
                continue
            if event == "end":
                open_elements.pop()
            tail = el.tail  # a comment's or instruction's tail is text too
            if open_elements and tail and tail.strip(_XPATH_SPACE):  # the body's own tail is outside it
                holder, owner, linked = open_elements[-1]
                if holder.tag not in _NO_TEXT:
                    add(tail, owner, linked, tag == "br")
    if current is not None and parts:
        blocks.append(Block(current, " ".join("".join(parts).split()), links, len(blocks)))
    return blocks
