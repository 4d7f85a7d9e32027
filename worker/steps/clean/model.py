"""Where the cleaners' shipped models live, and the models an evaluation cleans with instead.

The HTML block model (`clean.trees`, `worker/data/clean-blocks.lgb.gz`) and the text-dump line
model (`clean.line_model`, `worker/data/clean-lines.json`) are trained on labelled pages by
`bench/train_clean.py`; `ingest-worker eval extraction --folds K` trains the same way on k-1
folds and scores the held-out fold.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from worker.steps.clean.line_model import LineModel
    from worker.steps.clean.trees import BlockModel

DATA = Path(__file__).resolve().parents[2] / "data"


@dataclass(frozen=True)
class CleanModels:
    """Models to clean with instead of the shipped ones (the evaluation's fold models)."""

    blocks: BlockModel | None = None
    lines: LineModel | None = None
