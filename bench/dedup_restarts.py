#!/usr/bin/env python3
"""Restarts of one dedup owner on its volume, side by side for two or more code trees.

    python bench/dedup_restarts.py --articles N --trees DIR [DIR ...] [--rounds 2] [--decisions 500]
        [--json FILE] [--logs DIR]

The owner's table is filled as `bench/dedup_scale.py --fill local` fills it (N pages), then the
owner (`ingest-worker run` of the last tree) starts on it. Each round, for each tree in turn (the
order reversed every other round): `--decisions` probe decisions (500) (a journal to read at the restart, as the
rate probes leave one), then `SIGKILL` of the owner's process group and a restart on the same data
directory with that tree's code, twice: the first restart lets the member left in the group be
one of that tree's workers, the second is measured, from the kill to the first decision (a probe
seen as its `duplicate.v1` event). A tree is a checkout of the project (`git archive REV | tar -x
-C DIR`); the worker runs from it (`python -m worker run` in that directory). With `--logs`, the
owner's log holds a line `=== KILL <time> restart with <tree>` before each restart.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dedup_scale as scale  # noqa: E402

from worker.kafka.embedded import EmbeddedBroker, isolated_settings  # noqa: E402
from worker.kafka.topics import ensure_topics  # noqa: E402
from worker.runtime.worker_process import WorkerProcess  # noqa: E402


def start_from(tree: str, settings: Any, log: Path) -> WorkerProcess:
    """The worker of `tree`: `python -m` puts the working directory first on the path."""
    os.environ["PYTHONPATH"] = tree
    os.chdir(tree)
    with log.open("a") as handle:
        handle.write(f"=== KILL {time.time():.3f} restart with {tree}\n")
    return scale.start(settings, log)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--decisions", type=int, default=500, help="probe decisions before each kill")
    parser.add_argument("--trees", nargs="+", required=True, help="checkouts of the code to compare")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--logs", help="keep the owner's log (INFO) in this directory")
    args = parser.parse_args()
    trees = [str(Path(tree).resolve()) for tree in args.trees]
    json_path = Path(args.json).resolve() if args.json else None  # the worker's tree becomes the working directory
    logs = Path(args.logs).resolve() if args.logs else None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a stopped bench stops its worker too
    tmp = Path(tempfile.mkdtemp(prefix="dedup-restarts-"))
    figures: dict[str, Any] = {"articles": args.articles, "load_average_start": [round(x, 2) for x in os.getloadavg()],
                               "restarts": []}
    owner: WorkerProcess | None = None
    try:
        with EmbeddedBroker() as broker:
            settings = isolated_settings(broker.url, f"restarts_{uuid.uuid4().hex[:6]}", str(tmp / "owner"),
                                         log_level="INFO")
            asyncio.run(ensure_topics(settings))
            stream = scale.Stream(7, 0.25)
            filled = scale.fill_local(settings, args.articles, stream, print)
            watcher = scale.Watcher(settings)
            watcher.start()
            watcher.ready.wait(30)
            prober = scale.Prober(settings, stream, filled["last_seen_at"])
            log = tmp / "owner.log"
            owner = start_from(trees[-1], settings, log)
            print(f"first start {scale.first_decision(prober, watcher, time.monotonic())} s", flush=True)
            for round_ in range(args.rounds):
                for tree in trees if round_ % 2 == 0 else trees[::-1]:
                    for measured in (False, True):
                        probes = prober.make(args.decisions)
                        asyncio.run(prober.send(probes))
                        watcher.wait_for([url for url, _ in probes], 600)
                        assert owner.process is not None
                        scale.wait_quiet(owner.process.pid)
                        load = round(os.getloadavg()[0], 2)
                        killed = scale.kill(owner)
                        owner = start_from(tree, settings, log)
                        seconds = scale.first_decision(prober, watcher, killed)
                        print(f"round {round_} {tree} {'measured' if measured else 'settling'}: {seconds} s, "
                              f"load {load}", flush=True)
                        if measured:
                            figures["restarts"].append({"round": round_, "tree": tree, "restart_seconds": seconds,
                                                        "load_average": load})
            watcher.stopping.set()
    finally:
        if owner is not None and owner.process is not None:
            owner.stop(kill=True)
        if logs is not None:
            logs.mkdir(parents=True, exist_ok=True)
            if (tmp / "owner.log").exists():
                shutil.copy(tmp / "owner.log", logs / "owner.log")
        shutil.rmtree(tmp, ignore_errors=True)
    figures["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(figures, indent=1))
    if json_path is not None:
        json_path.write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
