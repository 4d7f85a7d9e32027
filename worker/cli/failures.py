"""How the commands report a mistake: one line saying what is wrong and how to fix it.

A user's mistake (a missing file, a setting out of range, a port in use) is no bug of the
worker: the command prints one line on stderr and exits with status 2, with no traceback.
`--debug` (or `INGEST_LOG_LEVEL=DEBUG`) adds the traceback. Under `INGEST_LOG_FORMAT=json`
the line is a JSON object like every other log line, so a log pipeline keeps it.
"""

from __future__ import annotations

import errno
import logging
import sys
import traceback
from dataclasses import dataclass
from typing import IO

from worker.logs import JsonFormatter


class UsageError(Exception):
    """A command called with something it cannot use; the message says what and how to fix it."""


@dataclass(frozen=True, slots=True)
class Reporter:
    """Writes the command's warnings and its fatal line in the configured log format."""

    command: str
    log_format: str = "text"
    debug: bool = False
    stream: IO[str] | None = None

    def warn(self, message: str) -> None:
        """One warning line (e.g. an unknown `INGEST_*` variable); the command goes on."""
        self._write(logging.WARNING, message, None)

    def fatal(self, message: str, exc: BaseException | None = None) -> None:
        """The one line that ends the command; with the traceback when debugging."""
        self._write(logging.ERROR, message, exc if self.debug else None)

    def _write(self, level: int, message: str, exc: BaseException | None) -> None:
        stream = self.stream if self.stream is not None else sys.stderr
        name = f"ingest-worker {self.command}".strip()
        if self.log_format == "json":
            exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
            record = logging.LogRecord(name, level, "", 0, message, None, exc_info)
            stream.write(JsonFormatter().format(record) + "\n")
        else:
            if exc is not None:
                stream.write("".join(traceback.format_exception(exc)))
            prefix = "warning: " if level == logging.WARNING else ""
            stream.write(f"{name}: {prefix}{message}\n")
        stream.flush()


def describe_os_error(exc: OSError) -> str | None:
    """One line for a file the user named that cannot be used, or None for other OS errors."""
    name = exc.filename
    if name is None:
        return None
    if isinstance(exc, FileNotFoundError):
        return f"{name}: no such file or directory; check the path"
    if isinstance(exc, IsADirectoryError):
        return f"{name} is a directory; give a file"
    if isinstance(exc, NotADirectoryError):
        return f"{name}: a part of this path is a file, not a directory; check the path"
    if isinstance(exc, PermissionError):
        return f"{name}: permission denied; check the file's permissions or choose another path"
    if exc.errno == errno.ENOSPC:
        return f"{name}: no space left on the device; free some space or choose another path"
    return f"{name}: {exc.strerror or exc}"
