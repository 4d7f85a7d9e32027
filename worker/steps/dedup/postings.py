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
from itertools import islice, repeat

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
Change = bytes | set[bytes]
"""A hash's roots posted or taken out since the arrays: packed ids (`PACKED_IDS` at most), else a set."""
_SHORT_RUN = 8  # ids of the arrays' run for a hash compared one by one; a longer run in numpy
_DIRECTORY_FROM = 64  # hashes looked up together from which their runs are found through a directory
_BUCKET_WIDTH = 16  # hashes of a bucket compared side by side; a fuller bucket is searched
_BUCKET_STEPS = np.arange(_BUCKET_WIDTH)


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
    the changes since in dicts (`added`, `removed`: packed ids, a set past `PACKED_IDS`). At
    1,000,000 pages the table's ~12 million postings take 144 MB; a posting looked up costs a
    search of the arrays, not a read of the database (a binary search of the hashes, all of a
    lookup's in one call). A posting's ids come in no particular order (as `Postings`'). The
    postings of up to `PACKED_IDS` roots last looked up or changed are kept as they are
    (`recent`): a new root posts the hashes its decision looked up. A posting many roots hold
    (a sentence many stories share, or text chosen for its small hashes) costs a lookup that
    only tells how many there are (`limit`), a post or an unpost, about what a short one does:
    no step reads or copies a whole posting but a lookup asking for it.

    A fold can run beside the lookups (`freeze`): the changes made so far are frozen as a layer
    (`folding`) that a thread folds into new arrays while lookups read the arrays, the frozen
    layers and the changes made since, in that order; `adopt` then takes the new arrays in place
    of the old ones and their layers. Each layer's removals are ids the arrays and the layers
    before it hold, its additions ids they do not."""

    def __init__(self, hashes: np.ndarray | None = None, ids: np.ndarray | None = None) -> None:
        """`hashes` (uint32, ascending) and `ids` (big-endian uint64, the same length): the postings."""
        self.hashes = hashes if hashes is not None else np.zeros(0, np.uint32)
        self.ids = ids if ids is not None else np.zeros(0, _IDS)
        self.added: dict[int, Change] = {}
        self.removed: dict[int, Change] = {}  # ids the arrays hold (posted ones are in `added`)
        self.changes = 0  # entries of `added` and `removed`, what `merge` would fold in
        self.recent: dict[int, bytes | None] = {}
        self.folding: list[Changes] = []  # frozen (added, removed) being folded, oldest first
        self._directory: Directory | None = None  # of `hashes`, for lookups of many hashes

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
        return cls.in_order(hashes, ids)

    @classmethod
    def in_order(cls, hashes: array, ids: bytearray) -> PackedPostings:
        """The arrays of postings listed in any order: `hashes` (an `array("I")`) and `ids` (a
        root id packed for each of them), sorted by hash (20 bytes a posting more meanwhile)."""
        order = np.argsort(np.frombuffer(hashes, np.uint32), kind="stable")
        return cls(np.frombuffer(hashes, np.uint32)[order], np.frombuffer(ids, _IDS)[order])

    def get_many(self, hashes: Sequence[int], limit: int | None = None) -> list[bytes | None]:
        """The posting of each hash: the ids of its roots, packed (None: no root posts it). With
        `limit`, a posting of more than `PACKED_IDS` roots is answered with `limit` of them (a
        caller that only tells one, two, ... `limit` and more roots apart)."""
        recent = self.recent
        if all(map(recent.__contains__, hashes)):
            return list(map(recent.__getitem__, hashes))
        ids = self.ids
        found: list[bytes | None] = [None] * len(hashes)
        long_runs: list[int] = []
        if len(ids):  # where each hash's run of postings starts and ends (most are empty)
            starts, ends = self._runs(np.array(hashes, np.uint32))
            counts = ends - starts
            held = np.flatnonzero(counts)
            if len(held):
                # the usual run is one root: those ids read in one call, sliced apart
                single = held[counts[held] == 1]
                one = ids[starts[single]].tobytes()
                for at, i in enumerate(single.tolist()):
                    found[i] = one[at * SID : at * SID + SID]
                if len(single) < len(held):
                    more = held[counts[held] > 1].tolist()
                    for i, start, end in zip(more, starts[more].tolist(), ends[more].tolist(), strict=True):
                        if end - start <= PACKED_IDS:
                            found[i] = ids[start:end].tobytes()
                        else:
                            long_runs.append(i)
        else:
            starts = ends = np.zeros(len(hashes), np.int64)
        recent = dict(zip(hashes, found, strict=True))
        changed: set[int] = set()
        for added, removed in self._layers():
            changed |= added.keys() & recent.keys()
            changed |= removed.keys() & recent.keys()
        if long_runs or changed:  # changes since the arrays, long postings: read with their layers
            fixed = sorted({*long_runs, *(i for i, h in enumerate(hashes) if h in changed)} if changed else long_runs)
            added, removed = self.added, self.removed
            alone = not self.folding  # one layer of changes: a hash it only adds to reads as the
            # roots it added, then the run (`_posting`'s order), without the general walk
            for i, start, end in zip(fixed, starts[fixed].tolist(), ends[fixed].tolist(), strict=True):
                h = hashes[i]
                if alone and end - start <= PACKED_IDS and h not in removed:
                    new = added.get(h)
                    if isinstance(new, bytes) and len(new) + (end - start) * SID <= PACKED_IDS * SID:
                        found[i] = recent[h] = new + ids[start:end].tobytes()
                        continue
                found[i], whole = self._posting(h, start, end, limit)
                posting = found[i]
                if whole and (posting is None or len(posting) <= PACKED_IDS * SID):
                    recent[h] = posting
                else:  # only short postings, and whole ones, are kept
                    recent.pop(h, None)
        self.recent = recent
        return found

    def _runs(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where the run of each hash of `query` (uint32) starts and ends in the arrays. A few
        hashes: two binary searches each. Many (a batch of decisions'): their buckets in a
        directory of the arrays (`Directory`), each bucket's few hashes compared side by side:
        a few reads of memory a hash instead of two dozen; a bucket of more than
        `_BUCKET_WIDTH` hashes (a hash many roots post) searched as before."""
        hashes = self.hashes
        if len(query) < _DIRECTORY_FROM:
            return hashes.searchsorted(query), hashes.searchsorted(query, "right")
        directory = self.directory()
        bucket = directory.bucket(query)
        low = directory.starts[bucket].astype(np.int64)
        size = directory.starts[bucket + 1].astype(np.int64) - low
        window = hashes[np.minimum(low[:, None] + _BUCKET_STEPS, len(hashes) - 1)]
        inside = _BUCKET_STEPS < size[:, None]
        wanted = query[:, None]
        starts = low + ((window < wanted) & inside).sum(1)
        ends = low + ((window <= wanted) & inside).sum(1)
        wide = np.flatnonzero(size > _BUCKET_WIDTH)
        if len(wide):
            starts[wide] = hashes.searchsorted(query[wide])
            ends[wide] = hashes.searchsorted(query[wide], "right")
        return starts, ends

    def directory(self) -> Directory:
        """The directory of the arrays' hashes (`Directory`), made once for them: a fold and a
        load make it in their thread, before a batch of decisions looks up their hashes."""
        directory = self._directory
        if directory is None or directory.hashes is not self.hashes:
            directory = self._directory = Directory(self.hashes)
        return directory

    def _layers(self) -> list[Changes]:
        """The layers of changes since the arrays, oldest first: a fold's frozen ones, then the
        changes made since."""
        return [*self.folding, (self.added, self.removed)] if self.folding else [(self.added, self.removed)]

    def _posting(self, h: int, start: int, end: int, limit: int | None) -> tuple[bytes | None, bool]:
        """The posting of `h`, whose run of the arrays is `start:end`, with its changes; and
        whether it is whole (not cut to `limit`). Its ids: those a layer added that no later
        layer took out, and those of the run no layer took out."""
        layers = self._layers()
        gones = [removed[h] for _, removed in layers if h in removed]
        news = [(at, added[h]) for at, (added, _) in enumerate(layers) if h in added]
        count = end - start - sum(map(_count, gones)) + sum(_count(new) for _, new in news)
        if not count:
            return None, True
        cut = limit is not None and count > max(limit, PACKED_IDS)
        want = limit * SID if cut and limit is not None else count * SID
        taken = b""
        for at, new in reversed(news):  # the latest first
            later = [removed[h] for _, removed in layers[at + 1 :] if h in removed]
            if not later:
                taken += b"".join(islice(new, limit)) if isinstance(new, set) and cut else _packed(new)
            else:
                taken += b"".join(sid for sid in _ids(new) if not any(_has(gone, sid) for gone in later))
            if len(taken) >= want:
                return taken[:want], not cut
        need = (want - len(taken)) // SID
        if not cut:
            return taken + _without_all(self.ids[start:end], gones), True
        # the run's last ones, but those gone (at most as many as the layers took out)
        tail = _without_all(self.ids[max(start, end - need) : end], gones, short=True)
        if len(tail) < need * SID:
            tail = _without_all(self.ids[max(start, end - need - sum(map(_count, gones))) : end], gones)
        return taken + tail[: need * SID], False

    def post_many(self, hashes: Sequence[int], sid: bytes) -> None:
        """Post `sid` under each of `hashes` (once: a root already there stays as it is)."""
        recent, removed, added = self.recent, self.removed, self.added
        for h, held in zip(hashes, self._holds(hashes, sid), strict=True):
            if held:
                continue
            if h in recent:
                posting = (recent[h] or b"") + sid
                if len(posting) <= PACKED_IDS * SID:
                    recent[h] = posting
                else:
                    del recent[h]
            gone = removed.get(h)
            if gone is not None and _has(gone, sid):  # taken out of the arrays since: back in
                self._take(removed, h, sid)
            else:
                self._put(added, h, sid)

    def unpost_many(self, hashes: Sequence[int], sid: bytes) -> None:
        """Take `sid` out of the posting of each of `hashes` (where it is)."""
        recent, added = self.recent, self.added
        for h, held in zip(hashes, self._holds(hashes, sid), strict=True):
            if not held:
                continue
            if h in recent:
                recent[h] = b"".join(s for s in unpack_ids(recent[h]) if s != sid) or None
            if _has(added.get(h), sid):  # posted since the arrays: forgotten
                self._take(added, h, sid)
            else:
                self._put(self.removed, h, sid)

    def _holds(self, hashes: Sequence[int], sid: bytes) -> list[bool]:
        """Whether the posting of each hash holds `sid`: from `recent`, else from the changes
        and the hash's run of the arrays (searched for all such hashes at once)."""
        recent = self.recent
        latest_first = self._layers()[::-1]
        held: list[bool] = []
        unknown: list[int] = []
        for i, h in enumerate(hashes):
            if h in recent:
                posting = recent[h]
                held.append(posting is not None and holds(posting, sid))
                continue
            for added, removed in latest_first:  # the latest layer that changed it says
                if _has(added.get(h), sid):
                    held.append(True)
                    break
                if _has(removed.get(h), sid):
                    held.append(False)
                    break
            else:
                held.append(False)
                unknown.append(i)
        all_hashes, ids = self.hashes, self.ids
        if unknown and len(all_hashes):
            query = np.array([hashes[i] for i in unknown], np.uint32)
            starts = all_hashes.searchsorted(query).tolist()
            ends = all_hashes.searchsorted(query, "right").tolist()
            wanted = np.frombuffer(sid, _IDS)[0]
            for i, start, end in zip(unknown, starts, ends, strict=True):
                if end - start <= _SHORT_RUN:
                    held[i] = holds(ids[start:end].tobytes(), sid)
                else:
                    held[i] = bool((ids[start:end] == wanted).any())
        return held

    def _put(self, changes: dict[int, Change], h: int, sid: bytes) -> None:
        old = changes.get(h)
        if old is None:
            changes[h] = sid
        elif isinstance(old, set):
            old.add(sid)
        else:
            ids = old + sid
            changes[h] = ids if len(ids) <= PACKED_IDS * SID else set(unpack_ids(ids))
        self.changes += 1

    def _take(self, changes: dict[int, Change], h: int, sid: bytes) -> None:
        old = changes[h]
        if isinstance(old, set):
            old.discard(sid)
            rest: Change = old
        else:
            rest = b"".join(s for s in unpack_ids(old) if s != sid)
        if rest:
            changes[h] = rest
        else:
            del changes[h]
        self.changes -= 1

    def merge(self) -> None:
        """Fold the changes (the frozen layers', then the ones since) into the arrays (linear in
        their size: 50-100 ms at 12 million postings)."""
        self.hashes, self.ids = merged(self.hashes, self.ids, self._layers())
        self.added, self.removed, self.changes, self.folding = {}, {}, 0, []

    def freeze(self) -> tuple[np.ndarray, np.ndarray, list[Changes]]:
        """Freeze the changes made so far as a layer for a fold that runs beside the lookups; the
        arrays and every frozen layer (one that failed to fold is folded again), which `merged`
        folds in another thread (they are not changed after this: new changes go to fresh dicts)."""
        self.folding.append((self.added, self.removed))
        self.added, self.removed, self.changes = {}, {}, 0
        return self.hashes, self.ids, list(self.folding)

    def adopt(self, hashes: np.ndarray, ids: np.ndarray, layers: int, directory: Directory | None = None) -> None:
        """Take the arrays a fold of the first `layers` frozen layers made in place of the
        arrays and those layers (the changes made since stay as they are), with their
        `directory` if the fold made it."""
        self.hashes, self.ids = hashes, ids
        self._directory = directory
        del self.folding[:layers]


class Directory:
    """Where each bucket of a sorted array of hashes starts in it, buckets of about
    `FILL` hashes: posted hashes are a sketch's smallest, crowded at the low end of the range,
    so a hash's bucket is first its stretch between two of `STRETCHES` quantiles of the array
    (a binary search of a table that stays in the processor's caches), then an equal part of
    that stretch. Made in one pass over the array, in chunks (a fraction of a second at 12
    million postings; 4 bytes a bucket)."""

    STRETCHES = 4096
    FILL = 8
    CHUNK = 1 << 20

    def __init__(self, hashes: np.ndarray) -> None:
        self.hashes = hashes
        count = len(hashes)
        marks = hashes[np.arange(1, self.STRETCHES) * count // self.STRETCHES] if count else hashes[:0]
        self.bounds = np.unique(np.concatenate([[0], marks.astype(np.int64), [1 << 32]]))
        self.parts = max(1, count // (self.FILL * (len(self.bounds) - 1)))
        buckets = (len(self.bounds) - 1) * self.parts
        counts = np.zeros(buckets, np.int64)
        for at in range(0, count, self.CHUNK):
            counts += np.bincount(self.bucket(hashes[at : at + self.CHUNK]), minlength=buckets)
        self.starts = np.zeros(buckets + 1, np.uint32 if count < 1 << 32 else np.int64)
        np.cumsum(counts, out=self.starts[1:])

    def bucket(self, values: np.ndarray) -> np.ndarray:
        """The bucket of each hash (uint32): buckets follow the hashes' order."""
        wide = values.astype(np.int64)
        stretch = self.bounds.searchsorted(wide, "right") - 1
        low = self.bounds[stretch]
        return stretch * self.parts + (wide - low) * self.parts // (self.bounds[stretch + 1] - low)


Changes = tuple[dict[int, Change], dict[int, Change]]
"""Posting changes: hash -> the root ids posted, hash -> the root ids taken out."""


def merged(hashes: np.ndarray, ids: np.ndarray, layers: Sequence[Changes]) -> tuple[np.ndarray, np.ndarray]:
    """New arrays: `hashes` and `ids` with each layer of changes folded in, in order (reads its
    arguments only, so a thread may run it while the lookups read the same arrays and layers)."""
    for added, removed in layers:
        if removed:
            keep = np.ones(len(hashes), bool)
            gone_hashes = np.fromiter(removed, np.uint32, len(removed))
            starts = hashes.searchsorted(gone_hashes).tolist()
            ends = hashes.searchsorted(gone_hashes, "right").tolist()
            for gone, start, end in zip(removed.values(), starts, ends, strict=True):
                if end - start <= _SHORT_RUN:
                    run = ids[start:end].tobytes()
                    for at in range(0, len(run), SID):
                        if _has(gone, run[at : at + SID]):
                            keep[start + at // SID] = False
                else:
                    keep[start:end] &= ~_among(ids[start:end], gone)
            hashes, ids = hashes[keep], ids[keep]
        if added:
            counts = np.fromiter(map(_count, added.values()), np.intp, len(added))
            new_hashes = np.repeat(np.fromiter(added, np.uint32, len(added)), counts)
            new_ids = np.frombuffer(b"".join(map(_packed, added.values())), _IDS)
            order = np.argsort(new_hashes, kind="stable")
            new_hashes, new_ids = new_hashes[order], new_ids[order]
            into = hashes.searchsorted(new_hashes, "right")
            hashes, ids = np.insert(hashes, into, new_hashes), np.insert(ids, into, new_ids)
    return hashes, ids


def _count(change: Change | None) -> int:
    """Ids in a change (None: none)."""
    if change is None:
        return 0
    return len(change) if isinstance(change, set) else len(change) // SID


def _has(change: Change | None, sid: bytes) -> bool:
    """Whether a change (None: none) holds `sid`."""
    if change is None:
        return False
    return sid in change if isinstance(change, set) else holds(change, sid)


def _packed(change: Change | None) -> bytes:
    """A change's ids, packed."""
    if change is None:
        return b""
    return change if isinstance(change, bytes) else b"".join(change)


def _ids(change: Change) -> Iterable[bytes]:
    """A change's ids."""
    return change if isinstance(change, set) else unpack_ids(change)


def _without_all(run: np.ndarray, gones: list[Change], *, short: bool = False) -> bytes:
    """`_without` each of `gones` (the removals of several layers)."""
    if not gones:
        return run.tobytes()
    if len(gones) == 1:
        return _without(run, gones[0], short=short)
    packed = b"".join(sid for sid in unpack_ids(run.tobytes()) if not any(_has(gone, sid) for gone in gones))
    return packed


def _without(run: np.ndarray, gone: Change | None, *, short: bool = False) -> bytes:
    """The ids of a run of the arrays, packed, but those in `gone` (`short`: compared one by one)."""
    if gone is None:
        return run.tobytes()
    if short or len(run) <= _SHORT_RUN:
        packed = run.tobytes()
        return b"".join(packed[at : at + SID] for at in range(0, len(packed), SID)
                        if not _has(gone, packed[at : at + SID]))
    return run[~_among(run, gone)].tobytes()


def _among(run: np.ndarray, ids: Change) -> np.ndarray:
    """Which ids of a run of the arrays are among `ids` (compared as the same bytes: numpy's
    search of a set of integers takes them in the machine's order only)."""
    return np.isin(run.view(np.uint64), np.frombuffer(_packed(ids), np.uint64))
