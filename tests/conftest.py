"""Shared fixtures: the embedded broker (one per session), per-test settings, worker processes."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from worker.kafka.clients import consume, produce
from worker.kafka.connection import client_options, start_client
from worker.kafka.embedded import EmbeddedBroker
from worker.kafka.embedded import isolated_settings as embedded_settings
from worker.kafka.topics import ensure_topics
from worker.runtime.worker_process import WorkerProcess
from worker.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SCHEMAS = {path.name.removesuffix(".json"): json.loads(path.read_text()) for path in (ROOT / "schemas").glob("*.json")}


def validate_event(event: dict[str, Any]) -> None:
    """Fail unless the event matches the schema its `event_type` names."""
    schema = SCHEMAS[event["event_type"]]
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(event)


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    """The embedded Kafka-protocol broker, started once for the test session."""
    with EmbeddedBroker() as running:
        yield running


def isolated_settings(broker_url: str, name: str, data_dir: Path) -> Settings:
    """Settings with topics and a consumer group of their own, tuned for the embedded broker."""
    prefix = f"pytest_{re.sub(r'[^A-Za-z0-9]+', '_', name)[:40]}_{uuid.uuid4().hex[:8]}"
    return embedded_settings(
        broker_url, prefix, str(data_dir), session_timeout_seconds=8.0, workers=1, log_level="INFO"
    )


@pytest.fixture
def kafka_settings(broker: EmbeddedBroker, request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings with this test's own topics and consumer group on the embedded broker."""
    settings = isolated_settings(broker.url, request.node.name, tmp_path / "data")
    asyncio.run(ensure_topics(settings))
    return settings


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """`start_worker(settings)` runs `ingest-worker run` as a child process until the test ends."""
    started: list[WorkerProcess] = []

    def start(settings: Settings, **overrides: Any) -> WorkerProcess:
        if overrides:
            settings = settings.with_overrides(**overrides)
        worker = WorkerProcess(settings, tmp_path / f"worker-{len(started)}.log")
        started.append(worker)
        return worker.start()

    yield start
    for worker in started:
        worker.stop(kill=True)


def send_pages(settings: Settings, messages: list[tuple[bytes | None, bytes]]) -> None:
    """Produce raw messages to the settings' input topic."""
    asyncio.run(produce(settings, settings.input_topic, messages))


def create_topic(settings: Settings, name: str, partitions: int) -> None:
    """Create a topic on the settings' broker, as a producer or an operator would before the worker."""

    async def main() -> None:
        admin = await start_client(settings, AIOKafkaAdminClient(**client_options(settings)))
        try:
            await admin.create_topics([NewTopic(name, partitions, 1)])
        finally:
            await admin.close()

    asyncio.run(main())


def output_topics(settings: Settings) -> list[str]:
    """The topics that account for pages: articles, duplicates, dead letters and skipped records."""
    return [settings.articles_topic, settings.duplicates_topic, settings.dead_letter_topic, settings.skipped_topic]


def collect_events(
    settings: Settings, count: int, timeout: float = 120.0, topics: list[str] | None = None
) -> list[dict[str, Any]]:
    """Read output events from the beginning until `count` arrived (or `timeout` idle seconds)."""

    async def main() -> list[dict[str, Any]]:
        found = []
        async for _, _, value in consume(settings, topics or output_topics(settings), True, timeout, count):
            found.append(orjson.loads(value))
        return found

    return asyncio.run(main())


def raw_page(url: str, **fields: Any) -> tuple[bytes, bytes]:
    """A (key, value) raw_page.v1 message."""
    return url.encode(), orjson.dumps({"url": url, **fields})


def read_fixture(name: str) -> str:
    """A text fixture from tests/fixtures."""
    return (FIXTURES / name).read_text(encoding="utf-8")


def collect_for_urls(settings: Settings, urls: set[str], timeout: float = 180.0) -> list[dict[str, Any]]:
    """Read output events until every url in `urls` is accounted for (fails after `timeout`)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        # A generous idle wait: on a loaded machine the first fetch of a new consumer can take seconds.
        events = collect_events(settings, 100_000, timeout=8)
        seen = {e.get("url") for e in events}
        if urls <= seen:
            return events
        assert time.monotonic() < deadline, f"pages never accounted for: {sorted(urls - seen)}"
