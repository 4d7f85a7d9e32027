"""Fault runs of `ingest-worker run` on the embedded broker, each compared with a run without faults.

    python bench/faults.py kill    --pages PAGES.jsonl.gz --truth TRUTH.json [--kills 10] [--seed 1]
    python bench/faults.py freeze  --pages PAGES.jsonl.gz --truth TRUTH.json [--stop-seconds 30]
    python bench/faults.py hostile --pages PAGES.jsonl.gz --truth TRUTH.json [--seed 1]
    python bench/faults.py soak    --pages PAGES.jsonl.gz --minutes 20 [--rate 2]

kill:    a clean run, then the same pages streamed while the worker is SIGKILLed (with its pool)
         at random moments and restarted each time; for the middle third of the kills a second
         worker runs in the same group and either one may be the victim.
freeze:  a clean run, then the broker is frozen with SIGSTOP for `--stop-seconds` mid-stream and
         resumed with SIGCONT; the worker must go on without a restart.
hostile: a clean run, then the hostile corpus (worker.evaluation.faults) mixed into the pages.
soak:    the pages at a steady rate for `--minutes`, each pass with new urls and its fetched_at
         8 days later (so the dedup window turns over); RSS of the worker and of its pool, open
         files and event-loop tasks sampled; slopes by least squares over all but the first 20%.

Every run reports: inputs lost (no outcome), inputs with two outcome kinds, inputs whose article
id differs from the clean run, inputs with an outcome they do not allow, and dedup F1 (pairwise,
the logic of `ingest-worker eval dedup`) against the clean run. Worker settings are the defaults
except the embedded broker's short fetch wait, two partitions and, for `kill`, a session timeout
of 8 s (so a dead worker's partitions move within seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from worker.evaluation.faults import (
    Accounting,
    Input,
    dedup_f1,
    hostile_inputs,
    mixed,
    produce_inputs,
    read_jsonl,
    read_outcomes,
    real_inputs,
    summary,
)
from worker.kafka.embedded import EmbeddedBroker, free_port, isolated_settings
from worker.kafka.topics import ensure_topics
from worker.runtime.children import descendants_usage
from worker.runtime.worker_process import WorkerProcess
from worker.settings import Settings

READ_DEADLINE_SECONDS = 600.0  # --read-deadline: how long to wait for outcomes after the stream


def run_settings(broker: EmbeddedBroker, name: str, tmp: Path, **overrides: Any) -> Settings:
    """Default settings with topics and a group of their own on the embedded broker."""
    prefix = f"faults_{name}_{uuid.uuid4().hex[:6]}"
    settings = isolated_settings(broker.url, prefix, str(tmp / prefix), **overrides)
    asyncio.run(ensure_topics(settings))
    return settings


class Producer(threading.Thread):
    """Produces inputs (paced) in the background; `positions` is filled when it finishes."""

    def __init__(self, settings: Settings, inputs: Sequence[Input], pace_seconds: float) -> None:
        super().__init__(daemon=True)
        self.settings, self.inputs, self.pace = settings, inputs, pace_seconds
        self.positions: dict[tuple[int, int], Input] = {}
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.positions = asyncio.run(produce_inputs(self.settings, self.inputs, self.pace))
        except BaseException as exc:  # reported by the caller
            self.error = exc

    def result(self) -> dict[tuple[int, int], Input]:
        """Wait for the end of the stream; the positions of every input."""
        self.join()
        if self.error is not None:
            raise self.error
        return self.positions


def clean_run(broker: EmbeddedBroker, inputs: Sequence[Input], tmp: Path, args: argparse.Namespace) -> Accounting:
    """One worker, no faults: the reference."""
    settings = run_settings(broker, "clean", tmp)
    with WorkerProcess(settings, tmp / "clean.log"):
        positions = asyncio.run(produce_inputs(settings, inputs))
        return asyncio.run(read_outcomes(settings, positions, args.read_deadline, settle_seconds=10))


def kill_run(broker: EmbeddedBroker, inputs: Sequence[Input], tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Stream the inputs while workers are SIGKILLed at random moments and restarted."""
    rng = random.Random(args.seed)
    settings = run_settings(broker, "kill", tmp, session_timeout_seconds=8.0)
    workers = [WorkerProcess(settings, tmp / "kill-a.log").start()]
    second = WorkerProcess(settings.with_overrides(metrics_port=free_port()), tmp / "kill-b.log")
    producer = Producer(settings, inputs, args.pace)
    started = time.monotonic()
    producer.start()
    log: list[str] = []
    try:
        for number in range(args.kills):
            if number == args.kills // 3:
                workers.append(second.start())
                log.append(f"{time.monotonic() - started:6.1f} s  second worker joins the group")
            time.sleep(rng.uniform(args.min_gap, args.max_gap))
            victim = rng.choice(workers)
            victim.stop(kill=True)
            moment = time.monotonic() - started
            victim.start()
            restart = time.monotonic() - started - moment
            log.append(f"{moment:6.1f} s  SIGKILL {victim.log_path.stem}, restarted in {restart:.1f} s")
            if number == 2 * args.kills // 3 and second in workers:
                workers.remove(second)
                second.stop()
                log.append(f"{time.monotonic() - started:6.1f} s  second worker leaves (SIGTERM)")
        positions = producer.result()
        log.append(f"{time.monotonic() - started:6.1f} s  stream produced; reading outcomes")
        accounting = asyncio.run(read_outcomes(settings, positions, args.read_deadline, settle_seconds=15))
        alive = all(w.process is not None and w.process.poll() is None for w in workers)
    finally:
        for worker in [*workers, second]:
            worker.stop(kill=True)
    return {"accounting": accounting, "log": log, "workers_alive": alive, "seconds": time.monotonic() - started}


def freeze_run(broker: EmbeddedBroker, inputs: Sequence[Input], tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Stream the inputs; SIGSTOP the broker mid-stream, SIGCONT it after `--stop-seconds`."""
    settings = run_settings(broker, "freeze", tmp)
    log: list[str] = []
    with WorkerProcess(settings, tmp / "freeze.log") as worker:
        assert worker.process is not None and broker.pid is not None
        pid = worker.process.pid
        producer = Producer(settings, inputs, args.pace)
        started = time.monotonic()
        producer.start()
        time.sleep(args.stop_after)
        os.kill(broker.pid, signal.SIGSTOP)
        log.append(f"{time.monotonic() - started:6.1f} s  broker SIGSTOP")
        time.sleep(args.stop_seconds)
        os.kill(broker.pid, signal.SIGCONT)
        log.append(f"{time.monotonic() - started:6.1f} s  broker SIGCONT")
        positions = producer.result()
        accounting = asyncio.run(read_outcomes(settings, positions, args.read_deadline, settle_seconds=15))
        log.append(f"{time.monotonic() - started:6.1f} s  every input accounted for" if not accounting.lost else "")
        same = worker.process is not None and worker.process.poll() is None and worker.process.pid == pid
        errors = [line for line in worker.log_tail(400_000).splitlines() if " ERROR " in line or "Traceback" in line]
    return {
        "accounting": accounting,
        "log": log,
        "workers_alive": same,
        "error_lines": len(errors),
        "first_errors": errors[:5],
        "seconds": time.monotonic() - started,
    }


def hostile_run(broker: EmbeddedBroker, inputs: Sequence[Input], tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The inputs with the hostile corpus mixed in, one worker."""
    settings = run_settings(broker, "hostile", tmp)
    with WorkerProcess(settings, tmp / "hostile.log") as worker:
        started = time.monotonic()
        positions = asyncio.run(produce_inputs(settings, inputs))
        accounting = asyncio.run(read_outcomes(settings, positions, args.read_deadline, settle_seconds=15))
        alive = worker.process is not None and worker.process.poll() is None
    return {"accounting": accounting, "log": [], "workers_alive": alive, "seconds": time.monotonic() - started}


def compare(
    name: str, clean: Accounting, run: dict[str, Any], inputs: Sequence[Input], truth: dict[str, str]
) -> dict[str, Any]:
    """Figures of a fault run against the clean run."""
    accounting: Accounting = run["accounting"]
    figures = summary(accounting, inputs, clean)
    real = {i.name for i in inputs if i.name.startswith("page:")}
    return {
        "run": name,
        "seconds": round(run["seconds"], 1),
        "inputs": figures["inputs"],
        "lost": figures["lost"],
        "two_kinds": figures["two_kinds"],
        "id_changes": [n for n in figures["id_changes"] if n in real],
        "outcome_changes_real": [n for n in figures["outcome_changes"] if n in real],
        "unexpected": figures["unexpected"],
        "dedup_f1_clean": round(dedup_f1(clean, truth), 4),
        "dedup_f1": round(dedup_f1(accounting, truth), 4),
        "workers_alive": run["workers_alive"],
        "log": run["log"],
        **{k: v for k, v in run.items() if k not in {"accounting", "log", "workers_alive", "seconds"}},
    }


def print_figures(figures: dict[str, Any]) -> None:
    """A short report, then the lists."""
    print(f"== {figures['run']} ({figures['seconds']} s)")
    for line in figures["log"]:
        if line:
            print("  ", line)
    print(
        f"inputs {figures['inputs']}  lost {len(figures['lost'])}  two outcome kinds {len(figures['two_kinds'])}  "
        f"article id differs {len(figures['id_changes'])}  unexpected outcome {len(figures['unexpected'])}  "
        f"workers alive {figures['workers_alive']}"
    )
    print(
        f"dedup F1 {figures['dedup_f1']:.4f} (clean run {figures['dedup_f1_clean']:.4f}); "
        f"real pages whose outcome kind differs from the clean run: {len(figures['outcome_changes_real'])}"
    )
    for key in ("lost", "two_kinds", "id_changes", "unexpected", "first_errors"):
        if figures.get(key):
            print(f"  {key}: {json.dumps(figures[key])[:2000]}")


# -- soak ------------------------------------------------------------------------------------


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _metric(url: str, name: str) -> float:
    with urllib.request.urlopen(url, timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    return float("nan")


def slope_per_hour(samples: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) samples, per hour."""
    if len(samples) < 2:
        return 0.0
    xs, ys = [s[0] for s in samples], [s[1] for s in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return 3600 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def soak(broker: EmbeddedBroker, lines: list[bytes], tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Pages at a steady rate for `--minutes`; memory, files and tasks sampled."""
    settings = run_settings(broker, "soak", tmp)
    samples: list[dict[str, float]] = []
    positions: dict[tuple[int, int], Input] = {}
    with WorkerProcess(settings, tmp / "soak.log") as worker:
        assert worker.process is not None
        pid = worker.process.pid
        started = time.monotonic()
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(args.sample_seconds):
                count, _, pool_rss = descendants_usage(pid)
                samples.append(
                    {
                        "seconds": time.monotonic() - started,
                        "worker_rss": _rss(pid),
                        "pool_rss": pool_rss,
                        "pool_processes": count,
                        "worker_fds": _fds(pid),
                        "tasks": _metric(worker.metrics_url, "ingest_event_loop_tasks"),
                    }
                )

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        cycle = 0
        base = 1_736_596_800  # 2025-01-11T12:00:00Z, the dev set's stamp
        while time.monotonic() - started < args.minutes * 60:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(base + cycle * 8 * 86400))
            batch = real_inputs(lines, url_suffix=f"soak={cycle}", fetched_at=stamp)
            left = args.minutes * 60 - (time.monotonic() - started)
            batch = batch[: max(1, int(left * args.rate))]
            positions |= asyncio.run(produce_inputs(settings, batch, pace_seconds=1 / args.rate))
            cycle += 1
        produced_for = time.monotonic() - started
        stop.set()
        sampler.join()
        accounting = asyncio.run(read_outcomes(settings, positions, args.read_deadline, settle_seconds=15))
        alive = worker.process is not None and worker.process.poll() is None
    steady = samples[len(samples) // 5 :]
    figures: dict[str, Any] = {
        "run": "soak",
        "minutes": round(produced_for / 60, 1),
        "pages": len(positions),
        "rate": args.rate,
        "lost": len(accounting.lost),
        "two_kinds": len(accounting.two_kinds),
        "workers_alive": alive,
        "samples": len(samples),
    }
    for key in ("worker_rss", "pool_rss", "worker_fds", "tasks", "pool_processes"):
        values = [(s["seconds"], s[key]) for s in steady]
        figures[key] = {
            "first": samples[0][key] if samples else None,
            "last": samples[-1][key] if samples else None,
            "max": max((s[key] for s in samples), default=None),
            "slope_per_hour": round(slope_per_hour(values), 1),
        }
    if args.samples_out:
        Path(args.samples_out).write_text("\n".join(json.dumps(s) for s in samples) + "\n")
    return figures


def print_soak(f: dict[str, Any]) -> None:
    """The soak's figures."""
    mb = 1 / (1 << 20)
    print(f"== soak: {f['pages']} pages in {f['minutes']} min at {f['rate']} pages/s, {f['samples']} samples")
    print(f"lost {f['lost']}  two outcome kinds {f['two_kinds']}  worker alive {f['workers_alive']}")
    for key, unit, scale in (
        ("worker_rss", "MB", mb),
        ("pool_rss", "MB", mb),
        ("worker_fds", "", 1.0),
        ("tasks", "", 1.0),
        ("pool_processes", "", 1.0),
    ):
        v = f[key]
        print(
            f"{key:15s} first {v['first'] * scale:8.1f}{unit}  last {v['last'] * scale:8.1f}{unit}  "
            f"max {v['max'] * scale:8.1f}{unit}  slope {v['slope_per_hour'] * scale:+.1f}{unit}/hour"
        )


# -- command line ------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", choices=["kill", "freeze", "hostile", "soak", "all"])
    parser.add_argument("--pages", required=True, help="raw page events, JSONL (may be gzipped)")
    parser.add_argument("--truth", help="JSON {url: story_id}, for dedup F1")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--min-gap", type=float, default=3.0, help="seconds between kills, at least")
    parser.add_argument("--max-gap", type=float, default=12.0, help="seconds between kills, at most")
    parser.add_argument("--pace", type=float, default=0.6, help="seconds between produced pages (kill, freeze)")
    parser.add_argument("--stop-after", type=float, default=15.0, help="seconds into the stream the broker stops")
    parser.add_argument("--stop-seconds", type=float, default=30.0)
    parser.add_argument("--minutes", type=float, default=20.0, help="soak duration")
    parser.add_argument("--rate", type=float, default=2.0, help="soak pages per second")
    parser.add_argument("--sample-seconds", type=float, default=15.0)
    parser.add_argument("--samples-out", help="soak samples as JSONL")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON lines too")
    parser.add_argument("--read-deadline", type=float, default=READ_DEADLINE_SECONDS)
    args = parser.parse_args()
    lines = read_jsonl(args.pages)
    truth = json.loads(Path(args.truth).read_text()) if args.truth else {}
    results = []
    with tempfile.TemporaryDirectory(prefix="faults-") as name, EmbeddedBroker() as broker:
        tmp = Path(name)
        if args.run == "soak":
            figures = soak(broker, lines, tmp, args)
            print_soak(figures)
            results.append(figures)
        else:
            real = real_inputs(lines)
            clean = clean_run(broker, real, tmp, args)
            print(
                f"== clean run: inputs {len(clean.outcomes)}  lost {len(clean.lost)}  "
                f"two outcome kinds {len(clean.two_kinds)}  dedup F1 {dedup_f1(clean, truth):.4f}"
            )
            runs: list[tuple[str, Callable[..., dict[str, Any]], list[Input]]] = [
                ("kill", kill_run, real),
                ("freeze", freeze_run, real),
                ("hostile", hostile_run, mixed(real, hostile_inputs(args.seed), seed=args.seed)),
            ]
            for run_name, run, inputs in runs:
                if args.run not in (run_name, "all"):
                    continue
                figures = compare(run_name, clean, run(broker, inputs, tmp, args), inputs, truth)
                print_figures(figures)
                results.append(figures)
    if args.json:
        for figures in results:
            print(json.dumps(figures))
    return 0 if all(not r.get("lost") and not r.get("two_kinds") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
