"""What fills up as the dedup state grows: the data volume, and the memory the pod may use.

Read at scrape time: `ingest_data_volume_size_bytes` and `ingest_data_volume_free_bytes` of the
file system that holds `INGEST_DATA_DIR` (the dedup table's RocksDB files), `ingest_data_dir_bytes`
of the files under it, and `ingest_memory_limit_bytes`, the memory the worker may use (its
cgroup's limit, else the machine's memory), for the alerts that fire before either fills.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

CGROUP_MEMORY_LIMITS = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))
NO_LIMIT = 1 << 60  # cgroup v1 writes a huge number for "no limit"


MEMINFO = Path("/proc/meminfo")


def memory_limit() -> int | None:
    """The memory the process may use in bytes: its cgroup's limit, else the machine's memory
    (None when neither can be read)."""
    for path in CGROUP_MEMORY_LIMITS:
        try:
            raw = path.read_text().strip()
        except OSError:
            continue
        if raw.isdigit() and int(raw) < NO_LIMIT:
            return int(raw)
        break  # "max": no limit of its own
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def tree_bytes(root: Path) -> int:
    """Bytes of the regular files under `root` (0 when it does not exist)."""
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                continue  # removed while walking (a RocksDB compaction)
    return total


class DataVolumeCollector(Collector):
    """The data directory's volume and size, and the memory limit, at each scrape."""

    def __init__(self, data_dir: str) -> None:
        self.data_dir = Path(data_dir)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The gauges (the volume's only once the directory exists)."""
        try:
            stats = os.statvfs(self.data_dir)
        except OSError:
            stats = None
        if stats is not None:
            yield GaugeMetricFamily("ingest_data_volume_size_bytes", "Size of the file system holding the data dir",
                                    value=stats.f_blocks * stats.f_frsize)
            yield GaugeMetricFamily("ingest_data_volume_free_bytes",
                                    "Bytes the worker can still write on the data dir's file system",
                                    value=stats.f_bavail * stats.f_frsize)
        yield GaugeMetricFamily("ingest_data_dir_bytes", "Bytes of the files under the data dir (the dedup table)",
                                value=tree_bytes(self.data_dir))
        limit = memory_limit()
        if limit is not None:
            yield GaugeMetricFamily("ingest_memory_limit_bytes",
                                    "Memory the worker may use: its cgroup's limit, else the machine's", value=limit)
