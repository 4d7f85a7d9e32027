"""Create the worker's input and output topics on the broker when they are missing."""

from __future__ import annotations

from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from worker.settings import Settings


def bootstrap_servers(broker_url: str) -> str:
    """`kafka://a:9092;kafka://b:9092` (Faust's form) -> `a:9092,b:9092` (aiokafka's form)."""
    hosts = []
    for part in broker_url.replace(";", ",").split(","):
        part = part.strip()
        if "://" in part:
            part = part.split("://", 1)[1]
        if part:
            hosts.append(part.rstrip("/"))
    return ",".join(hosts)


def kafka_client_options(settings: Settings) -> dict[str, Any]:
    """Connection options for plain aiokafka clients (producer, consumer, admin)."""
    options: dict[str, Any] = {"bootstrap_servers": bootstrap_servers(settings.broker)}
    if settings.broker_username:
        options.update(
            security_protocol=settings.broker_security_protocol
            if settings.broker_security_protocol != "PLAINTEXT"
            else "SASL_PLAINTEXT",
            sasl_mechanism=settings.broker_sasl_mechanism,
            sasl_plain_username=settings.broker_username,
            sasl_plain_password=settings.broker_password.reveal(),
        )
    return options


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
    """Create the input and output topics that do not exist yet."""
    admin = AIOKafkaAdminClient(**kafka_client_options(settings))
    await admin.start()
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
