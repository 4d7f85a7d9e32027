"""The Faust app, its topics and its table, built from settings.

Topology (→ is a Kafka hop):

    pages.raw ──(N partitions)──► pages agent: decode, clean + fingerprint in the pool
        → <app>-dedup-candidates (1 partition) ─► decide agent: the one owner of the
          dedup table (changelog-backed), so every duplicate decision sees all earlier pages
            ├─► articles.duplicates.v1 + articles.clusters.v1
            └─► <app>-unique-articles (N partitions, key = article id) ─► tag agent:
                entities in the pool, batched ─► articles.v1
    dead letters from any agent ─► pages.deadletter.v1
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust
from faust.tables import TableManager

from worker.kafka import dedup_store
from worker.kafka.connection import faust_credentials
from worker.kafka.membership import Membership
from worker.kafka.topics import DEDUP_TABLE, candidates_topic, unique_topic
from worker.kafka.transport import broker_url
from worker.settings import Settings

PRODUCER_REQUEST_TIMEOUT_SECONDS = 30.0
# The producer keeps one request in flight per broker and puts at most one batch per partition in
# it; at Faust's 16 KiB batches only two cleaned articles (~7 KB each) fit, so a burst to the
# one-partition dedup hop took a round trip per two pages. 256 KiB stays far below the 1 MB a
# Kafka broker accepts by default for a batch (a larger message still gets a batch of its own).
PRODUCER_BATCH_BYTES = 256 * 1024


class PromptTableManager(TableManager):
    """Faust's table manager without the second it sleeps at its start, which leaves room for
    tables defined once the app runs: this app defines its one table before it starts
    (`create_app`; a table added later raises), and that second was part of every restart's time
    from the process start to its first decision."""

    async def on_start(self) -> None:
        """Register the tables' changelog channels and start their recovery at once."""
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()


@dataclass(frozen=True, slots=True)
class Topology:
    """The app's topics and its dedup table."""

    pages: Any
    candidates: Any
    unique: Any
    articles: Any
    duplicates: Any
    clusters: Any
    dead_letters: Any
    skipped: Any
    dedup_table: Any


def create_app(settings: Settings) -> tuple[faust.App, Topology]:
    """A Faust app configured only from `settings`, and its topology."""
    app = faust.App(
        settings.app_id,
        broker=broker_url(settings.broker),
        broker_credentials=faust_credentials(settings),
        store="memory://",
        autodiscover=False,
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replicas,
        topic_allow_declare=True,
        table_standby_replicas=1,
        broker_commit_interval=1.0,
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=max(0.5, settings.session_timeout_seconds / 10),
        producer_acks=-1,
        producer_max_batch_size=PRODUCER_BATCH_BYTES,
        # A send waits at most this long for the broker; the agents retry it, then stop the worker.
        producer_request_timeout=PRODUCER_REQUEST_TIMEOUT_SECONDS,
        web_enabled=True,
        web_bind=settings.web_host,
        web_port=settings.metrics_port,
        web_in_thread=False,
        # The port serves /metrics, /healthz and /readyz only: not Faust's views of table
        # contents (/table: the dedup state) and routing (/router), nor its debug views.
        web_router_enabled=False,
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        datadir=settings.data_dir,
        logging_config=None,
        TableManager=PromptTableManager,
    )
    app.fetch_wait_ms = settings.fetch_wait_ms  # type: ignore[attr-defined]  # read by worker.kafka.transport
    app.membership = Membership(settings.data_dir, settings.app_id)  # type: ignore[attr-defined]  # read there too
    raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
    topology = Topology(
        pages=app.topic(settings.input_topic, **raw),
        candidates=app.topic(candidates_topic(settings), partitions=1, internal=True, **raw),
        unique=app.topic(unique_topic(settings), internal=True, **raw),
        articles=app.topic(settings.articles_topic, **raw),
        duplicates=app.topic(settings.duplicates_topic, **raw),
        clusters=app.topic(settings.clusters_topic, **raw),
        dead_letters=app.topic(settings.dead_letter_topic, **raw),
        skipped=app.topic(settings.skipped_topic, **raw),
        dedup_table=app.Table(
            DEDUP_TABLE,
            default=None,
            partitions=1,
            key_type=str,
            value_type=bytes,  # values: raw bytes
            **dedup_store.table_options(settings),
        ),
    )
    return app, topology
