"""The plain records that flow between the steps, and the format of the internal Kafka hops.

Nothing here knows Kafka or Faust: the same records travel through the Faust agents and
through the `process` command. Every record is picklable, so the CPU-heavy steps can run in a
process pool.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

DeadLetterReason = Literal[
    "invalid_json",
    "invalid_field",
    "too_large",
    "unsupported_content",
    "empty_after_cleaning",
    "timeout",
    "internal_error",
]
DEAD_LETTER_REASONS: tuple[DeadLetterReason, ...] = DeadLetterReason.__args__  # type: ignore[attr-defined]

CleaningMode = Literal["html", "text"]
CLEANING_MODES: tuple[CleaningMode, ...] = ("html", "text")

PageKind = Literal["article", "service", "product", "collection", "forum", "listing", "documentation"]
PAGE_KINDS: tuple[PageKind, ...] = PageKind.__args__  # type: ignore[attr-defined]
# A page is skipped as not an article only when its kind is more likely than every other kind
# together; below that the worker publishes it (with its page_type), since a skipped story is
# lost to the consumer while a stray page is merely noise.
SKIP_MIN_CONFIDENCE = 0.5

# Why a page ended as a `skipped.v1` record: not an error, a page the settings do not publish.
SkipReason = Literal["not_article"]

DuplicateKind = Literal["exact", "near"]
DUPLICATE_KINDS: tuple[DuplicateKind, ...] = ("exact", "near")

ENTITY_LABELS: tuple[str, ...] = (
    "PERSON",
    "ORG",
    "GPE",
    "LOC",
    "NORP",
    "FAC",
    "EVENT",
    "PRODUCT",
    "WORK_OF_ART",
    "LAW",
    "LANGUAGE",
)

STAGES: tuple[str, ...] = ("decode", "clean", "dedup", "entities", "publish")


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a raw message came from (topic, partition, offset); a file line has topic 'file'."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class RawPage:
    """One crawled page as a producer sent it (`raw_page.v1`), after validation."""

    url: str
    html: str | None = None
    text: str | None = None
    fetched_at: str | None = None  # RFC 3339, UTC
    source: str | None = None
    language: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    size_bytes: int = 0
    trace: str | None = None  # W3C traceparent a structured-mode CloudEvent carried as an attribute


@dataclass(frozen=True, slots=True)
class Dropped:
    """A page that cannot become an article: why (a closed code) and what a person can do."""

    reason: DeadLetterReason
    detail: str
    failure: Failure | None = None  # for internal_error: the exception, with its traceback
    page_type: str | None = None  # the page's kind when the cleaner got as far as reading it
    page_type_confidence: float | None = None


@dataclass(frozen=True, slots=True)
class Failure:
    """A step that raised on a page (a bug): which step, where it raised, and the traceback."""

    step: str
    signature: str  # step, exception type and the line that raised: the same bug has one signature
    traceback: str


@dataclass(slots=True)
class Entity:
    """One canonical entity of an article with every mention of it (offsets into the text)."""

    id: str
    text: str
    label: str
    canonical: str
    mentions: list[tuple[int, int]]
    count: int
    salience: float = 0.0


@dataclass(slots=True)
class Article:
    """A cleaned article: the story's text and metadata, later its entities."""

    url: str
    title: str
    text: str  # paragraphs separated by one blank line
    mode: CleaningMode
    canonical_url: str | None = None
    source_domain: str = ""
    authors: list[str] = field(default_factory=list)
    published_at: str | None = None
    fetched_at: str | None = None
    language: str | None = None
    site_name: str | None = None
    entities: list[Entity] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    entities_skipped: str | None = None  # why the text was not tagged (e.g. no model for its language)
    page_type: str | None = None  # article, service, product, collection, forum, listing, documentation
    page_type_confidence: float | None = None  # the classifier's probability of that kind

    @property
    def word_count(self) -> int:
        """Number of whitespace-separated words in the text."""
        return len(self.text.split())


@dataclass(slots=True)
class Prepared:
    """A cleaned article with its dedup fingerprint, deterministic id and event time.

    This is what crosses the two internal hops (to the dedup owner, then to tagging), so the
    record stays small: the cleaned article, never the raw page.
    """

    article: Article
    fingerprint: bytes  # `steps.dedup.Fingerprint.to_bytes()`
    article_id: str
    seen_at: float = 0.0  # event time for the dedup window, checked against the broker's clock
    origin: Origin = Origin("file", 0, 0)  # where the raw page was read, for dead letters later on
    trace: str | None = None  # the raw page message's W3C traceparent header

    def to_bytes(self) -> bytes:
        """Serialised for an internal hop: JSON (orjson writes the dataclasses itself), the
        fingerprint in base64."""
        return orjson.dumps({
            "article": self.article,
            "fingerprint_b64": base64.b64encode(self.fingerprint).decode("ascii"),
            "article_id": self.article_id,
            "seen_at": self.seen_at,
            "origin": self.origin,
            "trace": self.trace,
        })

    @classmethod
    def from_bytes(cls, data: bytes) -> Prepared:
        """Inverse of `to_bytes`; raises ValueError (or KeyError/TypeError) on a malformed hop.

        Also reads the earlier layout (the fingerprint in hex), so hops written before an upgrade
        are still read after it.
        """
        raw = orjson.loads(data)
        encoded = raw.get("fingerprint_b64")
        return cls(
            article=article_from_dict(raw["article"]),
            fingerprint=bytes.fromhex(raw["fingerprint"]) if encoded is None
            else base64.b64decode(encoded, validate=True),
            article_id=raw["article_id"],
            seen_at=float(raw.get("seen_at", 0.0)),
            origin=Origin(**raw["origin"]),
            trace=raw.get("trace"),
        )


def article_from_dict(raw: dict[str, Any]) -> Article:
    """Rebuild an Article from `dataclasses.asdict` output that went through JSON."""
    entities = [Entity(**{**e, "mentions": [tuple(m) for m in e["mentions"]]}) for e in raw.get("entities", [])]
    return Article(**{**raw, "entities": entities})
