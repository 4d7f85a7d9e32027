"""Settings read the environment once; the pool enforces its time limit and recovers."""

from __future__ import annotations

import time

import pytest

from worker.runtime.pool import CallTimeout, StepPool
from worker.settings import Secret, Settings


def test_settings_from_environment():
    settings = Settings.from_env(
        {
            "INGEST_TOPIC_PARTITIONS": "8",
            "INGEST_PAGE_TIMEOUT_SECONDS": "2.5",
            "INGEST_BROKER_SECURITY_PROTOCOL": "SASL_SSL",
            "INGEST_BROKER_USERNAME": "ingest",
            "INGEST_BROKER_PASSWORD": "hunter2",
            "OTHER": "x",
        }
    )
    assert settings.topic_partitions == 8 and settings.page_timeout_seconds == 2.5
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.describe())
    assert settings.broker_password.reveal() == "hunter2"
    assert Settings.from_env(settings.to_environ()) == settings


def test_settings_reject_bad_numbers():
    with pytest.raises(ValueError, match="INGEST_TOPIC_PARTITIONS"):
        Settings.from_env({"INGEST_TOPIC_PARTITIONS": "many"})


def test_settings_are_frozen():
    with pytest.raises(AttributeError):
        Settings().broker = "x"  # type: ignore[misc]


def test_secret_masks():
    assert str(Secret("x")) == "**********" and "x" not in repr(Secret("x"))


async def test_pool_runs_times_out_and_recovers():
    restarts = []
    pool = StepPool(1, on_restart=lambda: restarts.append(1))
    try:
        result, waited = await pool.run(pow, 2, 10, timeout=30)
        assert result == 1024 and waited >= 0
        started = time.monotonic()
        with pytest.raises(CallTimeout):
            await pool.run(time.sleep, 30, timeout=1)
        assert time.monotonic() - started < 10
        assert restarts == [1]
        result, _ = await pool.run(pow, 3, 2, timeout=30)
        assert result == 9
    finally:
        pool.close()
