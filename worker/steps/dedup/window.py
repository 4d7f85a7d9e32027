"""Event time for the dedup window, robust to one page with an odd clock.

A page's event time is its `fetched_at`, checked against the broker's timestamp of the message
that carried it: a stamp from the future (beyond a small clock skew), an absent one, or one too
old to be a real fetch counts as the broker's time instead, and the correction is reported by
reason. The window then follows a watermark that one page cannot move: the median of the
recent event times, which only ever goes forward. A backfill of old pages keeps its old
watermark even when a few pages among it carry today's time. Its state packs into bytes, so
the dedup owner keeps it beside the dedup state and a restarted owner carries on with it.
"""

from __future__ import annotations

import bisect
import struct
from collections import deque
from typing import Literal

TimeCorrection = Literal["absent", "future", "too_old"]
TIME_CORRECTIONS: tuple[TimeCorrection, ...] = ("absent", "future", "too_old")

MAX_FUTURE_SKEW_SECONDS = 300.0  # crawler clocks run a little ahead; more than this is wrong
MAX_AGE_SECONDS = 20 * 365.25 * 86400  # a page "fetched" 20 years before it was sent is a bad stamp
WATERMARK_SAMPLES = 101  # recent event times the median is taken over
MIN_SAMPLES = 11  # the watermark does not move before this many pages were seen
_TIME = struct.Struct("<d")


def event_time(fetched_at: float | None, broker_time: float) -> tuple[float, TimeCorrection | None]:
    """The time a page counts as seen, and why `fetched_at` was not used (None when it was)."""
    if fetched_at is None:
        return broker_time, "absent"
    if fetched_at > broker_time + MAX_FUTURE_SKEW_SECONDS:
        return broker_time, "future"
    if fetched_at < broker_time - MAX_AGE_SECONDS:
        return broker_time, "too_old"
    return fetched_at, None


class Watermark:
    """How far event time has surely advanced: the median of recent event times, never going back."""

    def __init__(self, samples: int = WATERMARK_SAMPLES, min_samples: int = MIN_SAMPLES) -> None:
        self._recent: deque[float] = deque(maxlen=samples)
        self._sorted: list[float] = []
        self._packed = b""  # `_recent` as `to_bytes` writes it, kept as it changes
        self._min_samples = min_samples
        self.value = 0.0  # 0 until enough pages were seen

    @classmethod
    def from_bytes(cls, raw: bytes) -> Watermark:
        """A watermark from `to_bytes` output: its value and its recent event times."""
        value, *recent = struct.unpack(f"<{len(raw) // 8}d", raw)
        mark = cls()
        mark._recent.extend(recent)
        mark._sorted = sorted(mark._recent)
        mark._packed = struct.pack(f"<{len(mark._recent)}d", *mark._recent)
        mark.value = value
        return mark

    def to_bytes(self) -> bytes:
        """The value, then the recent event times oldest first (8 bytes each)."""
        return _TIME.pack(self.value) + self._packed

    def observe(self, when: float) -> float:
        """Add one page's event time; returns the watermark (0 while too few pages were seen)."""
        if len(self._recent) == self._recent.maxlen:
            oldest = self._recent[0]
            del self._sorted[bisect.bisect_left(self._sorted, oldest)]
            self._packed = self._packed[_TIME.size :]
        self._recent.append(when)
        self._packed += _TIME.pack(when)
        bisect.insort(self._sorted, when)
        if len(self._sorted) >= self._min_samples:
            self.value = max(self.value, self._sorted[len(self._sorted) // 2])
        return self.value
