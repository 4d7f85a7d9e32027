"""Where the cleaners' shipped models live, and the models an evaluation cleans with instead.

The HTML block model (`clean.trees`, `worker/data/clean-blocks.lgb.gz`) and the text-dump line
model (`clean.line_model`, `worker/data/clean-lines.json.gz`) are trained on labelled pages by
`bench/train_clean.py`; `ingest-worker eval extraction --folds K` trains the same way on k-1
folds and scores the held-out fold.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from worker.steps.clean.line_model import LineModel
    from worker.steps.clean.trees import BlockModel

DATA = Path(__file__).resolve().parents[2] / "data"
C_API_DTYPE_FLOAT64 = 1  # LightGBM's c_api.h
C_API_IS_ROW_MAJOR = 1


@dataclass(frozen=True)
class CleanModels:
    """Models to clean with instead of the shipped ones (the evaluation's fold models)."""

    blocks: BlockModel | None = None
    lines: LineModel | None = None


def predict(booster: Any, rows: np.ndarray) -> np.ndarray:
    """`booster.predict(rows, num_threads=1)` of a LightGBM booster on a 2-D float array (one
    probability a row, or a row of probabilities a class), the same numbers through one call of
    LightGBM's C API: the Python wrapper's checks and set-up cost about 40 µs a call, as much as
    the trees themselves for a page's one row, and each page runs four such calls."""
    # Of LightGBM's private names only `_LIB`, `_safe_call` and a booster's `_handle`: all three are
    # in every version the dependency range allows (its array helpers are not).
    from lightgbm.basic import _LIB, _safe_call  # imported where cleaning runs
    data = np.ascontiguousarray(rows, dtype=np.float64)  # float32 widens exactly, as LightGBM reads it
    pointer = data.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
    classes = ctypes.c_int(0)
    _safe_call(_LIB.LGBM_BoosterGetNumClasses(booster._handle, ctypes.byref(classes)))
    out = np.empty(rows.shape[0] * classes.value, dtype=np.float64)
    written = ctypes.c_int64(0)
    _safe_call(_LIB.LGBM_BoosterPredictForMat(
        booster._handle, pointer, ctypes.c_int(C_API_DTYPE_FLOAT64), ctypes.c_int32(rows.shape[0]),
        ctypes.c_int32(rows.shape[1]), ctypes.c_int(C_API_IS_ROW_MAJOR), ctypes.c_int(0),  # normal prediction
        ctypes.c_int(0), ctypes.c_int(booster.best_iteration), ctypes.c_char_p(b"num_threads=1"),
        ctypes.byref(written), out.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
    ))
    return out if classes.value == 1 else out.reshape(rows.shape[0], classes.value)
