"""Late dead letters hold the raw page as it arrived; a step's exception is logged, counted and kept
with its traceback; `ingest-worker redrive` sends chosen dead letters to the input topic again.
On the embedded broker, with a worker and the command as a user runs them."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from conftest import collect_events, raw_page, read_fixture, send_pages, validate_event

from worker.cli.redrive import choose
from worker.document import Article, Origin, Prepared
from worker.events import dead_letter_event
from worker.kafka.clients import produce, read_topic

URL = "https://worldnewsdesk.example/ukraine-says-it-has-captured-two-north-korean-soldiers"


def cli(settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", **settings.to_environ()}
    return subprocess.run([sys.executable, "-m", "worker", *args], env=env, capture_output=True, text=True,
                          timeout=120, check=True)


def _input_messages(settings) -> list[tuple[bytes | None, bytes]]:
    async def main() -> list[tuple[bytes | None, bytes]]:
        return [message async for message in read_topic(settings, settings.input_topic)]

    return asyncio.run(main())


@pytest.mark.integration
def test_a_late_failure_keeps_the_raw_page_and_traceback_and_redrive_sends_it_again(kafka_settings, start_worker):
    worker = start_worker(kafka_settings)
    key, value = raw_page(URL, text=read_fixture("seed-page.txt"), fetched_at="2025-01-11T12:00:00Z")
    send_pages(kafka_settings, [(key, value), (None, b"{not json")])
    first = collect_events(kafka_settings, 2)
    [article] = [e for e in first if e["event_type"] == "article.v1"]

    # Where the raw page sits in the input topic (the hop of a later step names that place).
    found = asyncio.run(_locate(kafka_settings, value))
    assert found is not None
    # A hop to the tagging step whose fingerprint cannot be read: the tag agent reads the article,
    # tags it, and fails building its event (step 'publish'), long after the raw page was left behind.
    hop = Prepared(Article(url=URL, title="A title", text="Kyiv said on Friday that the talks go on.", mode="text"),
                   b"\x00not a fingerprint", "f" * 32, 0.0, found).to_bytes()
    before = datetime.now(UTC)
    asyncio.run(produce(kafka_settings, f"{kafka_settings.app_id}-unique-articles", [(b"f" * 32, hop)]))
    events = collect_events(kafka_settings, 3)
    [late] = [e for e in events if e["event_type"] == "dead_letter.v1" and e["reason"] == "internal_error"]
    validate_event(late)
    assert late["detail"].startswith("Step 'publish' failed on this page: ")
    assert late["url"] == URL and late["source"] == {
        "topic": found.topic, "partition": found.partition, "offset": found.offset}
    assert late["original_encoding"] == "utf-8" and late["original"].encode() == value  # the raw page, not the hop
    assert "Traceback (most recent call last)" in late["traceback"] and "from_bytes" in late["traceback"]

    with urllib.request.urlopen(f"http://127.0.0.1:{kafka_settings.metrics_port}/metrics", timeout=5) as response:
        exposition = response.read().decode()
    assert 'ingest_step_failures_total{step="publish"} 1.0' in exposition
    assert 'ingest_step_failures_total{step="clean"} 0.0' in exposition
    log = worker.log_tail(200_000)
    assert log.count("Traceback (most recent call last)") == 1 and "ERROR" in log

    # Chosen by reason and time: none failed before `before`; the invalid JSON is another reason.
    none = cli(kafka_settings, "redrive", "--reason", "internal_error", "--until", before.isoformat())
    assert "re-sent 0 of 2 dead letters" in none.stderr and "1 outside the time range" in none.stderr
    dry = cli(kafka_settings, "redrive", "--reason", "internal_error", "--dry-run")
    assert dry.stdout.split("\t")[:2] == ["internal_error", URL] and "would re-send 1 of 2" in dry.stderr
    assert len(_input_messages(kafka_settings)) == 2  # a dry run sends nothing
    since = (before - timedelta(seconds=1)).isoformat()
    sent = cli(kafka_settings, "redrive", "--reason", "internal_error", "--since", since)
    assert "re-sent 1 of 2 dead letters" in sent.stderr and "1 another reason" in sent.stderr
    assert _input_messages(kafka_settings).count((URL.encode(), value)) == 2  # the page as it first arrived
    # The page went through the worker again: the same article id (ids are deterministic).
    again = collect_events(kafka_settings, 4)
    replayed = [e for e in again if e.get("url") == URL and e["event_type"] in ("article.v1", "duplicate.v1")]
    assert len(replayed) == 2
    assert {e.get("id") if e["event_type"] == "article.v1" else e["duplicate_of"] for e in replayed} == {article["id"]}


async def _locate(settings, value: bytes) -> Origin | None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from worker.kafka.connection import client_options, start_client

    consumer = await start_client(settings, AIOKafkaConsumer(enable_auto_commit=False, **client_options(settings)))
    try:
        partitions = [TopicPartition(settings.input_topic, p)
                      for p in sorted(consumer.partitions_for_topic(settings.input_topic) or ())]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    if record.value == value:
                        return Origin(record.topic, record.partition, record.offset)
        return None
    finally:
        await consumer.stop()


def _letter(reason: str, original: bytes, topic: str = "pages.raw", failed_at: str = "2026-12-05T10:00:00Z",
            truncated: bool = False) -> dict:
    from worker.document import Dropped

    _, event = dead_letter_event(Dropped(reason, "detail of it"), original, Origin(topic, 1, 7), "https://a.example/1")
    return {**event, "failed_at": failed_at, "original_truncated": truncated}


def test_choose_by_reason_time_and_source() -> None:
    binary = b"\xff\xfe not utf-8"
    letters = [
        _letter("timeout", b'{"url": "https://a.example/1"}'),
        _letter("timeout", binary, failed_at="2026-12-05T12:00:00Z"),
        _letter("invalid_json", b"{"),
        _letter("internal_error", b'{"article": 1}', topic="app-unique-articles"),
        _letter("timeout", b"cut", truncated=True),
        {"event_type": "article.v1"},
    ]
    assert letters[1]["original_encoding"] == "base64" and base64.b64decode(letters[1]["original"]) == binary
    chosen, left = choose(letters, "pages.raw", ["timeout", "internal_error"])
    assert [c.value for c in chosen] == [b'{"url": "https://a.example/1"}', binary, None]  # None: read it back
    assert chosen[0].key == b"https://a.example/1" and chosen[2].source == ("pages.raw", 1, 7)
    assert left == {"another reason": 1, "not a raw page (a message of app-unique-articles)": 1,
                    "not a dead letter": 1}
    late = datetime(2026, 12, 5, 11, tzinfo=UTC)
    chosen, left = choose(letters, "pages.raw", ["timeout"], since=late)
    assert [c.value for c in chosen] == [binary] and left["outside the time range"] == 2
    chosen, _ = choose(letters, "pages.raw", (), until=late)
    assert len(chosen) == 3  # every reason: the timeout, the invalid JSON, the cut timeout
    assert orjson.loads(chosen[0].value)["url"] == "https://a.example/1"
