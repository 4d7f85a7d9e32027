"""The dedup table on RocksDB: the derived indexes kept beside the facts, written with them.

Decisions over the RocksDB state are the in-memory state's; the indexes it keeps are the ones a
scan of its facts derives, after decisions, expiries, a changelog applied (twice) and a reopen.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from test_dedup import DAY, T0, decide, page, story
from test_dedup_state import Writes

from worker.kafka import dedup_store
from worker.kafka.dedup_store import (
    _ABSENT,
    HOT_ENTRY_OVERHEAD,
    PAGE,
    POSTING,
    SITE,
    HotEntries,
    LocalState,
    RocksDerived,
    _hour_key,
)
from worker.steps.dedup.derived import MemoryDerived
from worker.steps.dedup.index import DedupIndex
from worker.steps.dedup.postings import unpack_ids


def _pages(index: DedupIndex, count: int, start: int = 0) -> list[Any]:
    """Stories with a cut copy first, the fuller original, and a copy of another version, over days."""
    decisions = []
    for seed in range(start, start + count):
        original = story(700 + seed, paragraphs=10)
        when = T0 + seed * 5 * 3600
        decisions.append(decide(index, f"https://a.example/{seed}", page(original[:4]), when=when))
        decisions.append(decide(index, f"https://b.example/{seed}", page(original), when=when + 60))
        decisions.append(decide(index, f"https://c.example/{seed}", page(original[5:]), when=when + 120))
    return decisions


def _as_memory(state: LocalState) -> dict[str, Any]:
    """What the RocksDB derived indexes hold, in the form of `MemoryDerived`'s."""
    db = state.db
    held = state.derived._postings
    hashes = sorted(set(held.hashes.tolist()).union(held.added, *(added for added, _ in held.folding)))
    postings = {h: set(unpack_ids(ids)) for h, ids in zip(hashes, held.get_many(hashes), strict=True) if ids}
    pages: dict[int, set[bytes]] = {}
    sites: dict[int, set[int]] = {}
    for prefix, into in ((PAGE, pages), (SITE, sites)):
        for key in db.keys(from_key=prefix):
            if not key.startswith(prefix):
                break
            hour = int.from_bytes(key[2:10], "big") - (1 << 63)
            item = key[10:] if prefix == PAGE else int.from_bytes(key[10:], "big")
            into.setdefault(hour, set()).add(item)  # type: ignore[arg-type]
    derived = state.derived
    return {"postings": postings, "pages": pages, "sites": sites,
            "counters": (derived.records, derived.roots, derived.size)}


def _expected(facts: dict[str, bytes]) -> dict[str, Any]:
    memory = MemoryDerived.of(facts)
    return {
        "postings": {h: set(unpack_ids(v) if isinstance(v, bytes) else v) for h, v in memory._postings.items()},
        "pages": {hour: set(sids) for hour, sids in memory._filed.pages.items() if sids},
        "sites": {hour: set(s) for hour, s in memory._filed.sites.items() if s},
        "counters": (memory.records, memory.roots, memory.size),
    }


def test_decisions_on_rocksdb_are_the_in_memory_ones_and_its_indexes_match_its_facts(tmp_path: Path) -> None:
    rocks = LocalState(tmp_path / "db")
    memory: dict[str, bytes] = {}
    on_rocks = DedupIndex(rocks, window_seconds=2 * DAY, derived=rocks.derived)
    in_memory = DedupIndex(memory, window_seconds=2 * DAY)
    assert _pages(on_rocks, 24) == _pages(in_memory, 24)
    assert on_rocks.expire(T0 + 4 * DAY) == in_memory.expire(T0 + 4 * DAY) > 0
    assert dict(rocks.items()) == memory
    assert _as_memory(rocks) == _expected(memory)
    assert (on_rocks.entries(), on_rocks.roots(), on_rocks.state_bytes()) == (
        in_memory.entries(), in_memory.roots(), in_memory.state_bytes())

    rocks.close()  # a restart on the same volume: the indexes are read, not rebuilt
    reopened = LocalState(tmp_path / "db")
    again = DedupIndex(reopened, window_seconds=2 * DAY, derived=reopened.derived)
    assert _pages(again, 6, start=24) == _pages(in_memory, 6, start=24)
    assert _as_memory(reopened) == _expected(memory)


def test_a_changelog_applied_in_batches_and_again_keeps_the_indexes_of_its_facts(tmp_path: Path) -> None:
    writes = Writes()
    index = DedupIndex(writes, window_seconds=2 * DAY)
    _pages(index, 16)
    index.expire(T0 + 3 * DAY)
    standby = LocalState(tmp_path / "standby")
    derived: RocksDerived = standby.derived
    records = [(b'"' + key.encode() + b'"', value) for key, value in writes.log]
    for replay in range(2):  # a standby's batches, then the same records again (a recovery re-reads)
        for start in range(0, len(records), 37):
            derived.begin()
            for key, value in records[start : start + 37]:
                derived.change(key, derived.current(key), value)
            derived.write()
        assert dict(standby.items()) == dict(writes), replay
        assert _as_memory(standby) == _expected(dict(writes)), replay
    assert _hour_key(PAGE, 5) < _hour_key(PAGE, 6) < _hour_key(SITE, 0)


def test_postings_survive_a_restart_from_their_snapshot_and_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The postings in memory are read again on a restart: from the snapshot written when the
    changes were folded in, then the journal of the batches after it; also when the owner was
    killed (the database not closed) and when no snapshot was written yet."""
    memory: dict[str, bytes] = {}
    in_memory = DedupIndex(memory, window_seconds=2 * DAY)
    for name, merge_at in (("journal only", 10**9), ("snapshots", 40)):
        monkeypatch.setattr(dedup_store, "MERGE_CHANGES", merge_at)
        memory.clear()
        in_memory.invalidate()
        rocks = LocalState(tmp_path / name)
        on_rocks = DedupIndex(rocks, window_seconds=2 * DAY, derived=rocks.derived)
        assert _pages(on_rocks, 10) == _pages(in_memory, 10), name
        assert on_rocks.expire(T0 + 3 * DAY) == in_memory.expire(T0 + 3 * DAY) > 0
        rocks.derived.settle()  # the fold under way in its thread, if any
        assert (tmp_path / name / dedup_store.SNAPSHOT_FILE).exists() == (merge_at < 10**9), name
        rocks.db.close()  # as if killed: nothing folded
        reopened = LocalState(tmp_path / name)
        assert _as_memory(reopened) == _expected(memory), name
        again = DedupIndex(reopened, window_seconds=2 * DAY, derived=reopened.derived)
        assert _pages(again, 4, start=10) == _pages(in_memory, 4, start=10), name
        assert _as_memory(reopened) == _expected(memory), name
        reopened.derived.settle()
        journal = [dedup_store._JOURNAL_KEY.unpack(key)[1] for key in reopened.db.keys(from_key=dedup_store.JOURNAL)
                   if key.startswith(dedup_store.JOURNAL)]
        if merge_at < 10**9:  # the journal a snapshot holds is deleted
            held, upto = dedup_store.read_snapshot(tmp_path / name / dedup_store.SNAPSHOT_FILE)
            assert held is not None and upto > 0 and all(sequence > upto for sequence in journal), name
        else:
            assert len(journal) > 20, name
        reopened.close()


def test_a_table_that_kept_postings_as_keys_reads_them_once_then_drops_them(tmp_path: Path) -> None:
    """A volume written before the postings moved to memory: its posting keys are read at the
    start, and the first write folds them into a snapshot and deletes them."""
    memory: dict[str, bytes] = {}
    in_memory = DedupIndex(memory, window_seconds=2 * DAY)
    rocks = LocalState(tmp_path / "db")
    _pages(DedupIndex(rocks, window_seconds=2 * DAY, derived=rocks.derived), 6)
    _pages(in_memory, 6)
    old = rocks.derived._postings
    old.merge()
    keys: dict[bytes, bytes] = {}
    for h, sid in zip(old.hashes.tolist(), old.ids.tolist(), strict=True):  # as the keys were
        key = POSTING + h.to_bytes(4, "big")
        rocks.db[key] = keys[key] = (rocks.db.get(key) or b"") + sid.to_bytes(8, "big")
    rocks.db.delete_range(dedup_store.JOURNAL, dedup_store.JOURNAL + b"\xff" * 8)
    rocks.close()
    assert not (tmp_path / "db" / dedup_store.SNAPSHOT_FILE).exists()
    reopened = LocalState(tmp_path / "db")
    assert _as_memory(reopened) == _expected(memory)
    index = DedupIndex(reopened, window_seconds=2 * DAY, derived=reopened.derived)
    assert next(iter(reopened.db.keys(from_key=POSTING)), b"")[:2] != POSTING
    assert (tmp_path / "db" / dedup_store.SNAPSHOT_FILE).exists()
    assert _pages(index, 2, start=6) == _pages(in_memory, 2, start=6)
    for key, value in keys.items():  # as if killed after the snapshot's rename, before the keys' delete
        reopened.db[key] = value
    reopened.close()
    last = LocalState(tmp_path / "db")
    assert next(iter(last.db.keys(from_key=POSTING)), b"")[:2] != POSTING
    assert _as_memory(last) == _expected(memory)


def _journal(state: LocalState) -> list[bytes]:
    return [key for key in state.db.keys(from_key=dedup_store.JOURNAL) if key.startswith(dedup_store.JOURNAL)]


def test_a_fold_that_cannot_write_its_snapshot_raises_nothing_and_keeps_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk (or no memory for the merge) when the postings are folded comes after the
    decision's batch is written: the decision returns as usual, the journal stays, the half
    written file goes, and the fold is tried again later; the postings are whole after a
    restart. The same for a changelog applied by a standby."""
    monkeypatch.setattr(dedup_store, "MERGE_CHANGES", 20)

    def disk_full(path: Path, postings: Any, sequence: int) -> None:
        path.with_name(path.name + ".part").write_bytes(b"half")
        raise OSError(28, "No space left on device")

    def no_memory(*args: Any) -> None:
        raise MemoryError

    memory: dict[str, bytes] = {}
    in_memory = DedupIndex(memory, window_seconds=2 * DAY)
    rocks = LocalState(tmp_path / "db")
    on_rocks = DedupIndex(rocks, window_seconds=2 * DAY, derived=rocks.derived)
    monkeypatch.setattr(dedup_store, "write_snapshot", disk_full)
    assert _pages(on_rocks, 3) == _pages(in_memory, 3)
    rocks.derived.settle()
    monkeypatch.setattr(dedup_store, "merged", no_memory)
    assert _pages(on_rocks, 3, start=3) == _pages(in_memory, 3, start=3)
    rocks.derived.settle()
    assert rocks.derived.fold_failures >= 2
    assert not (tmp_path / "db" / dedup_store.SNAPSHOT_FILE).exists()
    assert not (tmp_path / "db" / (dedup_store.SNAPSHOT_FILE + ".part")).exists()
    assert len(_journal(rocks)) > 10
    assert _as_memory(rocks) == _expected(memory)
    rocks.close()
    reopened = LocalState(tmp_path / "db")
    assert _as_memory(reopened) == _expected(memory)
    monkeypatch.undo()
    monkeypatch.setattr(dedup_store, "MERGE_CHANGES", 20)
    again = DedupIndex(reopened, window_seconds=2 * DAY, derived=reopened.derived)
    assert _pages(again, 3, start=6) == _pages(in_memory, 3, start=6)
    reopened.derived.settle()
    assert (tmp_path / "db" / dedup_store.SNAPSHOT_FILE).exists()
    assert len(_journal(reopened)) < 10
    reopened.close()
    assert _as_memory(LocalState(tmp_path / "db")) == _expected(memory)

    standby = LocalState(tmp_path / "standby")
    store = dedup_store.DedupRocksStore.__new__(dedup_store.DedupRocksStore)
    store.derived = standby.derived
    monkeypatch.setattr(dedup_store, "write_snapshot", disk_full)
    records = [(b'"' + key.encode() + b'"', value) for key, value in memory.items()]
    events = [_Event(key, value, offset) for offset, (key, value) in enumerate(records)]
    for start in range(0, len(events), 7):
        store.apply_changelog_batch(events[start : start + 7], lambda k: k, lambda v: v)
    standby.derived.settle()
    assert standby.derived.fold_failures >= 1
    assert _as_memory(standby) == _expected(memory)
    assert standby.offset() == len(events) - 1


def test_a_fold_runs_in_a_thread_while_decisions_go_on_over_its_changes_and_the_ones_since(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fold (merge, snapshot write, sync) runs in a thread of its own: decisions made while it
    is held read the changes it folds and the ones made since, and decide as a dict; once it is
    done its arrays are taken, the journal it holds deleted, and a restart finds every posting."""
    import threading

    monkeypatch.setattr(dedup_store, "MERGE_CHANGES", 20)
    writing = threading.Event()
    release = threading.Event()
    threads: list[threading.Thread] = []
    write = dedup_store.write_snapshot

    def held_write(path: Path, postings: Any, sequence: int) -> None:
        threads.append(threading.current_thread())
        if threading.current_thread() is not threading.main_thread():  # a fold on the caller's thread: no wait
            writing.set()
            assert release.wait(30)
        write(path, postings, sequence)

    monkeypatch.setattr(dedup_store, "write_snapshot", held_write)
    memory: dict[str, bytes] = {}
    in_memory = DedupIndex(memory, window_seconds=2 * DAY)
    rocks = LocalState(tmp_path / "db")
    on_rocks = DedupIndex(rocks, window_seconds=2 * DAY, derived=rocks.derived)
    seed = 0
    while not writing.is_set() and seed < 20:  # until a fold is under way
        assert _pages(on_rocks, 1, start=seed) == _pages(in_memory, 1, start=seed)
        seed += 1
    assert writing.wait(10), "no fold was held in a thread of its own"
    held = rocks.derived._postings
    assert held.folding and not (tmp_path / "db" / dedup_store.SNAPSHOT_FILE).exists()
    # decisions while the fold is held: a copy of a story decided before the fold, new stories
    copy = story(700, paragraphs=10)[:6]
    assert decide(on_rocks, "https://d.example/0", page(copy), when=T0 + DAY) == decide(
        in_memory, "https://d.example/0", page(copy), when=T0 + DAY)
    assert _pages(on_rocks, 3, start=seed) == _pages(in_memory, 3, start=seed)
    assert held.added and held.folding and _as_memory(rocks) == _expected(memory)
    release.set()
    rocks.derived.settle()
    assert all(thread is not threading.main_thread() for thread in threads)
    assert not held.folding and held.added  # the changes since the fold stay beside its arrays
    assert _as_memory(rocks) == _expected(memory)
    upto = dedup_store.read_snapshot(tmp_path / "db" / dedup_store.SNAPSHOT_FILE)[1]
    assert upto > 0 and all(dedup_store._JOURNAL_KEY.unpack(key)[1] > upto for key in _journal(rocks))
    assert _pages(on_rocks, 2, start=seed + 3) == _pages(in_memory, 2, start=seed + 3)
    rocks.derived.settle()  # a later fold's thread, if one started, before the database goes
    rocks.db.close()  # as if killed
    reopened = LocalState(tmp_path / "db")
    assert _as_memory(reopened) == _expected(memory)
    reopened.close()


def _held_fold(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """Snapshot writes in a fold's thread held until released: (writing, release) events."""
    import threading

    writing, release = threading.Event(), threading.Event()
    write = dedup_store.write_snapshot

    def held_write(path: Path, postings: Any, sequence: int) -> None:
        if threading.current_thread() is not threading.main_thread():
            writing.set()
            assert release.wait(30)
        write(path, postings, sequence)

    monkeypatch.setattr(dedup_store, "write_snapshot", held_write)
    return writing, release


def _until_a_fold_runs(index: DedupIndex, in_memory: DedupIndex, writing: Any) -> int:
    """Decide stories until a fold is held in its thread; the next story's seed."""
    seed = 0
    while not writing.is_set() and seed < 40:
        assert _pages(index, 1, start=seed) == _pages(in_memory, 1, start=seed)
        seed += 1
    assert writing.wait(10), "no fold was held in a thread of its own"
    return seed


def _a_fold_held(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, bytes], LocalState, Any]:
    """A table deciding as a dict does (the dict's state, the table) until a fold is held in its
    thread, and the event that releases it."""
    monkeypatch.setattr(dedup_store, "MERGE_CHANGES", 20)
    writing, release = _held_fold(monkeypatch)
    memory: dict[str, bytes] = {}
    in_memory = DedupIndex(memory, window_seconds=2 * DAY)
    rocks = LocalState(tmp_path / "db")
    _until_a_fold_runs(DedupIndex(rocks, window_seconds=2 * DAY, derived=rocks.derived), in_memory, writing)
    return memory, rocks, release


def test_folds_whose_snapshot_fails_take_their_merged_arrays_and_pile_up_no_layers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fold whose snapshot cannot be written still takes the arrays it merged: however many
    fail, the lookups read the arrays and at most the changes since (no layer a failed fold),
    decide as a dict, and a restart finds every posting in the journal kept."""
    monkeypatch.setattr(dedup_store, "MERGE_CHANGES", 20)

    def disk_full(path: Path, postings: Any, sequence: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(dedup_store, "write_snapshot", disk_full)
    memory: dict[str, bytes] = {}
    in_memory = DedupIndex(memory, window_seconds=2 * DAY)
    rocks = LocalState(tmp_path / "db")
    on_rocks = DedupIndex(rocks, window_seconds=2 * DAY, derived=rocks.derived)
    for seed in range(12):
        assert _pages(on_rocks, 1, start=seed) == _pages(in_memory, 1, start=seed)
        rocks.derived.settle()
        assert len(rocks.derived._postings.folding) <= 1
    assert rocks.derived.fold_failures >= 3
    assert not rocks.derived._postings.folding and len(rocks.derived._postings.hashes)
    assert _as_memory(rocks) == _expected(memory)
    rocks.close()
    assert not (tmp_path / "db" / dedup_store.SNAPSHOT_FILE).exists()
    reopened = LocalState(tmp_path / "db")
    assert _as_memory(reopened) == _expected(memory)
    reopened.close()


def test_any_error_in_a_fold_is_counted_and_never_raised_by_a_decision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected error in a fold's thread (not a full disk: a bug) surfaces in no decision,
    whose batch is written already: it is counted as a failed fold, tried again later, and the
    state decides as a dict; `forget` then drops what it read."""
    monkeypatch.setattr(dedup_store, "MERGE_CHANGES", 20)

    def broken(*args: Any) -> Any:
        raise ValueError("buffer size must be a multiple of element size")

    monkeypatch.setattr(dedup_store, "merged", broken)
    memory: dict[str, bytes] = {}
    in_memory = DedupIndex(memory, window_seconds=2 * DAY)
    rocks = LocalState(tmp_path / "db")
    on_rocks = DedupIndex(rocks, window_seconds=2 * DAY, derived=rocks.derived)
    assert _pages(on_rocks, 8) == _pages(in_memory, 8)
    rocks.derived.settle()
    assert rocks.derived.fold_failures >= 1 and rocks.derived._retry_at is not None
    assert _as_memory(rocks) == _expected(memory)
    rocks.derived.forget()
    assert not rocks.derived._loaded and rocks.derived._running is None
    rocks.derived.load()
    assert _as_memory(rocks) == _expected(memory)
    rocks.close()


def test_a_fold_ends_on_its_own_database_handle_before_a_revoked_partition_is_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Revoking the table's partition while a fold runs: the fold is finished (its journal
    trimmed on the handle it was started with) before Faust drops the database, and nothing
    asks for the partition's database again, which would open it on a worker that no longer
    holds it."""
    import threading

    from faust.stores import rocksdb as faust_rocksdb
    from faust.types import TP

    memory, rocks, release = _a_fold_held(tmp_path, monkeypatch)
    opened: list[int] = []

    def dropped() -> Any:  # Faust's `_db_for_partition` once the partition is revoked: opens it again
        opened.append(1)
        return rocks.db

    running_at_revoke: list[bool] = []

    def faust_revoke(self: Any, table: Any, tps: Any) -> None:
        running_at_revoke.append(rocks.derived._running is not None)
        rocks.derived._db = dropped

    monkeypatch.setattr(faust_rocksdb.Store, "revoke_partitions", faust_revoke)
    store = dedup_store.DedupRocksStore.__new__(dedup_store.DedupRocksStore)
    store.derived = rocks.derived
    threading.Timer(0.2, release.set).start()
    table = type("Table", (), {"changelog_topic": type("Topic", (), {"topics": {"app-dedup-state-changelog"}})})()
    store.revoke_partitions(table, {TP("app-dedup-state-changelog", 0)})
    assert running_at_revoke == [False] and not opened
    assert (tmp_path / "db" / dedup_store.SNAPSHOT_FILE).exists() and rocks.derived.fold_failures == 0
    rocks.derived._db = lambda: rocks.db
    rocks.close()
    assert _as_memory(LocalState(tmp_path / "db")) == _expected(memory)


def test_two_threads_settling_one_fold_finish_it_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rebalance's load (in a thread) and the event loop may both wait for the same fold:
    one takes its arrays, the other finds it done; neither raises."""
    import threading

    memory, rocks, release = _a_fold_held(tmp_path, monkeypatch)
    errors: list[BaseException] = []

    def settle() -> None:
        try:
            rocks.derived.settle()
        except BaseException as error:  # noqa: BLE001 - what the test looks for
            errors.append(error)

    threads = [threading.Thread(target=settle) for _ in range(2)]
    for thread in threads:
        thread.start()
    release.set()
    for thread in threads:
        thread.join(30)
    assert not errors and rocks.derived._running is None and rocks.derived.fold_failures == 0
    assert not rocks.derived._postings.folding and _as_memory(rocks) == _expected(memory)
    rocks.close()

async def test_a_store_stopping_waits_a_bounded_time_for_the_fold_under_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At stop, a fold under way is finished (snapshot written, journal trimmed) before Faust
    drops the databases; one that outlasts `FOLD_STOP_SECONDS` is left (its journal kept)."""
    import threading

    from faust.stores import rocksdb as faust_rocksdb

    memory, rocks, release = _a_fold_held(tmp_path, monkeypatch)
    running_at_stop: list[bool] = []

    async def faust_stop(self: Any) -> None:
        running_at_stop.append(rocks.derived._running is not None)

    monkeypatch.setattr(faust_rocksdb.Store, "stop", faust_stop)
    monkeypatch.setattr(dedup_store, "FOLD_STOP_SECONDS", 0.2)
    store = dedup_store.DedupRocksStore.__new__(dedup_store.DedupRocksStore)
    store.derived = rocks.derived
    await store.stop()  # the fold is held past the bound: left running
    assert running_at_stop == [True]
    monkeypatch.setattr(dedup_store, "FOLD_STOP_SECONDS", 30)
    threading.Timer(0.2, release.set).start()
    await store.stop()
    assert running_at_stop == [True, False]
    assert (tmp_path / "db" / dedup_store.SNAPSHOT_FILE).exists() and rocks.derived.fold_failures == 0
    rocks.close()
    assert _as_memory(LocalState(tmp_path / "db")) == _expected(memory)


async def test_a_rebalance_reads_the_postings_in_a_thread_before_the_recovery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When a rebalance gives this worker the table, its counters and postings are read in a
    thread before the recovery and the first decision: a rebuild from the page records (here the
    snapshot is lost, and slow) leaves the event loop free, and the first decision finds them."""
    import asyncio
    import threading
    import time

    from faust.stores import rocksdb as faust_rocksdb
    from faust.types import TP

    monkeypatch.setattr(dedup_store, "MERGE_CHANGES", 20)
    memory: dict[str, bytes] = {}
    in_memory = DedupIndex(memory, window_seconds=2 * DAY)
    rocks = LocalState(tmp_path / "db")
    assert _pages(DedupIndex(rocks, window_seconds=2 * DAY, derived=rocks.derived), 4) == _pages(in_memory, 4)
    rocks.close()
    (tmp_path / "db" / dedup_store.SNAPSHOT_FILE).unlink()  # lost: the postings are rebuilt
    db = dedup_store.open_rdict(tmp_path / "db", LocalState.options(64 * 1024 * 1024),
                                dedup_store.rocksdict.AccessType.read_write())
    rebuilt_in: list[threading.Thread] = []
    root_postings = dedup_store._root_postings

    def slow_rebuild(db: Any) -> Any:
        rebuilt_in.append(threading.current_thread())
        time.sleep(1.0)  # what a rebuild at 1,000,000 pages takes, shortened
        return root_postings(db)

    async def faust_rebalance(self: Any, *args: Any) -> None:
        pass

    monkeypatch.setattr(dedup_store, "_root_postings", slow_rebuild)
    monkeypatch.setattr(faust_rocksdb.Store, "on_rebalance", faust_rebalance)
    store = dedup_store.DedupRocksStore.__new__(dedup_store.DedupRocksStore)
    store.derived = RocksDerived(lambda: db)
    store.table = type("Table", (), {"changelog_topic": type("Topic", (), {"topics": {"app-dedup-state-changelog"}})})()
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    await store.on_rebalance({TP("app-dedup-candidates", 0)}, set(), set())  # not the table's
    assert not store.derived._loaded
    assigned = {TP("app-dedup-state-changelog", 0), TP("app-dedup-candidates", 0)}
    await store.on_rebalance(assigned, set(), assigned)
    ticker.cancel()
    assert store.derived._loaded and rebuilt_in and rebuilt_in[0] is not threading.main_thread()
    assert ticks >= 20, "the event loop was held while the postings were rebuilt"
    store.derived.settle()
    state = LocalState.__new__(LocalState)
    state.db, state.derived = db, store.derived
    assert _as_memory(state) == _expected(memory)
    again = DedupIndex(state, window_seconds=2 * DAY, derived=store.derived)
    assert _pages(again, 2, start=4) == _pages(in_memory, 2, start=4)
    state.close()


def _a_table_on(path: Path) -> tuple[dict[str, bytes], DedupIndex]:
    """A volume's table after four pages (closed), and the in-memory index that decided them too."""
    memory: dict[str, bytes] = {}
    in_memory = DedupIndex(memory, window_seconds=2 * DAY)
    rocks = LocalState(path)
    assert _pages(DedupIndex(rocks, window_seconds=2 * DAY, derived=rocks.derived), 4) == _pages(in_memory, 4)
    rocks.close()
    return memory, in_memory


def _store_on(path: Path, opened_in: list[Any]) -> tuple[Any, dict[int, Any]]:
    """A dedup store on `path`, its database opened as Faust's `_db_for_partition` does (once, then
    kept; the thread that opened it appended to `opened_in`)."""
    import threading

    databases: dict[int, Any] = {}

    def database(partition: int) -> Any:
        if partition not in databases:
            opened_in.append(threading.current_thread())
            databases[partition] = dedup_store.open_rdict(path, LocalState.options(64 * 1024 * 1024),
                                                          dedup_store.rocksdict.AccessType.read_write())
        return databases[partition]

    store = dedup_store.DedupRocksStore.__new__(dedup_store.DedupRocksStore)
    store.partition_path = lambda partition: path  # type: ignore[method-assign]
    store.derived = RocksDerived(lambda: database(0))
    store.table = type("Table", (), {"changelog_topic": type("Topic", (), {"topics": {"app-dedup-state-changelog"}})})()
    return store, databases


def _decides_as(store: Any, database: Any, in_memory: DedupIndex) -> None:
    """The store's table decides the next pages as the in-memory index does (then closed)."""
    state = LocalState.__new__(LocalState)
    state.db, state.derived = database, store.derived
    again = DedupIndex(state, window_seconds=2 * DAY, derived=store.derived)
    assert _pages(again, 2, start=4) == _pages(in_memory, 2, start=4)
    state.close()


async def test_a_store_started_on_its_table_reads_it_while_the_worker_joins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a restart the local table's counters and postings are read in a thread from the
    store's start; the rebalance waits for that read and takes the database it opened."""
    import threading

    from faust.stores import rocksdb as faust_rocksdb
    from faust.types import TP

    memory, in_memory = _a_table_on(tmp_path / "db")

    async def faust_rebalance(self: Any, *args: Any) -> None:
        pass

    monkeypatch.setattr(faust_rocksdb.Store, "on_rebalance", faust_rebalance)
    opened_in: list[threading.Thread] = []
    nothing, _ = _store_on(tmp_path / "none", opened_in)
    await nothing.on_start()
    assert nothing._early_read is None  # a first start: nothing on the volume to read

    store, databases = _store_on(tmp_path / "db", opened_in)
    table = store.table
    await store.on_start()
    assert store._early_read is not None
    assigned = {TP("app-dedup-state-changelog", 0), TP("app-dedup-candidates", 0)}
    await store.on_rebalance(assigned, set(), assigned)
    assert store._early_read is None and store.derived._loaded
    assert len(opened_in) == 1 and opened_in[0] is not threading.main_thread()

    def faust_revoke(self: Any, table: Any, tps: Any) -> None:
        pass

    monkeypatch.setattr(faust_rocksdb.Store, "revoke_partitions", faust_revoke)
    store.revoke_partitions(table, {TP("app-dedup-candidates", 0)})  # a rebalance that leaves the table here
    assert store.derived._loaded  # what was read of it is kept, not read again
    _decides_as(store, databases[0], in_memory)


async def test_a_rebalance_without_the_table_does_not_wait_for_the_start_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker given only page partitions goes on while its start-up read of an old copy of the
    table (here a rebuild of the postings, held until released) runs; a rebalance that brings the
    table waits for it and decides as the in-memory index."""
    import threading

    from faust.stores import rocksdb as faust_rocksdb
    from faust.types import TP

    monkeypatch.setattr(dedup_store, "MERGE_CHANGES", 20)  # the pages fold: a snapshot is written
    memory, in_memory = _a_table_on(tmp_path / "db")
    (tmp_path / "db" / dedup_store.SNAPSHOT_FILE).unlink()  # no snapshot: the read rebuilds the postings
    release = threading.Event()
    rebuild = dedup_store._root_postings

    def held_rebuild(db: Any) -> Any:
        assert release.wait(30)
        return rebuild(db)

    async def faust_rebalance(self: Any, *args: Any) -> None:
        pass

    monkeypatch.setattr(dedup_store, "_root_postings", held_rebuild)
    monkeypatch.setattr(faust_rocksdb.Store, "on_rebalance", faust_rebalance)
    store, databases = _store_on(tmp_path / "db", [])
    await store.on_start()
    try:
        pages_only = {TP("app-dedup-candidates", 1)}
        await asyncio.wait_for(store.on_rebalance(pages_only, set(), pages_only), timeout=10)
        assert store._early_read is not None and not store._early_read.done()  # still reading
    finally:
        release.set()
    assigned = {TP("app-dedup-state-changelog", 0), TP("app-dedup-candidates", 0)}
    await store.on_rebalance(assigned, pages_only, assigned)
    assert store._early_read is None and store.derived._loaded
    _decides_as(store, databases[0], in_memory)


class _Event:
    """A changelog record as `apply_changelog_batch` reads it."""

    def __init__(self, key: bytes, value: bytes, offset: int) -> None:
        self.message = _Message(key, value, offset)


class _Message:
    def __init__(self, key: bytes, value: bytes, offset: int) -> None:
        self.key, self.value, self.offset, self.partition, self.tp = key, value, offset, 0, ("changelog", 0)


def test_a_lost_stale_or_unreadable_snapshot_rebuilds_the_postings_from_the_page_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a fold has deleted the journal a snapshot holds, a restart without that snapshot (lost,
    an older one back after a crash, or one that cannot be read) rebuilds the postings from the
    page records: a copy of a story decided before is still found."""
    monkeypatch.setattr(dedup_store, "MERGE_CHANGES", 20)
    for case in ("lost", "stale", "unreadable"):
        memory: dict[str, bytes] = {}
        in_memory = DedupIndex(memory, window_seconds=2 * DAY)
        path = tmp_path / case
        snapshot = path / dedup_store.SNAPSHOT_FILE
        rocks = LocalState(path)
        on_rocks = DedupIndex(rocks, window_seconds=2 * DAY, derived=rocks.derived)
        assert _pages(on_rocks, 2) == _pages(in_memory, 2), case
        rocks.derived.settle()
        assert snapshot.exists(), case
        older = snapshot.read_bytes()
        assert _pages(on_rocks, 4, start=2) == _pages(in_memory, 4, start=2), case
        rocks.derived.settle()
        assert snapshot.read_bytes() != older, case
        rocks.close()
        if case == "lost":
            snapshot.unlink()
        elif case == "stale":
            snapshot.write_bytes(older)
        else:
            snapshot.unlink()
            snapshot.mkdir()  # opening it fails (so does writing a new one over it)
        reopened = LocalState(path)
        assert _as_memory(reopened) == _expected(memory), case
        again = DedupIndex(reopened, window_seconds=2 * DAY, derived=reopened.derived)
        copy = story(700, paragraphs=10)[:6]
        found = decide(again, "https://d.example/0", page(copy), when=T0 + DAY)
        assert found == decide(in_memory, "https://d.example/0", page(copy), when=T0 + DAY), case
        assert found.duplicate_of is not None, case
        assert _pages(again, 2, start=6) == _pages(in_memory, 2, start=6), case
        reopened.close()
        assert _as_memory(LocalState(path)) == _expected(memory), case


def test_a_load_or_a_change_that_raises_fails_its_own_batch_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A decision whose load of the postings fails (a rebuild out of memory) raises, and the
    decisions after it are made as usual; a changelog batch whose change raises writes none of it
    (nor its offset), and the same batch applied again is."""
    monkeypatch.setattr(dedup_store, "MERGE_CHANGES", 20)
    memory: dict[str, bytes] = {}
    in_memory = DedupIndex(memory, window_seconds=2 * DAY)
    rocks = LocalState(tmp_path / "db")
    on_rocks = DedupIndex(rocks, window_seconds=2 * DAY, derived=rocks.derived)
    assert _pages(on_rocks, 4) == _pages(in_memory, 4)
    rocks.derived.settle()  # the fold under way, if any, done
    (tmp_path / "db" / dedup_store.SNAPSHOT_FILE).unlink()  # lost: the next load rebuilds
    rocks.derived.forget()  # as a revoke does
    rebuild = dedup_store._root_postings
    failures = iter([MemoryError()])

    def fails_once(db: Any) -> Any:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return rebuild(db)

    monkeypatch.setattr(dedup_store, "_root_postings", fails_once)
    with pytest.raises(MemoryError):
        decide(on_rocks, "https://e.example/0", page(story(900)), when=T0 + DAY)
    assert not rocks.derived.batching()
    assert _pages(on_rocks, 3, start=4) == _pages(in_memory, 3, start=4)
    assert _as_memory(rocks) == _expected(memory)

    standby = LocalState(tmp_path / "standby")
    store = dedup_store.DedupRocksStore.__new__(dedup_store.DedupRocksStore)
    store.derived = standby.derived
    records = [(b'"' + key.encode() + b'"', value) for key, value in memory.items()]
    events = [_Event(key, value, offset) for offset, (key, value) in enumerate(records)]
    apply = dedup_store.apply_change
    calls = 0

    def raises_at_the_fifth(*args: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 5:
            raise ValueError("a record that cannot be read")
        apply(*args)

    monkeypatch.setattr(dedup_store, "apply_change", raises_at_the_fifth)
    store.apply_changelog_batch(events[:3], lambda k: k, lambda v: v)
    with pytest.raises(ValueError):
        store.apply_changelog_batch(events[3:10], lambda k: k, lambda v: v)
    assert not standby.derived.batching()
    assert standby.offset() == 2
    assert dict(standby.items()) == {key[1:-1].decode(): value for key, value in records[:3]}
    for start in range(3, len(events), 7):
        store.apply_changelog_batch(events[start : start + 7], lambda k: k, lambda v: v)
    assert standby.offset() == len(events) - 1
    assert _as_memory(standby) == _expected(memory)


def test_a_root_posting_more_hashes_than_a_journal_entry_counts_is_journaled_whole(tmp_path: Path) -> None:
    """A journal entry counts its hashes in a byte: a root posting more (more posted hashes or
    versions than today's 48) writes several, and a restart applies them all."""
    rocks = LocalState(tmp_path / "db")
    derived = rocks.derived
    sid, hashes = b"\x01" * 8, list(range(5, 5 + 3 * 255 + 7))
    derived.begin()
    derived.post(hashes, sid)
    derived.post(hashes[:2], b"\x02" * 8)
    derived.write()
    derived.begin()
    derived.unpost(hashes[::2], sid)
    derived.write()
    rocks.close()
    reopened = LocalState(tmp_path / "db")
    found = reopened.derived.postings(hashes)
    assert [h for h, ids in zip(hashes, found, strict=True) if ids and sid in unpack_ids(ids)] == hashes[1::2]
    assert set(unpack_ids(found[0])) == {b"\x02" * 8}
    reopened.close()


def test_a_snapshot_holds_hashes_little_endian_and_a_closed_table_releases_its_mapping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The snapshot's layout: head, the hashes as little-endian uint32, the ids as big-endian uint64
    (the same file on any machine); the postings read from it map the file until the table closes."""
    import numpy as np

    monkeypatch.setattr(dedup_store, "MERGE_CHANGES", 20)
    rocks = LocalState(tmp_path / "db")
    _pages(DedupIndex(rocks, window_seconds=2 * DAY, derived=rocks.derived), 4)
    rocks.close()
    reopened = LocalState(tmp_path / "db")
    held = reopened.derived._postings
    assert isinstance(held.hashes.base, np.memmap)
    raw = (tmp_path / "db" / dedup_store.SNAPSHOT_FILE).read_bytes()
    head = dedup_store._SNAPSHOT_HEAD.size
    count = len(held.hashes)
    assert raw[head : head + 4 * count] == np.asarray(held.hashes, "<u4").tobytes()
    assert raw[head + 4 * count :] == np.asarray(held.ids, ">u8").tobytes()
    reopened.close()
    assert not isinstance(reopened.derived._postings.hashes.base, np.memmap)


def _ids_of(posting: Any) -> set[bytes]:
    """A posting's ids, packed or a set (None: none)."""
    return set(posting) if isinstance(posting, set) else set(unpack_ids(posting))


def test_packed_postings_answer_as_a_dict_of_postings_through_changes_merges_and_snapshots(tmp_path: Path) -> None:
    """Posts and unposts of random roots under a few hashes (some held by many roots), looked up
    several at a time, whole or cut to a limit, folded beside the lookups (one or two frozen layers),
    merged now and then and read back from a snapshot, answer each lookup as `Postings` does."""
    import random

    from worker.steps.dedup.postings import PACKED_IDS, PackedPostings, Postings, merged

    rng = random.Random(5)
    packed, plain = PackedPostings(), Postings()
    sids = [rng.randbytes(8) for _ in range(60)]
    pool = [*range(40), *range(1000, 1016), 2**32 - 1]
    for step in range(5_000):
        hashes = list({rng.choice(pool) for _ in range(rng.randrange(1, 8))})
        sid = rng.choice(sids)
        limit = rng.choice((None, 1, 3))
        if rng.random() < 0.3:
            packed.recent = {}
        for h, ids in zip(hashes, packed.get_many(hashes, limit), strict=True):
            held = _ids_of(plain.get(h))
            found = _ids_of(ids)
            assert len(found) * 8 == len(ids or b""), step  # no id twice
            if limit is None or len(held) <= PACKED_IDS:
                assert found == held, step
            else:
                assert found <= held and len(found) == limit, step
        if rng.random() < 0.6:
            packed.post_many(hashes, sid)
            for h in hashes:
                plain.add(h, sid, plain.get(h))
        else:
            packed.unpost_many(hashes, sid)
            for h in hashes:
                plain.remove(h, sid)
        if step % 300 == 100:  # a fold beside the lookups: frozen now, taken later
            frozen = packed.freeze()
        if step % 300 == 200 and rng.random() < 0.5:
            packed.freeze()  # a second frozen layer (a fold that failed is folded again with it)
            frozen = (frozen[0], frozen[1], list(packed.folding))
        if step % 300 == 250:
            packed.adopt(*merged(frozen[0], frozen[1], frozen[2]), len(frozen[2]))
        if step % 300 == 0:
            packed.merge()
            if step % 900 == 0:  # through a snapshot file, as a restart reads it
                dedup_store.write_snapshot(tmp_path / "snapshot", packed, step)
                read, sequence = dedup_store.read_snapshot(tmp_path / "snapshot")
                assert read is not None and sequence == step
                packed = read
        if step % 100 == 0:  # every hash at once, absent ones too, twice (a batch's lookup: its directory)
            packed.recent = {}
            wanted = [*pool, 41, 999, 1017] * 2
            for h, ids in zip(wanted, packed.get_many(wanted), strict=True):
                assert _ids_of(ids) == _ids_of(plain.get(h)), step
    assert any(isinstance(posting, set) for posting in plain.values())  # long postings were met


def test_a_lookup_of_many_hashes_finds_their_runs_as_binary_searches_do() -> None:
    """The directory a batch's lookup goes through finds the same run for every hash as two
    binary searches of the arrays: hashes crowded at the low end of the range (a sketch's
    smallest), runs of one hash many roots post, the ends of the range, absent hashes."""
    import numpy as np

    from worker.steps.dedup.postings import PackedPostings

    rng = np.random.default_rng(3)
    for count in (0, 1, 100, 5_000, 200_000):
        low = (rng.exponential(1.0, count) * 2**26).clip(0, 2**32 - 1).astype(np.uint32)
        hashes = np.sort(np.concatenate([low, np.full(50, 12_345, np.uint32), np.array([0, 2**32 - 1] * 3, np.uint32)]))
        packed = PackedPostings(hashes, np.arange(len(hashes), dtype=">u8"))
        query = np.concatenate([hashes[rng.integers(0, len(hashes), 300)],
                                rng.integers(0, 2**32, 300, dtype=np.uint64).astype(np.uint32),
                                np.array([0, 1, 2**32 - 1, 12_344, 12_345, 12_346], np.uint32)])
        starts, ends = packed._runs(query)
        assert (starts == hashes.searchsorted(query)).all(), count
        assert (ends == hashes.searchsorted(query, "right")).all(), count


def _batched(index: DedupIndex, pages: list[Any], size: int) -> list[Any]:
    """`decide_many` of `pages` in batches of `size`, the window's expiry after each decision
    (as the worker's stages do); an error as its type."""
    def expire(decision: Any) -> None:
        if not decision.replay and decision.watermark and index.expiry_due(decision.watermark):
            index.expire(decision.watermark)

    decided = []
    for at in range(0, len(pages), size):
        decided += index.decide_many(pages[at : at + size], after=expire)
    return [type(d) if isinstance(d, Exception) else d for d in decided]


def test_decisions_made_in_batches_are_the_ones_made_one_by_one(tmp_path: Path) -> None:
    """`decide_many` decides as `decide` does, page after page, with the window's expiry between
    two pages of a batch, replays and a page whose fingerprint cannot be decided among them: the
    same decisions, facts and derived indexes over a dict and over RocksDB, whatever the batch."""
    from test_dedup import art

    from worker.steps.dedup.fingerprint import Fingerprint, fingerprint

    pages: list[Any] = []
    for seed in range(16):
        original = story(700 + seed, paragraphs=10)
        when = T0 + seed * 7 * 3600
        for step, (site, text) in enumerate((("a", original[:4]), ("b", original), ("c", original[5:]),
                                             ("b", original), ("d", original[1:]))):
            url = f"https://{site}.example/{seed}"
            pages.append((url, fingerprint(art(url, page(text))), when + 60 * step))
        if seed == 5:
            pages.append(("https://bad.example/1", Fingerprint("not hex", (1, 2, 3), 50), when + 600))
    memory: dict[str, bytes] = {}
    one_by_one = DedupIndex(memory, window_seconds=2 * DAY)
    expected = []
    for url, fp, when in pages:
        try:
            decision = one_by_one.decide(url, fp, when)
        except ValueError:
            expected.append(ValueError)
            continue
        expected.append(decision)
        if not decision.replay and decision.watermark and one_by_one.expiry_due(decision.watermark):
            one_by_one.expire(decision.watermark)
    assert ValueError in expected and any(d.replay for d in expected if not isinstance(d, type))
    assert one_by_one.entries() < len(pages) - 3  # the window expired pages on the way
    for size in (1, 7, 100):
        in_memory: dict[str, bytes] = {}
        assert _batched(DedupIndex(in_memory, window_seconds=2 * DAY), pages, size) == expected, size
        assert in_memory == memory, size
        rocks = LocalState(tmp_path / f"db-{size}")
        on_rocks = DedupIndex(rocks, window_seconds=2 * DAY, derived=rocks.derived)
        assert _batched(on_rocks, pages, size) == expected, size
        assert dict(rocks.items()) == memory, size
        assert _as_memory(rocks) == _expected(memory), size
        rocks.close()


def test_a_hash_held_by_ten_thousand_roots_costs_a_lookup_a_post_and_an_unpost_little(tmp_path: Path) -> None:
    """A sentence many stories share (or text chosen for its small hashes) puts one hash in the
    posting of every root: 10,000 roots post it beside hashes of their own, the older half goes,
    and lookups go on, with merges between: each step costs about what it does for a short
    posting (well under a second of CPU for all, where copying and filtering whole postings
    took minutes), and the decision's lookup answers with `BOILERPLATE_ROOTS` of them."""
    import time

    from worker.steps.dedup.policy import BOILERPLATE_ROOTS

    shared = 7
    rocks = LocalState(tmp_path / "db")
    derived = rocks.derived
    roots = [n.to_bytes(8, "big") for n in range(1, 10_001)]
    started = time.process_time()
    for at, sid in enumerate(roots):
        own = [100 + 3 * at, 101 + 3 * at]
        assert derived.postings([shared, *own])[0] is None or at > 0
        derived.begin()
        derived.post([shared, *own], sid)
        derived.write()
        if at == 6_000:
            derived._postings.merge()
    for at, sid in enumerate(roots[:5_000]):
        derived.begin()
        derived.unpost([shared, 100 + 3 * at, 101 + 3 * at], sid)
        derived.write()
        found = derived.postings([shared, 100 + 3 * at, 100 + 3 * (at + 5_000)])
        assert len(found[0]) == BOILERPLATE_ROOTS * 8 and found[1] is None and found[2] == roots[at + 5_000]
    spent = time.process_time() - started
    whole = derived._postings.get_many([shared])[0]
    assert set(unpack_ids(whole)) == set(roots[5_000:])
    assert spent < 6.0, spent  # under a second here; several minutes with whole postings copied
    rocks.close()
    assert set(unpack_ids(LocalState(tmp_path / "db").derived._postings.get_many([shared])[0])) == set(roots[5_000:])


def test_the_store_overrides_methods_faust_still_has_with_the_same_parameters() -> None:
    import inspect

    from faust.stores.rocksdb import RocksDBOptions, Store

    from worker.kafka.dedup_store import BoundedOptions, DedupRocksStore

    pairs = [(getattr(DedupRocksStore, name), getattr(Store, name), name)
             for name in ("_set", "_del", "apply_changelog_batch", "basename", "on_rebalance", "revoke_partitions",
                          "reset_state")]
    pairs += [(getattr(BoundedOptions, name), getattr(RocksDBOptions, name), name) for name in ("open", "as_options")]
    for ours, theirs, name in pairs:
        if isinstance(ours, property):
            assert isinstance(theirs, property), name
            continue
        assert list(inspect.signature(ours).parameters) == list(inspect.signature(theirs).parameters), name


def test_a_reopened_table_reads_through_the_block_cache_it_was_given(tmp_path: Path) -> None:
    """rocksdict reads an existing database's column family options from its OPTIONS file unless
    they are given, and that file keeps no block cache: it came back as RocksDB's 8 MB default."""
    cache = 64 * 1024 * 1024
    first = LocalState(tmp_path / "db", cache, hot_bytes=0)
    first["~d"] = b"x"
    first.close()
    reopened = LocalState(tmp_path / "db", cache, hot_bytes=0)
    assert int(reopened.db.property_value("rocksdb.block-cache-capacity")) == cache
    assert reopened["~d"] == b"x"


def test_a_table_written_with_compressed_blocks_decides_on_as_one_written_without(tmp_path: Path) -> None:
    """Tables are written uncompressed; a volume written compressed (before) reads and decides the
    same, also once a compaction has written its files again."""
    import rocksdict

    from worker.kafka import dedup_store

    plain = LocalState(tmp_path / "plain", hot_bytes=0)
    plain_decisions = _pages(DedupIndex(plain, derived=plain.derived), 4)
    options = dedup_store.BoundedOptions(block_cache_size=1 << 24, write_buffer_size=1 << 20,
                                         max_write_buffer_number=2).as_options()
    options.set_compression_type(rocksdict.DBCompressionType.snappy())
    compressed = rocksdict.Rdict(str(tmp_path / "old"), options=options, column_families={"default": options})
    old = LocalState.__new__(LocalState)
    old.db, old.derived = compressed, RocksDerived(lambda: compressed)
    old.derived.load()
    assert _pages(DedupIndex(old, derived=old.derived), 4) == plain_decisions
    compressed.flush()
    compressed.close()
    for options_file in (tmp_path / "old").glob("OPTIONS-*"):
        options_file.unlink()
    reopened = LocalState(tmp_path / "old", hot_bytes=0)
    assert dict(reopened.items()) == dict(plain.items())
    compact = rocksdict.CompactOptions()
    compact.set_bottommost_level_compaction(rocksdict.BottommostLevelCompaction.force())
    reopened.db.compact_range(None, None, compact)
    assert _as_memory(reopened) == _as_memory(plain)
    index = DedupIndex(reopened, derived=reopened.derived)
    assert _pages(index, 2, start=4) == _pages(DedupIndex(plain, derived=plain.derived), 2, start=4)


def test_hot_entries_of_any_size_decide_alike_and_stay_within_their_memory(tmp_path: Path) -> None:
    """The hot entries in front of RocksDB change no decision and no fact, whatever they hold:
    none, a few (turned over many times), or all."""
    memory: dict[str, bytes] = {}
    expected = _pages(DedupIndex(memory, window_seconds=2 * DAY), 12)
    for name, hot_bytes in (("none", 0), ("few", 4_000), ("all", 64 * 1024 * 1024)):
        rocks = LocalState(tmp_path / name, hot_bytes=hot_bytes)
        index = DedupIndex(rocks, window_seconds=2 * DAY, derived=rocks.derived)
        assert _pages(index, 12) == expected, name
        assert dict(rocks.items()) == memory, name
        assert _as_memory(rocks) == _expected(memory), name
        hot = rocks.derived.hot
        held = sum(len(k) + len(v or b"") + HOT_ENTRY_OVERHEAD for part in (hot._young, hot._old)
                   for k, v in part.items())
        assert held <= max(hot_bytes, 2 * (HOT_ENTRY_OVERHEAD + 1_000)), name
        rocks.close()


def _recorded_index(path: Path) -> tuple[DedupIndex, list[Any]]:
    """An index over RocksDB at `path` and the list its database's `write` calls go to."""
    rocks = LocalState(path)
    writes: list[Any] = []
    rocks.db = _Recording(rocks.db, writes)
    return DedupIndex(rocks, window_seconds=2 * DAY, derived=rocks.derived), writes


def test_a_decision_and_a_batch_of_decisions_are_each_one_write_of_the_database(tmp_path: Path) -> None:
    from test_dedup import art

    from worker.steps.dedup.fingerprint import fingerprint

    index, writes = _recorded_index(tmp_path / "one-by-one")
    original = story(901, paragraphs=10)
    decide(index, "https://a.example/1", page(original))
    decide(index, "https://b.example/1", page(original[:6]))
    assert len(writes) == 2  # a new story, then a copy (its record, its root's, the counter, ...)

    index, writes = _recorded_index(tmp_path / "batch")
    batch = [(f"https://{site}.example/1", fingerprint(art(f"https://{site}.example/1", page(text))), T0)
             for site, text in (("a", original), ("b", original[:6]), ("c", original[2:]))]
    decided = index.decide_many(batch)
    assert [d.copies for d in decided] == [1, 2, 3]  # type: ignore[union-attr]
    assert len(writes) == 1


class _Recording:
    """A database that counts its `write` calls and passes everything through."""

    def __init__(self, db: Any, writes: list[Any]) -> None:
        self._db, self._writes = db, writes

    def write(self, batch: Any) -> None:
        self._writes.append(batch)
        self._db.write(batch)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def test_the_site_of_a_url_is_the_hash_of_its_host() -> None:
    import zlib

    from worker.steps.common import host
    from worker.steps.dedup.index import site_of

    urls = ["https://www.Example.com/a/b?c#d", "http://a.b.c:8080?x=/y", "https://x.org#frag/z", "ftp://h",
            "no url", "", "//h.com/x", "https://user:pw@Host.COM:99/p", "https://[::1]:80/p", "mailto:a@b.com",
            " https://sp.com/x", "HTTPS://WWW.H.COM", "https://www.example.com/?/", "1http://bad/x",
            "/go?to=https://elsewhere.example/x", "//h/a://b/c"]
    for url in urls:
        assert site_of(url) == zlib.crc32(host(url).encode()), url


def test_a_page_record_head_is_what_the_derived_indexes_skip() -> None:
    from worker.steps.dedup import index
    from worker.steps.dedup.policy import Version

    root = index._Record(True, "near", bytes(16), 1733400000.5, 1, 0.0, 7, bytes(8), (11, 22), (Version((33,), 9),))
    more_copies = index._Record(True, "near", bytes(16), 1733400000.5, 5, 0.9, 7, bytes(8), (11, 22),
                                (Version((33,), 9),), (123,))
    later = index._Record(True, "near", bytes(16), 1733403600.5, 1, 0.0, 7, bytes(8), (11, 22), (Version((33,), 9),))
    other_text = index._Record(True, "near", bytes(16), 1733400000.5, 1, 0.0, 7, bytes(8), (11, 44),
                               (Version((33,), 9),))
    assert index.same_filing(root.pack(), more_copies.pack())  # copies, similarity, copies' sites
    assert not index.same_filing(root.pack(), later.pack())
    assert not index.same_filing(root.pack(), other_text.pack())
    assert index._RECORD.unpack_from(bytes(range(64)))[2] == index._RECORD.unpack_from(
        bytes(17) + bytes(range(17, 25)) + bytes(39))[2]  # seen_at is bytes 17-25


# Page records as the previous release wrote them (a root with one firm copy's version, a copy):
# state on a volume or in the changelog from before copies' sites were kept reads the same.
PREVIOUS_ROOT = bytes.fromhex(
    "82000102030405060708090a0b0c0d0e0f41d9d46570200000000000033f4000000001e2406162636465666768"
    "0100000309020000002c000000370000000b0000001600000021"
)
PREVIOUS_COPY = bytes.fromhex(
    "01101112131415161718191a1b1c1d1e1f41d9d46570400000000000023f8000000009fbf16867666564636261"
)


def test_page_records_of_the_previous_release_read_the_same() -> None:
    from worker.steps.dedup.index import _Record
    from worker.steps.dedup.policy import Version

    root = _Record.unpack(PREVIOUS_ROOT)
    assert (root.root, root.kind, root.copies, root.site, root.chash) == (True, "near", 3, 123456, b"abcdefgh")
    assert root.sketch == (11, 22, 33) and root.versions == (Version((44, 55), 777),) and root.sites == ()
    assert root.pack() == PREVIOUS_ROOT  # a root that kept no other sites is written as before
    copy = _Record.unpack(PREVIOUS_COPY)
    assert (copy.root, copy.kind, copy.copies, copy.similarity) == (False, "exact", 2, 1.0)
    assert copy.root_id == bytes(range(16, 32))
    assert copy.pack() == PREVIOUS_COPY


def test_what_a_record_is_filed_under_is_what_its_unpacked_record_posts() -> None:
    import random

    from worker.steps.dedup import index
    from worker.steps.dedup.policy import Version

    rng = random.Random(5)

    def sketch() -> tuple[int, ...]:
        return tuple(sorted(rng.sample(range(1 << 32), rng.choice((0, 1, 3, 15, 16, 17, 80)))))

    for _ in range(500):
        root = rng.random() < 0.8
        versions = tuple(Version(sketch(), rng.randrange(1 << 32)) for _ in range(rng.randrange(3))) if root else ()
        sites = tuple(rng.randrange(1 << 32) for _ in range(rng.choice((0, 0, 1, 16))))
        record = index._Record(root, None if root else "near", rng.randbytes(16), rng.uniform(0, 2e9),
                               rng.randrange(1, 9), rng.random(), rng.randrange(1 << 32), rng.randbytes(8),
                               sketch() if root else (), versions, sites if root else ())
        data = record.pack()
        unpacked = index._Record.unpack(data)
        for posted in (1, 16, 80):
            assert index.filing(data, posted) == (unpacked.root, unpacked.seen_at, unpacked.posted(posted))


def test_hot_entries_fill_answers_what_it_knows_across_an_ageing_generation() -> None:
    per_entry = 2 + 4 + HOT_ENTRY_OVERHEAD
    hot = HotEntries(limit_bytes=2 * 2 * per_entry)  # two entries a generation
    hot.put(b"k1", b"v001")
    hot.put(b"k2", b"v002")
    hot.put(b"k3", b"v003")  # ages k1, k2 into the old generation
    keys = [b"k1", b"k2", b"k3", b"k4", b"k5"]
    values: list[Any] = [_ABSENT, _ABSENT, _ABSENT, _ABSENT, b"pending"]
    unknown = hot.fill(keys, values)
    assert values[:3] == [b"v001", b"v002", b"v003"] and values[4] == b"pending"
    assert unknown == [3] and values[3] is _ABSENT
    assert (hot.hits, hot.misses) == (3, 1)
    # k1 and k2 were read again: promoting them aged the generations, and both are still known
    assert hot.get(b"k1") == b"v001" and hot.get(b"k2") == b"v002"
