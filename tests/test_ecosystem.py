"""Non-Python clients against a running worker: confluent-kafka (librdkafka) reads the CloudEvents
headers of real events, and the scripts in examples/ run against the embedded broker."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, Producer
from conftest import ROOT, SCHEMAS, read_fixture, validate_event

from worker.cli.sample_pages import load_samples
from worker.settings import Settings

pytestmark = pytest.mark.integration
SEED_URL = "https://worldnewsdesk.example/ukraine-says-it-has-captured-two-north-korean-soldiers"
COPY_URL = "https://mirror.example/ukraine-north-korean-soldiers"


def trace(n: int) -> str:
    return f"00-{n:032x}-{n:016x}-01"


def bootstrap(settings: Settings) -> str:
    return settings.broker.removeprefix("kafka://")


def produce(settings: Settings, messages: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap(settings), "acks": "all"})
    errors: list[Any] = []
    for key, value, headers in messages:
        producer.produce(
            settings.input_topic, key=key, value=value, headers=headers, on_delivery=lambda e, m: errors.append(e)
        )
    assert producer.flush(30) == 0 and errors == [None] * len(messages)


def consume(settings: Settings, topics: list[str], count: int, timeout: float = 180) -> list[tuple[str, dict, Any]]:
    """(topic, header dict, parsed body) of `count` messages read from the beginning by a consumer group."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap(settings),
            "group.id": f"pytest-reader-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 10,
        }
    )
    consumer.subscribe(topics)
    found: list[tuple[str, dict, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(found) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            headers = {name: value.decode() for name, value in message.headers() or []}
            found.append((message.topic(), headers, orjson.loads(message.value())))
    finally:
        consumer.close()
    assert len(found) == count, f"read {len(found)} of {count} events: {[(t, h) for t, h, _ in found]}"
    return found


def test_confluent_kafka_reads_cloudevents_headers_of_every_event(kafka_settings, start_worker):
    settings = kafka_settings
    start_worker(settings)
    seed = orjson.dumps({"url": SEED_URL, "text": read_fixture("seed-page.txt"), "fetched_at": "2025-01-11T12:00:00Z"})
    produce(settings, [(SEED_URL.encode(), seed, [("traceparent", trace(1).encode())])])
    consume(settings, [settings.articles_topic], 1)

    copy = orjson.dumps({**orjson.loads(seed), "url": COPY_URL})
    helicopter = next(s for s in load_samples() if s.name.startswith("aljazeera"))
    structured = orjson.dumps(
        {
            "specversion": "1.0",
            "id": "crawl-7",
            "source": "/crawler",
            "type": "raw_page.v1",
            "datacontenttype": "application/json",
            "traceparent": trace(4),  # the CloudEvents distributed-tracing extension attribute
            "data": orjson.loads(helicopter.value),
        }
    )
    produce(
        settings,
        [
            (COPY_URL.encode(), copy, [("traceparent", trace(2).encode())]),
            (None, b'{"url": "https://broken.example/x", "html": "<p>cut', [("traceparent", trace(3).encode())]),
            (helicopter.key, structured, [("content-type", b"application/cloudevents+json")]),
        ],
    )
    topics = [settings.articles_topic, settings.duplicates_topic, settings.clusters_topic, settings.dead_letter_topic]
    events = consume(settings, topics, 5)

    topic_of = dict(zip(["article.v1", "duplicate.v1", "cluster.v1", "dead_letter.v1"], topics, strict=True))
    by_type = {}
    for topic, headers, body in events:
        validate_event(body)
        assert topic == topic_of[body["event_type"]]
        assert headers["ce_specversion"] == "1.0"
        assert headers["ce_source"] == settings.app_id
        assert headers["ce_type"] == body["event_type"]
        assert headers["ce_dataschema"] == SCHEMAS[body["event_type"]]["$id"]
        assert headers["content-type"] == "application/json"
        assert headers["ce_time"].endswith("Z") and headers["ce_time"] in orjson.dumps(body).decode()
        by_type.setdefault(body["event_type"], []).append((headers, body))
    assert sorted((k, len(v)) for k, v in by_type.items()) == [
        ("article.v1", 2),
        ("cluster.v1", 1),
        ("dead_letter.v1", 1),
        ("duplicate.v1", 1),
    ]
    articles = {body["url"]: (headers, body) for headers, body in by_type["article.v1"]}
    seed_headers, seed_article = articles[SEED_URL]
    assert seed_headers["ce_id"] == seed_article["id"] and seed_headers["traceparent"] == trace(1)
    helicopter_headers, _ = articles[helicopter.key.decode()]
    assert helicopter_headers["traceparent"] == trace(4)
    [(duplicate_headers, duplicate)] = by_type["duplicate.v1"]
    assert duplicate["url"] == COPY_URL and duplicate_headers["ce_id"] == duplicate["id"]
    assert duplicate_headers["traceparent"] == trace(2)
    [(cluster_headers, _)] = by_type["cluster.v1"]
    assert cluster_headers["traceparent"] == trace(2)
    [(dead_headers, dead)] = by_type["dead_letter.v1"]
    assert dead["reason"] == "invalid_json" and dead_headers["traceparent"] == trace(3)
    assert len({headers["ce_id"] for _, headers, _ in events}) == 5


def test_example_producer_and_consumer(kafka_settings, start_worker):
    settings = kafka_settings
    start_worker(settings)
    common = ["--bootstrap-servers", bootstrap(settings)]
    sent = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "produce_pages.py"),
            *common,
            "--topic",
            settings.input_topic,
            SEED_URL,
            str(ROOT / "tests" / "fixtures" / "seed-page.txt"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sent.returncode == 0, sent.stderr
    [line] = sent.stdout.splitlines()
    url, sent_trace = line.split(" traceparent=")
    assert url == SEED_URL

    read = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "consume_articles.py"),
            *common,
            "--topic",
            settings.articles_topic,
            "--group",
            f"{settings.app_id}-example",
            "--max",
            "1",
            "--timeout",
            "180",
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert read.returncode == 0, read.stderr
    [line] = read.stdout.splitlines()
    article_id, event_type, rest = line.split(" ", 2)
    assert len(article_id) == 32 and event_type == "article.v1"
    assert "North Korean soldiers" in rest and SEED_URL in rest and "Zelenskyy" in rest
    assert rest.endswith(f"traceparent={sent_trace}")
