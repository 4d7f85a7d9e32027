"""The group member a worker was, reused only by the process holding its data directory."""

from __future__ import annotations

import json
import multiprocessing
import shutil
from pathlib import Path

from worker.kafka.membership import MEMBER_FILE, Membership


def _claim_in_a_process(directory: Path, group: str, results: multiprocessing.Queue) -> None:
    results.put(Membership(directory, group).claim())


def _claim_elsewhere(directory: Path, group: str) -> str | None:
    """What a process other than this one claims (a lock is per open file, a process's own too)."""
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue = context.Queue()
    process = context.Process(target=_claim_in_a_process, args=(directory, group, results))
    process.start()
    process.join(60)
    return results.get(timeout=5)


def test_only_the_holder_of_the_lock_in_the_directory_and_group_that_wrote_it_reuses_the_id(tmp_path: Path) -> None:
    directory = tmp_path / "data"
    directory.mkdir()
    (directory / MEMBER_FILE).write_text(json.dumps({}))
    writer = Membership(directory, "ingest")
    identity = writer._identity()
    (directory / MEMBER_FILE).write_text(json.dumps({**identity, "member_id": "member-1"}))

    # the process that wrote it is gone (no lock held): a process on the same directory reuses it
    assert _claim_elsewhere(directory, "ingest") == "member-1"
    # another group on the same directory does not
    assert _claim_elsewhere(directory, "other-app") is None
    # a copy of the volume in another directory (a standby seeded from it) does not
    copy = tmp_path / "copy"
    shutil.copytree(directory, copy)
    assert _claim_elsewhere(copy, "ingest") is None
    # nor a copy put back at the very path (a snapshot restored under the same host name)
    shutil.move(directory, tmp_path / "moved")
    shutil.copytree(tmp_path / "moved", directory)
    assert _claim_elsewhere(directory, "ingest") is None
    identity = writer._identity()
    (directory / MEMBER_FILE).write_text(json.dumps({**identity, "member_id": "member-1"}))
    assert _claim_elsewhere(directory, "ingest") == "member-1"
    # nor a file written before the host restarted
    (directory / MEMBER_FILE).write_text(json.dumps({**identity, "boot": "another boot", "member_id": "member-1"}))
    assert _claim_elsewhere(directory, "ingest") is None
    # nor a file written on another host
    (directory / MEMBER_FILE).write_text(json.dumps({**identity, "host": "elsewhere", "member_id": "member-1"}))
    assert _claim_elsewhere(directory, "ingest") is None
    # an unreadable file is no member
    (directory / MEMBER_FILE).write_text("{not json")
    assert _claim_elsewhere(directory, "ingest") is None


def test_a_process_that_holds_the_lock_keeps_the_id_and_another_cannot_take_it(tmp_path: Path) -> None:
    directory = tmp_path / "data"
    holder = Membership(directory, "ingest")
    assert holder.claim() is None
    holder.remember("member-2")
    kept = json.loads((directory / MEMBER_FILE).read_text())
    assert kept["member_id"] == "member-2" and kept["group"] == "ingest"
    assert holder.claim() == "member-2"  # the holder itself reads it back
    assert _claim_elsewhere(directory, "ingest") is None  # held: another process joins as new

    without_lock = Membership(tmp_path / "other", "ingest")
    without_lock.remember("member-3")  # never claimed: writes nothing
    assert not (tmp_path / "other" / MEMBER_FILE).exists()
