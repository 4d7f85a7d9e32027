"""Training data and training for the cleaners' learned models (HTML blocks, text-dump lines).

A candidate (a block of the page, a line of the dump) is labelled with the share of its 4-token
shingles found in the page's true body; it is a story candidate when that share is at least
one half. Each page weighs the same in training, as in the metric: a candidate's weight is its
share of the page's tokens.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from worker.evaluation.extraction_metric import WORD, shingle_counts, word_prf
from worker.steps.clean.blocks import FEATURES
from worker.steps.clean.trees import BlockModel
from worker.steps.common import host

STORY_SHARE = 0.5


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


# --- the HTML cleaner's trees: choices made inside the training pages ---------------------


@dataclass(frozen=True, slots=True)
class BlockPage:
    """One labelled page for the block model: its blocks' texts, feature rows (`FEATURES`),
    labels and weights, and its true body."""

    texts: list[str]
    rows: np.ndarray
    labels: np.ndarray
    weights: np.ndarray
    truth: str


@dataclass(frozen=True, slots=True)
class TreeChoice:
    """What inner folds choose: tree size and count, the keep threshold and whether the
    boilerplate paragraph filter runs after the model."""

    leaves: int
    trees: int
    threshold: float
    filter_after: bool


LEAVES = (31,)
TREES = (150, 300)
THRESHOLDS = (0.2, 0.3, 0.4, 0.5)
FILTERS = (False, True)
INNER_FOLDS = 3


def block_page(texts: Sequence[str], rows: np.ndarray, truth: str) -> BlockPage:
    """Labels and weights of one page's blocks (as `labelled_page`)."""
    page = labelled_page(texts, rows, truth)
    return BlockPage(list(texts), rows, page.labels, page.weights, truth)


def fit_trees(pages: Sequence[BlockPage], leaves: int, trees: int) -> Any:
    """LightGBM trees over the blocks of `pages` (each page weighs the same)."""
    import lightgbm

    chosen = [p for p in pages if len(p.rows)]
    rows = np.vstack([p.rows for p in chosen])
    labels = np.concatenate([p.labels for p in chosen])
    weights = np.concatenate([p.weights for p in chosen])
    params = {
        "objective": "binary", "num_leaves": leaves, "learning_rate": 0.1, "min_child_samples": 40,
        "feature_fraction": 0.5, "bagging_fraction": 0.5, "bagging_freq": 1, "lambda_l2": 1.0,
        "verbose": -1, "num_threads": 1, "seed": 1, "deterministic": True, "force_row_wise": True, "max_bin": 63,
    }
    return lightgbm.train(params, lightgbm.Dataset(rows, labels, weight=weights / weights.mean()),
                          num_boost_round=trees)


def _kept_text(page: BlockPage, probabilities: np.ndarray, threshold: float, filter_after: bool) -> str:
    from worker.steps.clean.html import drop_junk, filter_paragraphs

    kept = [t for t, p in zip(page.texts, probabilities, strict=True) if p >= threshold]
    return "\n".join(filter_paragraphs(kept) if filter_after else drop_junk(kept))


def choose_trees(pages: Mapping[str, BlockPage], urls: Mapping[str, str],
                 folds: int = INNER_FOLDS) -> tuple[TreeChoice, float]:
    """The choice with the best mean word F1 over `folds` site-grouped folds of `pages` (each
    fold scored by trees trained on the others), and that F1."""
    assignment = fold_of(pages, folds, urls)
    probabilities: dict[tuple[int, int], dict[str, np.ndarray]] = {}
    for leaves in LEAVES:
        for k in range(folds):
            training = [p for i, p in pages.items() if assignment[i] != k and len(p.rows)]
            if not training or k not in assignment.values():
                continue
            booster = fit_trees(training, leaves, max(TREES))
            for i, page in pages.items():
                if assignment[i] != k:
                    continue
                for trees in TREES:
                    found = booster.predict(page.rows, num_iteration=trees) if len(page.rows) else np.zeros(0)
                    probabilities.setdefault((leaves, trees), {})[i] = found
    best: tuple[TreeChoice, float] | None = None
    for (leaves, trees), found in probabilities.items():
        for threshold in THRESHOLDS:
            for filter_after in FILTERS:
                f1 = float(np.mean([
                    word_prf(page.truth, _kept_text(page, found[i], threshold, filter_after))[2]
                    for i, page in pages.items() if i in found
                ]))
                if best is None or f1 > best[1]:
                    best = (TreeChoice(leaves, trees, threshold, filter_after), f1)
    return best or (TreeChoice(LEAVES[0], TREES[0], 0.5, True), 0.0)


def train_block_model(pages: Mapping[str, BlockPage], urls: Mapping[str, str]) -> BlockModel:
    """Choose inside `pages` (`choose_trees`), then train on all of them."""
    choice, inner_f1 = choose_trees(pages, urls)
    booster = fit_trees(list(pages.values()), choice.leaves, choice.trees)
    return BlockModel(booster, FEATURES, choice.threshold, choice.filter_after,
                      {**asdict(choice), "inner_f1": round(inner_f1, 4), "pages": len(pages)})


def block_fold_models(pages: Mapping[str, BlockPage], urls: Mapping[str, str],
                      folds: int) -> dict[str, BlockModel]:
    """For each page id, the block model trained (choices included) on every outer fold but
    the page's own."""
    assignment = fold_of(pages, folds, urls)
    models = [train_block_model({i: p for i, p in pages.items() if assignment[i] != k}, urls)
              for k in range(folds)]
    return {page_id: models[k] for page_id, k in assignment.items()}
