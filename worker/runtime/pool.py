"""A process pool for the CPU-heavy steps, with a per-call time limit.

Cleaning and entity tagging hold the GIL for tens of milliseconds to seconds; running them in
the event loop would starve Faust's heartbeats. Python cannot interrupt a running function, so
a call that overruns its time limit gets its pool replaced: the stuck process is killed and
calls that were in flight beside it are retried once on the new pool.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


class CallTimeout(Exception):
    """The call ran past its time limit; its process was killed."""


class StepPool:
    """Runs picklable functions in worker processes, `await pool.run(fn, arg, timeout=...)`."""

    def __init__(self, size: int, on_restart: Callable[[], None] | None = None) -> None:
        self.size = size
        self._on_restart = on_restart
        # forkserver: children do not inherit the event loop, sockets or Kafka client threads.
        self._context = multiprocessing.get_context("forkserver")
        self._executor = self._new_executor()

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self.size, mp_context=self._context)

    async def run(self, fn: Callable[..., T], *args: Any, timeout: float) -> tuple[T, float]:
        """`fn(*args)` in a worker process; returns (result, seconds waited for a free worker)."""
        for attempt in (1, 2):
            executor = self._executor
            try:
                return await self._call(executor, fn, args, timeout)
            except CallTimeout:
                self._replace(executor)
                raise
            except BrokenProcessPool:
                # Another call's timeout (or a crash) killed this pool under us: retry once.
                self._replace(executor)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _call(
        self, executor: ProcessPoolExecutor, fn: Callable[..., T], args: tuple[Any, ...], timeout: float
    ) -> tuple[T, float]:
        loop = asyncio.get_running_loop()
        submitted = time.perf_counter()
        future = loop.run_in_executor(executor, _timed, fn, args)
        try:
            result, started = await asyncio.wait_for(future, timeout=timeout + 0.0)
        except TimeoutError as exc:
            raise CallTimeout(f"{getattr(fn, '__name__', fn)} ran past {timeout:g} s") from exc
        return result, max(0.0, started - submitted)

    def _replace(self, executor: ProcessPoolExecutor) -> None:
        if executor is not self._executor:
            return  # someone already replaced it
        log.warning("replacing the step pool after a stuck or dead worker process")
        self._executor = self._new_executor()
        _kill(executor)
        if self._on_restart is not None:
            self._on_restart()

    def warm_up(self, fn: Callable[[], Any]) -> None:
        """Run `fn` once in every worker process (e.g. to load a model) before traffic arrives."""
        futures = [self._executor.submit(fn) for _ in range(self.size)]
        for future in futures:
            future.result()

    def close(self) -> None:
        """Stop the worker processes."""
        _kill(self._executor)


def _kill(executor: ProcessPoolExecutor) -> None:
    # Take the process list before shutdown() forgets it; kill, since a stuck call never returns.
    processes = list((getattr(executor, "_processes", None) or {}).values())
    for process in processes:
        process.kill()
    executor.shutdown(wait=False, cancel_futures=True)


def _timed(fn: Callable[..., T], args: tuple[Any, ...]) -> tuple[T, float]:
    # perf_counter is system-wide on Linux (CLOCK_MONOTONIC), so the parent can compare it.
    started = time.perf_counter()
    return fn(*args), started
