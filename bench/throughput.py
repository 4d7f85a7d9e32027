"""The whole worker against the naive composition, on the same pages, in one run.

    pip install -e '.[bench]'
    python bench/throughput.py --pages PAGES.jsonl[.gz] [--scaling] [--json OUT]

Prints, all measured in this run (so a busy machine slows every side alike):

1. naive: trafilatura + exact hash + MinHash LSH (datasketch) + spaCy `en_core_web_sm` as loaded
   by default, in one process, entities only on unique articles; pages/s and CPU per page;
2. stage costs: the worker's own stages run inline over the same pages, CPU seconds per page of
   each (decode, clean, dedup, entities, publish), their sum, and the rate that sum allows on
   this machine's cores (the stage-cost ceiling);
3. worker: `ingest-worker run` on its default settings (pool of one process per CPU, default
   partitions) against the embedded broker; every page produced at once; pages/s, the ratio to
   the naive composition per core, the share of the ceiling reached, the CPU each process used
   (worker main, pool processes, broker) and, measured for a few seconds before the pages are
   sent, what the worker main and the broker use with nothing to do (fetch polling), RSS of
   the worker and of each pool process, and the per-stage sums from its `/metrics`;
4. latency: a fresh worker fed at a steady half of the measured maximum rate; p50/p95/p99/max
   from produce to the event on its output topic;
5. with `--scaling`: pool of 1, and two workers (pool of 1 each) in one consumer group.

Each worker phase uses fresh topics and a fresh consumer group, so dedup state starts empty.
The embedded broker answers a waiting fetch only when the wait runs out, so every client here
(the worker included) uses a fetch wait of `--fetch-wait-ms` (10, as the tests and `demo` do);
against Kafka the default 100 ms wait ends as soon as data arrives.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import os
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from worker.document import Origin
from worker.kafka.clients import consume
from worker.kafka.connection import client_options, start_client
from worker.kafka.embedded import EmbeddedBroker, free_port
from worker.kafka.topics import dedup_changelog_topic, ensure_topics
from worker.runtime.metrics import Metrics
from worker.runtime.worker_process import WorkerProcess
from worker.settings import Settings
from worker.stages import Stages
from worker.steps.dedup import DedupIndex

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
IDLE_SECONDS = 3.0  # how long each phase measures the worker's and broker's CPU with no page in flight
CORES = os.cpu_count() or 1


def read_pages(path: str) -> list[bytes]:
    """Raw page events, one JSON object a line (`.gz` fine)."""
    opener: Callable[..., Any] = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as handle:
        return [line.strip() for line in handle if line.strip()]


# -- the naive composition ------------------------------------------------------------------------


def naive(pages: Sequence[bytes]) -> dict[str, float]:
    """trafilatura + exact hash + MinHash LSH + spaCy sm (default pipeline) in this process."""
    import spacy
    import trafilatura
    from datasketch import MinHash, MinHashLSH

    from worker.steps.entities.model import _model_location

    nlp = spacy.load(_model_location("en_core_web_sm"))
    lsh = MinHashLSH(threshold=0.5, num_perm=128)
    hashes: set[str] = set()
    unique = 0

    def one(number: int, value: bytes) -> None:
        nonlocal unique
        raw = orjson.loads(value)
        text = trafilatura.extract(raw["html"]) if raw.get("html") else raw.get("text")
        if not text:
            return
        digest = hashlib.sha256(text.encode()).hexdigest()
        if digest in hashes:
            return
        hashes.add(digest)
        words = text.lower().split()
        sketch = MinHash(num_perm=128)
        sketch.update_batch([" ".join(words[i:i + 5]).encode() for i in range(max(1, len(words) - 4))])
        if lsh.query(sketch):
            return
        lsh.insert(str(number), sketch)
        unique += 1
        [(ent.text, ent.label_) for ent in nlp(text).ents]

    one(-1, pages[0])  # warm caches, not counted
    lsh, hashes, unique = MinHashLSH(threshold=0.5, num_perm=128), set(), 0
    cpu, wall = time.process_time(), time.perf_counter()
    for number, value in enumerate(pages):
        one(number, value)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"pages_per_s": len(pages) / wall, "cpu_ms_per_page": 1000 * cpu / len(pages), "unique": unique,
            "cores_used": cpu / wall}


# -- the worker's stages inline -------------------------------------------------------------------


class CpuCompute:
    """Runs a step here and adds its CPU time to `spent[step]`."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)

    async def __call__(self, fn: Callable[..., Any], *args: Any, step: str, timeout: float) -> Any:
        started = time.process_time()
        try:
            return fn(*args)
        finally:
            self.spent[step] += time.process_time() - started


def stage_costs(pages: Sequence[bytes], settings: Settings) -> dict[str, float]:
    """CPU seconds per page of each stage, the stage handlers run inline over `pages`."""
    from worker.cpu import warm_up

    warm_up(settings.spacy_model)
    compute = CpuCompute()
    stages = Stages(settings, DedupIndex({}, window_seconds=settings.dedup_window_days * 86400), compute,
                    Metrics.create())
    spent: dict[str, float] = defaultdict(float)
    loop = asyncio.new_event_loop()
    pending: list[tuple[bytes, Origin]] = []

    def timed(stage: str, call: Callable[[], Any]) -> Any:
        started = time.process_time()
        try:
            return call()
        finally:
            spent[stage] += time.process_time() - started

    def tag_pending() -> None:
        entities_before = compute.spent["entities"]
        timed("tag", lambda: loop.run_until_complete(stages.tag(pending)))
        spent["tag"] -= compute.spent["entities"] - entities_before
        pending.clear()

    for number, value in enumerate(pages):
        origin = Origin("file", 0, number)
        clean_before = compute.spent["clean"]
        outs = timed("page", lambda value=value, origin=origin: loop.run_until_complete(
            stages.page(value, None, origin, time.time())))
        spent["page"] -= compute.spent["clean"] - clean_before
        for out in outs:
            if out.route == "candidates":
                for decided in timed("decide", lambda out=out, origin=origin: stages.decide(out.value, origin)):
                    if decided.route == "unique":
                        pending.append((decided.value, origin))
        if len(pending) >= settings.entity_batch_size:
            tag_pending()
    if pending:
        tag_pending()
    loop.close()
    per_page = {
        "decode": spent["page"],  # decode and the hop encoding around the pool call
        "clean": compute.spent["clean"],
        "dedup": spent["decide"],
        "entities": compute.spent["entities"],
        "publish": spent["tag"],  # hop decoding and the article events
    }
    return {stage: seconds / len(pages) for stage, seconds in per_page.items()}


# -- processes ------------------------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, float, int]:
    """(parent pid, CPU seconds, RSS bytes) of a live process."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return int(fields[1]), cpu, int(fields[21]) * os.sysconf("SC_PAGE_SIZE")


def process_tree(root: int) -> dict[int, tuple[int, float, int]]:
    """Every live process under `root` (itself included): pid -> (parent, CPU seconds, RSS)."""
    table: dict[int, tuple[int, float, int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                table[int(entry)] = _stat(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = {}, [root]
    while frontier:
        pid = frontier.pop()
        if pid in table:
            tree[pid] = table[pid]
            frontier += [child for child, (parent, _, _) in table.items() if parent == pid]
    return tree


def pool_pids(worker_pid: int) -> list[int]:
    """The pool processes of a worker: the children of its multiprocessing forkserver."""
    tree = process_tree(worker_pid)
    servers = [pid for pid, (parent, _, _) in tree.items() if parent == worker_pid and _is_forkserver(pid)]
    return sorted(pid for pid, (parent, _, _) in tree.items() if parent in servers)


def _is_forkserver(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return b"forkserver" in handle.read()
    except OSError:
        return False


def cpu_of(pids: Sequence[int]) -> float:
    """CPU seconds used so far by the live processes among `pids`."""
    total = 0.0
    for pid in pids:
        try:
            total += _stat(pid)[1]
        except (OSError, IndexError, ValueError):
            continue
    return total


def wait_idle(pids: Sequence[int], quiet_cpu: float = 0.15, timeout: float = 180.0) -> None:
    """Wait until `pids` together use less than `quiet_cpu` CPU seconds over one second (models loaded)."""
    deadline = time.monotonic() + timeout
    before = cpu_of(pids)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = cpu_of(pids)
        if now - before < quiet_cpu:
            return
        before = now


# -- a worker phase -------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    pages: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    rss_mb: dict[str, float] = field(default_factory=dict)
    stage_sums: dict[str, tuple[float, float]] = field(default_factory=dict)
    idle_cores: dict[str, float] = field(default_factory=dict)  # CPU while no page arrives (fetch polling)
    changelog_records: int = 0  # records the dedup table wrote to its changelog, the first page's included

    @property
    def rate(self) -> float:
        return self.pages / self.seconds if self.seconds else 0.0

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def phase_settings(base: Settings, name: str, tmp: str, pool: int) -> Settings:
    """Settings of one phase: its own topics and group; everything else the worker's defaults."""
    return base.with_overrides(
        app_id=f"bench-{name}",
        input_topic=f"{name}.pages.raw",
        articles_topic=f"{name}.articles.v1",
        duplicates_topic=f"{name}.articles.duplicates.v1",
        clusters_topic=f"{name}.articles.clusters.v1",
        dead_letter_topic=f"{name}.pages.deadletter.v1",
        metrics_port=free_port(),
        data_dir=str(Path(tmp) / name),
        workers=pool,
    )


async def send_and_collect(settings: Settings, pages: Sequence[bytes], rate: float | None) -> tuple[float, list[float]]:
    """Produce `pages` (all at once, or `rate` a second) and wait for one event per page.

    Returns the seconds from the first send to the last page's event, and each page's latency
    from its send to its event.
    """
    from aiokafka import AIOKafkaProducer

    outputs = [settings.articles_topic, settings.duplicates_topic, settings.dead_letter_topic]
    urls = [orjson.loads(page).get("url", "") for page in pages]
    sent_at: dict[str, float] = {}
    latencies: list[float] = []

    async def collect() -> None:
        accounted: set[str] = set()
        async for _, _, value in consume(settings, outputs, from_beginning=True, idle_timeout=300):
            url = orjson.loads(value).get("url") or ""
            if url in sent_at and url not in accounted:
                accounted.add(url)
                latencies.append(time.perf_counter() - sent_at[url])
            if len(accounted) >= len(pages):
                return

    producer = AIOKafkaProducer(acks="all", max_request_size=settings.max_page_bytes + 1_000_000,
                                linger_ms=0, **client_options(settings))
    await start_client(settings, producer)
    collector = asyncio.create_task(collect())
    started = time.perf_counter()
    try:
        acks = []
        for number, (url, page) in enumerate(zip(urls, pages, strict=True)):
            if rate:
                await asyncio.sleep(max(0.0, started + number / rate - time.perf_counter()))
            sent_at[url] = time.perf_counter()
            acks.append(await producer.send(settings.input_topic, value=page, key=url.encode()))
        await asyncio.gather(*acks)
    finally:
        await producer.stop()
    await asyncio.wait_for(collector, timeout=600)
    return time.perf_counter() - started, latencies


async def count_records(settings: Settings, topic: str) -> int:
    """Records in `topic` (read to the end: the embedded broker under-reports end offsets)."""
    return sum([1 async for _ in consume(settings, [topic], from_beginning=True, idle_timeout=2.0)])


def run_phase(name: str, base: Settings, tmp: str, pages: Sequence[bytes], broker_pid: int, *, pool: int = 0,
              workers: int = 1, rate: float | None = None) -> Phase:
    """Start `workers` worker processes in one group, warm them, then measure `pages`."""
    settings = phase_settings(base, name, tmp, pool)
    asyncio.run(ensure_topics(settings))
    started: list[WorkerProcess] = []
    try:
        for number in range(workers):
            own = settings if number == 0 else settings.with_overrides(
                metrics_port=free_port(), data_dir=str(Path(tmp) / f"{name}-{number}"))
            started.append(WorkerProcess(own, Path(tmp) / f"{name}-{number}.log").start())
        main_pids = [w.process.pid for w in started if w.process is not None]
        # One page first (group join, partition assignment), then wait until the pools have loaded
        # their models, so start-up is not counted.
        asyncio.run(send_and_collect(settings, pages[:1], None))
        all_pids = [pid for main in main_pids for pid in process_tree(main)]
        wait_idle(all_pids)
        pools = {main: pool_pids(main) for main in main_pids}
        pool_list = [pid for pids in pools.values() for pid in pids]
        idle_from = {"worker main": cpu_of(main_pids), "broker": cpu_of([broker_pid])}
        time.sleep(IDLE_SECONDS)
        idle = {"worker main": cpu_of(main_pids), "broker": cpu_of([broker_pid])}
        idle_cores = {part: (idle[part] - idle_from[part]) / IDLE_SECONDS for part in idle}
        before = {"worker main": cpu_of(main_pids), "pool": cpu_of(pool_list), "broker": cpu_of([broker_pid])}
        seconds, latencies = asyncio.run(send_and_collect(settings, pages[1:], rate))
        after = {"worker main": cpu_of(main_pids), "pool": cpu_of(pool_list), "broker": cpu_of([broker_pid])}
        phase = Phase(name, len(latencies), seconds, latencies)
        phase.cpu = {part: (after[part] - before[part]) / len(latencies) for part in before}
        phase.idle_cores = idle_cores
        phase.changelog_records = asyncio.run(count_records(settings, dedup_changelog_topic(settings)))
        for number, main in enumerate(main_pids):
            phase.rss_mb[f"worker {number} main"] = _stat(main)[2] / 1e6
            for index, pid in enumerate(pools[main]):
                phase.rss_mb[f"worker {number} pool {index}"] = _stat(pid)[2] / 1e6
            phase.rss_mb[f"worker {number} total"] = sum(rss for _, _, rss in process_tree(main).values()) / 1e6
        for worker in started:
            with urllib.request.urlopen(worker.metrics_url) as response:
                for line in response.read().decode().splitlines():
                    for kind in ("sum", "count"):
                        prefix = f"ingest_stage_seconds_{kind}{{stage=\""
                        if line.startswith(prefix):
                            stage = line[len(prefix):].split('"', 1)[0]
                            total, count = phase.stage_sums.get(stage, (0.0, 0.0))
                            value = float(line.rsplit(" ", 1)[1])
                            summed = (total + value, count) if kind == "sum" else (total, count + value)
                            phase.stage_sums[stage] = summed
        return phase
    finally:
        for worker in started:
            worker.stop()


# -- report ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", required=True, help="raw page events, JSONL (.gz fine)")
    parser.add_argument("--fetch-wait-ms", type=int, default=10, help="fetch wait of every client (see above)")
    parser.add_argument("--scaling", action="store_true", help="also pool of 1, and two workers in one group")
    parser.add_argument("--json", help="write every figure to this file as JSON")
    args = parser.parse_args()
    pages = read_pages(args.pages)
    report: dict[str, Any] = {"pages": len(pages), "cores": CORES}
    out = sys.stdout

    def say(line: str = "") -> None:
        print(line, file=out, flush=True)

    say(f"{len(pages)} pages, {CORES} cores, load average {os.getloadavg()[0]:.1f} at start")
    found = naive(pages)
    report["naive"] = found
    say(f"naive composition: {found['pages_per_s']:.2f} pages/s, {found['cpu_ms_per_page']:.1f} ms CPU a page "
        f"({found['unique']} unique articles tagged, {found['cores_used']:.2f} cores used)")
    settings = Settings()
    costs = stage_costs(pages, settings)
    report["stage_cpu_ms_per_page"] = {stage: 1000 * seconds for stage, seconds in costs.items()}
    stage_sum = sum(costs.values())
    ceiling = CORES / stage_sum
    report["ceiling_pages_per_s"] = ceiling
    say("stage CPU a page (inline): " + ", ".join(f"{s} {1000 * v:.1f} ms" for s, v in costs.items())
        + f"; sum {1000 * stage_sum:.1f} ms -> ceiling {ceiling:.1f} pages/s on {CORES} cores")

    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        broker_pid = broker._process.pid if broker._process is not None else 0
        base = settings.with_overrides(broker=broker.url, fetch_wait_ms=args.fetch_wait_ms)
        say(f"worker defaults: pool {base.pool_size}, {base.topic_partitions} partitions, "
            f"entity batch {base.entity_batch_size}, fetch wait {args.fetch_wait_ms} ms")
        full = run_phase("max", base, tmp, pages, broker_pid)
        per_core = (full.rate / CORES) / (found["pages_per_s"] / 1)
        report["worker"] = vars(full) | {"rate": full.rate, "ratio_per_core": per_core,
                                         "share_of_ceiling": full.rate / ceiling}
        say(f"worker: {full.rate:.2f} pages/s ({full.pages} pages in {full.seconds:.1f} s, all produced at once); "
            f"{full.rate / found['pages_per_s']:.2f}x the naive composition, {per_core:.2f}x per core; "
            f"{100 * full.rate / ceiling:.0f}% of the stage-cost ceiling")
        used = sum(full.cpu.values())
        cores_got = used * full.pages / full.seconds
        report["worker"] |= {"cores_obtained": cores_got, "stage_share_of_cpu": stage_sum / used}
        say("  CPU a page: " + ", ".join(f"{part} {1000 * v:.1f} ms" for part, v in full.cpu.items())
            + f"; total {1000 * used:.1f} ms, of which the stages' own work (inline) {1000 * stage_sum:.1f} ms "
            f"= {100 * stage_sum / used:.0f}%")
        say(f"  the worker and broker got {cores_got:.2f} of the {CORES} cores (the machine is shared); at that "
            f"many cores the ceiling is {cores_got / stage_sum:.1f} pages/s, "
            f"{100 * full.rate * stage_sum / cores_got:.0f}% of it reached")
        polling = {part: cores / full.rate for part, cores in full.idle_cores.items()}
        say("  with no page in flight (fetch polling at the fetch wait): " + ", ".join(
            f"{part} {cores:.3f} cores" for part, cores in full.idle_cores.items())
            + "; at this rate that is " + ", ".join(f"{part} {1000 * v:.1f} ms" for part, v in polling.items())
            + " of the CPU a page above")
        say("  RSS: " + ", ".join(f"{part} {mb:.0f} MB" for part, mb in full.rss_mb.items()))
        say("  /metrics stage seconds (wall, per event): " + ", ".join(
            f"{stage} {1000 * total / count:.1f} ms x{count:.0f}" for stage, (total, count) in full.stage_sums.items()
            if count))
        say(f"  burst latency: p50 {full.quantile(0.5):.2f} s, p99 {full.quantile(0.99):.2f} s")
        say(f"  dedup table: {full.changelog_records} changelog records, "
            f"{full.changelog_records / (full.pages + 1):.1f} a page")

        half = full.rate / 2
        steady = run_phase("steady", base, tmp, pages, broker_pid, rate=half)
        report["steady"] = {"rate": half, "latencies": steady.latencies, "p50": steady.quantile(0.5),
                            "p95": steady.quantile(0.95), "p99": steady.quantile(0.99)}
        say(f"latency at a steady {half:.1f} pages/s (half the maximum): p50 {1000 * steady.quantile(0.5):.0f} ms, "
            f"p95 {1000 * steady.quantile(0.95):.0f} ms, p99 {1000 * steady.quantile(0.99):.0f} ms, "
            f"max {1000 * max(steady.latencies):.0f} ms")

        if args.scaling:
            one = run_phase("pool1", base, tmp, pages, broker_pid, pool=1)
            two = run_phase("group2", base, tmp, pages, broker_pid, pool=1, workers=2)
            report["scaling"] = {"pool1": one.rate, "pool_default": full.rate, "two_workers_pool1": two.rate,
                                 "rss_two_workers_mb": two.rss_mb}
            say(f"scaling: pool 1 {one.rate:.2f} pages/s; pool {base.pool_size} {full.rate:.2f} pages/s "
                f"({full.rate / one.rate:.2f}x); two workers of pool 1 in one group {two.rate:.2f} pages/s")
            say("  two workers RSS: " + ", ".join(f"{part} {mb:.0f} MB" for part, mb in two.rss_mb.items()))
    say(f"load average {os.getloadavg()[0]:.1f} at the end")
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
