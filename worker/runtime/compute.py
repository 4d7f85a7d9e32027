"""Where the stage handlers' CPU work runs: the step pool (`run`) or this process (`process`)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any

from worker.errors import internal_error, timed_out
from worker.runtime.metrics import Metrics
from worker.runtime.pool import CallTimeout, StepPool


class PoolCompute:
    """Runs a step in the process pool under its time limit; failures come back as Dropped.

    With `warm_up` (what every pool process must load before its first step, e.g. the entity
    models), no step is handed to the pool until every process has loaded it. A pool that
    cannot load it cannot do any page's work: `on_unusable` gets the reason (the worker stops)
    and the steps wait for good, so their pages are never acknowledged and stay in Kafka for a
    worker that can, instead of each becoming a dead letter of the same deployment fault.
    """

    def __init__(
        self,
        pool: StepPool,
        metrics: Metrics,
        warm_up: Callable[[], Any] | None = None,
        on_unusable: Callable[[str], None] | None = None,
    ) -> None:
        self.pool = pool
        self.metrics = metrics
        self._warm_up = warm_up
        self._on_unusable = on_unusable
        self._warmed: asyncio.Future[None] | None = None

    async def ready(self) -> None:
        """Return once every pool process ran `warm_up` (started by the first caller); never
        return if one failed, after telling `on_unusable` why."""
        if self._warm_up is None:
            return
        if self._warmed is None:
            loop = asyncio.get_running_loop()
            self._warmed = asyncio.ensure_future(loop.run_in_executor(None, self.pool.warm_up, self._warm_up))
        try:
            await asyncio.shield(self._warmed)
        except Exception as exc:
            if self._on_unusable is not None:
                self._on_unusable(f"the step pool cannot load what its steps need: {exc!r}")
            await asyncio.Event().wait()  # never hand a page to a pool that cannot do the work

    def is_warm(self) -> bool:
        """Whether every pool process has run `warm_up` (True when there is none to run)."""
        if self._warm_up is None:
            return True
        warmed = self._warmed
        return warmed is not None and warmed.done() and not warmed.cancelled() and warmed.exception() is None

    async def __call__(self, fn: Callable[..., Any], *args: Any, step: str, timeout: float) -> Any:
        """`fn(*args)` in a pool process; a timeout or a crash becomes a Dropped naming `step`."""
        await self.ready()
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
        except Overrun:
            return timed_out(step, timeout)
        except Exception as exc:
            return internal_error(exc, step)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


class Overrun(BaseException):
    """The inline step ran past its time limit. Not an Exception: the step's own
    `except Exception` (a parser's fallback, say) must not swallow it and carry on."""


def _overrun(signum: int, frame: object) -> None:
    raise Overrun("the step ran past its time limit")
