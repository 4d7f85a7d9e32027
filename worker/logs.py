"""Log lines as text (the default) or as one JSON object a line for cluster log pipelines.

`INGEST_LOG_FORMAT=json` gives `{"time", "level", "logger", "message", ...}` per line, plus the
page being handled (`url`, `topic`, `partition`, `offset`) when known: from `extra=` on the call,
else from `log_context`, which the agents set around each message. Faust's and aiokafka's own
loggers go through the same handler.
"""

from __future__ import annotations

import logging
import logging.config
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

CONTEXT_FIELDS = ("url", "topic", "partition", "offset")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

_context: ContextVar[dict[str, Any] | None] = ContextVar("ingest_log_context", default=None)


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Attach page fields (topic, partition, offset, url) to every log line inside the block."""
    token = _context.set({**(_context.get() or {}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def add_log_context(**fields: Any) -> None:
    """Add fields learnt later (e.g. the url once the page is decoded) to the current block."""
    current = _context.get()
    if current is not None:
        current.update(fields)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (RFC 3339 UTC), level, logger, message, page context."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a single line of JSON (newlines in messages are escaped)."""
        stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        line: dict[str, Any] = {
            "time": stamp.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = _context.get() or {}
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, context.get(name))
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(line, default=str).decode()


def logging_config(log_format: str, level: str) -> dict[str, Any] | None:
    """A `logging.config.dictConfig` for the format (None = Faust's own text logging)."""
    if log_format == "text":
        return None
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "root": {"level": level, "handlers": ["default"]},
    }


def configure(log_format: str, level: str) -> dict[str, Any] | None:
    """Set up the root logger for the format now; returns the config to hand on to Faust's worker."""
    config = logging_config(log_format, level)
    if config is None:
        logging.basicConfig(level=level, format=TEXT_FORMAT)
    else:
        logging.config.dictConfig(config)
        logging.captureWarnings(True)  # warnings become log lines, not bare stderr text
    return logging_config(log_format, level)  # a fresh copy: dictConfig consumes parts of what it is given
