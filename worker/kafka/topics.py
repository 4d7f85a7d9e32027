"""The worker's topics: create the input and output topics when missing; check the dedup owner's."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from worker.errors import TopicUnusable
from worker.kafka.connection import client_options, start_client
from worker.settings import Settings

DEDUP_TABLE = "dedup-state"


def candidates_topic(settings: Settings) -> str:
    """The internal hop to the dedup owner: one partition, so one worker decides every page."""
    return f"{settings.app_id}-dedup-candidates"


def dedup_changelog_topic(settings: Settings) -> str:
    """The changelog Faust keeps for the dedup table (named by Faust: app id, table, "changelog")."""
    return f"{settings.app_id}-{DEDUP_TABLE}-changelog"


def topic_names(settings: Settings) -> list[str]:
    """The input topic and every output topic."""
    return [
        settings.input_topic,
        settings.articles_topic,
        settings.duplicates_topic,
        settings.clusters_topic,
        settings.dead_letter_topic,
        settings.skipped_topic,
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


async def check_dedup_topics(settings: Settings) -> None:
    """Raise `TopicUnusable` when the dedup owner's topics exist with other than one partition.

    Faust never changes an existing topic, and a table whose source and changelog differ in
    partitions refuses every write: each page would end as an `internal_error` dead letter.
    """
    admin = await start_client(settings, AIOKafkaAdminClient(**client_options(settings)))
    try:
        existing = set(await admin.list_topics())
        names = [name for name in (candidates_topic(settings), dedup_changelog_topic(settings)) if name in existing]
        for topic in await admin.describe_topics(names) if names else []:
            count = len(topic["partitions"])
            if count != 1:
                raise TopicUnusable(
                    f"topic {topic['topic']} has {count} partitions; the dedup owner needs exactly 1 "
                    "(recreate it with 1 partition, or give the worker a new INGEST_APP_ID)"
                )
    finally:
        await admin.close()
