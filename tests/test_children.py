"""The child-process collector sums CPU and memory over the worker's descendants."""

from __future__ import annotations

import os
import select
import subprocess
import sys
from typing import IO

from prometheus_client import CollectorRegistry

from worker.runtime.children import ChildProcessCollector, descendants_usage


def _wait_for_line(stream: IO[bytes], seconds: float) -> bytes:
    """The next line on `stream`, failing the test if none comes within `seconds`."""
    readable, _, _ = select.select([stream], [], [], seconds)
    assert readable, f"no line within {seconds} s"
    return stream.readline()


def test_descendants_include_grandchildren():
    # A child that starts a grandchild: the grandchild counts too. The grandchild says "ready" on
    # the inherited pipe once its interpreter runs, so its RSS is that of a started Python, not of
    # a process caught between fork and exec (the machine may be slow to get there: allow 30 s).
    grandchild = "import time; print('ready', flush=True); time.sleep(300)"
    code = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {grandchild!r}]); time.sleep(300)"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None
        assert _wait_for_line(child.stdout, 30) == b"ready\n"
        count, cpu, rss = descendants_usage(child.pid)
        assert count == 1 and rss > 1_000_000 and cpu >= 0
        total, _, total_rss = descendants_usage(os.getpid())
        assert total >= 2 and total_rss > rss
    finally:
        subprocess.run(["pkill", "-P", str(child.pid)])
        child.kill()
        child.wait()
        child.stdout.close()


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
