"""How much a difference between two systems scored on the same pages owes to which pages happen
to be in the set: a paired bootstrap (pages drawn with replacement, both systems scored on each
draw), so a lead smaller than the set can resolve is reported as such rather than as a win."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

Row = TypeVar("Row")


@dataclass(frozen=True, slots=True)
class Difference:
    """`ours` minus `theirs` on the whole set, its 95% interval over resamples, and the share of
    resamples in which `ours` scored higher."""

    value: float
    low: float
    high: float
    ahead: float
    resamples: int


def paired_difference(ours: Sequence[Row], theirs: Sequence[Row], score: Callable[[Sequence[Row]], float],
                      resamples: int = 2000, seed: int = 0) -> Difference:
    """Score differences over `resamples` draws of the pages (row i of both lists is page i),
    with a fixed seed so that the same predictions give the same interval."""
    if len(ours) != len(theirs):
        raise ValueError("both systems must be scored on the same pages")
    value = score(ours) - score(theirs)
    if not ours:
        return Difference(value, value, value, 0.0, 0)
    rng = random.Random(seed)
    pages = range(len(ours))
    differences = []
    for _ in range(resamples):
        draw = [rng.randrange(len(ours)) for _ in pages]
        differences.append(score([ours[i] for i in draw]) - score([theirs[i] for i in draw]))
    ahead = sum(1 for d in differences if d > 0) / resamples
    differences.sort()
    return Difference(value, differences[int(0.025 * resamples)], differences[int(0.975 * resamples) - 1],
                      ahead, resamples)
