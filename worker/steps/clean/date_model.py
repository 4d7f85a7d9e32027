"""The publication-date chooser's model: a LightGBM booster scoring each day a page states or
shows (`clean.metadata.date_candidates`) as its story's publication day, and the score the best
candidate needs to be given (below it the page gets no date: a wrong date is worse than none).

The shipped model (`worker/data/date-model.json.gz`) is trained on labelled pages by
`bench/metadata_date_model.py --save`, its threshold chosen on inner site-grouped folds of the
training pages (bench/metadata.md).
"""

from __future__ import annotations

import gzip
import json
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from worker.steps.clean.model import DATA, predict

DATE_MODEL_FILE = DATA / "date-model.json.gz"


class DateModel:
    """A booster over a candidate day's features, and the score a day needs to be given."""

    def __init__(self, booster_text: str, threshold: float, features: tuple[str, ...]) -> None:
        import lightgbm

        self.booster: Any = lightgbm.Booster(model_str=booster_text)
        self.threshold = threshold
        self.features = features

    def scores(self, rows: list[list[float]]) -> np.ndarray:
        """The probability that each candidate (a row of features) is the publication day."""
        if not rows:
            return np.zeros(0)
        return predict(self.booster, np.array(rows, dtype=np.float64))

    def choose(self, candidates: list[tuple[date, list[float]]]) -> date | None:
        """The best-scored candidate day when it reaches the threshold, else None."""
        if not candidates:
            return None
        scores = self.scores([row for _, row in candidates])
        best = int(np.argmax(scores))
        return candidates[best][0] if scores[best] >= self.threshold else None

    def to_json(self) -> str:
        """The model as JSON (the booster as LightGBM's text)."""
        return json.dumps({"features": list(self.features), "threshold": self.threshold,
                           "booster": self.booster.model_to_string()})

    @classmethod
    def from_json(cls, text: str) -> DateModel:
        """A model written by `to_json`."""
        data = json.loads(text)
        return cls(data["booster"], float(data["threshold"]), tuple(data["features"]))


def save_date_model(model: DateModel, path: Path) -> None:
    """Write `model` gzipped at `path`."""
    path.write_bytes(gzip.compress(model.to_json().encode("utf-8"), mtime=0))


@lru_cache(maxsize=1)
def shipped_date_model() -> DateModel:
    """The committed model (`worker/data/date-model.json.gz`); its features must be the
    reader's (`clean.metadata.DATE_FEATURES`)."""
    from worker.steps.clean.metadata import DATE_FEATURES

    model = DateModel.from_json(gzip.decompress(DATE_MODEL_FILE.read_bytes()).decode("utf-8"))
    if model.features != DATE_FEATURES:
        raise ValueError(f"{DATE_MODEL_FILE} was trained on other features than the reader's")
    return model
