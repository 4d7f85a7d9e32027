"""`ingest-worker redrive`: send chosen dead letters' raw pages to the input topic again.

After the cause of a batch of dead letters is fixed (a bug, a time limit raised, a broker limit),
their pages can go through the worker again. Every dead letter holds the raw page as it arrived
(cut at 256 KiB); a cut one is read back from its place in the input topic while the topic still
holds it. Dead letters of messages that were not raw pages (an internal message nobody could
read) are skipped. Re-sent pages get the same outcome as any page: the worker's ids are
deterministic, so a page that was published before is recognised again.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from worker.document import DEAD_LETTER_REASONS
from worker.events import original_bytes
from worker.settings import Settings


def timestamp(text: str) -> datetime:
    """An RFC 3339 / ISO 8601 time for `--since`/`--until` (UTC when it names no zone)."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time like 2026-12-05T10:00:00Z") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `redrive`."""
    parser.add_argument("--reason", action="append", choices=DEAD_LETTER_REASONS, default=[],
                        help="re-send dead letters of this reason (repeat for several; default: every reason)")
    parser.add_argument("--since", type=timestamp, help="only dead letters that failed at or after this time")
    parser.add_argument("--until", type=timestamp, help="only dead letters that failed before this time")
    parser.add_argument("--dry-run", action="store_true", help="print what would be re-sent, send nothing")


@dataclass(frozen=True, slots=True)
class Choice:
    """A dead letter chosen to be re-sent: its page's key and raw bytes, or where to read them back."""

    key: bytes | None
    value: bytes | None  # None: the dead letter holds only part of the page; read it at `source`
    source: tuple[str, int, int]
    reason: str
    url: str | None


def choose(
    letters: Iterable[dict[str, Any]],
    input_topic: str,
    reasons: Sequence[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[list[Choice], Counter[str]]:
    """The dead letters to re-send, and how many were left out, by why."""
    chosen: list[Choice] = []
    left: Counter[str] = Counter()
    for letter in letters:
        if letter.get("event_type") != "dead_letter.v1":
            left["not a dead letter"] += 1
            continue
        if reasons and letter["reason"] not in reasons:
            left["another reason"] += 1
            continue
        failed_at = datetime.fromisoformat(letter["failed_at"]) if letter.get("failed_at") else None
        if (since or until) and failed_at is None:
            left["no failure time"] += 1
            continue
        if (since and failed_at < since) or (until and failed_at >= until):  # type: ignore[operator]
            left["outside the time range"] += 1
            continue
        source = letter["source"]
        if source["topic"] != input_topic:
            left[f"not a raw page (a message of {source['topic']})"] += 1
            continue
        url = letter.get("url")
        chosen.append(Choice(
            url.encode() if url else None,
            None if letter.get("original_truncated") else original_bytes(letter),
            (source["topic"], source["partition"], source["offset"]),
            letter["reason"],
            url,
        ))
    return chosen, left


def redrive(args: argparse.Namespace) -> int:
    """Re-send the chosen dead letters' raw pages to the input topic; one summary line."""
    settings = Settings.from_env()
    sent, read, left = asyncio.run(_redrive(settings, args.reason, args.since, args.until, args.dry_run))
    verb = "would re-send" if args.dry_run else "re-sent"
    skipped = "; ".join(f"{n} {why}" for why, n in sorted(left.items()))
    print(f"{verb} {sent} of {read} dead letters in {settings.dead_letter_topic} to {settings.input_topic}"
          + (f" (left out: {skipped})" if skipped else ""), file=sys.stderr)
    return 0


async def _redrive(
    settings: Settings, reasons: Sequence[str], since: datetime | None, until: datetime | None, dry_run: bool
) -> tuple[int, int, Counter[str]]:
    from worker.kafka.clients import MessageReader, produce, read_topic

    letters = []
    async for _, value in read_topic(settings, settings.dead_letter_topic):
        try:
            letters.append(orjson.loads(value))
        except orjson.JSONDecodeError:
            letters.append({})
    chosen, left = choose(letters, settings.input_topic, reasons, since, until)
    messages: list[tuple[bytes | None, bytes]] = []
    reader = MessageReader(settings)
    try:
        for choice in chosen:
            page = choice.value if choice.value is not None else await reader.read(*choice.source)
            if page is None:
                left["cut short and gone from the input topic"] += 1
                continue
            messages.append((choice.key, page))
            if dry_run:
                print(f"{choice.reason}\t{choice.url or '-'}\t{'/'.join(map(str, choice.source))}")
    finally:
        await reader.close()
    if messages and not dry_run:
        await produce(settings, settings.input_topic, messages)
    return len(messages), len(letters), left
