"""Find the story in a page saved as plain visible text (a "text dump").

Each line gets a story probability from a learned model (`clean.line_model`, shipped in
`worker/data/clean-lines.json.gz`) over general signals: length, sentence punctuation, stop
words, list markers, indentation (a crawler's dump keeps the page's nesting), boilerplate
patterns, lines repeated elsewhere in the page, "Read more:" lead-ins, the lines around it,
words shared with the url's path, which common words it holds, and a linear model's score of
its words and word pairs (and of the lines around it). The story is the densest
run of lines above the model's threshold (a maximum-sum segment that tolerates short junk
interruptions; junk inside it and the headlines a "Read more:" lead-in introduces removed),
with the other runs whose total reaches a share of its own; the threshold and the share are
chosen for each page kind in training (a forum's replies and a listing's items are not one run).
The title is the headline-like line before the story that shares most words with the lede.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

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
from worker.steps.clean.line_model import LineModel, Selection, line_grams, shipped_line_model, window_mean
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
    indent: int = 0  # leading spaces in the dump (tabs count 4)
    kind: str = ""  # "story", "short", "junk"
    weight: float = 0.0


@dataclass(frozen=True, slots=True)
class DumpArticle:
    """What the dump yields: the title (may be empty) and the story's paragraphs."""

    title: str
    paragraphs: list[str]
    language: str | None


def _features(raw: list[str], stops: frozenset[str], indents: Sequence[int] | None = None) -> list[Line]:
    """Each line's own features, every pattern matched once (the line model, the run search
    and the title all read them)."""
    folded = [t.casefold() for t in raw]
    counts = Counter(folded)
    lines = []
    for k, (text, fold) in enumerate(zip(raw, folded, strict=True)):
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
                indent=indents[k] if indents is not None else 0,
            )
        )
    return lines


# The comments heading stays a hard boundary of the run search. Every other line weighs its
# story probability (the learned line model, worker/data/clean-lines.json.gz) above the model's
# run threshold, times its length: a long line is more evidence either way.
W_COMMENTS = -40.0
W_SECTION_END = -5.0  # "Related posts", "Most read" (-1, -2, -3, -5 tried)
MAX_SIZE = 500.0
SIZE_UNIT = 80.0
STORY_SIZE = 70.0  # a kept line at least this long is a story line, shorter ones are "short"
HEADER_WINDOW = 8  # lines from the run's start searched for a byline/dateline
TITLE_WINDOW = 40  # lines before the story searched for the headline
TITLE_LEDE = 5  # story paragraphs whose words the headline is compared with
COMMENTS_SHARE = 0.4  # the story before a comments heading wins when it has this share
MAX_INDENT = 40.0  # indentation (spaces) that scales the indent feature to about 1
FAR = 50  # distance in lines given when the page has no story-like line

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
    # the page's nesting, as the dump's indentation keeps it
    "indent",  # spaces beyond the page's least indented line, / MAX_INDENT
    "indent_rank",  # rank of the line's indentation among the page's levels, 0..1
    "page_indented",  # the dump has more than two indentation levels
    "indent_story_share",  # share of the page's story-like text at this indentation
    "same_indent_prev",
    "same_indent_next",
    # the page as a whole
    "log_lines",
    "log_page_size",
    "page_story_share",  # share of the page's text in story-like lines
    # the neighbourhood
    "story_like_5",  # share of story-like lines among the 5 lines centred on this one
    "story_like_15",
    "story_before_share",  # share of the page's story-like text before this line
    "mean_word_length",
    "upper_word_ratio",  # words in capitals (two letters or more)
    "price",  # a currency sign next to a number
    "heading_before_story",  # 3-15 words, no final punctuation, a story-like line next
    "story_like_distance",  # lines to the nearest story-like line (at most FAR)
    # the url's path (the headline's words are often in it)
    "url_overlap",  # share of the path's words found in the line
    "url_line_offset",  # lines after the first line holding half of the path's words, / lines
    "after_url_line",
    "has_url_line",
)
# Features of the lines around each line (two before, two after; -1 beyond the page's ends).
CONTEXT = ("log_size", "sentence_end", "stop_ratio", "junk_pattern", "bullet", "capital_ratio")
CONTEXT_SHIFTS = (-2, -1, 1, 2)
ROW_FEATURES = LINE_FEATURES + tuple(f"{name}@{shift:+d}" for shift in CONTEXT_SHIFTS for name in CONTEXT)
_PRICE = re.compile(r"[$€£¥₹]\s?\d|\d\s?[$€£¥₹]")


def _story_like(line: Line) -> bool:
    return line.size >= STORY_SIZE and line.sentence


def _own_rows(lines: list[Line], has_stops: bool) -> list[tuple[float, ...]]:
    """The signals of each line and its next neighbours (the first 19 LINE_FEATURES)."""
    n = len(lines)
    after_lead_in = _after_lead_ins(lines)
    story = [_story_like(line) for line in lines]
    rows: list[tuple[float, ...]] = []
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
    return rows


def _page_rows(lines: list[Line], url: str | None) -> np.ndarray:
    """Indentation, page, neighbourhood and url features (LINE_FEATURES after the first 19)."""
    n = len(lines)
    story = np.array([_story_like(line) for line in lines], dtype=float)
    size = np.array([line.size for line in lines])
    indent = np.array([line.indent for line in lines], dtype=float)
    indent -= indent.min()
    levels = np.unique(indent)
    rank = np.searchsorted(levels, indent) / max(1, len(levels) - 1)
    story_size = story * size
    total_story = story_size.sum()
    level_share = np.zeros(n)
    if total_story:
        for level in levels:
            at = indent == level
            level_share[at] = story_size[at].sum() / total_story
    same_prev = np.r_[0.0, indent[1:] == indent[:-1]]
    same_next = np.r_[indent[1:] == indent[:-1], 0.0]
    before = (np.cumsum(story_size) - story_size) / total_story if total_story else np.zeros(n)
    found = np.flatnonzero(story)
    positions = np.arange(n)
    if len(found):
        at = np.searchsorted(found, positions)
        after = np.abs(positions - found[np.clip(at, 0, len(found) - 1)])
        prior = np.abs(positions - found[np.clip(at - 1, 0, len(found) - 1)])
        distance = np.minimum(np.minimum(after, prior), FAR).astype(float)
    else:
        distance = np.full(n, float(FAR))
    words_in_url = _url_words(url)
    overlap = np.array([
        len({w.lower() for w in _WORD.findall(line.text)} & words_in_url) / len(words_in_url)
        if words_in_url else 0.0
        for line in lines
    ])
    title = next((k for k in range(n) if overlap[k] >= 0.5 and lines[k].words <= 30), -1)
    own = []
    for k, line in enumerate(lines):
        spaced = line.text.split()
        own.append((
            sum(map(len, spaced)) / max(1, len(spaced)),
            sum(1 for w in spaced if len(w) > 1 and w.isupper()) / max(1, len(spaced)),
            float(bool(_PRICE.search(line.text))),
            float(3 <= line.words <= 15 and not line.sentence and k + 1 < n and story[k + 1] > 0),
        ))
    own_columns = np.array(own, dtype=float).reshape(n, 4)
    page = np.ones(n)
    return np.column_stack([
        indent / MAX_INDENT, rank, page * float(len(levels) > 2), level_share, same_prev, same_next,
        page * math.log(n), page * math.log1p(size.sum()), page * total_story / max(1.0, size.sum()),
        window_mean(story, 2), window_mean(story, 7), before, own_columns, distance,
        overlap,
        (positions - title) / n if title >= 0 else np.zeros(n),
        (positions > title).astype(float) if title >= 0 else np.zeros(n),
        page * float(title >= 0),
    ])


def _url_words(url: str | None) -> set[str]:
    """Lower-case words of the url's path and query (3 letters or more, not numbers)."""
    if not url:
        return set()
    try:
        parts = urlsplit(url)
    except ValueError:
        return set()
    path = unquote(f"{parts.path} {parts.query}").lower()
    return {w for w in _WORD.findall(path) if len(w) > 2 and not w.isdigit()}


def line_rows(lines: list[Line], has_stops: bool, url: str | None = None) -> np.ndarray:
    """Feature rows of the dump's lines (ROW_FEATURES: LINE_FEATURES, then CONTEXT of the
    lines around), in order."""
    if not lines:
        return np.zeros((0, len(ROW_FEATURES)))
    own = np.hstack([np.array(_own_rows(lines, has_stops), dtype=float), _page_rows(lines, url)])
    columns = own[:, [LINE_FEATURES.index(name) for name in CONTEXT]]
    shifted = []
    for shift in CONTEXT_SHIFTS:
        moved = np.full_like(columns, -1.0)
        if shift < 0:
            moved[-shift:] = columns[:shift]
        else:
            moved[:-shift] = columns[shift:]
        shifted.append(moved)
    return np.hstack([own, *shifted])


def line_words(lines: list[Line]) -> list[set[str]]:
    """Each line's lower-case words, numbers left out (the model's word features)."""
    return [{w.lower() for w in _WORD.findall(line.text) if not w.isdigit()} for line in lines]


def _classify(lines: list[Line], story: np.ndarray, threshold: float) -> None:
    """Give each line a kind ('story', 'short', 'junk') and a weight for the run search from
    its story probability."""
    for line, p in zip(lines, story, strict=True):
        if COMMENTS_HEADING.match(line.text):
            line.kind, line.weight = "junk", W_COMMENTS
            continue
        if line.section_end:
            line.kind, line.weight = "junk", W_SECTION_END
            continue
        line.weight = 2.0 * (float(p) - threshold) * min(line.size, MAX_SIZE) / SIZE_UNIT
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
    raw, indents = [], []
    for part in split_lines(text):
        line = normalize_line(part)
        if line:
            spaced = part.replace("\t", "    ")
            raw.append(line)
            indents.append(len(spaced) - len(spaced.lstrip()))
    language = language or detect_language(" ".join(raw))
    stops = stopwords(language)
    return _features(raw, stops, indents), stops, language


@dataclass(frozen=True, slots=True)
class DumpLines:
    """A dump read for the line model: its lines, their feature rows and words."""

    lines: list[Line]
    stops: frozenset[str]
    language: str | None
    rows: np.ndarray  # ROW_FEATURES
    words: list[set[str]]
    grams: list[set[str]]  # `line_grams` of each line (the line words model's input)


def read_dump(text: str, language: str | None = None, url: str | None = None) -> DumpLines:
    """The dump's lines with everything the line model reads (training reads the same)."""
    lines, stops, language = _dump_lines(text, language)
    return DumpLines(
        lines, stops, language, line_rows(lines, bool(stops), url), line_words(lines),
        [line_grams(line.text) for line in lines],
    )


def _other_runs(lines: list[Line], start: int, end: int, floor: float) -> list[tuple[int, int]]:
    """The runs outside [start, end) whose total reaches `floor`: the densest segment of each
    stretch beside the runs found, repeatedly, in page order."""
    found: list[tuple[int, int]] = []
    stretches = [(0, start), (end, len(lines))]
    while stretches:
        lo, hi = stretches.pop()
        if hi - lo < 1:
            continue
        score, run_start, run_end = _max_segment(lines, lo, hi)
        if score <= 0 or score < floor:
            continue
        found.append((run_start, run_end))
        stretches += [(lo, run_start), (run_end, hi)]
    return sorted(found)


def _run_lines(lines: list[Line], story: np.ndarray, selection: Selection) -> list[int]:
    """The densest run of story lines, opened after a byline or a headline, and the other runs
    reaching the selection's share of its total; the story and short lines inside them that no
    boilerplate pattern matches."""
    _classify(lines, story, selection.value)
    start, end = _best_run(lines)
    others = []
    if selection.share < 1.0 and end > start:
        top = sum(line.weight for line in lines[start:end])
        others = _other_runs(lines, start, end, selection.share * top)
    start = _after_header(lines, start, end)
    if end - start > 1 and _headline_like(lines[start]):
        start += 1  # a run opening on an unpunctuated line opens on the headline
    runs = sorted([(start, end), *others])
    return [k for run_start, run_end in runs for k in range(run_start, run_end) if _keep(lines[k])]


def select_lines(lines: list[Line], story: np.ndarray, selection: Selection) -> list[int]:
    """Indexes of the story's lines given each line's story probability; the headlines a
    'Read more:' lead-in introduces are never story."""
    if not lines:
        return []
    kept = _run_lines(lines, story, selection)
    teasers = _after_lead_ins(lines)
    return [k for k in kept if k not in teasers]


def story_paragraphs(dump: DumpLines, story: np.ndarray, selection: Selection) -> list[str]:
    """The story's lines as paragraphs (a line repeated in the story kept once)."""
    return list(dict.fromkeys(dump.lines[k].text for k in select_lines(dump.lines, story, selection)))


def extract_dump(
    text: str, language: str | None = None, model: LineModel | None = None, url: str | None = None,
    kind: str | None = None,
) -> DumpArticle:
    """Title and story paragraphs of a whole-page text dump (`url`: the page's address, whose
    path words the model reads; `kind`: the page's kind, whose selection rule picks the lines);
    `model` replaces the shipped line model."""
    model = model or shipped_line_model()
    dump = read_dump(text, language, url)
    if not dump.lines:
        return DumpArticle("", [], dump.language)
    story = model.probabilities(dump.rows, dump.words, dump.grams)
    kept = select_lines(dump.lines, story, model.selection_for(kind))
    paragraphs = list(dict.fromkeys(dump.lines[k].text for k in kept))
    if not paragraphs:
        return DumpArticle("", [], dump.language)
    return DumpArticle(_title(dump.lines, kept[0], paragraphs, dump.stops), paragraphs, dump.language)
