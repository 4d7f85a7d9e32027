"""A process pool for the CPU-heavy steps, with a per-call time limit, lanes and recycling.

Cleaning and entity tagging hold the GIL for tens of milliseconds to seconds; running them in
the event loop would starve Faust's heartbeats. Each pool process is driven by one thread of
the parent over a pipe, so the pool can do what `ProcessPoolExecutor` cannot:

- the time limit counts from the moment a process starts the call, never the time it queued;
- a call that overruns gets only its own process killed and replaced: calls running in the
  other processes go on, and a call whose process died under it is run again once;
- a process is replaced after `max_tasks_per_process` calls, so slow leaks (parser caches,
  fragmented heaps) cannot grow without bound; the warm-up (model loading) runs again in every
  new process before it takes a call;
- calls wait in one queue per lane (by default, per function), and a free process takes from
  the lanes in turn, so a burst of cleaning cannot hold tagging back, nor the reverse.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from worker.errors import keep_remote_traceback

T = TypeVar("T")
log = logging.getLogger(__name__)

# A process that has not finished its warm-up (e.g. loading a model) after this long is replaced.
STARTUP_TIMEOUT_SECONDS = 300.0
# The pool's processes run this much nicer than the worker's main process. Every page goes
# through the main process's one event loop (the Kafka clients and their heartbeats, the dedup
# decisions, every send), so when the CPU is short it comes first; the pool still gets every
# cycle the event loop leaves. Its warm-up (the cleaning stack and the entity models, seconds of
# CPU a process) no longer delays a restarted dedup owner's join and recovery.
POOL_NICENESS = 5


class CallTimeout(Exception):
    """The call ran past its time limit; its process was killed."""


class ProcessDied(Exception):
    """The process running the call died twice (e.g. the call crashes the interpreter)."""


class PoolClosed(Exception):
    """The pool was closed before the call could run."""


@dataclass(eq=False)
class _Call:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    timeout: float
    lane: str
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[tuple[Any, float]]
    submitted: float = field(default_factory=time.monotonic)
    attempts: int = 0

    def resolve(self, result: Any = None, error: BaseException | None = None, waited: float = 0.0) -> None:
        """Complete the caller's future from any thread (a no-op once the caller gave up)."""

        def complete() -> None:
            if self.future.done():
                return
            if error is not None:
                self.future.set_exception(error)
            else:
                self.future.set_result((result, waited))

        with contextlib.suppress(RuntimeError):  # the caller's loop is closed: nobody waits
            self.loop.call_soon_threadsafe(complete)


class StepPool:
    """Runs picklable functions in worker processes, `await pool.run(fn, arg, timeout=...)`."""

    def __init__(
        self,
        size: int,
        on_restart: Callable[[], None] | None = None,
        max_tasks_per_process: int = 0,
    ) -> None:
        self.size = size
        self.max_tasks_per_process = max_tasks_per_process  # 0 = never recycle
        self._on_restart = on_restart
        # forkserver: children do not inherit the event loop, sockets or Kafka client threads.
        self._context = multiprocessing.get_context("forkserver")
        self._cond = threading.Condition()
        self._lanes: dict[str, deque[_Call]] = {}
        self._last_lane = ""
        self._initializer: Callable[[], Any] | None = None
        self._warm_generation = 0
        self._closed = False
        self._slots = [_Slot(self, number) for number in range(size)]
        for slot in self._slots:
            slot.thread.start()

    async def run(
        self, fn: Callable[..., T], *args: Any, timeout: float, lane: str | None = None
    ) -> tuple[T, float]:
        """`fn(*args)` in a worker process; returns (result, seconds waited for a free process).

        `timeout` counts from the start of the call in its process. Calls of one `lane` (default:
        the function's name) queue together; free processes serve the lanes in turn.
        """
        loop = asyncio.get_running_loop()
        call = _Call(fn, args, timeout, lane or _lane_of(fn), loop, loop.create_future())
        with self._cond:
            if self._closed:
                raise PoolClosed("the step pool is closed")
            self._lanes.setdefault(call.lane, deque()).append(call)
            self._cond.notify_all()  # warm_up waits on the same condition: wake the slots too
        try:
            return await call.future
        finally:
            if not call.future.done():  # the caller was cancelled: drop the call if it still queues
                with self._cond, contextlib.suppress(ValueError):
                    self._lanes[call.lane].remove(call)

    def warm_up(self, fn: Callable[[], Any]) -> None:
        """Run `fn` in every worker process now and in every process started later (e.g. load a model).

        Blocks until each current process has run it; call it from a thread, not the event loop.
        """
        with self._cond:
            self._initializer = fn
            self._warm_generation += 1
            generation = self._warm_generation
            self._cond.notify_all()
            while not self._closed and any(s.warm_generation < generation for s in self._slots):
                self._cond.wait(timeout=1.0)
            errors = [s.warm_error for s in self._slots if s.warm_error is not None]
        if errors:
            raise errors[0]

    def pids(self) -> list[int]:
        """Process ids of the live worker processes (for metrics and tests)."""
        return [pid for slot in self._slots if (pid := slot.pid) is not None]

    def problem(self) -> str | None:
        """Why the pool can no longer run calls (closed, or a thread feeding its processes died), or None.

        A process being replaced (after a timeout, a crash or recycling) is not a problem: its
        thread starts a new one.
        """
        if self._closed:
            return "the step pool is closed"
        dead = [slot.thread.name for slot in self._slots if not slot.thread.is_alive()]
        if dead:
            return f"the step pool lost {len(dead)} of its {self.size} process threads ({', '.join(dead)})"
        return None

    def queued(self) -> dict[str, int]:
        """Calls waiting for a process, per lane."""
        with self._cond:
            return {lane: len(calls) for lane, calls in self._lanes.items()}

    def close(self) -> None:
        """Stop the worker processes; calls still queued fail with PoolClosed."""
        with self._cond:
            self._closed = True
            pending = [call for calls in self._lanes.values() for call in calls]
            self._lanes.clear()
            self._cond.notify_all()
        for call in pending:
            call.resolve(error=PoolClosed("the step pool was closed"))
        for slot in self._slots:
            slot.stop_process()  # its thread sees the pipe close and exits
        for slot in self._slots:
            slot.thread.join(timeout=5)

    # -- used by the slots' threads --------------------------------------------------------------

    def _next_call(self, slot: _Slot) -> _Call | None:
        """Block until a call is due (lanes served in turn), the warm-up changed, or the pool closed."""
        with self._cond:
            while True:
                if self._closed:
                    return None
                if slot.warm_generation < self._warm_generation:
                    return None
                lane = self._next_lane()
                if lane is not None:
                    self._last_lane = lane
                    return self._lanes[lane].popleft()
                self._cond.wait()

    def _next_lane(self) -> str | None:
        # Round robin: the first lane with a waiting call after the lane served last.
        order = list(self._lanes)
        start = order.index(self._last_lane) + 1 if self._last_lane in self._lanes else 0
        for step in range(len(order)):
            lane = order[(start + step) % len(order)]
            if self._lanes[lane]:
                return lane
        return None

    def _requeue(self, call: _Call) -> None:
        with self._cond:
            if self._closed:
                call.resolve(error=PoolClosed("the step pool was closed"))
                return
            self._lanes.setdefault(call.lane, deque()).appendleft(call)
            self._cond.notify_all()  # warm_up waits on the same condition: wake the slots too

    def _restarted(self) -> None:
        if self._on_restart is not None:
            try:
                self._on_restart()
            except Exception:
                log.exception("the pool's on_restart callback failed")


class _Slot:
    """One pool process and the thread that feeds it calls, replacing it when needed."""

    def __init__(self, pool: StepPool, number: int) -> None:
        self.pool = pool
        self.process: Any = None
        self.conn: Connection | None = None
        self.tasks = 0
        self.warm_generation = 0
        self.warm_error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, name=f"step-pool-{number}", daemon=True)

    @property
    def pid(self) -> int | None:
        process = self.process
        return process.pid if process is not None and process.is_alive() else None

    def _serve(self) -> None:
        pool = self.pool
        try:
            while not pool._closed:
                if self.process is None and not self._start():
                    time.sleep(1.0)  # could not start (or warm up) a process: do not spin
                    continue
                call = pool._next_call(self)
                if call is None:
                    if not pool._closed:
                        self._warm_again()
                    continue
                self._run(call)
        finally:
            self.kill()

    def _start(self) -> bool:
        pool = self.pool
        with pool._cond:
            initializer, generation = pool._initializer, pool._warm_generation
        parent, child = pool._context.Pipe()
        process = pool._context.Process(target=_serve_calls, args=(child, initializer), daemon=True)
        try:
            process.start()
        except Exception as exc:
            log.exception("could not start a step-pool process")
            parent.close()
            self._warmed(generation, exc)
            return False
        finally:
            child.close()
        self.process, self.conn, self.tasks = process, parent, 0
        started = time.monotonic()
        ok, error = self._receive(STARTUP_TIMEOUT_SECONDS)
        if not ok:
            log.error("a step-pool process failed to start: %s", error)
            self.kill()
            self._warmed(generation, RuntimeError(f"a pool process failed to start: {error}"))
            return False
        if isinstance(error, BaseException):
            log.error("the warm-up failed in a new step-pool process: %r", error)
        log.info("step-pool process %s ready in %.1f s", process.pid, time.monotonic() - started)
        self._warmed(generation, error if isinstance(error, BaseException) else None)
        return True

    def _warm_again(self) -> None:
        """Run the current warm-up in the live process (warm_up was called after it started)."""
        pool = self.pool
        with pool._cond:
            initializer, generation = pool._initializer, pool._warm_generation
        assert self.conn is not None and initializer is not None
        try:
            self.conn.send(("call", initializer, ()))
        except (OSError, ValueError) as exc:
            self._warmed(generation, exc)
            self.kill()
            return
        started = time.monotonic()
        ok, reply = self._receive(STARTUP_TIMEOUT_SECONDS)
        log.info("step-pool process %s warmed up in %.1f s", self.pid, time.monotonic() - started)
        if not ok:
            self._warmed(generation, RuntimeError(f"the warm-up did not finish: {reply}"))
            self.kill()
            return
        _, value, _ = reply
        self._warmed(generation, value if reply[0] == "error" else None)

    def _warmed(self, generation: int, error: BaseException | None) -> None:
        with self.pool._cond:
            self.warm_generation = generation
            self.warm_error = error
            self.pool._cond.notify_all()

    def _run(self, call: _Call) -> None:
        pool = self.pool
        assert self.conn is not None
        if call.future.done():
            return  # the caller gave up while the call queued
        dispatched = time.monotonic()
        call.attempts += 1
        try:
            self.conn.send(("call", call.fn, call.args))
        except (OSError, EOFError):
            self._died(call, "its process died before the call started")
            return
        except Exception as exc:  # arguments that do not pickle: the caller's error, not the pool's
            call.resolve(error=exc)
            self.kill()  # the pipe may hold half a message
            return
        ok, reply = self._receive(call.timeout)
        waited = dispatched - call.submitted
        if ok:
            status, value, _ = reply
            if status == "ok":
                call.resolve(result=value, waited=waited)
            else:
                call.resolve(error=value)
            self.tasks += 1
            if pool.max_tasks_per_process and self.tasks >= pool.max_tasks_per_process:
                self.retire()
            return
        if reply == "timeout":
            name = getattr(call.fn, "__name__", str(call.fn))
            log.warning("%s ran past %g s; replacing its pool process", name, call.timeout)
            self.kill()
            pool._restarted()
            call.resolve(error=CallTimeout(f"{name} ran past {call.timeout:g} s"))
            return
        self._died(call, reply)

    def _died(self, call: _Call, why: str) -> None:
        self.kill()
        self.pool._restarted()
        if call.attempts < 2:
            log.warning("a step-pool process died (%s); running its call again", why)
            self.pool._requeue(call)
        else:
            call.resolve(error=ProcessDied(f"the pool process died twice running {call.fn!r}: {why}"))

    def _receive(self, timeout: float) -> tuple[bool, Any]:
        """(True, message) or (False, "timeout" / why the process is gone)."""
        conn = self.conn
        if conn is None:
            return False, "no process"
        try:
            if not conn.poll(timeout):
                return False, "timeout"
            return True, conn.recv()
        except (OSError, EOFError, ValueError) as exc:
            process = self.process
            code = process.exitcode if process is not None else None
            return False, f"exit code {code} ({type(exc).__name__})"
        except Exception as exc:  # a whole message arrived but does not unpickle here
            return True, ("error", RuntimeError(f"a reply from the pool process could not be read: {exc!r}"), 0.0)

    def retire(self) -> None:
        """Let the process exit after its last call; the next call starts a fresh one."""
        conn, process = self.conn, self.process
        self.conn, self.process = None, None
        if conn is not None:
            with contextlib.suppress(OSError, ValueError):
                conn.send(("exit",))
            conn.close()
        if process is not None:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)

    def stop_process(self) -> None:
        """Kill the process from another thread, leaving the cleanup to the slot's own thread."""
        process = self.process
        if process is not None:
            with contextlib.suppress(Exception):
                process.kill()

    def kill(self) -> None:
        """Kill the process at once (a stuck call never returns by itself)."""
        conn, process = self.conn, self.process
        self.conn, self.process = None, None
        if process is not None:
            with contextlib.suppress(Exception):
                process.kill()
                process.join(timeout=5)
        if conn is not None:
            conn.close()


def _lane_of(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', repr(fn))}"


def _serve_calls(conn: Connection, initializer: Callable[[], Any] | None) -> None:
    """A pool process (`POOL_NICENESS` nicer than its parent): run the warm-up, then calls from the
    pipe until told to exit."""
    with contextlib.suppress(OSError):
        os.nice(POOL_NICENESS)
    warm_error: BaseException | None = None
    if initializer is not None:
        try:
            initializer()
        except Exception as exc:
            warm_error = exc
    try:
        conn.send(warm_error)
    except Exception:  # an exception that does not pickle
        conn.send(RuntimeError(repr(warm_error)))
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return  # the parent is gone
        if message[0] == "exit":
            return
        _, fn, args = message
        started = time.monotonic()
        try:
            reply = ("ok", fn(*args), started)
        except Exception as exc:
            reply = ("error", keep_remote_traceback(exc), started)
        try:
            conn.send(reply)
        except Exception as exc:  # a result (or an exception) that does not pickle
            conn.send(("error", RuntimeError(f"the result of {fn!r} could not be sent back: {exc!r}"), started))
