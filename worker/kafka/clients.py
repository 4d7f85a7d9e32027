"""Plain Kafka clients for the CLI: push raw pages, read events. The worker itself uses Faust."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from worker.kafka.connection import client_options, start_client
from worker.settings import Settings


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
            found = None
            for _ in range(50):  # a topic created a moment ago may not be in the metadata yet
                found = consumer.partitions_for_topic(topic)
                if found:
                    break
                await consumer._client.force_metadata_update()
                await asyncio.sleep(0.1)
            partitions += [TopicPartition(topic, p) for p in sorted(found or ())]
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
