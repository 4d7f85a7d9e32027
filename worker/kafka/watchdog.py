"""The worker's own probe of the broker: when it stays unusable, stop, so the platform restarts us.

Faust and aiokafka retry a lost broker forever, logging as they go; a worker in that state takes
no pages and says nothing useful. Every few seconds the watchdog connects the way every client
does (TLS and SASL included) and asks for metadata; once that has failed for
`INGEST_BROKER_UNUSABLE_SECONDS` it stops the worker with the reason and a non-zero exit. A broker
that pauses for less than that (a restart, a stall) only costs the pages time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from worker.errors import BrokerUnavailable
from worker.kafka.connection import check_broker
from worker.settings import Settings

PROBE_INTERVAL_SECONDS = 5.0
PROBE_TIMEOUT_SECONDS = 10.0


async def watch_broker(settings: Settings, stop: Callable[[str], None]) -> None:
    """Probe the broker until it has been unusable for `settings.broker_unusable_seconds`, then `stop`."""
    failing_since: float | None = None
    while True:
        await asyncio.sleep(PROBE_INTERVAL_SECONDS)
        try:
            await check_broker(settings, timeout=PROBE_TIMEOUT_SECONDS)
        except BrokerUnavailable as exc:
            now = time.monotonic()
            failing_since = failing_since or now
            if now - failing_since >= settings.broker_unusable_seconds:
                stop(f"the broker has been unusable for {now - failing_since:.0f} s: {exc}")
                return
        else:
            failing_since = None
