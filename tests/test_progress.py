"""Progress on stderr: a throttled live line on a terminal, one summary line always."""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess
import sys

from worker.cli.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_live_line_is_throttled_and_shows_rate_and_time_left():
    stream, clock = Terminal(), Clock()
    progress = Progress("processed", total=1000, stream=stream, clock=clock)
    for _ in range(400):  # 400 pages in 4 s: 100/s
        clock.now += 0.01
        progress.advance()
    redraws = stream.getvalue().count("\r")
    assert 5 <= redraws <= 10  # every half second, not once per page
    last = stream.getvalue().rsplit("\r", 1)[1]
    assert re.fullmatch(r"processed 3\d\d/1000 pages \(3\d%\), 100.0/s, ETA 0:0[67]\x1b\[K", last), last
    assert progress.status() == "processed 400/1000 pages (40%), 100.0/s, ETA 0:06"
    progress.finish("3 article.v1")
    final = stream.getvalue().rsplit("\r", 1)[1]
    assert final == "\x1b[Kprocessed 400 pages in 4.0 s (100.0/s); 3 article.v1\n"


def test_not_a_terminal_gets_only_the_summary():
    stream, clock = io.StringIO(), Clock()
    progress = Progress("sent", stream=stream, clock=clock)
    for item in progress.iterate(range(5)):
        clock.now += 1
        assert item < 5
    progress.finish()
    assert stream.getvalue() == "sent 5 pages in 5.0 s (1.0/s)\n"


def test_unknown_total_shows_count_and_rate():
    stream, clock = Terminal(), Clock()
    progress = Progress("processed", stream=stream, clock=clock, unit="lines")
    clock.now += 2
    progress.advance(10)
    assert progress.status() == "processed 10 lines, 5.0/s"


def test_process_command_draws_progress_on_a_terminal(tmp_path):
    from worker.cli.sample_pages import load_samples

    source = tmp_path / "pages.jsonl"
    source.write_bytes(b"\n".join(s.value for s in load_samples()[:3]) + b"\n")
    controller, terminal = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "worker", "process", str(source), "-o", str(tmp_path / "out.jsonl")],
            stderr=terminal,
            timeout=300,
        )
        os.close(terminal)
        terminal = -1
        written = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal closed: everything was read
                break
            if not chunk:
                break
            written += chunk
    finally:
        os.close(controller)
        if terminal >= 0:
            os.close(terminal)
    assert done.returncode == 0
    text = written.decode()
    assert re.search(r"\rprocessed \d/3 lines \(\d+%\), [\d.]+/s, ETA \d+:\d\d", text), text
    assert re.search(r"processed 3 lines in [\d.]+ s \([\d.]+/s\); 3 article.v1\s*$", text), text
