"""Page type: which of seven kinds a page is (article, service, product, collection, forum,
listing, documentation), from a small gradient-boosted model.

The model reads what a page shows of its kind without reading its story: the url's words
(`/blog/2024/...`, `/product/`, `/t/<slug>/123`), the schema.org and OpenGraph types it declares,
its DOM's shape (paragraphs against list items, repeated sibling cards, forms, code blocks,
the words in class and id names) and its text's statistics (long sentences, prices, reply
counters, code). An HTML page is read from the tree the cleaner already parsed (one parse);
a text dump from its lines, with the url. The shipped models (`worker/data/page-type-html.txt`,
`page-type-text.txt`, LightGBM's text format) are trained on the labelled pages of WCXB by
`bench/train_page_type.py`; `ingest-worker eval page-types` measures them on held-out folds.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from itertools import compress, repeat
from operator import itemgetter
from pathlib import Path
from string import ascii_lowercase
from typing import Any, Literal
from urllib.parse import urlsplit

import numpy as np
from lxml import etree

from worker.document import PAGE_KINDS as KINDS
from worker.document import PageKind as Kind
from worker.steps.clean.boilerplate import CaselessPattern, any_of
from worker.steps.clean.model import predict

DATA = Path(__file__).resolve().parents[2] / "data"


@dataclass(frozen=True, slots=True)
class PageType:
    """A page's kind, the model's probability of it, and the probability of every kind."""

    kind: Kind
    confidence: float
    probabilities: dict[str, float]
    words: int = 0  # visible words the classifier read (a page with none has no kind worth trusting)


# -- words that tell kinds apart -----------------------------------------------------------------

# Each group is counted once per source (url path, class/id names, text); a group's name is
# part of the feature name.
_URL_WORDS: dict[str, str] = {
    "news": r"news|article|articles|story|stories|press|politics|opinion",
    "blog": r"blog|blogs|post|posts|insights|magazine|journal|stories",
    "date": r"(?:19|20)\d\d",
    "product": r"product|products|item|items|p|dp|sku|buy|shop|store|catalog|gp",
    "collection": r"collections?|category|categories|c|cat|shop|department|brands?|range|browse",
    "forum": r"forums?|threads?|topics?|t|community|discussions?|questions?|answers|board|viewtopic|showthread"
             r"|r|comments",
    "listing": r"list|listings?|directory|search|results|jobs|events|tags?|archive|page|authors?|locations?",
    "docs": r"docs?|documentation|api|reference|manual|guide|guides|wiki|learn|tutorials?|help|kb|developers?|sdk",
    "service": r"services?|solutions?|pricing|about|contact|features|platform|consulting|agency|company|enterprise",
}
_CLASS_WORDS: dict[str, str] = {
    "article": "article entry story byline blog author headline",
    "product": "product products price cart basket sku variant variants qty quantity stock rating pdp buy",
    "grid": "grid card cards tile tiles item items listing results result collection catalog plp",
    "filter": "filter filters facet facets sort sorting pagination pager",
    "forum": "comment comments reply replies thread topic forum message avatar username signature vote votes",
    "docs": "doc docs toc highlight code sidebar sphinx markdown api syntax admonition prose",
    "service": "hero testimonial testimonials pricing feature features cta faq service services clients banner plans",
    "nav": "nav navbar menu breadcrumb breadcrumbs footer header",
}
# Words of the visible text, lower-cased, and two patterns words cannot say.
_TEXT_WORDS: dict[str, str] = {
    "cart": "cart basket checkout shipping stock sku wishlist qty quantity",
    "reviews": "review reviews rating ratings stars",
    "forum": "reply replies replied posted joined quote views thread upvote upvotes member posts likes",
    "service": "contact consultation quote services clients solutions get started schedule request demo",
    "listing": "showing results sort filter filters view all load more next previous",
    "read_more": "read more continue reading min minutes",
    "docs": "parameters parameter returns example syntax install installation api configuration function "
            "default method class string integer boolean",
    "byline": "by published updated written author posted",
    "pronoun": "i we you my our your",
}
_TEXT_PATTERNS: dict[str, re.Pattern[str]] = {
    "price": re.compile(r"[$€£¥]\s?\d|\d(?:[.,]\d\d)?\s?(?:€|USD|EUR|GBP)\b"),
    "question": re.compile(r"\?"),
}
# what every match of each pattern holds: a text holding none of them is not searched
_PATTERN_CUES: dict[str, tuple[str, ...]] = {"price": ("$", "€", "£", "¥", "USD", "EUR", "GBP"), "question": ("?",)}
_SCHEMA_TYPES: dict[str, str] = {
    "article": r"(?:news|blog|scholarly|report|opinion|analysis)?article|blogposting|posting|liveblog",
    "tech": r"techarticle|apireference|softwaresourcecode|softwareapplication|howto",
    "product": r"product|offer|aggregateoffer|aggregaterating|productgroup|vehicle|book",
    "collection": r"collectionpage|itemlist|offercatalog|searchresultspage|productcollection",
    "forum": r"discussionforumposting|qapage|question|answer|comment|socialmediaposting",
    "service": r"service|localbusiness|organization|professionalservice|faqpage|contactpage|aboutpage",
    "event": r"event|jobposting|place|realestatelisting",
    "webpage": r"webpage|website",
    "recipe": r"recipe|review",
}
_OG_TYPES = ("article", "product", "website", "blog", "profile", "book", "video")
_GENERATORS: dict[str, str] = {
    "forum": r"discourse|vbulletin|phpbb|xenforo|invision|mybb|vanilla|flarum|nodebb|simple machines|smf",
    "shop": r"shopify|woocommerce|magento|prestashop|bigcommerce|opencart|salesforce commerce",
    "docs": r"sphinx|mkdocs|docusaurus|gitbook|hugo|jekyll|readthedocs|vitepress|mintlify|docsify",
    "cms": r"wordpress|drupal|joomla|ghost|blogger|medium|wix|squarespace|webflow",
}


def _alternation(groups: dict[str, str]) -> re.Pattern[str]:
    """One pattern naming each group, matching whole url words only."""
    body = "|".join(f"(?P<{name}>{pattern})" for name, pattern in groups.items())
    return re.compile(rf"(?<![a-z0-9])(?:{body})(?![a-z0-9])", re.I)


_URL_RE = _alternation(_URL_WORDS)


def _word_groups(groups: dict[str, str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, words in groups.items():
        for word in words.split():
            found.setdefault(word, []).append(name)
    return found


_CLASS_GROUPS = _word_groups(_CLASS_WORDS)
_TEXT_GROUPS = _word_groups(_TEXT_WORDS)
_LETTERS = re.compile(r"[a-z]+")
_DIGIT = re.compile(r"\d")
_SCHEMA_RE = {
    name: re.compile(rf"^(?:https?://schema\.org/)?(?:{pattern})$", re.I) for name, pattern in _SCHEMA_TYPES.items()
}
# each a list of words: one nested alternation, read on lowered text where it can be
_GENERATOR_RE = {name: CaselessPattern(any_of(set(words.split("|")))) for name, words in _GENERATORS.items()}
_SENTENCE = re.compile(r"[.!?](?:\s|$)")
_CODE_CHARS = re.compile(r"[{}();=<>\[\]_]")

_COUNTED_TAGS = (
    "p", "a", "li", "ul", "ol", "h1", "h2", "h3", "h4", "pre", "code", "table", "tr", "form", "input",
    "button", "select", "textarea", "img", "article", "nav", "aside", "section", "time", "blockquote",
    "dl", "iframe", "svg", "figure", "footer", "header", "main", "label", "kbd", "video",
)
_SKIP = frozenset({"script", "style", "noscript", "template"})


def _url_features(url: str | None) -> dict[str, float]:
    parts = urlsplit(url or "")
    path = parts.path.lower()
    segments = [s for s in path.split("/") if s]
    last = segments[-1] if segments else ""
    found = Counter(name for m in _URL_RE.finditer(path.replace("_", "-")) for name, v in m.groupdict().items() if v)
    out = {f"url_{name}": float(found[name]) for name in _URL_WORDS}
    out.update({
        "url_depth": float(len(segments)),
        "url_root": float(not segments),
        "url_query": float(bool(parts.query)),
        "url_last_hyphens": float(last.count("-")),
        "url_last_digits": float(sum(c.isdigit() for c in last)),
        "url_last_length": float(len(last)),
        "url_html": float(last.endswith((".html", ".htm", ".php", ".aspx", ".asp"))),
        "url_trailing_slash": float(path.endswith("/") and bool(segments)),
        "url_subdomain_docs": float(bool(re.match(r"(docs|developer|developers|api|help|support|wiki|kb)\.",
                                                  parts.netloc.lower()))),
        "url_subdomain_forum": float(bool(re.match(r"(forum|forums|community|discuss|answers|discourse)\.",
                                                   parts.netloc.lower()))),
        "url_subdomain_shop": float(bool(re.match(r"(shop|store)\.", parts.netloc.lower()))),
        "url_date_path": float(bool(_URL_DATE.search(path))),
        "url_numeric_segments": float(sum(1 for s in segments if s.isdigit())),
        "url_id_segments": float(sum(1 for s in segments if _URL_ID.search(s))),
        "url_query_keys": float(len([k for k in parts.query.split("&") if k])),
        "url_words": float(len(_LETTERS.findall(path))),
    })
    return out


_URL_DATE = re.compile(r"(?:^|/)(?:19|20)\d\d[/-](?:0?[1-9]|1[0-2])(?:[/-]|$)|\d{4}-\d\d-\d\d|(?:19|20)\d{6}")
_URL_ID = re.compile(r"\d{4,}")
_TOKEN = re.compile(r"[^\W\d_]{2,}")


def url_tokens(url: str | None) -> list[str]:
    """The url's words for the word model: host labels before the site's name, path words (with
    the first segment's and the last segment's marked), the shape of its numbers, query keys."""
    parts = urlsplit(url or "")
    netloc = parts.netloc.lower().split(":")[0]
    labels = netloc.split(".")
    tokens = [f"host:{label}" for label in labels[:-2] if label != "www"]
    segments = [s for s in parts.path.lower().split("/") if s]
    for position, segment in enumerate(segments):
        words = _TOKEN.findall(segment)
        tokens.extend(f"u:{w}" for w in words)
        if position == 0:
            tokens.extend(f"u0:{w}" for w in words)
        if position == len(segments) - 1:
            tokens.extend(f"ul:{w}" for w in words[:3])
            tokens.append(f"ulen:{min(len(words), 8)}")
            tokens.append(f"uext:{segment.rsplit('.', 1)[-1] if '.' in segment else ''}")
        tokens.extend(f"unum:{len(run)}" for run in _URL_NUMBER.findall(segment))
    tokens.append(f"udepth:{min(len(segments), 6)}")
    if parts.path.endswith("/") and segments:
        tokens.append("u:/")
    tokens.extend(f"q:{key.split('=', 1)[0].lower()}" for key in parts.query.split("&") if key)
    return tokens


_URL_NUMBER = re.compile(r"\d+")


def _text_features(lines: list[str], prefix: str, letter_counts: Counter[str] | None = None) -> dict[str, float]:
    """Statistics of visible text given as lines (an HTML page's block texts, or a dump's lines);
    `letter_counts` count `_LETTERS`' runs of the lines joined and lower-cased, when the caller
    has them."""
    words_per_line = list(map(len, map(str.split, lines)))
    total = float(sum(words_per_line)) or 1.0
    n = float(len(lines)) or 1.0
    text = "\n".join(lines)
    long_lines = [w for w in words_per_line if w >= 25]
    out = {
        f"{prefix}words": float(sum(words_per_line)),
        f"{prefix}log_words": math.log1p(sum(words_per_line)),
        f"{prefix}lines": float(len(lines)),
        f"{prefix}words_per_line": total / n,
        f"{prefix}long_line_share": sum(long_lines) / total,
        f"{prefix}long_lines": float(len(long_lines)),
        f"{prefix}short_line_share": sum(1 for w in words_per_line if w <= 3) / n,
        f"{prefix}longest_line": float(max(words_per_line, default=0)),
        f"{prefix}sentences_per_word": len(_SENTENCE.findall(text)) / total,
        f"{prefix}digit_share": len(_DIGIT.findall(text)) / (len(text) or 1),
        f"{prefix}code_share": len(_CODE_CHARS.findall(text)) / (len(text) or 1),
    }
    out.update(_prose_run(lines, words_per_line, total, prefix))
    # No date spans a line break and every date holds a digit: only lines with one are read,
    # ASCII lines counted lowered (re's case-insensitive matching costs about twice the plain
    # one), the others as they are.
    dated = [line for line in lines if _DIGIT.search(line)]
    ascii_lines = [line for line in dated if line.isascii()]
    other_lines = [line for line in dated if not line.isascii()] if len(ascii_lines) < len(dated) else []
    out[f"{prefix}dates"] = float(_DATE.count("\n".join(ascii_lines)) + _DATE.count("\n".join(other_lines)))
    out[f"{prefix}dates_per_line"] = out[f"{prefix}dates"] / n
    if letter_counts is None:
        letter_counts = Counter(_LETTERS.findall(text.lower()))
    hits = _group_counts(letter_counts, _TEXT_GROUPS)
    for name, pattern in _TEXT_PATTERNS.items():
        hits[name] = len(pattern.findall(text)) if any(cue in text for cue in _PATTERN_CUES[name]) else 0
    for name in (*_TEXT_WORDS, *_TEXT_PATTERNS):
        out[f"{prefix}t_{name}"] = float(hits[name])
        out[f"{prefix}t_{name}_per_kword"] = 1000.0 * hits[name] / total
    return out


_DATE = CaselessPattern(
    r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.? \d{1,2}\b"
    r"|\b\d{1,2} (?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)|\b\d{4}-\d\d-\d\d\b"
    r"|\b\d{1,2}[./]\d{1,2}[./]\d{2,4}\b|\b\d+ (?:hours?|days?|minutes?) ago\b",
)
PROSE_WORDS = 12  # a line longer than this counts for a run of prose, a shorter one against it


def _prose_run(lines: list[str], words_per_line: list[int], total: float, prefix: str) -> dict[str, float]:
    """The densest run of prose lines (maximum-sum segment of words - PROSE_WORDS per line), and
    how headline-like and repeated the other lines are."""
    best = current = 0.0
    start = best_start = best_end = 0
    run_words = best_words = 0
    for i, w in enumerate(words_per_line):
        score = w - PROSE_WORDS if w > PROSE_WORDS else -min(w, PROSE_WORDS) / 2 - 1
        if current <= 0:
            current, start, run_words = 0.0, i, 0
        current += score
        run_words += w
        if current > best:
            best, best_start, best_end, best_words = current, start, i + 1, run_words
    n = len(lines) or 1
    headline = sum(1 for line, w in zip(lines, words_per_line, strict=True)
                   if 4 <= w <= 14 and not line.rstrip().endswith((".", "!", "?", ":")))
    counts = Counter(lines)
    return {
        f"{prefix}run_score": best,
        f"{prefix}run_words": float(best_words),
        f"{prefix}run_share": best_words / total,
        f"{prefix}run_lines": float(best_end - best_start),
        f"{prefix}run_start": best_start / n,
        f"{prefix}headline_lines": float(headline),
        f"{prefix}headline_share": headline / n,
        f"{prefix}repeated_share": sum(c for c in counts.values() if c > 1) / n,
    }


def _group_counts(counts: Counter[str], groups: dict[str, list[str]]) -> Counter[str]:
    """How many of the words counted in `counts` each group's words are (a text holds many more
    distinct words than the groups do: each group word is looked up among the text's counts)."""
    found: Counter[str] = Counter()
    for word, names in groups.items():
        n = counts.get(word)
        if n:
            for name in names:
                found[name] += n
    return found


def _schema_features(types: list[str], og_type: str, generator: str) -> dict[str, float]:
    out = {f"schema_{name}": float(sum(1 for t in types if pattern.match(t)))
           for name, pattern in _SCHEMA_RE.items()}
    out["schema_any"] = float(len(types))
    og = og_type.lower().strip()
    for name in _OG_TYPES:
        out[f"og_{name}"] = float(og.startswith(name) or og.endswith(name))
    out["og_missing"] = float(not og)
    for name, pattern in _GENERATOR_RE.items():
        out[f"generator_{name}"] = float(bool(pattern.search(generator)))
    return out


def _json_ld_types(texts: list[str]) -> list[str]:
    types: list[str] = []
    for text in texts:
        try:
            data = json.loads(text)
        except (ValueError, TypeError, RecursionError):
            continue
        stack = [data]
        while stack and len(types) < 200:
            node = stack.pop()
            if isinstance(node, list):
                stack.extend(node)
            elif isinstance(node, dict):
                kind = node.get("@type")
                types.extend(k for k in (kind if isinstance(kind, list) else [kind]) if isinstance(k, str))
                stack.extend(v for v in node.values() if isinstance(v, (dict, list)))
    return types


_DATED_META = frozenset({
    "article:published_time", "og:article:published_time", "datepublished", "pubdate", "publish-date", "date",
    "article:modified_time", "dc.date", "sailthru.date", "parsely-pub-date",
})
_AUTHOR_META = frozenset({"author", "article:author", "byl", "dc.creator", "parsely-author", "sailthru.author"})
_BLOCK_TAGS = frozenset({"p", "li", "h1", "h2", "h3", "h4", "h5", "h6", "td", "th", "dd", "dt", "pre",
                         "blockquote", "figcaption", "summary", "caption", "div", "section", "article", "span"})
_LINE_TAGS = _BLOCK_TAGS | {"a"}  # their own text is a line of the visible text
_READ_TAGS = frozenset({"meta", "title", "h1", "h2", "h3", "button", "input", "p", "li", "a"})  # read apart


def tree_features(tree: Any, url: str | None) -> dict[str, float]:
    """The features of a parsed HTML page (lxml tree, scripts dropped or not) and its url."""
    return read_tree(tree, url)[0]


def read_tree(tree: Any, url: str | None) -> tuple[dict[str, float], list[str]]:
    """One walk over a parsed HTML page: its features, and its tokens for the word model (url
    words, title and h1 words, class and id words, schema.org/OpenGraph types, itemprops, button
    words, visible words)."""
    tokens: list[str] = []
    title = ""
    heading_links = headings_seen = 0
    rel_next = 0
    shown_tags: list[str] = []  # counted once the walk is done (Counter's C loop)
    classes: list[str] = []
    ld_texts: list[str] = []
    itemtypes: list[str] = []
    repeats: list[int] = []  # how many children of one parent share a tag and class (3 or more)
    og_type = generator = ""
    dated_meta = author_meta = 0
    link_words = p_words = li_words = 0
    long_paragraphs = 0
    lines: list[str] = []
    elements = 0
    for el in tree.iter():
        tag = el.tag
        if not isinstance(tag, str):
            continue
        elements += 1
        if len(el) >= 3:
            repeats.extend(_repeated_shapes(el))
        if tag in _SKIP:
            if tag == "script" and (el.get("type") or "").strip().lower() == "application/ld+json":
                ld_texts.append(el.text or "")
            continue
        shown_tags.append(tag)
        attrs = el.attrib
        if attrs:  # many elements have none
            cls = attrs.get("class")
            ident = attrs.get("id")
            if cls:
                classes.append(cls)
            if ident:
                classes.append(ident)
            itemtype = attrs.get("itemtype")
            if itemtype:
                itemtypes.extend(t.rsplit("/", 1)[-1] for t in itemtype.split())
            itemprop = attrs.get("itemprop")
            if itemprop:
                tokens.extend(f"ip:{p.lower()}" for p in itemprop.split()[:3])
            rel = attrs.get("rel")
            if rel and tag in ("a", "link") and ("next" in rel.lower() or "prev" in rel.lower()):
                rel_next += 1
        if tag not in _READ_TAGS:  # most elements (div, span...): none of the cases below
            pass
        elif tag == "meta":
            key = (attrs.get("property") or attrs.get("name") or attrs.get("itemprop") or "").lower()
            if key in _DATED_META:
                dated_meta += 1
            elif key in _AUTHOR_META:
                author_meta += 1
            if key == "og:type":
                og_type = attrs.get("content") or ""
            elif key == "generator":
                generator += " " + (attrs.get("content") or "")
        elif tag == "title":
            if not title:
                title = _text_of(el)
        elif tag in ("h1", "h2", "h3"):
            if tag == "h1":
                tokens.extend(f"h1:{w}" for w in _TOKEN.findall(_text_of(el).lower())[:20])
            else:
                headings_seen += 1
                if el.find(".//a") is not None or ((parent := el.getparent()) is not None and parent.tag == "a"):
                    heading_links += 1
        elif tag == "button" or (tag == "input" and attrs.get("type") in ("submit", "button")):
            label = (_text_of(el) if tag == "button" else attrs.get("value") or "").lower()
            tokens.extend(f"b:{w}" for w in _TOKEN.findall(label)[:5])
        elif tag in ("p", "li", "a"):
            words = len(_text_of(el).split())
            if tag == "p":
                p_words += words
                long_paragraphs += words >= 30
            elif tag == "li":
                li_words += words
            else:
                link_words += words
        # Visible text as lines: the text directly in block-like elements.
        if tag in _LINE_TAGS:
            own = (el.text or "").strip()
            if own:
                lines.append(own)
        tail = (el.tail or "").strip()
        if tail:
            lines.append(tail)
    tags = Counter(shown_tags)
    lowered = "\n".join(lines).lower()
    letters = _LETTERS.findall(lowered)
    letter_counts = Counter(letters)
    text = _text_features(lines, "", letter_counts)
    total_words = text["words"] or 1.0
    out = dict(text)
    out.update(_url_features(url))
    generator += " " + " ".join(classes[:40])  # platforms often show in the first class names
    schema_types = _json_ld_types(ld_texts) + itemtypes
    out.update(_schema_features(schema_types, og_type, generator))
    out["heading_links"] = float(heading_links)
    out["heading_link_share"] = heading_links / (headings_seen or 1)
    out["h2_per_p"] = (tags["h2"] + tags["h3"]) / (tags["p"] + 1.0)
    out["rel_next"] = float(rel_next)
    out["articles_many"] = float(tags["article"] >= 3)
    tokens.extend(url_tokens(url))
    tokens.extend(f"t:{w}" for w in _TOKEN.findall(title.lower())[:30])
    tokens.extend(f"s:{t.lower()}" for t in schema_types[:50])
    if og_type:
        tokens.append(f"og:{og_type.lower().strip()}")
    tokens.extend(f"gen:{w}" for w in _TOKEN.findall(generator.lower())[:60])
    # the word models read each distinct token once: repeats are not made
    # the class and id names read as one text (a space between two attributes ends a word):
    # their words in order, and how many of their `_LETTERS` runs each `_CLASS_WORDS` group holds
    class_text = " ".join(classes).lower()
    class_letters = _LETTERS.findall(class_text)
    class_counts = Counter(class_letters)
    tokens.extend([f"c:{w}" for w in _distinct_words(class_text, class_letters, class_counts)])
    tokens.extend([f"w:{w}" for w in _distinct_words(lowered, letters, letter_counts, 3000)])
    per_kelement = 1000.0 / (elements or 1)
    for tag in _COUNTED_TAGS:
        out[f"tag_{tag}"] = float(tags[tag])
        out[f"tag_{tag}_per_kelement"] = tags[tag] * per_kelement
    ld = " ".join(ld_texts)
    out["meta_dated"] = float(dated_meta + ld.count('"datePublished"'))
    out["meta_author"] = float(author_meta + ld.count('"author"'))
    out["ld_offers"] = float(ld.count('"offers"') + ld.count('"price"'))
    out["elements"] = float(elements)
    out["log_elements"] = math.log1p(elements)
    out["words_per_element"] = total_words / (elements or 1)
    out["link_word_share"] = link_words / total_words
    out["p_word_share"] = p_words / total_words
    out["li_word_share"] = li_words / total_words
    out["long_paragraphs"] = float(long_paragraphs)
    out["headings"] = float(tags["h2"] + tags["h3"] + tags["h4"])
    repeats.sort(reverse=True)
    out["repeat_max"] = float(repeats[0]) if repeats else 0.0
    out["repeat_groups"] = float(len(repeats))
    out["repeat_sum"] = float(sum(repeats))
    found = _group_counts(class_counts, _CLASS_GROUPS)
    for name in _CLASS_WORDS:
        out[f"class_{name}"] = float(found[name])
        out[f"class_{name}_per_kelement"] = found[name] * per_kelement
    return out, tokens


def _text_of(el: Any) -> str:
    """An element's text content (XPath's string(), as `text_content()` reads it): libxml2's
    content of the node, which its text serialisation writes without an XPath context; an
    element without children is its own text."""
    return (el.text or "") if len(el) == 0 else etree.tostring(el, method="text", encoding="unicode", with_tail=False)


# Characters outside ASCII that pages use between words (quotes, dashes, spaces, signs): none is
# a word character (the filter keeps it so), so a text holding no other is read as ASCII is.
_BETWEEN_WORDS = "".join(c for c in "\u2018\u2019\u201c\u201d\u2013\u2014\u2010\u2011\u2212\u2026\u00a0\u202f"
                         "\u200b\u200c\u200d\u00a9\u00ae\u2122\u2022\u00b7\u00ab\u00bb\u2039\u203a\u00d7"
                         "\u2192\u00b0\ufe0f\u2032\u2033\u00a7\u00b6\u2020" if not (c.isalnum() or c == "_"))
_NOT_BETWEEN_WORDS = re.compile(f"[^\\x00-\\x7f{_BETWEEN_WORDS}]")


def _words(lowered: str, letters: list[str], limit: int | None = None) -> list[str]:
    """`_TOKEN`'s words of a lower-cased text (the first `limit`); on a text whose letters are
    all ASCII they are the runs of two letters or more among its `_LETTERS` runs, found already."""
    if lowered.isascii() or _NOT_BETWEEN_WORDS.search(lowered) is None:
        return [w for w in letters if len(w) > 1][:limit]
    return _TOKEN.findall(lowered) if limit is None else _first_tokens(lowered, limit)


def _distinct_words(lowered: str, letters: list[str], counts: Counter[str], limit: int | None = None) -> list[str]:
    """`dict.fromkeys(_words(lowered, letters, limit))`: the distinct words, in the order first
    found, of `_words`; `counts` count `letters` (in the order first found, as a Counter keeps
    them), so where every run of two letters or more is among the first `limit`, its keys are
    those words already."""
    if lowered.isascii() or _NOT_BETWEEN_WORDS.search(lowered) is None:
        if limit is None or len(letters) - sum(map(counts.get, ascii_lowercase, repeat(0))) <= limit:
            return [w for w in counts if len(w) > 1]
    return list(dict.fromkeys(_words(lowered, letters, limit)))


def _first_tokens(text: str, limit: int) -> list[str]:
    """The first `limit` of `_TOKEN`'s words of `text`, a long text read only as far as needed
    (a word cut at the end of the part read can only be the last one found there)."""
    part = 24 * limit
    if len(text) > part:
        found = _TOKEN.findall(text, 0, part)
        if len(found) > limit:
            return found[:limit]
    return _TOKEN.findall(text)[:limit]


def _repeated_shapes(parent: Any) -> list[int]:
    """For each tag and class (a class given) that three or more of the element's children share
    (children of a skipped tag and of no tag left out), how many share it."""
    shapes = [(tag, cls) for child in parent
              if (cls := child.get("class")) and isinstance(tag := child.tag, str) and tag not in _SKIP]
    if len(shapes) < 3:  # most: no shape can be shared by three
        return []
    return [n for n in Counter(shapes).values() if n >= 3]


def text_features(text: str, url: str | None) -> dict[str, float]:
    """The features of a whole-page text dump and its url."""
    return read_text(text, url)[0]


def read_text(text: str, url: str | None) -> tuple[dict[str, float], list[str]]:
    """A whole-page text dump's features, and its tokens for the word model (url words, the first
    line's words, visible words)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    out = _text_features(lines, "")
    out.update(_dump_features(lines))
    out.update(_url_features(url))
    tokens = url_tokens(url)
    if lines:
        tokens.extend(f"t:{w}" for w in _TOKEN.findall(lines[0].lower())[:30])
    tokens.extend(f"w:{w}" for w in _TOKEN.findall(" ".join(lines).lower())[:3000])
    return out, tokens


_SENTENCE_END = re.compile(r"[.!?][\"'\u201d\u2019\u00bb)\]]*(?:\s|$)")  # a closing quote may follow the stop
_QUOTE = re.compile(r"[\"\u201c\u201d\u00ab\u00bb]")
_REPORTING = CaselessPattern(r"\b(?:said|says|told|according to|added|explained|announced|reported)\b")
SUBSTANTIAL_RUN = 40.0  # a prose run scoring this much (`_prose_run`'s score) holds a story's paragraphs


def _dump_features(lines: list[str]) -> dict[str, float]:
    """A whole-page dump's story against what surrounds it. A dump holds the page's menus,
    teasers and footer beside the story: the lines of its densest prose run (`_prose_run`) are
    read apart from the others (sentences, quotes, reporting verbs and dates in the run; dates,
    repeats and words outside it), and the other runs of prose are set against it (a listing's
    teasers make many runs of like size, a story one run far above the rest)."""
    words_per_line = [len(line.split()) for line in lines]
    runs: list[tuple[float, int, int]] = []  # (score, start, end) of each run of prose
    current = 0.0
    start = best_end = 0
    best = 0.0
    for i, w in enumerate(words_per_line):
        score = w - PROSE_WORDS if w > PROSE_WORDS else -min(w, PROSE_WORDS) / 2 - 1
        if current <= 0:
            if best > 0:
                runs.append((best, start, best_end))
            current, start, best = 0.0, i, 0.0
        current += score
        if current > best:
            best, best_end = current, i + 1
    if best > 0:
        runs.append((best, start, best_end))
    runs.sort(reverse=True)
    total = float(sum(words_per_line)) or 1.0
    if runs:
        _, first, last = runs[0]
    else:
        first = last = 0
    inside = lines[first:last]
    outside = lines[:first] + lines[last:]
    inside_text = "\n".join(inside)
    inside_words = float(sum(words_per_line[first:last])) or 1.0
    outside_lines = float(len(outside)) or 1.0
    repeated = Counter(outside)
    return {
        "dump_runs": float(sum(1 for r in runs if r[0] >= SUBSTANTIAL_RUN)),
        "dump_second_run": runs[1][0] / runs[0][0] if len(runs) > 1 else 0.0,
        "dump_run_sentences_per_word": len(_SENTENCE_END.findall(inside_text)) / inside_words,
        "dump_run_quotes_per_kword": 1000.0 * len(_QUOTE.findall(inside_text)) / inside_words,
        "dump_run_reporting_per_kword": 1000.0 * _REPORTING.count(inside_text) / inside_words,
        "dump_run_dates": float(_DATE.count(inside_text)),
        "dump_outside_dates_per_line": _DATE.count("\n".join(outside)) / outside_lines,
        "dump_outside_repeated_share": sum(c for c in repeated.values() if c > 1) / outside_lines,
        "dump_outside_word_share": 1.0 - inside_words / total if inside else 1.0,
        "dump_after_run_share": (len(lines) - last) / (len(lines) or 1),
        "dump_sentences_per_word": len(_SENTENCE_END.findall("\n".join(lines))) / total,
    }


# -- the models ----------------------------------------------------------------------------------


def word_values(tokens: list[str]) -> dict[str, float]:
    """Each distinct token's value for the word model: 1/sqrt(n) for the n distinct tokens of its
    source (the prefix before ':'), so a long text does not drown the url's few words."""
    distinct = {t: t.partition(":")[0] for t in set(tokens)}
    per_source = Counter(distinct.values())
    scale = {source: 1.0 / float(np.sqrt(n)) for source, n in per_source.items()}
    return {t: scale[source] for t, source in distinct.items()}


# The word model's token sources, each read by a model of its own: the boosted model weighs
# how far to trust a page's url, title, class names, visible words and declared types.
WORD_GROUPS: dict[str, tuple[str, ...]] = {
    "url": ("host", "u", "u0", "ul", "ulen", "uext", "unum", "udepth", "q"),
    "title": ("t", "h1"),
    "class": ("c",),
    "text": ("w",),
    "schema": ("s", "og", "ip", "gen", "b"),
}
_GROUP_OF = {prefix: group for group, prefixes in WORD_GROUPS.items() for prefix in prefixes}


def grouped_tokens(tokens: list[str]) -> dict[str, list[str]]:
    """A page's tokens by word group."""
    out: dict[str, list[str]] = {}
    group_of = _GROUP_OF
    for token in set(tokens):  # the word models read each distinct token once
        cut = token.find(":")
        group = group_of.get(token[:cut] if cut >= 0 else token)
        if group is not None:
            found = out.get(group)
            if found is None:
                out[group] = [token]
            else:
                found.append(token)
    return out


class WordModel:
    """A multinomial logistic regression over one group's tokens (`read_tree`/`read_text`), whose
    probabilities are features of the boosted model (`words_<group>_<kind>`)."""

    def __init__(self, group: str, intercept: list[float], weights: dict[str, list[float]]) -> None:
        self.group = group
        self.intercept = np.asarray(intercept, dtype=float)
        # one row a token (`weights` holds views of the rows): a page's tokens are one product
        self.rows = {token: row for row, token in enumerate(weights)}
        self.matrix = np.array(list(weights.values()), dtype=float).reshape(len(weights), len(self.intercept))
        self.weights = dict(zip(weights, self.matrix, strict=True))

    def probabilities(self, tokens: list[str], one_source: bool = False) -> np.ndarray:
        """P(kind) in `KINDS` order from the group's tokens alone. `one_source` says that every
        token has the same source (prefix): each distinct token then has the same value, and
        `word_values`' dictionaries are not built."""
        rows = self.rows
        if one_source:
            distinct = set(tokens)
            # summed in the model's row order, not the set's (which varies with the hash seed)
            found = sorted([row for row in map(rows.get, distinct) if row is not None])
            values = [1.0 / float(np.sqrt(len(distinct)))] * len(found) if found else []
        else:
            known = sorted((rows[token], value) for token, value in word_values(tokens).items() if token in rows)
            found, values = (list(part) for part in zip(*known, strict=True)) if known else ([], [])
        return self._softmax(found, values)

    def _softmax(self, found: list[int] | np.ndarray, values: list[float] | np.ndarray) -> np.ndarray:
        """P(kind) from the rows of a page's known tokens (in row order) and their values."""
        z = self.intercept.copy()
        if len(found):
            z += np.asarray(values) @ self.matrix[found]
        z = np.exp(z - z.max())
        return z / z.sum()

    def features(self, tokens: list[str], one_source: bool = False) -> dict[str, float]:
        """The boosted model's inputs from this group's tokens (`one_source`: as `probabilities`)."""
        return {f"words_{self.group}_{kind}": float(p)
                for kind, p in zip(KINDS, self.probabilities(tokens, one_source), strict=True)}

    def as_dict(self) -> dict[str, object]:
        """The model as plain data (weights rounded to 4 decimals)."""
        return {
            "intercept": [round(float(v), 4) for v in self.intercept],
            "weights": {t: [round(float(v), 4) for v in w] for t, w in sorted(self.weights.items())},
        }


class WordModels:
    """The word models of every group a source's pages show."""

    def __init__(self, models: list[WordModel]) -> None:
        self.models = models
        # Every model's tokens in one table, numbered model after model and in each model's row
        # order (a token's source names its one group): a page's distinct tokens are looked up once
        # and sorted as numbers, not grouped first.
        tokens = [token for model in models for token in model.rows]
        self.index = {token: i for i, token in enumerate(tokens)}
        self.starts = np.cumsum([0] + [len(model.rows) for model in models])
        names = sorted({token.partition(":")[0] for token in tokens})
        self.source_names = names
        self.source_of = np.array([names.index(token.partition(":")[0]) for token in tokens], dtype=np.intp)

    def features(self, tokens: list[str]) -> dict[str, float]:
        """Every group's features of one page: each model's `probabilities` of the page's tokens of
        its group, the same numbers (summed in the same order) from one lookup of the page's
        distinct tokens."""
        distinct = list(set(tokens))
        numbers = list(map(self.index.get, distinct, repeat(-1)))  # one lookup a token (the table is large)
        found = np.array(numbers, dtype=np.intp)
        known = np.sort(found[found >= 0])  # model after model, each in its row order
        # distinct tokens a source, the known ones counted by number, the others by name
        unknown = compress(distinct, map((-1).__eq__, numbers))
        sources = Counter(map(itemgetter(0), map(str.partition, unknown, repeat(":"))))
        for source, n in zip(self.source_names, np.bincount(self.source_of[known], minlength=len(self.source_names)),
                             strict=True):
            if n:
                sources[source] += int(n)
        bounds = np.searchsorted(known, self.starts)
        out: dict[str, float] = {}
        for m, model in enumerate(self.models):
            rows = known[bounds[m]:bounds[m + 1]] - self.starts[m]
            prefixes = WORD_GROUPS.get(model.group, ())
            if not len(rows):
                values: list[float] | np.ndarray = []
            elif len(prefixes) == 1:  # one source: each token's value 1/sqrt(the group's distinct tokens)
                values = [1.0 / float(np.sqrt(sources[prefixes[0]]))] * len(rows)
            else:
                scale = [1.0 / float(np.sqrt(n)) if (n := sources[name]) else 0.0 for name in self.source_names]
                values = np.asarray(scale)[self.source_of[rows + self.starts[m]]]
            p = model._softmax(rows, values)
            out.update({f"words_{model.group}_{kind}": float(v) for kind, v in zip(KINDS, p, strict=True)})
        return out

    def to_json(self) -> str:
        """The models as JSON."""
        return json.dumps({"kinds": list(KINDS), "groups": {m.group: m.as_dict() for m in self.models}},
                          separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> WordModels:
        """Models written by `to_json`."""
        data = json.loads(text)
        if tuple(data["kinds"]) != KINDS:
            raise ValueError("word model kinds differ from the page kinds")
        return cls([WordModel(group, m["intercept"], m["weights"]) for group, m in data["groups"].items()])


class PageTypeModel:
    """A multiclass LightGBM booster over named features (its feature names are its inputs),
    with the word model that feeds it, when it reads one."""

    def __init__(self, model_text: str, words: WordModels | None = None) -> None:
        import lightgbm

        self.booster = lightgbm.Booster(model_str=model_text)
        self.features: tuple[str, ...] = tuple(self.booster.feature_name())
        self.words = words

    def probabilities(self, rows: list[dict[str, float]]) -> np.ndarray:
        """P(kind) of each page, one row per page, columns in `KINDS` order."""
        matrix = np.array([[row.get(name, np.nan) for name in self.features] for row in rows], dtype=float)
        if len(matrix) == 0:
            return np.zeros((0, len(KINDS)))
        return np.asarray(predict(self.booster, matrix)).reshape(len(matrix), len(KINDS))

    def page_probabilities(self, features: dict[str, float], tokens: list[str]) -> np.ndarray:
        """P(kind) of one page from its features and tokens, in `KINDS` order."""
        if self.words is not None:
            features = {**features, **self.words.features(tokens)}
        return self.probabilities([features])[0]

    def classify(self, features: dict[str, float], tokens: list[str]) -> PageType:
        """The PageType of one page from its features and tokens."""
        return page_type(self.page_probabilities(features, tokens), features["words"])


@lru_cache(maxsize=2)
def shipped_model(source: Literal["html", "text"]) -> PageTypeModel:
    """The committed model for pages of `source` (`worker/data/page-type-<source>.txt`, and its
    word model `page-type-<source>-words.json.gz`)."""
    words_path = DATA / f"page-type-{source}-words.json.gz"
    words = WordModels.from_json(gzip.decompress(words_path.read_bytes()).decode("utf-8")) \
        if words_path.exists() else None
    return PageTypeModel((DATA / f"page-type-{source}.txt").read_text(encoding="utf-8"), words)


def page_type(probabilities: np.ndarray, words: float = 0.0) -> PageType:
    """The PageType of one row of probabilities (in `KINDS` order) of a page of `words` words."""
    best = int(np.argmax(probabilities))
    return PageType(
        KINDS[best],
        round(float(probabilities[best]), 4),
        {kind: round(float(p), 4) for kind, p in zip(KINDS, probabilities, strict=True)},
        int(words),
    )


def classify_tree(tree: Any, url: str | None, model: PageTypeModel | None = None) -> PageType:
    """The kind of an HTML page from its parsed lxml tree (the cleaner's own parse) and url."""
    model = model or shipped_model("html")
    return model.classify(*read_tree(tree, url))


def classify_text(text: str, url: str | None, model: PageTypeModel | None = None) -> PageType:
    """The kind of a page given as a whole-page text dump, from its lines and url."""
    model = model or shipped_model("text")
    return model.classify(*read_text(text, url))
