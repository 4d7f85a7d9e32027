"""The cleaners' one-call LightGBM prediction gives `Booster.predict`'s numbers."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from worker.steps.clean.model import predict
from worker.steps.clean.page_type import shipped_model
from worker.steps.clean.trees import shipped_blocks


def _boosters() -> list[tuple[str, Any]]:
    blocks = shipped_blocks()
    boosters = [("blocks", blocks.booster), ("context", blocks.context), ("story", blocks.story),
                ("page type, html", shipped_model("html").booster),
                ("page type, text", shipped_model("text").booster)]
    return [(name, booster) for name, booster in boosters if booster is not None]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("rows", [0, 1, 37])
def test_one_call_prediction_is_the_boosters_own(dtype: type, order: str, rows: int) -> None:
    generator = np.random.default_rng(7)
    for name, booster in _boosters():
        width = booster.num_feature()
        matrix = generator.normal(0.0, 3.0, size=(rows, width)) * generator.integers(0, 50, size=(rows, width))
        matrix[generator.random((rows, width)) < 0.2] = np.nan  # missing features, as pages leave them
        matrix = np.asarray(matrix, dtype=dtype, order=order)  # type: ignore[call-overload]
        expected = booster.predict(matrix, num_threads=1)
        got = predict(booster, matrix)
        if rows:  # (LightGBM gives a flat empty array for no rows of a multiclass model)
            assert got.shape == np.shape(expected), name
        assert np.array_equal(got.ravel(), np.ravel(expected)), name


def test_a_row_of_the_wrong_width_is_refused() -> None:
    import lightgbm

    booster = shipped_blocks().booster
    with pytest.raises(lightgbm.basic.LightGBMError):
        predict(booster, np.zeros((2, booster.num_feature() + 3)))
