"""`ingest-worker produce`, `tail` and `demo` against the embedded broker, as a user runs them."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys

import orjson
import pytest
from conftest import FIXTURES

from worker.cli import commands
from worker.runtime import worker_process
from worker.settings import Settings

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


class _WorkerStarted(Exception):
    """Raised by the stand-in worker process: the demo got as far as starting its worker."""


def test_demo_talks_plaintext_to_its_own_broker_whatever_the_environment(monkeypatch):
    # A shell configured for a secured production broker: TLS, SASL login, a stricter log level.
    secured = {
        "INGEST_BROKER": "kafka://kafka.internal:9093",
        "INGEST_BROKER_SECURITY_PROTOCOL": "SASL_SSL",
        "INGEST_BROKER_SASL_MECHANISM": "SCRAM-SHA-512",
        "INGEST_BROKER_USERNAME": "ingest",
        "INGEST_BROKER_PASSWORD": "hunter2",
        "INGEST_BROKER_UNUSABLE_SECONDS": "10",
        "INGEST_LOG_LEVEL": "ERROR",
    }
    for name, value in secured.items():
        monkeypatch.setenv(name, value)
    started: list[Settings] = []

    class RecordingWorker:
        def __init__(self, settings: Settings, log_path: object) -> None:
            started.append(settings)

        def __enter__(self) -> None:
            raise _WorkerStarted

        def __exit__(self, *exc_info: object) -> None:
            pass

    monkeypatch.setattr(worker_process, "WorkerProcess", RecordingWorker)
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # the demo's SIGTERM handler, not pytest's

    # The demo creates its topics on its embedded broker (over the connection its settings describe)
    # before it starts the worker with the same settings.
    with pytest.raises(_WorkerStarted):
        commands.demo(argparse.Namespace(serve=False))
    (settings,) = started
    assert settings.broker.startswith("kafka://127.0.0.1:")
    assert settings.broker_security_protocol == "PLAINTEXT"
    assert not settings.broker_username and not settings.broker_password
    assert settings.log_level == "ERROR"  # the rest of the environment still applies


def test_serve_hint_names_the_demo_broker_in_plaintext():
    serve_hint = commands.serve_hint
    plain = serve_hint(Settings(), "kafka://127.0.0.1:4000", "articles.v1")
    assert plain.count("INGEST_BROKER=kafka://127.0.0.1:4000 ingest-worker") == 2  # produce and tail
    assert "SECURITY_PROTOCOL" not in plain
    secured = serve_hint(Settings(broker_security_protocol="SSL"), "kafka://127.0.0.1:4000", "articles.v1")
    to_demo = "INGEST_BROKER=kafka://127.0.0.1:4000 INGEST_BROKER_SECURITY_PROTOCOL=PLAINTEXT ingest-worker"
    assert secured.count(to_demo) == 2
