"""`ingest-worker process`: the same steps over a file, one event per page plus cluster updates."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import orjson
from conftest import validate_event

from worker.cli.sample_pages import load_samples


def test_process_accounts_for_every_line(tmp_path):
    samples = load_samples()
    source = tmp_path / "pages.jsonl"
    source.write_bytes(b"\n".join(s.value for s in samples) + b"\n")
    result = subprocess.run(
        [sys.executable, "-m", "worker", "process", str(source)], capture_output=True, check=True, timeout=300
    )
    events = [orjson.loads(line) for line in result.stdout.splitlines()]
    for event in events:
        validate_event(event)
    kinds = Counter(e["event_type"] for e in events)
    assert kinds == {"article.v1": 4, "duplicate.v1": 1, "cluster.v1": 1, "dead_letter.v1": 1}
    expected = Counter(
        {"article": "article.v1", "duplicate": "duplicate.v1", "dead_letter": "dead_letter.v1"}[s.expect]
        for s in samples
    )
    assert kinds - Counter({"cluster.v1": 1}) == expected
    assert "4 article.v1" in result.stderr.decode()


def test_process_reads_stdin_and_is_deterministic(tmp_path):
    seed = next(s for s in load_samples() if s.name == "seed-page.txt")
    runs = [
        subprocess.run(
            [sys.executable, "-m", "worker", "process", "-"],
            input=seed.value + b"\n",
            capture_output=True,
            check=True,
            timeout=300,
        ).stdout
        for _ in range(2)
    ]
    first, second = (orjson.loads(r) for r in runs)
    assert first["id"] == second["id"] and first["text"] == second["text"] and first["entities"] == second["entities"]
