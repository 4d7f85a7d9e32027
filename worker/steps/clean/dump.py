"""Find the story in a page saved as plain visible text (a "text dump").

Each line is scored from general signals (length, sentence punctuation, stop words, list
markers, boilerplate patterns, lines repeated elsewhere in the page, "Read more:" lead-ins
followed by headline lines). The story is the densest run of story lines (a maximum-sum
segment), which tolerates short junk interruptions; junk inside the run is then removed.
The title is the headline-like line before the run that shares most words with the lede.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

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
from worker.steps.clean.model import LinearModel
from worker.steps.clean.normalize import normalize_line, split_lines, text_size
from worker.steps.common import densest_run

_WORD = re.compile(r"\w+", re.UNICODE)
_BULLET = re.compile(r"^\s*(?:[*+•·▪◦‣\-–]|\d{1,2}[.)])\s+")
_SENTENCE_END = re.compile(r"[.!?…。！？:;][\"'”’»)\]]*$")
_NAMES = re.compile(
    r"^(?:(?:[A-Z][\w'’\-]*\.?|and|&|,)\s*){2,12}$"
)  # capitalised words only: "Lisa Kaczke and Trevor J. Mitchell"
_NAME_JOIN = re.compile(r"\b(and|und|et|y|e|dan)\b|&|\b[A-Z]\.")
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
    kind: str = ""  # "story", "short", "junk"
    weight: float = 0.0


@dataclass(frozen=True, slots=True)
class DumpArticle:
    """What the dump yields: the title (may be empty) and the story's paragraphs."""

    title: str
    paragraphs: list[str]
    language: str | None


def _features(raw: list[str], stops: frozenset[str]) -> list[Line]:
    counts = Counter(t.casefold() for t in raw)
    lines = []
    for text in raw:
        bullet = bool(_BULLET.match(text))
        body = _BULLET.sub("", text) if bullet else text
        tokens = _WORD.findall(body)
        stop = sum(1 for t in tokens if t.lower() in stops) / len(tokens) if tokens else 0.0
        lines.append(
            Line(
                text=body,
                bullet=bullet,
                size=text_size(body),
                words=len(tokens),
                sentence=bool(_SENTENCE_END.search(body)),
                stop_ratio=stop,
                junk=is_junk_line(body),
                repeated=counts[text.casefold()] > 1,
            )
        )
    return lines


# Line weights of the maximum-sum run (a story line weighs its length / W_STORY_UNIT; figures
# in bench/extraction.md).
W_SECTION_END = -6.0  # "Related posts", "Most read": the page's furniture begins
W_COMMENTS = -40.0  # a comments heading: a hard boundary
W_PATTERN_JUNK = -0.3  # share/newsletter/read-more lines: removed, cheap to cross
W_REPEATED = -1.0  # a short line seen elsewhere in the page (menus, teasers)
REPEATED_SIZE = 120.0
W_BULLET = -1.0  # short list items (menus)
W_SENTENCE = 0.2  # a short sentence
W_SHORT = -0.7  # other short lines
W_STORY_UNIT = 80.0
PROSE_STORY = True  # long prose lines without final punctuation count as story (x0.7)
W_BULLET_STORY = 0.5  # long list items weigh half a story line
HEADER_CLUSTER = True  # cut teasers before an article header inside the run
HEADER_WINDOW = 8  # lines from the run's start searched for a byline/dateline
TITLE_WINDOW = 40  # lines before the story searched for the headline
TITLE_LEDE = 5  # story paragraphs whose words the headline is compared with
COMMENTS_SHARE = 0.4  # the story before a comments heading wins when it has this share
MERGE_ROUNDS = 3  # joining runs cut apart by a related-links box (see _extend_run)
MERGE_WINDOW = 60
MERGE_GAP = 15
MERGE_MIN = 3.0
MERGE_SHARE = 0.15
MERGE_SIMILARITY = 0.35


def _classify(lines: list[Line], has_stops: bool) -> None:
    """Give each line a kind ('story', 'short', 'junk') and a weight for the run search."""
    for line in lines:
        if COMMENTS_HEADING.match(line.text):
            line.kind, line.weight = "junk", W_COMMENTS
        elif SECTION_END.match(line.text):
            line.kind, line.weight = "junk", W_SECTION_END
        elif line.junk or is_lead_in(line.text) or LEAD_IN_INLINE.match(line.text):
            line.kind, line.weight = "junk", W_PATTERN_JUNK
        elif line.repeated and line.size < REPEATED_SIZE:
            line.kind, line.weight = "junk", W_REPEATED
        elif (
            line.size >= 70
            and line.sentence
            and (not has_stops or line.stop_ratio >= 0.08)
            and not (line.bullet and line.size < 120)
        ):
            line.kind, line.weight = "story", min(line.size, 500) / W_STORY_UNIT
            if line.bullet:
                line.weight *= W_BULLET_STORY
        elif PROSE_STORY and _prose(line, has_stops):
            line.kind, line.weight = "story", min(line.size, 500) / W_STORY_UNIT * 0.7
        elif line.size >= 30 and line.sentence and not line.bullet:
            line.kind, line.weight = "short", W_SENTENCE
        elif line.bullet:
            line.kind, line.weight = "junk", W_BULLET
        else:
            line.kind, line.weight = "short", W_SHORT


def _prose(line: Line, has_stops: bool) -> bool:
    """A long line without final punctuation that still reads like prose, not a headline."""
    if line.size < 70 or line.bullet or line.words < 10:
        return False
    if has_stops and line.stop_ratio < 0.2:
        return False
    capitals = sum(1 for w in line.text.split() if w[:1].isupper())
    return capitals / max(1, line.words) < 0.4


def _keep(line: Line) -> bool:
    """Inside the run, story lines and short lines (subheadings, list items) are kept."""
    return line.kind in ("story", "short")


def _lead_in_blocks(lines: list[Line]) -> None:
    """Mark the headline lines after a 'Read more:' lead-in as junk."""
    k = 0
    while k < len(lines):
        if is_lead_in(lines[k].text):
            j = k + 1
            while j < len(lines) and j - k <= 6 and not (
                lines[j].size >= 70 and lines[j].sentence and lines[j].stop_ratio >= 0.2
            ) and lines[j].words <= 20 and not _SENTENCE_END.search(lines[j].text):
                lines[j].kind, lines[j].weight = "junk", -0.3
                j += 1
            k = j
        else:
            k += 1


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


def _extend_run(
    lines: list[Line], start: int, end: int, stops: frozenset[str]
) -> tuple[int, int, set[int]]:
    """Join runs of the same story cut apart by a box of related links or an ad: a nearby
    segment (at most MERGE_GAP lines away, no comments heading between) that is dense enough
    and shares its vocabulary with the story. Returns the new span and the gap lines."""

    def words_of(a: int, b: int) -> set[str]:
        story_lines = (line.text for line in lines[a:b] if line.kind == "story")
        return _content_words(" ".join(story_lines), stops)

    score = sum(line.weight for line in lines[start:end])
    story = words_of(start, end)
    gaps: set[int] = set()
    for _ in range(MERGE_ROUNDS):
        merged = False
        before = _max_segment(lines, max(0, start - MERGE_WINDOW), start)
        after = _max_segment(lines, end, min(len(lines), end + MERGE_WINDOW))
        for seg_score, a, b in (before, after):
            gap = range(b, start) if b <= start else range(end, a)
            if b <= a or len(gap) > MERGE_GAP or seg_score < max(MERGE_MIN, MERGE_SHARE * score):
                continue
            if any(lines[k].weight <= W_COMMENTS for k in gap):
                continue
            words = words_of(a, b)
            if not words or len(words & story) / len(words) < MERGE_SIMILARITY:
                continue
            gaps.update(gap)
            start, end = min(start, a), max(end, b)
            story |= words
            merged = True
        if not merged:
            break
    return start, end, gaps


def _after_header(lines: list[Line], start: int, end: int) -> int:
    """Skip a standfirst, byline or dateline at the top of the run: the story starts after the
    last byline/date line among its first lines (when at most two story lines precede it)."""
    cut = start
    stories = 0
    for k in range(start, min(end, start + HEADER_WINDOW)):
        text = lines[k].text
        if lines[k].kind == "story":
            stories += 1
            if stories > 2:
                break
        elif BYLINE.match(text) or (DATE_LINE.match(text) and lines[k].words <= 12):
            cut = k + 1
    if cut == start and HEADER_CLUSTER:
        cut = _header_cluster(lines, start, end)
    return cut if any(line.kind == "story" for line in lines[cut:end]) else start


def _header_cluster(lines: list[Line], start: int, end: int) -> int:
    """An article header inside the run (headline, then byline/date lines, then at least
    three story lines): what precedes it is teasers, so the story starts after it."""
    total = sum(max(0.0, line.weight) for line in lines[start:end])
    seen = 0.0
    for k in range(start + 1, end):
        seen += max(0.0, lines[k - 1].weight)
        if seen > 0.5 * total:
            break
        text = lines[k].text
        if not (BYLINE.match(text) or (DATE_LINE.match(text) and lines[k].words <= 12)):
            continue
        head = [j for j in range(max(start, k - 5), k) if _headline_like(lines[j])]
        after = lines[k + 1 : k + 8]
        if head and sum(1 for line in after if line.kind == "story") >= 3:
            j = k + 1
            while j < end and lines[j].kind != "story":
                j += 1
            return j
    return start


def _headline_like(line: Line) -> bool:
    """A short unpunctuated line that could be a headline (not a byline or a date)."""
    return (
        not line.bullet and 3 <= line.words <= 25 and not line.sentence and not line.junk
        and not BYLINE.match(line.text) and not DATE_LINE.match(line.text)
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
        if text.endswith((".", ":", "…")) or BYLINE.match(text) or DATE_LINE.match(text):
            continue
        if SECTION_END.match(text) or is_lead_in(text):
            continue
        if (
            k + 1 < len(lines) and DATE_LINE.match(lines[k + 1].text) and _NAMES.match(text)
            and _NAME_JOIN.search(text)
        ):
            continue  # "Jane Doe and John Roe": the byline just above the date
        words = _content_words(text, stops)
        if not words:
            continue
        overlap = len(words & lede_words) / len(words)
        above_byline = any(
            BYLINE.match(n.text) or DATE_LINE.match(n.text) for n in lines[k + 1 : k + 4]
        )
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


def extract_dump(text: str, language: str | None = None, model: LinearModel | None = None) -> DumpArticle:
    """Title and story paragraphs of a whole-page text dump."""
    raw = [normalize_line(t) for t in split_lines(text)]
    raw = [t for t in raw if t]
    language = language or detect_language(" ".join(raw))
    stops = stopwords(language)
    lines = _features(raw, stops)
    _classify(lines, bool(stops))
    _lead_in_blocks(lines)
    start, end = _best_run(lines)
    start, end, gaps = _extend_run(lines, start, end, stops)
    start = _after_header(lines, start, end)
    if end - start > 1 and _headline_like(lines[start]):
        start += 1  # a run opening on an unpunctuated line opens on the headline
    paragraphs = list(dict.fromkeys(
        line.text for k, line in enumerate(lines[start:end], start)
        if _keep(line) and (k not in gaps or line.kind == "story" or line.sentence)
    ))
    if not paragraphs:
        return DumpArticle("", [], language)
    return DumpArticle(_title(lines, start, paragraphs, stops), paragraphs, language)
