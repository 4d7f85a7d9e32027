"""Records -> wire events: the only code that knows the shapes in `schemas/`.

Each builder returns `(key, event)`; `encode` turns an event into the bytes put on Kafka or
written by `process`, one JSON object per line; `cloudevent_headers` gives the Kafka headers that
make it a CloudEvents 1.0 event in binary mode (the body stays the plain event).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

import orjson

from worker import __version__
from worker.document import Article, Dropped, DuplicateKind, Origin

Event = dict[str, Any]
# A dead letter carries at most this much of the original, so it always fits in a Kafka message.
MAX_ORIGINAL_BYTES = 256 * 1024
CLOUDEVENTS_SPEC_VERSION = "1.0"
# W3C Trace Context: version-traceid-parentid-flags, lowercase hex; all-zero ids are invalid.
_TRACEPARENT = re.compile(r"^(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$")
Headers = Iterable[tuple[str, bytes | str | None]] | Mapping[str, bytes | str | None]


def now_rfc3339() -> str:
    """The current time as an RFC 3339 UTC timestamp."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def article_event(article: Article, article_id: str, content_hash: str) -> tuple[bytes, Event]:
    """The `article.v1` event of a unique article, keyed by its id."""
    event: Event = {
        "event_type": "article.v1",
        "id": article_id,
        "url": article.url,
        "canonical_url": article.canonical_url or article.url,
        "source_domain": article.source_domain,
        "site_name": article.site_name,
        "title": article.title,
        "authors": list(article.authors),
        "published_at": article.published_at,
        "fetched_at": article.fetched_at,
        "language": article.language,
        "text": article.text,
        "word_count": article.word_count,
        "content_hash": content_hash,
        "cleaning_mode": article.mode,
        "entities": [
            {
                "id": e.id,
                "text": e.text,
                "label": e.label,
                "canonical": e.canonical,
                "mentions": [[start, end] for start, end in e.mentions],
                "count": e.count,
                "salience": round(e.salience, 4),
            }
            for e in article.entities
        ],
        "processing": {
            "worker_version": __version__,
            "processed_at": now_rfc3339(),
            "stage_seconds": {k: round(v, 6) for k, v in article.stage_seconds.items()},
        },
    }
    if article.entities_skipped:
        event["processing"]["entities_skipped"] = article.entities_skipped
    return article_id.encode(), event


def duplicate_event(
    page_id: str, article: Article, duplicate_of: str, kind: DuplicateKind, similarity: float
) -> tuple[bytes, Event]:
    """The `duplicate.v1` event of a page that copies an earlier article, keyed by that article."""
    event: Event = {
        "event_type": "duplicate.v1",
        "id": page_id,
        "url": article.url,
        "duplicate_of": duplicate_of,
        "kind": kind,
        "similarity": round(float(similarity), 4),
        "title": article.title,
        "source_domain": article.source_domain,
        "fetched_at": article.fetched_at,
        "processed_at": now_rfc3339(),
    }
    return duplicate_of.encode(), event


def cluster_event(article_id: str, copies: int, latest_url: str) -> tuple[bytes, Event]:
    """The compact `cluster.v1` update: how many pages a story has had, keyed by its article id."""
    event: Event = {
        "event_type": "cluster.v1",
        "article_id": article_id,
        "copies": copies,
        "latest_url": latest_url,
        "updated_at": now_rfc3339(),
    }
    return article_id.encode(), event


def dead_letter_event(
    dropped: Dropped, original: bytes | None, origin: Origin, url: str | None = None
) -> tuple[bytes | None, Event]:
    """The `dead_letter.v1` event of a page that cannot be processed, keyed like its input."""
    event: Event = {
        "event_type": "dead_letter.v1",
        "reason": dropped.reason,
        "detail": dropped.detail,
        "url": url,
        **original_fields(original),
        "source": {"topic": origin.topic, "partition": origin.partition, "offset": origin.offset},
        "worker_version": __version__,
        "failed_at": now_rfc3339(),
    }
    if dropped.failure is not None:
        event["traceback"] = dropped.failure.traceback
    return (url.encode() if url else None), event


def original_fields(original: bytes | None) -> Event:
    """A dead letter's `original`, `original_encoding` and `original_truncated` for the raw bytes."""
    raw = original or b""
    truncated = len(raw) > MAX_ORIGINAL_BYTES
    raw = raw[:MAX_ORIGINAL_BYTES]
    try:
        text, encoding = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        if truncated:  # the cut may have split a character
            text, encoding = raw.decode("utf-8", "ignore"), "utf-8"
            if text.encode() != raw[: len(text.encode())]:
                text, encoding = base64.b64encode(raw).decode(), "base64"
        else:
            text, encoding = base64.b64encode(raw).decode(), "base64"
    return {"original": text, "original_encoding": encoding, "original_truncated": truncated}


def original_bytes(event: Event) -> bytes:
    """The raw message a dead letter holds (as much of it as it holds: see `original_truncated`)."""
    text = event["original"]
    return base64.b64decode(text) if event.get("original_encoding") == "base64" else text.encode("utf-8")


def encode(event: Event) -> bytes:
    """The event as compact JSON bytes."""
    return orjson.dumps(event)


@cache
def schemas() -> dict[str, bytes]:
    """The JSON Schema file of each event type (`article.v1` -> bytes), from the installed package."""
    folder = resources.files("worker") / "schemas"
    return {
        entry.name.removesuffix(".json"): entry.read_bytes()
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".json")
    }


@cache
def schema_id(event_type: str) -> str:
    """The `$id` of the schema an event type follows."""
    return str(orjson.loads(schemas()[event_type])["$id"])


def event_id(event: Event) -> str:
    """The id consumers deduplicate on: the same for the same input, also after a replay.

    Articles and duplicates carry their own id; a cluster update is the n-th copy of a story; a
    dead letter stands for one input message.
    """
    kind = event["event_type"]
    if kind in ("article.v1", "duplicate.v1"):
        return str(event["id"])
    if kind == "cluster.v1":
        seed = f"cluster:{event['article_id']}:{event['copies']}"
    elif kind == "dead_letter.v1":
        source = event["source"]
        seed = f"dead_letter:{source['topic']}:{source['partition']}:{source['offset']}"
    else:
        raise ValueError(f"no id rule for event type {kind!r}")
    return hashlib.sha256(seed.encode()).hexdigest()[:32]


def event_time(event: Event) -> str:
    """When the worker produced the event (RFC 3339), as the event itself states it."""
    if event["event_type"] == "article.v1":
        return str(event["processing"]["processed_at"])
    for name in ("processed_at", "updated_at", "failed_at"):
        if name in event:
            return str(event[name])
    raise ValueError(f"event {event['event_type']!r} carries no time")


def header_value(headers: Headers, name: str) -> str | None:
    """The first value of a Kafka header, matched case-insensitively, as text (None if absent)."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    for key, value in pairs:
        if key.lower() == name and value is not None:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return None


def trace_parent(headers: Headers) -> str | None:
    """The W3C `traceparent` of incoming message headers, if present and well formed."""
    value = header_value(headers, "traceparent")
    value = value.strip().lower() if value else None
    return value if value and _TRACEPARENT.match(value) else None


def cloudevent_headers(event: Event, source: str, traceparent: str | None = None) -> list[tuple[str, bytes]]:
    """Kafka headers for the CloudEvents 1.0 Kafka protocol binding, binary mode.

    `source` is the producing worker's app id; `traceparent` (W3C Trace Context) is carried on
    from the raw page when it had one.
    """
    kind = event["event_type"]
    headers = [
        ("ce_specversion", CLOUDEVENTS_SPEC_VERSION),
        ("ce_id", event_id(event)),
        ("ce_source", source),
        ("ce_type", kind),
        ("ce_time", event_time(event)),
        ("ce_dataschema", schema_id(kind)),
        ("content-type", "application/json"),
    ]
    if traceparent:
        headers.append(("traceparent", traceparent))
    return [(name, value.encode()) for name, value in headers]
