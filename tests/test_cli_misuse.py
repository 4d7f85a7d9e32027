"""The command used wrongly, as a new user would: each mistake ends in one line, a non-zero exit
(2 for a mistake in the command, a file or a setting) and no traceback. Real runs of the CLI."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from worker.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
PAGES = FIXTURES / "dedup" / "pages.jsonl.gz"
UNREACHABLE = "kafka://127.0.0.1:9"  # the discard port: nothing listens there


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
        stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """`ingest-worker ARGS` in a fresh process with only the given INGEST_* variables."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    environment.update(PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "worker", *args], env=environment, cwd=cwd or ROOT, input=stdin,
        capture_output=True, timeout=120, text=stdin is None,
    )


def one_line(result: subprocess.CompletedProcess, status: int = 2, *needles: str) -> str:
    """Check the run failed with `status` and one stderr line holding every needle; return it."""
    err = result.stderr if isinstance(result.stderr, str) else result.stderr.decode()
    lines = err.strip().splitlines()
    assert result.returncode == status, (result.returncode, err)
    assert "Traceback" not in err and len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """A folder of wrong inputs: an HTML page, a PNG, an ELF binary, a fake and a truncated gzip."""
    (tmp_path / "page.html").write_text("<!DOCTYPE html><html><body><p>Hello</p></body></html>\n")
    (tmp_path / "other.html").write_text("<html><body><p>Other</p></body></html>\n")
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    shutil.copy(sys.executable, tmp_path / "program.html")
    (tmp_path / "fake.jsonl.gz").write_text('{"url": "https://example.com/a", "html": "<p>x</p>"}\n')
    whole = PAGES.read_bytes()
    (tmp_path / "cut.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "pages.jsonl").write_bytes(gzip.decompress(whole))
    (tmp_path / "folder").mkdir()
    return tmp_path


# Files


def test_process_a_missing_file(files):
    one_line(cli("process", str(files / "nothing.jsonl")), 2, "nothing.jsonl", "no such file")


def test_process_a_directory(files):
    one_line(cli("process", str(files / "folder")), 2, "is a directory")


def test_process_a_gz_that_is_not_gzip(files):
    one_line(cli("process", str(files / "fake.jsonl.gz")), 2, "not gzip-compressed", "rename it")


def test_process_a_truncated_gz_leaves_no_output_file(files):
    out = files / "out" / "events.jsonl"
    out.parent.mkdir()
    one_line(cli("process", str(files / "cut.jsonl.gz"), "-o", str(out)), 2, "cut short", "copy it again")
    assert list(out.parent.iterdir()) == []  # neither the output nor a partial file


def test_process_into_a_missing_directory(files):
    line = one_line(cli("process", str(files / "pages.jsonl"), "-o", "/nonexistent/dir/out.jsonl"), 2)
    assert "/nonexistent/dir does not exist" in line and "create it" in line


@pytest.mark.parametrize("name, says", [("page.html", "looks like HTML"), ("image.png", "PNG image"),
                                        ("program.html", "ELF executable")])
def test_process_refuses_what_is_not_jsonl(files, name, says):
    line = one_line(cli("process", str(files / name)), 2, "is not JSONL", says)
    if name == "page.html":
        assert "jq -cRs" in line  # how to wrap a page


def test_process_refuses_html_on_stdin(files):
    result = cli("process", env={}, stdin=(files / "page.html").read_bytes())
    one_line(result, 2, "stdin is not JSONL")
    assert result.stdout == b""


def test_produce_refuses_binary_files(files):
    one_line(cli("produce", str(files / "image.png"), env={"INGEST_BROKER": UNREACHABLE}), 2, "PNG image",
             "not a web page")
    one_line(cli("produce", str(files / "program.html"), env={"INGEST_BROKER": UNREACHABLE}), 2, "ELF executable")


def test_produce_refuses_one_url_for_many_files(files):
    result = cli("produce", str(files / "page.html"), str(files / "other.html"), "--url", "https://example.com/a",
                 env={"INGEST_BROKER": UNREACHABLE})
    one_line(result, 2, "--url names one page but 2", "its own --url")
    result = cli("produce", str(files / "pages.jsonl"), "--url", "https://example.com/a",
                 env={"INGEST_BROKER": UNREACHABLE})
    one_line(result, 2, "carry their own url")


def test_produce_missing_directory_truncated_and_not_jsonl_files(files):
    env = {"INGEST_BROKER": UNREACHABLE}
    one_line(cli("produce", str(files / "nothing.html"), env=env), 2, "no such file")
    one_line(cli("produce", str(files / "folder"), env=env), 2, "is a directory")
    one_line(cli("produce", str(files / "cut.jsonl.gz"), env=env), 2, "cut short")
    (files / "wrong.jsonl").write_text("<html>not events</html>\n")
    one_line(cli("produce", str(files / "wrong.jsonl"), env=env), 2, "is not JSONL")


def test_produce_to_a_broker_that_is_not_there(files):
    one_line(cli("produce", str(files / "page.html"), env={"INGEST_BROKER": UNREACHABLE}), 1, "127.0.0.1:9")


def test_eval_with_wrong_files(files):
    one_line(cli("eval", "dedup", "--pages", str(files / "nothing"), "--truth", str(files / "nothing")), 2,
             "no such file")
    one_line(cli("eval", "dedup", "--pages", str(files / "cut.jsonl.gz"), "--truth", str(files / "cut.jsonl.gz")),
             2, "cut short")
    truth = FIXTURES / "dedup" / "truth.json"
    one_line(cli("eval", "dedup", "--pages", str(files / "folder"), "--truth", str(truth)), 2, "is a directory")
    one_line(cli("eval", "dedup", "--pages", str(PAGES), "--truth", str(files / "pages.jsonl")), 2,
             "is not JSON", "the truth file")
    one_line(cli("eval", "dedup", "--pages", str(PAGES), "--truth", str(truth), "--events-out", "/nonexistent/x"),
             2, "/nonexistent does not exist")
    one_line(cli("eval", "entities", "--gold", str(files / "folder")), 2, "is a directory")
    one_line(cli("eval", "extraction", "--data", str(files / "folder")), 2, "ground-truth.json")
    one_line(cli("eval", "metadata", "--data", str(files / "folder")), 2, "ground-truth.json")
    one_line(cli("eval", "metadata"), 2, "--data")


# Settings and ports


@pytest.mark.parametrize(
    "variable, value, says",
    [
        ("INGEST_WORKERS", "-3", "at least 0"),
        ("INGEST_WORKERS", "many", "not a whole number"),
        ("INGEST_TOPIC_PARTITIONS", "0", "at least 1"),
        ("INGEST_DEDUP_WINDOW_DAYS", "-1", "above 0"),
        ("INGEST_PAGE_TIMEOUT_SECONDS", "0", "above 0"),
        ("INGEST_PAGE_TIMEOUT_SECONDS", "-5", "above 0"),
        ("INGEST_PAGE_TIMEOUT_SECONDS", "nan", "not a finite number"),
        ("INGEST_METRICS_PORT", "99999", "from 1 to 65535"),
        ("INGEST_BROKER", "notaurl", "host:port"),
        ("INGEST_BROKER", "http://broker:9092", "kafka://"),
        ("INGEST_LOG_LEVEL", "loud", "DEBUG, INFO"),
        ("INGEST_LOG_FORMAT", "xml", "text, json"),
        ("INGEST_INPUT_TOPIC", "pages raw", "topic name"),
        ("INGEST_BROKER_SECURITY_PROTOCOL", "TLS", "PLAINTEXT"),
    ],
)
def test_run_stops_on_a_setting_it_cannot_use(variable, value, says):
    line = one_line(cli("run", env={"INGEST_BROKER": UNREACHABLE, variable: value}), 2,
                    variable, says)
    assert line.startswith("ingest-worker run: ")


def test_every_command_checks_settings_first(files):
    one_line(cli("process", str(files / "pages.jsonl"), env={"INGEST_WORKERS": "-3"}), 2, "INGEST_WORKERS")
    one_line(cli("topics", env={"INGEST_TOPIC_PARTITIONS": "0"}), 2, "INGEST_TOPIC_PARTITIONS")


def test_log_level_in_any_case():
    result = cli("topics", env={"INGEST_LOG_LEVEL": "debug"})
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_unknown_variable_warns_with_the_nearest_name():
    result = cli("topics", env={"INGEST_WROKERS": "3"})
    assert result.returncode == 0
    assert result.stderr.strip().splitlines() == [
        "ingest-worker topics: warning: INGEST_WROKERS is not a setting and is ignored; did you mean INGEST_WORKERS?"
    ]


def test_metrics_port_in_use():
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("run", env={"INGEST_METRICS_PORT": str(port), "INGEST_BROKER": UNREACHABLE})
    one_line(result, 2, f"INGEST_METRICS_PORT={port} is already in use", "free port")


def test_fatal_line_is_json_under_the_json_log_format():
    result = cli("run", env={"INGEST_LOG_FORMAT": "json", "INGEST_WORKERS": "-3"})
    record = json.loads(one_line(result, 2))
    assert record["level"] == "ERROR" and "INGEST_WORKERS=-3" in record["message"]
    result = cli("process", "/nonexistent.jsonl", env={"INGEST_LOG_FORMAT": "json"})
    assert "no such file" in json.loads(one_line(result, 2))["message"]


def test_broker_unreachable_at_start_is_one_line_with_status_1():
    one_line(cli("run", env={"INGEST_BROKER": UNREACHABLE, "INGEST_METRICS_PORT": str(_free_port())}), 1,
             "127.0.0.1:9", "INGEST_BROKER")


def test_debug_shows_the_traceback():
    for result in (cli("--debug", "process", "/nonexistent.jsonl"), cli("process", "--debug", "/nonexistent.jsonl"),
                   cli("process", "/nonexistent.jsonl", env={"INGEST_LOG_LEVEL": "DEBUG"})):
        assert result.returncode == 2 and "Traceback" in result.stderr
        assert result.stderr.strip().splitlines()[-1].endswith("no such file or directory; check the path")


# The command line itself


def test_argument_mistakes_are_one_line():
    one_line(cli("produce"), 2, "required: files", "ingest-worker produce --help")
    one_line(cli("fly"), 2, "invalid choice")
    one_line(cli("eval", "dedup"), 2, "--pages")
    one_line(cli("tail", "t", "--max", "some"), 2, "'some' is not a number")
    one_line(cli("tail", "t", "--timeout", "-1"), 2, "-1 is below 0")


def test_version():
    result = cli("--version")
    assert result.returncode == 0 and result.stdout.startswith("ingest-worker ")


def test_run_help_lists_every_setting():
    result = cli("run", "--help")
    assert result.returncode == 0
    for f in fields(Settings):
        assert f"INGEST_{f.name.upper()} " in result.stdout
    assert "[default: 9464]" in result.stdout


def test_every_setting_declares_its_help_and_numbers_their_range():
    """A new setting gets help for `run --help`; a number gets bounds, so a wrong value is refused."""
    for f in fields(Settings):
        declare = f"declare INGEST_{f.name.upper()} with setting(default, help, ...) in worker/settings.py"
        assert f.metadata.get("help"), declare
        if isinstance(f.default, (int, float)) and not isinstance(f.default, bool):
            assert {f.metadata.get(k) for k in ("minimum", "maximum", "above")} != {None}, declare + " and its range"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
