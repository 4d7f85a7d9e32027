"""Find the story in a page saved as plain visible text (a "text dump").

Each line is scored from general signals (length, sentence punctuation, stop words, list
markers, boilerplate patterns, lines repeated elsewhere in the page, "Read more:" lead-ins
followed by headline lines). The story is the densest run of story lines (a maximum-sum
segment), which tolerates short junk interruptions; junk inside the run is then removed.
The title is the headline-like line before the run that shares most words with the lede.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from worker.steps.clean.boilerplate import (
    BYLINE,
    COMMENTS_HEADING,
    DATE_LINE,
    LEAD_IN_INLINE,
    SECTION_END,
    is_junk_line,
    is_lead_in,
)
from worker.steps.clean.language import detect_language, stopwords
from worker.steps.clean.model import LinearModel, shipped
from worker.steps.clean.normalize import normalize_line, split_lines, text_size
from worker.steps.common import densest_run

_WORD = re.compile(r"\w+", re.UNICODE)
_BULLET = re.compile(r"^\s*(?:[*+•·▪◦‣\-–]|\d{1,2}[.)])\s+")
_SENTENCE_END = re.compile(r"[.!?…。！？:;][\"'”’»)\]]*$")
_INNER_SENTENCE = re.compile(r"\w[.!?] +[A-Z]")


@dataclass(slots=True)
class Line:
    """One non-empty line of the dump with its features."""

    text: str
    bullet: bool
    size: float  # length in latin-equivalent characters
    words: int
    sentence: bool
    stop_ratio: float
    junk: bool
    repeated: bool
    capitals: int  # words opening on a capital letter
    digits: int  # words all digits
    lead_in: bool  # a 'Read more:' line
    section_end: bool  # a 'Related posts'-like heading
    byline: bool
    dated: bool  # a date or time line
    kind: str = ""  # "story", "short", "junk"
    weight: float = 0.0


@dataclass(frozen=True, slots=True)
class DumpArticle:
    """What the dump yields: the title (may be empty) and the story's paragraphs."""

    title: str
    paragraphs: list[str]
    language: str | None


def _features(raw: list[str], stops: frozenset[str]) -> list[Line]:
    """Each line's own features, every pattern matched once (the line model, the run search
    and the title all read them)."""
    folded = [t.casefold() for t in raw]
    counts = Counter(folded)
    lines = []
    for text, fold in zip(raw, folded, strict=True):
        bullet = bool(_BULLET.match(text))
        body = _BULLET.sub("", text) if bullet else text
        tokens = _WORD.findall(body)
        stop = sum(1 for t in tokens if t.lower() in stops) / len(tokens) if tokens and stops else 0.0
        spaced = body.split()
        lines.append(
            Line(
                text=body,
                bullet=bullet,
                size=text_size(body),
                words=len(tokens),
                sentence=bool(_SENTENCE_END.search(body)),
                stop_ratio=stop,
                junk=is_junk_line(body),
                repeated=counts[fold] > 1,
                capitals=sum(map(str.isupper, [w[0] for w in spaced])),
                digits=sum(map(str.isdigit, spaced)),
                lead_in=is_lead_in(body),
                section_end=bool(SECTION_END.match(body)),
                byline=bool(BYLINE.match(body)),
                dated=bool(DATE_LINE.match(body)),
            )
        )
    return lines


# The comments heading stays a hard boundary of the run search. Every other line weighs its
# story probability (the learned line model, worker/data/clean-lines.json) above STORY_P,
# times its length: a long line is more evidence either way. STORY_P was chosen on held-out
# folds (0.30-0.50 tried; see bench/extraction.md).
W_COMMENTS = -40.0
W_SECTION_END = -1.0  # "Related posts", "Most read" (-1 to -40 tried on held-out folds)
STORY_P = 0.35
MAX_SIZE = 500.0
SIZE_UNIT = 80.0
STORY_SIZE = 70.0  # a kept line at least this long is a story line, shorter ones are "short"
HEADER_WINDOW = 8  # lines from the run's start searched for a byline/dateline
TITLE_WINDOW = 40  # lines before the story searched for the headline
TITLE_LEDE = 5  # story paragraphs whose words the headline is compared with
COMMENTS_SHARE = 0.4  # the story before a comments heading wins when it has this share

LINE_FEATURES = (
    "bias",
    "log_size",
    "sentence_end",
    "stop_ratio",
    "junk_pattern",
    "repeated",
    "bullet",
    "lead_in",
    "after_lead_in",
    "section_end",
    "prose",
    "capital_ratio",
    "digit_ratio",
    "position",
    "byline_or_date",
    "prev_story_like",
    "next_story_like",
    "near_story_like",
    "after_section_end",  # a "Related posts"-like heading among the 10 lines before
)


def _story_like(line: Line) -> bool:
    return line.size >= STORY_SIZE and line.sentence


def line_rows(lines: list[Line], has_stops: bool) -> np.ndarray:
    """Feature rows of the dump's lines (LINE_FEATURES), in order."""
    n = len(lines)
    after_lead_in = _after_lead_ins(lines)
    story = [_story_like(line) for line in lines]
    rows = []
    last_end = -11  # the latest 'Related posts'-like heading seen (none yet: out of reach)
    for k, line in enumerate(lines):
        near = story[max(0, k - 3) : k] + story[k + 1 : k + 4]
        rows.append((
            1.0,
            math.log1p(line.size),
            float(line.sentence),
            line.stop_ratio if has_stops else 0.5,
            float(line.junk),
            float(line.repeated),
            float(line.bullet),
            float(line.lead_in or bool(LEAD_IN_INLINE.match(line.text))),
            float(k in after_lead_in),
            float(line.section_end),
            float(_prose(line, has_stops)),
            line.capitals / max(1, line.words),
            line.digits / max(1, line.words),
            k / n,
            float(line.byline or line.dated),
            float(k > 0 and story[k - 1]),
            float(k + 1 < n and story[k + 1]),
            sum(near) / len(near) if near else 0.0,
            float(k - last_end <= 10),
        ))
        if line.section_end:
            last_end = k
    return np.array(rows, dtype=float) if rows else np.zeros((0, len(LINE_FEATURES)))


def line_model() -> LinearModel:
    """The shipped line model (`worker/data/clean-lines.json`)."""
    return shipped("lines", LINE_FEATURES)


def _classify(lines: list[Line], has_stops: bool, model: LinearModel) -> None:
    """Give each line a kind ('story', 'short', 'junk') and a weight for the run search from
    the line model's story probability."""
    if not lines:
        return
    story = model.probabilities(line_rows(lines, has_stops))
    for line, p in zip(lines, story, strict=True):
        if COMMENTS_HEADING.match(line.text):
            line.kind, line.weight = "junk", W_COMMENTS
            continue
        if line.section_end:
            line.kind, line.weight = "junk", W_SECTION_END
            continue
        line.weight = 2.0 * (float(p) - STORY_P) * min(line.size, MAX_SIZE) / SIZE_UNIT
        if line.weight < 0:
            line.kind = "junk"
        else:
            line.kind = "story" if line.size >= STORY_SIZE else "short"


def _prose(line: Line, has_stops: bool) -> bool:
    """A long line without final punctuation that still reads like prose, not a headline."""
    if line.size < 70 or line.bullet or line.words < 10:
        return False
    if has_stops and line.stop_ratio < 0.2:
        return False
    return line.capitals / max(1, line.words) < 0.4


def _keep(line: Line) -> bool:
    """Inside the run, story lines and short lines (subheadings, list items) are kept, unless
    a boilerplate pattern matches them."""
    return line.kind in ("story", "short") and not line.junk


def _after_lead_ins(lines: list[Line]) -> set[int]:
    """Lines that follow a 'Read more:' lead-in as a block of headlines."""
    found: set[int] = set()
    k = 0
    while k < len(lines):
        if lines[k].lead_in:
            j = k + 1
            while j < len(lines) and j - k <= 6 and not (
                lines[j].size >= 70 and lines[j].sentence and lines[j].stop_ratio >= 0.2
            ) and lines[j].words <= 20 and not _SENTENCE_END.search(lines[j].text):
                found.add(j)
                j += 1
            k = j
        else:
            k += 1
    return found


def _max_segment(lines: list[Line], lo: int, hi: int) -> tuple[float, int, int]:
    """Maximum-sum segment (score, start, end) of line weights within [lo, hi)."""
    best, start, end = densest_run([line.weight for line in lines[lo:hi]])
    return best, lo + start, lo + end


def _best_run(lines: list[Line]) -> tuple[int, int]:
    """The story's run: the densest segment, taken before a comments heading when the part
    before it holds a story of its own (comments are often longer than the story)."""
    cuts = [k for k, line in enumerate(lines) if line.weight <= W_COMMENTS]
    bounds = [0, *cuts, len(lines)]
    regions = [_max_segment(lines, lo, hi) for lo, hi in zip(bounds, bounds[1:], strict=False)]
    top = max(score for score, _, _ in regions)
    for score, start, end in regions:
        if score >= COMMENTS_SHARE * top:
            return start, end
    return 0, 0


def _after_header(lines: list[Line], start: int, end: int) -> int:
    """Skip a standfirst, byline or dateline at the top of the run: the story starts after the
    last byline/date line among its first lines (when at most two story lines precede it)."""
    cut = start
    stories = 0
    for k in range(start, min(end, start + HEADER_WINDOW)):
        line = lines[k]
        if line.kind == "story":
            stories += 1
            if stories > 2:
                break
        elif line.byline or (line.dated and line.words <= 12):
            cut = k + 1
    return cut if any(line.kind == "story" for line in lines[cut:end]) else start


def _headline_like(line: Line) -> bool:
    """A short unpunctuated line that could be a headline (not a byline or a date)."""
    return (
        not line.bullet and 3 <= line.words <= 25 and not line.sentence and not line.junk
        and not line.byline and not line.dated
    )


def _content_words(text: str, stops: frozenset[str]) -> set[str]:
    return {w.lower() for w in _WORD.findall(text) if w.lower() not in stops and not w.isdigit()}


def _title(lines: list[Line], start: int, body: list[str], stops: frozenset[str]) -> str:
    """The headline: a line before the story that shares words with the lede, sits just above
    a byline or dateline, or is repeated elsewhere in the page (breadcrumbs, share boxes)."""
    lede_words = _content_words(" ".join(body[:TITLE_LEDE]), stops)
    page = "\n".join(line.text.casefold() for line in lines)
    best, best_score = "", None
    for k in range(start - 1, max(-1, start - TITLE_WINDOW), -1):
        line = lines[k]
        if line.bullet or line.words < 3 or line.words > 35 or line.junk:
            continue
        text = line.text
        if text.endswith((".", ":", "…")) or line.byline or line.dated:
            continue
        if line.section_end or line.lead_in:
            continue
        words = _content_words(text, stops)
        if not words:
            continue
        overlap = len(words & lede_words) / len(words)
        above_byline = any(n.byline or n.dated for n in lines[k + 1 : k + 4])
        repeated = page.count(text.casefold()) > 1
        score = (
            overlap + 0.5 * above_byline + 0.3 * repeated + min(line.words, 12) / 40
            - 0.01 * (start - 1 - k) - 0.4 * bool(_INNER_SENTENCE.search(text))
        )
        if overlap < 0.15 and not above_byline:
            score -= 1.0  # a fallback only: nothing ties it to the story
        if best_score is None or score > best_score:
            best, best_score = text, score
    return best


def _dump_lines(text: str, language: str | None) -> tuple[list[Line], frozenset[str], str | None]:
    raw = [normalize_line(t) for t in split_lines(text)]
    raw = [t for t in raw if t]
    language = language or detect_language(" ".join(raw))
    stops = stopwords(language)
    return _features(raw, stops), stops, language


def dump_candidates(text: str, language: str | None = None) -> tuple[list[str], np.ndarray]:
    """The dump's lines and their feature rows (what the line model is trained on)."""
    lines, stops, _ = _dump_lines(text, language)
    return [line.text for line in lines], line_rows(lines, bool(stops))


def extract_dump(text: str, language: str | None = None, model: LinearModel | None = None) -> DumpArticle:
    """Title and story paragraphs of a whole-page text dump; `model` replaces the shipped
    line model."""
    lines, stops, language = _dump_lines(text, language)
    _classify(lines, bool(stops), model or line_model())
    start, end = _best_run(lines)
    start = _after_header(lines, start, end)
    if end - start > 1 and _headline_like(lines[start]):
        start += 1  # a run opening on an unpunctuated line opens on the headline
    paragraphs = list(dict.fromkeys(line.text for line in lines[start:end] if _keep(line)))
    if not paragraphs:
        return DumpArticle("", [], language)
    return DumpArticle(_title(lines, start, paragraphs, stops), paragraphs, language)
