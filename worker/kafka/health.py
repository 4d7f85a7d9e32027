"""What `/healthz` (liveness) and `/readyz` (readiness) answer.

    /healthz  503 when the worker is alive but cannot work, so the platform restarts it:
              the event loop stalled (a heartbeat that should run every 0.5 s ran more than
              `LOOP_STALL_SECONDS` late within the last `STALL_MEMORY_SECONDS`, or has not run
              for that long), or the step pool is gone (closed, or a thread feeding its
              processes died). A loop blocked at this moment cannot answer at all: the probe's
              own timeout fails it.
    /readyz   200 only once the worker does work: the consumer group gave it partitions, no
              rebalance or table recovery is in progress, every step-pool process has loaded
              what the steps need, and the worker is not stopping.

Both answer a JSON object saying which condition failed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

LOOP_BEAT_SECONDS = 0.5
# Faust's broker heartbeats run in this loop too: a loop blocked this long is a worker in trouble.
LOOP_STALL_SECONDS = 10.0
# A stall keeps /healthz failing this long after it ended: one stall costs a few failed probes
# (the Deployment restarts after 60 s of failures); a loop that keeps stalling is restarted.
STALL_MEMORY_SECONDS = 30.0


class LoopWatch:
    """A heartbeat in the event loop that measures how late it runs (`run` is the task)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.last_beat: float | None = None
        self.last_stall: tuple[float, float] | None = None  # (when it ended, seconds the loop stood still)

    async def run(self) -> None:
        """Beat every `LOOP_BEAT_SECONDS`, remembering the last beat and the last stall."""
        while True:
            self.beat()
            await asyncio.sleep(LOOP_BEAT_SECONDS)

    def beat(self) -> None:
        """One heartbeat: a gap over `LOOP_STALL_SECONDS` since the previous one is a stall."""
        now = self.clock()
        if self.last_beat is not None:
            gap = now - self.last_beat
            if gap - LOOP_BEAT_SECONDS >= LOOP_STALL_SECONDS:
                self.last_stall = (now, gap)
        self.last_beat = now

    def problem(self) -> str | None:
        """Why the loop counts as stalled, or None."""
        if self.last_beat is None:  # not started yet: start-up is the start probe's business
            return None
        now = self.clock()
        silent = now - self.last_beat
        if silent - LOOP_BEAT_SECONDS >= LOOP_STALL_SECONDS:
            return f"the event loop's heartbeat has not run for {silent:.1f} s"
        if self.last_stall is not None and now - self.last_stall[0] < STALL_MEMORY_SECONDS:
            ended, gap = self.last_stall
            return f"the event loop stood still for {gap:.1f} s ({now - ended:.0f} s ago)"
        return None


def liveness(loop_watch: LoopWatch, pool_problem: str | None) -> tuple[bool, dict[str, Any]]:
    """(healthy, the JSON body of /healthz)."""
    problems = [p for p in (loop_watch.problem(), pool_problem) if p]
    return not problems, {"status": "failing" if problems else "ok", "problems": problems}


def readiness(app: Any, pool_warm: bool, stopping: str | None) -> tuple[bool, dict[str, Any]]:
    """(ready, the JSON body of /readyz) for a Faust app."""
    try:
        assigned = len(app.consumer.assignment())
    except Exception:  # noqa: BLE001 - the consumer has not started yet
        assigned = 0
    rebalancing = bool(getattr(app, "rebalancing", False))
    recovering = bool(getattr(app, "in_recovery", False))
    waiting = []
    if not assigned:
        waiting.append("no partitions assigned yet")
    if rebalancing:
        waiting.append("rebalancing")
    if recovering:
        waiting.append("recovering tables")
    if not pool_warm:
        waiting.append("step pool loading its models")
    if stopping:
        waiting.append(f"stopping: {stopping}")
    body = {"ready": not waiting, "assigned_partitions": assigned, "pool_warm": pool_warm, "waiting_for": waiting}
    return not waiting, body
