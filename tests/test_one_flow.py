"""`process` and `run` are one flow: the same pages give the same outcome per page both ways.

The dedup benchmark's dev pages (206 real pages, 40 syndicated stories) go once through
`ingest-worker process` and once through a worker on the embedded broker. In `run`, which copy
of a story is seen first depends on arrival order, so pages are sent one at a time, each after
the previous one was accounted for: the order `process` reads them in. Sent in one burst, the
pages reach the dedup owner in the order the step pool finishes them: the story clusters still
agree with `process`'s.
"""

from __future__ import annotations

import asyncio
import gzip
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import collect_for_urls, output_topics, send_pages, validate_event

from worker.evaluation.dedup import agreement, clusters
from worker.kafka.clients import consume, produce

DEV_PAGES = Path(__file__).parent / "fixtures" / "dedup" / "dev-pages.jsonl.gz"

pytestmark = pytest.mark.integration


def outcome(event: dict[str, Any]) -> tuple[str, str | None, str | None]:
    """What happened to a page: event kind, article (or page) id, the article it duplicates."""
    if event["event_type"] == "dead_letter.v1":
        return ("dead_letter", event["reason"], None)
    return (event["event_type"], event["id"], event.get("duplicate_of"))


LINES = [line for line in gzip.decompress(DEV_PAGES.read_bytes()).splitlines() if line.strip()]


@pytest.fixture(scope="module")
def processed() -> list[dict[str, Any]]:
    """The events of `ingest-worker process` over the dev pages (clusters left out)."""
    result = subprocess.run(
        [sys.executable, "-m", "worker", "process", str(DEV_PAGES)], capture_output=True, check=True, timeout=600
    )
    events = [orjson.loads(raw) for raw in result.stdout.splitlines()]
    for event in events:
        validate_event(event)
    return [event for event in events if event["event_type"] != "cluster.v1"]


def test_process_and_run_give_each_page_the_same_outcome(kafka_settings, start_worker, processed):
    lines = LINES
    by_process = {event["url"]: outcome(event) for event in processed}
    assert len(by_process) == len(lines)

    start_worker(kafka_settings)

    async def through_kafka() -> dict[str, tuple[str, str | None, str | None]]:
        found: dict[str, tuple[str, str | None, str | None]] = {}
        events = consume(kafka_settings, output_topics(kafka_settings), from_beginning=True, idle_timeout=120)
        for line in lines:
            url = orjson.loads(line)["url"]
            await produce(kafka_settings, kafka_settings.input_topic, [(url.encode(), line)])
            while url not in found:
                _, _, value = await anext(events)
                event = orjson.loads(value)
                validate_event(event)
                found[event["url"]] = outcome(event)
        await events.aclose()
        return found

    by_run = asyncio.run(through_kafka())
    differing = {url: (by_process[url], by_run.get(url)) for url in by_process if by_process[url] != by_run.get(url)}
    assert not differing, f"{len(differing)} pages differ between process and run: {list(differing.items())[:5]}"
    kinds = {kind for kind, _, _ in by_run.values()}
    assert {"article.v1", "duplicate.v1"} <= kinds


def test_process_and_run_give_the_same_story_clusters_when_pages_come_in_a_burst(
    kafka_settings, start_worker, processed
):
    start_worker(kafka_settings)
    send_pages(kafka_settings, [(orjson.loads(line)["url"].encode(), line) for line in LINES])
    urls = {event["url"] for event in processed}
    events = [e for e in collect_for_urls(kafka_settings, urls, timeout=600) if e["event_type"] != "cluster.v1"]
    for event in events:
        validate_event(event)
    by_run = clusters(events)
    by_process = clusters(processed)
    assert set(by_run) == set(by_process)
    assert agreement(by_process, by_run) >= 0.99
