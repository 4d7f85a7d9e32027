"""The settings object is the only reader of the environment, and configures child processes."""

import os
from pathlib import Path

from worker.settings import Settings, child_environment


def test_child_environment_replaces_ingest_variables_and_keeps_the_rest(monkeypatch):
    monkeypatch.setenv("INGEST_INPUT_TOPIC", "from-parent")
    monkeypatch.setenv("INGEST_SOMETHING_STALE", "x")
    monkeypatch.setenv("RUST_LOG", "debug")
    settings = Settings().with_overrides(input_topic="for-child")
    env = child_environment(settings, RUST_LOG="warn", OTHER_DEFAULT="1")
    assert env["INGEST_INPUT_TOPIC"] == "for-child"
    assert "INGEST_SOMETHING_STALE" not in env
    assert env["RUST_LOG"] == "debug"  # the parent's value wins over a default
    assert env["OTHER_DEFAULT"] == "1"
    assert env["PATH"] == os.environ["PATH"]


def test_only_the_settings_module_reads_the_environment():
    package = Path(__file__).resolve().parents[1] / "worker"
    readers = [
        str(path.relative_to(package.parent))
        for path in package.rglob("*.py")
        if path.name != "settings.py" and ("os.environ" in path.read_text() or "os.getenv" in path.read_text())
    ]
    assert readers == []
