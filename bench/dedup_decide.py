#!/usr/bin/env python3
"""Decisions per second of the dedup owner's decision, side by side: over a dict and over the
RocksDB table, at N pages in the window.

    python bench/dedup_decide.py --articles N [--probes 5000] [--rounds 2] [--before DIR] [--fill-dir DIR]
                                 [--stores NAMES] [--json FILE]

The pages are `bench/dedup_scale.py`'s (synthetic fingerprints shaped like real ones, one day of
pages, a quarter of them copies of a recent story), decided by `DedupIndex` over a dict; the state
they leave is then written into a RocksDB table with its derived indexes, as a worker that
decided them would have left it (`dedup_scale.write_table`, the postings as keys, as the code
before the postings moved to memory kept them: this code's store reads them into its snapshot
when it first opens its copy, before the clock starts). Each measured store then decides
the same pages in a subprocess, on its own copy of the table (or of the dict): 2,000 pages of
the stream (warm-up), then, timed, `--probes` pages of the stream (`stream`: new stories and
copies at the fill's share, under urls of their own) and as many near copies of recent stories
(`near`, the probes of `bench/dedup_scale.py`: each reads postings and candidates, verifies,
and writes a copy's record and its root's, the heaviest decision):

- `dict`: the state in a dict (the fill's, read again), its derived indexes rebuilt in memory
  before the clock starts (`eval dedup`, `process`, tests);
- `rocksdb`: the worker's default store (`LocalState`: its hot entries and block cache as the
  worker sizes them from `INGEST_DEDUP_CACHE_MB`), the pages decided as the worker's owner
  decides them, `DECIDE_BATCH` at a time (`DedupIndex.decide_many`);
- `rocksdb-one`: the same store, the pages decided one at a time (`DedupIndex.decide`);
- `rocksdb-no-hot`: the same without hot entries (every read goes to RocksDB), one at a time;
- `before` (with `--before DIR`, a checkout of older code): its RocksDB decision, in a
  subprocess importing that code, on its own copy of the same table with the same probes, in
  batches as `rocksdb` (one page at a time for code without `decide_many`);
- `dict-before` (with `--before DIR`): that code's decision over a dict of the same state.

`--stores` measures only some of them. Every store and code must make the same decisions: the
sha-256 of their reprs (every field, replays and watermarks too) is compared, and each round
says whether they differ.

Each RocksDB store first writes its copy's files again with its own options (a forced
compaction, as its worker would have written them), then opens it again (as a worker restarted
on its volume).

The figure is decisions per CPU second of the deciding thread (the process's too, which counts
RocksDB's background flushes and compactions), as in `bench/dedup_scale.py`. Rounds alternate
the stores, so a change in the machine's load shows as a change between rounds.
"""

from __future__ import annotations

import argparse
import hashlib
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


def rate(index: Any, pages: list[tuple[str, Any, float]], batch: int = 0) -> tuple[float, float, str]:
    """Decisions per CPU second over `pages`: of the deciding thread, and of the process; with
    `batch`, decided `batch` at a time (`decide_many`, as the worker's owner decides them). Then
    the sha-256 of the decisions' reprs (every field, replays and watermarks too), which two
    codes or stores deciding the same pages over the same state must give alike."""
    decisions: list[Any] = []
    thread, process = time.thread_time(), time.process_time()
    if batch:
        for at in range(0, len(pages), batch):
            decisions += index.decide_many(pages[at : at + batch])
    else:
        for url, fp, when in pages:
            decisions.append(index.decide(url, fp, when))
    thread, process = time.thread_time() - thread, time.process_time() - process
    digest = hashlib.sha256("\n".join(map(repr, decisions)).encode()).hexdigest()
    return len(pages) / thread, len(pages) / process, digest


def measure_rocksdb(path: Path, pages: dict[str, list[Any]], cache: int, hot_bytes: int | None,
                    batch: int = 0) -> dict[str, Any]:
    """Open the table at `path` with a dedup cache of `cache` bytes (its files first written
    again as the code under test writes them), decide the warm-up pages, then time each kind of
    probes (importing whichever code is first on the path: this checkout's, or `--before`'s)."""
    import rocksdict

    from worker.kafka.dedup_store import LocalState
    from worker.steps.dedup.index import DedupIndex

    for options_file in path.glob("OPTIONS-*"):
        options_file.unlink()  # opened first with the options of the code under test, not the file's
    written = LocalState(path, cache)
    compact = rocksdict.CompactOptions()
    compact.set_bottommost_level_compaction(rocksdict.BottommostLevelCompaction.force())
    written.db.compact_range(None, None, compact)
    written.close()  # then reopened, as by a worker restarted on its volume
    state = LocalState(path, cache) if hot_bytes is None else LocalState(path, cache, hot_bytes=hot_bytes)
    index = DedupIndex(state, window_seconds=7 * 86400, derived=state.derived)
    figures = decide_all(index, pages, batch)
    hot = getattr(state.derived, "hot", None)
    if hot is not None and hot.hits + hot.misses:
        figures["hot_hit_share"] = round(hot.hits / (hot.hits + hot.misses), 3)
    with open("/proc/self/status") as status:  # the peak of this process (ru_maxrss keeps the parent's)
        peak = next(line for line in status if line.startswith("VmHWM:"))
    figures["peak_rss_mb"] = round(int(peak.split()[1]) / 1024, 1)
    state.close()
    return figures


def decide_all(index: Any, pages: dict[str, list[Any]], batch: int = 0) -> dict[str, Any]:
    """Decide the warm-up pages, then each kind of probes timed (decisions per CPU second)."""
    figures: dict[str, Any] = {}
    if not hasattr(index, "decide_many"):
        batch = 0  # code from before the worker decided in batches: one page at a time, as it did
    for kind, some in pages.items():
        thread, process, digest = rate(index, some, batch)
        if kind != "warm_up":
            figures[kind] = round(thread)
            figures[f"{kind}_process_cpu"] = round(process)
        figures[f"{kind}_decisions_sha256"] = digest
    return figures


def measure_dict(state_file: Path, pages: dict[str, list[Any]], batch: int = 0) -> dict[str, Any]:
    """The fill's state in a dict (its derived indexes rebuilt in memory), then the pages decided
    over it as in `measure_rocksdb`."""
    from worker.steps.dedup.index import DedupIndex

    with open(state_file, "rb") as handle:
        index = DedupIndex(pickle.load(handle), window_seconds=7 * 86400)
    index.entries()  # the derived indexes built before the clock starts
    return decide_all(index, pages, batch)


def child(args: argparse.Namespace) -> int:
    """`--child`: one measurement in this process, of the code in `--child-code`: over a RocksDB
    table (a directory), or over a dict (the fill's `state.pkl`)."""
    sys.path.insert(0, args.child_code)  # before any of the worker's modules is imported
    with open(args.child_probes, "rb") as handle:
        pages = pickle.load(handle)
    hot = None if args.child_hot < 0 else args.child_hot
    target = Path(args.child)
    batch = args.child_batch
    figures = (measure_dict(target, pages, batch) if target.is_file()
               else measure_rocksdb(target, pages, args.child_cache, hot, batch))
    print(json.dumps(figures))
    return 0


class StreamPages:
    """The stream's next pages (new stories and copies of recent ones, at the fill's share and
    pace) under urls of their own, and near copies of recent stories."""

    def __init__(self, stream: Any, articles: int, last: float, prober: Any) -> None:
        self.stream, self.prober = stream, prober
        self.step = 86400.0 / articles
        self.when = last
        self.count = 0

    def page(self) -> tuple[str, Any, float]:
        stream = self.stream
        self.count += 1
        self.when += self.step
        if stream.recent and stream.rng.random() < stream.copy_share:
            fp = stream.copy(stream.recent[stream.rng.randrange(len(stream.recent))])
            return f"https://copy{self.count % 997}.example/next/{self.count}", fp, self.when
        _, fp = stream.story()
        return f"https://site{self.count % 500}.example/next/{self.count}", fp, self.when

    def round(self, warm_up: int, probes: int) -> dict[str, list[Any]]:
        """Warm-up pages, then `probes` pages of the stream and as many near copies."""
        return {"warm_up": [self.page() for _ in range(warm_up)],
                "stream": [self.page() for _ in range(probes)],
                "near": [self.prober.page() for _ in range(probes)]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=100_000, help="pages in the dedup window")
    parser.add_argument("--copies", type=float, default=0.25, help="share of pages that copy a recent story")
    parser.add_argument("--probes", type=int, default=5_000, help="decisions timed per store and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--before", help="a checkout of older code: its RocksDB decision is measured too")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--stores", help="measure only these stores (comma-separated names, as in the output)")
    parser.add_argument("--fill-dir", help="keep the fill (pages, dict state, RocksDB table) here, or reuse the one "
                        "kept there; the table copies each store decides over are made from it")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-probes", help=argparse.SUPPRESS)
    parser.add_argument("--child-hot", type=int, default=-1, help=argparse.SUPPRESS)
    parser.add_argument("--child-code", help=argparse.SUPPRESS)
    parser.add_argument("--child-cache", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-batch", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    stores = ["dict", "rocksdb", "rocksdb-one", "rocksdb-no-hot"]
    stores += ["dict-before", "before"] if args.before else []
    if args.stores:
        unknown = set(args.stores.split(",")) - set(stores)
        if unknown:  # said before the fill, not after it
            parser.error(f"--stores: no store named {', '.join(sorted(unknown))} (of {', '.join(stores)})")
        stores = [store for store in stores if store in args.stores.split(",")]

    sys.path.insert(0, str(HERE.parent))
    sys.path.insert(0, str(HERE))
    import rocksdict
    from dedup_scale import Counting, Prober, Stream, write_table

    from worker.kafka.agents import DECIDE_BATCH
    from worker.kafka.dedup_store import LocalState, open_rdict
    from worker.settings import Settings
    from worker.steps.dedup.index import DedupIndex

    def say(line: str) -> None:
        print(line, flush=True)

    figures: dict[str, Any] = {"articles": args.articles, "probes": args.probes,
                               "load_average_start": [round(x, 2) for x in os.getloadavg()]}
    cache = Settings().dedup_cache_mb * 1024 * 1024  # the worker's, given to each measurement
    tmp = Path(tempfile.mkdtemp(prefix="dedup-decide-"))
    try:
        saved = Path(args.fill_dir or tmp / "fill")
        saved.mkdir(parents=True, exist_ok=True)
        table = saved / "db"
        started = time.perf_counter()
        if (saved / "stream.pkl").exists():  # the pages of an earlier run's fill, kept
            with open(saved / "stream.pkl", "rb") as handle:
                stream, last = pickle.load(handle)
            with open(saved / "state.pkl", "rb") as handle:
                state = Counting(pickle.load(handle))
            memory = DedupIndex(state, window_seconds=7 * 86400)
            say(f"fill of {args.articles:,} pages read from {saved}")
        else:
            stream = Stream(args.seed, args.copies)
            state = Counting()
            memory = DedupIndex(state, window_seconds=7 * 86400)
            last = 0.0
            for n, (url, fp, when) in enumerate(stream.pages(args.articles), start=1):
                memory.decide(url, fp, when)
                last = when
                if n % 200_000 == 0:
                    say(f"  decided {n:,} pages ({time.perf_counter() - started:.0f} s)")
            with open(saved / "state.pkl", "wb") as handle:
                pickle.dump(dict(state), handle)
            with open(saved / "stream.pkl", "wb") as handle:
                pickle.dump((stream, last), handle)
        if not (saved / "table-written").exists():
            shutil.rmtree(table, ignore_errors=True)
            write_table(table, state, memory, cache, posting_keys=True)
            (saved / "table-written").touch()
        # every file written again with the current options, the same table for every store (opened
        # as a database only: the store would move its posting keys into its snapshot)
        local = open_rdict(table, LocalState.options(cache), rocksdict.AccessType.read_write())
        compact = rocksdict.CompactOptions()
        compact.set_bottommost_level_compaction(rocksdict.BottommostLevelCompaction.force())
        local.compact_range(None, None, compact)
        local.close()
        figures["indexed_articles"] = memory.roots()
        figures["fill_seconds"] = round(time.perf_counter() - started, 1)
        say(f"{args.articles:,} pages ({figures['indexed_articles']:,} indexed) in {figures['fill_seconds']} s")

        pages = StreamPages(stream, args.articles, last, Prober(None, stream, last))  # type: ignore[arg-type]
        rounds: list[dict[str, Any]] = []
        for number in range(args.rounds):
            batch = pages.round(WARM_UP, args.probes)
            probes_file = tmp / "probes.pkl"
            probes_file.write_bytes(pickle.dumps(batch))
            measured: dict[str, Any] = {}
            for store in stores:
                copy = tmp / f"copy-{store}"
                shutil.rmtree(copy, ignore_errors=True)
                if store.startswith("dict"):  # the fill's state, as each table copy holds it
                    copy = saved / "state.pkl"
                else:
                    shutil.copytree(table, copy)
                code = Path(args.before).resolve() if store.endswith("before") else HERE.parent
                hot = "0" if store == "rocksdb-no-hot" else "-1"
                # the worker's store (and the code before, as its worker decides) in batches, the others
                # one page at a time
                batch = DECIDE_BATCH if store in ("rocksdb", "before") else 0
                command = [sys.executable, str(Path(__file__).resolve()), "--child", str(copy),
                           "--child-probes", str(probes_file), "--child-hot", hot,
                           "--child-code", str(code), "--child-cache", str(cache), "--child-batch", str(batch)]
                out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
                measured[store] = json.loads(out.strip().splitlines()[-1])
                if copy.is_dir():
                    shutil.rmtree(copy, ignore_errors=True)
            rounds.append(measured)
            for kind in ("stream", "near"):
                line = "   ".join(f"{store} {m[kind]:,}/s" for store, m in measured.items())
                say(f"round {number} {kind:>6}  {line}")
            for kind in ("warm_up", "stream", "near"):  # the same decisions in every store and code
                digests = {m[f"{kind}_decisions_sha256"] for m in measured.values()}
                if len(measured) < 2:
                    break  # one store: nothing to compare its decisions with
                say(f"round {number} {kind:>7} decisions: " + ("the same in every store" if len(digests) == 1
                    else "DIFFER: " + ", ".join(f"{store} {m[f'{kind}_decisions_sha256'][:12]}"
                                                 for store, m in measured.items())))
        figures["rounds"] = rounds
        for store in stores:
            for kind in ("stream", "near"):
                figures[f"{store}_{kind}_decisions_per_second"] = max(r[store][kind] for r in rounds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    figures["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    say(json.dumps(figures, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
