"""Create the worker's input and output topics on the broker when they are missing."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from worker.kafka.connection import client_options, start_client
from worker.settings import Settings


def topic_names(settings: Settings) -> list[str]:
    """The input topic and every output topic."""
    return [
        settings.input_topic,
        settings.articles_topic,
        settings.duplicates_topic,
        settings.clusters_topic,
        settings.dead_letter_topic,
    ]


async def ensure_topics(settings: Settings) -> None:
    """Create the input and output topics that do not exist yet.

    The first thing `run` and `produce` do: a broker that cannot be used raises
    `BrokerUnavailable` here, within seconds, with the reason.
    """
    admin = await start_client(settings, AIOKafkaAdminClient(**client_options(settings)))
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in topic_names(settings) if name not in existing]
        if missing:
            try:
                await admin.create_topics(
                    [NewTopic(name, settings.topic_partitions, settings.topic_replicas) for name in missing]
                )
            except TopicAlreadyExistsError:
                pass  # another worker created it first
    finally:
        await admin.close()
