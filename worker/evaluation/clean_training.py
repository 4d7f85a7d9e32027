"""Training data and training for the cleaners' learned models (HTML blocks, text-dump lines).

A candidate (a block of the page, a line of the dump) is labelled with the share of its 4-token
shingles found in the page's true body; it is a story candidate when that share is at least
one half. Each page weighs the same in training, as in the metric: a candidate's weight is its
share of the page's tokens.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from worker.evaluation.extraction_metric import WORD, shingle_counts
from worker.steps.clean.model import LinearModel, fit
from worker.steps.common import host

STORY_SHARE = 0.5
L2 = 1.0


@dataclass(frozen=True, slots=True)
class LabelledPage:
    """One page's candidate feature rows, story labels (0/1) and sample weights."""

    rows: np.ndarray
    labels: np.ndarray
    weights: np.ndarray


def story_shares(texts: Sequence[str], truth: str) -> np.ndarray:
    """Share of each text's shingles (of a 1-3 token text: its tokens, in order) in `truth`."""
    true_shingles = shingle_counts(truth)
    joined = f" {' '.join(WORD.findall(truth))} "
    shares = np.zeros(len(texts))
    for k, text in enumerate(texts):
        tokens = WORD.findall(text)
        if not tokens:
            continue
        if len(tokens) < 4:
            shares[k] = float(f" {' '.join(tokens)} " in joined)
            continue
        own = shingle_counts(text)
        shares[k] = sum(min(n, true_shingles[s]) for s, n in own.items()) / sum(own.values())
    return shares


def labelled_page(texts: Sequence[str], rows: np.ndarray, truth: str) -> LabelledPage:
    """Labels and weights of one page's candidates."""
    tokens = np.array([len(WORD.findall(t)) for t in texts], dtype=float) + 1.0
    return LabelledPage(
        rows=rows,
        labels=(story_shares(texts, truth) >= STORY_SHARE).astype(float),
        weights=tokens / (tokens.sum() - len(tokens) + 1.0) if len(tokens) else tokens,
    )


def train(pages: Iterable[LabelledPage], features: tuple[str, ...]) -> LinearModel:
    """A logistic model over the candidates of `pages` (threshold: the natural 0.5)."""
    chosen = [p for p in pages if len(p.rows)]
    rows = np.vstack([p.rows for p in chosen])
    labels = np.concatenate([p.labels for p in chosen])
    weights = np.concatenate([p.weights for p in chosen])
    return fit(rows, labels, weights / weights.mean(), features, L2)


def site_of(url: str) -> str:
    """The registrable part of a url's host ('news.bbc.co.uk' -> 'bbc.co.uk'): pages of one
    site share a template, so they share a fold."""
    labels = host(url).split(".")
    keep = 3 if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL else 2
    return ".".join(labels[-keep:])


_SECOND_LEVEL = frozenset("co com org net ac gov edu ne or go".split())


def fold_of(ids: Iterable[str], folds: int, urls: Mapping[str, str] | None = None) -> dict[str, int]:
    """Fold number of each page id. With `urls`, the pages of one site (`site_of`) share a
    fold: sites, largest first (ties in a fixed hashed order), each go to the fold with the
    fewest pages so far. Without, ids in sorted order are dealt round-robin."""
    ordered = sorted(ids)
    if urls is None:
        return {page_id: k % folds for k, page_id in enumerate(ordered)}
    sites: dict[str, list[str]] = {}
    for page_id in ordered:
        sites.setdefault(site_of(urls.get(page_id, "")) or page_id, []).append(page_id)
    sizes = [0] * folds
    assignment = {}
    for site in sorted(sites, key=lambda s: (-len(sites[s]), hashlib.sha1(s.encode()).hexdigest())):
        k = sizes.index(min(sizes))
        sizes[k] += len(sites[site])
        assignment.update(dict.fromkeys(sites[site], k))
    return assignment


def fold_models(
    pages: Mapping[str, LabelledPage], folds: int, features: tuple[str, ...],
    urls: Mapping[str, str] | None = None,
) -> dict[str, LinearModel]:
    """For each page id, the model trained on every fold but the page's own (folds grouped by
    site when `urls` are given)."""
    assignment = fold_of(pages, folds, urls)
    models = [
        train((p for i, p in pages.items() if assignment[i] != k), features) for k in range(folds)
    ]
    return {page_id: models[k] for page_id, k in assignment.items()}


def labelled_pages(
    ids: Iterable[str], candidates: Callable[[str], tuple[Sequence[str], np.ndarray] | None],
    truth: Mapping[str, str],
) -> dict[str, LabelledPage]:
    """Labelled candidates of every page that yields some (`candidates` returns texts and rows)."""
    pages = {}
    for page_id in ids:
        found = candidates(page_id)
        if found is not None:
            texts, rows = found
            pages[page_id] = labelled_page(texts, rows, truth[page_id])
    return pages
