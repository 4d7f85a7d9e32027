"""/healthz fails when the event loop stalls or the step pool is gone; /readyz says ready only once
partitions are assigned and the pool has loaded its models; Faust's /table and /router are not served.
The HTTP checks run against a real worker on the embedded broker."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.error
import urllib.request

import pytest

from worker.kafka.health import LOOP_STALL_SECONDS, STALL_MEMORY_SECONDS, LoopWatch, liveness
from worker.runtime.pool import StepPool


def get(port: int, path: str) -> tuple[int, dict | str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def test_loop_watch_reports_a_stall_then_forgets_it() -> None:
    now = [100.0]
    watch = LoopWatch(clock=lambda: now[0])
    assert watch.problem() is None  # no beat yet: starting
    watch.beat()
    now[0] += 0.5
    watch.beat()
    assert watch.problem() is None
    now[0] += LOOP_STALL_SECONDS + 2  # the loop stood still
    assert "has not run for" in watch.problem()
    watch.beat()
    assert "stood still for 12.0 s" in watch.problem()
    for _ in range(int((STALL_MEMORY_SECONDS + 1) / 0.5)):  # the loop runs normally again
        now[0] += 0.5
        watch.beat()
    assert watch.problem() is None


async def test_loop_watch_sees_a_blocked_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("worker.kafka.health.LOOP_STALL_SECONDS", 0.5)
    monkeypatch.setattr("worker.kafka.health.LOOP_BEAT_SECONDS", 0.05)
    watch = LoopWatch()
    task = asyncio.create_task(watch.run())
    try:
        await asyncio.sleep(0.2)
        assert liveness(watch, None) == (True, {"status": "ok", "problems": []})
        time.sleep(0.8)  # blocks the loop, as a CPU-bound call run in it by mistake would
        await asyncio.sleep(0.1)
        healthy, body = liveness(watch, None)
        assert not healthy and body["problems"][0].startswith("the event loop stood still for 0.")
    finally:
        task.cancel()


def test_pool_problem_when_closed() -> None:
    pool = StepPool(1)
    try:
        assert pool.problem() is None
    finally:
        pool.close()
    assert pool.problem() == "the step pool is closed"
    assert liveness(LoopWatch(), pool.problem()) == (False, {"status": "failing", "problems": [
        "the step pool is closed"]})


@pytest.mark.integration
def test_ready_only_when_assigned_and_warm_and_healthz_fails_after_a_stall(kafka_settings, start_worker) -> None:
    worker = start_worker(kafka_settings)  # returns as soon as /healthz answers
    port = kafka_settings.metrics_port
    status, body = get(port, "/readyz")
    # The pool loads the entity models (seconds) and the group assigns partitions after a join.
    assert status == 503 and body["ready"] is False and body["waiting_for"], body
    deadline = time.monotonic() + 90
    while (status := get(port, "/readyz")[0]) != 200:
        assert time.monotonic() < deadline, get(port, "/readyz")
        time.sleep(0.2)
    _, body = get(port, "/readyz")
    assert body["assigned_partitions"] > 0 and body["pool_warm"] is True and body["waiting_for"] == []
    assert get(port, "/healthz") == (200, {"status": "ok", "problems": []})
    for view in ("/table/dedup-state", "/table", "/router", "/router/dedup-state/x"):
        assert get(port, view)[0] == 404, view
    assert get(port, "/metrics")[0] == 200

    # Freeze the worker's main process past the stall threshold: after it resumes, /healthz says so.
    assert worker.process is not None
    os.kill(worker.process.pid, signal.SIGSTOP)
    try:
        time.sleep(LOOP_STALL_SECONDS + 1.5)
    finally:
        os.kill(worker.process.pid, signal.SIGCONT)
    status, body = get(port, "/healthz")
    assert status == 503 and "the event loop stood still for" in body["problems"][0], body
