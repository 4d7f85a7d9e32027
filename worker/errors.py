"""Which failures become dead letters and which stop the worker.

    Failure
    ├── bad input: becomes a dead_letter.v1 event, the worker goes on
    │   ├── decode: invalid_json, invalid_field, too_large, unsupported_content
    │   ├── clean: empty_after_cleaning, unsupported_content
    │   └── any step: timeout (the page ran past INGEST_PAGE_TIMEOUT_SECONDS),
    │       internal_error (a step raised on this page: the exception and its traceback;
    │       logged at ERROR once per distinct error, counted in ingest_step_failures_total)
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

import logging
import re
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Mapping

from worker.document import Dropped, Failure

log = logging.getLogger(__name__)

MAX_SUMMARY_CHARS = 2000  # the exception's own lines, in the dead letter's detail
MAX_TRACEBACK_CHARS = 16_000  # the innermost frames are kept when a traceback is longer
# The same error (step, exception type, raising line) is logged with its traceback at most once
# in this many seconds; the repeats in between are counted in the next line logged.
FAILURE_LOG_INTERVAL_SECONDS = 600.0
MAX_SIGNATURES = 1000
_FRAME = re.compile(r'^  File "([^"]+)", line (\d+), in (\S+)', re.M)


class BrokerUnavailable(RuntimeError):
    """The broker cannot be used; the message is one sentence saying why and what to check."""


class TopicUnusable(RuntimeError):
    """A topic exists with a layout the worker cannot use; the message names it and the fix."""


def internal_error(exc: BaseException, step: str) -> Dropped:
    """A dead-letter record for a step that raised: the whole exception summary, named by step,
    with the traceback (from the pool process when the step ran there)."""
    summary = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    text = getattr(exc, "remote_traceback", None) or "".join(traceback.format_exception(exc))
    if len(text) > MAX_TRACEBACK_CHARS:
        text = "…" + text[-MAX_TRACEBACK_CHARS:]
    frames = _FRAME.findall(text)
    where = f"{frames[-1][0].rsplit('/', 1)[-1]}:{frames[-1][1]}" if frames else "?"
    signature = f"{step}: {type(exc).__qualname__} at {where}"
    return Dropped(
        "internal_error",
        f"Step '{step}' failed on this page: {summary[:MAX_SUMMARY_CHARS]}",
        Failure(step, signature, text),
    )


def keep_remote_traceback(exc: BaseException) -> BaseException:
    """Attach the formatted traceback to `exc`, so it survives pickling out of a pool process."""
    try:
        exc.remote_traceback = "".join(traceback.format_exception(exc))  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - an exception that takes no attributes keeps only its summary
        pass
    return exc


class FailureLog:
    """Logs a step's exception with its traceback at ERROR, once per distinct error per interval.

    A bug that hits every page would otherwise write a traceback a page; the first occurrence
    of each signature is logged, repeats are counted and reported with the next one logged.
    """

    def __init__(self, interval: float = FAILURE_LOG_INTERVAL_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._last: OrderedDict[str, tuple[float, int]] = OrderedDict()  # signature -> (logged at, repeats)

    def report(self, failure: Failure, detail: str, where: Mapping[str, object]) -> bool:
        """Log `failure` unless its signature was logged within the interval; True when logged."""
        now = self.clock()
        logged_at, repeats = self._last.get(failure.signature, (None, 0))
        if logged_at is not None and now - logged_at < self.interval:
            self._last[failure.signature] = (logged_at, repeats + 1)
            return False
        self._last[failure.signature] = (now, 0)
        self._last.move_to_end(failure.signature)
        while len(self._last) > MAX_SIGNATURES:
            self._last.popitem(last=False)
        since = f" ({repeats} more since it was last logged)" if repeats else ""
        log.error("%s%s; this error is logged at most once in %g s\n%s", detail, since, self.interval,
                  failure.traceback.rstrip(), extra=where)
        return True


def timed_out(step: str, seconds: float) -> Dropped:
    """A dead-letter record for a page that ran past the per-page time limit."""
    return Dropped(
        "timeout",
        f"Step '{step}' took longer than {seconds:g} s on this page and was stopped; "
        "check the page for pathological markup or raise INGEST_PAGE_TIMEOUT_SECONDS.",
    )
