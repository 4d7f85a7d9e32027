"""The Faust agents: the only `async for` loops. Each takes messages, calls its stage handler
(`worker.stages`), sends what the handler returns and only then lets the message be acknowledged.

At-least-once delivery with deterministic ids: an offset is committed only after the events that
account for its message were acknowledged by the broker. Every message is handled inside its own
error boundary: a failure on one page becomes that page's dead letter. A broker that refuses a
send is retried with backoff; when it stays unusable the worker stops with a clear message and a
non-zero exit (the platform restarts it), instead of dead-lettering good pages.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

import faust
from aiokafka.errors import MessageSizeTooLargeError
from faust import streams as faust_streams
from faust.types import TP
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from worker.cpu import warm_up
from worker.document import Dropped, Origin, Prepared
from worker.errors import internal_error
from worker.events import cloudevent_headers
from worker.kafka import dedup_store
from worker.kafka.app import Topology
from worker.kafka.clients import MessageReader
from worker.kafka.health import LoopWatch, liveness, readiness
from worker.logs import log_context
from worker.runtime.compute import PoolCompute
from worker.runtime.metrics import Metrics
from worker.runtime.pool import StepPool
from worker.settings import Settings
from worker.stages import Out, Route, Stages, with_raw_page
from worker.steps.decode import known_url
from worker.steps.dedup import DedupIndex

log = logging.getLogger(__name__)

STATE_REFRESH_SECONDS = 5.0
# Backoff between attempts to send one message; after the last one the broker counts as unusable.
SEND_BACKOFF_SECONDS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
STOP_GRACE_SECONDS = 30.0  # a graceful stop that takes longer (the broker is gone) ends at once
UNUSABLE_POOL_GRACE_SECONDS = 5.0
DECIDE_BATCH = 100
"""Cleaned articles the dedup owner decides together at most (`DedupIndex.decide_many`: their reads
and postings looked up together, one write of the table; bench/dedup_scale.md)."""
DECIDE_WITHIN_SECONDS = 0.01  # what a page waits at most for others to be decided with


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


class BrokerUnusable(RuntimeError):
    """The broker refused a send through every retry: the worker stops and is restarted."""


class Fatal:
    """Remembers why the worker stopped itself, so `run` can exit non-zero with that reason.

    `announce` writes the one line that ends the process (the command's fatal line, JSON under
    INGEST_LOG_FORMAT=json) when a hanging shutdown is cut short.
    """

    reason: str | None = None

    def __init__(self, announce: Callable[[str], None] | None = None) -> None:
        self.announce = announce or _print_stopped

    def stop(self, reason: str, grace_seconds: float = STOP_GRACE_SECONDS) -> None:
        """Record the reason and ask the worker to shut down gracefully (acked offsets commit).

        A shutdown that hangs (on the lost broker, or on pages held back) is cut short after
        `grace_seconds`.
        """
        if self.reason is None:
            self.reason = reason
            log.critical("%s", reason)
            timer = threading.Timer(grace_seconds, _exit_now, args=(self.announce, reason))
            timer.daemon = True
            timer.start()
            os.kill(os.getpid(), signal.SIGTERM)


def _print_stopped(line: str) -> None:
    print(f"ingest-worker run: {line}", file=sys.stderr, flush=True)


def _exit_now(announce: Callable[[str], None], reason: str) -> None:
    announce(f"stopped: {reason}")
    os._exit(1)


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


def _broker_time(message: Any) -> float | None:
    return message.timestamp if message.timestamp and message.timestamp > 0 else None


def _being_processed(event: Any) -> None:
    """Make `event` the one Faust's tables see as being processed (`faust.current_event`)."""
    faust_streams._current_event.set(weakref.ref(event))


def _origin(message: Any) -> Origin:
    return Origin(message.topic, message.partition, message.offset)


def _headers(message: Any) -> list[tuple[str, bytes]]:
    headers = message.headers or ()
    items = headers.items() if isinstance(headers, dict) else headers
    return [(str(name), bytes(value)) for name, value in items if isinstance(value, bytes | bytearray)]


def _hop_origin(hop: bytes) -> Origin | None:
    """Where the raw page of an internal message was read, when the message can be read."""
    try:
        return Prepared.from_bytes(hop).origin
    except Exception:  # noqa: BLE001 - an unreadable hop: its dead letter holds the hop itself
        return None


class Agents:
    """The agents' bodies: take messages, call the stage handlers, send their outputs, then ack."""

    def __init__(
        self, topology: Topology, settings: Settings, metrics: Metrics, pool: StepPool, fatal: Fatal
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.fatal = fatal
        self.inflight = InFlight()
        # The RocksDB store keeps the indexes derived from the table beside it, and the decision
        # reads and writes it directly (each decision one local write, its changelog records as
        # the table sends them); over the memory store the index goes through the table and
        # derives its indexes itself after each recovery.
        table = topology.dedup_table
        rocks = isinstance(table.data, dedup_store.DedupRocksStore)
        self.index = DedupIndex(dedup_store.TableState(table) if rocks else table,
                                window_seconds=settings.dedup_window_days * 86400,
                                derived=table.data.derived if rocks else None)
        self.store: dedup_store.RocksDerived | None = table.data.derived if rocks else None
        self._fold_failures = 0  # the store's, as counted so far
        # The pages a pool that cannot load its models holds back keep a graceful stop waiting,
        # and nothing else is in flight then: a short grace.
        self.compute = PoolCompute(pool, metrics, partial(warm_up, settings.spacy_model),
                                   partial(fatal.stop, grace_seconds=UNUSABLE_POOL_GRACE_SECONDS))
        self.stages = Stages(settings, self.index, self.compute, metrics)
        self.raw_pages = MessageReader(settings)  # puts the raw page into late dead letters
        self.topics: dict[Route, Any] = {
            "candidates": topology.candidates,
            "unique": topology.unique,
            "articles": topology.articles,
            "duplicates": topology.duplicates,
            "clusters": topology.clusters,
            "dead_letters": topology.dead_letters,
            "skipped": topology.skipped,
        }

    async def pages(self, stream: Any) -> None:
        """Raw pages -> decode + clean -> the dedup owner's hop (or dead letters)."""
        async for event in stream.events():
            message = event.message
            self.inflight.add(id(event), _broker_time(message) or time.time())
            outs, error = None, None
            origin = _origin(message)
            with log_context(topic=origin.topic, partition=origin.partition, offset=origin.offset):
                try:
                    outs = await self.stages.page(
                        message.value or b"", message.key, origin, _broker_time(message), _headers(message)
                    )
                except Exception as exc:
                    error = exc
                await self._account(message, outs, error, "decode")
            self.inflight.done(id(event))

    async def decide(self, stream: Any) -> None:
        """Cleaned articles, as many as have come up to `DECIDE_BATCH` -> the dedup decisions,
        made together (the one owner of the dedup table), each page's outputs then sent and
        acknowledged (the pages' sends together)."""
        async for events in stream.take_events(DECIDE_BATCH, within=DECIDE_WITHIN_SECONDS):
            for event in events:
                self.inflight.add(id(event), _broker_time(event.message) or time.time())
            outs: list[list[Out] | None] = [None] * len(events)
            error = None
            # the table's changelog records go to the partition of the event being processed, which
            # Faust tells its table only while an agent iterates events one by one (all are 0 here)
            _being_processed(events[-1])
            try:
                outs = list(self.stages.decide_many([(e.message.value or b"", _origin(e.message)) for e in events]))
            except Exception as exc:  # our bug: each page of the batch a dead letter
                error = exc
            await asyncio.gather(*(self._account(event.message, out, error, "dedup")
                                   for event, out in zip(events, outs, strict=True)))
            for event in events:
                self.inflight.done(id(event))

    async def tag(self, stream: Any) -> None:
        """Unique articles, in batches -> entities -> `article.v1` events."""
        async for events in stream.take_events(self.settings.entity_batch_size, within=0.05):
            for e in events:
                self.inflight.add(id(e), _broker_time(e.message) or time.time())
            try:
                outs = await self.stages.tag([(e.message.value or b"", _origin(e.message)) for e in events])
            except Exception as exc:  # the batch failed as a whole: each page gets a dead letter
                for e in events:
                    await self._account(e.message, None, exc, "entities")
            else:
                await self._account(events[0].message, outs, None, "entities")
            for e in events:
                self.inflight.done(id(e))

    async def _account(self, message: Any, outs: list[Out] | None, exc: BaseException | None, step: str) -> None:
        """Send what accounts for `message`; a handler that raised leaves the page a dead letter."""
        origin = _origin(message)
        value = message.value or b""
        if exc is not None or outs is None:  # our bug on this page: the page still ends somewhere
            # Logged (with its traceback, once per distinct error) and counted as the dead letter is made.
            from_input = origin.topic == self.settings.input_topic
            raw_at = None if from_input else _hop_origin(value)
            url = known_url(value, message.key) if from_input else None  # else: from the raw page
            outs = [self.stages.dead_letter(internal_error(exc or RuntimeError("no output"), step), value, origin,
                                            url, raw_at=raw_at)]
        try:
            await self._deliver(outs, value, origin)
        except BrokerUnusable:
            await asyncio.Event().wait()  # never ack this message: the worker is stopping

    async def _deliver(self, outs: Iterable[Out], original: bytes, origin: Origin) -> None:
        """Send a message's outputs together and wait for every ack.

        Sent together, they share the producer's requests (a tag batch's articles go in one
        request instead of one round trip each). One the broker can never take becomes the
        page's dead letter.
        """
        outs = [await self._with_raw_page(out) for out in outs]
        results = await asyncio.gather(*(self._deliver_one(out, original, origin) for out in outs),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _deliver_one(self, out: Out, original: bytes, origin: Origin) -> None:
        try:
            await self._send(out)
        except MessageSizeTooLargeError as exc:
            url = out.event.get("url") if out.event else None
            detail = f"The broker refused the {out.route} message as too large ({exc}); the page is too big."
            # An output of a later step names its raw page's place: the page is read back from there.
            page_origin = out.origin or origin
            raw_at = page_origin if page_origin != origin or origin.topic != self.settings.input_topic else None
            await self._send(await self._with_raw_page(self.stages.dead_letter(
                Dropped("too_large", detail), original, page_origin, url, out.trace, raw_at=raw_at
            )))

    async def _with_raw_page(self, out: Out) -> Out:
        """A late dead letter with the raw page read back from the input topic in place of the
        internal message (left as it is when the page can no longer be read)."""
        if out.raw_at is None:
            return out
        try:
            raw = await self.raw_pages.read(out.raw_at.topic, out.raw_at.partition, out.raw_at.offset)
        except Exception as exc:  # noqa: BLE001 - the dead letter still goes out, with the hop
            log.warning("could not read the raw page at %s back for its dead letter: %r", out.raw_at, exc)
            raw = None
        return with_raw_page(out, raw)

    async def _send(self, out: Out) -> None:
        """Send one message and wait for the broker's ack, retrying while the broker refuses."""
        for attempt, pause in enumerate((*SEND_BACKOFF_SECONDS, None), start=1):
            started = time.perf_counter()
            try:
                await (await self.topics[out.route].send(key=out.key, value=out.value, headers=self._headers(out)))
            except MessageSizeTooLargeError:
                raise  # this message can never be sent: the caller dead-letters it
            except Exception as exc:  # a broker error: retry, then stop the worker
                if pause is None:
                    self.fatal.stop(f"the broker refused a send to {out.route} {attempt} times; last error: {exc!r}")
                    raise BrokerUnusable(str(exc)) from exc
                log.warning("send to %s failed (%r); retrying in %g s", out.route, exc, pause)
                await asyncio.sleep(pause)
                continue
            self.metrics.stage_seconds.labels("publish").observe(time.perf_counter() - started)
            if out.event is not None:
                self.metrics.events_published.labels(out.event["event_type"]).inc()
            return

    def _headers(self, out: Out) -> list[tuple[str, bytes]]:
        """CloudEvents headers on a wire event; the trace context alone on an internal hop."""
        if out.event is not None:
            return cloudevent_headers(out.event, self.settings.app_id, out.trace)
        return [("traceparent", out.trace.encode())] if out.trace else []

    def refresh_gauges(self, dedup_owner: bool) -> None:
        """Oldest in-flight age; the dedup store's failed folds (an owner's or a standby's); dedup
        state size when this worker owns the decision."""
        self.metrics.oldest_unprocessed_age.set(self.inflight.oldest_age(time.time()))
        if self.store is not None and self.store.fold_failures > self._fold_failures:
            self.metrics.dedup_fold_failures.inc(self.store.fold_failures - self._fold_failures)
            self._fold_failures = self.store.fold_failures
        if dedup_owner:  # standbys hold copies of the state: only the owner reports it
            entries = self.index.entries()
            self.metrics.dedup_entries.set(entries)
            state_bytes = self.index.state_bytes()
            self.metrics.dedup_state_bytes.set(state_bytes)
            self.metrics.dedup_bytes_per_entry.set(state_bytes / entries if entries else 0.0)


def attach(
    app: faust.App, topology: Topology, settings: Settings, metrics: Metrics, pool: StepPool, fatal: Fatal
) -> Agents:
    """Register the agents, the web views and the background tasks on `app`."""
    agents = Agents(topology, settings, metrics, pool, fatal)
    app.sensors.add(RebalanceSensor(metrics))
    app.agent(topology.pages, name="pages", concurrency=max(2, 2 * settings.pool_size))(agents.pages)
    app.agent(topology.candidates, name="decide")(agents.decide)
    # One batch in flight per pool process: with a single actor, tagging (most of the CPU) ran in
    # one process at a time and the others idled once cleaning was done.
    app.agent(topology.unique, name="tag", concurrency=settings.pool_size)(agents.tag)
    dedup_partition = TP(topology.candidates.get_topic_name(), 0)

    @app.timer(interval=STATE_REFRESH_SECONDS)
    async def refresh_gauges() -> None:
        # Not while the table recovers: the index would derive its indexes from half a state.
        agents.refresh_gauges(dedup_partition in app.assignor.assigned_actives() and not app.rebalancing)

    @topology.dedup_table.on_recover
    async def rederive_dedup_indexes() -> None:
        # The table was recovered (a start, a take-over): the decision index derives its
        # in-memory indexes from it again before the first decision.
        agents.index.invalidate()

    @app.task
    async def warm_up_pool() -> None:
        # Load the entity model in every pool process before the first page needs the pool.
        await agents.compute.ready()

    loop_watch = LoopWatch()

    @app.task
    async def watch_event_loop() -> None:
        await loop_watch.run()

    _web_views(app, metrics, fatal, agents, pool, loop_watch)
    return agents


def _web_views(
    app: faust.App, metrics: Metrics, fatal: Fatal, agents: Agents, pool: StepPool, loop_watch: LoopWatch
) -> None:
    @app.page("/metrics")
    async def metrics_view(web: Any, request: Any) -> Any:
        return web.bytes(
            generate_latest(metrics.registry), content_type=CONTENT_TYPE_LATEST.split(";")[0] + "; version=0.0.4"
        )

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        healthy, body = liveness(loop_watch, pool.problem())
        return web.json(body, status=200 if healthy else 503)

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        ready, body = readiness(app, agents.compute.is_warm(), fatal.reason)
        return web.json(body, status=200 if ready else 503)
