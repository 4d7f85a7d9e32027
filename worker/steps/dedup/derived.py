"""The dedup state's derived indexes, kept up to date from every change of a fact.

The state (a changelog-backed table) holds facts only: a record per decided page (`a<id>`), a
content hash per root (`h<hash>`), a template per site (`s<site>`) and the decision counter
(`~d`). What finds things in those facts is derived from them, here, one change of a key at a
time (`apply_change`), so that whatever writes a fact - the owner deciding a page, a standby or a
recovery applying the changelog - leaves the derived indexes matching the facts:

- postings: posted sketch hash -> the cluster roots that post it (near-duplicate candidates);
- pages by the hour they were seen, sites by the hour their last page was seen (what the window
  visits when it expires an hour);
- counters: records (pages), roots, and the bytes of every key and value of the state.

Two homes for them: `MemoryDerived` (a dict per index, rebuilt by one scan of the facts, for the
in-memory state of tests, `process` and `eval dedup`) and the RocksDB one in
`worker.kafka.dedup_store`, which writes them into the same database as the facts, in the same
write batch, so they survive a restart with the local state and never disagree with it.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from worker.steps.dedup.postings import Filed, Posting, Postings


class DerivedView(Protocol):
    """What the decision reads from the derived indexes."""

    records: int
    roots: int
    size: int

    def postings(self, hashes: Sequence[int]) -> list[Posting | None]:
        """The posting of each hash (None: no root posts it); one of more than `PACKED_IDS` roots
        may be cut to `policy.BOILERPLATE_ROOTS` of them (the decision only tells one, two, and
        that many or more apart)."""
        ...

    def pages(self, hour: int) -> list[bytes]:
        """Ids of the pages seen in `hour`."""
        ...

    def sites(self, hour: int) -> list[int]:
        """Sites whose last page was seen in `hour`."""
        ...


class DerivedSink(Protocol):
    """Where `apply_change` writes: the derived indexes' own updates and the counters."""

    records: int
    roots: int
    size: int

    def post(self, hashes: Iterable[int], sid: bytes) -> None:
        """Add `sid` to the posting of each hash."""
        ...

    def unpost(self, hashes: Iterable[int], sid: bytes) -> None:
        """Take `sid` out of the posting of each hash."""
        ...

    def file_page(self, hour: int, sid: bytes) -> None: ...

    def unfile_page(self, hour: int, sid: bytes) -> None: ...

    def file_site(self, hour: int, site: int) -> None: ...

    def unfile_site(self, hour: int, site: int) -> None: ...


def apply_change(key: str, old: bytes | None, new: bytes | None, sink: DerivedSink) -> None:
    """Update `sink` for `key` changing from `old` to `new` (None: absent). Applying the same change
    twice (a replayed changelog record, whose old value is then the new one) changes nothing."""
    if old == new:
        return
    sink.size += (len(key) + len(new) if new is not None else 0) - (len(key) + len(old) if old is not None else 0)
    first = key[0]
    if first != "a" and first != "s":
        return  # a content hash or the counter: filed nowhere
    HOUR, POSTED = index.HOUR, index.POSTED
    if index.is_page_key(key):
        if old is not None and new is not None and index.same_filing(old, new):
            return  # a root's copy count changed: what it posts and where it is filed did not
        sid = binascii.a2b_base64(key[1:] + "=")
        filing = index.filing
        root_before, seen_before, posted_before = filing(old, POSTED) if old is not None else (False, 0.0, set())
        root_after, seen_after, posted_after = filing(new, POSTED) if new is not None else (False, 0.0, set())
        sink.records += (new is not None) - (old is not None)
        sink.roots += root_after - root_before
        hour_before = int(seen_before // HOUR) if old is not None else None
        hour_after = int(seen_after // HOUR) if new is not None else None
        if hour_before != hour_after:
            if hour_before is not None:
                sink.unfile_page(hour_before, sid)
            if hour_after is not None:
                sink.file_page(hour_after, sid)
        if posted_before != posted_after:
            if gone := posted_before - posted_after:
                sink.unpost(gone, sid)
            if new_hashes := posted_after - posted_before:
                sink.post(new_hashes, sid)
    elif index.is_template_key(key):
        site = int.from_bytes(binascii.a2b_base64(key[1:] + "=="), "big")
        last_before = index.template_hour(old) if old is not None else None
        last_after = index.template_hour(new) if new is not None else None
        if last_before != last_after:
            if last_before is not None:
                sink.unfile_site(last_before, site)
            if last_after is not None:
                sink.file_site(last_after, site)


class MemoryDerived:
    """The derived indexes in dicts: rebuilt by one scan of the facts, then kept by each change."""

    def __init__(self) -> None:
        self.records = self.roots = self.size = 0
        self._postings = Postings()
        self._filed = Filed()

    @classmethod
    def of(cls, facts: Mapping[str, bytes] | Iterable[tuple[str, bytes]]) -> MemoryDerived:
        """The derived indexes of a whole state (one scan)."""
        derived = cls()
        items = facts.items() if isinstance(facts, Mapping) else facts
        for key, value in items:
            apply_change(key, None, value, derived)
        return derived

    # -- read -------------------------------------------------------------------------------------

    def oldest_hour(self) -> int:
        """The earliest hour that holds pages (-1: none)."""
        return self._filed.oldest_hour()

    def postings(self, hashes: Sequence[int]) -> list[Posting | None]:
        return list(map(self._postings.get, hashes))

    def pages(self, hour: int) -> list[bytes]:
        return list(self._filed.pages.get(hour, ()))

    def sites(self, hour: int) -> list[int]:
        return list(self._filed.sites.get(hour, ()))

    # -- write ------------------------------------------------------------------------------------

    def post(self, hashes: Iterable[int], sid: bytes) -> None:
        for h in hashes:
            self._postings.add(h, sid, self._postings.get(h))

    def unpost(self, hashes: Iterable[int], sid: bytes) -> None:
        for h in hashes:
            self._postings.remove(h, sid)

    def file_page(self, hour: int, sid: bytes) -> None:
        self._filed.pages[hour][sid] = None

    def unfile_page(self, hour: int, sid: bytes) -> None:
        _unfile(self._filed.pages, hour, sid)

    def file_site(self, hour: int, site: int) -> None:
        self._filed.sites[hour][site] = None

    def unfile_site(self, hour: int, site: int) -> None:
        _unfile(self._filed.sites, hour, site)


def _unfile(filed: dict[int, dict], hour: int, item: object) -> None:
    entries = filed.get(hour)
    if entries is not None:
        entries.pop(item, None)
        if not entries:
            del filed[hour]


# The records' layout is `index`'s, which imports this module: imported once both are defined,
# whichever of the two is imported first.
from worker.steps.dedup import index  # noqa: E402
