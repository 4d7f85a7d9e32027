"""The transport's fixes for taking partitions over: a partition's end, and where commits start."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from conftest import create_topic
from faust.types import TP

from worker.kafka.app import create_app
from worker.kafka.connection import client_options, start_client
from worker.kafka.embedded import free_port
from worker.kafka.transport import Selected, fetched_highwaters
from worker.settings import Settings


@pytest.mark.integration
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


def test_a_commit_waits_for_the_next_offset_to_read_when_later_ones_finished_first(tmp_path):
    """Two actors take offsets 10 and 11 of a partition; 11 finishes first. Committing 12 then
    would lose page 10 to a kill, so nothing is committed until 10 is acknowledged."""
    settings = Settings().with_overrides(broker="kafka://127.0.0.1:9", data_dir=str(tmp_path), metrics_port=free_port())
    app, _ = create_app(settings)
    consumer = app.consumer  # built, not started: no broker is contacted
    partition = TP(settings.input_topic, 0)

    consumer._committed_offset[partition] = 10
    consumer._acked[partition].extend([11])
    assert consumer._new_offset(partition) is None
    consumer._acked[partition].insert(0, 10)
    assert consumer._new_offset(partition) == 12

    fresh = TP(settings.input_topic, 1)  # nothing committed yet: the partition starts at 0
    consumer._acked[fresh].extend([1, 2])
    assert consumer._new_offset(fresh) is None
    consumer._acked[fresh].insert(0, 0)
    assert consumer._new_offset(fresh) == 3


def test_a_fetch_selection_follows_the_live_set_and_is_never_read_as_every_partition():
    """aiokafka hands out every partition's records for an empty selection; Faust empties its set
    of active partitions while a fetch waits, so the selection must stay a selection."""
    active = {TP("pages", 0)}
    selected = Selected(active)
    active.discard(TP("pages", 0))
    assert selected and TP("pages", 0) not in selected
    active.add(TP("pages", 1))
    assert TP("pages", 1) in selected


async def test_the_table_manager_starts_its_recovery_without_waiting_a_second(tmp_path):
    """Faust's table manager sleeps a second at its start for tables defined late; the app defines
    its table before it starts, so its manager registers the changelog channels and starts the
    recovery at once (that second was part of every restart's time to its first decision)."""
    import time

    from worker.kafka.app import PromptTableManager

    app, topology = create_app(Settings(broker="kafka://127.0.0.1:9", data_dir=str(tmp_path)))
    manager = app.tables
    assert isinstance(manager, PromptTableManager)
    done: list[str] = []

    async def update_channels() -> None:
        done.append("channels")

    class Recovery:
        async def start(self) -> None:
            done.append("recovery")

    manager._update_channels = update_channels  # type: ignore[method-assign]
    manager._recovery = Recovery()  # type: ignore[assignment]
    started = time.monotonic()
    await manager.on_start()
    assert done == ["channels", "recovery"] and time.monotonic() - started < 0.5
    assert topology.dedup_table.name in manager
