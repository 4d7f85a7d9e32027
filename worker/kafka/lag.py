"""Consumer lag, polled by the worker itself: log-end offset minus the group's committed offset.

Every `interval_seconds` the monitor asks the broker for the partitions of the input topics, the
log-end offset of each partition and the offset the consumer group has committed there, and sets
`ingest_consumer_lag_messages{topic, partition}`. A partition the group has never committed counts
from its log-start offset (the worker reads from the earliest offset).

Committed offsets come from the admin `OffsetFetch` request with the partitions listed
explicitly; the all-partitions form (no list) is not answered by every Kafka-protocol broker
(Tansu closes the connection). If the admin request fails while the broker is otherwise
reachable, the monitor falls back to a consumer named after the group that reads `committed()`
without subscribing, so it never joins the group or triggers a rebalance.

Broker errors never escape `poll_once`: they are logged and counted in
`ingest_consumer_lag_poll_errors_total`, the clients are rebuilt on the next poll, and the gauges
keep their last values.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from worker.kafka.connection import client_options
from worker.runtime.metrics import Metrics
from worker.settings import Settings

log = logging.getLogger(__name__)

Lags = dict[tuple[str, int], int]


class LagMonitor:
    """Polls committed and log-end offsets of a consumer group and sets the lag gauges."""

    def __init__(
        self,
        settings: Settings,
        topics: Sequence[str],
        metrics: Metrics,
        *,
        request_timeout_ms: int = 10_000,
        client_id: str = "ingest-worker-lag",
    ) -> None:
        """Monitor the group `settings.app_id` (Faust's group id) on `topics`, connecting as `settings` say."""
        self.group_id = settings.app_id
        self.topics = tuple(topics)
        self.metrics = metrics
        self._kwargs: dict[str, Any] = {
            **client_options(settings),
            "client_id": client_id,
            "request_timeout_ms": request_timeout_ms,
        }
        self._timeout = request_timeout_ms / 1000 * 2
        self._admin: AIOKafkaAdminClient | None = None
        self._offsets: AIOKafkaConsumer | None = None  # no group: metadata and log-end offsets
        self._group: AIOKafkaConsumer | None = None  # the group's name, never subscribed
        self._use_admin = True
        self._last: Lags = {}
        self._stopping = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None

    @property
    def last(self) -> Lags:
        """The lag of every partition as of the last successful poll."""
        return dict(self._last)

    async def poll_once(self) -> Lags:
        """Poll once, set the gauges and return the lag per (topic, partition); never raises."""
        try:
            lags = await asyncio.wait_for(self._poll(), timeout=self._timeout * 3)
        except Exception as exc:  # noqa: BLE001 - a monitor must not take the worker down
            log.warning("consumer lag poll failed, keeping last values: %r", exc)
            self.metrics.lag_poll_errors.inc()
            await self._close_clients()
            return dict(self._last)
        for (topic, partition), lag in lags.items():
            self.metrics.consumer_lag.labels(topic, str(partition)).set(lag)
        self._last = lags
        return dict(lags)

    async def run(self, interval_seconds: float = 5.0) -> None:
        """Poll every `interval_seconds` until `stop()` is called or the task is cancelled."""
        self._runner = asyncio.current_task()
        self._stopping.clear()
        try:
            while not self._stopping.is_set():
                await self.poll_once()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=interval_seconds)
        finally:
            await self._close_clients()

    async def stop(self) -> None:
        """Stop the `run` loop (waiting for the poll in flight) and close the clients."""
        self._stopping.set()
        runner, self._runner = self._runner, None
        if runner is not None and runner is not asyncio.current_task() and not runner.done():
            try:
                await asyncio.wait_for(asyncio.shield(runner), timeout=self._timeout)
            except asyncio.TimeoutError:
                runner.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await runner
        await self._close_clients()

    async def _poll(self) -> Lags:
        admin, offsets = await self._clients()
        partitions = await self._partitions(admin)
        if not partitions:
            return {}
        end = await offsets.end_offsets(partitions)
        committed = await self._committed(admin, partitions)
        missing = [tp for tp in partitions if committed.get(tp, -1) < 0]
        start = await offsets.beginning_offsets(missing) if missing else {}
        lags: Lags = {}
        for tp in partitions:
            position = committed.get(tp, -1)
            if position < 0:
                position = start.get(tp, 0)
            lags[(tp.topic, tp.partition)] = max(0, end.get(tp, 0) - position)
        return lags

    async def _partitions(self, admin: AIOKafkaAdminClient) -> list[TopicPartition]:
        # Describe only topics that exist: a metadata request naming a missing topic would make
        # a broker with auto-creation create it, with the broker's partition count.
        existing = set(await admin.list_topics())
        wanted = [t for t in self.topics if t in existing]
        if not wanted:
            return []
        partitions = []
        for topic in await admin.describe_topics(wanted):
            if topic.get("error_code", 0) != 0:  # e.g. not created yet
                continue
            for p in topic["partitions"]:
                partitions.append(TopicPartition(topic["topic"], p["partition"]))
        return sorted(partitions)

    async def _committed(
        self, admin: AIOKafkaAdminClient, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        if self._use_admin:
            try:
                found = await admin.list_consumer_group_offsets(
                    self.group_id, partitions=partitions
                )
                return {tp: meta.offset for tp, meta in found.items()}
            except Exception as exc:  # noqa: BLE001 - try the consumer form next
                log.info("OffsetFetch through the admin client failed (%r), using a consumer", exc)
                self._admin = None
                with contextlib.suppress(Exception):
                    await admin.close()
        group = await self._group_consumer()
        result: dict[TopicPartition, int] = {}
        for tp in partitions:
            offset = await group.committed(tp)
            result[tp] = -1 if offset is None else offset
        self._use_admin = False  # the consumer form works where the admin form did not
        return result

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None:
            admin = AIOKafkaAdminClient(**self._kwargs)
            await admin.start()
            self._admin = admin
        if self._offsets is None:
            consumer = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, **self._kwargs)
            await consumer.start()
            self._offsets = consumer
        return self._admin, self._offsets

    async def _group_consumer(self) -> AIOKafkaConsumer:
        if self._group is None:
            consumer = AIOKafkaConsumer(
                group_id=self.group_id, enable_auto_commit=False, **self._kwargs
            )
            await consumer.start()
            self._group = consumer
        return self._group

    async def _close_clients(self) -> None:
        admin, offsets, group = self._admin, self._offsets, self._group
        self._admin = self._offsets = self._group = None
        for client in (offsets, group):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.stop()
        if admin is not None:
            with contextlib.suppress(Exception):
                await admin.close()
