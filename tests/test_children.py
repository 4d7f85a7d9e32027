"""The child-process collector sums CPU and memory over the worker's descendants."""

from __future__ import annotations

import os
import subprocess
import sys

from prometheus_client import CollectorRegistry

from worker.runtime.children import ChildProcessCollector, descendants_usage


def test_descendants_include_grandchildren():
    # A child that starts a grandchild: the grandchild counts too.
    code = (
        "import subprocess, sys, time; "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']); time.sleep(30)"
    )
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        for _ in range(100):
            count, cpu, rss = descendants_usage(child.pid)
            if count >= 1:
                break
            subprocess.run(["sleep", "0.05"])
        assert count == 1 and rss > 1_000_000 and cpu >= 0
        total, _, total_rss = descendants_usage(os.getpid())
        assert total >= 2 and total_rss > rss
    finally:
        subprocess.run(["pkill", "-P", str(child.pid)])
        child.kill()
        child.wait()


def test_collector_exposes_three_series():
    registry = CollectorRegistry()
    registry.register(ChildProcessCollector())
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert registry.get_sample_value("ingest_child_processes") >= 1
        assert registry.get_sample_value("ingest_child_resident_memory_bytes") > 0
        assert registry.get_sample_value("ingest_child_cpu_seconds_total") >= 0
    finally:
        child.kill()
        child.wait()
