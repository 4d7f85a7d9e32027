"""The stage handlers over a file, without Kafka: what the `process` command runs.

Messages move between the same handlers the Faust agents use, in the order one worker with one
partition would see them: each raw page is decoded, cleaned and decided at once; unique
articles are tagged in batches of `INGEST_ENTITY_BATCH_SIZE`, as the tag agent takes them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator, MutableMapping, Sequence

from worker.cpu import Tagged, no_entities, tag_texts
from worker.document import Origin
from worker.events import Event
from worker.runtime.compute import InlineCompute
from worker.runtime.metrics import Metrics
from worker.settings import Settings
from worker.stages import HOPS, Out, Stages, with_raw_page
from worker.steps.dedup import DedupIndex


def process_lines(
    lines: Iterable[bytes],
    settings: Settings,
    tag_entities: bool = True,
    state: MutableMapping[str, bytes] | None = None,
    metrics: Metrics | None = None,
    candidates: list[bytes] | None = None,
) -> Iterator[Event]:
    """Run every stage over raw page events (one JSON object per line); yield the wire events.

    Dedup state is an in-memory dict (pass `state` to keep it across calls). With `candidates`,
    each cleaned article's message to the dedup owner is appended to it (to decide them again).
    """
    entity_fn: Callable[[Sequence[str], Sequence[str | None], str, int], list[Tagged]] = (
        tag_texts if tag_entities else no_entities
    )
    stages = Stages(
        settings,
        DedupIndex({} if state is None else state, window_seconds=settings.dedup_window_days * 86400),
        InlineCompute(),
        metrics or Metrics.create(),
        entity_fn=entity_fn,
    )
    loop = asyncio.new_event_loop()
    pending: list[tuple[bytes, Origin]] = []
    raw_lines: dict[Origin, bytes] = {}  # lines waiting for tagging, for a late dead letter
    try:
        for number, line in enumerate(lines, start=1):
            value = line.strip()
            if not value:
                continue
            origin = Origin("file", 0, number)
            for out in loop.run_until_complete(stages.page(value, None, origin, time.time())):
                if out.route != "candidates":
                    yield from _events([out], raw_lines)
                    continue
                if candidates is not None:
                    candidates.append(out.value)
                raw_lines[origin] = value
                for decided in stages.decide(out.value, origin):
                    if decided.route == "unique":
                        pending.append((decided.value, origin))
                    else:
                        yield from _events([decided], raw_lines)
                if not pending or pending[-1][1] != origin:
                    raw_lines.pop(origin, None)
            if len(pending) >= settings.entity_batch_size:
                yield from _events(loop.run_until_complete(stages.tag(pending)), raw_lines)
                pending = []
                raw_lines.clear()
        if pending:
            yield from _events(loop.run_until_complete(stages.tag(pending)), raw_lines)
    finally:
        loop.close()


def _events(outs: list[Out], raw_lines: dict[Origin, bytes]) -> Iterator[Event]:
    for out in outs:
        assert out.route not in HOPS
        out = with_raw_page(out, raw_lines.get(out.raw_at)) if out.raw_at is not None else out
        assert out.event is not None
        yield out.event
