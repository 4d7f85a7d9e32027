"""Records -> wire events: the only code that knows the shapes in `schemas/`.

Each builder returns `(key, event)`; `encode` turns an event into the bytes put on Kafka or
written by `process`, one JSON object per line.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import orjson

from worker import __version__
from worker.document import Article, Dropped, DuplicateKind, Origin

Event = dict[str, Any]
# A dead letter carries at most this much of the original, so it always fits in a Kafka message.
MAX_ORIGINAL_BYTES = 256 * 1024


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
    event: Event = {
        "event_type": "dead_letter.v1",
        "reason": dropped.reason,
        "detail": dropped.detail,
        "url": url,
        "original": text,
        "original_encoding": encoding,
        "original_truncated": truncated,
        "source": {"topic": origin.topic, "partition": origin.partition, "offset": origin.offset},
        "worker_version": __version__,
        "failed_at": now_rfc3339(),
    }
    return (url.encode() if url else None), event


def encode(event: Event) -> bytes:
    """The event as compact JSON bytes."""
    return orjson.dumps(event)
