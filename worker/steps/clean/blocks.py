"""Text blocks of an HTML page and the features a learned classifier reads to keep the story.

Every block of directly held text (`structure.text_blocks`) gets a feature vector from three
independent sources: what trafilatura's main extractor kept (matched by text), the block's own
text (length, sentence ending, stop words, link density, boilerplate patterns) and its place in
the DOM (tag, furniture-named ancestors, the story container, position in the page, what its
neighbours are). The weights of those features are learned (`worker.steps.clean.model`), not
set by hand.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache, reduce
from operator import or_
from typing import Any

import numpy as np

from worker.steps.clean.boilerplate import SECTION_END, is_junk_line
from worker.steps.clean.language import detect_language, stopwords
from worker.steps.clean.normalize import normalize_line, text_size
from worker.steps.clean.structure import NOT_STORY, NOT_STORY_TAGS, Block, text_blocks

_WORD = re.compile(r"\w+", re.UNICODE)
_SENTENCE_END = re.compile(r"[.!?…。！？:;][\"'”’»)\]]*$")
_HEADINGS = frozenset("h1 h2 h3 h4 h5 h6".split())
_STORY_NAMES = re.compile(r"article|story|content|post|entry|body|text|main", re.I)
_KEY = 40
_ANCESTOR_DEPTH = 8
_NEIGHBOURS = 3

FEATURES = (
    "bias",
    "kept_by_cascade",
    "kept_by_precision",
    "kept_near",  # share of the neighbouring blocks trafilatura kept
    "kept_before",
    "kept_after",
    "in_container",
    "log_words",
    "story_like",
    "sentence_end",
    "stop_ratio",
    "link_density",
    "junk_pattern",
    "section_end",
    "tag_p",
    "tag_heading",
    "tag_list_item",
    "tag_cell",
    "tag_blockquote",
    "tag_div",
    "furniture_name",
    "furniture_tag",
    "story_name",
    "in_article",
    "position",
    "capital_ratio",
    "digit_ratio",
    "comma_rate",
    "in_json_body",
    "container_share",
)


@dataclass(frozen=True, slots=True)
class PageBlocks:
    """A page's candidate blocks (normalised text, document order) and their feature rows."""

    texts: list[str]
    features: np.ndarray  # shape (len(texts), len(FEATURES))


def squash(text: str) -> str:
    """Text without whitespace, lower case: what block and extractor texts are matched on."""
    return "".join(text.split()).lower()


def _kept(key: str, extracted: str) -> float:
    """1 when a block's squashed text is in the extractor's output (its start and end both
    found)."""
    if len(key) < 2 * _KEY:
        return float(key in extracted) if key else 0.0
    return 0.5 * (key[:_KEY] in extracted) + 0.5 * (key[-_KEY:] in extracted)


# What an element says about a block it holds: bits of one int, so that a block's nearest
# ancestors are read by OR-ing a few small ints instead of building a set of their tags.
_FURNITURE_NAMED = 1
_STORY_NAMED = 2
_LINK = 4  # an <a>
_QUOTE = 8  # a <blockquote>
_FURNITURE_TAG = 16  # a tag of NOT_STORY_TAGS
_ARTICLE = 32  # an <article> or <main>
_TAG_BITS = {
    "a": _LINK,
    "blockquote": _QUOTE,
    "article": _ARTICLE,
    "main": _ARTICLE,
    **dict.fromkeys(NOT_STORY_TAGS, _FURNITURE_TAG),
}


@lru_cache(maxsize=4096)
def _named(names: str) -> int:
    """Bits saying whether an element's class and id name it furniture, and story."""
    return _FURNITURE_NAMED * bool(NOT_STORY.search(names)) | _STORY_NAMED * bool(_STORY_NAMES.search(names))


class _Context:
    """What a block's nearest ancestors say (the element itself and up to 7 above it): whether
    one is named furniture or story, and which telling tags they have. Each element is read
    once per page, and its window of ancestors is its parent's window shifted by one."""

    def __init__(self) -> None:
        self._windows: dict[Any, tuple[int, ...]] = {}

    def _own(self, el: Any) -> int:
        tag = el.tag if isinstance(el.tag, str) else ""
        return _named(f"{el.get('class') or ''} {el.get('id') or ''}") | _TAG_BITS.get(tag, 0)

    def _window(self, el: Any) -> tuple[int, ...]:
        """The bits of the element and its nearest ancestors, nearest first (at most 8)."""
        found = self._windows.get(el)
        if found is not None:
            return found
        chain = []  # the element and its ancestors not read yet, nearest first
        node = el
        while node is not None and node not in self._windows:
            chain.append(node)
            node = node.getparent()
        window = self._windows[node] if node is not None else ()
        for node in reversed(chain):  # a loop, not recursion: trees can be very deep
            window = (self._own(node), *window[: _ANCESTOR_DEPTH - 1])
            self._windows[node] = window
        return window

    def of(self, el: Any) -> int:
        """The bits set on the element or any of its nearest ancestors."""
        return reduce(or_, self._window(el))


def _container(blocks: list[Block], kept: list[float]) -> Any | None:
    """The deepest element holding at least 80% of the kept text."""
    weight: dict[Any, float] = {}
    depth: dict[Any, int] = {}
    total = 0.0
    for block, share in zip(blocks, kept, strict=True):
        if share <= 0:
            continue
        size = share * len(block.text)
        total += size
        node, chain = block.element, []
        while node is not None:
            chain.append(node)
            node = node.getparent()
        for level, el in enumerate(reversed(chain)):
            weight[el] = weight.get(el, 0.0) + size
            depth[el] = level
    best = None
    for el, w in weight.items():
        if w >= 0.8 * total and (best is None or depth[el] > depth[best]):
            best = el
    return best


def _story_parts(container: Any) -> set[Any]:
    """The container and every element of its tag and class within its grandparent (a story
    body split around ads or media), with all their descendants."""
    parts = [container]
    name = container.get("class")
    parent = container.getparent()
    scope = parent.getparent() if parent is not None else None
    if name and scope is not None:
        parts.extend(el for el in scope.iter(container.tag) if el.get("class") == name)
    return {el for part in parts for el in part.iter()}


def page_blocks(tree: Any, extracted: str, second: str, json_body: str | None) -> PageBlocks:
    """Candidate blocks of a parsed page and their features. `extracted` is the text of
    trafilatura's default cascade on the page, `second` that of its precision settings (fast),
    `json_body` the JSON-LD articleBody when the page has one."""
    blocks = [b for b in text_blocks(tree) if _WORD.search(b.text)]
    if not blocks:
        return PageBlocks([], np.zeros((0, len(FEATURES))))
    texts = [normalize_line(b.text) for b in blocks]
    keys = [squash(t) for t in texts]
    extracted_key, second_key, json_key = squash(extracted), squash(second), squash(json_body or "")
    kept = [_kept(key, extracted_key) for key in keys]
    container = _container(blocks, kept)
    members = _story_parts(container) if container is not None and container.getparent() is not None else set()
    sample = " ".join(t for t, k in zip(texts, kept, strict=True) if k > 0) or " ".join(texts)
    stops = stopwords(detect_language(sample[:3000]))
    n = len(blocks)
    total_chars = sum(len(t) for t in texts) or 1
    container_chars = sum(len(t) for b, t in zip(blocks, texts, strict=True) if b.element in members)
    container_share = container_chars / total_chars if members else 0.0
    context = _Context()
    rows = []
    for k, (block, text) in enumerate(zip(blocks, texts, strict=True)):
        tokens = _WORD.findall(text)
        words = len(tokens)
        lo, hi = max(0, k - _NEIGHBOURS), min(n, k + _NEIGHBOURS + 1)
        near = sum(kept[lo:hi]) - kept[k]
        around = context.of(block.element)
        tag = block.element.tag if isinstance(block.element.tag, str) else ""
        ends = bool(_SENTENCE_END.search(text))
        rows.append((
            1.0,
            kept[k],
            _kept(keys[k], second_key) if second_key else 0.0,
            near / (hi - lo - 1) if hi - lo > 1 else 0.0,
            kept[k - 1] if k > 0 else 0.0,
            kept[k + 1] if k + 1 < n else 0.0,
            float(block.element in members),
            math.log1p(words),
            float(ends and text_size(text) >= 100),
            float(ends),
            sum(1 for t in tokens if t.lower() in stops) / words if stops and words else 0.0,
            1.0 if around & _LINK else min(1.0, block.link_chars / max(1, len(block.text))),
            float(is_junk_line(text)),
            float(bool(SECTION_END.match(text))),
            float(tag == "p"),
            float(tag in _HEADINGS),
            float(tag in ("li", "dd", "dt")),
            float(tag in ("td", "th")),
            float(bool(around & _QUOTE)),
            float(tag == "div"),
            float(bool(around & _FURNITURE_NAMED)),
            float(bool(around & _FURNITURE_TAG)),
            float(bool(around & _STORY_NAMED)),
            float(bool(around & _ARTICLE)),
            k / n,
            sum(map(str.isupper, [t[0] for t in tokens])) / words if words else 0.0,
            sum(map(str.isdigit, tokens)) / words if words else 0.0,
            text.count(",") / words if words else 0.0,
            _kept(keys[k], json_key) if json_key else 0.5,
            container_share,
        ))
    return PageBlocks(texts, np.array(rows, dtype=float))
