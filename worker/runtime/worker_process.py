"""Start `ingest-worker run` as a child process: used by `demo` and by the integration tests."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from worker.kafka.embedded import stop_process_group
from worker.settings import Settings, child_environment


class WorkerProcess:
    """`with WorkerProcess(settings, log_path) as worker:` runs one worker until the block exits."""

    def __init__(self, settings: Settings, log_path: Path | str) -> None:
        self.settings = settings
        self.log_path = Path(log_path)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def metrics_url(self) -> str:
        """Where this worker serves Prometheus metrics."""
        return f"http://127.0.0.1:{self.settings.metrics_port}/metrics"

    def start(self) -> WorkerProcess:
        """Start the worker; returns once its HTTP port answers."""
        env = child_environment(self.settings)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "worker", "run"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Wait until the worker's HTTP port answers /healthz."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"the worker exited at start-up:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                url = f"http://127.0.0.1:{self.settings.metrics_port}/healthz"
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return
            time.sleep(0.2)
        raise RuntimeError(f"the worker did not answer within {timeout:g} s:\n{self.log_tail()}")

    def stop(self, kill: bool = False) -> None:
        """Stop the worker: SIGTERM and wait (graceful), or SIGKILL at once when `kill`."""
        process, self.process = self.process, None
        stop_process_group(process, grace_seconds=30, kill=kill)

    def log_tail(self, limit: int = 6000) -> str:
        """The end of the worker's log."""
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
