"""Which failures become dead letters and which stop the worker.

    Failure
    ├── bad input: becomes a dead_letter.v1 event, the worker goes on
    │   ├── decode: invalid_json, invalid_field, too_large, unsupported_content
    │   ├── clean: empty_after_cleaning, unsupported_content
    │   └── any step: timeout (the page ran past INGEST_PAGE_TIMEOUT_SECONDS),
    │       internal_error (a step raised on this page: the exception's last line)
    └── the platform's fault: the worker stops with a non-zero exit and is restarted
        ├── BrokerUnavailable: at start-up the broker cannot be used (unreachable, TLS or
        │   login refused); the command exits with that one sentence
        ├── TopicUnusable: at start-up a topic of the dedup owner exists with a partition count
        │   it cannot work with; `run` exits with that one sentence
        └── broker errors after bounded retries while running (Kafka down, no authorisation)

A handler that raises on one page (our bug) still leaves that page a dead letter
(`internal_error`, naming the step), so no page is lost to a bug either.

A page is acknowledged only after the event that accounts for it has been acknowledged by
the broker, so a crash never loses a page: it is processed again on restart, with the same id.
"""

from __future__ import annotations

import traceback

from worker.document import Dropped


class BrokerUnavailable(RuntimeError):
    """The broker cannot be used; the message is one sentence saying why and what to check."""


class TopicUnusable(RuntimeError):
    """A topic exists with a layout the worker cannot use; the message names it and the fix."""


def internal_error(exc: BaseException, step: str) -> Dropped:
    """A dead-letter record for a step that raised: the exception's last line, named by step."""
    last_line = traceback.format_exception_only(type(exc), exc)[-1].strip()
    return Dropped("internal_error", f"Step '{step}' failed on this page: {last_line[:500]}")


def timed_out(step: str, seconds: float) -> Dropped:
    """A dead-letter record for a page that ran past the per-page time limit."""
    return Dropped(
        "timeout",
        f"Step '{step}' took longer than {seconds:g} s on this page and was stopped; "
        "check the page for pathological markup or raise INGEST_PAGE_TIMEOUT_SECONDS.",
    )
