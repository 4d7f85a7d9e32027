"""Faults against a real worker: a hostile corpus mixed into real pages while the worker is
SIGKILLed and restarted. Every input must end as exactly one outcome kind that it allows, the
worker must stay alive, and the real pages must get the ids and dedup quality of a run without
faults (the `process` pipeline over the same pages). `bench/faults.py` runs the long versions."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from conftest import FIXTURES, collect_events

from worker.cli.sample_pages import read_page
from worker.evaluation.dedup import run_pipeline, score
from worker.evaluation.faults import (
    Accounting,
    Input,
    account,
    hostile_inputs,
    mixed,
    produce_inputs,
    read_jsonl,
    read_outcomes,
    real_inputs,
)
from worker.settings import Settings
from worker.steps.decode import decode

TRUTH = json.loads((FIXTURES / "dedup" / "truth.json").read_text())
# Inputs that once escaped decode as exceptions: a deeply nested value and a time zone that pushes
# a year-9999 fetched_at past year 9999 in UTC; each must be a dead letter naming its field.
DECODE_EDGES = {"hostile:nested-100k", "hostile:fetched-9999-minus-5h"}
MAX_PAGE_BYTES = 1_000_000


def _real_pages() -> list[Input]:
    pages = real_inputs(read_jsonl(str(FIXTURES / "dedup" / "pages.jsonl.gz")))
    for path in sorted((FIXTURES / "pages" / "html").glob("*.html.gz"))[:3]:
        url = f"https://fixtures.example/{path.name.split('.')[0]}"
        pages.append(Input(f"page:{url}", url.encode(), read_page(path, url, "2025-01-11T12:00:00Z"), url))
    return pages


def _hostile(time_travel: bool) -> list[Input]:
    return [
        item
        for item in hostile_inputs(seed=1, max_page_bytes=MAX_PAGE_BYTES)
        if item.name.startswith("hostile:fetched-") == time_travel
    ]


def _reference(settings: Settings, pages: list[Input]) -> Accounting:
    """The same pages through the steps without Kafka and without faults."""
    events = list(run_pipeline([p.value or b"" for p in pages], settings, {}))
    positions = {(0, n): page for n, page in enumerate(pages)}
    return account(settings.with_overrides(input_topic="file"), positions, events)


def _assert_sound(result: Accounting, inputs: list[Input], settings: Settings, real: list[Input]) -> None:
    assert result.lost == []
    assert result.two_kinds == [], {name: result.outcomes[name] for name in result.two_kinds}
    assert result.unexpected(inputs) == {}
    clean = _reference(settings, real)
    real_names = {p.name for p in real}
    assert [n for n in result.id_changes(clean) if n in real_names] == []
    assert score(TRUTH, result.events).f1 == pytest.approx(score(TRUTH, clean.events).f1)


def test_hostile_inputs_through_the_pipeline_end_as_allowed_outcomes():
    settings = Settings().with_overrides(max_page_bytes=MAX_PAGE_BYTES)
    # The `process` command reads lines: keep the inputs that are one line.
    every = _hostile(time_travel=False) + _hostile(time_travel=True)
    hostile = [h for h in every if h.value and len(h.value.splitlines()) == 1]
    assert len(hostile) > 30
    events = list(run_pipeline([h.value or b"" for h in hostile], settings, {}))
    positions = {(0, n): h for n, h in enumerate(hostile, start=1)}
    result = account(settings.with_overrides(input_topic="file"), positions, events)
    assert result.lost == []
    assert result.two_kinds == []
    assert result.unexpected(hostile) == {}


def test_decode_names_the_field_of_deep_nesting_and_out_of_range_timestamps():
    edges = [item for item in hostile_inputs(seed=1, max_page_bytes=MAX_PAGE_BYTES) if item.name in DECODE_EDGES]
    assert {item.name for item in edges} == DECODE_EDGES
    for item in edges:
        try:
            found = decode(item.value, item.key, MAX_PAGE_BYTES)
        except Exception as exc:
            pytest.fail(f"{item.name}: decode raised {exc!r}")
        assert f"dead:{getattr(found, 'reason', '')}" in item.expect


@pytest.mark.integration
def test_hostile_corpus_and_kills_leave_every_page_accounted_for(kafka_settings, start_worker):
    settings = kafka_settings.with_overrides(
        max_page_bytes=MAX_PAGE_BYTES, page_timeout_seconds=20.0, session_timeout_seconds=4.0
    )
    real = _real_pages()
    inputs = mixed(real, _hostile(time_travel=False), seed=1)
    half = len(inputs) // 2

    worker = start_worker(settings)
    positions = asyncio.run(produce_inputs(settings, inputs[:half]))
    collect_events(settings, 5, timeout=30)
    worker.stop(kill=True)  # first kill: mid-stream, pages in flight
    positions |= asyncio.run(produce_inputs(settings, inputs[half:]))
    worker = start_worker(settings)
    time.sleep(3)
    worker.stop(kill=True)  # second kill: pages taken from Kafka wait for the pool's warm-up
    worker = start_worker(settings)

    result = asyncio.run(read_outcomes(settings, positions, deadline_seconds=150, settle_seconds=3))
    assert worker.process is not None and worker.process.poll() is None, worker.log_tail()
    _assert_sound(result, inputs, settings, real)


@pytest.mark.integration
def test_time_travel_fetched_at_leaves_dedup_of_real_pages_unchanged(kafka_settings, start_worker):
    settings = kafka_settings.with_overrides(max_page_bytes=MAX_PAGE_BYTES)
    real = _real_pages()
    odd = {item.name.removeprefix("hostile:fetched-"): item for item in _hostile(time_travel=True)}
    future = [odd["2999"], odd["9999"], odd["missing"]]  # missing: the produce time, two years on
    past = [odd["epoch-0"], odd["1969"], odd["year-1"]]
    start_worker(settings)
    positions: dict[tuple[int, int], Input] = {}
    # In steps, so the dedup owner sees the real pages' window start before the odd stamps.
    for batch in (real[:5], future, real[5:], past):
        positions |= asyncio.run(produce_inputs(settings, batch))
        asyncio.run(read_outcomes(settings, positions, deadline_seconds=10, settle_seconds=1))
    result = asyncio.run(read_outcomes(settings, positions, deadline_seconds=15, settle_seconds=3))
    _assert_sound(result, [*real, *future, *past], settings, real)
