"""A page of a kind not published as articles ends as a `skipped.v1` record: one outcome, not an
error, counted, and the setting that names the published kinds decides it."""

from __future__ import annotations

import gzip
import json
from collections import Counter

import orjson
import pytest
from conftest import FIXTURES, validate_event
from prometheus_client import CollectorRegistry

from worker.document import PAGE_KINDS
from worker.offline import process_lines
from worker.runtime.metrics import Metrics
from worker.settings import Settings, SettingsError

KINDS_DIR = FIXTURES / "page-types"
TRUTH = json.loads((KINDS_DIR / "ground-truth.json").read_text(encoding="utf-8"))


def page_lines(source: str = "html") -> list[bytes]:
    """One raw_page.v1 line per fixture page of each kind (its HTML, or its text dump)."""
    lines = []
    for page_id, item in sorted(TRUTH.items()):
        if source == "html":
            body = {"html": gzip.decompress((KINDS_DIR / "html" / f"{page_id}.html.gz").read_bytes()).decode()}
        else:
            body = {"text": (KINDS_DIR / "text" / f"{page_id}.txt").read_text(encoding="utf-8")}
        lines.append(orjson.dumps({"url": item["url"], "fetched_at": "2026-01-05T10:00:00Z", **body}))
    return lines


def test_pages_of_other_kinds_end_as_skipped_records_and_articles_are_published() -> None:
    metrics = Metrics.create(CollectorRegistry())
    events = list(process_lines(page_lines(), Settings(), tag_entities=False, metrics=metrics))
    for event in events:
        validate_event(event)
    by_url = {e["url"]: e for e in events}
    assert len(by_url) == len(events) == len(TRUTH)  # exactly one outcome per page
    for item in TRUTH.values():
        event = by_url[item["url"]]
        if item["page_type"] == "article":
            assert event["event_type"] == "article.v1"
            assert event["page_type"] == "article" and event["page_type_confidence"] > 0.5
            continue
        assert event["event_type"] == "skipped.v1", (item, event)
        assert event["reason"] == "not_article" and event["page_type"] == item["page_type"]
        assert "INGEST_ARTICLE_PAGE_TYPES" in event["detail"]
        assert event["source"]["topic"] == "file"
    skipped = Counter(e["page_type"] for e in events if e["event_type"] == "skipped.v1")
    for kind, count in skipped.items():
        assert metrics.skipped.labels("not_article", kind)._value.get() == count
        assert metrics.page_types.labels(kind)._value.get() == count
    assert sum(metrics.dead_letters.labels(r)._value.get() for r in ("empty_after_cleaning", "internal_error")) == 0


def test_a_page_of_linked_headlines_is_not_published_as_an_article() -> None:
    # The cleaner may keep such a list (a listing's headlines are its content); the page's kind
    # keeps it from the article stream.
    html = "<html><body><ul>" + "".join(
        f"<li><a href='/n/{k}'>Headline number {k}</a></li>" for k in range(80)
    ) + "</ul></body></html>"
    line = orjson.dumps({"url": "https://a.example/", "fetched_at": "2026-01-05T10:00:00Z", "html": html})
    events = list(process_lines([line], Settings(), tag_entities=False, metrics=Metrics.create(CollectorRegistry())))
    assert len(events) == 1
    validate_event(events[0])
    assert events[0]["event_type"] in ("skipped.v1", "dead_letter.v1"), events[0]
    assert events[0]["page_type"] != "article"


def test_text_dumps_carry_their_kind_and_are_published() -> None:
    events = list(process_lines(page_lines("text"), Settings(), tag_entities=False))
    for event in events:
        validate_event(event)
    assert Counter(e["event_type"] for e in events) == {"article.v1": len(TRUTH)}
    kinds = {e["url"]: e["page_type"] for e in events}
    assert kinds == {item["url"]: item["page_type"] for item in TRUTH.values()}


def test_the_setting_names_the_kinds_published_as_articles() -> None:
    everything = Settings(article_page_types=",".join(PAGE_KINDS))
    events = list(process_lines(page_lines(), everything, tag_entities=False))
    assert Counter(e["event_type"] for e in events) == {"article.v1": len(TRUTH)}
    assert {e["page_type"] for e in events} == set(PAGE_KINDS)
    shop = Settings.from_env({"INGEST_ARTICLE_PAGE_TYPES": "article, product"})
    kinds = {e["page_type"]: e["event_type"] for e in process_lines(page_lines(), shop, tag_entities=False)}
    assert kinds["product"] == "article.v1" and kinds["forum"] == "skipped.v1"


@pytest.mark.parametrize("value", ["", "news", "article,blog"])
def test_an_unknown_page_kind_in_the_setting_is_refused(value: str) -> None:
    with pytest.raises(SettingsError, match="INGEST_ARTICLE_PAGE_TYPES"):
        Settings.from_env({"INGEST_ARTICLE_PAGE_TYPES": value})


def test_a_kind_read_with_little_confidence_is_published_not_skipped() -> None:
    from worker.document import SKIP_MIN_CONFIDENCE
    from worker.runtime.compute import InlineCompute
    from worker.stages import Stages
    from worker.steps.dedup import DedupIndex

    stages = Stages(Settings(), DedupIndex({}), InlineCompute(), Metrics.create(CollectorRegistry()))
    assert not stages._published("product", SKIP_MIN_CONFIDENCE)
    assert stages._published("product", SKIP_MIN_CONFIDENCE - 0.01)  # unsure: a story must not be lost
    assert stages._published("article", 0.2) and stages._published(None, None)
