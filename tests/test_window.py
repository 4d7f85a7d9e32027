"""The dedup window follows event time that no single page can break."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson

from worker.offline import process_lines
from worker.settings import Settings
from worker.steps.common import epoch_seconds
from worker.steps.dedup.index import HOUR, DedupIndex
from worker.steps.dedup.window import MAX_FUTURE_SKEW_SECONDS, Watermark, event_time

DEV_PAGES = Path(__file__).parent / "fixtures" / "dedup" / "dev-pages.jsonl.gz"
BROKER = 1_790_000_000.0  # 2026-09-21


def test_event_time_is_fetched_at_unless_absent_in_the_future_or_absurdly_old() -> None:
    assert event_time(BROKER - 3600, BROKER) == (BROKER - 3600, None)
    assert event_time(BROKER - 2 * 365 * 86400, BROKER)[1] is None  # a backfill two years old is fine
    assert event_time(BROKER + MAX_FUTURE_SKEW_SECONDS - 1, BROKER)[1] is None  # a little clock skew
    assert event_time(None, BROKER) == (BROKER, "absent")
    assert event_time(epoch_seconds("9999-12-31T23:59:59Z"), BROKER) == (BROKER, "future")
    assert event_time(BROKER + 86400, BROKER) == (BROKER, "future")
    assert event_time(0.0, BROKER) == (BROKER, "too_old")
    assert event_time(epoch_seconds("1900-01-01T00:00:00Z"), BROKER) == (BROKER, "too_old")


def test_one_page_cannot_move_the_watermark() -> None:
    mark = Watermark()
    backfill = 1_700_000_000.0
    for n in range(60):
        mark.observe(backfill + n)
    assert mark.observe(BROKER) < backfill + 60  # today's page among a backfill
    assert mark.value < backfill + 60
    for n in range(200):  # then live traffic takes over, and the watermark follows it
        mark.observe(BROKER + n)
    assert mark.value >= BROKER


def test_watermark_never_goes_back_and_waits_for_enough_pages() -> None:
    mark = Watermark()
    assert mark.observe(BROKER) == 0.0  # too few pages to say anything yet
    for n in range(20):
        mark.observe(BROKER + n)
    high = mark.value
    for _ in range(200):
        mark.observe(BROKER - 86400)
    assert mark.value == high


class CountingDict(dict[str, bytes]):
    """A dict that counts reads, to bound the work one expiry call does."""

    reads = 0

    def get(self, key, default=None):  # type: ignore[no-untyped-def, override]
        self.reads += 1
        return super().get(key, default)


def test_expiry_work_per_call_is_bounded_whatever_the_gap() -> None:
    from test_dedup import story

    from worker.document import Article
    from worker.steps.dedup.fingerprint import fingerprint

    state = CountingDict()
    index = DedupIndex(state, window_seconds=7 * 86400)
    old = 1_000_000_000.0  # 2001
    text = "\n\n".join(story(1))
    index.decide("https://a.example/1", fingerprint(Article("https://a.example/1", "t", text, "html")), old)
    later = old + 20 * 365 * 86400  # twenty years of empty hours in between
    state.reads = 0
    index.expire(later, max_hours=48)
    assert state.reads < 48 * 3 + 10
    assert index.entries() == 0  # the one old page was in the first hour visited
    assert not index.expiry_due(later)
    newer = Article("https://a.example/2", "t", text + " More.", "html")
    index.decide(newer.url, fingerprint(newer), later)
    assert index.entries() == 1 and index.expire(later + HOUR) == 0


def _outcomes(lines: list[bytes]) -> dict[str, tuple[str, str | None]]:
    events = process_lines(lines, Settings(), tag_entities=False)
    return {
        e["url"]: (e["event_type"], e.get("duplicate_of"))
        for e in events
        if e["event_type"] in ("article.v1", "duplicate.v1")
    }


def test_odd_clocks_mixed_into_a_stream_leave_every_decision_unchanged() -> None:
    lines = [line for line in gzip.decompress(DEV_PAGES.read_bytes()).splitlines() if line.strip()]
    clean = _outcomes(lines)
    odd = []
    for n, line in enumerate(lines):
        page = orjson.loads(line)
        if n % 5 == 1:
            page.pop("fetched_at", None)  # broker time instead: today, far after the rest
        elif n % 17 == 3:
            page["fetched_at"] = "9999-12-31T23:59:59Z"
        elif n % 19 == 4:
            page["fetched_at"] = "1969-07-20T20:17:00Z"
        odd.append(orjson.dumps(page))
    assert _outcomes(odd) == clean


def test_a_restarted_dedup_owner_decides_as_the_first_one_did_replays_included() -> None:
    """The owner is killed after `cut` pages and its successor replays the last 12 (their offsets
    were not committed). Seven of those carry no fetched_at (broker time: today, long after the
    rest): counted again by a watermark starting afresh, they would be its median and expire
    every earlier story, so the copies after the restart would become new articles."""
    lines = [line for line in gzip.decompress(DEV_PAGES.read_bytes()).splitlines() if line.strip()]
    cut = 120
    odd = []
    for n, line in enumerate(lines):
        page = orjson.loads(line)
        if cut - 12 <= n < cut - 5:
            page.pop("fetched_at", None)
        odd.append(orjson.dumps(page))
    settings = Settings()
    state: dict[str, bytes] = {}  # what the successor recovers from the changelog
    first = list(process_lines(odd[:cut], settings, tag_entities=False, state=state))
    second = list(process_lines(odd[cut - 12 :], settings, tag_entities=False, state=state))
    restarted = {
        e["url"]: (e["event_type"], e.get("duplicate_of"))
        for e in [*first, *second]
        if e["event_type"] in ("article.v1", "duplicate.v1")
    }
    assert restarted == _outcomes(odd)
