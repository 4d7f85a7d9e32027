"""The dedup table's RocksDB store: facts and their derived indexes in one local database.

Faust's RocksDB store (`rocksdict`) keeps the table under `INGEST_DATA_DIR` with the changelog
offset it holds, so a worker restarted on the same volume reads its local state and replays only
the changelog's tail, and a standby that applied the changelog takes over from its own copy. This
subclass also keeps the indexes derived from the facts (`worker.steps.dedup.derived`: postings,
pages and sites by hour, counters) in the same database, written in the same write batch as the
fact that changes them - by the owner's decisions and by every changelog record a standby or a
recovery applies - so no index is rebuilt after a restart, and memory is the block cache and the
write buffers, not the window.

Derived keys start with a zero byte: the table's own keys are JSON strings (they start with `"`),
and Faust's offset key with `_`. Nothing derived goes to the changelog.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import rocksdict
from faust.stores import STORES
from faust.stores import rocksdb as faust_rocksdb
from faust.types import EventT

from worker.kafka.topics import DEDUP_TABLE
from worker.settings import Settings
from worker.steps.dedup.derived import apply_change
from worker.steps.dedup.postings import SID, Posting

SCHEME = "dedup-rocksdb"
STORES.aliases[SCHEME] = f"{__name__}:DedupRocksStore"

POSTING = b"\x00p"  # + hash (4 bytes) -> ids of the roots posting it, packed
PAGE = b"\x00f"  # + hour (8 bytes) + page id -> b""
SITE = b"\x00s"  # + hour (8 bytes) + site (4 bytes) -> b""
COUNTERS = b"\x00m"  # records | roots | bytes of the state
_COUNTERS = struct.Struct(">qqq")
_HOUR = struct.Struct(">Q")
_HOUR_BIAS = 1 << 63  # hours as unsigned, so that keys sort by hour
_HASH = struct.Struct(">I")
_SITE = struct.Struct(">I")
STANDBY_BUFFER = 100
"""Changelog records a standby applies at a time (Faust's default is 1,000): what it may lag behind
the owner, and replays when it takes over."""
WRITE_BUFFER_BYTES = 16 * 1024 * 1024
WRITE_BUFFERS = 2


def table_options(settings: Settings) -> dict[str, Any]:
    """The dedup table's store and its options for `app.Table`, from settings."""
    if settings.dedup_store == "memory":
        return {"store": "memory://"}
    return {
        "standby_buffer_size": STANDBY_BUFFER,
        "store": f"{SCHEME}://{DEDUP_TABLE}",  # a host: an empty URL would mean the app's store
        "options": {
            "block_cache_size": settings.dedup_cache_mb * 1024 * 1024,
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


class RocksDerived:
    """The derived indexes in a RocksDB database: read by the decision, written in batches."""

    def __init__(self, db: Callable[[], Any]) -> None:
        self._db = db
        self._pending: dict[bytes, bytes | None] = {}
        self._batch: rocksdict.WriteBatch | None = None
        self._loaded = False
        self.records = self.roots = self.size = 0

    def load(self) -> None:
        """Read the counters (once, when the database is first used)."""
        if not self._loaded:
            raw = self._db().get(COUNTERS)
            self.records, self.roots, self.size = _COUNTERS.unpack(raw) if raw else (0, 0, 0)
            self._loaded = True

    # -- read -------------------------------------------------------------------------------------

    def postings(self, hashes: Sequence[int]) -> list[Posting | None]:
        """The posting of each hash (packed root ids; None: no root posts it)."""
        if not hashes:
            return []
        return self._db().get([POSTING + _HASH.pack(h) for h in hashes])

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
            keys.append(key)
        return keys

    # -- write: `change` for each fact, then `write` the batch ----------------------------------

    def begin(self) -> rocksdict.WriteBatch:
        self.load()
        self._batch = rocksdict.WriteBatch(raw_mode=True)
        self._pending.clear()
        return self._batch

    def change(self, key: bytes, old: bytes | None, new: bytes | None) -> None:
        """Put the fact `key` (None: delete it) and what it changes in the derived indexes."""
        assert self._batch is not None
        fact = _fact_key(key)
        if fact is not None:
            apply_change(fact, old, new, self)
        if new is None:
            self._batch.delete(key)
        else:
            self._batch.put(key, new)
        self._pending[key] = new

    def current(self, key: bytes) -> bytes | None:
        """A key's value as the batch being built leaves it."""
        if key in self._pending:
            return self._pending[key]
        return self._db().get(key)

    def write(self, extra: Iterable[tuple[bytes, bytes]] = ()) -> None:
        """Write the batch (with the counters, and `extra` keys such as the changelog offset)."""
        assert self._batch is not None
        self._batch.put(COUNTERS, _COUNTERS.pack(self.records, self.roots, self.size))
        for key, value in extra:
            self._batch.put(key, value)
        self._db().write(self._batch)
        self._batch = None
        self._pending.clear()

    def _put(self, key: bytes, value: bytes | None) -> None:
        assert self._batch is not None
        if value is None:
            self._batch.delete(key)
        else:
            self._batch.put(key, value)
        self._pending[key] = value

    def _postings(self, hashes: Iterable[int]) -> list[tuple[bytes, bytes | None]]:
        """(key, posting) of each hash as the batch leaves it, read in one call."""
        keys = [POSTING + _HASH.pack(h) for h in hashes]
        unread = [key for key in keys if key not in self._pending]
        read = dict(zip(unread, self._db().get(unread), strict=True)) if unread else {}
        return [(key, self._pending[key] if key in self._pending else read[key]) for key in keys]

    def post(self, hashes: Iterable[int], sid: bytes) -> None:
        for key, ids in self._postings(hashes):
            if not ids:
                self._put(key, sid)
            elif not _holds(ids, sid):
                self._put(key, ids + sid)

    def unpost(self, hashes: Iterable[int], sid: bytes) -> None:
        for key, ids in self._postings(hashes):
            if ids:
                rest = b"".join(ids[i : i + SID] for i in range(0, len(ids), SID) if ids[i : i + SID] != sid)
                self._put(key, rest or None)

    def file_page(self, hour: int, sid: bytes) -> None:
        self._put(_hour_key(PAGE, hour) + sid, b"")

    def unfile_page(self, hour: int, sid: bytes) -> None:
        self._put(_hour_key(PAGE, hour) + sid, None)

    def file_site(self, hour: int, site: int) -> None:
        self._put(_hour_key(SITE, hour) + _SITE.pack(site), b"")

    def unfile_site(self, hour: int, site: int) -> None:
        self._put(_hour_key(SITE, hour) + _SITE.pack(site), None)


def _holds(ids: bytes, sid: bytes) -> bool:
    return any(ids[i : i + SID] == sid for i in range(0, len(ids), SID))


class BoundedOptions(faust_rocksdb.RocksDBOptions):
    """Faust's options with the block cache's index and filter blocks inside it, so that the
    cache size bounds the memory the database reads with."""

    def as_options(self) -> Any:
        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        if self.max_open_files:
            options.set_max_open_files(self.max_open_files)
        options.set_write_buffer_size(self.write_buffer_size)
        options.set_max_write_buffer_number(self.max_write_buffer_number)
        options.set_target_file_size_base(self.target_file_size_base)
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(10, False)
        table.set_block_cache(rocksdict.Cache(self.block_cache_size))
        table.set_cache_index_and_filter_blocks(True)
        table.set_pin_l0_filter_and_index_blocks_in_cache(True)
        options.set_block_based_table_factory(table)
        return options


class DedupRocksStore(faust_rocksdb.Store):
    """Faust's RocksDB store (rocksdict) that keeps the dedup state's derived indexes beside it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        options = dict(self.options or {})
        self.rocksdb_options = BoundedOptions(**options, use_rocksdict=True)
        self.derived = RocksDerived(lambda: self._db_for_partition(0))

    @property
    def basename(self) -> Path:
        """The table's name: its databases are `<data dir>/<tables>/dedup-state-<partition>.db`."""
        return Path(self.table_name)

    def _set(self, key: bytes, value: bytes | None) -> None:
        db = self._db_for_partition(0)
        self.derived.begin()
        self.derived.change(key, db.get(key), value)
        self.derived.write()
        self._key_index[key] = 0

    def _del(self, key: bytes) -> None:
        db = self._db_for_partition(0)
        old = db.get(key)
        if old is None:
            return
        self.derived.begin()
        self.derived.change(key, old, None)
        self.derived.write()

    def apply_changelog_batch(
        self, batch: Iterable[EventT], to_key: Callable[[Any], Any], to_value: Callable[[Any], Any]
    ) -> None:
        """Write changelog records with their derived changes and the offset, in one batch."""
        offsets: dict[Any, int] = {}
        self.derived.begin()
        for event in batch:
            message = event.message
            assert message.partition == 0, "the dedup table has one partition"
            offsets[message.tp] = max(message.offset, offsets.get(message.tp, -1))
            key = bytes(message.key or b"")  # the raw key: the table's keys are never empty
            self.derived.change(key, self.derived.current(key), message.value)
        self.derived.write((self.offset_key, str(offset).encode()) for offset in offsets.values())


class LocalState(MutableMapping[str, bytes]):
    """The dedup table's local database opened outside Faust (benchmarks, inspection): the
    facts as a mapping (writes keep the derived indexes, like the store), and `derived`."""

    def __init__(self, path: Path | str, cache_bytes: int = 256 * 1024 * 1024, *, read_only: bool = False) -> None:
        options = BoundedOptions(block_cache_size=cache_bytes, write_buffer_size=WRITE_BUFFER_BYTES,
                                 max_write_buffer_number=WRITE_BUFFERS).as_options()
        access = rocksdict.AccessType.read_only() if read_only else rocksdict.AccessType.read_write()
        self.db = rocksdict.Rdict(str(path), options=options, access_type=access)
        self.derived = RocksDerived(lambda: self.db)
        self.derived.load()

    @staticmethod
    def _key(key: str) -> bytes:
        return b'"' + key.encode("ascii") + b'"'

    def offset(self) -> int | None:
        """The changelog offset the database holds everything up to (None: none yet)."""
        raw = self.db.get(faust_rocksdb.Store.offset_key)
        return int(raw) if raw is not None else None

    def __getitem__(self, key: str) -> bytes:
        value = self.db.get(self._key(key))
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = self.db.get(self._key(key))
        return default if value is None else value

    def __setitem__(self, key: str, value: bytes) -> None:
        raw = self._key(key)
        self.derived.begin()
        self.derived.change(raw, self.db.get(raw), value)
        self.derived.write()

    def __delitem__(self, key: str) -> None:
        raw = self._key(key)
        old = self.db.get(raw)
        if old is None:
            raise KeyError(key)
        self.derived.begin()
        self.derived.change(raw, old, None)
        self.derived.write()

    def __iter__(self) -> Iterator[str]:
        for key in self.db.keys(from_key=b'"'):
            fact = _fact_key(key) if isinstance(key, bytes) else None
            if fact is None:
                break
            yield fact

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def close(self) -> None:
        """Close the database."""
        self.db.close()


def table_path(data_dir: Path | str) -> Path | None:
    """The dedup table's database (partition 0) under a worker's data directory, if there is one."""
    found = sorted(Path(data_dir).glob(f"**/{DEDUP_TABLE}-0.db"))
    return found[0] if found else None
