"""The step pool with real processes: time limits from the start of a call, one process replaced
per stuck call, recycling after N calls, warm-up in every new process, lanes served in turn."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from worker.runtime.pool import POOL_NICENESS, CallTimeout, ProcessDied, StepPool

_warmed: list[str] = []


def warm() -> None:
    """A stand-in for model loading: marks the process as warmed."""
    _warmed.append("model")


def is_warm() -> bool:
    """Whether this process ran the warm-up."""
    return _warmed == ["model"]


def pid_after(seconds: float) -> int:
    """Sleep, then return the pid of the process that ran the call."""
    time.sleep(seconds)
    return os.getpid()


def crash() -> None:
    """Die without a reply, like a segfault in a parser."""
    os._exit(3)


async def test_a_stuck_call_replaces_only_its_process():
    restarts: list[int] = []
    pool = StepPool(2, on_restart=lambda: restarts.append(1))
    try:
        stuck = asyncio.ensure_future(pool.run(time.sleep, 60, timeout=1))
        innocent = asyncio.ensure_future(pool.run(pid_after, 3, timeout=10))
        with pytest.raises(CallTimeout):
            await stuck
        survivor_pid, _ = await innocent  # it ran on while its neighbour was killed
        assert restarts == [1]
        assert survivor_pid in pool.pids()
        result, _ = await pool.run(pow, 3, 2, timeout=10)
        assert result == 9
    finally:
        pool.close()


async def test_a_queued_call_does_not_time_out_before_it_starts():
    pool = StepPool(1)
    try:
        busy = asyncio.ensure_future(pool.run(pid_after, 2.5, timeout=10))
        await asyncio.sleep(0.2)
        # Limit 1 s, queued for ~2 s behind the busy process: the limit counts from its start.
        pid, waited = await pool.run(pid_after, 0.1, timeout=1)
        assert waited > 1.5
        assert pid == (await busy)[0]
    finally:
        pool.close()


async def test_processes_are_recycled_after_n_calls_and_warmed_again():
    pool = StepPool(1, max_tasks_per_process=3)
    try:
        await asyncio.get_running_loop().run_in_executor(None, pool.warm_up, warm)
        pids = [(await pool.run(os.getpid, timeout=10))[0] for _ in range(7)]
        assert pids[0] == pids[1] == pids[2] != pids[3]
        assert pids[3] == pids[4] == pids[5] != pids[6]
        assert len(set(pids)) == 3
        assert (await pool.run(is_warm, timeout=10))[0], "the recycled process skipped the warm-up"
        with pytest.raises(CallTimeout):
            await pool.run(time.sleep, 60, timeout=0.5)
        assert (await pool.run(is_warm, timeout=30))[0], "the replaced process skipped the warm-up"
    finally:
        pool.close()


async def test_a_crashing_call_is_retried_once_then_fails():
    restarts: list[int] = []
    pool = StepPool(1, on_restart=lambda: restarts.append(1))
    try:
        with pytest.raises(ProcessDied):
            await pool.run(crash, timeout=10)
        assert restarts == [1, 1]
        assert (await pool.run(abs, -4, timeout=10))[0] == 4
        with pytest.raises(ZeroDivisionError):  # the call's own exception reaches the caller
            await pool.run(divmod, 1, 0, timeout=10)
    finally:
        pool.close()


async def test_lanes_are_served_in_turn():
    pool = StepPool(1)
    try:
        finished: list[str] = []

        async def call(lane: str) -> None:
            await pool.run(time.sleep, 0.05, timeout=10, lane=lane)
            finished.append(lane)

        blocker = asyncio.ensure_future(pool.run(time.sleep, 0.5, timeout=10))
        await asyncio.sleep(0.1)
        # A burst of 20 cleaning calls queued before two tagging calls.
        burst = [asyncio.ensure_future(call("clean")) for _ in range(20)]
        await asyncio.sleep(0.05)
        tags = [asyncio.ensure_future(call("entities")) for _ in range(2)]
        await asyncio.gather(blocker, *burst, *tags)
        assert finished.index("entities") <= 2, finished
        assert [i for i, lane in enumerate(finished) if lane == "entities"][1] <= 4, finished
    finally:
        pool.close()


async def test_a_closed_pool_refuses_calls():
    pool = StepPool(1)
    pool.close()
    with pytest.raises(Exception, match="closed"):
        await pool.run(abs, 1, timeout=1)


async def test_pool_processes_run_nicer_than_the_process_that_feeds_them():
    pool = StepPool(1)
    try:
        niceness, _ = await pool.run(os.nice, 0, timeout=10)  # os.nice(0): the process's niceness
        assert niceness == min(os.nice(0) + POOL_NICENESS, 19)
    finally:
        pool.close()
