"""The dedup table's RocksDB store: facts and their derived indexes in one local database.

Faust's RocksDB store (`rocksdict`) keeps the table under `INGEST_DATA_DIR` with the changelog
offset it holds, so a worker restarted on the same volume reads its local state and replays only
the changelog's tail, and a standby that applied the changelog takes over from its own copy. This
subclass also keeps the indexes derived from the facts (`worker.steps.dedup.derived`: postings,
pages and sites by hour, counters) in the same database, written in the same write batch as the
fact that changes them - by the owner's decisions and by every changelog record a standby or a
recovery applies - so no index is rebuilt after a restart, and memory is the block cache and the
write buffers, not the window.

The postings (posted sketch hash -> roots) are the exception: they live in memory in two arrays
(`PackedPostings`, 12 bytes a posting), so that a decision looks them up and a new root posts its
hashes without a read or a write of the database per hash. Each batch that changes them writes
what it changed as one journal key in the same write; every so many changes the arrays are
folded and written to a snapshot file in the database's directory (`SNAPSHOT_FILE`) and the
journal before it deleted. The fold runs in a thread of its own (`_Fold`) while decisions go
on: the changes it folds are frozen, the ones made meanwhile kept beside them, and the new
arrays taken once it is done. A restart reads the snapshot and applies the journal's tail;
Faust's rebalance (`DedupRocksStore.on_rebalance`) does that in a thread too, before the
table's recovery and the first decision, so that a rebuild of the postings from the page
records (no usable snapshot) or the one-time move of an older volume's posting keys keeps the
event loop free (heartbeats, the health and metrics views).

Derived keys start with a zero byte: the table's own keys are JSON strings (they start with `"`),
and Faust's offset key with `_`. Nothing derived goes to the changelog.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
import threading
from array import array
from collections.abc import Callable, Iterable, Iterator, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rocksdict
from faust.stores import STORES
from faust.stores import rocksdb as faust_rocksdb
from faust.types import EventT

from worker.kafka.topics import DEDUP_TABLE
from worker.settings import Settings
from worker.steps.dedup import index
from worker.steps.dedup.derived import apply_change
from worker.steps.dedup.policy import BOILERPLATE_ROOTS
from worker.steps.dedup.postings import Changes, Directory, PackedPostings, Posting, merged

SCHEME = "dedup-rocksdb"
STORES.aliases[SCHEME] = f"{__name__}:DedupRocksStore"

POSTING = b"\x00p"  # + hash (4 bytes) -> ids of the roots posting it, packed (volumes written before
# the postings moved to memory: read once into the snapshot, then deleted)
JOURNAL = b"\x00j"  # + sequence (8 bytes) -> the posting changes of one batch (`_JOURNAL_ENTRY`s)
JOURNAL_START = b"\x00J"  # -> the sequence (8 bytes) the journal starts after: what a snapshot must hold
PAGE = b"\x00f"  # + hour (8 bytes) + page id -> b""
SITE = b"\x00s"  # + hour (8 bytes) + site (4 bytes) -> b""
COUNTERS = b"\x00m"  # records | roots | bytes of the state
_COUNTERS = struct.Struct(">qqq")
_HOUR = struct.Struct(">Q")
_HOUR_BIAS = 1 << 63  # hours as unsigned, so that keys sort by hour
_HASH = struct.Struct(">I")
_JOURNAL_KEY = struct.Struct(">2sQ")
_SEQUENCE = struct.Struct(">Q")
_JOURNAL_ENTRY = struct.Struct(">B8sB")  # post (1) or unpost (0) | root id | hashes, then the hashes
_JOURNAL_MOST = 255  # hashes in one entry: a root posting more has several
_SNAPSHOT_HEAD = struct.Struct(">8sQQ")  # magic | journal sequence it holds up to | postings
_SNAPSHOT_MAGIC = b"dedupPS1"  # then the hashes (little-endian uint32), then the ids (big-endian uint64)
_SNAPSHOT_HASHES = np.dtype("<u4")
_SNAPSHOT_IDS = np.dtype(">u8")
SNAPSHOT_FILE = "dedup-postings.snapshot"
MERGE_CHANGES = 50_000
"""Posting changes (added or removed) held beside the arrays before they are folded in and a
snapshot written; at least a sixteenth of the postings (up to `MAX_MERGE_CHANGES`), so that the
time spent writing snapshots stays a small share of the decisions' while a restart applies at
most that many changes from the journal."""
MAX_MERGE_CHANGES = 1_000_000  # ~100 MB of changes in dicts
FOLD_STOP_SECONDS = 30  # a fold (merge, WAL sync, snapshot) waited for at stop, at most
_SITE = struct.Struct(">I")
log = logging.getLogger(__name__)
STANDBY_BUFFER = 100
"""Changelog records a standby applies at a time (Faust's default is 1,000): what it may lag behind
the owner, and replays when it takes over."""
WRITE_BUFFER_BYTES = 16 * 1024 * 1024
WRITE_BUFFERS = 2
HOT_SHARE = 4
"""`INGEST_DEDUP_CACHE_MB` is shared: a quarter for the hot entries (`HotEntries`), the rest for
RocksDB's block cache."""
HOT_OPTION = "hot_entries_bytes"
MEMTABLE_BLOOM_RATIO = 0.1
METADATA_BLOCK_BYTES = 4096


def hot_size(cache_bytes: int) -> int:
    """Memory of the hot entries out of the dedup cache's."""
    return cache_bytes // HOT_SHARE


def table_options(settings: Settings) -> dict[str, Any]:
    """The dedup table's store and its options for `app.Table`, from settings."""
    if settings.dedup_store == "memory":
        return {"store": "memory://"}
    cache_bytes = settings.dedup_cache_mb * 1024 * 1024
    return {
        "standby_buffer_size": STANDBY_BUFFER,
        "store": f"{SCHEME}://{DEDUP_TABLE}",  # a host: an empty URL would mean the app's store
        "options": {
            "block_cache_size": cache_bytes - hot_size(cache_bytes),
            HOT_OPTION: hot_size(cache_bytes),
            "write_buffer_size": WRITE_BUFFER_BYTES,
            "max_write_buffer_number": WRITE_BUFFERS,
        },
    }


def _hour_key(prefix: bytes, hour: int) -> bytes:
    return prefix + _HOUR.pack(hour + _HOUR_BIAS)


def _fact_key(key: bytes) -> str | None:
    """The table's key (a JSON string of ASCII) as text; None for keys that are not facts."""
    if len(key) >= 2 and key[0] == 0x22 and key[-1] == 0x22:
        return key[1:-1].decode("ascii")
    return None


_ABSENT: Any = object()
HOT_ENTRY_OVERHEAD = 160
"""Bytes a cached entry costs beyond its key and value (two bytes objects and a dict slot)."""


class HotEntries:
    """Recently read and written entries of the database, newest generation first (`None`: the
    key is known to be absent), so that a decision reads the records and postings of the stories
    it is likely to meet (recent ones: copies follow their story within hours) without calling
    into RocksDB. Two generations of at most half of `limit_bytes` each: when the young one is
    full it becomes the old one and the previous old one goes, so memory stays within the limit
    and whatever is read or written again stays. Writes go here only once the database has them.
    """

    def __init__(self, limit_bytes: int) -> None:
        self._young: dict[bytes, bytes | None] = {}
        self._old: dict[bytes, bytes | None] = {}
        self._bytes = 0
        self._half = limit_bytes // 2
        self.hits = self.misses = 0

    def get(self, key: bytes) -> Any:
        """The value (None: absent), or `_ABSENT` when this cache does not know the key."""
        value = self._young.get(key, _ABSENT)
        if value is _ABSENT:
            value = self._old.get(key, _ABSENT)
            if value is _ABSENT:
                self.misses += 1
                return value
            self.put(key, value)
        self.hits += 1
        return value

    def fill(self, keys: list[bytes], values: list[Any]) -> list[int]:
        """`get` of each key whose slot in `values` is `_ABSENT`, written into that slot; the
        positions this cache does not know either (inlined: a decision looks up ~20 keys)."""
        young, old = self._young, self._old
        unknown: list[int] = []
        looked_up = 0
        for at, key in enumerate(keys):
            if values[at] is not _ABSENT:
                continue
            looked_up += 1
            value = young.get(key, _ABSENT)
            if value is _ABSENT:
                value = old.get(key, _ABSENT)
                if value is _ABSENT:
                    unknown.append(at)
                    continue
                self.put(key, value)  # read again: into the young generation
                young, old = self._young, self._old  # which that may have aged
            values[at] = value
        self.hits += looked_up - len(unknown)
        self.misses += len(unknown)
        return unknown

    def put(self, key: bytes, value: bytes | None) -> None:
        """Remember a key's value (None: absent), ageing the older generation out past the bound."""
        young = self._young
        if key not in young:
            self._bytes += len(key) + (len(value) if value else 0) + HOT_ENTRY_OVERHEAD
            if self._bytes > self._half:
                self._old, self._young, self._bytes = young, {}, 0
                young = self._young
        young[key] = value

    def put_many(self, entries: dict[bytes, bytes | None]) -> None:
        """`put` of each entry."""
        young = self._young
        added = sum(len(key) + (len(value) if value else 0) + HOT_ENTRY_OVERHEAD
                    for key, value in entries.items() if key not in young)
        if self._bytes + added > self._half:
            for key, value in entries.items():
                self.put(key, value)
            return
        self._bytes += added
        young.update(entries)

    def clear(self) -> None:
        """Forget every entry (the database was reset, reopened or a write failed)."""
        self._young, self._old, self._bytes = {}, {}, 0


class RocksDerived:
    """The facts and their derived indexes in a RocksDB database: read through a cache of hot
    entries, written in batches - one per decision, or per batch of changelog records."""

    def __init__(self, db: Callable[[], Any], hot_bytes: int = 0) -> None:
        self._db = db
        self._pending: dict[bytes, bytes | None] = {}
        self._batch: rocksdict.WriteBatch | None = None
        self._depth = 0
        self._loaded = False
        self.hot = HotEntries(hot_bytes)
        self.records = self.roots = self.size = 0
        self._postings = PackedPostings()
        self._journal: list[bytes] = []  # the posting changes of the batch being built
        self._sequence = 0  # of the journal key written last
        self._legacy = False  # the database still holds posting keys (`POSTING`)
        self._fold_now = False  # the postings were read from elsewhere than a snapshot: write one
        self._retry_at: int | None = None  # changes at which a fold that failed is tried again
        self._running: _Fold | None = None  # the fold under way in its thread
        self._load_lock = threading.RLock()  # a load, and the fold a load or `forget` settles
        self.fold_failures = 0  # folds whose snapshot could not be written (the journal kept)

    def load(self) -> None:
        """Read the counters and the postings (once, when the database is first used; from any
        thread: a caller that comes while another thread loads waits for it)."""
        if self._loaded:
            return
        with self._load_lock:
            if not self._loaded:
                db = self._db()
                raw = db.get(COUNTERS)
                self.records, self.roots, self.size = _COUNTERS.unpack(raw) if raw else (0, 0, 0)
                self._load_postings(db)
                self._postings.directory()  # here, not at the first batch of decisions
                self._loaded = True

    def forget(self) -> None:
        """Drop the hot entries, the counters and postings read (the database was reset or
        reopened, or a write failed): they are read again from it. A fold under way is waited
        for and finished first (on its own handle of the database, which may be gone already)."""
        with self._load_lock:
            try:
                self.settle()
            finally:
                self.hot.clear()
                self._postings = PackedPostings()
                self._journal = []
                self._loaded = False

    def settle(self, timeout: float | None = None) -> bool:
        """Wait for the fold under way, if any (at most `timeout` seconds), and take its arrays
        (or count its failure); whether none is left running."""
        with self._load_lock:
            fold = self._running
            if fold is None:
                return True
            fold.thread.join(timeout)
            if fold.thread.is_alive():
                return False
            self._finish_fold()
            return True

    def _snapshot_path(self, db: Any) -> Path:
        return Path(db.path()) / SNAPSHOT_FILE

    def _load_postings(self, db: Any) -> None:
        """The postings: the snapshot, then the journal written after it (or, in a database
        written before the postings moved to memory, its posting keys). When the snapshot does
        not hold what the journal no longer does (lost, unreadable, or an older one back after
        a crash), the postings are rebuilt from the page records and a new snapshot written."""
        self._legacy = self._fold_now = False
        self._retry_at = None
        postings, self._sequence = read_snapshot(self._snapshot_path(db))
        raw_start = db.get(JOURNAL_START)
        journal_start = _SEQUENCE.unpack(raw_start)[0] if raw_start else 0
        legacy = next(iter(db.keys(from_key=POSTING)), b"")[: len(POSTING)] == POSTING
        first = next(iter(db.keys(from_key=JOURNAL)), b"")
        # a volume written before the journal's start was recorded: its journal starts at 1
        # unless a snapshot held what came before
        lost = postings is None and self.roots and not legacy and first != _JOURNAL_KEY.pack(JOURNAL, 1)
        if postings is None and not journal_start and not lost:
            postings, self._legacy = _legacy_postings(db)  # none yet, or the keys of an older volume
        elif postings is None or journal_start > self._sequence:
            log.warning("dedup postings: the snapshot %s does not hold the journal's start (sequence %d); "
                        "rebuilding the postings from the page records", self._snapshot_path(db), journal_start)
            self._postings = _root_postings(db)
            self._sequence = max(journal_start, self._sequence)
            for key in db.keys(from_key=_JOURNAL_KEY.pack(JOURNAL, self._sequence + 1)):
                if not key.startswith(JOURNAL):
                    break
                self._sequence = _JOURNAL_KEY.unpack(key)[1]  # held by the records: not applied
            self._legacy, self._fold_now = legacy, True
            self._fold(wait=True)
            return
        elif legacy:  # killed after a snapshot of the posting keys was written, before they were deleted
            db.delete_range(POSTING, POSTING[:1] + bytes([POSTING[1] + 1]))
        self._postings = postings
        changes: list[tuple[int, bytes, tuple[int, ...]]] = []
        for key, value in db.items(from_key=_JOURNAL_KEY.pack(JOURNAL, self._sequence + 1)):
            if not key.startswith(JOURNAL):
                break
            self._sequence = _JOURNAL_KEY.unpack(key)[1]
            at = 0
            while at < len(value):
                op, sid, count = _JOURNAL_ENTRY.unpack_from(value, at)
                at += _JOURNAL_ENTRY.size
                changes.append((op, sid, struct.unpack_from(f">{count}I", value, at)))
                at += count * 4
        postings.get_many(list({h for _, _, hashes in changes for h in hashes}))  # one search for all
        for op, sid, hashes in changes:
            (self._post if op else self._unpost)(hashes, sid)
        if self._legacy:
            self._fold_now = True
            self._fold(wait=True)  # the snapshot written, the posting keys deleted

    def _fold(self, wait: bool = False) -> None:
        """Fold the posting changes into the arrays once there are enough of them: in a thread
        (`_Fold`: merge, then write the snapshot), the lookups reading the changes beside the
        arrays meanwhile; once it is done (seen at a later write, or at once with `wait`), the
        new arrays are taken and the journal the snapshot holds deleted. A fold that fails (a
        full disk, no memory for the merge, any error) raises nothing: the decisions' batches
        are written already; the arrays merged are taken all the same, the journal stays, and
        the snapshot is tried again once as many changes more are held."""
        if self._running is not None:
            if self._running.thread.is_alive():
                return
            self._finish_fold()
        postings = self._postings
        if postings.changes < MERGE_CHANGES and self._retry_at is None and not self._fold_now:
            return  # the usual case: too few changes for any threshold
        threshold = max(MERGE_CHANGES, min(len(postings.hashes) // 16, MAX_MERGE_CHANGES))
        if self._retry_at is not None:
            if postings.changes < self._retry_at:
                return
        elif postings.changes < threshold and not self._fold_now:
            return
        db = self._db()
        hashes, ids, layers = postings.freeze()
        self._running = _Fold(db, self._snapshot_path(db), hashes, ids, layers, self._sequence, self._legacy,
                              threshold)
        if wait:
            self.settle()

    def _finish_fold(self) -> None:
        """Take the arrays of the fold that ended (merged: also when its snapshot could not be
        written, so that failed folds never pile up layers), and delete the journal its snapshot
        holds, on the fold's own handle of the database. A fold that failed, whatever the error,
        raises nothing (the decisions' batches are written already): it is counted, and its
        snapshot tried again once as many changes more are held."""
        fold, self._running = self._running, None
        if fold is None:  # finished by another caller
            return
        arrays = fold.mapped or fold.folded
        if arrays is not None:
            self._postings.adopt(arrays.hashes, arrays.ids, fold.layers, fold.directory)
        try:
            if fold.error is not None:
                raise fold.error
            if fold.mapped is None:
                raise RuntimeError("the fold's thread ended without its snapshot")
            done = rocksdict.WriteBatch(raw_mode=True)
            done.delete_range(JOURNAL, _JOURNAL_KEY.pack(JOURNAL, fold.sequence + 1))
            done.put(JOURNAL_START, _SEQUENCE.pack(fold.sequence))
            if fold.legacy:
                done.delete_range(POSTING, POSTING[:1] + bytes([POSTING[1] + 1]))
            _io(fold.db.write, done)
        except Exception as error:
            self.fold_failures += 1
            if self._retry_at is None:  # once until a fold succeeds
                log.error("dedup postings: the snapshot %s could not be written (%s: %s); the journal is "
                          "kept and the fold tried again after %d more changes",
                          fold.path, type(error).__name__, error, fold.threshold,
                          exc_info=not isinstance(error, (OSError, MemoryError)))
            self._retry_at = self._postings.changes + fold.threshold
            with contextlib.suppress(OSError):
                fold.path.with_name(fold.path.name + ".part").unlink(missing_ok=True)
            return
        if fold.legacy:
            self._legacy = False
        self._fold_now = False
        self._retry_at = None

    # -- read -------------------------------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        """A key's value as the batch being built leaves it (None: absent)."""
        value = self._pending.get(key, _ABSENT)
        if value is _ABSENT:
            value = self.hot.get(key)
            if value is _ABSENT:
                value = self._db().get(key)
                self.hot.put(key, value)
        return value  # type: ignore[no-any-return]

    current = get

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        """The values of `keys` as the batch being built leaves them (None: absent), what neither
        the batch nor the hot entries hold read in one call."""
        return self._read(keys)

    def postings(self, hashes: Sequence[int]) -> list[Posting | None]:
        """The posting of each hash (packed root ids; None: no root posts it), one of many roots
        cut to `BOILERPLATE_ROOTS` of them (all the decision tells apart)."""
        if not self._loaded:
            self.load()
        return self._postings.get_many(hashes, BOILERPLATE_ROOTS)  # type: ignore[return-value]

    def pages(self, hour: int) -> list[bytes]:
        """Ids of the pages seen in `hour`."""
        prefix = _hour_key(PAGE, hour)
        return [key[len(prefix) :] for key in self._prefixed(prefix)]

    def sites(self, hour: int) -> list[int]:
        """Sites whose last page was seen in `hour`."""
        prefix = _hour_key(SITE, hour)
        return [_SITE.unpack(key[len(prefix) :])[0] for key in self._prefixed(prefix)]

    def _prefixed(self, prefix: bytes) -> list[bytes]:
        keys = []
        for key in self._db().keys(from_key=prefix):
            if not key.startswith(prefix):
                break
            if self._pending.get(key, b"") is not None:  # not deleted by the batch being built
                keys.append(key)
        keys.extend(key for key, value in self._pending.items()
                    if value is not None and key.startswith(prefix) and key not in keys)
        return keys

    # -- write: `begin`, `change` for each fact, then `write` the batch --------------------------

    def batching(self) -> bool:
        """Whether a batch is being built (writes join it)."""
        return self._depth > 0

    def begin(self) -> None:
        """Start a batch; a batch begun inside another one is part of it (written with it). A
        load that fails begins no batch (and is tried again by the next one)."""
        if not self._depth:
            try:
                self.load()
            except BaseException:
                self.forget()  # what the load read so far
                raise
            self._batch = rocksdict.WriteBatch(raw_mode=True)
            self._pending.clear()
        self._depth += 1

    def abort(self) -> None:
        """End a batch whose changes raised, writing none of them: the outermost batch is dropped,
        with what its changes did to the counters and postings in memory (read again from the
        database), so that the next batch starts clean."""
        self._depth -= 1
        if self._depth > 0:
            return
        self._batch = None
        self._pending = {}
        self.forget()

    def change(self, key: bytes, old: bytes | None, new: bytes | None) -> None:
        """Put the fact `key` (None: delete it) and what it changes in the derived indexes."""
        fact = _fact_key(key)
        if fact is not None:
            apply_change(fact, old, new, self)
        self._put(key, new)

    def change_one(self, key: bytes, old: bytes | None, new: bytes | None) -> None:
        """`change` in a batch of its own (or the enclosing one), ended by `abort` if it raises."""
        self.begin()
        try:
            self.change(key, old, new)
        except BaseException:
            self.abort()
            raise
        self.write()

    def change_fact(self, fact: str, old: bytes | None, new: bytes | None) -> None:
        """`change` for a fact named by its table key (`fact`: the text, `_fact` its bytes), in
        the batch being built."""
        apply_change(fact, old, new, self)
        self._pending[f'"{fact}"'.encode("ascii")] = new

    def write(self, extra: Iterable[tuple[bytes, bytes]] = ()) -> None:
        """Write the batch (with the counters, and `extra` keys such as the changelog offset);
        inside an enclosing batch, leave it to that one's `write`. A write that fails ends the
        batch all the same (see `abort`)."""
        assert self._batch is not None and self._depth > 0, "write without begin"
        self._depth -= 1
        if self._depth > 0:
            for key, value in extra:
                self._batch.put(key, value)
            return
        batch, self._batch = self._batch, None
        pending, self._pending = self._pending, {}
        try:
            for key, written in pending.items():  # a key written twice in the batch, once
                if written is None:
                    batch.delete(key)
                else:
                    batch.put(key, written)
            if pending or self._journal:
                batch.put(COUNTERS, _COUNTERS.pack(self.records, self.roots, self.size))
            if self._journal:
                batch.put(_JOURNAL_KEY.pack(JOURNAL, self._sequence + 1), b"".join(self._journal))
            for key, value in extra:
                batch.put(key, value)
            if len(batch):
                self._db().write(batch)
        except BaseException:
            self.forget()  # the counters, postings and hot entries may hold what was not written
            raise
        if self._journal:
            self._sequence += 1
            self._journal = []
        # facts (not the hour files) stay at hand
        self.hot.put_many({key: written for key, written in pending.items() if key[0] == 0x22})  # `"` a fact
        self._fold()

    def _put(self, key: bytes, value: bytes | None) -> None:
        self._pending[key] = value

    def _read(self, keys: list[bytes]) -> list[bytes | None]:
        """The value of each key as the batch leaves it (None: absent); what neither the batch nor
        the hot entries hold is read in one call."""
        pending, hot = self._pending, self.hot
        values: list[Any] = [pending.get(key, _ABSENT) for key in keys]
        unread = hot.fill(keys, values)
        if unread:
            read = self._db().get([keys[at] for at in unread])
            for at, value in zip(unread, read, strict=True):
                values[at] = value
                hot.put(keys[at], value)
        return values

    def post(self, hashes: Iterable[int], sid: bytes) -> None:
        hashes = tuple(hashes)
        self._journal.append(_journal_entries(1, sid, hashes))
        self._post(hashes, sid)

    def unpost(self, hashes: Iterable[int], sid: bytes) -> None:
        hashes = tuple(hashes)
        self._journal.append(_journal_entries(0, sid, hashes))
        self._unpost(hashes, sid)

    def _post(self, hashes: Sequence[int], sid: bytes) -> None:
        self._postings.post_many(hashes, sid)

    def _unpost(self, hashes: Sequence[int], sid: bytes) -> None:
        self._postings.unpost_many(hashes, sid)

    def file_page(self, hour: int, sid: bytes) -> None:
        self._put(_hour_key(PAGE, hour) + sid, b"")

    def unfile_page(self, hour: int, sid: bytes) -> None:
        self._put(_hour_key(PAGE, hour) + sid, None)

    def file_site(self, hour: int, site: int) -> None:
        self._put(_hour_key(SITE, hour) + _SITE.pack(site), b"")

    def unfile_site(self, hour: int, site: int) -> None:
        self._put(_hour_key(SITE, hour) + _SITE.pack(site), None)


def _journal_entries(op: int, sid: bytes, hashes: tuple[int, ...]) -> bytes:
    """The journal entries of a post (`op` 1) or an unpost (0) of `sid` under `hashes`: one,
    or one per `_JOURNAL_MOST` hashes (an entry counts its hashes in a byte)."""
    if len(hashes) <= _JOURNAL_MOST:
        return _JOURNAL_ENTRY.pack(op, sid, len(hashes)) + struct.pack(f">{len(hashes)}I", *hashes)
    return b"".join(_journal_entries(op, sid, hashes[at : at + _JOURNAL_MOST])
                    for at in range(0, len(hashes), _JOURNAL_MOST))


class _Fold:
    """A fold of the postings in a thread of its own, on its own handle of the database (`db`):
    the frozen layers merged into new arrays (`folded`), the database's WAL synced (the snapshot
    never holds more than the database does after a crash), the snapshot written and mapped
    again (`mapped`), or the `error` met."""

    def __init__(self, db: Any, path: Path, hashes: np.ndarray, ids: np.ndarray, layers: list[Changes],
                 sequence: int, legacy: bool, threshold: int) -> None:
        self.db, self.path, self.sequence, self.legacy, self.threshold = db, path, sequence, legacy, threshold
        self.layers = len(layers)
        self.folded: PackedPostings | None = None
        self.mapped: PackedPostings | None = None
        self.directory: Directory | None = None  # of the mapped arrays, for batches' lookups
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self._run, args=(hashes, ids, layers), name="dedup-fold",
                                       daemon=True)
        self.thread.start()

    def _run(self, hashes: np.ndarray, ids: np.ndarray, layers: list[Changes]) -> None:
        try:
            self.folded = PackedPostings(*merged(hashes, ids, layers))
            _io(self.db.flush_wal, True)
            write_snapshot(self.path, self.folded, self.sequence)
            mapped, _ = read_snapshot(self.path)  # the arrays as the file's pages, not the process's
            if mapped is None:
                raise OSError(f"{self.path} reads back as no snapshot")
            self.mapped = mapped
            self.directory = mapped.directory()
        except Exception as error:  # noqa: BLE001 - handed to the thread that takes the fold
            self.error = error


def _io(call: Callable[..., Any], *args: Any) -> Any:
    """A call into RocksDB, its errors (rocksdict raises them as plain exceptions) as `OSError`."""
    try:
        return call(*args)
    except Exception as error:
        raise OSError(f"RocksDB: {error}") from error


def _root_postings(db: Any) -> PackedPostings:
    """The postings the page records in `db` derive (what each root posts): one scan of the facts."""
    posted = _Posted()
    for key, value in db.items(from_key=b'"'):
        fact = _fact_key(key)
        if fact is None:
            break
        if index.is_page_key(fact):
            apply_change(fact, None, value, posted)
    return PackedPostings.in_order(posted.hashes, posted.ids)


class _Posted:
    """A `DerivedSink` that keeps only the postings, in arrays as they come (12 bytes a posting):
    the hashes, and the root id posting each."""

    def __init__(self) -> None:
        self.records = self.roots = self.size = 0
        self.hashes = array("I")
        self.ids = bytearray()

    def post(self, hashes: Iterable[int], sid: bytes) -> None:
        count = len(self.hashes)
        self.hashes.extend(hashes)
        self.ids += sid * (len(self.hashes) - count)

    def unpost(self, hashes: Iterable[int], sid: bytes) -> None:
        raise AssertionError("a scan only posts")

    def file_page(self, hour: int, sid: bytes) -> None:
        pass

    def unfile_page(self, hour: int, sid: bytes) -> None:
        pass

    def file_site(self, hour: int, site: int) -> None:
        pass

    def unfile_site(self, hour: int, site: int) -> None:
        pass


def read_snapshot(path: Path) -> tuple[PackedPostings | None, int]:
    """The postings a snapshot file holds and the journal sequence it holds them up to (None, 0:
    no snapshot, or not a whole one). The arrays map the file: opening it reads nothing, a
    lookup reads the pages it touches (and the memory they take is the page cache's). A file
    that cannot be read is no snapshot either."""
    try:
        with open(path, "rb") as handle:
            magic, sequence, count = _SNAPSHOT_HEAD.unpack(handle.read(_SNAPSHOT_HEAD.size))
            if magic != _SNAPSHOT_MAGIC or os.fstat(handle.fileno()).st_size != _SNAPSHOT_HEAD.size + count * (4 + 8):
                return None, 0
        if not count:
            return PackedPostings(), sequence
        # plain arrays over the mapping (a `memmap`'s indexing goes through Python)
        hashes = np.memmap(path, _SNAPSHOT_HASHES, "r", _SNAPSHOT_HEAD.size, (count,)).view(np.ndarray)
        ids = np.memmap(path, _SNAPSHOT_IDS, "r", _SNAPSHOT_HEAD.size + 4 * count, (count,)).view(np.ndarray)
    except (OSError, ValueError, struct.error) as error:
        if not isinstance(error, FileNotFoundError):
            log.warning("dedup postings: the snapshot %s cannot be read (%s: %s)", path, type(error).__name__, error)
        return None, 0
    return PackedPostings(hashes, ids), sequence


def write_snapshot(path: Path, postings: PackedPostings, sequence: int) -> None:
    """Write the postings' arrays (merged) as the snapshot holding the journal up to `sequence`:
    a whole file on the disk, then renamed over the previous one."""
    assert not postings.changes, "merged first"
    part = path.with_name(path.name + ".part")
    with open(part, "wb") as handle:
        handle.write(_SNAPSHOT_HEAD.pack(_SNAPSHOT_MAGIC, sequence, len(postings.hashes)))
        postings.hashes.astype(_SNAPSHOT_HASHES, copy=False).tofile(handle)
        postings.ids.astype(_SNAPSHOT_IDS, copy=False).tofile(handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(part, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename on the disk before the journal it holds is deleted
    finally:
        os.close(directory)


def _legacy_postings(db: Any) -> tuple[PackedPostings, bool]:
    """The postings a database written before they moved to memory keeps as keys (`POSTING`),
    and whether there were any."""
    found = False

    def pairs() -> Iterator[tuple[int, bytes]]:
        nonlocal found
        for key, value in db.items(from_key=POSTING):
            if not key.startswith(POSTING):
                break
            found = True
            yield _HASH.unpack_from(key, len(POSTING))[0], value

    postings = PackedPostings.of(pairs())
    return postings, found


class BoundedOptions(faust_rocksdb.RocksDBOptions):
    """Faust's options with the block cache's index and filter blocks inside it, so that the
    cache size bounds the memory the database reads with."""

    def open(self, path: Path, *, read_only: bool = False) -> Any:
        """Open the database with these options (`open_rdict`)."""
        access = rocksdict.AccessType.read_only() if read_only else rocksdict.AccessType.read_write()
        db = open_rdict(path, self.as_options(), access)
        db.set_read_options(rocksdict.ReadOptions())
        return db

    def as_options(self) -> Any:
        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        if self.max_open_files:
            options.set_max_open_files(self.max_open_files)
        options.set_write_buffer_size(self.write_buffer_size)
        options.set_max_write_buffer_number(self.max_write_buffer_number)
        options.set_target_file_size_base(self.target_file_size_base)
        # Most reads are of keys the write buffers do not hold (a posting never seen, an older
        # story's record): a bloom filter over each buffer's keys answers them without a search.
        options.set_memtable_prefix_bloom_ratio(MEMTABLE_BLOOM_RATIO)
        options.set_memtable_whole_key_filtering(True)
        # Blocks as they are, not compressed: a decision reads a few records and postings of the
        # window that no cache holds, each a block to decompress (6-12 % of a decision's CPU at
        # 1,000,000 pages), for 14 % more files. Files written compressed stay readable.
        options.set_compression_type(rocksdict.DBCompressionType.none())
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(10, False)
        table.set_block_cache(rocksdict.Cache(self.block_cache_size))
        table.set_cache_index_and_filter_blocks(True)
        table.set_pin_l0_filter_and_index_blocks_in_cache(True)
        # Index and filter in 4 KB partitions: a file's whole filter (about a megabyte for a 64 MB
        # file) cached as one block is evicted by the data blocks of its cache shard and read
        # again from the file for the next lookup (a millisecond of CPU a read at 1,000,000 pages).
        table.set_index_type(rocksdict.BlockBasedIndexType.two_level_index_search())
        table.set_partition_filters(True)
        table.set_pin_top_level_index_and_filter(True)
        table.set_metadata_block_size(METADATA_BLOCK_BYTES)
        options.set_block_based_table_factory(table)
        return options


def open_rdict(path: Path | str, options: Any, access: Any) -> rocksdict.Rdict:
    """A database opened with `options`, also when it exists: rocksdict then reads the column
    family's options from the database's OPTIONS file unless they are given, and that file
    keeps no block cache (it came back as RocksDB's default 8 MB, so nearly every read went to
    the file)."""
    return rocksdict.Rdict(str(path), options=options, column_families={"default": options}, access_type=access)


class DedupRocksStore(faust_rocksdb.Store):
    """Faust's RocksDB store (rocksdict) that keeps the dedup state's derived indexes beside it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        options = dict(kwargs.get("options") or {})
        hot_bytes = options.pop(HOT_OPTION, 0)
        kwargs["options"] = options
        super().__init__(*args, **kwargs)
        self.rocksdb_options = BoundedOptions(**options, use_rocksdict=True)
        self.derived = RocksDerived(lambda: self._db_for_partition(0), hot_bytes)

    @property
    def basename(self) -> Path:
        """The table's name: its databases are `<data dir>/<tables>/dedup-state-<partition>.db`."""
        return Path(self.table_name)

    def _set(self, key: bytes, value: bytes | None) -> None:
        self.derived.change_one(key, self.derived.get(key), value)

    def _del(self, key: bytes) -> None:
        old = self.derived.get(key)
        if old is None:
            return
        self.derived.change_one(key, old, None)

    def apply_changelog_batch(
        self, batch: Iterable[EventT], to_key: Callable[[Any], Any], to_value: Callable[[Any], Any]
    ) -> None:
        """Write changelog records with their derived changes and the offset, in one batch."""
        offsets: dict[Any, int] = {}
        self.derived.begin()
        try:
            for event in batch:
                message = event.message
                assert message.partition == 0, "the dedup table has one partition"
                offsets[message.tp] = max(message.offset, offsets.get(message.tp, -1))
                key = bytes(message.key or b"")  # the raw key: the table's keys are never empty
                self.derived.change(key, self.derived.get(key), message.value)
        except BaseException:
            self.derived.abort()  # none of the batch written, nor its offset: applied again
            raise
        self.derived.write((self.offset_key, str(offset).encode()) for offset in offsets.values())

    _early_read: asyncio.Future[None] | None = None  # the local table read while the worker joins

    async def on_start(self) -> None:
        """When the table's database is on the volume already (a restart), its counters and
        postings are read in a thread from the start, while the worker joins its group (3 s or
        more), instead of after the assignment: the journal's tail applied there took 0.7 s of a
        restart at 1,000,000 pages after 5,000 decisions. A worker that then gets neither the
        table nor its standby keeps the database open and the postings mapped until it stops."""
        await super().on_start()
        if self.partition_path(0).exists():
            self._early_read = asyncio.ensure_future(asyncio.to_thread(self._read_early))

    def _read_early(self) -> None:
        try:
            self.derived.load()
        except Exception as error:  # noqa: BLE001 - read again at the assignment, which reports what fails
            log.warning("dedup table: the local database was not read before the assignment (%r); it is "
                        "read again when the table is assigned", error)

    async def _early_read_done(self, timeout: float | None = None) -> None:
        if self._early_read is not None:
            await asyncio.wait({self._early_read}, timeout=timeout)
            if self._early_read.done():
                self._early_read = None

    async def on_rebalance(self, assigned: Any, revoked: Any, newly_assigned: Any, generation_id: int = 0) -> None:
        """Faust's rebalance, then, when this worker holds the table (active or standby), its
        counters and postings read in a thread before the table's recovery and the agents go on:
        a rebuild of the postings or the move of an older volume's keys (tens of seconds at
        1,000,000 pages) does not hold the event loop, and the first decision finds them read.
        A read begun at the start (`on_start`) ends first when the rebalance moves the table
        (the database it opened is the one Faust's assignment takes); a rebalance that gives or
        takes only page partitions does not wait for it: Faust holds every partition of the
        worker until its rebalance ends, and a rebuild of the postings takes tens of seconds."""
        topics = self.table.changelog_topic.topics
        if any(tp.topic in topics for tp in (*assigned, *revoked)):
            await self._early_read_done()
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)
        if any(tp.topic in topics for tp in assigned):
            await asyncio.to_thread(self.derived.load)

    def revoke_partitions(self, table: Any, tps: Any) -> None:
        """Faust forgets the partition's database (it opens it again if assigned back); a fold
        under way ends first, so that nothing opens the database again once it is dropped. A
        rebalance that leaves the table here keeps what was read of it (its writes all went
        through `derived`): before, every rebalance read the postings' journal again."""
        if any(tp.topic in table.changelog_topic.topics for tp in tps):
            self.derived.forget()
        super().revoke_partitions(table, tps)

    async def stop(self) -> None:
        """A fold under way is waited for (at most `FOLD_STOP_SECONDS`: its snapshot and the
        journal it holds are written whole or not at all) before Faust drops the databases; so
        is a read of the local table begun at the start."""
        await self._early_read_done(FOLD_STOP_SECONDS)
        if not await asyncio.to_thread(self.derived.settle, FOLD_STOP_SECONDS):
            log.warning("dedup postings: a fold still runs after %d s at stop; its journal is kept",
                        FOLD_STOP_SECONDS)
        await super().stop()

    def reset_state(self) -> None:
        """Faust removes the local state: so do the hot entries (a fold under way ends first)."""
        self.derived.forget()
        super().reset_state()


def _fact(key: str) -> bytes:
    """The table's key for a fact, as Faust's JSON key serializer writes it (keys are ASCII
    without quotes or backslashes)."""
    return f'"{key}"'.encode("ascii")


class _Batch:
    """`_Facts.batch()`: the derived indexes' batch begun on entry, written on exit."""

    __slots__ = ("derived",)

    def __init__(self, derived: RocksDerived) -> None:
        self.derived = derived

    def __enter__(self) -> None:
        self.derived.begin()

    def __exit__(self, *exc: object) -> None:
        self.derived.write()


class _Facts(MutableMapping[str, bytes]):
    """The facts of a dedup table's database as the decision's mapping (`derived`: where they
    are read and written, with their derived indexes); `batch()` makes the writes of one
    decision one write of the database."""

    derived: RocksDerived

    def _db(self) -> Any:
        raise NotImplementedError

    def get(self, key: str, default: Any = None) -> Any:
        """A fact's value, or `default` when the table holds none."""
        value = self.derived.get(_fact(key))
        return default if value is None else value

    def __getitem__(self, key: str) -> bytes:
        value = self.derived.get(_fact(key))
        if value is None:
            raise KeyError(key)
        return value

    def get_many(self, keys: list[str]) -> list[bytes | None]:
        """The facts' values (None: the table holds none), what the batch being built and the hot
        entries do not hold read in one call."""
        return self.derived.get_many([_fact(key) for key in keys])

    def __setitem__(self, key: str, value: bytes) -> None:
        self.replace(key, self.derived.get(_fact(key)), value)

    def replace(self, key: str, old: bytes | None, value: bytes) -> None:
        """Write a fact whose value the caller read as `old` (in the batch being built)."""
        self._changed(key, value)
        derived = self.derived
        if derived._depth:  # a batch is being built: the write joins it
            derived.change_fact(key, old, value)
            return
        derived.change_one(_fact(key), old, value)

    def __delitem__(self, key: str) -> None:
        raw = _fact(key)
        derived = self.derived
        old = derived.get(raw)
        if old is None:
            raise KeyError(key)
        self._changed(key, None)
        derived.change_one(raw, old, None)

    def _changed(self, key: str, value: bytes | None) -> None:
        """Called before a key is written (None: deleted)."""

    def __iter__(self) -> Iterator[str]:
        for key in self._db().keys(from_key=b'"'):
            fact = _fact_key(key) if isinstance(key, bytes) else None
            if fact is None:
                break
            yield fact

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def batch(self) -> _Batch:
        """Writes made inside are written to the database together at the end (also when one of
        them raised: those made before it are kept, as they would have been one by one)."""
        return _Batch(self.derived)


class TableState(_Facts):
    """The dedup table on the RocksDB store as the decision's mapping, without Faust's per-key
    layers: reads go to the store's hot entries and database; a write goes to the changelog as
    the table sends it (`Table.on_key_set`/`on_key_del`: the same record, partition and
    serializer, before the local write, as `Table.__setitem__` does) and into the store's
    batch. The database and the changelog get the table's own writes, record for record."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self.store: DedupRocksStore = table.data
        self.derived = self.store.derived

    def _db(self) -> Any:
        return self.store._db_for_partition(0)

    def _changed(self, key: str, value: bytes | None) -> None:
        if value is None:
            self.table.on_key_del(key)
        else:
            self.table.on_key_set(key, value)


class LocalState(_Facts):
    """The dedup table's local database opened outside Faust (benchmarks, inspection): the
    facts as a mapping (writes keep the derived indexes, like the store), and `derived`."""

    def __init__(self, path: Path | str, cache_bytes: int = 256 * 1024 * 1024, *, read_only: bool = False,
                 hot_bytes: int | None = None) -> None:
        """`hot_bytes`: the hot entries' memory (default: as the worker sizes it from `cache_bytes`)."""
        hot = hot_size(cache_bytes) if hot_bytes is None else hot_bytes
        options = self.options(cache_bytes - hot)
        access = rocksdict.AccessType.read_only() if read_only else rocksdict.AccessType.read_write()
        self.db = open_rdict(path, options, access)
        self.derived = RocksDerived(lambda: self.db, hot)
        if not read_only:
            self.derived.load()

    @staticmethod
    def options(block_cache_bytes: int) -> Any:
        """The database options the worker's store opens its table with."""
        return BoundedOptions(block_cache_size=block_cache_bytes, write_buffer_size=WRITE_BUFFER_BYTES,
                              max_write_buffer_number=WRITE_BUFFERS).as_options()

    def _db(self) -> Any:
        return self.db

    def offset(self) -> int | None:
        """The changelog offset the database holds everything up to (None: none yet)."""
        raw = self.db.get(faust_rocksdb.Store.offset_key)
        return int(raw) if raw is not None else None

    def close(self) -> None:
        """Close the database (and release the postings' mapping of their snapshot)."""
        self.derived.forget()
        self.db.close()


def table_path(data_dir: Path | str) -> Path | None:
    """The dedup table's database (partition 0) under a worker's data directory, if there is one."""
    found = sorted(Path(data_dir).glob(f"**/{DEDUP_TABLE}-0.db"))
    return found[0] if found else None
