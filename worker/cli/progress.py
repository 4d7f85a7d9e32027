"""Progress of a long command on stderr: one updating line on a terminal, a summary line always.

On a terminal the line shows pages done, the rate and, when the total is known, the time left;
it is redrawn at most every half second, so a fast loop does not spend its time printing. When
stderr is a file or a pipe only the final summary is written.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import IO, TypeVar

T = TypeVar("T")
REDRAW_SECONDS = 0.5


class Progress:
    """Counts work done; `advance` after each item, `finish` once at the end."""

    def __init__(
        self,
        label: str,
        total: int | None = None,
        unit: str = "pages",
        stream: IO[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label, self.total, self.unit = label, total, unit
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.live = _is_terminal(self.stream)
        self.done = 0
        self.started = clock()
        self._drawn_at = float("-inf")

    def advance(self, count: int = 1) -> None:
        """Add `count` items done; redraw the live line if it is due."""
        self.done += count
        if self.live and self.clock() - self._drawn_at >= REDRAW_SECONDS:
            self._drawn_at = self.clock()
            self.stream.write("\r" + self.status() + "\x1b[K")
            self.stream.flush()

    def iterate(self, items: Iterable[T]) -> Iterator[T]:
        """Yield `items`, counting each one as done once the consumer asks for the next."""
        for item in items:
            yield item
            self.advance()

    def status(self) -> str:
        """`label done/total unit (pct%), rate/s, ETA m:ss` (no total: no percentage, no ETA)."""
        elapsed = max(self.clock() - self.started, 1e-9)
        rate = self.done / elapsed
        if self.total:
            left = (self.total - self.done) / rate if rate > 0 else None
            eta = _clock_time(left) if left is not None else "?"
            return (
                f"{self.label} {self.done}/{self.total} {self.unit} ({100 * self.done / self.total:.0f}%), "
                f"{rate:.1f}/s, ETA {eta}"
            )
        return f"{self.label} {self.done} {self.unit}, {rate:.1f}/s"

    def finish(self, note: str = "") -> None:
        """Replace the live line by the one-line summary (written whether or not stderr is a terminal)."""
        elapsed = self.clock() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        summary = f"{self.label} {self.done} {self.unit} in {elapsed:.1f} s ({rate:.1f}/s)"
        self.stream.write(("\r\x1b[K" if self.live else "") + summary + (f"; {note}" if note else "") + "\n")
        self.stream.flush()


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _clock_time(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
