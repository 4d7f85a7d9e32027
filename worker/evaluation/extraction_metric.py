"""Shingle-overlap F1, the article-extraction benchmark's metric (4-token shingles of `\\w+`
tokens, per-page normalised counts, macro precision and recall)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

WORD = re.compile(r"\w+", re.UNICODE)
PAGE_TYPES = ("article", "forum", "product", "collection", "listing", "documentation", "service")
SHINGLE_LEN = 4

Triple = tuple[float, float, float]


@dataclass(frozen=True, slots=True)
class Score:
    """Macro F1, precision and recall over `pages` pages, and the extractor's CPU seconds."""

    f1: float
    precision: float
    recall: float
    pages: int
    seconds: float
    types: dict[str, float] = field(default_factory=dict)  # F1 by page type (labelled by type)

    @property
    def pages_per_second(self) -> float:
        """Pages handled per CPU second (0 when nothing was timed)."""
        return self.pages / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_ms_per_page(self) -> float:
        """CPU milliseconds per page (0 when no page was scored)."""
        return 1000 * self.seconds / self.pages if self.pages else 0.0


def shingle_counts(text: str) -> Counter[tuple[str, ...]]:
    """The multiset of 4-token shingles of `text` (one shorter shingle for 1-3 tokens)."""
    tokens = WORD.findall(text or "")
    if not tokens:
        return Counter()
    if len(tokens) < SHINGLE_LEN:
        return Counter([tuple(tokens)])
    return Counter(
        tuple(tokens[k : k + SHINGLE_LEN]) for k in range(len(tokens) - SHINGLE_LEN + 1)
    )


def page_counts(truth: str, prediction: str) -> Triple:
    """Normalised (tp, fp, fn) of one page: shared, extra and missing shingles over their sum."""
    true_shingles = shingle_counts(truth)
    predicted = shingle_counts(prediction)
    tp = sum((true_shingles & predicted).values())
    fp = sum(predicted.values()) - tp
    fn = sum(true_shingles.values()) - tp
    total = tp + fp + fn
    if total == 0:
        return 0.0, 0.0, 0.0
    return tp / total, fp / total, fn / total


def _precision(tp: float, fp: float, fn: float) -> float:
    if fp == 0 and fn == 0:
        return 1.0
    if tp == 0 and fp == 0:
        return 0.0
    return tp / (tp + fp)


def _recall(tp: float, fp: float, fn: float) -> float:
    if fp == 0 and fn == 0:
        return 1.0
    if tp == 0 and fn == 0:
        return 0.0
    return tp / (tp + fn)


def aggregate(triples: Iterable[Triple]) -> tuple[float, float, float]:
    """(F1, precision, recall) from per-page triples: macro means, F1 their harmonic mean."""
    rows = list(triples)
    precisions = [_precision(*t) for t in rows if t[0] + t[1] > 0]
    recalls = [_recall(*t) for t in rows if t[0] + t[2] > 0]
    p = sum(precisions) / len(precisions) if precisions else 0.0
    r = sum(recalls) / len(recalls) if recalls else 0.0
    f1 = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return f1, p, r


def score_predictions(
    truth: Mapping[str, str], predictions: Mapping[str, str]
) -> tuple[float, float, float]:
    """(F1, precision, recall) of `predictions` against `truth`; a missing id is an empty body."""
    return aggregate(page_counts(truth[i], predictions.get(i, "")) for i in truth)


# --- word-bag F1: the WCXB benchmark's metric -------------------------------------------------


def word_prf(truth: str, prediction: str) -> Triple:
    """(precision, recall, F1) of one page on lower-cased `\\w+` tokens as multisets (WCXB's
    `score.py`): an empty truth scores 1 against an empty prediction and 0 otherwise, an empty
    prediction scores 0."""
    predicted = Counter(WORD.findall((prediction or "").lower()))
    true_words = Counter(WORD.findall((truth or "").lower()))
    if not true_words:
        return (1.0, 1.0, 1.0) if not predicted else (0.0, 0.0, 0.0)
    if not predicted:
        return 0.0, 0.0, 0.0
    overlap = sum((predicted & true_words).values())
    precision, recall = overlap / sum(predicted.values()), overlap / sum(true_words.values())
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def mean_words(rows: Iterable[Triple]) -> tuple[float, float, float]:
    """(F1, precision, recall) as means over pages of per-page word-bag figures."""
    found = list(rows)
    if not found:
        return 0.0, 0.0, 0.0
    return (sum(r[2] for r in found) / len(found), sum(r[0] for r in found) / len(found),
            sum(r[1] for r in found) / len(found))
