"""Shingle-overlap F1, the article-extraction benchmark's metric (4-token shingles of `\\w+`
tokens, per-page normalised counts, macro precision and recall)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

WORD = re.compile(r"\w+", re.UNICODE)
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

    @property
    def pages_per_second(self) -> float:
        """Pages handled per CPU second (0 when nothing was timed)."""
        return self.pages / self.seconds if self.seconds > 0 else 0.0


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
