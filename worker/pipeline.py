"""The steps chained, without Kafka: what runs in the pool, and the `process` file pipeline.

The Faust agents (`worker.kafka.agents`) and the `process` command call the same functions here, so
the Kafka path and the file path cannot drift apart.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from worker.document import Article, Dropped, Entity, Origin, RawPage
from worker.errors import internal_error
from worker.events import Event, article_event, cluster_event, dead_letter_event, duplicate_event
from worker.settings import Settings
from worker.steps.clean.page import clean
from worker.steps.decode import decode, epoch_seconds
from worker.steps.dedup.index import Decision, DedupIndex, Fingerprint, article_id, fingerprint


@dataclass(slots=True)
class Prepared:
    """A cleaned article with its dedup fingerprint and deterministic id."""

    article: Article
    fingerprint: Fingerprint
    article_id: str
    origin: Origin = Origin("file", 0, 0)  # where the raw page was read, for dead letters later on

    def to_bytes(self) -> bytes:
        """Serialised for the hop to the dedup owner."""
        return orjson.dumps(
            {
                "article": asdict(self.article),
                "fingerprint": self.fingerprint.to_bytes().hex(),
                "article_id": self.article_id,
                "origin": asdict(self.origin),
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Prepared:
        """Inverse of `to_bytes`."""
        raw = orjson.loads(data)
        return cls(
            article=article_from_dict(raw["article"]),
            fingerprint=Fingerprint.from_bytes(bytes.fromhex(raw["fingerprint"])),
            article_id=raw["article_id"],
            origin=Origin(**raw["origin"]),
        )


def article_from_dict(raw: dict[str, Any]) -> Article:
    """Rebuild an Article from `dataclasses.asdict` output that went through JSON."""
    entities = [Entity(**{**e, "mentions": [tuple(m) for m in e["mentions"]]}) for e in raw.get("entities", [])]
    return Article(**{**raw, "entities": entities})


def prepare(page: RawPage) -> Prepared | Dropped:
    """clean + fingerprint one page (runs in a pool process); step errors become Dropped."""
    started = time.perf_counter()
    try:
        cleaned = clean(page)
    except Exception as exc:  # any failure on one page must not stop the stream
        return internal_error(exc, "clean")
    if isinstance(cleaned, Dropped):
        return cleaned
    cleaned.stage_seconds["clean"] = time.perf_counter() - started
    try:
        fp = fingerprint(cleaned)
    except Exception as exc:
        return internal_error(exc, "dedup")
    return Prepared(cleaned, fp, article_id(cleaned.url, fp.content_hash))


_models: dict[str, Any] = {}


def tag_texts(texts: Sequence[str], model_name: str, batch_size: int) -> list[list[Entity]]:
    """Entities of each text (runs in a pool process; the model is loaded once per process)."""
    from worker.steps import entities

    model = _models.get(model_name)
    if model is None:
        model = _models[model_name] = entities.load_model(model_name)
    return entities.tag(texts, model, batch_size=batch_size)


def load_entity_model(model_name: str) -> None:
    """Load the entity model in this process ahead of the first page."""
    tag_texts([""], model_name, 1)


def seen_at(article: Article, fallback: float) -> float:
    """The time a page counts as seen for the dedup window: its fetched_at, else `fallback`."""
    return epoch_seconds(article.fetched_at) or fallback


def decision_events(prepared: Prepared, decision: Decision) -> list[tuple[bytes | None, Event]]:
    """The duplicate + cluster events of a duplicate decision (unique articles go on to tagging)."""
    assert decision.duplicate_of is not None and decision.kind is not None
    return [
        duplicate_event(
            decision.article_id, prepared.article, decision.duplicate_of, decision.kind, decision.similarity
        ),
        cluster_event(decision.duplicate_of, decision.copies, prepared.article.url),
    ]


def process_lines(
    lines: Iterable[bytes], settings: Settings, tag_entities: bool = True, state: dict[str, bytes] | None = None
) -> Iterator[Event]:
    """Run every step over raw page events (one JSON object per line); yield the wire events.

    Dedup state is an in-memory dict (pass `state` to keep it across calls); entity tagging runs
    in this process, batched like the worker does.
    """
    index = DedupIndex({} if state is None else state, window_seconds=settings.dedup_window_days * 86400)
    pending: list[tuple[Prepared, bytes, Origin]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        origin = Origin("file", 0, number)
        started = time.perf_counter()
        page = decode(line.strip(), None, settings.max_page_bytes)
        decode_seconds = time.perf_counter() - started
        if isinstance(page, Dropped):
            yield dead_letter_event(page, line.strip(), origin)[1]
            continue
        prepared = prepare(page)
        if isinstance(prepared, Dropped):
            yield dead_letter_event(prepared, line.strip(), origin, page.url)[1]
            continue
        prepared.article.stage_seconds["decode"] = decode_seconds
        started = time.perf_counter()
        decision = index.decide(prepared.article.url, prepared.fingerprint, seen_at(prepared.article, time.time()))
        prepared.article.stage_seconds["dedup"] = time.perf_counter() - started
        if decision.duplicate_of is not None:
            for _, event in decision_events(prepared, decision):
                yield event
            continue
        pending.append((prepared, line.strip(), origin))
        if len(pending) >= settings.entity_batch_size:
            yield from _flush(pending, settings, tag_entities)
    yield from _flush(pending, settings, tag_entities)


def _flush(pending: list[tuple[Prepared, bytes, Origin]], settings: Settings, tag_entities: bool) -> Iterator[Event]:
    if not pending:
        return
    if tag_entities:
        started = time.perf_counter()
        texts = [prepared.article.text for prepared, _, _ in pending]
        try:
            tagged: list[list[Entity] | Dropped] = list(
                tag_texts(texts, settings.spacy_model, settings.entity_batch_size)
            )
        except Exception:
            tagged = [_tag_one(text, settings) for text in texts]  # find the page that fails
        per_article = (time.perf_counter() - started) / len(pending)
        for (prepared, _, _), found in zip(pending, tagged, strict=True):
            if not isinstance(found, Dropped):
                prepared.article.entities = found
                prepared.article.stage_seconds["entities"] = per_article
    else:
        tagged = [[] for _ in pending]
    for (prepared, original, origin), found in zip(pending, tagged, strict=True):
        if isinstance(found, Dropped):
            yield dead_letter_event(found, original, origin, prepared.article.url)[1]
        else:
            yield article_event(prepared.article, prepared.article_id, prepared.fingerprint.content_hash)[1]
    pending.clear()


def _tag_one(text: str, settings: Settings) -> list[Entity] | Dropped:
    try:
        return tag_texts([text], settings.spacy_model, 1)[0]
    except Exception as exc:
        return internal_error(exc, "entities")
