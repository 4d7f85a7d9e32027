"""The worker end to end on the embedded broker: real Kafka protocol, real steps, no mocks."""

from __future__ import annotations

import json
import re
import urllib.request
from collections import Counter
from pathlib import Path

import orjson
import pytest
from conftest import (
    FIXTURES,
    collect_events,
    collect_for_urls,
    create_topic,
    raw_page,
    read_fixture,
    send_pages,
    validate_event,
)

from worker.cli.sample_pages import load_samples, read_page
from worker.kafka.membership import MEMBER_FILE
from worker.kafka.topics import candidates_topic
from worker.kafka.transport import overrides

pytestmark = pytest.mark.integration
SEED_URL = "https://worldnewsdesk.example/ukraine-says-it-has-captured-two-north-korean-soldiers"


def paragraphs(text: str) -> list[str]:
    """Paragraphs with internal whitespace collapsed, for whitespace-insensitive comparison."""
    return [" ".join(p.split()) for p in text.split("\n\n") if p.strip()]


def test_seed_copy_and_malformed_message(kafka_settings, start_worker):
    start_worker(kafka_settings)
    samples = {s.name: s for s in load_samples()}

    send_pages(
        kafka_settings, [raw_page(SEED_URL, text=read_fixture("seed-page.txt"), fetched_at="2025-01-11T12:00:00Z")]
    )
    [article] = collect_events(kafka_settings, 1)
    validate_event(article)
    assert article["event_type"] == "article.v1"
    assert article["title"] == read_fixture("seed-page.expected-title.txt").strip()
    assert paragraphs(article["text"]) == paragraphs(read_fixture("seed-page.expected-body.txt"))
    by_name = {e["canonical"]: e for e in article["entities"]}
    assert by_name["Volodymyr Zelenskyy"]["label"] == "PERSON"
    mentioned = {article["text"][start:end] for start, end in by_name["Volodymyr Zelenskyy"]["mentions"]}
    assert "Zelenskyy" in mentioned
    assert by_name["Security Service of Ukraine"]["label"] == "ORG"
    for place in ("Ukraine", "Russia", "North Korea"):
        assert by_name[place]["label"] == "GPE"

    copy = samples["wire-copy-of-seed.html"]
    send_pages(kafka_settings, [(copy.key, copy.value)])
    events = collect_events(kafka_settings, 2)
    duplicate = events[-1] if events[-1]["event_type"] == "duplicate.v1" else events[0]
    validate_event(duplicate)
    assert duplicate["event_type"] == "duplicate.v1"
    assert duplicate["duplicate_of"] == article["id"]
    assert duplicate["kind"] == "near"

    good = samples["aljazeera-helicopter.html.gz"]
    send_pages(kafka_settings, [(None, b'{"url": "https://broken.example/x", "html": "<p>cut'), (good.key, good.value)])
    events = collect_events(kafka_settings, 4)
    for event in events:
        validate_event(event)
    kinds = Counter(e["event_type"] for e in events)
    assert kinds == {"article.v1": 2, "duplicate.v1": 1, "dead_letter.v1": 1}
    [dead] = [e for e in events if e["event_type"] == "dead_letter.v1"]
    assert dead["reason"] == "invalid_json"
    assert dead["original"].startswith('{"url": "https://broken.example/x"')
    assert dead["source"]["topic"] == kafka_settings.input_topic
    assert any(e["event_type"] == "article.v1" and "helicopter" in e["title"].lower() for e in events)

    clusters = collect_events(kafka_settings, 1, topics=[kafka_settings.clusters_topic])
    validate_event(clusters[0])
    assert clusters[0]["article_id"] == article["id"] and clusters[0]["copies"] == 2

    with urllib.request.urlopen(f"http://127.0.0.1:{kafka_settings.metrics_port}/metrics", timeout=5) as response:
        exposition = response.read().decode()
    assert 'ingest_pages_consumed_total{topic="%s"} 4.0' % kafka_settings.input_topic in exposition
    assert 'ingest_dead_letters_total{reason="invalid_json"} 1.0' in exposition
    assert 'ingest_dead_letters_total{reason="timeout"} 0.0' in exposition


def test_every_bad_input_is_a_dead_letter_with_a_reason(kafka_settings, start_worker):
    start_worker(kafka_settings, max_page_bytes=2_000_000)
    # Over a megabyte of distinct story-like paragraphs: a valid page whose cleaned text is too
    # large to pass between steps in one Kafka message.
    endless = "\n\n".join(
        f"Paragraph {n}: the council discussed item {n} and agreed that project {n * 7} grows {n % 13} percent."
        for n in range(10_000)
    )
    messages = [
        (None, b"not json at all"),
        (None, b"[1, 2, 3]"),
        raw_page("ftp://example.com/x", html="<p>x</p>"),
        raw_page("https://example.com/both", html="<p>x</p>", text="x"),
        raw_page("https://example.com/big", html="<p>" + "word " * 500_000 + "</p>"),
        raw_page("https://example.com/endless", text=endless),
        raw_page("https://example.com/pdf", html="%PDF", headers={"Content-Type": "application/pdf"}),
        raw_page("https://example.com/empty", html="<html><body><nav>Home</nav></body></html>"),
        (None, '{"url": "https://example.com/latin1", "text": "caf\xe9"}'.encode("latin-1")),
    ]
    send_pages(kafka_settings, messages)
    events = collect_events(kafka_settings, len(messages))
    assert len(events) == len(messages)
    for event in events:
        validate_event(event)
    reasons = Counter(e["reason"] for e in events)
    assert reasons == {
        "invalid_json": 3,
        "invalid_field": 2,
        "too_large": 2,
        "unsupported_content": 1,
        "empty_after_cleaning": 1,
    }
    latin1 = [e for e in events if e["original_encoding"] == "base64"]
    assert len(latin1) == 1
    [endless_letter] = [e for e in events if e.get("url") == "https://example.com/endless"]
    assert endless_letter["reason"] == "too_large" and "between steps" in endless_letter["detail"]


def test_worker_killed_mid_stream_accounts_for_every_page(kafka_settings, start_worker):
    pages = _real_pages()
    worker = start_worker(kafka_settings)
    send_pages(kafka_settings, pages[: len(pages) // 2])
    collect_events(kafka_settings, 2)  # some output exists: the worker is mid-stream
    member = json.loads((Path(kafka_settings.data_dir) / MEMBER_FILE).read_text())["member_id"]
    worker.stop(kill=True)
    send_pages(kafka_settings, pages[len(pages) // 2 :])
    start_worker(kafka_settings)
    events = collect_for_urls(kafka_settings, {p[0].decode() for p in pages})
    # restarted on its data directory, it rejoined its group as the member it was
    assert json.loads((Path(kafka_settings.data_dir) / MEMBER_FILE).read_text())["member_id"] == member
    # The take-over ran through every override that keeps pages from being lost on a kill: a
    # library upgrade that renames the method it overrides would leave one at 0.
    with urllib.request.urlopen(f"http://127.0.0.1:{kafka_settings.metrics_port}/metrics", timeout=5) as response:
        exposition = response.read().decode()
    calls = {name: float(count) for name, count in re.findall(
        r'^ingest_transport_fix_calls_total\{method="([^"]+)"\} (\S+)$', exposition, re.M)}
    assert set(calls) == set(overrides()), calls
    assert not [name for name, count in calls.items() if count == 0], calls
    for event in events:
        validate_event(event)
    contents: dict[str, set[bytes]] = {}
    for event in events:
        if event["event_type"] == "article.v1":
            contents.setdefault(event["id"], set()).add(
                orjson.dumps([event["title"], event["text"], event["entities"]])
            )
    assert all(len(variants) == 1 for variants in contents.values()), "an article id was emitted with different content"


def _real_pages() -> list[tuple[bytes, bytes]]:
    """Distinct real pages: the shipped samples' HTML pages plus the cleaning fixtures."""
    pages = [(s.key, s.value) for s in load_samples() if s.expect == "article"]
    for path in sorted((FIXTURES / "pages").rglob("*.html*"))[:6]:
        url = f"https://fixtures.example/{path.name.split('.')[0]}"
        pages.append((url.encode(), read_page(path, url)))
    return pages


def test_unreadable_messages_on_internal_hops_are_dead_letters_and_the_agents_go_on(kafka_settings, start_worker):
    """A hop message this version cannot read (an older or broken producer) ends as a dead letter
    from the agent that took it, and that agent keeps serving the next page."""
    import asyncio

    from worker.kafka.clients import produce

    start_worker(kafka_settings)
    send_pages(kafka_settings, [raw_page(SEED_URL, text=read_fixture("seed-page.txt"))])
    [first] = collect_events(kafka_settings, 1)  # the worker has created its internal topics
    assert first["event_type"] == "article.v1"
    app_id = kafka_settings.app_id
    asyncio.run(produce(kafka_settings, f"{app_id}-dedup-candidates", [(b"x", b"{not a hop")]))
    asyncio.run(produce(kafka_settings, f"{app_id}-unique-articles", [(b"y", b'{"article": 1}')]))
    later = next(s for s in load_samples() if s.name.startswith("aljazeera"))
    send_pages(kafka_settings, [(later.key, later.value)])
    events = collect_events(kafka_settings, 4)
    for event in events:
        validate_event(event)
    dead = sorted(
        (e["source"]["topic"], e["reason"], e["detail"].split(":")[0])
        for e in events
        if e["event_type"] == "dead_letter.v1"
    )
    assert dead == [
        (f"{app_id}-dedup-candidates", "internal_error", "Step 'dedup' failed on this page"),
        (f"{app_id}-unique-articles", "internal_error", "Step 'entities' failed on this page"),
    ]
    assert sum(e["event_type"] == "article.v1" for e in events) == 2


def test_a_dedup_topic_with_another_partition_count_stops_the_worker_at_start(kafka_settings, start_worker):
    """Faust keeps an existing topic as it is: a dedup hop with two partitions would make every
    decision fail, so the worker refuses to start and says which topic and what to do."""
    settings = kafka_settings.with_overrides(app_id=f"{kafka_settings.app_id}-hop")  # hops not created yet
    create_topic(settings, candidates_topic(settings), partitions=2)
    with pytest.raises(RuntimeError, match="exited at start-up") as failed:
        start_worker(settings)
    assert (
        f"ingest-worker run: topic {candidates_topic(settings)} has 2 partitions; "
        "the dedup owner needs exactly 1" in str(failed.value)
    )
