"""Text blocks of an HTML page and the features a learned model reads to keep the main content.

Every block of directly held text (`structure.text_blocks`) gets one feature row from four
sources, all read from the one parsed tree: the block's own text (length, sentence ending,
stop words, link density, boilerplate patterns), its place in the DOM (tag, furniture- and
content-named ancestors, depth, position, how many siblings repeat its ancestors' shape), the
elements around it (the text and links held by its nearest ancestors, the densest container of
the page, its neighbours) and the page as a whole (its size, link share, URL words, the
schema.org and OpenGraph types it declares). What a forum, a listing or a product page keeps is
learned from those features by a gradient-boosted model (`worker.steps.clean.trees`), not set by
hand per site or per kind of page.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from itertools import chain as chain_of_lists
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from worker.steps.clean.boilerplate import SECTION_END, CaselessPattern, is_junk_line
from worker.steps.clean.language import detect_language, stopwords
from worker.steps.clean.normalize import normalize_line
from worker.steps.clean.structure import NOT_STORY, Block, text_blocks
from worker.steps.common import CACHED_TEXT_CHARS, short_text_cache

_WORD = re.compile(r"\w+", re.UNICODE)
_SENTENCE_END = re.compile(r"[.!?…。！？:;][\"'”’»)\]]*$")
_DEPTH = 8  # ancestors read for names and tags
_LEVELS = 4  # ancestors whose text and links are features
_NEIGHBOURS = 3

# Names in class and id attributes (one bit each), and tags of ancestors (one bit each).
_NAMES = {
    "furniture": NOT_STORY,
    "story": re.compile(r"article|story|content|post|entry|body|text|main", re.I),
    "comment": re.compile(r"comment|repl(y|ies)|discuss|respon", re.I),
    "forum": re.compile(r"message|thread|topic|forum|answer|question|bbcode|postbody", re.I),
    "product": re.compile(r"product|price|cart|sku|buy|shop|offer|variant", re.I),
    "card": re.compile(r"card|tile|item|teaser|grid|listing|result|excerpt|summary", re.I),
    "menu": re.compile(r"menu|nav|breadcrumb|sidebar|toc|footer|header|masthead", re.I),
    "doc": re.compile(r"doc|markdown|prose|wiki|manual|highlight|code|syntax", re.I),
    "hidden": re.compile(r"hidden|sr-only|visually-hidden|screen-reader|offscreen|d-none", re.I),
}
_TAGS = {
    "a": "link", "article": "article", "main": "main", "nav": "nav", "header": "header",
    "footer": "footer", "aside": "aside", "form": "form", "li": "list", "ul": "list", "ol": "list",
    "table": "table", "td": "table", "th": "table", "pre": "code", "code": "code",
    "blockquote": "quote", "figure": "figure", "figcaption": "figure", "section": "section",
    "button": "form", "label": "form", "select": "form", "dl": "list", "dd": "list", "dt": "list",
}
_NAMES_CASELESS = {name: CaselessPattern(pattern.pattern) for name, pattern in _NAMES.items()}  # the same, faster
_NAME_BITS = {name: 1 << k for k, name in enumerate(_NAMES)}
_TAG_BITS = {kind: 1 << (len(_NAMES) + k) for k, kind in enumerate(dict.fromkeys(_TAGS.values()))}
_LINK_BIT = _TAG_BITS["link"]
_OWN_TAGS = ("p", "div", "span", "li", "td", "pre", "blockquote", "dd", "a", "section", "article")

# Page-level words of the url and types the page declares.
_URL_WORDS = {
    "url_tag": re.compile(r"/(tags?|topics?|categor(y|ies)|section|archives?|author)/", re.I),
    "url_forum": re.compile(r"forum|thread|topic|community|discuss|/t/|/questions?/|board", re.I),
    "url_docs": re.compile(r"docs?\b|documentation|/api/|reference|manual|guide|/man|/wiki/|readthedocs", re.I),
    "url_product": re.compile(r"/products?/|/p/|/dp/|/item|/app/|sku|/buy", re.I),
    "url_shop": re.compile(r"/collections?/|/shop|/store|/catalog|/c/|/category|/browse", re.I),
    "url_news": re.compile(r"/(news|blog|articles?|posts?|stories|press)(/|$)", re.I),
    "url_dated": re.compile(r"/(19|20)\d\d/|\d{4}-\d\d-\d\d", re.I),
    "url_page": re.compile(r"[?&](page|p|sort|q|s)=|/page/\d", re.I),
}
_DECLARED = {
    "declares_article": re.compile(r"article|blogposting|reportage|report\b", re.I),
    "declares_product": re.compile(r"\bproduct\b|\boffer\b|aggregateoffer|\"product", re.I),
    "declares_list": re.compile(r"itemlist|collectionpage|searchresultspage|offercatalog", re.I),
    "declares_forum": re.compile(r"discussionforumposting|qapage|question|\"comment", re.I),
    "declares_docs": re.compile(r"techarticle|apireference|howto|softwaresourcecode", re.I),
    "declares_service": re.compile(r"\bservice\b|organization|localbusiness|faqpage|softwareapplication", re.I),
    "declares_webpage": re.compile(r"\bwebpage\b|\bwebsite\b", re.I),
}

PAGE_FEATURES = (
    "page_log_blocks", "page_log_words", "page_link_share", "page_list_share", "page_p_share",
    "page_table_share", "page_code_share", "page_heading_count", "page_repeat_share",
    "page_best_share", "page_sentence_share", "url_depth", "url_is_root", *_URL_WORDS, *_DECLARED,
)
BLOCK_FEATURES = (
    "log_words", "log_chars", "sentence_end", "stop_ratio", "link_density", "in_link",
    "junk_pattern", "section_end", "capital_ratio", "digit_ratio", "comma_rate", "heading_level",
    *(f"tag_{t}" for t in _OWN_TAGS),
    *(f"named_{n}" for n in _NAMES), *(f"named_{n}_near" for n in _NAMES),
    *(f"under_{t}" for t in _TAG_BITS),
    "log_depth", "position", "char_position",
    *(f"up{k}_share" for k in range(1, _LEVELS + 1)),
    *(f"up{k}_link" for k in range(1, _LEVELS + 1)),
    *(f"up{k}_blocks" for k in range(1, _LEVELS + 1)),
    "log_repeat", "repeat_words", "in_best", "best_depth_gap",
    "near_words", "near_link", "near_sentence", "prev_words", "next_words", "prev_heading",
)
# How often a block's text repeats on the page (`repeat_columns`): a page that shows a paragraph
# twice (for two screen sizes, in a hidden copy, in a teaser of itself) holds its words twice,
# and the metric counts words; the labels of such copies say which the reference holds
# (`clean_training.repeat_labels`).
REPEAT_FEATURES = ("text_repeats", "text_seen_before")
FEATURES = BLOCK_FEATURES + PAGE_FEATURES + REPEAT_FEATURES


@dataclass(frozen=True, slots=True)
class PageBlocks:
    """A page's candidate blocks (normalised text, document order) and their feature rows."""

    texts: list[str]
    features: np.ndarray  # shape (len(texts), len(FEATURES))
    # per block, a page-wide number for each of its `_LEVELS` nearest ancestors (parent first;
    # blocks with the same number at a level share that ancestor): the context trees' groups
    ancestors: np.ndarray = field(default_factory=lambda: np.zeros((0, _LEVELS), dtype=np.intp))
    # per block, a page-wide number of the table row it is one cell of (-1: not a table cell):
    # the cells of a row the cleaner keeps are one line of its text, as a text dump shows them
    table_rows: tuple[int, ...] = ()


@short_text_cache(maxsize=8192)
def _named(names: str) -> int:
    """Bits of the `_NAMES` patterns an element's class and id match: no pattern matches white
    space, so those of its words (`_named_word`; pages and sites share their class words far
    more than their whole class names)."""
    if len(names) > CACHED_TEXT_CHARS:  # a long list of words: each pattern once over the whole
        return _named_word(names)  # (not cached: no long list of a page's words fills the cache)
    bits = 0
    for word in names.split():
        bits |= _named_word(word)
    return bits


@short_text_cache(maxsize=16384)
def _named_word(word: str) -> int:
    """Bits of the `_NAMES` patterns one word of a class or id (or a whole text) matches."""
    bits = 0
    for name, pattern in _NAMES_CASELESS.items():
        if pattern.search(word):
            bits |= _NAME_BITS[name]
    return bits


# the bits of each tag `_TAGS` names (a tag it does not name has none)
_OWN_TAG_BITS = {tag: _TAG_BITS[kind] for tag, kind in _TAGS.items()}


class _Tree:
    """Per-element facts read once per page: each element's number (in the order first met) and
    ancestor chain as numbers (nearest first), and its name/tag bits."""

    def __init__(self) -> None:
        self.numbers: dict[Any, list[int]] = {}  # an element's chain as element numbers
        self.elements: list[Any] = []
        self.bits: list[int] = []

    def chain(self, el: Any) -> list[int]:
        """The numbers of the element and its ancestors, nearest first."""
        numbers = self.numbers
        found = numbers.get(el)
        if found is not None:
            return found
        pending = []
        node = el
        while node is not None and node not in numbers:
            pending.append(node)
            node = node.getparent()
        above = numbers[node] if node is not None else []
        elements, bits = self.elements, self.bits
        tag_bits = _OWN_TAG_BITS
        for item in reversed(pending):  # a loop, not recursion: trees can be very deep
            above = [len(elements), *above]
            numbers[item] = above
            elements.append(item)
            # its name bits (`_named` of its class and id; none without either) and tag bits
            cls, ident = item.get("class"), item.get("id")
            own = tag_bits.get(item.tag, 0)
            bits.append(_named(f"{cls or ''} {ident or ''}") | own if cls or ident else own)
        return above


def _signature(el: Any) -> tuple[Any, str]:
    cls = el.get("class")
    return el.tag, cls.split(" ", 1)[0] if cls else ""


def _repeats(el: Any, parents: dict[Any, Counter[tuple[Any, str]]]) -> int:
    """How many of the element's siblings (itself included) share its tag and first class."""
    parent = el.getparent()
    if parent is None or len(parent) == 1:  # an only child repeats no one
        return 1
    shapes = parents.get(parent)
    if shapes is None:
        shapes = parents[parent] = Counter(
            [(sib.tag, cls.split(" ", 1)[0] if (cls := sib.get("class")) else "") for sib in parent]
        )
    return shapes[_signature(el)]


def page_signals(tree: Any, url: str | None) -> dict[str, float]:
    """Page-level facts that do not depend on the blocks: URL words and declared types."""
    signals: dict[str, float] = {}
    try:
        parts = urlsplit(url or "")
        path = parts.path or "/"
        query = parts.query
    except ValueError:
        path, query = "/", ""
    location = f"{path}?{query}" if query else path
    for name, pattern in _URL_WORDS.items():
        signals[name] = float(bool(pattern.search(location)))
    segments = [s for s in path.split("/") if s]
    signals["url_depth"] = float(len(segments))
    signals["url_is_root"] = float(not segments and not query)
    declared = []
    for node in tree.iter("script", "meta"):
        if node.tag == "script":
            if (node.get("type") or "").strip().lower() == "application/ld+json":
                declared.extend(re.findall(r'"@type"\s*:\s*(\[[^\]]*\]|"[^"]*")', (node.text or "")[:20000]))
        elif (node.get("property") or node.get("name") or "").lower() == "og:type":
            declared.append(node.get("content") or "")
        if len(declared) > 50:
            break
    types = " ".join(declared)
    for name, pattern in _DECLARED.items():
        signals[name] = float(bool(pattern.search(types)))
    return signals


def _logs(values: Any, log: Any = math.log1p) -> np.ndarray:
    """`log` of each value, by the math module (numpy's vectorised logs may differ from it in
    the last bit, and the models were trained on these)."""
    return np.fromiter(map(log, np.asarray(values, dtype=float).tolist()), dtype=float, count=len(values))


def page_blocks(tree: Any, url: str | None) -> PageBlocks:
    """Candidate blocks of a parsed page (scripts and styles already dropped) and their
    feature rows, in `FEATURES` order."""
    blocks: list[Block] = [b for b in text_blocks(tree) if _WORD.search(b.text)]
    if not blocks:
        return PageBlocks([], np.zeros((0, len(FEATURES))))
    texts = [normalize_line(b.text) for b in blocks]
    tokens = [_WORD.findall(t) for t in texts]
    words = np.array([len(t) for t in tokens], dtype=float)
    link_share = np.array([min(1.0, b.link_chars / max(1, len(b.text))) for b in blocks])
    ends = np.array([bool(_SENTENCE_END.search(t)) for t in texts], dtype=float)
    facts = _Tree()
    numbers = [facts.chain(b.element) for b in blocks]
    n = len(blocks)
    # What each element holds below it (sums in block order, as adding block by block would):
    # words, link words and blocks.
    depths = np.fromiter(map(len, numbers), dtype=np.intp, count=n)
    flat = np.fromiter(chain_of_lists.from_iterable(numbers), dtype=np.intp, count=int(depths.sum()))
    size = len(facts.elements)
    held_words = np.bincount(flat, weights=np.repeat(words, depths), minlength=size)
    held_links = np.bincount(flat, weights=np.repeat(words * link_share, depths), minlength=size)
    held_blocks = np.bincount(flat, minlength=size)
    # A readability-like content score: blocks of sentences with few links add to their parent
    # in full and to their grandparent by half.
    score: dict[int, float] = {}
    for chain, w, share, end in zip(numbers, words, link_share, ends, strict=True):
        if w >= 5 and share < 0.5:
            gain = (1.0 + min(3.0, w / 20.0)) * (1.0 + end)
            for level, number in enumerate(chain[1:3]):
                score[number] = score.get(number, 0.0) + gain / (1 + level)
    total_words = float(words.sum()) or 1.0
    def unlinked(k: int) -> float:
        return score[k] * (1 - float(held_links[k]) / max(1.0, float(held_words[k])))

    best = max(score, key=unlinked, default=None)
    best_words = held_words[best] if best is not None else 0.0
    best_depth = len(facts.chain(facts.elements[best])) if best is not None else 0
    sample = " ".join(t for t, e in zip(texts, ends, strict=True) if e) or " ".join(texts)
    stops = stopwords(detect_language(sample[:3000]))
    cumulative = np.concatenate([[0.0], np.cumsum(words)[:-1]]) / total_words
    tags = [b.element.tag if isinstance(b.element.tag, str) else "" for b in blocks]
    heading = [int(t[1]) if len(t) == 2 and t[0] == "h" and t[1].isdigit() else 0 for t in tags]
    log_words = _logs(words)
    # neighbour means over up to _NEIGHBOURS blocks each side, the block itself left out
    index = np.arange(n)
    lo, hi = np.maximum(0, index - _NEIGHBOURS), np.minimum(n, index + _NEIGHBOURS + 1)
    span = np.maximum(1, hi - lo - 1)

    def around(values: np.ndarray) -> np.ndarray:
        sums = np.concatenate([[0.0], np.cumsum(values)])
        return (sums[hi] - sums[lo] - values) / span

    near = np.column_stack([
        _logs(around(words)), around(link_share), around(ends),
        np.concatenate([[0.0], log_words[:-1]]), np.concatenate([log_words[1:], [0.0]]),
        np.concatenate([[0.0], np.array(heading[:-1]) > 0]),
    ])
    # What a block's chain says, one Python pass: its names and tags (8 up, and the nearest
    # two apart), its 4 nearest ancestors, how many siblings repeat the shape of its nearest 5.
    bits = facts.bits
    all_bits = np.zeros(n, dtype=np.int64)
    near_bits = np.zeros(n, dtype=np.int64)
    ups = np.zeros((n, _LEVELS), dtype=np.intp)
    repeat = np.ones(n, dtype=float)
    repeat_held = np.zeros(n, dtype=float)
    in_best = np.zeros(n, dtype=bool)
    depth = depths.astype(float)
    parents: dict[Any, Counter[tuple[Any, str]]] = {}
    repeat_of: dict[int, int] = {}
    elements = facts.elements
    for k, chain in enumerate(numbers):
        found = 0
        for number in chain[:2]:
            found |= bits[number]
        near_bits[k] = found
        for number in chain[2:_DEPTH]:
            found |= bits[number]
        all_bits[k] = found
        up = chain[1:_LEVELS + 1] or chain[:1]
        ups[k] = up + [up[-1]] * (_LEVELS - len(up))
        most = 1
        for number in chain[:5]:
            shared = repeat_of.get(number)
            if shared is None:
                shared = repeat_of[number] = _repeats(elements[number], parents)
            most = max(most, shared)
        repeat[k] = most
        if most >= 3:
            repeat_held[k] = held_words[chain[min(len(chain) - 1, 4)]]
        in_best[k] = best is not None and best in chain
    repeated_words = 0.0
    for w, r in zip(words, repeat, strict=True):  # in block order, as the share was always summed
        if r >= 3:
            repeated_words += w
    safe_words = np.where(words > 0, words, 1.0)

    def per_word(counts: list[int], when: bool = True) -> np.ndarray:
        return np.where(words > 0, np.array(counts, dtype=float) / safe_words, 0.0) if when else np.zeros(n)

    stop_counts = [sum(map(stops.__contains__, map(str.lower, toks))) for toks in tokens]
    upper = [sum(1 for t in toks if t[0].isupper()) for toks in tokens]
    digits = [sum(map(str.isdigit, toks)) for toks in tokens]
    commas = [text.count(",") for text in texts]
    junk = [float(w <= 40 and is_junk_line(text)) for w, text in zip(words, texts, strict=True)]
    section_end = [float(bool(SECTION_END.match(text))) for text in texts]
    name_bits = np.array(list(_NAME_BITS.values()), dtype=np.int64)
    tag_bits = np.array(list(_TAG_BITS.values()), dtype=np.int64)
    up_words = held_words[ups]
    columns = [
        log_words[:, None],
        _logs([len(text) for text in texts])[:, None],
        ends[:, None],
        per_word(stop_counts, bool(stops))[:, None],
        link_share[:, None],
        ((all_bits & _LINK_BIT) != 0)[:, None],
        np.array(junk)[:, None],
        np.array(section_end)[:, None],
        per_word(upper)[:, None],
        per_word(digits)[:, None],
        per_word(commas)[:, None],
        np.array(heading, dtype=float)[:, None],
        np.array(tags, dtype=object)[:, None] == np.array(_OWN_TAGS, dtype=object)[None, :],
        (all_bits[:, None] & name_bits[None, :]) != 0,
        (near_bits[:, None] & name_bits[None, :]) != 0,
        (all_bits[:, None] & tag_bits[None, :]) != 0,
        _logs(depth)[:, None],
        (index / n)[:, None],
        cumulative[:, None],
        up_words / total_words,
        held_links[ups] / np.maximum(1.0, up_words),
        _logs(held_blocks[ups].ravel()).reshape(n, _LEVELS),
        _logs(repeat, math.log)[:, None],
        np.where(repeat >= 3, _logs(repeat_held), 0.0)[:, None],
        in_best[:, None],
        np.where(in_best, depth - best_depth, -1.0)[:, None],
    ]
    signals = page_signals(tree, url)
    in_tag = lambda *names: float(sum(w for w, t in zip(words, tags, strict=True) if t in names)) / total_words  # noqa: E731
    page = {
        "page_log_blocks": math.log1p(n),
        "page_log_words": math.log1p(total_words),
        "page_link_share": float((words * link_share).sum()) / total_words,
        "page_list_share": in_tag("li", "dd", "dt"),
        "page_p_share": in_tag("p"),
        "page_table_share": in_tag("td", "th"),
        "page_code_share": in_tag("pre", "code"),
        "page_heading_count": math.log1p(sum(1 for h in heading if h)),
        "page_repeat_share": repeated_words / total_words,
        "page_best_share": best_words / total_words,
        "page_sentence_share": float((words * ends).sum()) / total_words,
        **signals,
    }
    page_row = np.array([page[name] for name in PAGE_FEATURES], dtype=float)
    matrix = np.hstack([*(np.asarray(c, dtype=float) for c in columns), near, np.tile(page_row, (n, 1)),
                        repeat_columns(texts, words)])
    return PageBlocks(texts, matrix, ups, _table_rows(tags, numbers, facts.elements))


def repeat_columns(texts: list[str], words: np.ndarray) -> np.ndarray:
    """The `REPEAT_FEATURES` columns of a page's blocks (`texts`, each with its `words`): the log
    of how many blocks of the page hold the same text, and whether a block of three words or
    more holds a text an earlier block already held."""
    copies = Counter(texts)
    out = np.zeros((len(texts), len(REPEAT_FEATURES)))
    if len(copies) == len(texts):
        return out
    seen: set[str] = set()
    for k, text in enumerate(texts):
        if copies[text] > 1:
            out[k, 0] = math.log(copies[text])
            out[k, 1] = float(text in seen and words[k] >= 3)
            seen.add(text)
    return out


_CELLS = frozenset({"td", "th"})


def _table_rows(tags: list[str], numbers: list[list[int]], elements: list[Any]) -> tuple[int, ...]:
    """Per block, the number of the table row (`tr`) whose cell holds it as the cell's only
    block, else -1 (`numbers`: each block's chain of element numbers, nearest first). A cell of
    several blocks (paragraphs, lines parted by <br>) is a layout cell holding a page or a story,
    not one value of a row."""
    rows = [-1] * len(tags)
    cells = [k for k, tag in enumerate(tags) if tag in _CELLS]
    if not cells:
        return tuple(rows)
    per_cell = Counter(numbers[k][0] for k in cells)
    for k in cells:
        chain = numbers[k]
        if per_cell[chain[0]] == 1 and len(chain) > 1 and elements[chain[1]].tag == "tr":
            rows[k] = chain[1]
    return tuple(rows)
