"""The block model of the HTML cleaner: gradient-boosted trees (LightGBM) over block features,
and a second, smaller set of trees over each block's context (`clean.context`: the first
trees' probabilities of its neighbours, of the blocks sharing its ancestors and of the page).

A model file is one JSON header line (the feature names, the keep threshold, whether the
boilerplate paragraph filter runs after it, the training choices, and the context trees in
LightGBM's text format when there are any) followed by LightGBM's own text format of the
first trees, gzip-compressed. The shipped model (`worker/data/clean-blocks.lgb.gz`)
is trained by `bench/train_clean.py`; `ingest-worker eval extraction --folds K` trains the same way on K-1
folds and scores the held-out fold.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np

from worker.steps.clean.blocks import FEATURES, PageBlocks
from worker.steps.clean.context import (
    CONTEXT_FEATURES,
    STORY_PAGE_CUT,
    STORY_PAGE_FEATURES,
    context_rows,
    story_page_row,
)
from worker.steps.clean.model import DATA, predict

SHIPPED = DATA / "clean-blocks.lgb.gz"
_LOG_WORDS = FEATURES.index("log_words")


def expected_f1_keep(probabilities: np.ndarray, words: np.ndarray, power: float) -> np.ndarray:
    """Which blocks to keep so that the page's expected word F1 is highest, each block's words
    being story with probability `probabilities` raised to `power` (above 1: the doubtful
    blocks count for less): the most probable blocks, down to the cut where the approximation
    2·E[kept story words] / (kept words + E[story words]) peaks. Where most blocks of a page
    are doubtful (a listing, a product page) it keeps more than a fixed threshold would, and
    where a clear story stands among weaker blocks, less."""
    keep = np.zeros(len(probabilities), dtype=bool)
    if len(probabilities) == 0:
        return keep
    likely = np.power(probabilities, power) * words
    order = np.argsort(-probabilities, kind="stable")
    expected = 2.0 * np.cumsum(likely[order]) / np.maximum(1e-9, np.cumsum(words[order]) + likely.sum())
    keep[order[: int(np.argmax(expected)) + 1]] = True
    return keep


@dataclass(frozen=True)
class BlockModel:
    """Trees scoring each block's P(main content), then (`context`, when there is one) trees
    rescoring it from the first trees' probabilities around it; a block is kept at `threshold`
    or above, and `filter_after` says whether the boilerplate paragraph filter then runs."""

    booster: Any  # lightgbm.Booster
    features: tuple[str, ...]
    threshold: float = 0.5
    filter_after: bool = True
    choices: dict[str, Any] = field(default_factory=dict)  # what training chose, for the record
    context: Any = None  # lightgbm.Booster over `CONTEXT_FEATURES`, or None
    story: Any = None  # lightgbm.Booster over `STORY_PAGE_FEATURES` (does the page hold a story?), or None
    # the keep threshold of a page the story-page trees find no story on (the first trees'
    # probabilities stand): the one the inner folds chose for the first trees alone
    plain_threshold: float | None = None
    # on a page with a story, keep the blocks of the highest expected word F1 from the context
    # trees' probabilities raised to this power (`expected_f1_keep`) instead of a threshold
    power: float | None = None

    def probabilities(self, rows: np.ndarray) -> np.ndarray:
        """The first trees' P(main content) of each feature row."""
        if len(rows) == 0:
            return np.zeros(0)
        return np.asarray(predict(self.booster, rows), dtype=float)

    def scores(self, blocks: PageBlocks) -> tuple[np.ndarray, float]:
        """P(main content) of each block of a page and the threshold that keeps a block: the
        context trees' probabilities at `threshold` when the model has them and the story-page
        trees find a story on the page; otherwise the first trees' own (on a page of links, an
        index or an error page there is no story for the context to extend), kept at
        `plain_threshold`, as the model without context trees would keep them."""
        probabilities, threshold, _ = self._scored(blocks)
        return probabilities, threshold

    def keep(self, blocks: PageBlocks) -> np.ndarray:
        """Which blocks of a page the model keeps: those of the highest expected word F1
        (`expected_f1_keep`) when the model has a `power` and the context trees score the
        page, else those at or above the threshold of `scores`."""
        probabilities, threshold, context = self._scored(blocks)
        if context and self.power is not None:
            return expected_f1_keep(probabilities, np.expm1(blocks.features[:, _LOG_WORDS]), self.power)
        return probabilities >= threshold

    def _scored(self, blocks: PageBlocks) -> tuple[np.ndarray, float, bool]:
        first = self.probabilities(blocks.features)
        if self.context is None or len(first) == 0:
            return first, self.threshold, False
        rows = context_rows(blocks, first)
        if self.story is not None:
            story = float(predict(self.story, story_page_row(blocks, first, rows))[0])
            if story < STORY_PAGE_CUT:
                return first, self.threshold if self.plain_threshold is None else self.plain_threshold, False
        return np.asarray(predict(self.context, rows), dtype=float), self.threshold, True

    def to_text(self) -> str:
        """The model file's text: a JSON header line, then the trees."""
        header = {"features": list(self.features), "threshold": self.threshold,
                  "plain_threshold": self.plain_threshold, "power": self.power,
                  "filter_after": self.filter_after, "choices": self.choices,
                  "context_features": list(CONTEXT_FEATURES) if self.context is not None else [],
                  "context": self.context.model_to_string() if self.context is not None else None,
                  "story_page_features": list(STORY_PAGE_FEATURES) if self.story is not None else [],
                  "story": self.story.model_to_string() if self.story is not None else None}
        return json.dumps(header) + "\n" + self.booster.model_to_string()

    def write(self, path: Path) -> None:
        """Write the model file, gzip-compressed (the same bytes for the same model)."""
        path.write_bytes(gzip.compress(self.to_text().encode("utf-8"), mtime=0))

    @classmethod
    def from_text(cls, text: str) -> BlockModel:
        """Read a model written by `to_text`."""
        first, _, trees = text.partition("\n")
        header = json.loads(first)
        booster = lightgbm.Booster(model_str=trees)
        context = header.get("context")
        if context is not None and tuple(header.get("context_features") or ()) != CONTEXT_FEATURES:
            raise ValueError("the model's context trees were trained on other context features")
        story = header.get("story")
        if story is not None and tuple(header.get("story_page_features") or ()) != STORY_PAGE_FEATURES:
            raise ValueError("the model's story-page trees were trained on other page features")
        return cls(booster, tuple(header["features"]), float(header["threshold"]),
                   bool(header["filter_after"]), dict(header.get("choices") or {}),
                   lightgbm.Booster(model_str=context) if context is not None else None,
                   lightgbm.Booster(model_str=story) if story is not None else None,
                   None if header.get("plain_threshold") is None else float(header["plain_threshold"]),
                   None if header.get("power") is None else float(header["power"]))


@lru_cache(maxsize=1)
def shipped_blocks() -> BlockModel:
    """The committed block model, checked against the features the code computes."""
    model = BlockModel.from_text(gzip.decompress(SHIPPED.read_bytes()).decode("utf-8"))
    if model.features != FEATURES:
        raise RuntimeError(f"{SHIPPED.name} was trained on other features; run bench/train_clean.py")
    return model
