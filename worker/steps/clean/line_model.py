"""The text-dump line model: gradient-boosted trees (LightGBM) over each line's features, the
common words it holds and a linear model's score of its words and word pairs (with the scores
of the lines around it), and the threshold of the run of story lines.

The shipped model (`worker/data/clean-lines.json.gz`) is trained on labelled dumps by
`bench/train_clean.py` (`worker/evaluation/dump_training.py`): the run's threshold and how much
of the page beyond its densest run is kept are chosen by cross-validation inside the training
pages, for every page kind (`clean.page_type`) with enough training pages and once for the rest.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import repeat
from pathlib import Path

import numpy as np
from scipy import sparse

from worker.steps.clean.page_type import PageTypeModel

DATA = Path(__file__).resolve().parents[2] / "data"
LINE_MODEL_FILE = DATA / "clean-lines.json.gz"
_TOKEN = re.compile(r"\w+", re.UNICODE)
_DIGIT = re.compile(r"\d")
# Columns the trees read after the dump's feature rows: the line words model's score of the
# line, of the two lines before and after (-10 beyond the page's ends), its mean over 7 and 21
# lines, and the line's score against the page's highest and mean scores and its rank in the page.
WORD_SCORE_FEATURES = (
    "word_score", "word_score@-1", "word_score@+1", "word_score@-2", "word_score@+2",
    "word_score_7", "word_score_21", "word_score_below_max", "word_score_above_mean", "word_score_rank",
)
_BEYOND = -10.0


def line_grams(text: str) -> set[str]:
    """The line's lower-case words (digits read as 0) and pairs of consecutive words."""
    tokens = _TOKEN.findall(_DIGIT.sub("0", text.lower()))
    return {*tokens, *map(" ".join, zip(tokens, tokens[1:], strict=False))}


@dataclass(frozen=True, slots=True)
class LineWordModel:
    """A linear model of a line's words and word pairs (each present one weighing
    1/sqrt(the line's distinct grams)): its score is the log-odds that the line is story."""

    weights: Mapping[str, float]
    intercept: float

    def scores(self, grams: Sequence[set[str]]) -> np.ndarray:
        """The score of each line given its `line_grams` (an exact sum: the same whatever order
        a set of grams is read in)."""
        get = self.weights.get
        return np.array([
            math.fsum(map(get, line, repeat(0.0, len(line)))) / math.sqrt(len(line)) if line else 0.0
            for line in grams
        ], dtype=float) + self.intercept


def _shifted(values: np.ndarray, shift: int) -> np.ndarray:
    moved = np.full_like(values, _BEYOND)
    if shift < 0:
        moved[-shift:] = values[:shift]
    else:
        moved[:-shift] = values[shift:]
    return moved


def window_mean(values: np.ndarray, half: int) -> np.ndarray:
    """Mean of `values` over the window of 2 * half + 1 lines centred on each line (cut at the
    page's ends)."""
    n = len(values)
    total = np.r_[0.0, np.cumsum(values)]
    lo = np.clip(np.arange(n) - half, 0, n)
    hi = np.clip(np.arange(n) + half + 1, 0, n)
    return (total[hi] - total[lo]) / (hi - lo)


def word_score_columns(scores: np.ndarray) -> np.ndarray:
    """The WORD_SCORE_FEATURES of a page's lines from their word scores, in order."""
    if len(scores) == 0:
        return np.zeros((0, len(WORD_SCORE_FEATURES)))
    rank = scores.argsort(kind="stable").argsort(kind="stable") / max(1, len(scores) - 1)
    return np.column_stack([
        scores, _shifted(scores, -1), _shifted(scores, 1), _shifted(scores, -2), _shifted(scores, 2),
        window_mean(scores, 3), window_mean(scores, 10), scores - scores.max(), scores - scores.mean(), rank,
    ])


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
    """Story probability of each line of a dump: a LightGBM booster over the line's feature row,
    the columns of the `line_words` model's scores (`word_score_columns`) and its words among
    `vocabulary` (one 0/1 column each), and the selection rule: one for each page kind in
    `by_kind`, `selection` for the others.

    `page_types` is the page-type classifier trained on the same pages (held-out evaluation);
    None: the shipped one classifies the page."""

    def __init__(
        self, features: Sequence[str], vocabulary: Sequence[str], booster: str, selection: Selection,
        line_words: LineWordModel, by_kind: Mapping[str, Selection] | None = None,
        page_types: PageTypeModel | None = None,
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
        self.line_words = line_words

    def selection_for(self, kind: str | None) -> Selection:
        """The selection rule of a page of `kind` (None: not classified)."""
        return self.by_kind.get(kind, self.selection) if kind else self.selection

    def probabilities(self, rows: np.ndarray, words: Sequence[set[str]], grams: Sequence[set[str]]) -> np.ndarray:
        """P(story) of each line (`rows`: its feature rows; `words`: its words; `grams`: its
        `line_grams`)."""
        if len(rows) == 0:
            return np.zeros(0)
        scored = np.hstack([rows, word_score_columns(self.line_words.scores(grams))])
        return np.asarray(self.booster.predict(line_matrix(scored, words, self.index), num_threads=1), dtype=float)

    def to_json(self) -> str:
        """The model as JSON (features, vocabulary and selection first, then the booster's text)."""
        return json.dumps({
            "features": list(self.features),
            "vocabulary": list(self.vocabulary),
            "selection": self.selection.to_dict(),
            "selection_by_kind": {kind: rule.to_dict() for kind, rule in sorted(self.by_kind.items())},
            "line_words": {
                "intercept": self.line_words.intercept, "weights": dict(sorted(self.line_words.weights.items())),
            },
            "booster": self.booster_text,
        }, ensure_ascii=False, indent=0)

    @classmethod
    def from_json(cls, text: str) -> LineModel:
        """Read a model written by `to_json`."""
        raw = json.loads(text)
        by_kind = {kind: Selection.from_dict(rule) for kind, rule in raw.get("selection_by_kind", {}).items()}
        line_words = LineWordModel(raw["line_words"]["weights"], float(raw["line_words"]["intercept"]))
        return cls(raw["features"], raw["vocabulary"], raw["booster"], Selection.from_dict(raw["selection"]),
                   line_words, by_kind)


@lru_cache(maxsize=1)
def shipped_line_model() -> LineModel:
    """The committed model, checked against the features the code computes."""
    from worker.steps.clean.dump import ROW_FEATURES

    model = LineModel.from_json(gzip.decompress(LINE_MODEL_FILE.read_bytes()).decode("utf-8"))
    if model.features != ROW_FEATURES + WORD_SCORE_FEATURES:
        raise RuntimeError(f"{LINE_MODEL_FILE} was trained on other features; run bench/train_clean.py")
    return model
