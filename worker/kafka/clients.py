"""Plain Kafka clients for the CLI: push raw pages, read events. The worker itself uses Faust."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from worker.kafka.connection import client_options, start_client
from worker.settings import Settings

READ_IDLE_SECONDS = 10.0  # `read_topic` gives up on a partition that hands out nothing this long


async def produce(
    settings: Settings,
    topic: str,
    messages: Iterable[tuple[bytes | None, bytes]],
    on_acked: Callable[[], None] | None = None,
) -> int:
    """Send (key, value) messages and wait until the broker acknowledged all; returns the count.

    `on_acked` is called once per acknowledged message (progress display).
    """
    producer = AIOKafkaProducer(
        acks="all", max_request_size=settings.max_page_bytes + 1_000_000, **client_options(settings)
    )
    await start_client(settings, producer)
    try:
        futures = [await producer.send(topic, value=value, key=key) for key, value in messages]
        for future in futures:
            await future
            if on_acked is not None:
                on_acked()
        return len(futures)
    finally:
        await producer.stop()


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """`topic`'s partitions, in order; empty when the broker does not know the topic after ~5 s.

    A topic created a moment ago may not be in the client's metadata yet: refresh and retry.
    """
    for _ in range(50):
        found = consumer.partitions_for_topic(topic)
        if found:
            return [TopicPartition(topic, p) for p in sorted(found)]
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.1)
    return []


async def consume(
    settings: Settings,
    topics: Sequence[str],
    from_beginning: bool = True,
    idle_timeout: float = 0.0,
    max_events: int = 0,
) -> AsyncGenerator[tuple[str, bytes | None, bytes], None]:
    """Yield (topic, key, value) from every partition of `topics`, without joining a group.

    Stops after `max_events` (0 = never) or when nothing arrived for `idle_timeout` seconds
    (0 = wait forever).
    """
    consumer = AIOKafkaConsumer(
        enable_auto_commit=False,
        fetch_max_wait_ms=settings.fetch_wait_ms,
        auto_offset_reset="earliest" if from_beginning else "latest",
        **client_options(settings),
    )
    await start_client(settings, consumer)
    try:
        partitions = []
        for topic in topics:
            partitions += await topic_partitions(consumer, topic)
        consumer.assign(partitions)
        if from_beginning:
            await consumer.seek_to_beginning(*partitions)
        else:
            await consumer.seek_to_end(*partitions)
        seen, last = 0, time.monotonic()
        while True:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    yield record.topic, record.key, record.value
                    seen += 1
                    if max_events and seen >= max_events:
                        return
                last = time.monotonic()
            if idle_timeout and time.monotonic() - last > idle_timeout:
                return
    finally:
        await consumer.stop()


class MessageReader:
    """Reads single messages back by (topic, partition, offset), without joining a group.

    The worker uses it to put the raw page into a dead letter made after the page was left
    behind (dedup, entities, publish); `redrive` to re-read a page its dead letter holds only
    part of. One consumer, started on the first read, reads one message at a time.
    """

    def __init__(self, settings: Settings, timeout: float = 10.0) -> None:
        self.settings = settings
        self.timeout = timeout
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def read(self, topic: str, partition: int, offset: int) -> bytes | None:
        """The value of the message at `offset`, or None when it is gone (retention) or absent."""
        async with self._lock:
            if self._consumer is None:
                consumer = AIOKafkaConsumer(
                    enable_auto_commit=False,
                    fetch_max_wait_ms=self.settings.fetch_wait_ms,
                    auto_offset_reset="earliest",  # an offset past retention reads the first one kept
                    **client_options(self.settings),
                )
                self._consumer = await start_client(self.settings, consumer)
            consumer = self._consumer
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            consumer.seek(tp, offset)
            deadline = time.monotonic() + self.timeout
            while time.monotonic() < deadline:
                batch = await consumer.getmany(tp, timeout_ms=200, max_records=1)
                for record in batch.get(tp, []):
                    return record.value if record.offset == offset else None
            return None

    async def close(self) -> None:
        """Stop the consumer (a later read starts a new one)."""
        async with self._lock:
            consumer, self._consumer = self._consumer, None
            if consumer is not None:
                await consumer.stop()


async def read_topic(settings: Settings, topic: str) -> AsyncGenerator[tuple[bytes | None, bytes], None]:
    """Yield (key, value) of every message `topic` holds now, partition by partition, then stop."""
    consumer = AIOKafkaConsumer(
        enable_auto_commit=False, fetch_max_wait_ms=settings.fetch_wait_ms, auto_offset_reset="earliest",
        **client_options(settings),
    )
    await start_client(settings, consumer)
    try:
        partitions = await topic_partitions(consumer, topic)
        if not partitions:
            return
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.seek_to_beginning(*partitions)
        for tp in partitions:
            # Some brokers (the embedded one) list the last batch's base offset + 1 as the end: read
            # on to the high watermark a fetch reports, which every broker gives as the log end.
            last_record = time.monotonic()
            while time.monotonic() - last_record < READ_IDLE_SECONDS:
                high = consumer.highwater(tp)
                if await consumer.position(tp) >= max(ends[tp], high or 0) and (high is not None or not ends[tp]):
                    break
                batch = await consumer.getmany(tp, timeout_ms=200)
                for record in batch.get(tp, []):
                    last_record = time.monotonic()
                    yield record.key, record.value
    finally:
        await consumer.stop()
