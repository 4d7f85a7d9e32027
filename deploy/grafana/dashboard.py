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

Panel = dict[str, Any]


def target(expr: str, legend: str, ref: str) -> dict[str, Any]:
    """One PromQL query of a panel."""
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref, "range": True}


def timeseries(
    title: str, description: str, queries: list[tuple[str, str]], unit: str, *, stack: bool = False
) -> Panel:
    """A time-series panel; `queries` are (PromQL, legend) pairs."""
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": [target(q, legend, chr(ord("A") + i)) for i, (q, legend) in enumerate(queries)],
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "min": 0,
                "custom": {
                    "drawStyle": "line",
                    "lineWidth": 1,
                    "fillOpacity": 20 if stack else 0,
                    "stacking": {"mode": "normal" if stack else "none", "group": "A"},
                    "spanNulls": False,
                },
            },
            "overrides": [],
        },
        "options": {
            "legend": {
                "displayMode": "table",
                "placement": "right",
                "calcs": ["lastNotNull", "max"],
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def stat(
    title: str, description: str, expr: str, unit: str, thresholds: list[tuple[float, str]]
) -> Panel:
    """A single-number panel with colour thresholds (value, colour), lowest first."""
    steps = [{"color": "green", "value": None}] + [{"color": c, "value": v} for v, c in thresholds]
    return {
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


def quantiles(record: str, by: str = "") -> list[tuple[str, str]]:
    """p50/p95/p99 queries of a recorded `...:histogram_quantile` series."""
    legend = "{{%s}} " % by if by else ""
    return [
        (f'{record}{{quantile="{q}"}}', f"{legend}p{q[2:].ljust(2, '0')}")
        for q in ("0.5", "0.95", "0.99")
    ]


def rows() -> list[tuple[str, list[tuple[Panel, int]]]]:
    """(row title, [(panel, width)]) in display order; widths add up to 24 per line."""
    rate = "$__rate_interval"
    return [
        (
            "Rate",
            [
                (
                    timeseries(
                        "Pages consumed",
                        "Raw pages read from the input topic per second.",
                        [
                            (
                                f"sum by (topic) (rate(ingest_pages_consumed_total[{rate}]))",
                                "{{topic}}",
                            )
                        ],
                        "reqps",
                    ),
                    8,
                ),
                (
                    timeseries(
                        "Events published",
                        "Events written per second, by event type.",
                        [
                            (
                                f"sum by (event_type) (rate(ingest_events_published_total[{rate}]))",
                                "{{event_type}}",
                            )
                        ],
                        "reqps",
                        stack=True,
                    ),
                    8,
                ),
                (
                    timeseries(
                        "Bytes consumed",
                        "Raw page bytes read per second.",
                        [
                            (
                                f"sum by (topic) (rate(ingest_consumed_bytes_total[{rate}]))",
                                "{{topic}}",
                            )
                        ],
                        "Bps",
                    ),
                    8,
                ),
                (
                    timeseries(
                        "Articles by cleaning mode",
                        "Unique articles per second, from HTML or from a text dump.",
                        [(f"sum by (mode) (rate(ingest_articles_total[{rate}]))", "{{mode}}")],
                        "reqps",
                        stack=True,
                    ),
                    12,
                ),
                (
                    timeseries(
                        "Duplicates by kind",
                        "Copies per second: exact (same text) or near (similar text).",
                        [(f"sum by (kind) (rate(ingest_duplicates_total[{rate}]))", "{{kind}}")],
                        "reqps",
                        stack=True,
                    ),
                    12,
                ),
            ],
        ),
        (
            "Errors",
            [
                (
                    timeseries(
                        "Dead letters by reason",
                        "Pages sent to the dead-letter topic per second, by reason.",
                        [
                            (
                                f"sum by (reason) (rate(ingest_dead_letters_total[{rate}]))",
                                "{{reason}}",
                            )
                        ],
                        "reqps",
                        stack=True,
                    ),
                    16,
                ),
                (
                    stat(
                        "Dead-letter ratio (5m)",
                        "Dead letters per consumed page over 5 minutes; the alert fires above 5%.",
                        "ingest:dead_letters:ratio_rate5m",
                        "percentunit",
                        [(0.01, "orange"), (0.05, "red")],
                    ),
                    4,
                ),
                (
                    stat(
                        "Process-pool restarts (1h)",
                        "Pools replaced after a stuck or crashed worker process.",
                        "sum(increase(ingest_pool_restarts_total[1h]))",
                        "short",
                        [(1, "orange"), (5, "red")],
                    ),
                    4,
                ),
            ],
        ),
        (
            "Duration",
            [
                (
                    timeseries(
                        "Stage latency p50",
                        "Median seconds per page in each step.",
                        [
                            (
                                'stage_quantile:ingest_stage_seconds:histogram_quantile{quantile="0.5"}',
                                "{{stage}}",
                            )
                        ],
                        "s",
                    ),
                    8,
                ),
                (
                    timeseries(
                        "Stage latency p95",
                        "95th percentile seconds per page in each step.",
                        [
                            (
                                'stage_quantile:ingest_stage_seconds:histogram_quantile{quantile="0.95"}',
                                "{{stage}}",
                            )
                        ],
                        "s",
                    ),
                    8,
                ),
                (
                    timeseries(
                        "Stage latency p99",
                        "99th percentile seconds per page in each step.",
                        [
                            (
                                'stage_quantile:ingest_stage_seconds:histogram_quantile{quantile="0.99"}',
                                "{{stage}}",
                            )
                        ],
                        "s",
                    ),
                    8,
                ),
                (
                    timeseries(
                        "End to end",
                        "Seconds from a page's fetched_at to its event's publication "
                        "(includes the crawl-to-ingest delay).",
                        quantiles("quantile:ingest_end_to_end_seconds:histogram_quantile"),
                        "s",
                    ),
                    12,
                ),
                (
                    timeseries(
                        "Process-pool queue wait",
                        "Seconds a page waited for a free pool process; growth: CPU-bound.",
                        quantiles("quantile:ingest_pool_queue_seconds:histogram_quantile"),
                        "s",
                    ),
                    12,
                ),
            ],
        ),
        (
            "Lag",
            [
                (
                    timeseries(
                        "Consumer lag by partition",
                        "Log-end offset minus the group's committed offset, polled by the worker.",
                        [
                            (
                                "max by (topic, partition) (ingest_consumer_lag_messages)",
                                "{{topic}}/{{partition}}",
                            )
                        ],
                        "short",
                        stack=True,
                    ),
                    12,
                ),
                (
                    timeseries(
                        "Oldest unprocessed page",
                        "Seconds since the oldest page in flight (consumed, not yet fully processed) "
                        "was produced, per worker.",
                        [(f"ingest_oldest_unprocessed_age_seconds{{{JOB}}}", "{{instance}}")],
                        "s",
                    ),
                    8,
                ),
                (
                    stat(
                        "Lag poll errors (15m)",
                        "Failed lag polls; while they fail the lag panel shows stale values.",
                        "sum(increase(ingest_consumer_lag_poll_errors_total[15m]))",
                        "short",
                        [(1, "orange"), (10, "red")],
                    ),
                    4,
                ),
            ],
        ),
        (
            "Dedup and clusters",
            [
                (
                    timeseries(
                        "Dedup ratio",
                        "Share of pages recognised as copies of an earlier article (5m).",
                        [("ingest:dedup:ratio_rate5m", "duplicates / (articles + duplicates)")],
                        "percentunit",
                    ),
                    8,
                ),
                (
                    timeseries(
                        "Cluster size when a copy arrives",
                        "Copies a story had when a new copy arrived (syndication cluster size).",
                        quantiles("quantile:ingest_cluster_copies:histogram_quantile")
                        + [("ingest:cluster_copies:mean_rate5m", "mean")],
                        "short",
                    ),
                    8,
                ),
                (
                    timeseries(
                        "Window expiries",
                        "Dedup entries dropped after the dedup window, per second.",
                        [(f"sum(rate(ingest_dedup_expired_total[{rate}]))", "expired")],
                        "reqps",
                    ),
                    8,
                ),
                (
                    timeseries(
                        "Dedup entries",
                        "Articles held in the dedup window, per worker.",
                        [(f"ingest_dedup_entries{{{JOB}}}", "{{instance}}")],
                        "short",
                    ),
                    8,
                ),
                (
                    timeseries(
                        "Dedup state bytes",
                        "Bytes of dedup state (keys and values), per worker.",
                        [(f"ingest_dedup_state_bytes{{{JOB}}}", "{{instance}}")],
                        "bytes",
                    ),
                    8,
                ),
                (
                    timeseries(
                        "Dedup bytes per article",
                        "Dedup state bytes per indexed article; growth means fatter fingerprints.",
                        [(f"ingest_dedup_state_bytes_per_article{{{JOB}}}", "{{instance}}")],
                        "bytes",
                    ),
                    8,
                ),
            ],
        ),
        (
            "Entities",
            [
                (
                    timeseries(
                        "Entities by label",
                        "Entities tagged in published articles per second, by label.",
                        [(f"sum by (label) (rate(ingest_entities_total[{rate}]))", "{{label}}")],
                        "reqps",
                        stack=True,
                    ),
                    24,
                ),
            ],
        ),
        (
            "Process",
            [
                (
                    timeseries(
                        "CPU",
                        "CPU seconds per second of the worker's main process and of its step pool.",
                        [
                            (f"rate(process_cpu_seconds_total{{{JOB}}}[{rate}])", "main {{instance}}"),
                            (f"rate(ingest_child_cpu_seconds_total{{{JOB}}}[{rate}])", "pool {{instance}}"),
                        ],
                        "percentunit",
                    ),
                    6,
                ),
                (
                    timeseries(
                        "Resident memory",
                        "Resident set size of the worker's main process and of its step pool.",
                        [
                            (f"process_resident_memory_bytes{{{JOB}}}", "main {{instance}}"),
                            (f"ingest_child_resident_memory_bytes{{{JOB}}}", "pool {{instance}}"),
                        ],
                        "bytes",
                    ),
                    6,
                ),
                (
                    timeseries(
                        "Rebalances",
                        "Consumer-group rebalances and the share of time spent rebalancing.",
                        [
                            (f"sum(increase(ingest_rebalances_total[{rate}]))", "rebalances"),
                            (
                                f"sum(rate(ingest_rebalance_seconds_total[{rate}]))",
                                "seconds rebalancing per second",
                            ),
                        ],
                        "short",
                    ),
                    6,
                ),
                (
                    timeseries(
                        "Workers up",
                        "Scrape health and build version of each worker.",
                        [
                            (f"up{{{JOB}}}", "{{instance}} up"),
                            (
                                f"count by (version) (ingest_build_info{{{JOB}}})",
                                "version {{version}}",
                            ),
                        ],
                        "short",
                    ),
                    6,
                ),
            ],
        ),
    ]


def dashboard() -> dict[str, Any]:
    """The whole dashboard as a JSON-ready dict, with grid positions assigned."""
    panels: list[Panel] = []
    y = 0
    next_id = 1
    for title, items in rows():
        panels.append(
            {
                "type": "row",
                "title": title,
                "id": next_id,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        next_id += 1
        y += 1
        x = 0
        for panel, width in items:
            if x + width > 24:
                x, y = 0, y + 8
            panel["id"] = next_id
            panel["gridPos"] = {"h": 8, "w": width, "x": x, "y": y}
            panels.append(panel)
            next_id += 1
            x += width
        y += 8
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
        "panels": panels,
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
