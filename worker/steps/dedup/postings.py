"""The in-memory indexes of the dedup state, derived from its page records and site templates.

The changelog-backed state holds facts only (a record per decided page, a template per site, the
decision counter and watermark). What is needed to find things in it fast is rebuilt from those
facts after a recovery instead of being written to the changelog on every decision:

- `Postings`: posted sketch hash -> the cluster roots that post it (near-duplicate candidates);
- `Filed`: hour -> the page ids seen in it, and hour -> the sites whose last page was seen in it
  (what the window visits when it expires an hour, so expiry never scans the state).

A posting holds every root that posts the hash, in any order: the decision only asks whether
none, which one or two, or three and more (boilerplate) roots hold it, so an index rebuilt from
the records answers exactly as the one kept up to date decision by decision.
"""

from __future__ import annotations

from array import array
from collections import defaultdict
from collections.abc import Iterable, Sequence
from itertools import repeat

import numpy as np

SID = 8  # bytes of a page id used inside the state
_IDS = np.dtype(">u8")  # a page id as a number whose bytes are the id

PACKED_IDS = 16
"""A posting of up to this many roots is their ids packed in one bytes value (the usual posting
holds one); a longer one, a hash many stories share, is a set so that adding and removing a root
costs the same whatever its length."""


def holds(ids: bytes, sid: bytes) -> bool:
    """Whether the packed ids `ids` hold `sid` (at an id boundary)."""
    at = ids.find(sid)
    while at > 0 and at % SID:
        at = ids.find(sid, at + 1)
    return at >= 0


def unpack_ids(ids: bytes | None) -> list[bytes]:
    """The ids packed in `ids`, in order."""
    return [ids[i : i + SID] for i in range(0, len(ids), SID)] if ids else []


Posting = bytes | set[bytes]


class Postings(dict[int, Posting]):
    """Posted hash -> the roots posting it: packed ids (`PACKED_IDS` at most), else a set of ids."""

    def add(self, h: int, sid: bytes, old: Posting | None) -> None:
        """Post `sid` under `h`, whose posting the caller read as `old`."""
        if old is None:
            self[h] = sid
        elif isinstance(old, set):
            old.add(sid)
        elif not holds(old, sid):
            ids = old + sid
            self[h] = ids if len(ids) <= PACKED_IDS * SID else set(unpack_ids(ids))

    def remove(self, h: int, sid: bytes) -> None:
        """Take `sid` out of the posting of `h`; an emptied posting goes."""
        old = self.get(h)
        if old is None:
            return
        if isinstance(old, set):
            old.discard(sid)
            if len(old) <= PACKED_IDS:
                self[h] = b"".join(sorted(old))
            return
        rest = b"".join(s for s in unpack_ids(old) if s != sid)
        if rest:
            self[h] = rest
        else:
            del self[h]


class Filed:
    """Page ids by the hour they were seen, and sites by the hour their last page was seen (each
    hour's an insertion-ordered set, so that forgetting one costs the same whatever the hour holds)."""

    def __init__(self) -> None:
        self.pages: defaultdict[int, dict[bytes, None]] = defaultdict(dict)
        self.sites: defaultdict[int, dict[int, None]] = defaultdict(dict)

    def oldest_hour(self) -> int:
        """The earliest hour that holds pages (-1: none)."""
        return min(self.pages) if self.pages else -1


class PackedPostings:
    """Posted hash -> the roots posting it, in little memory: the postings as of the last `merge`
    in two arrays sorted by hash (the hash, 4 bytes, and a root's id, 8 bytes, a posting), and
    the changes since in dicts of packed ids (`added`, `removed`). At 1,000,000 pages the table's
    ~12 million postings take 144 MB; a posting looked up costs a search of the arrays, not a
    read of the database (a binary search of the hashes, all of a lookup's in one call). A
    posting's ids come in no
    particular order (as `Postings`'). The postings last looked up or changed are kept as they
    are (`recent`): a new root posts the hashes its decision looked up."""

    def __init__(self, hashes: np.ndarray | None = None, ids: np.ndarray | None = None) -> None:
        """`hashes` (uint32, ascending) and `ids` (big-endian uint64, the same length): the postings."""
        self.hashes = hashes if hashes is not None else np.zeros(0, np.uint32)
        self.ids = ids if ids is not None else np.zeros(0, _IDS)
        self.added: dict[int, bytes] = {}
        self.removed: dict[int, bytes] = {}
        self.changes = 0  # entries of `added` and `removed`, what `merge` would fold in
        self.recent: dict[int, bytes | None] = {}

    @classmethod
    def of(cls, postings: Iterable[tuple[int, bytes]]) -> PackedPostings:
        """The arrays of (hash, packed ids) pairs (read as they come: 12 bytes a posting)."""
        hashes = array("I")
        ids = bytearray()
        for h, packed in postings:
            count = len(packed) // SID
            if count == 1:
                hashes.append(h)
            else:
                hashes.extend(repeat(h, count))
            ids += packed
        order = np.argsort(np.frombuffer(hashes, np.uint32), kind="stable")
        return cls(np.frombuffer(hashes, np.uint32)[order], np.frombuffer(ids, _IDS)[order])

    def get_many(self, hashes: Sequence[int]) -> list[bytes | None]:
        """The posting of each hash: the ids of its roots, packed (None: no root posts it)."""
        recent = self.recent
        if all(map(recent.__contains__, hashes)):
            return list(map(recent.__getitem__, hashes))
        ids = self.ids
        if len(ids):  # where each hash's run of postings starts and ends (most are empty)
            query = np.array(hashes, np.uint32)
            starts = self.hashes.searchsorted(query).tolist()
            ends = self.hashes.searchsorted(query, "right").tolist()
            found: list[bytes | None] = [
                ids[start:end].tobytes() if end > start else None for start, end in zip(starts, ends, strict=True)
            ]
        else:
            found = [None] * len(hashes)
        added, removed = self.added, self.removed
        if added or removed:  # the changes since the arrays, for the hashes they touch
            for i, h in enumerate(hashes):
                gone = removed.get(h) if removed else None
                extra = added.get(h)
                if gone is None and extra is None:
                    continue
                posting = found[i] or b""
                if gone is not None:
                    posting = b"".join(sid for sid in unpack_ids(posting) if not holds(gone, sid))
                if extra is not None:
                    posting += extra
                found[i] = posting or None
        self.recent = dict(zip(hashes, found, strict=True))
        return found

    def post(self, h: int, sid: bytes, old: bytes | None) -> None:
        """Post `sid` under `h`, whose posting the caller read as `old` (`get_many`)."""
        if old is not None and holds(old, sid):
            return
        self.recent[h] = (old or b"") + sid
        gone = self.removed.get(h)
        if gone is not None and holds(gone, sid):  # taken out of the arrays since: back in
            self._take(self.removed, h, sid)
        else:
            self.added[h] = self.added.get(h, b"") + sid
            self.changes += 1

    def post_many(self, hashes: Sequence[int], sid: bytes) -> None:
        """`post` of `sid` under each of `hashes`, their postings looked up first (a new root's
        are those its decision looked up: `recent`)."""
        found = self.get_many(hashes)
        recent, added, removed = self.recent, self.added, self.removed
        for h, old in zip(hashes, found, strict=True):
            if old is not None and holds(old, sid):
                continue
            recent[h] = old + sid if old else sid
            if removed and (gone := removed.get(h)) is not None and holds(gone, sid):
                self._take(removed, h, sid)  # taken out of the arrays since: back in
            else:
                added[h] = added.get(h, b"") + sid
                self.changes += 1

    def unpost(self, h: int, sid: bytes, old: bytes | None) -> None:
        """Take `sid` out of the posting of `h`, read as `old`."""
        if old is None or not holds(old, sid):
            return
        self.recent[h] = b"".join(s for s in unpack_ids(old) if s != sid) or None
        new = self.added.get(h)
        if new is not None and holds(new, sid):  # posted since the arrays: forgotten
            self._take(self.added, h, sid)
        else:
            self.removed[h] = self.removed.get(h, b"") + sid
            self.changes += 1

    def _take(self, changes: dict[int, bytes], h: int, sid: bytes) -> None:
        rest = b"".join(s for s in unpack_ids(changes[h]) if s != sid)
        if rest:
            changes[h] = rest
        else:
            del changes[h]
        self.changes -= 1

    def merge(self) -> None:
        """Fold the changes into the arrays (linear in their size: 50-100 ms at 12 million postings)."""
        hashes, ids = self.hashes, self.ids
        if self.removed:
            keep = np.ones(len(hashes), bool)
            gone_hashes = np.fromiter(self.removed, np.uint32, len(self.removed))
            starts = hashes.searchsorted(gone_hashes).tolist()
            ends = hashes.searchsorted(gone_hashes, "right").tolist()
            for gone, start, end in zip(self.removed.values(), starts, ends, strict=True):
                for at in range(start, end):
                    if holds(gone, ids[at : at + 1].tobytes()):
                        keep[at] = False
            hashes, ids = hashes[keep], ids[keep]
        if self.added:
            counts = np.fromiter(map(len, self.added.values()), np.intp, len(self.added)) // SID
            new_hashes = np.repeat(np.fromiter(self.added, np.uint32, len(self.added)), counts)
            new_ids = np.frombuffer(b"".join(self.added.values()), _IDS)
            order = np.argsort(new_hashes, kind="stable")
            new_hashes, new_ids = new_hashes[order], new_ids[order]
            into = hashes.searchsorted(new_hashes, "right")
            hashes, ids = np.insert(hashes, into, new_hashes), np.insert(ids, into, new_ids)
        self.hashes, self.ids = hashes, ids
        self.added, self.removed, self.changes = {}, {}, 0
