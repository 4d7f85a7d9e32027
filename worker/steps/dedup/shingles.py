"""Text side of deduplication: normalise an article's text and sketch its word shingles.

Pure functions, no state. The sketch is a bottom-k sample of hashed word shingles, which supports
*containment* estimates (how much of a short copy lies inside a longer original), not only
Jaccard: for two bottom-k sketches, every shingle hash below the smaller of their two thresholds
is present in both samples if it is present in both texts, so the overlap below that threshold is
an unbiased sample of the overlap of the full shingle sets.

Robustness to how copies differ from the original:

- quotes, dashes, apostrophes, case, Unicode compatibility forms and whitespace are normalised
  away (tokens are runs of word characters after NFKC + casefold);
- paragraphs are shingled as one token stream, so merged or split paragraphs change nothing;
- short lines (menus, bylines, "Read more" links, share buttons, captions) are left out before
  shingling, and so is everything outside the runs of long lines worth a few sentences each
  (the story block: the densest run and any other such run, so a story of several sections
  parted by lists keeps them all): template junk is mostly short lines around the story,
  stories are mostly long lines;
- the title is never used: syndicated copies get new headlines.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable

from worker.steps.common import densest_run

SHINGLE_WORDS = 3
"""Words per shingle: a changed word breaks at most this many shingles."""

SKETCH_SIZE = 128
"""Shingle hashes a fingerprint carries (the k of its bottom-k sketch); the index keeps fewer."""

MIN_LINE_TOKENS = 7
"""Lines with fewer tokens than this are treated as template junk (menus, links, bylines)."""

MIN_STORY_TOKENS = 40
"""If the long lines hold fewer tokens than this, every line is shingled instead."""

SHORT_LINE_PENALTY = 8
"""Score of a short line when looking for the story block (a long line scores its length)."""

HASH_BITS = 32
_MASK64 = (1 << 64) - 1

_WORD = re.compile(r"\w+")
# Scripts written without spaces between words: one token per character.
_UNSPACED = re.compile(
    r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u0e00-\u0e7f\u0e80-\u0eff"
    r"\u1000-\u109f\u1780-\u17ff]"
)


def tokens(line: str) -> list[str]:
    """Normalised word tokens of one line: NFKC, casefolded, punctuation and quotes dropped."""
    text = unicodedata.normalize("NFKC", line).casefold()
    if not _UNSPACED.search(text):  # the usual line: no word to split, at C speed
        return _WORD.findall(text)
    out: list[str] = []
    for word in _WORD.findall(text):
        if _UNSPACED.search(word):
            out.extend(_split_unspaced(word))
        else:
            out.append(word)
    return out


def _split_unspaced(word: str) -> list[str]:
    parts: list[str] = []
    run = ""
    for ch in word:
        if _UNSPACED.match(ch):
            if run:
                parts.append(run)
                run = ""
            parts.append(ch)
        else:
            run += ch
    if run:
        parts.append(run)
    return parts


def story_tokens(text: str) -> tuple[list[str], list[str]]:
    """All tokens of the text, and the tokens of its story block (long lines of its prose blocks)."""
    every, story = story_lines(text)
    return every, [t for toks in story for t in toks]


def story_lines(text: str) -> tuple[list[str], list[list[str]]]:
    """All tokens of the text, and the lines (as tokens) of its story block.

    Each line scores its token count when it is long (prose) and a fixed penalty when it is short
    (menus, share buttons, bylines, link lists); the story is the span of lines with the highest
    total (Kadane's maximum subarray) and every other span worth a few sentences
    (`prose_blocks`), and their long lines are kept. A cleaned article is one positive span or a
    few (sections parted by lists), so nothing is lost; a page that still carries its template
    keeps the story and leaves the menus, footers and related-link lists around it out. When the
    long lines hold too few tokens, every line is the story.
    """
    lines: list[list[str]] = []
    every: list[str] = []
    for line in text.splitlines():
        toks = tokens(line)
        if toks:
            lines.append(toks)
            every.extend(toks)
    scores = [len(toks) if len(toks) >= MIN_LINE_TOKENS else -SHORT_LINE_PENALTY for toks in lines]
    story = [toks for start, end in prose_blocks(scores) for toks in lines[start:end] if len(toks) >= MIN_LINE_TOKENS]
    if sum(map(len, story)) < MIN_STORY_TOKENS:
        story = lines
    return every, story


def prose_blocks(scores: list[int]) -> list[tuple[int, int]]:
    """The spans of lines (start, end), in order, that make the story: the densest run, then the
    densest run of what is left on each side of it, and so on, while a run is worth at least
    `MIN_STORY_TOKENS` (its long lines' tokens less its short lines' penalties).

    An article of several sections parted by lists or subheads (a how-to's item lists, a guide's
    headings) is several such runs; a copy that merges or splits its short lines differently
    still holds the same ones, where the densest run alone may be a different section on each.
    Template furniture is short lines, or a long line or two among them, and stays out.
    """
    blocks: list[tuple[int, int]] = []
    todo = [(0, len(scores))]
    while todo:
        lo, hi = todo.pop()
        best, start, end = densest_run(scores[lo:hi])
        if best < MIN_STORY_TOKENS and blocks:
            continue
        if best <= 0:
            continue
        blocks.append((lo + start, lo + end))
        todo += [(lo, lo + start), (lo + end, hi)]
    return sorted(blocks)


def line_hash(toks: list[str]) -> int:
    """32-bit hash of one normalised line (its tokens joined by spaces)."""
    return int.from_bytes(hashlib.blake2b(" ".join(toks).encode("utf-8"), digest_size=4).digest())


def left_out_lines(page_text: str, article_text: str) -> set[int]:
    """Hashes of the page's long lines that the article does not hold: what the cleaner judged
    to be the site's furniture on this page (menus are short lines and are not counted)."""
    article = {" ".join(line.split()) for line in article_text.splitlines()}
    candidates: list[list[str]] = []
    for line in page_text.splitlines():
        # a line the article holds as it is, or too short to hold 7 tokens, is not tokenised
        if len(line) >= MIN_LINE_TOKENS and " ".join(line.split()) not in article:
            toks = tokens(line)
            if len(toks) >= MIN_LINE_TOKENS:
                candidates.append(toks)
    if not candidates:
        return set()
    kept = {line_hash(tokens(line)) for line in article}  # lines the cleaner changed on the way
    return {h for h in map(line_hash, candidates) if h not in kept}


def content_hash(all_tokens: Iterable[str]) -> str:
    """Hex sha256 of the normalised text (tokens joined by single spaces)."""
    return hashlib.sha256(" ".join(all_tokens).encode("utf-8")).hexdigest()


def _token_hash(token: str, cache: dict[str, int]) -> int:
    value = cache.get(token)
    if value is None:
        value = int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest())
        cache[token] = value
    return value


def _mix(x: int) -> int:
    """splitmix64 finaliser: spreads a combined value over all 64 bits."""
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9 & _MASK64
    x = (x ^ (x >> 27)) * 0x94D049BB133111EB & _MASK64
    return x ^ (x >> 31)


def shingle_hashes(toks: list[str], size: int = SHINGLE_WORDS) -> set[int]:
    """The set of 32-bit hashes of the text's word shingles (fewer words: one shingle)."""
    if not toks:
        return set()
    cache: dict[str, int] = {}
    hashed = [_token_hash(t, cache) for t in toks]
    if len(hashed) < size:
        size = len(hashed)
    out: set[int] = set()
    for i in range(len(hashed) - size + 1):
        acc = 0
        for j in range(size):
            acc = (acc * 0x100000001B3 + hashed[i + j]) & _MASK64
        out.add(_mix(acc) >> (64 - HASH_BITS))
    return out


def bottom_k(hashes: set[int], k: int = SKETCH_SIZE) -> tuple[int, ...]:
    """The k smallest hashes, ascending (all of them if there are fewer)."""
    return tuple(sorted(hashes)[:k])
