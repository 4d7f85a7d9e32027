"""Fault accounting: a hostile corpus, inputs with known positions, and what became of each one.

Used by `bench/faults.py` (kills, a frozen broker, the hostile corpus, the soak) and by the fast
fault tests. Every input is produced with its partition and offset recorded; the output topics
are then read back and each input gets the set of outcomes that name it (articles and duplicates
by url, dead letters and skipped records by their source position). A sound run has, for every input, exactly one
outcome kind, one the input allows, and the same article id as a run without faults.
"""

from __future__ import annotations

import asyncio
import gzip
import random
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from worker.evaluation.dedup import score
from worker.kafka.clients import consume
from worker.kafka.connection import client_options, start_client
from worker.settings import Settings

# What a readable page may end as: an article, a duplicate, or a skipped record (a page of a kind
# not published as articles: not an error).
PROCESSED = frozenset({"article", "duplicate", "skipped"})
HOSTILE_HOST = "https://hostile.example"


@dataclass(frozen=True, slots=True)
class Input:
    """One message for the input topic and the outcomes it may end in."""

    name: str
    key: bytes | None
    value: bytes | None
    url: str | None  # the url its article/duplicate events carry (None: it cannot become one)
    expect: frozenset[str] = PROCESSED  # "article", "duplicate", "skipped", "dead:<reason>"


@dataclass
class Accounting:
    """What became of each input of a run."""

    outcomes: dict[str, set[str]]  # input name -> outcomes ("article", "duplicate", "skipped", "dead:<reason>")
    ids: dict[str, set[str]]  # input name -> ids of its article/duplicate events
    events: list[dict[str, Any]] = field(default_factory=list)
    stray: int = 0  # output events that name no input of the run

    @property
    def lost(self) -> list[str]:
        """Inputs with no outcome at all."""
        return sorted(name for name, found in self.outcomes.items() if not found)

    @property
    def two_kinds(self) -> list[str]:
        """Inputs that ended as more than one kind (e.g. a duplicate and an article)."""
        return sorted(name for name, found in self.outcomes.items() if len({_kind(o) for o in found}) > 1)

    def unexpected(self, inputs: Sequence[Input]) -> dict[str, list[str]]:
        """Inputs with an outcome they do not allow (e.g. internal_error for bad JSON)."""
        return {
            i.name: sorted(self.outcomes[i.name] - i.expect) for i in inputs if self.outcomes[i.name] - i.expect
        }

    def id_changes(self, clean: Accounting) -> list[str]:
        """Inputs whose article/duplicate ids differ from those of the clean run."""
        return sorted(name for name, ids in self.ids.items() if name in clean.ids and ids != clean.ids[name])

    def kind_changes(self, clean: Accounting) -> list[str]:
        """Inputs whose outcomes differ from those of the clean run."""
        return sorted(
            name for name, found in self.outcomes.items() if name in clean.outcomes and found != clean.outcomes[name]
        )


def _kind(outcome: str) -> str:
    return outcome.split(":", 1)[0]


def read_jsonl(path: str) -> list[bytes]:
    """Non-empty lines of a JSONL file (gzipped or not)."""
    with open(path, "rb") as handle:
        data = handle.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return [line.strip() for line in data.splitlines() if line.strip()]


def real_inputs(lines: Iterable[bytes], url_suffix: str = "", fetched_at: str | None = None) -> list[Input]:
    """Raw page events as inputs keyed by url; `url_suffix`/`fetched_at` make a cycle of a soak distinct."""
    inputs = []
    for line in lines:
        page = orjson.loads(line)
        if url_suffix:
            page["url"] = page["url"] + ("&" if "?" in page["url"] else "?") + url_suffix
        if fetched_at:
            page["fetched_at"] = fetched_at
        url = page["url"]
        inputs.append(Input(f"page:{url}", url.encode(), orjson.dumps(page), url))
    return inputs


def article_text(rng: random.Random, paragraphs: int = 6) -> str:
    """A plausible, unique English news text (so a page built on it is an article, not a duplicate)."""
    subjects = ["The council", "Officials", "The company", "Residents", "The minister", "Researchers",
                "The committee", "Local police", "The school board", "Engineers", "Doctors", "The mayor"]
    verbs = ["said", "announced", "confirmed", "warned", "reported", "explained", "argued", "noted"]
    clauses = ["that the project would cost more than expected", "that the new plan starts next month",
               "that water levels in the river were rising", "that the budget had been approved",
               "that hundreds of families were affected", "that a new bridge would open in the spring",
               "that the results were better than last year", "that the road would stay closed for weeks",
               "that the hospital needed more staff", "that prices had risen sharply since the summer"]
    places = ["Northfield", "Easton", "Riverside", "Millbrook", "Ashford", "Lakeside", "Kingsbury", "Westport"]
    text = []
    for _ in range(paragraphs):
        sentences = []
        for _ in range(rng.randint(3, 5)):
            sentences.append(
                f"{rng.choice(subjects)} in {rng.choice(places)} {rng.choice(verbs)} on "
                f"{rng.choice(['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday'])} "
                f"{rng.choice(clauses)}, with {rng.randint(2, 9000)} people and {rng.randint(2, 400)} "
                f"homes involved."
            )
        text.append(" ".join(sentences))
    return "\n\n".join(text)


def hostile_inputs(seed: int = 0, max_page_bytes: int = 5_000_000) -> list[Input]:
    """Hostile messages, generated: bad bytes and JSON, wrong types, huge and deep values,
    time-travel `fetched_at`, HTML bombs, binary and empty messages; each with the outcomes it allows."""
    rng = random.Random(seed)
    inputs: list[Input] = []

    def add(name: str, value: bytes | None, expect: Iterable[str], url: str | None = None, key: bytes | None = None):
        inputs.append(Input(f"hostile:{name}", key, value, url, frozenset(expect)))

    def page(name: str, expect: Iterable[str], **fields: Any) -> None:
        url = f"{HOSTILE_HOST}/{name}"
        add(name, orjson.dumps({"url": url, **fields}), expect, url=url, key=url.encode())

    def story() -> str:
        return article_text(rng)

    def html_story() -> str:
        return "".join(f"<p>{p}</p>" for p in story().split("\n\n"))

    processed_or = PROCESSED.union
    # Bytes and JSON that are not a raw_page.v1 object.
    add("latin1", b'{"url": "https://hostile.example/latin1", "text": "caf\xe9 cr\xe8me"}', ["dead:invalid_json"])
    add("invalid-utf8-in-key", orjson.dumps({"url": f"{HOSTILE_HOST}/badkey", "text": "x"}),
        ["dead:invalid_field", "dead:empty_after_cleaning", "dead:invalid_json"], key=b"\xff\xfe\xfd")
    add("truncated-json", b'{"url": "https://hostile.example/cut", "html": "<p>cut', ["dead:invalid_json"])
    add("json-array", b"[1, 2, 3]", ["dead:invalid_json"])
    add("json-string", b'"just a string"', ["dead:invalid_json"])
    add("json-null", b"null", ["dead:invalid_json"])
    add("nan-number", b'{"url": "https://hostile.example/nan", "text": NaN}',
        ["dead:invalid_json", "dead:invalid_field"])
    add("lone-surrogate", b'{"url": "https://hostile.example/surrogate", "text": "a \\ud800 b"}',
        ["dead:invalid_json", "dead:invalid_field", "dead:empty_after_cleaning"], url=f"{HOSTILE_HOST}/surrogate")
    add("empty", b"", ["dead:invalid_json"])
    add("tombstone", None, ["dead:invalid_json"], key=b"https://hostile.example/tombstone")
    add("whitespace", b"   \n\t  ", ["dead:invalid_json"])
    # Binary.
    add("png", b"\x89PNG\r\n\x1a\n" + rng.randbytes(4096), ["dead:unsupported_content"])
    add("gzip", gzip.compress(b'{"url": "https://hostile.example/gz", "text": "x"}'), ["dead:unsupported_content"])
    add("random-bytes", b"\x00\x01" + rng.randbytes(8192), ["dead:invalid_json"])
    # Wrong types and missing fields.
    add("no-url", orjson.dumps({"text": story()}), ["dead:invalid_field"])
    add("url-number", orjson.dumps({"url": 12345, "text": story()}), ["dead:invalid_field"])
    page("html-list", ["dead:invalid_field"], html=["<p>a</p>"])
    page("text-object", ["dead:invalid_field"], text={"p": "a"})
    page("headers-numbers", ["dead:invalid_field"], text=story(), headers={"Content-Length": 12})
    page("fetched-at-number", ["dead:invalid_field"], text=story(), fetched_at=1736596800)
    page("fetched-at-garbage", ["dead:invalid_field"], text=story(), fetched_at="yesterday")
    page("language-number", ["dead:invalid_field"], text=story(), language=7)
    page("wrong-event-type", ["dead:invalid_field"], text=story(), event_type="article.v1")
    page("both-bodies", ["dead:invalid_field"], text="a", html="<p>a</p>")
    page("pdf-content-type", ["dead:unsupported_content"], html="%PDF-1.7", headers={"Content-Type": "application/pdf"})
    # Huge and deeply nested values.
    add("url-100k", orjson.dumps({"url": "https://hostile.example/" + "a" * 100_000, "text": story()}),
        ["dead:invalid_field"])
    page("over-max-bytes", ["dead:too_large"], text="word " * (max_page_bytes // 5 + 1000))
    page("huge-unknown-field", PROCESSED, text=story(), extra="z" * 300_000)
    add("nested-100k", b'{"url": "https://hostile.example/nested", "text": "x", "extra": '
        + b"[" * 100_000 + b"]" * 100_000 + b"}", ["dead:invalid_json"])
    nested_url = f"{HOSTILE_HOST}/nested-500"
    add("nested-500-in-extra", orjson.dumps({"url": nested_url, "text": story()})[:-1]
        + b', "extra": ' + b"[" * 500 + b'"leaf"' + b"]" * 500 + b"}",
        processed_or({"dead:invalid_json"}), url=nested_url, key=nested_url.encode())
    # Time travel: the page is fine, its fetched_at is not (the dev stamps are 2025-01-11).
    for name, stamp in [
        ("fetched-9999", "9999-12-31T23:59:59Z"),
        ("fetched-9999-minus-5h", "9999-12-31T23:59:59-05:00"),
        ("fetched-epoch-0", "1970-01-01T00:00:00Z"),
        ("fetched-1969", "1969-07-20T20:17:40Z"),
        ("fetched-year-1", "0001-01-01T00:00:00Z"),
        ("fetched-2999", "2999-06-01T00:00:00Z"),
    ]:
        page(name, processed_or({"dead:invalid_field"}), text=story(), fetched_at=stamp)
    page("fetched-missing", PROCESSED, text=story())
    # HTML bombs: the story inside pathological markup.
    page("html-deep-divs", processed_or({"dead:timeout", "dead:empty_after_cleaning"}),
         html="<html><body>" + "<div>" * 50_000 + html_story() + "</div>" * 50_000 + "</body></html>")
    page("html-unclosed-tags", processed_or({"dead:timeout", "dead:empty_after_cleaning"}),
         html="<html><body>" + "<span><b><i>" * 30_000 + html_story())
    # As many attributes as fit under the size limit (the limit itself is tested above).
    attributes = " ".join(f'data-a{n}="{n}"' for n in range(min(100_000, max_page_bytes // 40)))
    page("html-100k-attributes", processed_or({"dead:timeout", "dead:empty_after_cleaning"}),
         html=f"<html><body><article {attributes}>{html_story()}</article></body></html>")
    page("html-nul-bytes", processed_or({"dead:empty_after_cleaning", "dead:invalid_field"}),
         html="<html><body>" + html_story().replace(" ", "\x00 ", 40) + "</body></html>")
    page("html-empty-body", ["dead:empty_after_cleaning"], html="<html><body><nav>Home</nav></body></html>")
    page("text-spaces", ["dead:empty_after_cleaning"], text=" \n " * 100)
    return inputs


def mixed(real: Sequence[Input], hostile: Sequence[Input], seed: int = 0) -> list[Input]:
    """The hostile inputs spread among the real ones at random places (real pages keep their order)."""
    rng = random.Random(seed)
    out = list(real)
    for item in hostile:
        out.insert(rng.randint(0, len(out)), item)
    return out


async def produce_inputs(
    settings: Settings, inputs: Sequence[Input], pace_seconds: float = 0.0
) -> dict[tuple[int, int], Input]:
    """Send every input to the input topic (one at a time when paced); returns {(partition, offset): input}."""
    producer = AIOKafkaProducer(
        acks="all",
        max_request_size=settings.max_page_bytes + 2_000_000,
        request_timeout_ms=120_000,
        **client_options(settings),
    )
    await start_client(settings, producer)
    positions: dict[tuple[int, int], Input] = {}
    try:
        pending = []
        for item in inputs:
            pending.append((item, await producer.send(settings.input_topic, value=item.value, key=item.key)))
            if pace_seconds:
                await asyncio.sleep(pace_seconds)
        for item, future in pending:
            meta = await future
            positions[(meta.partition, meta.offset)] = item
    finally:
        await producer.stop()
    return positions


def account(
    settings: Settings, positions: Mapping[tuple[int, int], Input], events: Iterable[dict[str, Any]]
) -> Accounting:
    """Give each input the outcomes that name it."""
    by_url: dict[str, list[str]] = defaultdict(list)
    for item in positions.values():
        if item.url:
            by_url[item.url].append(item.name)
    outcomes: dict[str, set[str]] = {item.name: set() for item in positions.values()}
    ids: dict[str, set[str]] = {item.name: set() for item in positions.values()}
    accounting = Accounting(outcomes, ids)
    for event in events:
        accounting.events.append(event)
        kind = str(event.get("event_type", ""))
        if kind in ("dead_letter.v1", "skipped.v1"):
            source = event.get("source") or {}
            found = positions.get((source.get("partition", -1), source.get("offset", -1)))
            if found is None or source.get("topic") != settings.input_topic:
                accounting.stray += 1
                continue
            outcomes[found.name].add(f"dead:{event.get('reason')}" if kind == "dead_letter.v1" else "skipped")
            continue
        names = by_url.get(str(event.get("url")), [])
        if not names:
            accounting.stray += 1
        outcome = "article" if kind == "article.v1" else "duplicate"
        for name in names:
            outcomes[name].add(outcome)
            ids[name].add(str(event.get("id")))
    return accounting


async def read_outcomes(
    settings: Settings,
    positions: Mapping[tuple[int, int], Input],
    deadline_seconds: float,
    settle_seconds: float = 10.0,
) -> Accounting:
    """Read the output topics until every input has an outcome and nothing new came for
    `settle_seconds` (late replays show up), or until `deadline_seconds` passed."""
    topics = [settings.articles_topic, settings.duplicates_topic, settings.dead_letter_topic, settings.skipped_topic]
    deadline = time.monotonic() + deadline_seconds
    events: list[dict[str, Any]] = []
    # A consumer that stops after `settle_seconds` of silence; restarted while pages are missing.
    while True:
        events = []
        async for _, _, value in consume(settings, topics, True, settle_seconds):
            events.append(orjson.loads(value))
            if time.monotonic() > deadline:
                break
        accounting = account(settings, positions, events)
        if not accounting.lost or time.monotonic() > deadline:
            return accounting
        await asyncio.sleep(1.0)


def dedup_f1(accounting: Accounting, truth: Mapping[str, str]) -> float:
    """Pairwise dedup F1 of a run's events against `{url: story}` (the logic of `eval dedup`)."""
    return score(truth, accounting.events).f1


def summary(accounting: Accounting, inputs: Sequence[Input], clean: Accounting | None = None) -> dict[str, Any]:
    """The figures of one run: lost, two kinds, unexpected outcomes, changes against the clean run."""
    figures: dict[str, Any] = {
        "inputs": len(accounting.outcomes),
        "lost": accounting.lost,
        "two_kinds": accounting.two_kinds,
        "unexpected": accounting.unexpected(inputs),
        "stray_events": accounting.stray,
    }
    if clean is not None:
        figures["id_changes"] = accounting.id_changes(clean)
        figures["outcome_changes"] = accounting.kind_changes(clean)
    return figures
