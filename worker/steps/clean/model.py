"""A small logistic-regression model: the learned weights the cleaners score blocks and lines with.

The shipped models (`worker/data/clean-*.json`) are trained on labelled pages by
`bench/train_clean.py`; `ingest-worker eval extraction --folds K` trains the same way on
k-1 folds and scores the held-out fold.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from worker.steps.clean.line_model import LineModel

DATA = Path(__file__).resolve().parents[2] / "data"
NEWTON_STEPS = 25


@dataclass(frozen=True)
class LinearModel:
    """Logistic regression over standardised features; `threshold` is the keep decision."""

    features: tuple[str, ...]
    weights: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    threshold: float = 0.5

    def probabilities(self, rows: np.ndarray) -> np.ndarray:
        """P(story) of each feature row."""
        if len(rows) == 0:
            return np.zeros(0)
        z = ((rows - self.mean) / self.scale) @ self.weights
        return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))

    def to_json(self) -> str:
        """The model as JSON, one feature a line (name, weight, mean, scale: a diff is readable)."""
        rows = ",\n".join(
            f'  "{name}": {{"weight": {w:.6f}, "mean": {m:.6f}, "scale": {s:.6f}}}'
            for name, w, m, s in zip(self.features, self.weights, self.mean, self.scale, strict=True)
        )
        return f'{{"threshold": {self.threshold},\n "features": {{\n{rows}\n }}\n}}'

    @classmethod
    def from_json(cls, text: str) -> LinearModel:
        """Read a model written by `to_json`."""
        raw = json.loads(text)
        names = tuple(raw["features"])
        column = lambda key: np.array([raw["features"][n][key] for n in names], dtype=float)  # noqa: E731
        return cls(names, column("weight"), column("mean"), column("scale"), float(raw["threshold"]))


def fit(
    rows: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray, features: tuple[str, ...], l2: float = 1.0
) -> LinearModel:
    """L2-regularised logistic regression by Newton's method (a few hundred thousand rows at
    most: the exact solve is fast and needs no learning rate)."""
    mean = rows.mean(axis=0)
    scale = rows.std(axis=0)
    constant = scale == 0
    mean[constant], scale[constant] = 0.0, 1.0
    z = (rows - mean) / scale
    weights = np.zeros(z.shape[1])
    ridge = l2 * np.eye(z.shape[1])
    for _ in range(NEWTON_STEPS):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ weights, -40, 40)))
        gradient = z.T @ (sample_weight * (p - labels)) + l2 * weights
        hessian = (z * (sample_weight * p * (1 - p))[:, None]).T @ z + ridge
        step = np.linalg.solve(hessian, gradient)
        weights -= step
        if np.abs(step).max() < 1e-6:
            break
    return LinearModel(features, weights, mean, scale)


@dataclass(frozen=True)
class CleanModels:
    """Models to clean with instead of the shipped ones (the evaluation's fold models)."""

    blocks: LinearModel | None = None
    lines: LineModel | None = None


@lru_cache(maxsize=4)
def shipped(name: str, features: tuple[str, ...]) -> LinearModel:
    """The committed model `worker/data/clean-<name>.json`, checked against the feature list."""
    model = LinearModel.from_json((DATA / f"clean-{name}.json").read_text(encoding="utf-8"))
    if model.features != features:
        raise RuntimeError(
            f"worker/data/clean-{name}.json was trained on other features; run bench/train_clean.py"
        )
    return model
