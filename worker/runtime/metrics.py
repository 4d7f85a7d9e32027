"""Every Prometheus metric of the worker, built as one bundle against a passed-in registry.

Names follow Prometheus conventions: one `ingest_` prefix, base units, `_total` counters,
`_seconds` histograms, bounded label values (the closed lists of `worker.document`), and every
label combination initialised so dashboards show 0 rather than nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from worker import __version__
from worker.document import (
    CLEANING_MODES,
    DEAD_LETTER_REASONS,
    DUPLICATE_KINDS,
    ENTITY_LABELS,
    PAGE_KINDS,
    STAGES,
)
from worker.runtime.children import ChildProcessCollector
from worker.runtime.volume import DataVolumeCollector
from worker.steps.dedup.window import TIME_CORRECTIONS

EVENT_TYPES: tuple[str, ...] = ("article.v1", "duplicate.v1", "cluster.v1", "dead_letter.v1", "skipped.v1")

# Stage work ranges from sub-millisecond (decode, dedup) to many seconds (a huge page).
STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# End to end includes crawl-to-ingest delay, so it reaches hours.
END_TO_END_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400)
COPIES_BUCKETS = (1, 2, 3, 5, 10, 20, 50, 100, 200, 500)

_ = (GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR)  # the default-registry instances


class EventLoopCollector(Collector):
    """`ingest_event_loop_tasks`: asyncio tasks alive in the worker's loop; a leak shows as growth."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Count the loop's tasks at scrape time (the web view runs in the loop's own thread)."""
        tasks = len(asyncio.all_tasks(self.loop))
        yield GaugeMetricFamily("ingest_event_loop_tasks", "asyncio tasks alive in the event loop", value=tasks)


@dataclass(frozen=True, slots=True)
class Metrics:
    """The worker's metrics; create with `Metrics.create(registry)`."""

    registry: CollectorRegistry
    pages_consumed: Counter
    bytes_consumed: Counter
    events_published: Counter
    articles: Counter
    duplicates: Counter
    dead_letters: Counter
    step_failures: Counter
    skipped: Counter
    page_types: Counter
    entities: Counter
    stage_seconds: Histogram
    end_to_end_seconds: Histogram
    pool_queue_seconds: Histogram
    consumer_lag: Gauge
    oldest_unprocessed_age: Gauge
    dedup_entries: Gauge
    dedup_state_bytes: Gauge
    dedup_bytes_per_entry: Gauge
    dedup_expired: Counter
    dedup_fold_failures: Counter
    event_time_corrections: Counter
    cluster_copies: Histogram
    rebalances: Counter
    rebalance_seconds: Counter
    pool_restarts: Counter
    lag_poll_errors: Counter

    @classmethod
    def create(
        cls, registry: CollectorRegistry | None = None, input_topic: str = "pages.raw", data_dir: str | None = None
    ) -> Metrics:
        """Build every metric on `registry` (a fresh one by default) with labels initialised;
        with `data_dir`, also its volume's size and free bytes and the memory limit."""
        reg = registry if registry is not None else CollectorRegistry()
        if data_dir is not None:
            reg.register(DataVolumeCollector(data_dir))
        ProcessCollector(registry=reg)
        PlatformCollector(registry=reg)
        GCCollector(registry=reg)
        reg.register(ChildProcessCollector())
        Info("ingest_build", "Worker build", registry=reg).info({"version": __version__})
        m = cls(
            registry=reg,
            pages_consumed=Counter(
                "ingest_pages_consumed_total", "Raw pages consumed", ["topic"], registry=reg
            ),
            bytes_consumed=Counter(
                "ingest_consumed_bytes_total",
                "Bytes of raw pages consumed",
                ["topic"],
                registry=reg,
            ),
            events_published=Counter(
                "ingest_events_published_total",
                "Events published, by event type",
                ["event_type"],
                registry=reg,
            ),
            articles=Counter(
                "ingest_articles_total",
                "Unique articles published, by cleaning mode",
                ["mode"],
                registry=reg,
            ),
            duplicates=Counter(
                "ingest_duplicates_total",
                "Pages recognised as copies of an earlier article",
                ["kind"],
                registry=reg,
            ),
            dead_letters=Counter(
                "ingest_dead_letters_total",
                "Pages dead-lettered, by reason",
                ["reason"],
                registry=reg,
            ),
            step_failures=Counter(
                "ingest_step_failures_total",
                "Pages on which a step raised an exception (a bug; each is an internal_error dead letter)",
                ["step"],
                registry=reg,
            ),
            skipped=Counter(
                "ingest_skipped_total",
                "Pages not published by design (a skipped.v1 record, not an error), by reason and page type",
                ["reason", "page_type"],
                registry=reg,
            ),
            page_types=Counter(
                "ingest_page_types_total",
                "Cleaned pages by the kind the page-type classifier read (published or not)",
                ["page_type"],
                registry=reg,
            ),
            entities=Counter(
                "ingest_entities_total",
                "Entities tagged in published articles, by label",
                ["label"],
                registry=reg,
            ),
            stage_seconds=Histogram(
                "ingest_stage_seconds",
                "Seconds spent in each step per page",
                ["stage"],
                buckets=STAGE_BUCKETS,
                registry=reg,
            ),
            end_to_end_seconds=Histogram(
                "ingest_end_to_end_seconds",
                "Seconds from a page's fetched_at to its event's publication",
                buckets=END_TO_END_BUCKETS,
                registry=reg,
            ),
            pool_queue_seconds=Histogram(
                "ingest_pool_queue_seconds",
                "Seconds a task waited for a process-pool worker",
                buckets=STAGE_BUCKETS,
                registry=reg,
            ),
            consumer_lag=Gauge(
                "ingest_consumer_lag_messages",
                "Log-end offset minus committed offset",
                ["topic", "partition"],
                registry=reg,
            ),
            oldest_unprocessed_age=Gauge(
                "ingest_oldest_unprocessed_age_seconds",
                "Seconds since the oldest page in flight (consumed, not yet processed) was produced",
                registry=reg,
            ),
            dedup_entries=Gauge(
                "ingest_dedup_entries", "Articles held in the dedup window", registry=reg
            ),
            dedup_state_bytes=Gauge(
                "ingest_dedup_state_bytes", "Bytes of dedup state (keys and values)", registry=reg
            ),
            dedup_bytes_per_entry=Gauge(
                "ingest_dedup_state_bytes_per_article",
                "Bytes of dedup state per indexed article",
                registry=reg,
            ),
            dedup_expired=Counter(
                "ingest_dedup_expired_total", "Dedup entries dropped after the window", registry=reg
            ),
            dedup_fold_failures=Counter(
                "ingest_dedup_fold_failures_total",
                "Folds of the dedup postings whose snapshot could not be written (their journal is kept)",
                registry=reg,
            ),
            event_time_corrections=Counter(
                "ingest_event_time_corrections_total",
                "Pages whose fetched_at was not used as event time (absent, future, too_old): broker time instead",
                ["reason"],
                registry=reg,
            ),
            cluster_copies=Histogram(
                "ingest_cluster_copies",
                "Copies a story has had when a new copy arrives",
                buckets=COPIES_BUCKETS,
                registry=reg,
            ),
            rebalances=Counter(
                "ingest_rebalances_total",
                "Consumer-group rebalances seen by this worker",
                registry=reg,
            ),
            rebalance_seconds=Counter(
                "ingest_rebalance_seconds_total", "Seconds spent rebalancing", registry=reg
            ),
            pool_restarts=Counter(
                "ingest_pool_restarts_total",
                "Pool processes replaced after a call overran its time limit or the process died",
                registry=reg,
            ),
            lag_poll_errors=Counter(
                "ingest_consumer_lag_poll_errors_total",
                "Consumer-lag polls that failed (the lag gauges keep their last values)",
                registry=reg,
            ),
        )
        m.pages_consumed.labels(input_topic)
        m.bytes_consumed.labels(input_topic)
        for event_type in EVENT_TYPES:
            m.events_published.labels(event_type)
        for mode in CLEANING_MODES:
            m.articles.labels(mode)
        for kind in DUPLICATE_KINDS:
            m.duplicates.labels(kind)
        for reason in DEAD_LETTER_REASONS:
            m.dead_letters.labels(reason)
        for page_kind in PAGE_KINDS:
            m.page_types.labels(page_kind)
            m.skipped.labels("not_article", page_kind)
        for label in ENTITY_LABELS:
            m.entities.labels(label)
        for stage in STAGES:
            m.stage_seconds.labels(stage)
            m.step_failures.labels(stage)
        for correction in TIME_CORRECTIONS:
            m.event_time_corrections.labels(correction)
        return m
