"""The transport's measure of a partition's end, against the embedded broker."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from conftest import create_topic

from worker.kafka.connection import client_options, start_client
from worker.kafka.transport import fetched_highwaters

pytestmark = pytest.mark.integration


def test_the_fetched_end_of_a_partition_counts_every_record_of_its_last_batch(kafka_settings):
    """Table recovery reads the changelog up to this end: short of it, the last decisions were lost."""
    topic = f"{kafka_settings.app_id}-batched"
    create_topic(kafka_settings, topic, partitions=1)
    partition = TopicPartition(topic, 0)

    async def main() -> tuple[list[int], dict[TopicPartition, int], int]:
        producer = await start_client(kafka_settings, AIOKafkaProducer(linger_ms=200, **client_options(kafka_settings)))
        try:
            sent = [await producer.send(topic, b"value", key=b"key") for _ in range(3)]  # one batch
            offsets = [(await future).offset for future in sent]
        finally:
            await producer.stop()
        options = client_options(kafka_settings)
        consumer = await start_client(kafka_settings, AIOKafkaConsumer(fetch_max_wait_ms=10, **options))
        try:
            consumer.assign([partition])
            fetched = await fetched_highwaters(consumer, [partition], timeout=10)
            listed = (await consumer.end_offsets([partition]))[partition]
        finally:
            await consumer.stop()
        return offsets, fetched, listed

    offsets, fetched, listed = asyncio.run(main())
    assert offsets == [0, 1, 2]
    assert fetched == {partition: 3}
    assert listed <= 3  # the embedded broker lists 1: the last batch's base offset plus one
