"""The dedup state: the facts each decision writes, the indexes derived from them, the window.

`DedupIndex.decide(url, fp, seen_at)` runs on the single owner of the decision, against any
`MutableMapping[str, bytes]` (a dict in tests, a changelog-backed Faust table in production). It
finds what the state knows of earlier stories (the content hash's root, the roots that post the
page's smallest sketch hashes, the site's template), asks `policy` whether the page is one of
them, and writes the verdict. What counts as the same story lives in `policy` only; this module
is where and how it is kept.

State layout (keys are short ASCII strings, values are packed bytes). Every key is a changelog
record per write, so the state holds facts only and each decision writes few keys (a new story:
its record, its content hash and the decision counter; a copy: those and its root's record):

    a<page id>   one record per decided page: its decision; a cluster root also keeps its own
                 sketch and the own sketches (and sites) of up to two firm copies
    h<text hash> content hash -> root page id (exact duplicates)
    s<site>      a site's template (lines its pages leave out), see `policy.learn_template`
    ~d           changes made so far (decisions, expiries), the oldest hour that may hold
                 pages, the id of the page decided last, and the event-time watermark
                 (`window.Watermark`): a restarted owner keeps its window; when the page decided
                 last is a copy, also its decision, written before the root's record: an owner
                 cut short between the two is followed by one that redoes the same decision and
                 does not count the copy twice

Ids inside the state are the first 8 bytes of the 16-byte article id, base64 in keys.

The indexes that find things in those facts (posted sketch hash -> roots, hour -> pages, hour ->
sites) and the counters for metrics are derived from the records, one changed key at a time
(`derived.apply_change`). The worker's RocksDB store keeps them beside the facts, written with
each fact and each changelog record it applies, so they survive a restart; over any other mapping
the index keeps them in memory and rebuilds them by one scan when the state changed under it (a
recovery, another index over the same mapping, told by the decision counter).

Only roots (first-seen articles) are indexed for near-duplicate lookup, so every duplicate points
at its cluster root, never at another duplicate.
"""

from __future__ import annotations

import binascii
import functools
import struct
import zlib
from collections.abc import Callable, MutableMapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from worker.steps.common import host
from worker.steps.dedup import policy
from worker.steps.dedup.derived import DerivedView, MemoryDerived, apply_change
from worker.steps.dedup.fingerprint import (
    HASH_BYTES,
    Fingerprint,
    article_id,
    pack_hashes,
    packed_hashes,
    unpack_hashes,
)
from worker.steps.dedup.policy import Known, Likeness, Policy, Version
from worker.steps.dedup.postings import SID, Posting
from worker.steps.dedup.window import Watermark

POSTED_HASHES = 16
"""The smallest of a root's kept hashes (`policy.INDEX_SKETCH`) that are also posted in the
inverted index to find candidates. Each posted hash costs one bucket read per decision and ~14
bytes of state per root."""

POSTED = min(POSTED_HASHES, policy.INDEX_SKETCH)
"""Hashes of a root's sketch (and of each of its versions') posted in the derived index."""

LOOKUP_HASHES = 16
"""The smallest hashes of a new page looked up among the posted ones. Looking up more than a root
posts lets a long page reach the posted range of a much shorter root (a cut copy seen first);
32 gained under 1 point of recall on the harder set for 15 % of the throughput."""

DEFAULT_RULES = Policy()

HOUR = 3600.0
# Hours one `expire` call visits at most, so a jump in event time never stalls the event loop.
MAX_EXPIRE_HOURS = 48


@dataclass(frozen=True, slots=True)
class Decision:
    """The dedup verdict for one page."""

    article_id: str
    duplicate_of: str | None  # article id of the story's first-seen article (the cluster root)
    kind: Literal["exact", "near"] | None
    similarity: float  # 1.0 for exact, the verified overlap for near, 0.0 for a new story
    copies: int  # pages of this story so far, this one included
    # The page was decided before (a replay after a crash): nothing changed. Not part of the verdict.
    replay: bool = field(default=False, compare=False)
    # The event-time watermark once this page's time is counted (`window.Watermark`); not part of
    # the verdict either.
    watermark: float = field(default=0.0, compare=False)


# --- packed state -------------------------------------------------------------------------------

_HASH_BYTES = HASH_BYTES
_KINDS: tuple[Literal["exact", "near"] | None, ...] = (None, "exact", "near")
_ROOT = 0x80
_SITES = 0x40  # a root record ends with the sites of its other pages (`_Record.sites`)
# flags | root article id | seen_at | copies | similarity | site | content hash prefix; a root then
# has the number of its firm copies' versions, each as its site and number of hashes then the
# hashes, then its own sketch, and last (flag `_SITES`) the sites of its copies, then their number
_RECORD = struct.Struct(">B16sdIfI8s")
_COUNT = struct.Struct(">B")
_VERSION = struct.Struct(">IB")
# changes made (decisions and expiries) | oldest hour that may hold pages | id of the page decided
# last | then the watermark's bytes | then, when that page is a copy, its decision (`_Copy`)
_DECISIONS = struct.Struct(">Qq8s")
# kind, and whether the root keeps the copy's sketch | the root's page id | similarity | copies
_COPY = struct.Struct(">B8sfI")
_KEEP = 0x4
assert _COPY.size % 8, "told from the watermark (8-byte numbers) by the length of `~d`"
DECISIONS_KEY = "~d"
_SID = SID


def _b64(data: bytes) -> str:
    """base64 without padding (8 bytes -> 11 characters)."""
    return binascii.b2a_base64(data, newline=False).rstrip(b"=").decode("ascii")


def _page_key(sid: bytes) -> str:
    return "a" + _b64_8(sid[:_SID])


def _hash_key(chash: bytes) -> str:
    return "h" + _b64_8(chash[:8])


def _b64_8(data: bytes) -> str:
    """`_b64` of an id: 8 bytes are 11 characters of base64 and one of padding."""
    if len(data) != 8:
        return _b64(data)
    return binascii.b2a_base64(data, newline=False)[:11].decode("ascii")


_UNREAD: Any = object()


class _Keys(NamedTuple):
    """A page's ids and the keys of its facts."""

    aid: str  # the article id (hex)
    raw_id: bytes
    sid: bytes  # the page id inside the state
    page_key: str
    chash: bytes  # the content hash
    hash_key: str


def _keys(url: str, content_hash: str) -> _Keys:
    """A page's ids and keys, from its url and content hash (hex: ValueError when it is not)."""
    aid = article_id(url, content_hash)
    raw_id = bytes.fromhex(aid)
    sid = raw_id[:_SID]
    chash = bytes.fromhex(content_hash)
    return _Keys(aid, raw_id, sid, _page_key(sid), chash, _hash_key(chash))


def is_page_key(key: str) -> bool:
    """Whether a key of the state is a page record (`a<page id>`)."""
    return len(key) == 12 and key[0] == "a"


def is_template_key(key: str) -> bool:
    """Whether a key of the state is a site's template (`s<site>`)."""
    return len(key) == 7 and key[0] == "s"


def site_of(url: str) -> int:
    """32-bit hash of the page's host without `www.` (two pages of one site share a template)."""
    start = url.find("://")
    if start < 0:
        return _site(url)
    ends = [at for at in (url.find("/", start + 3), url.find("?", start + 3), url.find("#", start + 3)) if at >= 0]
    return _site(url[: min(ends)] if ends else url)  # the host is all of the url before its path


@functools.lru_cache(maxsize=4096)
def _site(origin: str) -> int:
    return zlib.crc32(host(origin).encode())


@dataclass(slots=True)
class _Record:
    root: bool
    kind: Literal["exact", "near"] | None
    root_id: bytes
    seen_at: float
    copies: int
    similarity: float
    site: int
    chash: bytes
    sketch: tuple[int, ...]  # a root's own sketch (the first `INDEX_SKETCH` hashes)
    versions: tuple[Version, ...] = ()  # own sketches of a root's firm copies, see `policy.keeps`
    sites: tuple[int, ...] = ()  # sites of a root's copies other than its own, see `policy.Known`

    def pack(self) -> bytes:
        flags = (_ROOT if self.root else 0) | (_SITES if self.sites else 0) | _KINDS.index(self.kind)
        head = _RECORD.pack(
            flags, self.root_id, self.seen_at, self.copies, self.similarity, self.site, self.chash
        )
        if not self.root:
            return head
        parts = [head, _COUNT.pack(len(self.versions))]
        for version in self.versions:
            parts += [_VERSION.pack(version.site, len(version.sketch)), pack_hashes(version.sketch)]
        parts.append(pack_hashes(self.sketch))
        if self.sites:
            parts += [pack_hashes(self.sites), _COUNT.pack(len(self.sites))]
        return b"".join(parts)

    @classmethod
    def unpack(cls, data: bytes) -> _Record:
        """A record from its packed bytes (`pack`)."""
        flags, root_id, seen_at, copies, sim, site, chash = _RECORD.unpack_from(data)
        kind = _KINDS[flags & 0x3]
        if not flags & _ROOT:
            return cls(False, kind, root_id, seen_at, copies, sim, site, chash, ())
        at = _RECORD.size + _COUNT.size
        versions: list[Version] = []
        for _ in range(data[at - 1]):
            version_site, count = _VERSION.unpack_from(data, at)
            at += _VERSION.size + count * _HASH_BYTES
            versions.append(Version(unpack_hashes(data[at - count * _HASH_BYTES : at]), version_site))
        end = len(data)
        sites: tuple[int, ...] = ()
        if flags & _SITES:
            end -= 1 + data[-1] * _HASH_BYTES
            sites = unpack_hashes(data[end:-1])
        sketch = unpack_hashes(data[at:end])
        return cls(True, kind, root_id, seen_at, copies, sim, site, chash, sketch, tuple(versions), sites)

    def known(self) -> Known:
        """What the rules judge a page against."""
        return Known((Version(self.sketch, self.site), *self.versions), self.sites)

    def posted(self, count: int) -> set[int]:
        """The hashes this root posts in the inverted index (its own and its versions')."""
        hashes = set(self.sketch[:count])
        for version in self.versions:
            hashes.update(version.sketch[:count])
        return hashes


_KEPT_AT = _RECORD.size + _COUNT.size  # a root's kept texts start here, its versions first


def _sketches_end(data: bytes) -> int:
    """Where a packed root record's kept sketches end: before the sites of its copies (`_SITES`)."""
    return len(data) - 1 - data[-1] * _HASH_BYTES if data[0] & _SITES else len(data)


def same_filing(old: bytes, new: bytes) -> bool:
    """Whether two versions of a packed page record are posted and filed alike: the same flags
    (root or not), time seen and kept sketches; they may differ in copies, similarity, the root
    and the sites of a root's copies."""
    seen_at = slice(_SEEN_AT_OFFSET, _SEEN_AT_OFFSET + _SEEN_AT.size)
    return (
        (old[0] | _SITES) == (new[0] | _SITES)
        and old[seen_at] == new[seen_at]
        and old[_RECORD.size : _sketches_end(old)] == new[_RECORD.size : _sketches_end(new)]
    )


def _kept_spans(data: bytes) -> list[tuple[int, int]]:
    """Where each text a packed root record keeps lies in it (start, end of its hashes): its
    firm copies' sketches (`versions`) first, then its own; none for a copy or a root that keeps
    no text."""
    end = _sketches_end(data)
    if end <= _KEPT_AT:
        return []
    at = _KEPT_AT
    spans = []
    for _ in range(data[_KEPT_AT - 1]):  # each version: its site and size, then its hashes
        start = at + _VERSION.size
        at = start + data[start - 1] * _HASH_BYTES
        spans.append((start, at))
    spans.append((at, end))
    return spans


def _kept_hashes(data: bytes) -> tuple[int, ...]:
    """Every hash of the texts a packed page record keeps (a root's own sketch and its firm
    copies'; none for a copy), without unpacking the rest of it."""
    end = _sketches_end(data)
    if end > _KEPT_AT and not data[_KEPT_AT - 1]:  # no versions: the own sketch alone
        return packed_hashes((end - _KEPT_AT) // _HASH_BYTES).unpack_from(data, _KEPT_AT)
    return unpack_hashes(b"".join([data[start:end] for start, end in _kept_spans(data)]))


_SEEN_AT = struct.Struct(">d")
_SEEN_AT_OFFSET = 17  # after the flags and the root id (`_RECORD`)


def filing(data: bytes, posted: int) -> tuple[bool, float, set[int]]:
    """What the derived indexes file a packed page record under: whether it is a cluster root,
    when it was seen, and the hashes it posts (a root's `posted` smallest of each kept text),
    without unpacking the rest of it."""
    root = bool(data[0] & _ROOT)
    seen_at = _SEEN_AT.unpack_from(data, _SEEN_AT_OFFSET)[0]
    hashes: set[int] = set()
    if root:
        end = _sketches_end(data)
        if end > _KEPT_AT and not data[_KEPT_AT - 1]:  # no versions: the first of its own sketch alone
            count = min(end - _KEPT_AT, posted * _HASH_BYTES) // _HASH_BYTES
            return root, seen_at, set(packed_hashes(count).unpack_from(data, _KEPT_AT))
        room = posted * _HASH_BYTES
        for start, end in _kept_spans(data):
            hashes.update(unpack_hashes(data[start : min(end, start + room)]))
    return root, seen_at, hashes


@dataclass(slots=True)
class _Meta:
    """What the window reads from `~d`: the earliest hour that may hold pages (-1: none)."""

    oldest_hour: int = -1


class _Copy(NamedTuple):
    """A copy's decision, kept in `~d` while its writes are made, so that a redo makes the same."""

    kind: Literal["exact", "near"]
    root: bytes  # the root's page id
    similarity: float
    copies: int  # the root's pages, this one included
    keep: bool  # the root keeps the copy's own sketch as a version of the story

    def pack(self) -> bytes:
        flags = _KINDS.index(self.kind) | (_KEEP if self.keep else 0)
        return _COPY.pack(flags, self.root, self.similarity, self.copies)

    @classmethod
    def unpack(cls, data: bytes) -> _Copy:
        flags, root, similarity, copies = _COPY.unpack(data)
        kind = _KINDS[flags & 0x3]
        assert kind is not None, "a copy is exact or near"
        return cls(kind, root, similarity, copies, bool(flags & _KEEP))


def _split_decisions(raw: bytes) -> tuple[bytes, bytes]:
    """What `~d` holds after its counters: the watermark's bytes, and a copy's decision (or b"")."""
    rest = raw[_DECISIONS.size :]
    if len(rest) % 8:
        return rest[: -_COPY.size], rest[-_COPY.size :]
    return rest, b""


@dataclass(slots=True)
class _Plan:
    """A decision before it is written: the site's template as read, and for a copy its root."""

    site: int
    template_raw: bytes | None
    template_hour: int
    template: dict[int, int]
    near: bool  # long enough, and not the site's furniture: matched near, and indexed if a root
    head: tuple[int, ...] = ()  # the page's smallest sketch hashes looked up, and their postings
    found: list[Posting | None] = field(default_factory=list)
    root_key: str = ""
    root: _Record | None = None
    copy: _Copy | None = None


class DedupIndex:
    """Exact and near-duplicate decisions over a mapping of state, with a time window.

    The mapping holds every fact; the index keeps in memory only the indexes and counters it
    derives from them (`postings`), and rebuilds those whenever the mapping's decision counter is
    not the one it last wrote: an index built before a Faust table has recovered, or sharing the
    mapping with another index, sees the state as it is.
    """

    def __init__(
        self,
        state: MutableMapping[str, bytes],
        window_seconds: float = 7 * 86400,
        *,
        rules: Policy = DEFAULT_RULES,
        posted_hashes: int = POSTED_HASHES,
        lookup_hashes: int = LOOKUP_HASHES,
        derived: DerivedView | None = None,
    ) -> None:
        """`derived`: the derived indexes when the state's store keeps them beside the facts (the
        worker's RocksDB table); without it, the index derives them in memory from `state`."""
        self.state = state
        self.window_seconds = window_seconds
        self.rules = rules
        self.index_sketch = rules.index_sketch
        self.posted_hashes = posted_hashes
        self.lookup_hashes = lookup_hashes
        self._meta = _Meta()
        self._kept = derived is not None
        self._memory: MemoryDerived | None = None if derived is not None else MemoryDerived()
        self._derived: DerivedView = derived if derived is not None else self._memory  # type: ignore[assignment]
        self._decisions = -1  # the decision counter the derived indexes match (-1: not built)
        self._watermark = Watermark()  # as unpacked from `_written`, the `~d` value last written
        self._written = b""
        # A state that can write several keys as one (the RocksDB store) gets each decision's
        # writes together; over any other mapping each write is made as it comes.
        self._batch: Callable[[], AbstractContextManager[None]] | None = getattr(state, "batch", None)
        # ... and reads several keys in one call, and writes a key whose old value was read
        # without reading it again.
        self._get_many: Callable[[list[str]], list[bytes | None]] = getattr(
            state, "get_many", lambda keys: [state.get(key) for key in keys])
        self._replace: Callable[[str, bytes | None, bytes], None] = getattr(
            state, "replace", lambda key, old, value: state.__setitem__(key, value))

    def invalidate(self) -> None:
        """Forget the derived indexes (the state was recovered): the next call rebuilds them."""
        self._decisions = -1

    # -- metrics ----------------------------------------------------------------------------------

    def entries(self) -> int:
        """Pages currently remembered (cluster roots and duplicates)."""
        self._sync()
        return self._derived.records

    def roots(self) -> int:
        """Articles currently indexed for near-duplicate lookup (cluster roots)."""
        self._sync()
        return self._derived.roots

    def state_bytes(self) -> int:
        """Serialized size of the whole state: key bytes plus value bytes."""
        self._sync()
        return self._derived.size

    # -- the decision -----------------------------------------------------------------------------

    def decide(self, url: str, fp: Fingerprint, seen_at: float) -> Decision:
        """Exact or near duplicate of an earlier story, or a new story; counts `seen_at` in the
        event-time watermark the decision returns.

        Idempotent: deciding the same url with the same content again (a replay after a crash)
        returns the same decision and does not change the state or the counts; so does deciding
        again a page whose owner was cut short while writing its decision.
        """
        if self._batch is None:
            return self._decide(url, fp, seen_at)
        with self._batch():
            return self._decide(url, fp, seen_at)

    def decide_many(
        self, pages: Sequence[tuple[str, Fingerprint, float]], after: Callable[[Decision], None] | None = None,
    ) -> list[Decision | Exception]:
        """`decide` of each page in order, or the error one raised (the others decided all the
        same), with `after` called on each decision before the next page is decided (the
        window's expiry, so that each page is decided over the state `decide` would see). Over
        a store that writes several keys as one (the RocksDB table), the pages' postings are
        looked up together first, then their own keys and the records of the roots those
        postings name read in one call, and the batch's writes are one write: the same
        decisions and facts, for less CPU a page."""
        if self._batch is None:
            return [self._decide_one(url, fp, seen_at, after) for url, fp, seen_at in pages]
        with self._batch():
            named: list[_Keys | None] = []
            keys: list[str] = []
            heads: list[int] = []
            reach = max(self.lookup_hashes, self.posted_hashes)
            for url, fp, _ in pages:
                try:
                    page = _keys(url, fp.content_hash)
                    head = fp.sketch[:reach]
                except (ValueError, TypeError):  # a bad fingerprint raises when decided
                    named.append(None)
                    continue
                named.append(page)
                keys += (page.page_key, page.hash_key)
                heads += head
            if heads and self._kept:  # each page's lookup then answered by the postings' recent ones
                limit = policy.BOILERPLATE_ROOTS * _SID
                named_roots = b"".join([posting for posting in filter(None, self._derived.postings(heads))
                                        if posting.__class__ is bytes and len(posting) < limit])
                roots = {named_roots[at : at + _SID] for at in range(0, len(named_roots), _SID)}
                keys += map(_page_key, roots)  # the candidates' records
            self._get_many(sorted(keys))  # in the table's order; a page's reads then find them in the hot entries
            return [self._decide_one(url, fp, seen_at, after, page)
                    for (url, fp, seen_at), page in zip(pages, named, strict=True)]

    def _decide_one(
        self, url: str, fp: Fingerprint, seen_at: float, after: Callable[[Decision], None] | None,
        page: _Keys | None = None,
    ) -> Decision | Exception:
        try:
            decision = self._decide(url, fp, seen_at, page)
        except Exception as error:  # noqa: BLE001 - the caller's to report, page by page
            return error
        if after is not None:
            after(decision)
        return decision

    def _decide(self, url: str, fp: Fingerprint, seen_at: float, page: _Keys | None = None) -> Decision:
        """`decide`, with the page's ids and keys when the caller derived them (`_keys`)."""
        aid, raw_id, sid, page_key, chash, hash_key = page or _keys(url, fp.content_hash)
        known, hashed = self._get_many([page_key, hash_key])  # the content hash's root, read next
        if known is not None:
            return _decision(aid, _Record.unpack(known), replay=True)
        raw = self.state.get(DECISIONS_KEY)
        decisions, _, last = _DECISIONS.unpack_from(raw) if raw else (0, -1, b"")
        oldest = self._sync(raw).oldest_hour
        if raw is not self._written and raw != self._written:  # else unpacked already
            self._watermark = Watermark.from_bytes(_split_decisions(raw)[0] if raw else Watermark().to_bytes())
        watermark = self._watermark
        # `~d` names this page: an owner was cut short deciding it. A copy is redone as it was
        # decided then, for its root may already count it (and hold its sketch, and its hash).
        redone = None
        if raw and last == sid:
            copy_bytes = _split_decisions(raw)[1]
            redone = _Copy.unpack(copy_bytes) if copy_bytes else None
        plan = self._plan(url, fp, hashed, redone)
        # The counter next, before any other write: an owner cut short after it leaves a state its
        # successor rebuilds from, and names this page, whose time is then not counted twice and
        # which, if a copy, is redone with the decision the counter keeps.
        if last != sid:
            watermark.observe(seen_at)
            hour = int(seen_at // HOUR)
            oldest = hour if oldest < 0 or hour < oldest else oldest
            copy = plan.copy.pack() if plan.copy is not None else b""
            self._written = _DECISIONS.pack(decisions + 1, oldest, sid) + watermark.to_bytes() + copy
            self._put(DECISIONS_KEY, self._written, raw)
            self._decisions = decisions + 1
        try:
            record = self._apply(plan, sid, raw_id, chash, fp, seen_at, page_key, hash_key, hashed)
        except BaseException:
            self._decisions = -1  # the derived indexes may hold part of it: rebuild them
            raise
        return _decision(aid, record, watermark=watermark.value)

    def _plan(self, url: str, fp: Fingerprint, hashed: bytes | None, redone: _Copy | None) -> _Plan:
        """The decision, from reads only: a new story, or a copy of a root (`redone`, when given
        and its root is still there, instead of deciding again); `hashed`: the root id the
        page's content hash names (None: none)."""
        site = site_of(url)
        template_key = _template_key(site) if fp.story_lines or fp.left_out else ""
        template_raw = self.state.get(template_key) if template_key else None
        template_hour, template = _unpack_template(template_raw)
        near = self.rules.matchable(fp, template)
        plan = _Plan(site, template_raw, template_hour, template, near)
        if redone is not None:
            root_key = _page_key(redone.root)
            data = self.state.get(root_key)
            if data is not None:
                plan.root_key, plan.root, plan.copy = root_key, _Record.unpack(data), redone
                if redone.keep:
                    plan.head = fp.sketch[: max(self.lookup_hashes, self.posted_hashes)]
                    plan.found = self._derived.postings(plan.head)
                return plan
        match = self._exact(hashed) if fp.sketch else None
        if match is not None and not self.rules.exact_counts(near, site, match[1].known()):
            match = None
        kind: Literal["exact", "near"] | None = "exact" if match else None
        like = Likeness(1.0, 1.0)
        if match is None and near:
            plan.head = fp.sketch[: max(self.lookup_hashes, self.posted_hashes)]
            plan.found = self._derived.postings(plan.head)
            match, like = self._near(fp, site, plan)
            kind = "near" if match else None
        if match is None or kind is None:
            return plan
        plan.root_key, plan.root = match
        keep = kind == "near" and self.rules.keeps(like, site, plan.root.known())
        plan.copy = _Copy(kind, plan.root.root_id[:_SID], round(like.similarity, 4), plan.root.copies + 1, keep)
        return plan

    def _apply(
        self, plan: _Plan, sid: bytes, raw_id: bytes, chash: bytes, fp: Fingerprint, seen_at: float,
        page_key: str, hash_key: str, hashed: bytes | None,
    ) -> _Record:
        """Write a planned decision: the root's record (a copy), the content hash (`hash_key`,
        read as `hashed`), the site's template, the page's record (`page_key`) last. Redoing it
        after a cut leaves the state it would have left: the root's copies are set, not counted,
        and a copy's text is kept once."""
        meta = self._meta
        site, root, copy = plan.site, plan.root, plan.copy
        if root is not None and copy is not None:
            root.copies = copy.copies
            version = Version(fp.sketch[: self.index_sketch], site)
            if copy.keep and version not in root.versions:  # else kept before a cut
                root.versions += (version,)  # its hashes are posted with the record (`derived`)
            root.sites = policy.with_site(root.sites, site, root.site)
            self._put(plan.root_key, root.pack())
            self._put(hash_key, root.root_id[:_SID], hashed)
            record = _Record(
                False, copy.kind, root.root_id, seen_at, copy.copies, copy.similarity, site, chash[:8], ()
            )
        else:
            stored = fp.sketch[: self.index_sketch] if plan.near else ()
            record = _Record(True, None, raw_id, seen_at, 1, 0.0, site, chash[:8], stored)
            self._put(hash_key, sid, hashed)
        hour = int(seen_at // HOUR)
        if fp.left_out:
            self._keep_template(site, plan.template_raw, plan.template_hour, plan.template, fp.left_out, hour)
        if meta.oldest_hour < 0 or hour < meta.oldest_hour:
            meta.oldest_hour = hour
        self._put(page_key, record.pack(), None)  # the page record last: a replay redoes the rest
        return record

    def _keep_template(
        self, site: int, raw: bytes | None, last: int, learned: dict[int, int], left_out: tuple[int, ...], hour: int
    ) -> None:
        """Count the lines this page left out in its site's template (`learned`, updated in
        place, see `policy.learn_template`) and keep the last hour a page of the site was seen;
        a site is filed under that hour, so its template leaves the window with the site's last
        page."""
        policy.learn_template(learned, left_out)
        last = max(last, hour)  # the site is filed under that hour (`derived`)
        hashes = sorted(learned)
        value = _template_head(len(hashes)).pack(last, *hashes) + bytes(map(learned.__getitem__, hashes))
        self._put(_template_key(site), value, raw)

    def _exact(self, sid: bytes | None) -> tuple[str, _Record] | None:
        """The root a content hash names (`sid`, as read), with its record."""
        if sid is None:
            return None
        key = _page_key(sid)
        data = self.state.get(key)
        return (key, _Record.unpack(data)) if data is not None else None

    def _near(self, fp: Fingerprint, site: int, plan: _Plan) -> tuple[tuple[str, _Record] | None, Likeness]:
        """The root the page is a near copy of (and the likeness), or None: the candidate the
        rules find most like the page, containment first."""
        limit = policy.BOILERPLATE_ROOTS * _SID
        hits: dict[bytes, int] = {}
        ignore: set[int] = set()
        for h, data in zip(plan.head, plan.found, strict=True):
            if not data:
                continue
            if len(data) == _SID:  # the usual posting: one root (a set holds more than 8)
                hits[data] = hits.get(data, 0) + 1  # type: ignore[index, arg-type]
            elif isinstance(data, set) or len(data) >= limit:
                ignore.add(h)  # boilerplate
            else:
                for i in range(0, len(data), _SID):
                    csid = data[i : i + _SID]
                    hits[csid] = hits.get(csid, 0) + 1
        ranked = sorted(((n, csid) for csid, n in hits.items() if n >= policy.CANDIDATE_HITS), reverse=True)
        keys = [_page_key(csid) for _, csid in ranked[: policy.MAX_CANDIDATES]]
        candidates: list[tuple[str, _Record]] = []
        sample: set[int] | None = None
        for key, data in zip(keys, self._get_many(keys), strict=True):
            if data is None:
                continue
            if sample is None:
                sample = set(fp.sketch)
            # most candidates at a large window share one posted hash by chance: they are left
            # out on their kept hashes alone, before their record is unpacked
            if policy.may_be_like(sample, _kept_hashes(data)):
                candidates.append((key, _Record.unpack(data)))
        found: list[tuple[Likeness, Known]] = []
        matched: list[tuple[str, _Record]] = []
        for key, cand in candidates:
            known = cand.known()
            like = self.rules.likeness(fp, site, known, ignore)
            if like is not None:
                found.append((like, known))
                matched.append((key, cand))
        chosen = self.rules.choose(found, ignore)
        if chosen is None:
            return None, Likeness(0.0, 0.0)
        return matched[chosen], found[chosen][0]

    # -- the window -------------------------------------------------------------------------------

    def expire(self, now: float, max_hours: int = MAX_EXPIRE_HOURS) -> int:
        """Forget pages seen before `now - window_seconds`; returns how many were dropped.

        Pages are filed by the hour they were seen, so this visits only the hours that end
        before the window, never the whole state, and at most `max_hours` of them per call:
        after a long gap in event time the next calls carry on where this one stopped.
        """
        meta = self._sync()
        if meta.oldest_hour < 0:
            return 0
        cutoff = now - self.window_seconds
        hours = range(meta.oldest_hour, min(int(cutoff // HOUR) + 1, meta.oldest_hour + max_hours))
        if not hours:
            return 0
        dropped = 0
        oldest = meta.oldest_hour
        for hour in hours:
            kept: list[bytes] = []
            for sid in self._derived.pages(hour):
                page_key = _page_key(sid)
                data = self.state.get(page_key)
                if data is None:
                    continue
                record = _Record.unpack(data)
                if record.seen_at >= cutoff:
                    kept.append(sid)
                    continue
                self._forget(sid, page_key, record)
                dropped += 1
            if kept:
                oldest = hour
                break  # a later hour holds later pages only
            self._expire_sites(hour)
            oldest = hour + 1
        meta.oldest_hour = oldest if self._derived.records else -1
        self._count_change()
        return dropped

    def expiry_due(self, now: float) -> bool:
        """Whether pages older than the window at `now` are still held (an `expire` call is due)."""
        oldest = self._sync().oldest_hour
        return 0 <= oldest <= int((now - self.window_seconds) // HOUR) - 1

    def _expire_sites(self, hour: int) -> None:
        """Drop the templates of the sites filed under `hour` that no later page has renewed."""
        for site in self._derived.sites(hour):
            template_key = _template_key(site)
            raw = self.state.get(template_key)
            if raw is not None and _unpack_template(raw)[0] <= hour:
                self._delete(template_key)


    def _forget(self, sid: bytes, page_key: str, record: _Record) -> None:
        hash_key = _hash_key(record.chash)
        if self.state.get(hash_key) in (sid, record.root_id[:_SID]):
            self._delete(hash_key)
        self._delete(page_key)

    # -- bookkeeping ------------------------------------------------------------------------------

    def _sync(self, raw: Any = _UNREAD) -> _Meta:
        """The counters, the derived indexes first rebuilt if the state moved under them; pass
        `raw` when the caller already read `~d`."""
        if raw is _UNREAD:
            raw = self.state.get(DECISIONS_KEY)
        decisions = _DECISIONS.unpack_from(raw)[0] if raw else 0
        if decisions != self._decisions:
            self._rebuild(raw)
        return self._meta

    def _rebuild(self, raw: bytes | None) -> None:
        """Derive the indexes and counters from the state's records and templates (one scan),
        unless the state's store keeps them; then read the window's oldest hour again."""
        if not self._kept:
            self._memory = MemoryDerived.of(self.state)
            self._derived = self._memory
        meta = _Meta()
        # The window goes on from the hour it had reached (it may be ahead of the oldest page).
        if raw:
            meta.oldest_hour = _DECISIONS.unpack_from(raw)[1]
        elif self._memory is not None:
            meta.oldest_hour = self._memory.oldest_hour()
        self._meta = meta
        self._decisions = _DECISIONS.unpack_from(raw)[0] if raw else 0
        self._written = b""

    def _count_change(self) -> None:
        """Count a change that is not a decision (expiry), with the window's oldest hour."""
        raw = self.state.get(DECISIONS_KEY)
        decisions, _, last = _DECISIONS.unpack_from(raw) if raw else (0, -1, b"")
        rest = raw[_DECISIONS.size :] if raw else Watermark().to_bytes()
        self._put(DECISIONS_KEY, _DECISIONS.pack(decisions + 1, self._meta.oldest_hour, last) + rest, raw)
        self._decisions = decisions + 1

    def _put(self, key: str, value: bytes, old: Any = _UNREAD) -> None:
        """Write one value unless it is already there (every write is a changelog record), keeping
        the byte count; pass `old` when the caller already read it."""
        if old is _UNREAD:
            old = self.state.get(key)
        if value == old:
            return
        self._replace(key, old, value)  # first: a refused write leaves the indexes as they were
        if self._memory is not None:
            apply_change(key, old, value, self._memory)

    def _delete(self, key: str) -> None:
        old = self.state.pop(key, None)
        if old is not None and self._memory is not None:
            apply_change(key, old, None, self._memory)


# a site's template: the last hour a page of the site was seen | line hashes, ascending | for
# each, how many pages of the site left it out (one byte)
_TEMPLATE_HOUR = struct.Struct(">q")
_SITE = struct.Struct(">I")


def _template_key(site: int) -> str:
    return "s" + _b64(_SITE.pack(site))


def _unpack_template(raw: bytes | None) -> tuple[int, dict[int, int]]:
    """The last hour a page of the site was seen (-1: none yet), and its lines with their counts."""
    if not raw:
        return -1, {}
    lines = (len(raw) - _TEMPLATE_HOUR.size) // (_HASH_BYTES + 1)
    head = _template_head(lines)
    last, *hashes = head.unpack_from(raw)
    return last, dict(zip(hashes, raw[head.size :], strict=True))


def template_hour(raw: bytes | None) -> int:
    """The last hour a page of a site was seen, from its packed template (-1: none yet)."""
    return _TEMPLATE_HOUR.unpack_from(raw)[0] if raw else -1


@functools.cache
def _template_head(lines: int) -> struct.Struct:
    return struct.Struct(f">q{lines}I")


def _decision(aid: str, record: _Record, *, replay: bool = False, watermark: float = 0.0) -> Decision:
    if record.root:
        return Decision(aid, None, None, 0.0, 1, replay, watermark)
    similarity = round(record.similarity, 4)
    return Decision(aid, record.root_id.hex(), record.kind, similarity, record.copies, replay, watermark)
