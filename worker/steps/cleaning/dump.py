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

from worker.steps.cleaning.boilerplate import (
    BYLINE,
    DATE_LINE,
    LEAD_IN_INLINE,
    SECTION_END,
    is_junk_line,
    is_lead_in,
)
from worker.steps.cleaning.language import detect_language, stopwords
from worker.steps.cleaning.normalize import normalize_line, split_lines

_WORD = re.compile(r"\w+", re.UNICODE)
_BULLET = re.compile(r"^\s*(?:[*•·▪◦‣\-–]|\d{1,2}[.)])\s+")
_SENTENCE_END = re.compile(r"[.!?…。！？:;][\"'”’»)\]]*$")
_WIDE = re.compile(r"[\u1100-\u11ff\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")


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


def _size(text: str) -> float:
    wide = len(_WIDE.findall(text))
    return len(text) + 1.5 * wide


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
                size=_size(body),
                words=len(tokens),
                sentence=bool(_SENTENCE_END.search(body)),
                stop_ratio=stop,
                junk=is_junk_line(body),
                repeated=counts[text.casefold()] > 1,
            )
        )
    return lines


def _classify(lines: list[Line], has_stops: bool) -> None:
    for line in lines:
        if SECTION_END.match(line.text):
            line.kind, line.weight = "junk", -6.0
        elif line.junk or is_lead_in(line.text) or LEAD_IN_INLINE.match(line.text):
            line.kind, line.weight = "junk", -0.3
        elif line.repeated and line.size < 200:
            line.kind, line.weight = "junk", -1.0
        elif (
            line.size >= 70
            and line.sentence
            and (not has_stops or line.stop_ratio >= 0.08)
            and not (line.bullet and line.size < 120)
        ):
            line.kind, line.weight = "story", min(line.size, 500) / 80
        elif line.size >= 30 and line.sentence and not line.bullet:
            line.kind, line.weight = "short", 0.2
        elif line.bullet:
            line.kind, line.weight = "junk", -1.0
        else:
            line.kind, line.weight = "short", -0.7


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


def _best_run(lines: list[Line]) -> tuple[int, int]:
    """Maximum-sum segment [start, end) of line weights."""
    best, best_span = 0.0, (0, 0)
    total, start = 0.0, 0
    for k, line in enumerate(lines):
        if total <= 0:
            total, start = 0.0, k
        total += line.weight
        if total > best:
            best, best_span = total, (start, k + 1)
    return best_span


def _content_words(text: str, stops: frozenset[str]) -> set[str]:
    return {w.lower() for w in _WORD.findall(text) if w.lower() not in stops and not w.isdigit()}


def _title(lines: list[Line], start: int, lede: str, stops: frozenset[str]) -> str:
    lede_words = _content_words(lede, stops)
    best, best_score = "", 0.0
    for k in range(start - 1, max(-1, start - 25), -1):
        line = lines[k]
        if line.bullet or line.words < 3 or line.words > 35 or line.junk:
            continue
        if line.text.endswith(".") or BYLINE.match(line.text) or DATE_LINE.match(line.text):
            continue
        words = _content_words(line.text, stops)
        if not words:
            continue
        overlap = len(words & lede_words) / len(words)
        score = 0.2 + overlap + min(line.words, 15) / 60 - 0.02 * (start - 1 - k)
        if score > best_score:
            best, best_score = line.text, score
    return best


def extract_dump(text: str, language: str | None = None) -> DumpArticle:
    """Title and story paragraphs of a whole-page text dump."""
    raw = [normalize_line(t) for t in split_lines(text)]
    raw = [t for t in raw if t]
    language = language or detect_language(" ".join(raw))
    stops = stopwords(language)
    lines = _features(raw, stops)
    _classify(lines, bool(stops))
    _lead_in_blocks(lines)
    start, end = _best_run(lines)
    paragraphs = [
        line.text for line in lines[start:end] if line.kind == "story" or (
            line.kind == "short" and line.sentence
        )
    ]
    if not paragraphs:
        return DumpArticle("", [], language)
    return DumpArticle(_title(lines, start, paragraphs[0], stops), paragraphs, language)
