"""Where the stage handlers' CPU work runs: the step pool (`run`) or this process (`process`)."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

from worker.errors import internal_error, timed_out
from worker.runtime.metrics import Metrics
from worker.runtime.pool import CallTimeout, StepPool


class PoolCompute:
    """Runs a step in the process pool under its time limit; failures come back as Dropped."""

    def __init__(self, pool: StepPool, metrics: Metrics) -> None:
        self.pool = pool
        self.metrics = metrics

    async def __call__(self, fn: Callable[..., Any], *args: Any, step: str, timeout: float) -> Any:
        """`fn(*args)` in a pool process; a timeout or a crash becomes a Dropped naming `step`."""
        try:
            result, waited = await self.pool.run(fn, *args, timeout=timeout)
        except CallTimeout:
            return timed_out(step, timeout)
        except Exception as exc:  # a process that died twice in a row, or a pickling error
            return internal_error(exc, step)
        self.metrics.pool_queue_seconds.observe(waited)
        return result


class InlineCompute:
    """Runs a step in this process's main thread, stopped by SIGALRM when it overruns its limit."""

    async def __call__(self, fn: Callable[..., Any], *args: Any, step: str, timeout: float) -> Any:
        """`fn(*args)` here; a timeout or an exception becomes a Dropped naming `step`."""
        previous = signal.signal(signal.SIGALRM, _overrun)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            return fn(*args)
        except CallTimeout:
            return timed_out(step, timeout)
        except Exception as exc:
            return internal_error(exc, step)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def _overrun(signum: int, frame: object) -> None:
    raise CallTimeout("the step ran past its time limit")
