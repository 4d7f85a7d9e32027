#!/usr/bin/env python3
"""The dedup owner at scale: a real worker whose dedup state holds N articles.

    python bench/dedup_scale.py --articles N [--json FILE] [--copies 0.25] [--probes 5000] [--seed 7]

1. **Fill.** Synthetic fingerprints shaped like real ones (`bench/dedup_speed.py`: bottom-k
   sketches of 300-2,000 distinct shingles; a quarter of the pages copies of a recent story,
   exact or cut with junk of their own), one day of pages, decided by `DedupIndex` - the owner's
   own decision and write code - over a mapping that keeps every write in order. Those writes are
   produced, in that order, to the dedup table's changelog topic on the embedded broker: the
   records an owner that decided the same pages would have written (the bench does not clean,
   fingerprint and tag N pages, which would take days on two cores).
2. **Owner.** `ingest-worker run` (default settings on the embedded broker) starts on an empty data
   directory and restores the table. Probes are candidate messages (near copies of stored stories,
   each under a new url, so each is a real decision that reads and writes the state) produced to
   the owner's hop; a decision is seen as its `duplicate.v1` event.
3. **Figures.** Owner RSS once restored and after the rate probes; decisions per second: a burst
   of `--probes` candidates, wall clock and per CPU second of the owner's main process (which does
   nothing else then); from SIGKILL of the owner (its whole process group) to its first decision
   again: (a) restarted on the same data directory, (b) a standby in the group takes over, (c)
   restarted on an empty data directory (from the changelog alone); changelog records and bytes
   per article (what the fill produced, keys and values).

Load matters on a shared machine: the load average is printed at the start and the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import deque
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rocksdict

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402

from worker.document import Article, Origin, Prepared  # noqa: E402
from worker.kafka import dedup_store  # noqa: E402
from worker.kafka.agents import DECIDE_BATCH  # noqa: E402
from worker.kafka.dedup_store import STANDBY_BUFFER, LocalState, table_path  # noqa: E402
from worker.kafka.embedded import EmbeddedBroker, free_port, isolated_settings  # noqa: E402
from worker.kafka.topics import candidates_topic, dedup_changelog_topic, ensure_topics  # noqa: E402
from worker.runtime.worker_process import WorkerProcess  # noqa: E402
from worker.settings import Settings  # noqa: E402
from worker.steps.dedup.index import DedupIndex, Fingerprint, article_id  # noqa: E402
from worker.steps.dedup.postings import PackedPostings  # noqa: E402
from worker.steps.dedup.shingles import SKETCH_SIZE  # noqa: E402

SPACE = 1 << 32
HIDDEN = 4 * SKETCH_SIZE  # hashes drawn per story, so a cut copy still fills a full sketch
RECENT = 5_000  # copies copy one of the last stories (wire copies follow their story within hours)
START = 1_736_596_800.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
PRODUCE_CHUNK = 20_000
COLD_RESTORE_TIMEOUT = 6 * 3600.0  # 1,000,000 pages took over half an hour on the loaded machine


# -- synthetic fingerprints -----------------------------------------------------------------------


def smallest(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """The k smallest of n uniform 32-bit hashes, drawn directly (order statistics)."""
    gaps = rng.exponential(1.0, min(n, k)) / n
    return np.minimum(np.cumsum(gaps) * SPACE, SPACE - 1).astype(np.uint32)


@dataclass(slots=True)
class Story:
    hidden: np.ndarray  # HIDDEN smallest shingle hashes
    shingles: int
    content_hash: str


class Stream:
    """Pages in stream order: new stories, and copies (exact or cut + junk) of recent ones."""

    def __init__(self, seed: int, copy_share: float) -> None:
        self.rng = random.Random(seed)
        self.np = np.random.default_rng(seed)
        self.copy_share = copy_share
        self.recent: deque[Story] = deque(maxlen=RECENT)
        self.stories = 0

    def content(self) -> str:
        return self.rng.randbytes(32).hex()

    def story(self) -> tuple[Story, Fingerprint]:
        shingles = self.rng.randint(300, 2000)
        story = Story(smallest(self.np, shingles, HIDDEN), shingles, self.content())
        self.recent.append(story)
        self.stories += 1
        return story, Fingerprint(story.content_hash, tuple(story.hidden[:SKETCH_SIZE].tolist()), shingles)

    def copy(self, story: Story, exact_share: float = 0.2) -> Fingerprint:
        if self.rng.random() < exact_share:
            return Fingerprint(story.content_hash, tuple(story.hidden[:SKETCH_SIZE].tolist()), story.shingles)
        keep = self.rng.uniform(0.3, 1.0)
        junk = int(story.shingles * keep * self.rng.uniform(0.0, 0.4))
        kept = story.hidden[self.np.random(len(story.hidden)) < keep]
        if junk:
            kept = np.concatenate([kept, smallest(self.np, junk, HIDDEN)])
        sketch = np.unique(kept)[:SKETCH_SIZE]
        return Fingerprint(self.content(), tuple(sketch.tolist()), int(story.shingles * keep) + junk)

    def pages(self, count: int) -> Iterator[tuple[str, Fingerprint, float]]:
        for i in range(count):
            when = START + i * 86400.0 / count  # one day of pages
            if self.recent and self.rng.random() < self.copy_share:
                fp = self.copy(self.recent[self.rng.randrange(len(self.recent))])
                yield f"https://copy{i % 997}.example/{i}", fp, when
            else:
                _, fp = self.story()
                yield f"https://site{i % 500}.example/story/{i}", fp, when


class Recording(MutableMapping[str, bytes]):
    """A dict that keeps every write (a changelog record: key, value or None) in order."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.writes: list[tuple[bytes, bytes | None]] = []

    def __getitem__(self, key: str) -> bytes:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def __setitem__(self, key: str, value: bytes) -> None:
        self.data[key] = value
        if self.writes is not None:
            self.writes.append((json.dumps(key).encode(), value))  # Faust's key serializer for `str`

    def __delitem__(self, key: str) -> None:
        del self.data[key]
        if self.writes is not None:
            self.writes.append((json.dumps(key).encode(), None))

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


async def create_changelog(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.broker.removeprefix("kafka://"))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(dedup_changelog_topic(settings), 1, 1)])
        await admin.create_topics([NewTopic(candidates_topic(settings), 1, 1)])
    finally:
        await admin.close()


async def produce_records(settings: Settings, records: list[tuple[bytes, bytes | None]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.broker.removeprefix("kafka://"), linger_ms=20, max_batch_size=1 << 20,
        max_request_size=8 << 20, acks=1,
    )
    await producer.start()
    topic = dedup_changelog_topic(settings)
    try:
        for start in range(0, len(records), PRODUCE_CHUNK):
            futures = [await producer.send(topic, key=k, value=v, partition=0)
                       for k, v in records[start : start + PRODUCE_CHUNK]]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()


def fill(settings: Settings, articles: int, stream: Stream, say: Any) -> tuple[dict[str, Any], DedupIndex]:
    """Decide `articles` pages over a recording mapping, produce its writes as the changelog."""
    state = Recording()
    index = DedupIndex(state, window_seconds=settings.dedup_window_days * 86400)
    asyncio.run(create_changelog(settings))
    started = time.perf_counter()
    records = record_bytes = 0
    last = START
    pending = 0
    for url, fp, when in stream.pages(articles):
        index.decide(url, fp, when)
        last = when
        pending += 1
        if len(state.writes) >= 200_000:
            records += len(state.writes)
            record_bytes += sum(len(k) + len(v or b"") for k, v in state.writes)
            asyncio.run(produce_records(settings, state.writes))
            state.writes = []
            say(f"  filled {pending:,} pages, {records:,} changelog records ({time.perf_counter() - started:.0f} s)")
    records += len(state.writes)
    record_bytes += sum(len(k) + len(v or b"") for k, v in state.writes)
    asyncio.run(produce_records(settings, state.writes))
    state.writes = []
    table_bytes = index.state_bytes()
    figures = {
        "fill_seconds": round(time.perf_counter() - started, 1),
        "stories": stream.stories,
        "indexed_articles": index.roots(),
        "state_keys": len(state),
        "state_bytes": table_bytes,
        "changelog_records": records,
        "changelog_bytes": record_bytes,
        "changelog_records_per_article": round(records / articles, 2),
        "changelog_bytes_per_article": round(record_bytes / articles, 1),
        "state_bytes_per_article": round(table_bytes / articles, 1),
        "last_seen_at": last,
    }
    return figures, index


class Counting(dict[str, bytes]):
    """A dict that counts its writes as changelog records (the key as Faust serializes it, 2 quotes more)."""

    records = 0
    record_bytes = 0

    def __setitem__(self, key: str, value: bytes) -> None:
        super().__setitem__(key, value)
        self.records += 1
        self.record_bytes += len(key) + 2 + len(value)

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self.records += 1
        self.record_bytes += len(key) + 2

    def pop(self, key: str, *default: Any) -> Any:
        if key in self:
            self.records += 1
            self.record_bytes += len(key) + 2
        return super().pop(key, *default)


def write_table(path: Path, state: dict[str, bytes], index: DedupIndex, cache_bytes: int,
                posting_keys: bool = False) -> None:
    """Write a decided state into a RocksDB table as the store keeps it: the facts, and the
    derived indexes `index` holds in memory for them (the ones the store's write path derives,
    `tests/test_dedup_store.py`; the postings as its snapshot file), in large batches without
    reading anything back. `posting_keys`: the postings as keys instead, as the code before
    the postings moved to memory kept them (which the store reads into its snapshot once)."""
    index.entries()  # the derived indexes brought up to date with `state` first
    derived = index._memory
    assert derived is not None
    local = LocalState(path, cache_bytes)
    batch = rocksdict.WriteBatch(raw_mode=True)

    def put(key: bytes, value: bytes) -> None:
        nonlocal batch
        batch.put(key, value)
        if len(batch) >= 50_000:
            local.db.write(batch)
            batch = rocksdict.WriteBatch(raw_mode=True)

    for key, value in state.items():
        put(b'"' + key.encode("ascii") + b'"', value)
    packed = [(h, ids if isinstance(ids, bytes) else b"".join(sorted(ids))) for h, ids in derived._postings.items()]
    if posting_keys:
        for h, ids in packed:
            put(dedup_store.POSTING + dedup_store._HASH.pack(h), ids)
    else:
        dedup_store.write_snapshot(path / dedup_store.SNAPSHOT_FILE, PackedPostings.of(packed), 0)
    for hour, sids in derived._filed.pages.items():
        for sid in sids:
            put(dedup_store._hour_key(dedup_store.PAGE, hour) + sid, b"")
    for hour, sites in derived._filed.sites.items():
        for site in sites:
            put(dedup_store._hour_key(dedup_store.SITE, hour) + dedup_store._SITE.pack(site), b"")
    put(dedup_store.COUNTERS, dedup_store._COUNTERS.pack(derived.records, derived.roots, derived.size))
    local.db.write(batch)
    local.close()


def fill_local(settings: Settings, articles: int, stream: Stream, say: Any) -> dict[str, Any]:
    """Decide `articles` pages (over a dict), then write the state they leave into the owner's
    RocksDB table with its derived indexes (`write_table`): the table a worker that decided them
    would have left."""
    asyncio.run(create_changelog(settings))
    state = Counting()
    index = DedupIndex(state, window_seconds=settings.dedup_window_days * 86400)
    started = time.perf_counter()
    last = START
    for n, (url, fp, when) in enumerate(stream.pages(articles), start=1):
        index.decide(url, fp, when)
        last = when
        if n % 200_000 == 0:
            say(f"  decided {n:,} pages ({time.perf_counter() - started:.0f} s)")
    figures = {
        "fill": "local",
        "stories": stream.stories,
        "indexed_articles": index.roots(),
        "state_keys": len(state),
        "state_bytes": index.state_bytes(),
        "changelog_records": state.records,
        "changelog_bytes": state.record_bytes,
        "changelog_records_per_article": round(state.records / articles, 2),
        "changelog_bytes_per_article": round(state.record_bytes / articles, 1),
        "state_bytes_per_article": round(index.state_bytes() / articles, 1),
        "last_seen_at": last,
    }
    path = Path(settings.data_dir) / "v1" / "tables" / "dedup-state-0.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_table(path, state, index, settings.dedup_cache_mb * 1024 * 1024)
    del index
    figures["fill_seconds"] = round(time.perf_counter() - started, 1)
    return figures


def decision_rate(index: DedupIndex, prober: Prober, count: int) -> tuple[float, float]:
    """Decisions per second of CPU time of the owner's decision over `index`'s state (no Kafka),
    `DECIDE_BATCH` pages at a time as the worker's owner decides them (`DedupIndex.decide_many`):
    of the deciding thread, and of the whole process (with RocksDB's background flushes and
    compactions)."""
    pages = [prober.page() for _ in range(count)]
    thread, process = time.thread_time(), time.process_time()
    for at in range(0, count, DECIDE_BATCH):
        index.decide_many(pages[at : at + DECIDE_BATCH])
    return count / (time.thread_time() - thread), count / (time.process_time() - process)


# -- probes: candidates to the owner, decisions seen as duplicate events ----------------------------


def candidate(url: str, fp: Fingerprint, seen_at: float) -> bytes:
    article = Article(url=url, title="probe", text="probe", mode="html", source_domain="probe.example")
    return Prepared(article, fp.to_bytes(), article_id(url, fp.content_hash), seen_at, Origin("bench", 0, 0)).to_bytes()


class Watcher(threading.Thread):
    """Consumes the duplicates topic from its end; records when each probe url's decision shows."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.settings = settings
        self.seen: dict[str, float] = {}
        self.ready = threading.Event()
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        consumer = AIOKafkaConsumer(
            self.settings.duplicates_topic, f"{self.settings.app_id}-unique-articles", bootstrap_servers=self.settings.broker.removeprefix("kafka://"),
            auto_offset_reset="latest", fetch_max_wait_ms=10, enable_auto_commit=False, group_id=None,
        )
        await consumer.start()
        try:
            await consumer.seek_to_end()
            for tp in consumer.assignment():
                await consumer.position(tp)
            self.ready.set()
            while not self.stopping.is_set():
                batches = await consumer.getmany(timeout_ms=50, max_records=5000)
                now = time.monotonic()
                with self.lock:
                    for messages in batches.values():
                        for message in messages:
                            value = json.loads(message.value)
                            url = value["url"] if "url" in value else value["article"]["url"]
                            self.seen.setdefault(url, now)
        finally:
            await consumer.stop()

    def wait_for(self, urls: list[str], timeout: float) -> float | None:
        """Monotonic time the last of `urls` was decided, or None after `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if all(u in self.seen for u in urls):
                    return max(self.seen[u] for u in urls)
            time.sleep(0.005)
        return None


class Prober:
    """Near copies of stored stories under new urls, produced to the owner's hop."""

    def __init__(self, settings: Settings, stream: Stream, seen_at: float) -> None:
        self.settings = settings
        self.stream = stream
        self.seen_at = seen_at
        self.count = 0

    def page(self) -> tuple[str, Fingerprint, float]:
        """A near copy of a recent story under a new url."""
        self.count += 1
        story = self.stream.recent[self.stream.rng.randrange(len(self.stream.recent))]
        fp = self.stream.copy(story, exact_share=0.0)
        return f"https://probe.example/{self.count}", fp, self.seen_at + self.count * 0.01

    def make(self, n: int) -> list[tuple[str, bytes]]:
        return [(url, candidate(url, fp, when)) for url, fp, when in (self.page() for _ in range(n))]

    async def send(self, probes: list[tuple[str, bytes]]) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.settings.broker.removeprefix("kafka://"), linger_ms=5,
                                    max_batch_size=1 << 20, acks=1)
        await producer.start()
        try:
            futures = [await producer.send(candidates_topic(self.settings), key=url.encode(), value=value,
                                           partition=0) for url, value in probes]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()


def first_decision(prober: Prober, watcher: Watcher, since: float, timeout: float = 1800.0) -> float:
    """Send one probe now; seconds from `since` until its decision shows."""
    probes = prober.make(1)
    asyncio.run(prober.send(probes))
    seen = watcher.wait_for([probes[0][0]], timeout)
    if seen is None:
        raise RuntimeError(f"no decision within {timeout:g} s")
    return round(seen - since, 2)


# -- processes ------------------------------------------------------------------------------------


def stat(pid: int) -> tuple[float, int]:
    """(CPU seconds, RSS bytes) of a live process."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS, int(fields[21]) * PAGE


def dedup_stage(worker: WorkerProcess) -> tuple[float, float]:
    """(decisions, seconds in the decision step) so far, from the worker's stage histogram."""
    with urllib.request.urlopen(worker.metrics_url, timeout=10) as response:
        text = response.read().decode()
    count = total = 0.0
    for line in text.splitlines():
        if line.startswith('ingest_stage_seconds_count{stage="dedup"}'):
            count = float(line.split()[-1])
        elif line.startswith('ingest_stage_seconds_sum{stage="dedup"}'):
            total = float(line.split()[-1])
    return count, total


def kill(worker: WorkerProcess) -> float:
    """SIGKILL the worker's process group (the worker and its pool); the monotonic time of the kill."""
    assert worker.process is not None
    at = time.monotonic()
    os.killpg(worker.process.pid, signal.SIGKILL)
    worker.process.wait(timeout=30)
    worker.process = None
    return at


def start(settings: Settings, log: Path) -> WorkerProcess:
    worker = WorkerProcess(settings, log)
    return worker.start()


def wait_standby(owner: Settings, standby: Settings, timeout: float = 3600.0) -> float:
    """Seconds until the standby's local table holds the whole changelog (its offset is the
    changelog's last); without a local table (the memory store), until it is quiet."""
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        path = table_path(standby.data_dir)
        if path is None and getattr(standby, "dedup_store", "memory") == "memory":
            time.sleep(5.0)
            break
        if path is not None:
            end = asyncio.run(changelog_end(owner))
            state = LocalState(path, read_only=True)
            offset = state.offset()
            state.close()
            if offset is not None and offset >= end - 1 - STANDBY_BUFFER:  # it applies records in batches
                return time.monotonic() - started
        time.sleep(1.0)
    return time.monotonic() - started


async def changelog_end(settings: Settings) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.broker.removeprefix("kafka://"))
    await consumer.start()
    try:
        tp = TopicPartition(dedup_changelog_topic(settings), 0)
        return int((await consumer.end_offsets([tp]))[tp])
    finally:
        await consumer.stop()


def wait_quiet(pid: int, quiet_cpu: float = 0.1, timeout: float = 900.0) -> None:
    """Wait until the process uses under `quiet_cpu` CPU seconds over a second (caught up)."""
    deadline = time.monotonic() + timeout
    before = stat(pid)[0]
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = stat(pid)[0]
        if now - before < quiet_cpu:
            return
        before = now


def measure(args: argparse.Namespace, say: Any) -> dict[str, Any]:
    load_start = os.getloadavg()
    figures: dict[str, Any] = {"articles": args.articles, "copy_share": args.copies,
                               "load_average_start": [round(x, 2) for x in load_start]}
    tmp = Path(tempfile.mkdtemp(prefix="dedup-scale-"))
    workers: list[WorkerProcess] = []
    try:
        with EmbeddedBroker() as broker:
            prefix = f"scale_{uuid.uuid4().hex[:6]}"
            base = isolated_settings(broker.url, prefix, str(tmp / "owner"),
                                     log_level="INFO" if args.logs else Settings().log_level)
            asyncio.run(ensure_topics(base))
            stream = Stream(args.seed, args.copies)
            index: DedupIndex | None = None
            if args.fill == "local":
                say(f"fill: {args.articles:,} pages through DedupIndex into the owner's RocksDB table")
                figures.update(fill_local(base, args.articles, stream, say))
            else:
                say(f"fill: {args.articles:,} pages through DedupIndex, writes produced to the changelog")
                filled, index = fill(base, args.articles, stream, say)
                figures.update(filled)
            say(f"  {figures['changelog_records']:,} records, {figures['changelog_bytes']:,} bytes "
                f"({figures['changelog_records_per_article']} records, {figures['changelog_bytes_per_article']} B "
                f"an article); {figures['indexed_articles']:,} indexed; fill {figures['fill_seconds']} s")
            watcher = Watcher(base)
            watcher.start()
            watcher.ready.wait(30)
            prober = Prober(base, stream, figures["last_seen_at"])
            if index is not None:
                if isinstance(index.state, Recording):
                    index.state.writes = None  # type: ignore[assignment]  # nothing more is produced
                figures["decisions_per_second"] = figures["memory_decisions_per_second"] = round(
                    decision_rate(index, prober, args.probes)[0])
                say(f"decisions at that size: {figures['decisions_per_second']:,}/s of CPU time "
                    "(DedupIndex.decide over the state in a dict, one thread, no Kafka)")
                del index

            if args.fill == "local":
                say("the owner starts on its table (no changelog to replay)")
                key = "first_start_seconds"
            else:
                say("(c) the owner starts on an empty data directory: restore from the changelog alone")
                key = "cold_restore_seconds"
            started = time.monotonic()
            owner = start(base, tmp / "owner.log")
            workers.append(owner)
            figures[key] = first_decision(prober, watcher, started, timeout=COLD_RESTORE_TIMEOUT)
            say(f"  first decision {figures[key]} s after the start")
            assert owner.process is not None
            figures["owner_rss_mb"] = round(stat(owner.process.pid)[1] / 1e6, 1)
            say(f"  owner RSS {figures['owner_rss_mb']} MB")

            probes = prober.make(args.probes)
            decide_before = dedup_stage(owner)
            cpu_before = stat(owner.process.pid)[0]
            sent = time.monotonic()
            asyncio.run(prober.send(probes))
            done = watcher.wait_for([url for url, _ in probes], 1800)
            if done is None:
                raise RuntimeError("the rate probes were not all decided")
            cpu = stat(owner.process.pid)[0] - cpu_before
            decide_after = dedup_stage(owner)
            decided, decide_seconds = (a - b for a, b in zip(decide_after, decide_before, strict=True))
            figures["worker_decide_step_per_second"] = round(decided / decide_seconds) if decide_seconds else None
            figures["worker_decisions_per_second_wall"] = round(args.probes / (done - sent))
            figures["owner_cpu_ms_per_decision"] = round(1000 * cpu / args.probes, 3)
            figures["owner_rss_mb"] = max(figures["owner_rss_mb"], round(stat(owner.process.pid)[1] / 1e6, 1))
            say(f"  owner RSS {figures['owner_rss_mb']} MB; {args.probes:,} decisions in the worker: "
                f"{figures['worker_decide_step_per_second']:,}/s in its decision step, "
                f"{figures['worker_decisions_per_second_wall']:,}/s wall clock through the broker, "
                f"{figures['owner_cpu_ms_per_decision']} ms of the owner's CPU each")

            say("(a) SIGKILL the owner, restart it on the same data directory")
            wait_quiet(owner.process.pid)
            killed = kill(owner)
            owner = start(base, tmp / "owner.log")
            workers.append(owner)
            figures["restart_seconds"] = first_decision(prober, watcher, killed)
            say(f"  first decision {figures['restart_seconds']} s after the kill")

            say("(b) a standby follows the changelog; once it holds all of it, SIGKILL the owner")
            standby_settings = base.with_overrides(data_dir=str(tmp / "standby"), metrics_port=free_port())
            if table_path(base.data_dir) is not None:
                # The standby starts from a copy of the owner's volume (taken while the owner is
                # down) and follows the changelog from there: replaying N articles a second time
                # only to become a standby would double the bench's time.
                kill(owner)
                shutil.copytree(base.data_dir, standby_settings.data_dir)
                owner = start(base, tmp / "owner.log")
                workers.append(owner)
                first_decision(prober, watcher, time.monotonic())
            standby = start(standby_settings, tmp / "standby.log")
            workers.append(standby)
            assert standby.process is not None and owner.process is not None
            first_decision(prober, watcher, time.monotonic())  # the group has settled
            caught_up = wait_standby(base, standby_settings)
            wait_quiet(owner.process.pid)
            figures["standby_rss_mb"] = round(stat(standby.process.pid)[1] / 1e6, 1)
            say(f"  standby caught up in {caught_up:.1f} s; RSS {figures['standby_rss_mb']} MB")
            killed = kill(owner)
            figures["takeover_seconds"] = first_decision(prober, watcher, killed)
            say(f"  first decision {figures['takeover_seconds']} s after the kill")
            assert standby.process is not None
            figures["new_owner_rss_mb"] = round(stat(standby.process.pid)[1] / 1e6, 1)
            watcher.stopping.set()
            wait_quiet(standby.process.pid)
            standby.stop(kill=True)
            figures["data_dir_bytes"] = sum(f.stat().st_size for f in Path(standby_settings.data_dir).rglob("*")
                                            if f.is_file())
            local = table_path(standby_settings.data_dir)
            if local is not None:
                state = LocalState(local, Settings().dedup_cache_mb * 1024 * 1024)
                on_disk = DedupIndex(state, window_seconds=base.dedup_window_days * 86400, derived=state.derived)
                decision_rate(on_disk, prober, min(2_000, args.probes))  # the block cache warms up
                thread, process = decision_rate(on_disk, prober, args.probes)
                figures["decisions_per_second"] = round(thread)
                figures["decisions_per_second_process_cpu"] = round(process)
                state.close()
                say(f"decisions at that size: {figures['decisions_per_second']:,}/s of the deciding thread's CPU "
                    f"time, {figures['decisions_per_second_process_cpu']:,}/s of the process's (RocksDB's "
                    "background threads too) (DedupIndex.decide_many over the new owner's RocksDB state, no Kafka)")
    finally:
        for worker in workers:
            if worker.process is not None:
                worker.stop(kill=True)
        if args.logs:
            Path(args.logs).mkdir(parents=True, exist_ok=True)
            for log in tmp.glob("*.log"):
                shutil.copy(log, Path(args.logs) / log.name)
        shutil.rmtree(tmp, ignore_errors=True)
    figures["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=100_000, help="pages in the dedup window")
    parser.add_argument("--copies", type=float, default=0.25, help="share of pages that copy a recent story")
    parser.add_argument("--probes", type=int, default=5_000, help="decisions timed at that size")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--fill", choices=("changelog", "local"), default="changelog",
                        help="changelog: produce the writes to the changelog, the owner restores them (a cold "
                        "restore, measured); local: write them into the owner's RocksDB table (no cold restore: "
                        "for sizes whose restore takes hours on this machine)")
    parser.add_argument("--logs", help="keep the workers' logs (INFO) in this directory")
    args = parser.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a stopped bench stops its workers too

    def say(line: str) -> None:
        print(line, flush=True)

    figures = measure(args, say)
    say(json.dumps(figures, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
