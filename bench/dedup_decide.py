#!/usr/bin/env python3
"""Decisions per second of the dedup owner's decision, side by side: over a dict and over the
RocksDB table, at N pages in the window.

    python bench/dedup_decide.py --articles N [--probes 5000] [--rounds 2] [--before DIR] [--json FILE]

The pages are `bench/dedup_scale.py`'s (synthetic fingerprints shaped like real ones, one day of
pages, a quarter of them copies of a recent story), decided by `DedupIndex` over a dict; the state
they leave is then written into a RocksDB table through the store's write path, as a worker that
decided them would have left it. Each measured store then decides the same probes (near copies of
recent stories under new urls: each reads postings and candidates, verifies, and writes a copy's
record and its root's) after the same warm-up probes, on its own copy of the table:

- `dict`: the state in a dict, its derived indexes in memory (`eval dedup`, `process`, tests);
- `rocksdb`: the worker's default store (`LocalState`: its hot entries and block cache as the
  worker sizes them from `INGEST_DEDUP_CACHE_MB`);
- `rocksdb-no-hot`: the same without hot entries (every read goes to RocksDB);
- `before` (with `--before DIR`, a checkout of older code): its RocksDB decision, in a
  subprocess importing that code, on its own copy of the same table with the same probes.

The figure is decisions per CPU second of the deciding thread (the process's too, which counts
RocksDB's background flushes and compactions), as in `bench/dedup_scale.py`. Rounds alternate
the stores, so a change in the machine's load shows as a change between rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WARM_UP = 2_000


def rate(index: Any, pages: list[tuple[str, Any, float]]) -> tuple[float, float]:
    """Decisions per CPU second over `pages`: of the deciding thread, and of the process."""
    thread, process = time.thread_time(), time.process_time()
    for url, fp, when in pages:
        index.decide(url, fp, when)
    return len(pages) / (time.thread_time() - thread), len(pages) / (time.process_time() - process)


def measure_rocksdb(path: Path, warm: list[Any], probes: list[Any], hot_bytes: int | None) -> dict[str, Any]:
    """Open the table at `path`, warm it up, time the probes (importing whichever code is first
    on the path: this checkout's, or the one `--before` names)."""
    from worker.kafka.dedup_store import LocalState
    from worker.settings import Settings
    from worker.steps.dedup.index import DedupIndex

    cache = Settings().dedup_cache_mb * 1024 * 1024
    state = LocalState(path, cache) if hot_bytes is None else LocalState(path, cache, hot_bytes=hot_bytes)
    index = DedupIndex(state, window_seconds=7 * 86400, derived=state.derived)
    rate(index, warm)
    thread, process = rate(index, probes)
    hot = getattr(state.derived, "hot", None)
    figures = {"decisions_per_second": round(thread), "decisions_per_second_process_cpu": round(process)}
    if hot is not None and hot.hits + hot.misses:
        figures["hot_hit_share"] = round(hot.hits / (hot.hits + hot.misses), 3)
    state.close()
    return figures


def child(args: argparse.Namespace) -> int:
    """`--child`: one RocksDB measurement in this process (the code under test is on the path)."""
    with open(args.child_probes, "rb") as handle:
        warm, probes = pickle.load(handle)
    hot = None if args.child_hot < 0 else args.child_hot
    print(json.dumps(measure_rocksdb(Path(args.child), warm, probes, hot)))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=100_000, help="pages in the dedup window")
    parser.add_argument("--copies", type=float, default=0.25, help="share of pages that copy a recent story")
    parser.add_argument("--probes", type=int, default=5_000, help="decisions timed per store and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--before", help="a checkout of older code: its RocksDB decision is measured too")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-probes", help=argparse.SUPPRESS)
    parser.add_argument("--child-hot", type=int, default=-1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    sys.path.insert(0, str(HERE.parent))
    sys.path.insert(0, str(HERE))
    from dedup_scale import Counting, Prober, Stream

    from worker.kafka.dedup_store import LocalState
    from worker.settings import Settings
    from worker.steps.dedup.index import DedupIndex

    def say(line: str) -> None:
        print(line, flush=True)

    figures: dict[str, Any] = {"articles": args.articles, "probes": args.probes,
                               "load_average_start": [round(x, 2) for x in os.getloadavg()]}
    tmp = Path(tempfile.mkdtemp(prefix="dedup-decide-"))
    try:
        stream = Stream(args.seed, args.copies)
        state = Counting()
        memory = DedupIndex(state, window_seconds=7 * 86400)
        started = time.perf_counter()
        last = 0.0
        for n, (url, fp, when) in enumerate(stream.pages(args.articles), start=1):
            memory.decide(url, fp, when)
            last = when
            if n % 200_000 == 0:
                say(f"  decided {n:,} pages ({time.perf_counter() - started:.0f} s)")
        figures["indexed_articles"] = memory.roots()
        table = tmp / "table"
        local = LocalState(table, Settings().dedup_cache_mb * 1024 * 1024)
        derived = local.derived
        derived.begin()
        for n, (key, value) in enumerate(state.items(), start=1):
            derived.change(b'"' + key.encode() + b'"', None, value)
            if n % 20_000 == 0:
                derived.write()
                derived.begin()
        derived.write()
        local.db.compact_range(None, None)  # the same table for every store, whatever compacted last
        local.close()
        figures["fill_seconds"] = round(time.perf_counter() - started, 1)
        say(f"filled {args.articles:,} pages ({figures['indexed_articles']:,} indexed) in {figures['fill_seconds']} s")

        prober = Prober(None, stream, last)  # type: ignore[arg-type]  # pages only, nothing sent
        stores = ["dict", "rocksdb", "rocksdb-no-hot"] + (["before"] if args.before else [])
        rounds: list[dict[str, Any]] = []
        for number in range(args.rounds):
            warm = [prober.page() for _ in range(WARM_UP)]
            probes = [prober.page() for _ in range(args.probes)]
            probes_file = tmp / "probes.pkl"
            probes_file.write_bytes(pickle.dumps((warm, probes)))
            measured: dict[str, Any] = {}
            for store in stores:
                if store == "dict":
                    rate(memory, warm)
                    thread, process = rate(memory, probes)
                    measured[store] = {"decisions_per_second": round(thread),
                                       "decisions_per_second_process_cpu": round(process)}
                    # undo nothing: the dict keeps these pages, as each table copy will
                    continue
                copy = tmp / f"copy-{store}"
                shutil.rmtree(copy, ignore_errors=True)
                shutil.copytree(table, copy)
                code = Path(args.before).resolve() if store == "before" else HERE.parent
                hot = "0" if store == "rocksdb-no-hot" else "-1"
                command = [sys.executable, str(Path(__file__).resolve()), "--child", str(copy),
                           "--child-probes", str(probes_file), "--child-hot", hot]
                env = {**os.environ, "PYTHONPATH": str(code)}
                out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
                measured[store] = json.loads(out.strip().splitlines()[-1])
                shutil.rmtree(copy, ignore_errors=True)
            rounds.append(measured)
            say(f"round {number}  " + "   ".join(f"{store} {m['decisions_per_second']:,}/s"
                                               for store, m in measured.items()))
        figures["rounds"] = rounds
        for store in stores:
            figures[f"{store}_decisions_per_second"] = max(r[store]["decisions_per_second"] for r in rounds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    figures["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    say(json.dumps(figures, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
