"""Reconcile trafilatura's paragraphs with the page structure.

Trafilatura's paragraphs are located among the page's text blocks; the story container is the
deepest element holding most of them (widened to elements of its tag and class nearby, for
bodies split around ads). Story-like blocks inside the container that trafilatura missed (bare text, split bodies)
are added in document order, and paragraphs found outside it (sidebar teasers) are dropped.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from worker.steps.clean.boilerplate import is_junk_line, is_markup
from worker.steps.clean.normalize import is_story_like, normalize_line, text_size

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
_KEY = 40


@dataclass(slots=True)
class Block:
    """A run of text that one block element holds directly, in document order."""

    element: Any
    text: str
    link_chars: int
    order: int


def _squash(text: str) -> str:
    return "".join(text.split()).lower()


_TEXT_NODES = (
    "//body//text()[normalize-space()][not(parent::script or parent::style or parent::noscript"
    " or parent::template or parent::button or parent::option or parent::textarea)]"
)


def text_blocks(tree: Any) -> list[Block]:
    """Blocks of directly held text (inline children included), in document order."""
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
        owner, linked = owner_of(holder)
        if owner is not current:
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


def _ancestors(el: Any) -> list[Any]:
    chain = []
    node = el
    while node is not None:
        chain.append(node)
        node = node.getparent()
    return chain


def _container(matched: list[tuple[Block, float]], share: float) -> Any | None:
    """The deepest element holding at least `share` of the located paragraphs' text."""
    total = sum(size for _, size in matched)
    weight: dict[Any, float] = {}
    depth: dict[Any, int] = {}
    for block, size in matched:
        chain = _ancestors(block.element)
        for level, node in enumerate(reversed(chain)):
            weight[node] = weight.get(node, 0.0) + size
            depth[node] = level
    best = None
    for node, w in weight.items():
        if w >= share * total and (best is None or depth[node] > depth[best]):
            best = node
    return best


def _story_block(block: Block, roots: set[Any]) -> bool:
    """A block trafilatura missed that reads as story: prose, few links, no furniture around;
    or the text of a post quoted in the story (an embedded tweet's blockquote)."""
    text = block.text
    if is_junk_line(text) or is_markup(text):
        return False
    chain = []
    node = block.element
    while node is not None and node not in roots:
        chain.append(node)
        node = node.getparent()
    if any(n.tag == "blockquote" for n in chain):
        return text_size(text) >= 30 and block.link_chars < 0.6 * len(text)
    if not is_story_like(text) or block.link_chars > 0.3 * len(text):
        return False
    for node in chain:
        tag = node.tag if isinstance(node.tag, str) else ""
        if tag in NOT_STORY_TAGS:
            return False
        if NOT_STORY.search(f"{node.get('class') or ''} {node.get('id') or ''}"):
            return False
    return True


def reconcile(tree: Any, paragraphs: list[str]) -> list[str]:
    """Trafilatura's paragraphs with missed story blocks of the container added and
    paragraphs outside it dropped."""
    if not paragraphs:
        return paragraphs
    blocks = text_blocks(tree)
    by_key: dict[str, list[Block]] = {}
    for block in blocks:
        by_key.setdefault(_squash(block.text[: 3 * _KEY])[:_KEY], []).append(block)
    keys = [_squash(p.lstrip("-•* ")[: 3 * _KEY])[:_KEY] for p in paragraphs]
    located: list[Block | None] = [
        by_key[k][0] if len(k) >= 12 and len(by_key.get(k, ())) == 1 else None for k in keys
    ]
    loose = [k for k, key in enumerate(keys) if located[k] is None and len(key) >= 24
             and key not in by_key]
    if loose:  # paragraphs that are part of a longer block (<br> breaks)
        squashed = [_squash(b.text) for b in blocks]
        starts = list(accumulate((len(x) for x in squashed), initial=0))
        whole = "".join(squashed)
        for k in loose:
            at = whole.find(keys[k])
            if at >= 0:
                located[k] = blocks[bisect_right(starts, at) - 1]
    matched = [(b, text_size(p)) for b, p in zip(located, paragraphs, strict=True) if b is not None]
    total = sum(text_size(p) for p in paragraphs)
    if not matched or sum(size for _, size in matched) < 0.5 * total:
        return paragraphs
    container = _container(matched, 0.8)
    if container is None or container.getparent() is None:
        return paragraphs
    members = set(container.iter())
    roots = {container, *_split_parts(container)}
    for part in roots:
        members.update(part.iter())
    for k, key in enumerate(keys):  # repeated text (a lede also used as caption): take the copy
        if located[k] is None and len(key) >= 12 and key in by_key:  # inside the container
            inner = [b for b in by_key[key] if b.element in members]
            located[k] = inner[0] if inner else by_key[key][0]
    inside = [b is not None and b.element in members for b in located]
    outside_size = sum(
        text_size(p) for p, b, ok in zip(paragraphs, located, inside, strict=True)
        if b is not None and not ok
    )
    drop_outside = outside_size < 0.25 * total
    used = {id(b) for b in located if b is not None}
    known = "".join(_squash(p) for p in paragraphs)
    extra = [
        candidate for candidate in blocks
        if id(candidate) not in used
        and candidate.element in members
        and _story_block(candidate, roots)
        and _squash(candidate.text[: 3 * _KEY])[:_KEY] not in known
    ]
    result: list[str] = []
    for paragraph, found, ok in zip(paragraphs, located, inside, strict=True):
        if found is not None:
            while extra and extra[0].order < found.order:
                result.append(normalize_line(extra.pop(0).text))
            if drop_outside and not ok and _teaser(found):
                continue
        result.append(paragraph)
    result.extend(normalize_line(b.text) for b in extra)
    return result


def _split_parts(container: Any) -> list[Any]:
    """Elements of the container's tag and class within its grandparent: the other parts of a
    story body split around ads or media (same markup, separate containers)."""
    name = container.get("class")
    parent = container.getparent()
    scope = parent.getparent() if parent is not None else None
    if not name or scope is None:
        return []
    return [
        el for el in scope.iter(container.tag)
        if el is not container and el.get("class") == name
    ]


def _teaser(block: Block) -> bool:
    """A paragraph outside the story container that looks like furniture: inside a link, or in
    an element named like a sidebar, related list or promotion."""
    node = block.element
    for _ in range(6):
        if node is None:
            break
        if node.tag == "a" or NOT_STORY.search(f"{node.get('class') or ''} {node.get('id') or ''}"):
            return True
        node = node.getparent()
    return False
