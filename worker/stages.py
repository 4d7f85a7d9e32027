"""The stage handlers: each takes one stage's input and returns the messages that account for it.

    raw message ─► page(): decode, then clean + fingerprint (CPU work, through `compute`)
        ├─► skipped (a page of a kind not published as articles: INGEST_ARTICLE_PAGE_TYPES)
        ─► candidates hop ─► decide(): the event-time window and the dedup decision
              ├─► duplicates + clusters
              └─► unique hop ─► tag(): entities (CPU work, batched) ─► articles
    any stage ─► dead_letters

`run` (the Faust agents in `worker.kafka.agents`) carries these messages between Kafka topics and
acknowledges an input only after its outputs were acknowledged; `process` (`worker.offline`)
carries them between the same handlers in memory. Neither adds logic of its own, so the two
cannot drift apart. Nothing here imports Faust or a Kafka client.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

from worker.cpu import Tagged, prepare, tag_texts
from worker.document import SKIP_MIN_CONFIDENCE, Article, Dropped, Origin, Prepared
from worker.errors import FailureLog, internal_error
from worker.events import (
    Event,
    Headers,
    article_event,
    cluster_event,
    dead_letter_event,
    duplicate_event,
    encode,
    original_fields,
    skipped_event,
    trace_parent,
)
from worker.logs import add_log_context
from worker.runtime.metrics import Metrics
from worker.settings import Settings
from worker.steps.common import epoch_seconds
from worker.steps.decode import decode, known_url
from worker.steps.dedup import Decision, DedupIndex, Fingerprint
from worker.steps.dedup.window import event_time

log = logging.getLogger(__name__)

Route = Literal["candidates", "unique", "articles", "duplicates", "clusters", "dead_letters", "skipped"]
HOPS: tuple[Route, ...] = ("candidates", "unique")  # internal topics; the rest are the wire contract

# Kafka's default largest message is 1 MB; the hops between agents stay under it.
MAX_HOP_BYTES = 900_000


@dataclass(frozen=True, slots=True)
class Out:
    """One message a stage emits: where it goes, its key and value; `event` for wire events."""

    route: Route
    key: bytes | None
    value: bytes
    event: Event | None = None
    trace: str | None = None  # the raw page's W3C traceparent, carried to every event it leads to
    origin: Origin | None = None  # the raw page's place in its input topic, for a late dead letter
    # A dead letter made after the raw page was left behind (dedup, entities, publish) holds the
    # internal message; the carrier puts the raw page read back from here in its place.
    raw_at: Origin | None = None


class Compute(Protocol):
    """Runs CPU-heavy work: `await compute(fn, *args, step=..., timeout=...)` -> result or Dropped."""

    async def __call__(self, fn: Callable[..., Any], *args: Any, step: str, timeout: float) -> Any: ...


class Stages:
    """The decode, clean, decide, tag and publish handlers over one dedup index and metrics bundle."""

    def __init__(
        self,
        settings: Settings,
        index: DedupIndex,
        compute: Compute,
        metrics: Metrics,
        *,
        entity_fn: Callable[[Sequence[str], Sequence[str | None], str, int], list[Tagged]] = tag_texts,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.index = index
        self.compute = compute
        self.metrics = metrics
        self.entity_fn = entity_fn
        self.clock = clock
        self.failures = FailureLog()

    # -- decode + clean ---------------------------------------------------------------------------

    async def page(
        self,
        value: bytes,
        key: bytes | None,
        origin: Origin,
        broker_time: float | None = None,
        headers: Headers = (),
    ) -> list[Out]:
        """A raw message -> the cleaned article for the dedup owner, a skipped record (a page of a
        kind not published as articles), or a dead letter."""
        self.metrics.pages_consumed.labels(origin.topic).inc()
        self.metrics.bytes_consumed.labels(origin.topic).inc(len(value))
        trace = trace_parent(headers)
        started = time.perf_counter()
        page = decode(value, key, self.settings.max_page_bytes, headers)
        decode_seconds = time.perf_counter() - started
        self.metrics.stage_seconds.labels("decode").observe(decode_seconds)
        if isinstance(page, Dropped):
            return [self.dead_letter(page, value, origin, known_url(value, key), trace)]
        add_log_context(url=page.url)
        trace = trace or page.trace
        prepared = await self.compute(prepare, page, step="clean", timeout=self.settings.page_timeout_seconds)
        kind = prepared.page_type if isinstance(prepared, Dropped) else prepared.article.page_type
        if kind is not None:
            self.metrics.page_types.labels(kind).inc()
        if isinstance(prepared, Dropped):
            from_html = isinstance(page.html, str) and "<" in page.html
            if (prepared.reason == "empty_after_cleaning" and from_html
                    and not self._published(kind, prepared.page_type_confidence)):
                return [self.skipped(page.url, prepared.page_type, prepared.page_type_confidence, origin, trace)]
            return [self.dead_letter(prepared, value, origin, page.url, trace)]
        article = prepared.article
        self.metrics.stage_seconds.labels("clean").observe(article.stage_seconds.get("clean", 0.0))
        if article.mode == "html" and not self._published(kind, article.page_type_confidence):
            return [self.skipped(page.url, kind, article.page_type_confidence, origin, trace, article)]
        article.stage_seconds["decode"] = decode_seconds
        prepared.origin = origin
        prepared.trace = trace
        prepared.seen_at = self._event_time(article.fetched_at, broker_time)
        hop = prepared.to_bytes()
        if len(hop) > MAX_HOP_BYTES:
            detail = (
                f"The cleaned article is {len(hop):,} bytes, over the {MAX_HOP_BYTES:,}-byte limit of a "
                "Kafka message between steps; the page is probably not one article (split it, or send its HTML)."
            )
            return [self.dead_letter(Dropped("too_large", detail), value, origin, page.url, trace)]
        return [Out("candidates", prepared.article_id.encode(), hop, trace=trace, origin=origin)]

    def _published(self, kind: str | None, confidence: float | None) -> bool:
        """Whether an HTML page goes on as an article: its kind is published, unknown, or read with
        less than `SKIP_MIN_CONFIDENCE` (a story is lost for good when skipped, a stray page is not).
        Text dumps are never skipped: from text alone (no DOM) the kind is too unsure to drop a
        story on (bench/page_types.md); they carry their page_type for consumers to filter on."""
        return (
            kind is None
            or kind in self.settings.published_page_types
            or (confidence or 0.0) < SKIP_MIN_CONFIDENCE
        )

    def skipped(
        self,
        url: str,
        kind: str | None,
        confidence: float | None,
        origin: Origin,
        trace: str | None = None,
        article: Article | None = None,
    ) -> Out:
        """The `skipped.v1` record of a page whose kind is not published: an outcome, not an error."""
        assert kind is not None
        published = ", ".join(sorted(self.settings.published_page_types))
        detail = (
            f"The page {url} reads as a {kind} page (confidence {confidence or 0.0:.2f}), and only {published} "
            "pages are published as articles; add its kind to INGEST_ARTICLE_PAGE_TYPES to publish such pages."
        )
        self.metrics.skipped.labels("not_article", kind).inc()
        key, event = skipped_event("not_article", detail, url, kind, confidence or 0.0, origin, article)
        return self.publish("skipped", key, event, trace, origin)

    def _event_time(self, fetched_at: str | None, broker_time: float | None) -> float:
        when, correction = event_time(epoch_seconds(fetched_at), self.clock() if broker_time is None else broker_time)
        if correction is not None:
            self.metrics.event_time_corrections.labels(correction).inc()
        return when

    # -- decide -----------------------------------------------------------------------------------

    def decide(self, hop: bytes, origin: Origin) -> list[Out]:
        """A cleaned article -> on to tagging if its story is new, else duplicate + cluster events."""
        return self.decide_many([(hop, origin)])[0]

    def decide_many(self, hops: Sequence[tuple[bytes, Origin]]) -> list[list[Out]]:
        """`decide` of each cleaned article, in order, the decisions made together
        (`DedupIndex.decide_many`: the same ones, for less CPU a page)."""
        started = time.perf_counter()
        outs: list[list[Out]] = [[] for _ in hops]
        read: list[tuple[int, Prepared, Fingerprint, float]] = []
        for at, (hop, origin) in enumerate(hops):
            try:
                prepared = Prepared.from_bytes(hop)
                fp = Fingerprint.from_bytes(prepared.fingerprint)
                seen_at = prepared.seen_at or self._event_time(prepared.article.fetched_at, None)
            except Exception as exc:  # a hop this version cannot read: the page must still end somewhere
                outs[at] = [self.dead_letter(internal_error(exc, "dedup"), hop, origin)]
                continue
            read.append((at, prepared, fp, seen_at))
        decisions = self.index.decide_many([(prepared.article.url, fp, when) for _, prepared, fp, when in read],
                                           after=self._after_decision)
        elapsed = (time.perf_counter() - started) / max(1, len(hops))
        for (at, prepared, fp, _), decision in zip(read, decisions, strict=True):
            article, trace = prepared.article, prepared.trace
            if isinstance(decision, Exception):  # a bad fingerprint must not stop the one dedup owner
                outs[at] = [self.dead_letter(internal_error(decision, "dedup"), hops[at][0], prepared.origin,
                                             article.url, trace, raw_at=prepared.origin)]
                continue
            self.metrics.stage_seconds.labels("dedup").observe(elapsed)
            article.stage_seconds["dedup"] = elapsed
            try:
                outs[at] = self._decided(prepared, fp, decision)
            except Exception as exc:  # this page's events only: the batch's other pages go on
                outs[at] = [self.dead_letter(internal_error(exc, "dedup"), hops[at][0], prepared.origin,
                                             article.url, trace, raw_at=prepared.origin)]
        return outs

    def _after_decision(self, decision: Decision) -> None:
        if decision.replay:  # a replay's time was counted the first time
            return
        try:
            self._advance_window(decision.watermark)
        except Exception:  # expiry is housekeeping: it must not fail the batch's other decisions
            log.exception("dedup expiry check failed; entries are kept")

    def _decided(self, prepared: Prepared, fp: Fingerprint, decision: Decision) -> list[Out]:
        """What a decision sends: the article on to tagging, or its duplicate and cluster events."""
        article, trace = prepared.article, prepared.trace
        if decision.duplicate_of is None:
            # Tagging needs only the content hash: the sketch (a twelfth of the hop) stays here.
            prepared.fingerprint = Fingerprint(fp.content_hash, (), fp.shingles).to_bytes()
            return [Out("unique", prepared.article_id.encode(), prepared.to_bytes(), trace=trace,
                        origin=prepared.origin)]
        assert decision.kind is not None
        self.metrics.duplicates.labels(decision.kind).inc()
        self.metrics.cluster_copies.observe(decision.copies)
        self._observe_end_to_end(article.fetched_at)
        duplicate = duplicate_event(decision.article_id, article, decision.duplicate_of, decision.kind,
                                    decision.similarity)
        cluster = cluster_event(decision.duplicate_of, decision.copies, article.url)
        return [
            self.publish("duplicates", *duplicate, trace, prepared.origin),
            self.publish("clusters", *cluster, trace, prepared.origin),
        ]

    def _advance_window(self, mark: float) -> None:
        if not mark or not self.index.expiry_due(mark):
            return
        try:
            self.metrics.dedup_expired.inc(self.index.expire(mark))
        except Exception:  # expiry is housekeeping: a failure keeps entries longer, loses nothing
            log.exception("dedup expiry failed; entries are kept")

    # -- tag --------------------------------------------------------------------------------------

    async def tag(self, hops: Sequence[tuple[bytes, Origin]]) -> list[Out]:
        """Unique articles -> `article.v1` events with entities (one batch), or dead letters."""
        outs: list[Out] = []
        batch: list[Prepared] = []
        for hop, origin in hops:
            try:
                batch.append(Prepared.from_bytes(hop))
            except Exception as exc:
                outs.append(self.dead_letter(internal_error(exc, "entities"), hop, origin))
        if not batch:
            return outs
        started = time.perf_counter()
        found = await self._entities([p.article.text for p in batch], [p.article.language for p in batch])
        per_page = (time.perf_counter() - started) / len(batch)
        for prepared, tagged in zip(batch, found, strict=True):
            article = prepared.article
            if isinstance(tagged, Dropped):
                outs.append(self.dead_letter(tagged, prepared.to_bytes(), prepared.origin, article.url,
                                             prepared.trace, raw_at=prepared.origin))
                continue
            entities, article.entities_skipped = tagged
            article.entities = entities
            article.stage_seconds["entities"] = per_page
            self.metrics.stage_seconds.labels("entities").observe(per_page)
            try:
                content_hash = Fingerprint.from_bytes(prepared.fingerprint).content_hash
                key, event = article_event(article, prepared.article_id, content_hash)
                outs.append(self.publish("articles", key, event, prepared.trace, prepared.origin))
            except Exception as exc:
                outs.append(self.dead_letter(internal_error(exc, "publish"), prepared.to_bytes(), prepared.origin,
                                             article.url, prepared.trace, raw_at=prepared.origin))
                continue
            for entity in entities:
                self.metrics.entities.labels(entity.label).inc()
            self.metrics.articles.labels(article.mode).inc()
            self._observe_end_to_end(article.fetched_at)
        return outs

    async def _entities(self, texts: list[str], languages: list[str | None]) -> list[Tagged | Dropped]:
        settings = self.settings
        timeout = settings.page_timeout_seconds
        found = await self.compute(
            self.entity_fn, texts, languages, settings.spacy_model, settings.entity_batch_size,
            step="entities", timeout=timeout * len(texts),
        )
        if not isinstance(found, Dropped):
            return list(found)
        if len(texts) == 1:
            return [found]
        # Tag one by one, so only the page that fails is dead-lettered.
        one_by_one: list[Tagged | Dropped] = []
        for text, language in zip(texts, languages, strict=True):
            single = await self.compute(self.entity_fn, [text], [language], settings.spacy_model, 1,
                                        step="entities", timeout=timeout)
            one_by_one.append(single if isinstance(single, Dropped) else single[0])
        return one_by_one

    # -- publish ----------------------------------------------------------------------------------

    def publish(
        self,
        route: Route,
        key: bytes | None,
        event: Event,
        trace: str | None = None,
        origin: Origin | None = None,
    ) -> Out:
        """A wire event, encoded for its topic."""
        return Out(route, key, encode(event), event, trace, origin)

    def dead_letter(
        self,
        dropped: Dropped,
        original: bytes | None,
        origin: Origin,
        url: str | None = None,
        trace: str | None = None,
        raw_at: Origin | None = None,
    ) -> Out:
        """The dead letter of a page that cannot go on, counted by reason.

        `raw_at`: where the raw page is when `original` is an internal message instead; the
        carrier replaces `original` by the page read back from there (`with_raw_page`).
        """
        self.metrics.dead_letters.labels(dropped.reason).inc()
        where = {"url": url, "topic": origin.topic, "partition": origin.partition, "offset": origin.offset}
        if dropped.failure is not None:  # a bug: the traceback at ERROR, once per distinct error
            self.metrics.step_failures.labels(dropped.failure.step).inc()
            self.failures.report(dropped.failure, f"dead letter {dropped.reason}: {dropped.detail}", where)
        else:
            log.info("dead letter %s: %s", dropped.reason, dropped.detail, extra=where)
        key, event = dead_letter_event(dropped, original, origin, url)
        return Out("dead_letters", key, encode(event), event, trace, origin, raw_at)

    def _observe_end_to_end(self, fetched_at: str | None) -> None:
        fetched = epoch_seconds(fetched_at)
        if fetched is not None:
            self.metrics.end_to_end_seconds.observe(max(0.0, self.clock() - fetched))


def with_raw_page(out: Out, raw: bytes | None) -> Out:
    """A late dead letter holding the raw page `raw` read back from `out.raw_at` (as it is when None)."""
    if out.raw_at is None or out.event is None or raw is None:
        return out
    event = {**out.event, **original_fields(raw)}
    if not event.get("url"):  # a step that failed before reading the page's url: the raw page names it
        event["url"] = known_url(raw, None)
    return replace(out, value=encode(event), event=event, raw_at=None)
