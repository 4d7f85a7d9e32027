"""A step that raises: the dead letter keeps the whole error and its traceback (from a pool process
too), the error is logged at ERROR once per distinct error in an interval, and counted."""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest

from worker.document import Dropped, Origin
from worker.errors import FailureLog, internal_error
from worker.events import dead_letter_event
from worker.runtime.compute import InlineCompute, PoolCompute
from worker.runtime.metrics import Metrics
from worker.runtime.pool import StepPool
from worker.settings import Settings
from worker.stages import Stages, with_raw_page
from worker.steps.dedup import DedupIndex


def broken_step(text: str) -> str:
    """A step with a bug that raises a multi-line error."""
    raise ValueError(f"cannot read {text!r}\nsecond line of the message")


def test_internal_error_keeps_the_whole_summary_and_the_traceback() -> None:
    try:
        broken_step("x")
    except ValueError as exc:
        dropped = internal_error(exc, "clean")
    assert dropped.detail == "Step 'clean' failed on this page: ValueError: cannot read 'x'\nsecond line of the message"
    assert dropped.failure is not None and dropped.failure.step == "clean"
    assert "in broken_step" in dropped.failure.traceback
    assert dropped.failure.signature.startswith("clean: ValueError at test_failures.py:")
    _, event = dead_letter_event(dropped, b"{}", Origin("pages.raw", 0, 1))
    assert event["traceback"] == dropped.failure.traceback


async def test_the_traceback_comes_back_from_a_pool_process() -> None:
    pool = StepPool(1)
    try:
        dropped = await PoolCompute(pool, Metrics.create())(broken_step, "y", step="entities", timeout=30)
    finally:
        pool.close()
    assert dropped.reason == "internal_error" and "cannot read 'y'" in dropped.detail
    assert "in broken_step" in dropped.failure.traceback  # formatted in the pool process
    assert dropped.failure.signature.startswith("entities: ValueError at test_failures.py:")


def test_failure_log_logs_each_distinct_error_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    failures = FailureLog(interval=600, clock=lambda: now[0])
    one = internal_error(ValueError("a"), "clean").failure
    other = internal_error(KeyError("b"), "clean").failure
    assert one is not None and other is not None
    with caplog.at_level(logging.ERROR, logger="worker.errors"):
        assert failures.report(one, "first", {})
        assert not failures.report(one, "again", {})
        assert failures.report(other, "another error", {})
        now[0] = 601.0
        assert failures.report(one, "later", {})
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3 and all(r.levelno == logging.ERROR for r in caplog.records)
    assert "(1 more since it was last logged)" in messages[2]


def test_a_failing_step_is_counted_logged_once_and_dead_lettered(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics.create()
    stages = Stages(Settings(), DedupIndex({}, window_seconds=86400), InlineCompute(), metrics)

    async def fail() -> Dropped:
        return await stages.compute(broken_step, "z", step="clean", timeout=5)

    with caplog.at_level(logging.ERROR):
        drops = [stages.dead_letter(asyncio.run(fail()), b'{"url": "u"}', Origin("pages.raw", 0, n)) for n in range(3)]
    assert len(drops) == 3
    assert metrics.step_failures.labels("clean")._value.get() == 3
    assert sum("Traceback" in r.getMessage() for r in caplog.records) == 1
    assert orjson.loads(drops[0].value)["traceback"].count("broken_step") >= 1


def test_a_late_dead_letter_without_a_url_takes_the_raw_pages() -> None:
    stages = Stages(Settings(), DedupIndex({}, window_seconds=86400), InlineCompute(), Metrics.create())
    page_at = Origin("pages.raw", 0, 7)
    # A hop a later step could not read: the dead letter knows no url until the raw page is read back.
    late = stages.dead_letter(internal_error(ValueError("bad hop"), "entities"), b"\x00hop",
                              Origin("app-unique-articles", 1, 3), raw_at=page_at)
    assert late.event is not None and late.event["url"] is None
    raw = b'{"url": "https://news.example/a", "html": "<p>x</p>"}'
    filled = with_raw_page(late, raw)
    assert filled.event is not None and filled.event["url"] == "https://news.example/a"
    assert orjson.loads(filled.value)["original"].encode() == raw
    named = stages.dead_letter(internal_error(ValueError("x"), "entities"), b"\x00hop",
                               Origin("app-unique-articles", 1, 4), "https://kept.example/b", raw_at=page_at)
    assert with_raw_page(named, raw).event["url"] == "https://kept.example/b"  # a url it had stays
