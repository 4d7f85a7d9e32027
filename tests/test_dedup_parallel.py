"""Two workers in one consumer group: one owner decides, whatever the interleaving; state survives a kill."""

from __future__ import annotations

import html

import pytest
from conftest import collect_events, collect_for_urls, raw_page, read_fixture, send_pages, validate_event

from worker.document import PAGE_KINDS
from worker.kafka.embedded import free_port

pytestmark = pytest.mark.integration


def story_copies(prefix: str) -> list[tuple[bytes, bytes]]:
    """Syndicated copies of the seed story on other sites: cut, retitled, edited, with junk lines."""
    body = read_fixture("seed-page.expected-body.txt").split("\n\n")
    title = read_fixture("seed-page.expected-title.txt").strip()

    def page(headline: str, paragraphs: list[str], site: str) -> str:
        ps = "\n".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
        return (
            f"<html><head><title>{html.escape(headline)} | {site}</title></head><body>"
            f"<nav><a href='/'>Home</a> <a href='/world'>World</a> <a href='/sport'>Sport</a></nav>"
            f"<article><h1>{html.escape(headline)}</h1>{ps}</article>"
            f"<footer>Copyright {site}. All rights reserved.</footer></body></html>"
        )

    straight = [p.replace("\u201c", '"').replace("\u201d", '"').replace("\u2019", "'") for p in body]
    variants = [
        raw_page(f"https://{prefix}-a.example/story", text=read_fixture("seed-page.txt")),
        raw_page(f"https://{prefix}-b.example/world/1", html=page(title, straight, "B News")),
        raw_page(
            f"https://{prefix}-c.example/n/2",
            html=page("Kyiv holds two North Korean troops", body[: len(body) // 2 + 1], "C Daily"),
        ),
        raw_page(
            f"https://{prefix}-d.example/x",
            html=page(title + " - live", body[:6] + ["Read more: Markets rally"] + body[6:], "D Post"),
        ),
        raw_page(
            f"https://{prefix}-e.example/y",
            html=page(title, [p.replace("captured", "seized") for p in body], "E Times"),
        ),
        raw_page(
            f"https://{prefix}-f.example/z",
            html=page(title, [" ".join(body[i : i + 2]) for i in range(0, len(body), 2)], "F Wire"),
        ),
    ]
    return variants


def test_two_workers_one_decision_per_story_and_state_survives_a_kill(kafka_settings, start_worker):
    kafka_settings = kafka_settings.with_overrides(article_page_types=",".join(PAGE_KINDS))  # short made-up pages
    first = start_worker(kafka_settings)
    start_worker(kafka_settings, metrics_port=free_port(), data_dir=kafka_settings.data_dir + "-2")
    copies = story_copies("p1")
    send_pages(kafka_settings, copies)
    events = collect_events(kafka_settings, len(copies), timeout=120)
    assert len(events) == len(copies)
    for event in events:
        validate_event(event)
    articles = [e for e in events if e["event_type"] == "article.v1"]
    duplicates = [e for e in events if e["event_type"] == "duplicate.v1"]
    assert len(articles) == 1, [e.get("url") for e in articles]
    assert {d["duplicate_of"] for d in duplicates} == {articles[0]["id"]}

    # The worker that owned the decision may be this one: its table must come back from the changelog.
    first.stop(kill=True)
    more = story_copies("p2")
    send_pages(kafka_settings, more)
    events = collect_for_urls(kafka_settings, {key.decode() for key, _ in copies + more})
    later = {e["url"]: e for e in events if e.get("url", "").startswith("https://p2-")}.values()
    assert len(later) == len(more)
    assert all(e["event_type"] == "duplicate.v1" and e["duplicate_of"] == articles[0]["id"] for e in later), later
