"""End-to-end throughput and latency of `ingest-worker run` on the embedded broker.

    python bench/worker_throughput.py --pages PAGES.jsonl[.gz] [--workers-per-process N] [--fetch-wait-ms MS]

Starts the embedded broker and one worker, produces every page at once, and reads the output
topics until every page is accounted for. Prints pages/s and the latency from produce to the
event's arrival (p50/p95), plus the worker's own per-stage medians from `/metrics`.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

import orjson

from worker.kafka.clients import consume, produce
from worker.kafka.embedded import EmbeddedBroker, free_port
from worker.kafka.topics import ensure_topics
from worker.runtime.worker_process import WorkerProcess
from worker.settings import Settings


def read_pages(path: str) -> list[bytes]:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as handle:
        return [line.strip() for line in handle if line.strip()]


async def measure(settings: Settings, pages: list[bytes]) -> tuple[float, list[float]]:
    outputs = [settings.articles_topic, settings.duplicates_topic, settings.dead_letter_topic]
    sent_at: dict[str, float] = {}
    messages = []
    for page in pages:
        url = orjson.loads(page).get("url", "")
        messages.append((url.encode(), page))
    events = consume(settings, outputs, from_beginning=True, idle_timeout=300)
    started = time.perf_counter()
    for key, _ in messages:
        sent_at[key.decode()] = time.perf_counter()
    await produce(settings, settings.input_topic, messages)
    latencies: list[float] = []
    accounted: set[str] = set()
    async for _, _, value in events:
        event = orjson.loads(value)
        url = event.get("url") or ""
        if url in sent_at and url not in accounted:
            accounted.add(url)
            latencies.append(time.perf_counter() - sent_at[url])
        if len(accounted) >= len(sent_at):
            break
    await events.aclose()
    return time.perf_counter() - started, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", required=True)
    parser.add_argument("--pool", type=int, default=0, help="process-pool size (0 = one per CPU)")
    parser.add_argument("--fetch-wait-ms", type=int, default=10)
    args = parser.parse_args()
    pages = read_pages(args.pages)
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        settings = Settings().with_overrides(
            broker=broker.url,
            app_id="bench",
            fetch_wait_ms=args.fetch_wait_ms,
            metrics_port=free_port(),
            data_dir=tmp,
            topic_partitions=2,
            session_timeout_seconds=6.0,
            workers=args.pool,
        )
        asyncio.run(ensure_topics(settings))
        with WorkerProcess(settings, Path(tmp) / "worker.log") as worker:
            # One page first, so start-up (group join, model loading) is not counted.
            asyncio.run(measure(settings, pages[:1]))
            elapsed, latencies = asyncio.run(measure(settings, pages[1:]))
            with urllib.request.urlopen(worker.metrics_url) as response:
                exposition = response.read().decode()
    latencies.sort()
    print(
        f"pages {len(latencies)} in {elapsed:.1f} s: {len(latencies) / elapsed:.1f} pages/s "
        f"(pool {settings.pool_size}, fetch wait {args.fetch_wait_ms} ms)"
    )
    print(
        f"latency produce->event p50 {statistics.median(latencies):.2f} s  "
        f"p95 {latencies[int(0.95 * (len(latencies) - 1))]:.2f} s"
    )
    for line in exposition.splitlines():
        if line.startswith("ingest_stage_seconds_sum") or line.startswith("ingest_stage_seconds_count"):
            print(" ", line)


if __name__ == "__main__":
    main()
