"""Training the publication-date model (`clean.date_model`) on labelled pages: LightGBM over each
candidate day's features (`clean.metadata.date_candidates`), the label being whether the day is
the page's labelled publication day; the threshold the best candidate needs is chosen on inner
site-grouped folds of the training pages by the articles' utility (+1 the labelled day, -1 a
wrong day or a day given to a page labelled with none, 0 no date: a wrong date is worse than
none). Every page kind trains the model (the undated ones teach it when a page's dates are not
its publication's). Used by `ingest-worker eval metadata` (a model per held-out fold) and
`bench/metadata_date_model.py` (the shipped model, trained on every fold).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np

from worker.steps.clean.date_model import DateModel
from worker.steps.clean.metadata import DATE_FEATURES

PARAMS = {
    "objective": "binary", "learning_rate": 0.05, "num_leaves": 15, "min_data_in_leaf": 10,
    "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1, "seed": 7, "verbose": -1,
    "num_threads": 1, "deterministic": True,
}
ROUNDS = 200
THRESHOLDS = tuple(round(0.05 * k, 2) for k in range(1, 19))
INNER_FOLDS = 3


@dataclass(frozen=True, slots=True)
class DatedPage:
    """One labelled page's date candidates (day and features, `DATE_FEATURES` in order)."""

    page_id: str
    host: str  # the url's host without 'www.': inner folds are grouped by it
    article: bool
    label: str | None  # the labelled day, YYYY-MM-DD (or a month, which no day matches); None: undated
    candidates: list[tuple[date, list[float]]]


def trainable(pages: Sequence[DatedPage]) -> bool:
    """Whether `pages` hold a candidate that is its page's labelled day and one that is not."""
    labels = {d.isoformat() == p.label for p in pages for d, _ in p.candidates}
    return labels == {True, False}


def fit(pages: Sequence[DatedPage], threshold: float = 0.5) -> DateModel:
    """A model trained on the candidates of `pages`, giving a day from `threshold` on."""
    import lightgbm

    x = np.array([f for p in pages for _, f in p.candidates], dtype=float).reshape(-1, len(DATE_FEATURES))
    y = np.array([float(d.isoformat() == p.label) for p in pages for d, _ in p.candidates])
    booster = lightgbm.train(PARAMS, lightgbm.Dataset(x, y), num_boost_round=ROUNDS)
    return DateModel(booster.model_to_string(), threshold, DATE_FEATURES)


def best_scores(model: DateModel, pages: Sequence[DatedPage]) -> list[tuple[date | None, float]]:
    """Each page's best candidate and its score ((None, 0) for a page without candidates)."""
    out: list[tuple[date | None, float]] = []
    for page in pages:
        if not page.candidates:
            out.append((None, 0.0))
            continue
        scores = model.scores([f for _, f in page.candidates])
        k = int(np.argmax(scores))
        out.append((page.candidates[k][0], float(scores[k])))
    return out


def given(model: DateModel, pages: Sequence[DatedPage]) -> list[date | None]:
    """The day `model` gives each page (None below its threshold)."""
    return [d if s >= model.threshold else None for d, s in best_scores(model, pages)]


def utility(pages: Sequence[DatedPage], days: Sequence[date | None]) -> int:
    """Over the articles: labelled days given, less wrong days and days given to undated ones."""
    total = 0
    for page, day in zip(pages, days, strict=True):
        if page.article and day is not None:
            total += 1 if page.label is not None and day.isoformat() == page.label else -1
    return total


def choose_threshold(pages: Sequence[DatedPage]) -> float:
    """The threshold with the best articles' utility over inner site-grouped folds of `pages`
    (ties: the higher threshold)."""
    groups = [int(hashlib.md5(p.host.encode()).hexdigest()[:8], 16) % INNER_FOLDS for p in pages]
    best: list[tuple[date | None, float]] = [(None, 0.0)] * len(pages)
    for k in range(INNER_FOLDS):
        test = [i for i, g in enumerate(groups) if g == k]
        inner = [p for p, g in zip(pages, groups, strict=True) if g != k]
        if not trainable(inner):  # a small set: this inner fold's pages stay unscored
            continue
        model = fit(inner)
        for i, scored in zip(test, best_scores(model, [pages[i] for i in test]), strict=True):
            best[i] = scored
    scores = {t: utility(pages, [d if s >= t else None for d, s in best]) for t in THRESHOLDS}
    return max(scores, key=lambda t: (scores[t], t))


def train(pages: Sequence[DatedPage]) -> DateModel:
    """The model trained on `pages`, its threshold chosen on their inner folds."""
    return fit(pages, choose_threshold(pages))
