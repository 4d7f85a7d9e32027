"""Every topic the worker uses, with its layout and the permissions it needs; their creation.

`topic_specs` is the one list: the input and output topics, the two internal hops, the dedup
table's changelog and Faust's leader topic. `ingest-worker topics` prints it (and docs/operating.md
holds the same table, checked by a test); `run` creates the missing ones before Faust starts, so
Faust finds them and creates nothing of its own, and a cluster that forbids creation can get them
from `ingest-worker topics --create` run by an administrator. A broker reports each topic it
could not create in its answer without raising: those answers are read topic by topic.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import for_code

from worker.errors import TopicUnusable
from worker.kafka.connection import client_options, start_client
from worker.settings import Settings

DEDUP_TABLE = "dedup-state"
TOPIC_ALREADY_EXISTS = 36  # Kafka's error code
# The ACL operations the worker's principal needs on each kind of topic (Kafka's operation names).
CONSUMED = ("Read", "Describe")
PRODUCED = ("Write", "Describe")
HOP = ("Read", "Write", "Describe")


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic: its name, layout, what it carries and the operations the worker performs on it."""

    name: str
    setting: str  # the variable that names it, or how its name is made
    partitions: int
    replicas: int
    cleanup_policy: str  # Kafka's cleanup.policy: delete (by retention) or compact (latest per key)
    carries: str
    operations: tuple[str, ...]

    @property
    def config(self) -> dict[str, str]:
        """The topic configuration the worker creates it with."""
        return {"cleanup.policy": self.cleanup_policy} if self.cleanup_policy != "delete" else {}


def candidates_topic(settings: Settings) -> str:
    """The internal hop to the dedup owner: one partition, so one worker decides every page."""
    return f"{settings.app_id}-dedup-candidates"


def unique_topic(settings: Settings) -> str:
    """The internal hop of unique articles to the entity stage, keyed by article id."""
    return f"{settings.app_id}-unique-articles"


def dedup_changelog_topic(settings: Settings) -> str:
    """The changelog Faust keeps for the dedup table (named by Faust: app id, table, "changelog")."""
    return f"{settings.app_id}-{DEDUP_TABLE}-changelog"


def leader_topic(settings: Settings) -> str:
    """Faust's partition-assignment topic (named by Faust: app id, "__assignor-__leader")."""
    return f"{settings.app_id}-__assignor-__leader"


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic the worker reads or writes, in the order a page flows through them."""
    n, replicas = settings.topic_partitions, settings.topic_replicas
    app = "INGEST_APP_ID"
    return [
        TopicSpec(settings.input_topic, "INGEST_INPUT_TOPIC", n, replicas, "delete", "raw_page.v1 from crawlers",
                  CONSUMED),
        TopicSpec(candidates_topic(settings), f"<{app}>-dedup-candidates", 1, replicas, "delete",
                  "cleaned pages to the dedup owner (internal; exactly 1 partition)", HOP),
        TopicSpec(dedup_changelog_topic(settings), f"<{app}>-{DEDUP_TABLE}-changelog", 1, replicas, "compact",
                  "the dedup table's changelog (internal; exactly 1 partition)", HOP),
        TopicSpec(unique_topic(settings), f"<{app}>-unique-articles", n, replicas, "delete",
                  "unique articles to the entity stage (internal)", HOP),
        TopicSpec(settings.articles_topic, "INGEST_ARTICLES_TOPIC", n, replicas, "delete", "article.v1", PRODUCED),
        TopicSpec(settings.duplicates_topic, "INGEST_DUPLICATES_TOPIC", n, replicas, "delete", "duplicate.v1",
                  PRODUCED),
        TopicSpec(settings.clusters_topic, "INGEST_CLUSTERS_TOPIC", n, replicas, "compact",
                  "cluster.v1, the latest copy count per article", PRODUCED),
        TopicSpec(settings.dead_letter_topic, "INGEST_DEAD_LETTER_TOPIC", n, replicas, "delete", "dead_letter.v1",
                  PRODUCED),
        TopicSpec(leader_topic(settings), f"<{app}>-__assignor-__leader", 1, replicas, "delete",
                  "Faust's partition assignment (internal, empty)", CONSUMED),
    ]


def topic_names(settings: Settings) -> list[str]:
    """The name of every topic the worker uses."""
    return [spec.name for spec in topic_specs(settings)]


def topics_table(settings: Settings, markdown: bool = False) -> str:
    """The topics with their layout and ACL operations, as aligned text or as a Markdown table."""
    header = ("topic", "named by", "partitions", "cleanup.policy", "worker ACL operations", "carries")
    rows = [
        (s.name, s.setting, str(s.partitions), s.cleanup_policy, ", ".join(s.operations), s.carries)
        for s in topic_specs(settings)
    ]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(f"`{c}`" if i in (0, 1) else c for i, c in enumerate(row)) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    aligned = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]]
    return "\n".join(aligned)


def group_acl_note(settings: Settings) -> str:
    """The permissions beyond the topics' own: the consumer group, and topic creation."""
    return (
        f"consumer group {settings.app_id!r}: Read, Describe. Creating topics: Create on the cluster (or on "
        "each topic), only when the worker creates them at start; without it, create them beforehand "
        "with `ingest-worker topics --create`, run with the worker's settings by a principal that may."
    )


@dataclass(frozen=True, slots=True)
class Creation:
    """What became of one topic: created, already there, or the broker's error."""

    topic: str
    outcome: str  # "created", "exists" or "error"
    detail: str = ""


def creation_outcomes(topic_errors: list[tuple[str, int, str | None]]) -> list[Creation]:
    """Read a CreateTopics answer topic by topic (the broker reports errors there, never raises)."""
    outcomes = []
    for topic, code, message in topic_errors:
        if code == 0:
            outcomes.append(Creation(topic, "created"))
        elif code == TOPIC_ALREADY_EXISTS:
            outcomes.append(Creation(topic, "exists"))
        else:
            name = for_code(code).__name__
            outcomes.append(Creation(topic, "error", f"{name} (error {code}){': ' + message if message else ''}"))
    return outcomes


async def create_topics(settings: Settings, specs: list[TopicSpec] | None = None) -> list[Creation]:
    """Create every topic of `specs` (default: all the worker uses) that does not exist; one
    outcome per topic. A broker that cannot be used raises `BrokerUnavailable`, with the reason."""
    specs = topic_specs(settings) if specs is None else specs
    admin = await start_client(settings, AIOKafkaAdminClient(**client_options(settings)))
    try:
        existing = set(await admin.list_topics())
        outcomes = [Creation(spec.name, "exists") for spec in specs if spec.name in existing]
        missing = [spec for spec in specs if spec.name not in existing]
        if missing:
            response = await admin.create_topics(
                [NewTopic(s.name, s.partitions, s.replicas, topic_configs=s.config) for s in missing]
            )
            outcomes += creation_outcomes(list(response.topic_errors))
    finally:
        await admin.close()
    order = {spec.name: i for i, spec in enumerate(specs)}
    return sorted(outcomes, key=lambda outcome: order.get(outcome.topic, len(order)))


async def ensure_topics(settings: Settings) -> None:
    """Create the topics the worker uses that do not exist yet, as `topic_specs` lays them out.

    The first thing `run` does: a broker that cannot be used raises `BrokerUnavailable` here,
    within seconds, with the reason; a topic the broker refused to create raises `TopicUnusable`
    naming it and the broker's error.
    """
    problem = refusal(await create_topics(settings))
    if problem:
        raise TopicUnusable(problem)


def refusal(outcomes: list[Creation]) -> str:
    """The sentence naming each topic the broker refused to create and the fix, or ""."""
    failed = [outcome for outcome in outcomes if outcome.outcome == "error"]
    if not failed:
        return ""
    named = "; ".join(f"{outcome.topic}: {outcome.detail}" for outcome in failed)
    return (
        f"the broker refused to create {named}. Grant the worker's principal Create, or create the "
        "topics beforehand with `ingest-worker topics --create` (see docs/operating.md, Topics and ACLs)"
    )


async def existing_topics(settings: Settings) -> set[str]:
    """The topics on the broker (those the settings' principal may describe)."""
    admin = await start_client(settings, AIOKafkaAdminClient(**client_options(settings)))
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def require_topic(settings: Settings, topic: str) -> None:
    """Raise `TopicUnusable` when `topic` does not exist, rather than let a producer's metadata
    request create it with the broker's defaults instead of the worker's layout."""
    if topic not in await existing_topics(settings):
        raise TopicUnusable(
            f"topic {topic} does not exist on {settings.broker}; start the worker once (it creates its topics) or "
            "create them with `ingest-worker topics --create` and the worker's settings"
        )


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
