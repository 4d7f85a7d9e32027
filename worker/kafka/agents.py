"""The Faust agents: the only `async for` loops. Each connects a topic to the steps, counts, sends.

A message is acknowledged (its offset may be committed) only after the events that account
for it have been acknowledged by the broker: at-least-once delivery with deterministic ids.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import faust
from faust.types import TP
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from worker.document import Dropped, Origin
from worker.errors import internal_error, timed_out
from worker.events import Event, article_event, cloudevent_headers, dead_letter_event, encode, trace_parent
from worker.kafka.app import Topology
from worker.logs import add_log_context, log_context
from worker.pipeline import Prepared, decision_events, load_entity_model, prepare, seen_at, tag_texts
from worker.runtime.metrics import Metrics
from worker.runtime.pool import CallTimeout, StepPool
from worker.settings import Settings
from worker.steps.decode import decode, epoch_seconds
from worker.steps.dedup.index import DedupIndex

log = logging.getLogger(__name__)
STATE_REFRESH_SECONDS = 5.0
# Kafka's default largest message is 1 MB; the hops between agents stay under it.
MAX_HOP_BYTES = 900_000


def hop(trace: str | None) -> list[tuple[str, bytes]]:
    """Headers of a message between agents: the page's trace context, when it came with one."""
    return [("traceparent", trace.encode())] if trace else []


class InFlight:
    """Messages taken from Kafka and not yet accounted for, for the oldest-page-age gauge."""

    def __init__(self) -> None:
        self._since: dict[int, float] = {}

    def add(self, token: int, produced_at: float) -> None:
        """Track a message from its produce time (seconds since the epoch)."""
        self._since[token] = produced_at

    def done(self, token: int) -> None:
        """Forget a message once its events are acknowledged."""
        self._since.pop(token, None)

    def oldest_age(self, now: float) -> float:
        """Seconds since the oldest tracked message was produced (0 when none)."""
        return max(0.0, now - min(self._since.values())) if self._since else 0.0


class RebalanceSensor(faust.Sensor):
    """Counts rebalances and the seconds they take."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__()
        self.metrics = metrics

    def on_rebalance_start(self, app: Any) -> dict[str, float]:
        """A rebalance began."""
        self.metrics.rebalances.inc()
        return {"time_start": time.monotonic()}

    def on_rebalance_end(self, app: Any, state: dict[str, float]) -> None:
        """The rebalance (and table recovery) finished."""
        self.metrics.rebalance_seconds.inc(time.monotonic() - state.get("time_start", time.monotonic()))


def attach(app: faust.App, topology: Topology, settings: Settings, metrics: Metrics, pool: StepPool) -> None:
    """Register the agents, the web views and the background tasks on `app`."""
    inflight = InFlight()
    index = DedupIndex(topology.dedup_table, window_seconds=settings.dedup_window_days * 86400)
    watermark = {"seen_at": 0.0, "expired_at": 0.0}
    app.sensors.add(RebalanceSensor(metrics))

    async def send(topic: Any, key: bytes | None, event: Event, trace: str | None = None) -> None:
        started = time.perf_counter()
        headers = cloudevent_headers(event, settings.app_id, trace)
        await (await topic.send(key=key, value=encode(event), headers=headers))  # wait for the broker's ack
        metrics.stage_seconds.labels("publish").observe(time.perf_counter() - started)
        metrics.events_published.labels(event["event_type"]).inc()

    async def dead_letter(
        dropped: Dropped, original: bytes | None, origin: Origin, url: str | None = None, trace: str | None = None
    ) -> None:
        key, event = dead_letter_event(dropped, original, origin, url)
        metrics.dead_letters.labels(dropped.reason).inc()
        where = {"url": url, "topic": origin.topic, "partition": origin.partition, "offset": origin.offset}
        log.info("dead letter %s: %s", dropped.reason, dropped.detail, extra=where)
        await send(topology.dead_letters, key, event, trace)

    async def in_pool(fn: Callable[..., Any], *args: Any, step: str, timeout: float) -> Any:
        try:
            result, waited = await pool.run(fn, *args, timeout=timeout)
        except CallTimeout:
            return timed_out(step, timeout)
        except Exception as exc:  # a broken pool twice in a row, or a pickling error
            return internal_error(exc, step)
        metrics.pool_queue_seconds.observe(waited)
        return result

    @app.agent(topology.pages, concurrency=max(2, 2 * settings.pool_size))
    async def pages(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            token = id(event)
            inflight.add(token, message.timestamp or time.time())
            origin = Origin(message.topic, message.partition, message.offset)
            try:
                with log_context(topic=origin.topic, partition=origin.partition, offset=origin.offset):
                    await handle_page(event.value or b"", event.key, origin, message.headers or ())
            except Exception as exc:  # one page's failure must not stop the agent (and skip the page)
                await dead_letter(internal_error(exc, "publish"), event.value, origin)
            finally:
                inflight.done(token)

    async def handle_page(value: bytes, key: bytes | None, origin: Origin, headers: Any) -> None:
        trace = trace_parent(headers)  # travels with the page through every hop to its events
        metrics.pages_consumed.labels(origin.topic).inc()
        metrics.bytes_consumed.labels(origin.topic).inc(len(value))
        started = time.perf_counter()
        page = decode(value, key, settings.max_page_bytes, headers)
        decode_seconds = time.perf_counter() - started
        metrics.stage_seconds.labels("decode").observe(decode_seconds)
        if isinstance(page, Dropped):
            await dead_letter(page, value, origin, trace=trace)
            return
        add_log_context(url=page.url)
        prepared = await in_pool(prepare, page, step="clean", timeout=settings.page_timeout_seconds)
        if isinstance(prepared, Dropped):
            await dead_letter(prepared, value, origin, page.url, trace)
            return
        prepared.origin = origin
        prepared.article.stage_seconds["decode"] = decode_seconds
        metrics.stage_seconds.labels("clean").observe(prepared.article.stage_seconds.get("clean", 0.0))
        candidate = prepared.to_bytes()
        if len(candidate) > MAX_HOP_BYTES:
            detail = (
                f"The cleaned article is {len(candidate):,} bytes, over the {MAX_HOP_BYTES:,}-byte limit of a "
                "Kafka message between steps; the page is probably not one article (split it, or send its HTML)."
            )
            await dead_letter(Dropped("too_large", detail), value, origin, page.url, trace)
            return
        await (await topology.candidates.send(key=prepared.article_id.encode(), value=candidate, headers=hop(trace)))

    @app.agent(topology.candidates)
    async def decide(stream: Any) -> None:
        async for event in stream.events():
            token = id(event)
            inflight.add(token, event.message.timestamp or time.time())
            prepared = Prepared.from_bytes(event.value)
            trace = trace_parent(event.message.headers or ())
            try:
                await handle_candidate(prepared, event.message.timestamp or time.time(), trace)
            except Exception as exc:  # e.g. an event the broker refuses: the page must still end somewhere
                await dead_letter(
                    internal_error(exc, "publish"), event.value, prepared.origin, prepared.article.url, trace
                )
            finally:
                inflight.done(token)

    async def handle_candidate(prepared: Prepared, produced_at: float, trace: str | None) -> None:
        started = time.perf_counter()
        when = seen_at(prepared.article, produced_at)
        try:
            decision = index.decide(prepared.article.url, prepared.fingerprint, when)
        except Exception as exc:  # a bad fingerprint must not stop the one dedup owner
            await dead_letter(
                internal_error(exc, "dedup"), prepared.to_bytes(), prepared.origin, prepared.article.url, trace
            )
            return
        # The window follows event time (the newest fetched_at seen), so replaying old pages works.
        if not watermark["seen_at"]:
            watermark["expired_at"] = when
        watermark["seen_at"] = max(watermark["seen_at"], when)
        if watermark["seen_at"] - watermark["expired_at"] > 60:
            try:
                metrics.dedup_expired.inc(index.expire(watermark["seen_at"]))
            except Exception:
                log.exception("dedup expiry failed; entries are kept")
            watermark["expired_at"] = watermark["seen_at"]
        elapsed = time.perf_counter() - started
        metrics.stage_seconds.labels("dedup").observe(elapsed)
        prepared.article.stage_seconds["dedup"] = elapsed
        if decision.duplicate_of is None:
            await (
                await topology.unique.send(
                    key=prepared.article_id.encode(), value=prepared.to_bytes(), headers=hop(trace)
                )
            )
            return
        assert decision.kind is not None
        metrics.duplicates.labels(decision.kind).inc()
        metrics.cluster_copies.observe(decision.copies)
        duplicate, cluster = decision_events(prepared, decision)
        await send(topology.duplicates, *duplicate, trace)
        await send(topology.clusters, *cluster, trace)
        observe_end_to_end(prepared)

    @app.agent(topology.unique)
    async def tag(stream: Any) -> None:
        async for events in stream.take_events(settings.entity_batch_size, within=0.05):
            tokens = [id(e) for e in events]
            for token, e in zip(tokens, events, strict=True):
                inflight.add(token, e.message.timestamp or time.time())
            try:
                traces = [trace_parent(e.message.headers or ()) for e in events]
                await handle_unique([Prepared.from_bytes(e.value) for e in events], traces)
            finally:
                for token in tokens:
                    inflight.done(token)

    async def handle_unique(batch: list[Prepared], traces: list[str | None]) -> None:
        texts = [p.article.text for p in batch]
        timeout = settings.page_timeout_seconds * len(batch)
        started = time.perf_counter()
        found = await in_pool(
            tag_texts, texts, settings.spacy_model, settings.entity_batch_size, step="entities", timeout=timeout
        )
        if isinstance(found, Dropped) and len(batch) > 1:
            # Tag one by one so only the page that fails is dead-lettered.
            found = [
                await in_pool(
                    tag_texts, [t], settings.spacy_model, 1, step="entities", timeout=settings.page_timeout_seconds
                )
                for t in texts
            ]
            found = [f if isinstance(f, Dropped) else f[0] for f in found]
        elif isinstance(found, Dropped):
            found = [found]
        per_page = (time.perf_counter() - started) / len(batch)
        for prepared, entities, trace in zip(batch, found, traces, strict=True):
            if isinstance(entities, Dropped):
                await dead_letter(entities, prepared.to_bytes(), prepared.origin, prepared.article.url, trace)
                continue
            article = prepared.article
            article.entities = entities
            article.stage_seconds["entities"] = per_page
            metrics.stage_seconds.labels("entities").observe(per_page)
            key, event = article_event(article, prepared.article_id, prepared.fingerprint.content_hash)
            try:
                await send(topology.articles, key, event, trace)
            except Exception as exc:  # e.g. an event over the broker's message size
                await dead_letter(
                    internal_error(exc, "publish"), prepared.to_bytes(), prepared.origin, article.url, trace
                )
                continue
            for entity in entities:
                metrics.entities.labels(entity.label).inc()
            metrics.articles.labels(article.mode).inc()
            observe_end_to_end(prepared)

    def observe_end_to_end(prepared: Prepared) -> None:
        fetched = epoch_seconds(prepared.article.fetched_at)
        if fetched is not None:
            metrics.end_to_end_seconds.observe(max(0.0, time.time() - fetched))

    @app.timer(interval=STATE_REFRESH_SECONDS)
    async def refresh_gauges() -> None:
        metrics.oldest_unprocessed_age.set(inflight.oldest_age(time.time()))
        # Only the owner of the dedup partition reports state (standbys hold copies of it).
        if TP(topology.candidates.get_topic_name(), 0) in app.assignor.assigned_actives():
            entries = index.entries()
            metrics.dedup_entries.set(entries)
            state_bytes = index.state_bytes()
            metrics.dedup_state_bytes.set(state_bytes)
            metrics.dedup_bytes_per_entry.set(state_bytes / entries if entries else 0.0)

    @app.task
    async def warm_up_pool() -> None:
        # Load the entity model in every pool process before the first article needs it.
        await app.loop.run_in_executor(None, pool.warm_up, partial(load_entity_model, settings.spacy_model))

    @app.page("/metrics")
    async def metrics_view(web: Any, request: Any) -> Any:
        return web.bytes(
            generate_latest(metrics.registry), content_type=CONTENT_TYPE_LATEST.split(";")[0] + "; version=0.0.4"
        )

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        ready = app.consumer is not None and not app.rebalancing
        return web.json({"ready": ready}, status=200 if ready else 503)
