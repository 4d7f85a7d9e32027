"""`ingest-worker produce` and `tail` against the embedded broker, as a user runs them."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest
from conftest import FIXTURES

pytestmark = pytest.mark.integration


def cli(settings, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    env = {"PATH": "/usr/bin:/bin", **settings.to_environ()}
    return subprocess.run(
        [sys.executable, "-m", "worker", *args], env=env, capture_output=True, timeout=timeout, check=True
    )


def test_produce_files_and_tail_them_back(kafka_settings, tmp_path):
    events = tmp_path / "pages.jsonl"
    events.write_bytes(
        orjson.dumps({"url": "https://a.example/1", "text": "One."})
        + b"\n\n"
        + orjson.dumps({"url": "https://a.example/2", "html": "<p>Two.</p>"})
        + b"\n"
    )
    result = cli(kafka_settings, "produce", str(events))
    assert b"sent 2 pages" in result.stderr
    cli(kafka_settings, "produce", str(FIXTURES / "seed-page.txt"), "--url", "https://seed.example/story")

    tailed = cli(
        kafka_settings, "tail", kafka_settings.input_topic, "--from-beginning", "--max", "3", "--timeout", "30"
    )
    pages = [orjson.loads(line) for line in tailed.stdout.splitlines()]
    assert sorted(p["url"] for p in pages) == [
        "https://a.example/1",
        "https://a.example/2",
        "https://seed.example/story",
    ]
    seed = next(p for p in pages if p["url"] == "https://seed.example/story")
    assert seed["event_type"] == "raw_page.v1" and seed["text"] == (FIXTURES / "seed-page.txt").read_text()


def test_tail_stops_when_idle(kafka_settings):
    result = cli(
        kafka_settings, "tail", kafka_settings.articles_topic, "--from-beginning", "--timeout", "2", timeout=60
    )
    assert result.stdout == b""
