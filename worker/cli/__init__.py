"""The `ingest-worker` command: run, demo, process, produce, tail, redrive, schemas and eval."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from worker.errors import BrokerUnavailable, TopicUnusable
from worker.settings import SettingsError

EVALUATIONS = ("extraction", "dedup", "entities")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand (eval subcommands parse their own flags)."""
    parser = argparse.ArgumentParser(prog="ingest-worker", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("run", help="run the Faust worker against the configured broker")

    demo = sub.add_parser("demo", help="embedded broker + worker + sample pages, then exit")
    demo.add_argument("--serve", action="store_true", help="keep running after the samples")

    process = sub.add_parser("process", help="the same steps without Kafka: JSONL in, JSONL out")
    process.add_argument("file", nargs="?", default="-", help="raw page events as JSONL (- = stdin)")
    process.add_argument("--output", "-o", default="-", help="where to write events (- = stdout)")

    produce = sub.add_parser("produce", help="push raw pages (.jsonl, .html, .txt) to the input topic")
    produce.add_argument("files", nargs="+")
    produce.add_argument("--url", help="the page URL for a single .html/.txt file")

    tail = sub.add_parser("tail", help="print events from a topic, one line each")
    tail.add_argument("topic")
    tail.add_argument("--from-beginning", action="store_true")
    tail.add_argument("--max", type=int, default=0, help="stop after this many events (0 = never)")
    tail.add_argument("--timeout", type=float, default=0.0, help="stop after this many idle seconds")

    from worker.cli.redrive import add_arguments as redrive_arguments

    redrive = sub.add_parser("redrive", help="send chosen dead letters' raw pages to the input topic again")
    redrive_arguments(redrive)

    schemas = sub.add_parser("schemas", help="write the JSON Schemas of the events (raw_page.v1, article.v1, ...)")
    schemas.add_argument("--out", default="schemas", help="directory to write them to (created if missing)")

    evaluate = sub.add_parser("eval", help="measure quality on labelled data")
    evaluate.add_argument("what", choices=EVALUATIONS)
    evaluate.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "eval":
        module = importlib.import_module(f"worker.evaluation.{args.what}")
        return int(module.main(args.rest))
    commands = importlib.import_module("worker.cli.commands")
    try:
        return int(getattr(commands, args.command)(args))
    except SettingsError as exc:  # a configuration the worker cannot run with
        print(f"ingest-worker {args.command}: {exc}", file=sys.stderr)
        return 2
    except (BrokerUnavailable, TopicUnusable) as exc:  # one sentence, not a traceback: the cause is known
        print(f"ingest-worker {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
