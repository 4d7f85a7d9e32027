"""CPU and memory of the worker's child processes (the step pool), for Prometheus.

The standard process collector sees only the main process, while cleaning and tagging run in
pool processes (children of a forkserver, so grandchildren of the worker). This collector walks
/proc once per scrape and sums over every descendant. Linux only; elsewhere it reports nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

PROC = Path("/proc")


def _stat(pid: str) -> tuple[int, float, int] | None:
    """(parent pid, CPU seconds, resident bytes) of one process, or None if it is gone."""
    try:
        raw = (PROC / pid / "stat").read_text()
        pages = int((PROC / pid / "statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    # The command name may hold spaces and parentheses; the fields after the last ')' do not.
    fields = raw[raw.rindex(")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks, pages * os.sysconf("SC_PAGE_SIZE")


def descendants_usage(root: int) -> tuple[int, float, int]:
    """(number of processes, CPU seconds, resident bytes) summed over every descendant of `root`."""
    stats = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            found = _stat(entry.name)
            if found is not None:
                stats[int(entry.name)] = found
    children: dict[int, list[int]] = {}
    for pid, (parent, _, _) in stats.items():
        children.setdefault(parent, []).append(pid)
    count, cpu, rss = 0, 0.0, 0
    pending = list(children.get(root, []))
    while pending:
        pid = pending.pop()
        count += 1
        cpu += stats[pid][1]
        rss += stats[pid][2]
        pending.extend(children.get(pid, []))
    return count, cpu, rss


class ChildProcessCollector(Collector):
    """`ingest_child_processes`, `ingest_child_cpu_seconds_total`, `ingest_child_resident_memory_bytes`."""

    def __init__(self, root: int | None = None) -> None:
        self.root = root if root is not None else os.getpid()

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        """Sum the worker's descendants at scrape time."""
        if not PROC.is_dir():
            return
        count, cpu, rss = descendants_usage(self.root)
        yield GaugeMetricFamily("ingest_child_processes", "Child processes of the worker (step pool)", value=count)
        # A pool process that is replaced takes its CPU time with it, so this total can step down.
        yield CounterMetricFamily(
            "ingest_child_cpu_seconds", "CPU seconds used by the worker's live child processes", value=cpu
        )
        yield GaugeMetricFamily(
            "ingest_child_resident_memory_bytes", "Resident memory of the worker's child processes", value=rss
        )
