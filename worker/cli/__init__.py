"""The `ingest-worker` command: run, demo, process, produce, tail, topics, redrive, schemas and eval."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from worker import __version__
from worker.cli.failures import Reporter, UsageError, describe_os_error
from worker.errors import BrokerUnavailable, TopicUnusable
from worker.settings import Settings, SettingsError, log_reporting_from_env

EVALUATIONS = ("extraction", "dedup", "entities", "metadata")


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with a mistake reported as one line (what is wrong, where the help is) and exit 2."""

    def error(self, message: str) -> NoReturn:
        """Print `PROG: MESSAGE; see PROG --help` and exit with status 2."""
        log_format, _ = log_reporting_from_env()
        Reporter(self.prog.removeprefix("ingest-worker").strip(), log_format).fatal(
            f"{message}; see {self.prog} --help"
        )
        sys.exit(2)


def _at_least_zero(kind: type[int] | type[float]) -> Callable[[str], float]:
    """An argparse type: a number of `kind` that is 0 or more."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < 0 or value != value:
            raise argparse.ArgumentTypeError(f"{text} is below 0")
        return value

    return parse


def settings_help() -> str:
    """The settings table for `run --help`, generated from the settings object."""
    rows = Settings.help_rows()
    width = max(len(name) for name, _, _ in rows)
    lines = ["settings (environment variables; a wrong value stops every command with exit status 2):"]
    for name, default, text in rows:
        lines.append(f"  {name:<{width}}  {text} [default: {default or '(empty)'}]")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand (eval subcommands parse their own flags)."""
    parser = ArgumentParser(prog="ingest-worker", description=__doc__)
    parser.add_argument("--version", action="version", version=f"ingest-worker {__version__}")
    debug = ArgumentParser(add_help=False)
    debug.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show the traceback behind an error line"
    )
    parser.add_argument("--debug", action="store_true", help="show the traceback behind an error line")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser(
        "run",
        parents=[debug],
        help="run the Faust worker against the configured broker",
        description="Run the Faust worker against INGEST_BROKER until SIGINT/SIGTERM.",
        epilog=settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )

    demo = sub.add_parser("demo", parents=[debug], help="embedded broker + worker + sample pages, then exit")
    demo.add_argument("--serve", action="store_true", help="keep running after the samples")

    process = sub.add_parser(
        "process", parents=[debug], help="the same steps without Kafka: JSONL in, JSONL out"
    )
    process.add_argument("file", nargs="?", default="-", help="raw page events as JSONL, .gz fine (- = stdin)")
    process.add_argument("--output", "-o", default="-", help="where to write events (- = stdout)")

    produce = sub.add_parser(
        "produce", parents=[debug], help="push raw pages (.jsonl, .html, .txt) to the input topic"
    )
    produce.add_argument("files", nargs="+")
    produce.add_argument("--url", help="the page URL of a single .html/.txt file")

    tail = sub.add_parser("tail", parents=[debug], help="print events from a topic, one line each")
    tail.add_argument("topic")
    tail.add_argument("--from-beginning", action="store_true")
    tail.add_argument("--max", type=_at_least_zero(int), default=0, help="stop after this many events (0 = never)")
    tail.add_argument(
        "--timeout", type=_at_least_zero(float), default=0.0, help="stop after this many idle seconds (0 = never)"
    )

    topics = sub.add_parser(
        "topics",
        parents=[debug],
        help="list every topic the worker uses (partitions, cleanup policy, ACLs); --create creates them",
    )
    topics.add_argument("--create", action="store_true", help="create the missing ones on INGEST_BROKER")
    topics.add_argument("--markdown", action="store_true", help="print the table as Markdown")

    from worker.cli.redrive import add_arguments as redrive_arguments

    redrive = sub.add_parser(
        "redrive", parents=[debug], help="send chosen dead letters' raw pages to the input topic again"
    )
    redrive_arguments(redrive)

    schemas = sub.add_parser(
        "schemas", parents=[debug], help="write the JSON Schemas of the events (raw_page.v1, article.v1, ...)"
    )
    schemas.add_argument("--out", default="schemas", help="directory to write them to (created if missing)")

    evaluate = sub.add_parser("eval", parents=[debug], help="measure quality on labelled data")
    evaluate.add_argument("what", choices=EVALUATIONS)
    evaluate.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code.

    Exit status: 0 done, 1 the broker or a topic cannot be used, 2 a mistake in the command,
    a file or a setting (one line says which), 130 interrupted.
    """
    args = build_parser().parse_args(argv)
    log_format, log_level = log_reporting_from_env()
    command = args.command if args.command != "eval" else f"eval {args.what}"
    report = Reporter(command, log_format, debug=args.debug or log_level == "DEBUG")
    args.report = report
    try:
        Settings.from_env()  # every command stops on a setting it cannot use, before any work
        for warning in Settings.unknown_variables():
            report.warn(warning)
        if args.command == "eval":
            module = importlib.import_module(f"worker.evaluation.{args.what}")
            return int(module.main(args.rest))
        commands = importlib.import_module("worker.cli.commands")
        return int(getattr(commands, args.command)(args))
    except (UsageError, SettingsError) as exc:  # the user's to fix: one line
        report.fatal(str(exc), exc)
        return 2
    except (BrokerUnavailable, TopicUnusable) as exc:  # the platform's: one sentence, the cause is known
        report.fatal(str(exc), exc)
        return 1
    except OSError as exc:
        line = describe_os_error(exc)
        if line is None:
            raise
        report.fatal(line, exc)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
