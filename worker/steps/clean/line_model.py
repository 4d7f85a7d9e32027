"""The text-dump line model: gradient-boosted trees (LightGBM) over each line's features and
the common words it holds, and the threshold of the run of story lines.

The shipped model (`worker/data/clean-lines.json`) is trained on labelled dumps by
`bench/train_clean.py` (`worker/evaluation/dump_training.py`): the run's threshold and how much
of the page beyond its densest run is kept are chosen by cross-validation inside the training
pages, for every page kind (`clean.page_type`) with enough training pages and once for the rest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import sparse

from worker.steps.clean.page_type import PageTypeModel

DATA = Path(__file__).resolve().parents[2] / "data"
LINE_MODEL_FILE = DATA / "clean-lines.json"


@dataclass(frozen=True, slots=True)
class Selection:
    """How the story's lines are picked from their probabilities: 'run', the densest run of
    lines above the threshold `value`, and every other run outside it whose total reaches
    `share` of the densest run's (1.0: the densest run alone; forum replies and listing items
    are runs of their own)."""

    rule: str
    value: float
    share: float = 1.0

    def __post_init__(self) -> None:
        if self.rule != "run":
            raise ValueError(f"unknown selection rule {self.rule!r}")
        if not 0.0 < self.share <= 1.0:
            raise ValueError(f"a run's share must be in (0, 1], not {self.share}")

    def to_dict(self) -> dict[str, object]:
        """The selection as JSON fields."""
        return {"rule": self.rule, "value": self.value, "share": self.share}

    @classmethod
    def from_dict(cls, raw: Mapping[str, object]) -> Selection:
        """Read a selection written by `to_dict`."""
        return cls(str(raw["rule"]), float(str(raw["value"])), float(str(raw.get("share", 1.0))))


def line_matrix(rows: np.ndarray, words: Sequence[set[str]], index: Mapping[str, int]) -> sparse.csr_matrix:
    """The model's input: the feature rows, then one 0/1 column per vocabulary word (`index`:
    word -> column)."""
    found_rows, found_columns = [], []
    for k, line_words in enumerate(words):
        for word in line_words:
            column = index.get(word)
            if column is not None:
                found_rows.append(k)
                found_columns.append(column)
    present = sparse.csr_matrix(
        (np.ones(len(found_rows)), (found_rows, found_columns)), shape=(len(words), len(index))
    )
    return sparse.hstack([sparse.csr_matrix(rows), present], format="csr")


class LineModel:
    """Story probability of each line of a dump: a LightGBM booster over the line's feature row
    and its words among `vocabulary` (one 0/1 column each), and the selection rule: one for
    each page kind in `by_kind`, `selection` for the others.

    `page_types` is the page-type classifier trained on the same pages (held-out evaluation);
    None: the shipped one classifies the page."""

    def __init__(
        self, features: Sequence[str], vocabulary: Sequence[str], booster: str, selection: Selection,
        by_kind: Mapping[str, Selection] | None = None, page_types: PageTypeModel | None = None,
    ):
        import lightgbm

        self.features = tuple(features)
        self.vocabulary = tuple(vocabulary)
        self.index = {word: k for k, word in enumerate(self.vocabulary)}
        self.booster_text = booster
        self.booster = lightgbm.Booster(model_str=booster)
        self.selection = selection
        self.by_kind = dict(by_kind or {})
        self.page_types = page_types

    def selection_for(self, kind: str | None) -> Selection:
        """The selection rule of a page of `kind` (None: not classified)."""
        return self.by_kind.get(kind, self.selection) if kind else self.selection

    def probabilities(self, rows: np.ndarray, words: Sequence[set[str]]) -> np.ndarray:
        """P(story) of each line."""
        if len(rows) == 0:
            return np.zeros(0)
        return np.asarray(self.booster.predict(line_matrix(rows, words, self.index), num_threads=1), dtype=float)

    def to_json(self) -> str:
        """The model as JSON (features, vocabulary and selection first, then the booster's text)."""
        return json.dumps({
            "features": list(self.features),
            "vocabulary": list(self.vocabulary),
            "selection": self.selection.to_dict(),
            "selection_by_kind": {kind: rule.to_dict() for kind, rule in sorted(self.by_kind.items())},
            "booster": self.booster_text,
        }, ensure_ascii=False, indent=0)

    @classmethod
    def from_json(cls, text: str) -> LineModel:
        """Read a model written by `to_json`."""
        raw = json.loads(text)
        by_kind = {kind: Selection.from_dict(rule) for kind, rule in raw.get("selection_by_kind", {}).items()}
        return cls(raw["features"], raw["vocabulary"], raw["booster"], Selection.from_dict(raw["selection"]), by_kind)


@lru_cache(maxsize=1)
def shipped_line_model() -> LineModel:
    """The committed model, checked against the features the code computes."""
    from worker.steps.clean.dump import ROW_FEATURES

    model = LineModel.from_json(LINE_MODEL_FILE.read_text(encoding="utf-8"))
    if model.features != ROW_FEATURES:
        raise RuntimeError(f"{LINE_MODEL_FILE} was trained on other features; run bench/train_clean.py")
    return model
