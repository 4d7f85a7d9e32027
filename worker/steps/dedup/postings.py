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

from collections import defaultdict

SID = 8  # bytes of a page id used inside the state

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
