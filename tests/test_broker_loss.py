"""A broker that stays unusable stops the worker with a one-line reason and a non-zero exit.

The platform restarts a stopped worker; a worker that kept running against a dead broker would
dead-letter good pages or hang. Its own broker, so the session's shared one stays up.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time

import pytest
from conftest import collect_events, collect_for_urls, isolated_settings, raw_page, read_fixture, send_pages

from worker.kafka.embedded import EmbeddedBroker
from worker.kafka.topics import ensure_topics
from worker.runtime.worker_process import WorkerProcess

pytestmark = pytest.mark.integration


def _wait_for_exit(worker: WorkerProcess, seconds: float) -> subprocess.Popen[bytes]:
    """The worker's process once it has exited, or after `seconds` if it has not."""
    process = worker.process
    assert process is not None
    deadline = time.monotonic() + seconds
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    return process


def test_worker_stops_non_zero_when_the_broker_stays_gone(tmp_path):
    with EmbeddedBroker() as broker:
        settings = isolated_settings(broker.url, "broker_loss", tmp_path / "data").with_overrides(
            broker_unusable_seconds=8.0
        )
        asyncio.run(ensure_topics(settings))
        worker = WorkerProcess(settings, tmp_path / "worker.log").start()
        try:
            send_pages(settings, [raw_page("https://news.example/a", text=read_fixture("seed-page.txt"))])
            broker.stop()
            process = _wait_for_exit(worker, 150)
            log = worker.log_tail()
            assert process.returncode not in (None, 0), f"worker still running or exited 0:\n{log}"
            assert "ingest-worker run: stopped: the broker" in log
        finally:
            worker.stop(kill=True)


def test_a_worker_that_cannot_load_its_model_stops_and_leaves_the_pages_to_one_that_can(tmp_path):
    """A deployment fault (here an entity model that is not installed) is no page's fault: the
    worker stops with the reason before handing any page to its pool, nothing is published or
    dead-lettered, and a worker with the model then accounts for every page once."""
    with EmbeddedBroker() as broker:
        settings = isolated_settings(broker.url, "no_model", tmp_path / "data")
        asyncio.run(ensure_topics(settings))
        pages = [raw_page(f"https://news.example/{n}", text=read_fixture("seed-page.txt").replace("Sky", f"Sky {n}"))
                 for n in range(3)]
        send_pages(settings, pages)
        broken = WorkerProcess(settings.with_overrides(spacy_model="en_core_web_not_installed"),
                               tmp_path / "broken.log")
        try:
            with contextlib.suppress(RuntimeError):  # it may stop before its HTTP port answers
                broken.start()
            process = _wait_for_exit(broken, 120)
            log = broken.log_tail()
            assert process.returncode == 1, f"worker still running or exited {process.returncode}:\n{log}"
            assert "ingest-worker run: stopped: the step pool cannot load what its steps need" in log
            assert "en_core_web_not_installed" in log
        finally:
            broken.stop(kill=True)
        assert collect_events(settings, 1, timeout=3) == []  # nothing published, nothing dead-lettered

        with WorkerProcess(settings, tmp_path / "worker.log"):
            events = collect_for_urls(settings, {f"https://news.example/{n}" for n in range(3)})
        assert sorted(e["url"] for e in events) == [f"https://news.example/{n}" for n in range(3)]
        assert {e["event_type"] for e in events} <= {"article.v1", "duplicate.v1"}
