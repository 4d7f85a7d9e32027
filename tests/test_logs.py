"""INGEST_LOG_FORMAT=json: one JSON object per log line, with the page being handled."""

from __future__ import annotations

import io
import logging

import orjson
import pytest
from conftest import collect_events, raw_page, send_pages

from worker.logs import JsonFormatter, add_log_context, log_context, logging_config
from worker.settings import Settings, SettingsError


def capture() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(f"test.{id(stream)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def lines(stream: io.StringIO) -> list[dict]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_time_level_logger_message_and_page():
    logger, stream = capture()
    logger.info("plain\nwith a newline")
    with log_context(topic="pages.raw", partition=2, offset=41):
        add_log_context(url="https://a.example/x")
        logger.warning("inside %s", "a page")
        logger.info("overridden", extra={"offset": 7})
    logger.info("after")
    first, inside, overridden, after = lines(stream)
    assert first["message"] == "plain\nwith a newline" and first["level"] == "INFO"
    assert first["time"].endswith("Z") and first["logger"] == logger.name and "url" not in first
    assert inside == {
        "time": inside["time"],
        "level": "WARNING",
        "logger": logger.name,
        "message": "inside a page",
        "url": "https://a.example/x",
        "topic": "pages.raw",
        "partition": 2,
        "offset": 41,
    }
    assert overridden["offset"] == 7 and overridden["partition"] == 2
    assert "topic" not in after


def test_exceptions_stay_on_one_line():
    logger, stream = capture()
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed")
    [line] = lines(stream)
    assert "ValueError: boom" in line["exception"] and len(stream.getvalue().splitlines()) == 1


def test_log_format_setting():
    assert Settings().log_format == "text" and logging_config("text", "INFO") is None
    assert Settings.from_env({"INGEST_LOG_FORMAT": "json"}).log_format == "json"
    with pytest.raises(SettingsError, match="INGEST_LOG_FORMAT"):
        Settings.from_env({"INGEST_LOG_FORMAT": "xml"})


@pytest.mark.integration
def test_a_running_worker_logs_json_lines(kafka_settings, start_worker):
    settings = kafka_settings.with_overrides(log_format="json", log_level="INFO")
    worker = start_worker(settings)
    send_pages(settings, [(None, b"{cut"), raw_page("https://a.example/empty", html="<html><body></body></html>")])
    letters = collect_events(settings, 2, topics=[settings.dead_letter_topic])
    assert {e["reason"] for e in letters} == {"invalid_json", "empty_after_cleaning"}
    worker.stop()  # graceful: Faust logs its shutdown too
    text = worker.log_path.read_text()
    records = [orjson.loads(line) for line in text.splitlines() if line.strip()]  # every line is JSON
    assert len(records) > 20
    for record in records:
        assert {"time", "level", "logger", "message"} <= record.keys(), record
    loggers = {r["logger"].split(".")[0] for r in records}
    assert {"faust", "worker"} <= loggers, loggers  # Faust's own logging goes through the formatter
    dead = {r["message"].split(":")[0]: r for r in records if r["message"].startswith("dead letter")}
    assert dead["dead letter invalid_json"]["topic"] == settings.input_topic
    assert isinstance(dead["dead letter invalid_json"]["offset"], int) and "url" not in dead["dead letter invalid_json"]
    assert dead["dead letter empty_after_cleaning"]["url"] == "https://a.example/empty"
    assert isinstance(dead["dead letter empty_after_cleaning"]["partition"], int)
