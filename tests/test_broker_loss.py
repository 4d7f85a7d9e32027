"""A broker that stays unusable stops the worker with a one-line reason and a non-zero exit.

The platform restarts a stopped worker; a worker that kept running against a dead broker would
dead-letter good pages or hang. Its own broker, so the session's shared one stays up.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from conftest import isolated_settings, raw_page, read_fixture, send_pages

from worker.kafka.embedded import EmbeddedBroker
from worker.kafka.topics import ensure_topics
from worker.runtime.worker_process import WorkerProcess

pytestmark = pytest.mark.integration


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
            process = worker.process
            assert process is not None
            deadline = time.monotonic() + 150
            while process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.5)
            log = worker.log_tail()
            assert process.returncode not in (None, 0), f"worker still running or exited 0:\n{log}"
            assert "ingest-worker: stopped: the broker" in log
        finally:
            worker.stop(kill=True)
