"""Every event the worker emits validates against its schema in schemas/."""

from __future__ import annotations

import base64
import json

import jsonschema
import pytest
from conftest import SCHEMAS, validate_event

from worker.cli.sample_pages import load_samples
from worker.document import Article, Dropped, Entity, Origin
from worker.events import MAX_ORIGINAL_BYTES, article_event, cluster_event, dead_letter_event, duplicate_event

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
