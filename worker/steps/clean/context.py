"""Context features of the HTML cleaner's second stage: what the first stage thinks of a block's
surroundings.

An article's body is contiguous and shares its containers; a teaser, a reader comment or a
menu item that the first stage scores high on its own sits among blocks it scores low. The
second stage reads, for each block, the first stage's probabilities of its neighbours (one and
two blocks away, window means), of the blocks sharing each of its nearest ancestors (mean, max,
share of words kept), of the whole page (share of words kept, the densest run of kept blocks
and whether the block lies in it), the block's own probability and a few of its first-stage
features. Everything here is a handful of numpy passes over the page's blocks.
"""

from __future__ import annotations

import math

import numpy as np

from worker.steps.clean.blocks import FEATURES, PAGE_FEATURES, PageBlocks

_LEVELS = 4
_CUT = 0.5  # "kept" in the context features (the keep threshold itself is chosen later)
_OWN = (
    "log_words", "link_density", "sentence_end", "stop_ratio", "position", "in_best",
    "named_comment", "named_furniture", "under_aside", "page_log_words", "page_repeat_share",
)
_OWN_COLUMNS = tuple(FEATURES.index(name) for name in _OWN)

CONTEXT_FEATURES = (
    "p", "p_prev", "p_next", "p_prev2", "p_next2", "p_window3", "p_window8", "p_window3_words",
    *(f"up{k}_{what}" for k in range(1, _LEVELS + 1) for what in ("mean", "max", "kept_words", "rank")),
    "page_kept_words", "page_mean_words", "page_kept_blocks", "run_share", "in_run", "run_gap",
    "before_run", "p_rank",
    *(f"own_{name}" for name in _OWN),
)


def _shifted(values: np.ndarray, by: int, fill: float) -> np.ndarray:
    out = np.full_like(values, fill)
    if by > 0:
        out[by:] = values[:-by]
    elif by < 0:
        out[:by] = values[-by:]
    return out


def _window(values: np.ndarray, half: int) -> np.ndarray:
    """Mean of `values` over `half` blocks each side, the block itself left out."""
    n = len(values)
    index = np.arange(n)
    lo, hi = np.maximum(0, index - half), np.minimum(n, index + half + 1)
    sums = np.concatenate([[0.0], np.cumsum(values)])
    return (sums[hi] - sums[lo] - values) / np.maximum(1, hi - lo - 1)


def _densest_run(gain: np.ndarray) -> tuple[int, int]:
    """[start, end) of the run of blocks with the largest sum of `gain` (empty when none is
    positive)."""
    best, best_span = 0.0, (0, 0)
    total, start = 0.0, 0
    for k, g in enumerate(gain):
        if total < 0.0:
            total, start = 0.0, k
        total += g
        if total > best:
            best, best_span = total, (start, k + 1)
    return best_span


def context_rows(blocks: PageBlocks, p: np.ndarray) -> np.ndarray:
    """One row of `CONTEXT_FEATURES` per block, from the first stage's probabilities `p`."""
    n = len(p)
    if n == 0:
        return np.zeros((0, len(CONTEXT_FEATURES)))
    rows = blocks.features
    words = np.expm1(rows[:, FEATURES.index("log_words")])
    total = float(words.sum()) or 1.0
    kept = p >= _CUT
    columns = [
        p, _shifted(p, 1, 0.0), _shifted(p, -1, 0.0), _shifted(p, 2, 0.0), _shifted(p, -2, 0.0),
        _window(p, 3), _window(p, 8),
        _window(p * words, 3) / np.maximum(1e-9, _window(words, 3)),
    ]
    order = np.argsort(p, kind="stable")
    rank = np.empty(n)
    rank[order] = np.arange(n) / max(1, n - 1)
    for level in range(_LEVELS):
        group = blocks.ancestors[:, level]
        size = np.bincount(group).astype(float)
        mean = np.bincount(group, weights=p) / np.maximum(1.0, size)
        peak = np.zeros(len(size))
        np.maximum.at(peak, group, p)
        group_words = np.bincount(group, weights=words)
        kept_words = np.bincount(group, weights=words * kept) / np.maximum(1.0, group_words)
        # the block's place among its group's probabilities: 1 when it is the group's highest
        columns += [mean[group], peak[group], kept_words[group], p / np.maximum(1e-9, peak[group])]
    start, end = _densest_run(np.where(kept, words, -words * (1.0 - p)))
    run_words = float(words[start:end].sum())
    index = np.arange(n)
    in_run = (index >= start) & (index < end)
    gap = np.where(in_run, 0, np.where(index < start, start - index, index - end + 1))
    columns += [
        np.full(n, float((words * kept).sum()) / total),
        np.full(n, float((words * p).sum()) / total),
        np.full(n, float(kept.mean())),
        np.full(n, run_words / total),
        in_run.astype(float),
        np.fromiter(map(math.log1p, gap.tolist()), dtype=float, count=n),  # math's logs, as the blocks'
        (index < start).astype(float),
        rank,
    ]
    return np.hstack([np.column_stack(columns), rows[:, _OWN_COLUMNS]])


# A page's row for the story-page trees (does the page hold a story the context trees may
# extend?): how sure the first stage is of its best blocks, how many words it would keep, the
# densest run of them, and the page's own features.
STORY_PAGE_FEATURES = (
    "p_max", "p_top3", "log_kept_words", "log_expected_words",
    "page_kept_words", "page_mean_words", "page_kept_blocks", "run_share",
    *PAGE_FEATURES,
)
STORY_PAGE_CUT = 0.5  # a page holds a story when the story-page trees say so at this or above
_PAGE_CONTEXT = tuple(CONTEXT_FEATURES.index(name) for name in STORY_PAGE_FEATURES[4:8])
_PAGE_COLUMNS = tuple(FEATURES.index(name) for name in PAGE_FEATURES)


def story_page_row(blocks: PageBlocks, p: np.ndarray, context: np.ndarray) -> np.ndarray:
    """One row of `STORY_PAGE_FEATURES` for a page with blocks, from the first stage's
    probabilities `p` and the page's context rows (`context_rows`)."""
    words = np.expm1(blocks.features[:, FEATURES.index("log_words")])
    top = np.sort(p)[::-1][:3]
    own = [float(p.max()), float(top.mean()), math.log1p(float(words[p >= _CUT].sum())),
           math.log1p(float((words * p).sum()))]
    return np.concatenate([own, context[0, _PAGE_CONTEXT], blocks.features[0, _PAGE_COLUMNS]])[None, :]
