"""Every event the worker emits validates against its schema in schemas/."""

from __future__ import annotations

import base64
import json
import re

import jsonschema
import pytest
from conftest import SCHEMAS, validate_event

from worker.cli.sample_pages import load_samples
from worker.document import Article, Dropped, Entity, Origin
from worker.events import (
    MAX_ORIGINAL_BYTES,
    article_event,
    cloudevent_headers,
    cluster_event,
    dead_letter_event,
    duplicate_event,
    event_id,
    schemas,
    trace_parent,
)

ARTICLE = Article(
    url="https://a.example/story",
    title="A story",
    text="First paragraph.\n\nSecond one.",
    mode="html",
    source_domain="a.example",
    fetched_at="2025-01-11T12:00:00Z",
    language="en",
    entities=[Entity("0123456789abcdef", "Kyiv", "GPE", "Kyiv", [(0, 4)], 1, 0.5)],
    stage_seconds={"clean": 0.01},
)
ORIGIN = Origin("pages.raw", 3, 42)


def test_article_event():
    key, event = article_event(ARTICLE, "a" * 32, "b" * 64)
    validate_event(event)
    assert key == b"a" * 32 and event["word_count"] == 4 and event["entities"][0]["mentions"] == [[0, 4]]


def test_duplicate_and_cluster_events():
    key, event = duplicate_event("c" * 32, ARTICLE, "a" * 32, "near", 0.8765432)
    validate_event(event)
    assert key == b"a" * 32 and event["similarity"] == 0.8765
    key, event = cluster_event("a" * 32, 3, ARTICLE.url)
    validate_event(event)
    assert key == b"a" * 32


def test_dead_letter_keeps_utf8_as_text_and_binary_as_base64():
    _, event = dead_letter_event(Dropped("invalid_json", "The message is not valid JSON."), b"{bad", ORIGIN)
    validate_event(event)
    assert event["original"] == "{bad" and event["source"] == {"topic": "pages.raw", "partition": 3, "offset": 42}
    _, event = dead_letter_event(Dropped("invalid_json", "The message is not UTF-8 text."), b"\xff\xfe\x00", ORIGIN)
    validate_event(event)
    assert event["original_encoding"] == "base64" and base64.b64decode(event["original"]) == b"\xff\xfe\x00"


def test_dead_letter_of_a_huge_page_is_cut():
    _, event = dead_letter_event(
        Dropped("too_large", "The message is too large."), b"x" * (MAX_ORIGINAL_BYTES * 3), ORIGIN
    )
    validate_event(event)
    assert event["original_truncated"] and len(event["original"]) == MAX_ORIGINAL_BYTES


def test_a_wrong_event_fails_its_schema():
    _, event = duplicate_event("c" * 32, ARTICLE, "a" * 32, "near", 0.9)
    event["kind"] = "similar"
    with pytest.raises(jsonschema.ValidationError):
        validate_event(event)


def test_samples_are_raw_page_events():
    for sample in load_samples():
        if sample.expect != "dead_letter":
            jsonschema.Draft202012Validator(SCHEMAS["raw_page.v1"]).validate(json.loads(sample.value))


def test_schemas_are_valid_2020_12():
    for schema in SCHEMAS.values():
        jsonschema.Draft202012Validator.check_schema(schema)


TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def all_events() -> list[dict]:
    """One event of each type the worker publishes."""
    return [
        article_event(ARTICLE, "a" * 32, "b" * 64)[1],
        duplicate_event("c" * 32, ARTICLE, "a" * 32, "exact", 1.0)[1],
        cluster_event("a" * 32, 2, ARTICLE.url)[1],
        dead_letter_event(Dropped("invalid_json", "The message is not valid JSON."), b"{bad", ORIGIN)[1],
    ]


def test_every_event_gets_cloudevents_binary_mode_headers():
    for event in all_events():
        headers = dict(cloudevent_headers(event, "ingest-worker", TRACE))
        assert all(isinstance(v, bytes) for v in headers.values())
        attributes = {k: v.decode() for k, v in headers.items()}
        assert attributes["ce_specversion"] == "1.0"
        assert attributes["ce_source"] == "ingest-worker"
        assert attributes["ce_type"] == event["event_type"]
        assert attributes["ce_dataschema"] == SCHEMAS[event["event_type"]]["$id"]
        assert attributes["content-type"] == "application/json"
        assert attributes["traceparent"] == TRACE
        jsonschema.validate(attributes["ce_time"], {"format": "date-time"}, format_checker=jsonschema.FormatChecker())
        assert re.fullmatch(r"[0-9a-f]{32}", attributes["ce_id"])
    article, duplicate, cluster, dead = all_events()
    assert dict(cloudevent_headers(article, "w"))["ce_id"] == b"a" * 32
    assert dict(cloudevent_headers(duplicate, "w"))["ce_id"] == b"c" * 32
    assert "traceparent" not in dict(cloudevent_headers(article, "w"))


def test_cloudevent_ids_are_deterministic_and_distinct():
    first, again = all_events(), all_events()  # built again: other timestamps, same inputs
    assert [event_id(e) for e in first] == [event_id(e) for e in again]
    assert len({event_id(e) for e in first}) == len(first)
    assert event_id(cluster_event("a" * 32, 3, ARTICLE.url)[1]) != event_id(first[2])
    other_offset = dead_letter_event(Dropped("invalid_json", "x"), b"{bad", Origin("pages.raw", 3, 43))[1]
    assert event_id(other_offset) != event_id(first[3])


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([("traceparent", TRACE.encode())], TRACE),
        ({"TraceParent": TRACE.upper()}, TRACE),
        ([("other", b"x"), ("traceparent", b"not-a-trace")], None),
        ([("traceparent", b"00-" + b"0" * 32 + b"-00f067aa0ba902b7-01")], None),
        ([("traceparent", None)], None),
        ((), None),
    ],
)
def test_trace_parent_is_carried_only_when_well_formed(headers, expected):
    assert trace_parent(headers) == expected


def test_packaged_schemas_are_the_contract_files():
    packaged = {name: json.loads(text) for name, text in schemas().items()}
    assert packaged == SCHEMAS
    for name, schema in packaged.items():
        assert schema["$id"] == f"https://ingest-worker.dev/schemas/{name}.json"
