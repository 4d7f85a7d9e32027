"""Generate the ingest-worker Grafana dashboard (deploy/grafana/dashboards/ingest-worker.json).

Run `python deploy/grafana/dashboard.py` after editing and commit both files; a test checks the
JSON is what this script writes. The layout follows the RED method: rate, errors, duration, then
what explains them (lag, dedup, entities, the process).

Heavy queries (every histogram quantile, the dedup ratio) read recording rules from
deploy/prometheus/rules.yml; the panels keep only cheap `rate()` and gauge reads. Every panel
uses the datasource variable `${datasource}`, whose default is the provisioned uid `prometheus`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "dashboards" / "ingest-worker.json"
DS = {"type": "prometheus", "uid": "${datasource}"}
JOB = 'job="ingest-worker"'
RATE = "$__rate_interval"
GRID_WIDTH = 24
PANEL_HEIGHT = 8

Panel = dict[str, Any]
Query = tuple[str, str]  # (PromQL, legend)
Cell = tuple[Panel, int]  # a panel and its width in grid columns
Row = tuple[str, list[Cell]]


def target(expr: str, legend: str, ref: str) -> dict[str, Any]:
    """One PromQL query of a panel."""
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref, "range": True}


def timeseries(
    title: str, width: int, unit: str, queries: list[Query], description: str, *, stack: bool = False
) -> Cell:
    """A time-series panel `width` columns wide; stacked series are filled."""
    custom = {
        "drawStyle": "line",
        "lineWidth": 1,
        "fillOpacity": 20 if stack else 0,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        "spanNulls": False,
    }
    panel = {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": [target(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(queries)],
        "fieldConfig": {"defaults": {"unit": unit, "min": 0, "custom": custom}, "overrides": []},
        "options": {
            "legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull", "max"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }
    return panel, width


def stat(title: str, width: int, unit: str, expr: str, thresholds: list[tuple[float, str]], description: str) -> Cell:
    """A single-number panel with colour thresholds (value, colour), lowest first, over green."""
    steps = [{"color": "green", "value": None}] + [{"color": c, "value": v} for v, c in thresholds]
    panel = {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": [target(expr, "", "A")],
        "fieldConfig": {
            "defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}},
            "overrides": [],
        },
        "options": {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"},
    }
    return panel, width


def row(title: str, *cells: Cell) -> Row:
    """A titled row of panels; a panel that does not fit on the current line starts the next."""
    return title, list(cells)


def rate_by(label: str, counter: str) -> list[Query]:
    """The per-second rate of `counter` summed by `label`, one series per label value."""
    return [(f"sum by ({label}) (rate({counter}[{RATE}]))", "{{%s}}" % label)]


def per_worker(metric: str, legend: str = "{{instance}}", *, rate: bool = False) -> list[Query]:
    """`metric` (or its rate) of each worker of the job, one series per instance."""
    selector = f"{metric}{{{JOB}}}"
    return [(f"rate({selector}[{RATE}])" if rate else selector, legend)]


def quantiles(record: str) -> list[Query]:
    """p50/p95/p99 queries of a recorded `...:histogram_quantile` series."""
    return [(f'{record}{{quantile="{q}"}}', f"p{q[2:].ljust(2, '0')}") for q in ("0.5", "0.95", "0.99")]


def stage_quantile(quantile: str) -> list[Query]:
    """One recorded quantile of the seconds per page, one series per step."""
    return [(f'stage_quantile:ingest_stage_seconds:histogram_quantile{{quantile="{quantile}"}}', "{{stage}}")]


# One panel per call: title, width, unit, queries, then its description on the next line.
# fmt: off
def red_rows() -> list[Row]:
    """Rate, errors and duration: what users of the output topic feel."""
    return [
        row("Rate",
            timeseries("Pages consumed", 8, "reqps", rate_by("topic", "ingest_pages_consumed_total"),
                       "Raw pages read from the input topic per second."),
            timeseries("Events published", 8, "reqps", rate_by("event_type", "ingest_events_published_total"),
                       "Events written per second, by event type.", stack=True),
            timeseries("Bytes consumed", 8, "Bps", rate_by("topic", "ingest_consumed_bytes_total"),
                       "Raw page bytes read per second."),
            timeseries("Articles by cleaning mode", 12, "reqps", rate_by("mode", "ingest_articles_total"),
                       "Unique articles per second, from HTML or from a text dump.", stack=True),
            timeseries("Duplicates by kind", 12, "reqps", rate_by("kind", "ingest_duplicates_total"),
                       "Copies per second: exact (same text) or near (similar text).", stack=True),
            timeseries("Skipped pages by page type", 12, "reqps",
                       rate_by("page_type", "ingest_skipped_total"),
                       "Pages that ended as a skipped.v1 record (not_article: a kind not in "
                       "INGEST_ARTICLE_PAGE_TYPES) per second, by page type; an outcome, not an error.",
                       stack=True),
            timeseries("Pages by page type", 12, "reqps", rate_by("page_type", "ingest_page_types_total"),
                       "Cleaned pages per second by the kind the page-type classifier read, published or not.",
                       stack=True)),
        row("Errors",
            timeseries("Dead letters by reason", 10, "reqps", rate_by("reason", "ingest_dead_letters_total"),
                       "Pages sent to the dead-letter topic per second, by reason.", stack=True),
            timeseries("Step failures by step", 6, "short",
                       [(f"sum by (step) (increase(ingest_step_failures_total[{RATE}]))", "{{step}}")],
                       "Pages on which a step raised an exception (a bug), by step; the worker logs the "
                       "traceback at ERROR and the alert IngestStepFailing fires.", stack=True),
            stat("Dead-letter ratio (5m)", 4, "percentunit", "ingest:dead_letters:ratio_rate5m",
                 [(0.01, "orange"), (0.05, "red")],
                 "Dead letters per consumed page over 5 minutes; the alert fires above 5%."),
            stat("Process-pool restarts (1h)", 4, "short", "sum(increase(ingest_pool_restarts_total[1h]))",
                 [(1, "orange"), (5, "red")], "Pools replaced after a stuck or crashed worker process.")),
        row("Duration",
            timeseries("Stage latency p50", 8, "s", stage_quantile("0.5"), "Median seconds per page in each step."),
            timeseries("Stage latency p95", 8, "s", stage_quantile("0.95"),
                       "95th percentile seconds per page in each step."),
            timeseries("Stage latency p99", 8, "s", stage_quantile("0.99"),
                       "99th percentile seconds per page in each step."),
            timeseries("End to end", 12, "s", quantiles("quantile:ingest_end_to_end_seconds:histogram_quantile"),
                       "Seconds from a page's fetched_at to its event's publication "
                       "(includes the crawl-to-ingest delay)."),
            timeseries("Process-pool queue wait", 12, "s",
                       quantiles("quantile:ingest_pool_queue_seconds:histogram_quantile"),
                       "Seconds a page waited for a free pool process; growth: CPU-bound.")),
    ]


def cause_rows() -> list[Row]:
    """What explains the RED rows: lag, dedup state, entities and the process itself."""
    return [
        row("Lag",
            timeseries("Consumer lag by partition", 12, "short",
                       [("max by (topic, partition) (ingest_consumer_lag_messages)", "{{topic}}/{{partition}}")],
                       "Log-end offset minus the group's committed offset, polled by the worker.", stack=True),
            timeseries("Oldest unprocessed page", 8, "s", per_worker("ingest_oldest_unprocessed_age_seconds"),
                       "Seconds since the oldest page in flight (consumed, not yet fully processed) "
                       "was produced, per worker."),
            stat("Lag poll errors (15m)", 4, "short", "sum(increase(ingest_consumer_lag_poll_errors_total[15m]))",
                 [(1, "orange"), (10, "red")], "Failed lag polls; while they fail the lag panel shows stale values.")),
        row("Dedup and clusters",
            timeseries("Dedup ratio", 8, "percentunit",
                       [("ingest:dedup:ratio_rate5m", "duplicates / (articles + duplicates)")],
                       "Share of pages recognised as copies of an earlier article (5m)."),
            timeseries("Cluster size when a copy arrives", 8, "short",
                       quantiles("quantile:ingest_cluster_copies:histogram_quantile")
                       + [("ingest:cluster_copies:mean_rate5m", "mean")],
                       "Copies a story had when a new copy arrived (syndication cluster size)."),
            timeseries("Event-time corrections", 8, "reqps", rate_by("reason", "ingest_event_time_corrections_total"),
                       "Pages per second whose fetched_at was absent, in the future or implausibly old, so the "
                       "dedup window used the broker's time instead, by reason.", stack=True),
            timeseries("Window expiries", 6, "reqps", [(f"sum(rate(ingest_dedup_expired_total[{RATE}]))", "expired")],
                       "Dedup entries dropped after the dedup window, per second."),
            timeseries("Dedup entries", 6, "short", per_worker("ingest_dedup_entries"),
                       "Articles held in the dedup window, per worker."),
            timeseries("Dedup state bytes", 6, "bytes", per_worker("ingest_dedup_state_bytes"),
                       "Bytes of dedup state (keys and values), per worker."),
            timeseries("Dedup bytes per article", 6, "bytes", per_worker("ingest_dedup_state_bytes_per_article"),
                       "Dedup state bytes per indexed article; growth means fatter fingerprints.")),
        row("Dedup state capacity",
            timeseries("Data volume", 9, "bytes",
                       per_worker("ingest_data_dir_bytes", "table files {{instance}}")
                       + per_worker("ingest_data_volume_free_bytes", "free {{instance}}")
                       + per_worker("ingest_data_volume_size_bytes", "volume {{instance}}"),
                       "The dedup table's RocksDB files under INGEST_DATA_DIR and what is left of their volume "
                       "(alert IngestDataVolumeFilling)."),
            timeseries("Memory and its limit", 9, "bytes",
                       [(f"process_resident_memory_bytes{{{JOB}}} + ignoring(job) "
                         "ingest_child_resident_memory_bytes", "worker + pool {{instance}}")]
                       + per_worker("ingest_memory_limit_bytes", "limit {{instance}}"),
                       "Resident memory of the worker with its pool beside the container's limit: the dedup "
                       "table's memory is its block cache, not the window (alert IngestMemoryNearLimit)."),
            timeseries("Postings snapshot failures", 6, "short",
                       [(f"sum by (instance) (increase(ingest_dedup_fold_failures_total{{{JOB}}}[1h]))",
                         "{{instance}}")],
                       "Folds of the dedup postings whose snapshot file could not be written, per worker over "
                       "the last hour (alert IngestDedupSnapshotFailing): the journal grows until one succeeds.")),
        row("Entities",
            timeseries("Entities by label", 24, "reqps", rate_by("label", "ingest_entities_total"),
                       "Entities tagged in published articles per second, by label.", stack=True)),
        row("Process",
            timeseries("CPU", 6, "percentunit",
                       per_worker("process_cpu_seconds_total", "main {{instance}}", rate=True)
                       + per_worker("ingest_child_cpu_seconds_total", "pool {{instance}}", rate=True),
                       "CPU seconds per second of the worker's main process and of its step pool."),
            timeseries("Resident memory", 6, "bytes",
                       per_worker("process_resident_memory_bytes", "main {{instance}}")
                       + per_worker("ingest_child_resident_memory_bytes", "pool {{instance}}"),
                       "Resident set size of the worker's main process and of its step pool."),
            timeseries("Rebalances", 6, "short",
                       [(f"sum(increase(ingest_rebalances_total[{RATE}]))", "rebalances"),
                        (f"sum(rate(ingest_rebalance_seconds_total[{RATE}]))", "seconds rebalancing per second")],
                       "Consumer-group rebalances and the share of time spent rebalancing."),
            timeseries("Workers up", 6, "short",
                       [(f"up{{{JOB}}}", "{{instance}} up"),
                        (f"count by (version) (ingest_build_info{{{JOB}}})", "version {{version}}")],
                       "Scrape health and build version of each worker.")),
    ]
# fmt: on


def layout(rows: list[Row]) -> list[Panel]:
    """Row headers and panels with ids and grid positions, left to right, top to bottom."""
    panels: list[Panel] = []
    y = 0
    for title, cells in rows:
        header = {"type": "row", "title": title, "id": len(panels) + 1, "collapsed": False}
        panels.append(header | {"gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y}, "panels": []})
        y += 1
        x = 0
        for panel, width in cells:
            if x + width > GRID_WIDTH:
                x, y = 0, y + PANEL_HEIGHT
            panel["id"] = len(panels) + 1
            panel["gridPos"] = {"h": PANEL_HEIGHT, "w": width, "x": x, "y": y}
            panels.append(panel)
            x += width
        y += PANEL_HEIGHT
    return panels


def dashboard() -> dict[str, Any]:
    """The whole dashboard as a JSON-ready dict."""
    return {
        "uid": "ingest-worker",
        "title": "Ingest worker",
        "description": "Raw pages in, article events out: rate, errors, duration, lag, dedup, entities.",
        "tags": ["ingest", "kafka", "faust"],
        "timezone": "utc",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {"text": "Prometheus", "value": "prometheus"},
                    "hide": 0,
                }
            ]
        },
        "annotations": {"list": []},
        "links": [],
        "panels": layout(red_rows() + cause_rows()),
    }


def render() -> str:
    """The dashboard JSON exactly as committed."""
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
