"""The page's text blocks in document order, and the names and tags of page furniture."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

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


_TEXT_NODES = (
    "//body//text()[normalize-space()][not(parent::script or parent::style or parent::noscript"
    " or parent::template or parent::button or parent::option or parent::textarea)]"
)


def text_blocks(tree: Any) -> list[Block]:
    """Blocks of directly held text (inline children included), in document order; a line
    break (<br>) ends a block too."""
    blocks: list[Block] = []
    owners: dict[Any, tuple[Any, bool]] = {}

    def owner_of(el: Any) -> tuple[Any, bool]:
        found = owners.get(el)
        if found is None:
            tag = el.tag if isinstance(el.tag, str) else ""
            parent = el.getparent()
            if tag in BLOCK_TAGS or parent is None:
                found = (el, False)
            else:
                owner, linked = owner_of(parent)
                found = (owner, linked or tag == "a")
            owners[el] = found
        return found

    current: Any = None
    parts: list[str] = []
    links = 0
    try:
        nodes = tree.xpath(_TEXT_NODES)
    except Exception:  # lxml refuses some pathological trees
        return blocks
    for node in nodes:
        holder = node.getparent()
        if holder is None:
            continue
        if node.is_tail:
            holder = holder.getparent()
            if holder is None:
                continue
        owner, linked = owners.get(holder) or owner_of(holder)  # most holders are known already
        after_break = node.is_tail and node.getparent().tag == "br"
        if owner is not current or after_break:
            if current is not None:
                text = " ".join("".join(parts).split())
                blocks.append(Block(current, text, links, len(blocks)))
            current, parts, links = owner, [], 0
        parts.append(str(node))
        if linked:
            links += len(node)
    if current is not None and parts:
        text = " ".join("".join(parts).split())
        blocks.append(Block(current, text, links, len(blocks)))
    return blocks
