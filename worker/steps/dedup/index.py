"""Fingerprints and the duplicate decision (exact and near), state passed in as a mapping.

Two halves, run in different places:

- `fingerprint(article)` is pure and runs in the process pool: the sha256 of the normalised text
  (exact duplicates) and a bottom-k sketch of the story's word shingles (near duplicates), see
  `dedup_text`.
- `DedupIndex.decide(url, fp, seen_at)` runs on the single owner of the decision, against any
  `MutableMapping[str, bytes]` (a dict in tests, a changelog-backed Faust table in production).

Near duplicates are decided on *containment*, not Jaccard: a syndicated copy that keeps only the
first half of a story, or wraps it in another site's junk, still has most of its (smaller) shingle
sample inside the original's. Candidates come from an inverted index of the sketch hashes; each
candidate is then verified on the two sketches (overlap coefficient below the common bottom-k
threshold) before anything is merged. Shingles that several different stories share are
boilerplate (footers, cookie notes, sign-up boxes) and count for nothing. Two pages of the same
site share that site's template, so for them more of the smaller text must be found, and a
sentence or two found again on the same site is not a copy.

A cluster is represented by up to two versions of its story: the root's sketch, replaced by a
fuller version when one arrives (the original after a cut copy that came first), and a second,
different version (another lead, other paragraphs kept). Both are posted and verified against.

State layout (keys are short ASCII strings, values are packed bytes). Every key is a changelog
record per write, so the state holds facts only and each decision writes few keys (a new story:
its record, its content hash and the decision counter; a copy: those and its root's record):

    a<page id>   one record per decided page: its decision; a cluster root also keeps its sketch
                 and, once it has one, its second version's site and sketch
    h<text hash> content hash -> root page id (exact duplicates)
    s<site>      a site's template (lines its pages leave out), see `_learn_template`
    ~d           changes made so far (decisions, expiries), the oldest hour that may hold
                 pages, the id of the page decided last, and the event-time watermark
                 (`window.Watermark`): a restarted owner keeps its window; when the page decided
                 last is a copy, also its decision, written before the root's record: an owner
                 cut short between the two is followed by one that redoes the same decision and
                 does not count the copy twice

Ids inside the state are the first 8 bytes of the 16-byte article id, base64 in keys.

The indexes that find things in those facts (posted sketch hash -> roots, hour -> pages, hour ->
sites) and the counters for metrics live in memory (`postings`), derived from the records: they
are rebuilt by one scan when the state changed under the index (a recovery, another index over
the same mapping, told by the decision counter). Before this layout the indexes were keys of the
state too (`<hash>` buckets, `~t<hour>` chunks, `~s<hour>` sites, `~` counters, `~w`): a state
holding them is read as it is, and they are deleted a few at a time as decisions go.

Only roots (first-seen articles) are indexed for near-duplicate lookup, so every duplicate points
at its cluster root, never at another duplicate.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import math
import struct
import zlib
from bisect import bisect_right
from collections.abc import MutableMapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, NamedTuple

from worker.document import Article
from worker.steps.common import host
from worker.steps.dedup.postings import SID, Filed, Posting, Postings
from worker.steps.dedup.shingles import (
    HASH_BITS,
    SKETCH_SIZE,
    bottom_k,
    content_hash,
    left_out_lines,
    line_hash,
    shingle_hashes,
    story_lines,
)
from worker.steps.dedup.window import Watermark

FORMAT_VERSION = 3
"""Fingerprints that carry line hashes (pages cleaned from a text dump); one without them is
written in version 2, the layout of before, so either version reads the other's hops."""

INDEX_SKETCH = 80
"""Shingle hashes a root's record keeps for verification (a prefix of the fingerprint's sketch)."""

POSTED_HASHES = 16
"""The smallest of those that are also posted in the inverted index to find candidates. Each
posted hash costs one bucket read per decision and ~14 bytes of state per root."""

LOOKUP_HASHES = 16
"""The smallest hashes of a new page looked up among the posted ones. Looking up more than a root
posts lets a long page reach the posted range of a much shorter root (a cut copy seen first);
32 gained under 1 point of recall on the harder set for 15 % of the throughput."""

CANDIDATE_HITS = 1
"""Bucket hits that make a root a candidate (it is then verified on the whole sketches)."""

NEAR_THRESHOLD = 0.35
"""Least share of the smaller text's shingle sample found in the other text (different sites)."""

SAME_SITE_THRESHOLD = 0.6
"""Least share of the smaller text's sample in the other for two pages of one site: their shared
template alone makes the smaller one look partly contained (different stories of one site reach
0.52 on the dev set), so more of it must be found than across sites."""

FULLER_VERSION = 1.25
"""A near duplicate with this many times the root's shingles, that holds at least
`FULLER_CONTAINS` of the root's sample, is a fuller version of the story (the original after a
cut copy, a copy with the lead the first one dropped): the root keeps its sketch from then on, so
later copies are compared with the fullest text seen rather than with the first one."""

FULLER_CONTAINS = 0.5

MEMBER_RESEMBLANCE = 0.8
"""A near duplicate that resembles the root (as a whole) less than this, and is not a fuller
version of it, is another version of the story (another lead, other paragraphs kept): the root
keeps its sketch as well, once, and posts its smallest hashes, so later copies are compared with
both versions and the story is found through either."""

MIN_SHARED = 3
"""Least number of shared (non-boilerplate) sample hashes to call two texts one story."""

MIN_NEAR_SHINGLES = 40
"""Texts with fewer distinct shingles (about two sentences) are matched exactly, never near."""

BOILERPLATE_ROOTS = 3
"""A shingle hash found in this many different stories is boilerplate and does not count."""

MAX_CANDIDATES = 8
"""Candidates verified per decision, the ones sharing most sample hashes first."""

STORY_LINES = 16
"""Hashes of the story's long lines a fingerprint carries (the smallest), to tell furniture."""

LEFT_OUT_LINES = 32
"""Hashes of the long lines the cleaner left out of the page a fingerprint carries (the smallest)."""

TEMPLATE_LINES = 2 * LEFT_OUT_LINES
"""Line hashes a site's template keeps, with how many of its pages left each out: room for all
the furniture lines a page can bring (the same ones on every page) and as many more."""

TEMPLATE_SEEN = 2
"""A line left out of this many pages of a site is that site's furniture."""

TEMPLATE_COUNT = TEMPLATE_SEEN + 1
"""Counts stop here: a line left out often enough changes its site's template no more."""

FURNITURE_SHARE = 0.5
"""A text with at least this share of its sampled story lines in its site's furniture (and at
least `FURNITURE_MIN_LINES` of them) is the site's furniture, not a story: the cleaner kept a
block that the site's other pages show around their own stories."""

FURNITURE_MIN_LINES = 3

HOUR = 3600.0
# Hours one `expire` call visits at most, so a jump in event time never stalls the event loop.
MAX_EXPIRE_HOURS = 48
# Keys of the layout before `~d` deleted per decision (a state written by an older owner).
LEGACY_DELETES = 256


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What the pool computes per article: exact hash, near-duplicate sketch, shingle count."""

    content_hash: str  # hex sha256 of the normalised text
    sketch: tuple[int, ...] = ()  # bottom-k 32-bit shingle hashes of the story, ascending
    shingles: int = 0  # distinct story shingles (the sketch holds min(shingles, k) of them)
    story_lines: tuple[int, ...] = ()  # smallest hashes of the story's long lines, ascending
    left_out: tuple[int, ...] = ()  # smallest hashes of the page's long lines the cleaner left out

    def to_bytes(self) -> bytes:
        """Compact binary form: version, hash, shingle count, [line hash counts, line hashes],
        then 4 bytes per sketch hash."""
        digest = bytes.fromhex(self.content_hash)
        if not self.story_lines and not self.left_out:
            return struct.pack(">B32sI", 2, digest, self.shingles) + _pack_hashes(self.sketch)
        head = struct.pack(
            ">B32sIBB", FORMAT_VERSION, digest, self.shingles, len(self.story_lines), len(self.left_out)
        )
        return head + _pack_hashes(self.story_lines + self.left_out + self.sketch)

    @classmethod
    def from_bytes(cls, data: bytes) -> Fingerprint:
        """Inverse of `to_bytes` (either version)."""
        version, digest, shingles = struct.unpack_from(">B32sI", data)
        if version == 2:
            return cls(digest.hex(), _unpack_hashes(data[37:]), shingles)
        if version != FORMAT_VERSION:
            raise ValueError(f"unknown fingerprint format {version}")
        story, left = struct.unpack_from(">BB", data, 37)
        hashes = _unpack_hashes(data[39:])
        return cls(
            digest.hex(), hashes[story + left :], shingles, hashes[:story], hashes[story : story + left]
        )


def fingerprint(article: Article, page_text: str | None = None) -> Fingerprint:
    """Exact hash of the normalised text plus a bottom-k sketch of the story's shingles; with the
    page's text dump, also the hashes that tell a site's furniture from a story (see
    `FURNITURE_SHARE`)."""
    every, lines = story_lines(article.text)
    hashes = shingle_hashes([t for toks in lines for t in toks])
    fp = Fingerprint(content_hash(every), bottom_k(hashes, SKETCH_SIZE), len(hashes))
    if not page_text:
        return fp
    story = bottom_k({line_hash(toks) for toks in lines}, STORY_LINES)
    left = bottom_k(left_out_lines(page_text, article.text), LEFT_OUT_LINES)
    return Fingerprint(fp.content_hash, fp.sketch, fp.shingles, story, left)


def article_id(url: str, content_hash: str) -> str:
    """Deterministic 32-hex id of a page's article: same url and content, same id, every replay."""
    return hashlib.sha256(f"{url}\n{content_hash}".encode()).hexdigest()[:32]


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

_HASH_BYTES = HASH_BITS // 8
_KINDS: tuple[Literal["exact", "near"] | None, ...] = (None, "exact", "near")
_ROOT = 0x80
_MEMBER = 0x40  # the root record also holds a second version: its site, then both sketches
_VERSION = struct.Struct(">BI")  # hashes in the root's own sketch | site of the second version
# flags | root article id | seen_at | copies | similarity | site | content hash prefix
_RECORD = struct.Struct(">B16sdIfI8s")
# changes made (decisions and expiries) | oldest hour that may hold pages | id of the page decided
# last | then the watermark's bytes | then, when that page is a copy, its decision (`_Copy`)
_DECISIONS = struct.Struct(">Qq8s")
# kind, and what the root takes from the copy | the root's page id | similarity | copies
_COPY = struct.Struct(">B8sfI")
_FULLER, _SECOND = 0x4, 0x8  # the root takes the copy's sketch | keeps it as its second version
assert _COPY.size % 8, "told from the watermark (8-byte numbers) by the length of `~d`"
_LEGACY_META = struct.Struct(">QQQq")  # `~` before: records | roots | bytes | oldest hour
DECISIONS_KEY = "~d"
_SID = SID


def _pack_hashes(hashes: tuple[int, ...]) -> bytes:
    return struct.pack(f">{len(hashes)}I", *hashes)


def _unpack_hashes(data: bytes) -> tuple[int, ...]:
    return struct.unpack(f">{len(data) // _HASH_BYTES}I", data[: len(data) // _HASH_BYTES * _HASH_BYTES])


def _b64(data: bytes) -> str:
    """base64 without padding (8 bytes -> 11 characters)."""
    return binascii.b2a_base64(data, newline=False).rstrip(b"=").decode("ascii")


def _page_key(sid: bytes) -> str:
    return "a" + _b64(sid[:_SID])


def _hash_key(chash: bytes) -> str:
    return "h" + _b64(chash[:8])


def _current(key: str) -> bool:
    """Whether a key belongs to this layout (page records, content hashes, templates, `~d`)."""
    return (len(key) == 12 and key[0] in "ah") or (len(key) == 7 and key[0] == "s") or key == DECISIONS_KEY


_UNREAD: Any = object()


def site_of(url: str) -> int:
    """32-bit hash of the page's host without `www.` (two pages of one site share a template)."""
    return zlib.crc32(host(url).encode())


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
    sketch: tuple[int, ...]
    member: tuple[int, ...] = ()  # a root's second version of the story, see MEMBER_RESEMBLANCE
    member_site: int = 0

    def pack(self) -> bytes:
        flags = (_ROOT if self.root else 0) | (_MEMBER if self.member else 0) | _KINDS.index(self.kind)
        head = _RECORD.pack(
            flags, self.root_id, self.seen_at, self.copies, self.similarity, self.site, self.chash
        )
        if not self.root:
            return head
        if self.member:
            head += _VERSION.pack(len(self.sketch), self.member_site)
        return head + _pack_hashes(self.sketch) + _pack_hashes(self.member)

    @classmethod
    def unpack(cls, data: bytes) -> _Record:
        flags, root_id, seen_at, copies, sim, site, chash = _RECORD.unpack_from(data)
        root = bool(flags & _ROOT)
        sketch: tuple[int, ...] = ()
        member: tuple[int, ...] = ()
        member_site = 0
        if flags & _MEMBER:
            count, member_site = _VERSION.unpack_from(data, _RECORD.size)
            split = _RECORD.size + _VERSION.size + count * _HASH_BYTES
            sketch = _unpack_hashes(data[_RECORD.size + _VERSION.size : split])
            member = _unpack_hashes(data[split:])
        elif root:
            sketch = _unpack_hashes(data[_RECORD.size :])
        kind = _KINDS[flags & 0x3]
        return cls(root, kind, root_id, seen_at, copies, sim, site, chash, sketch, member, member_site)

    def posted(self, count: int) -> set[int]:
        """The hashes this root posts in the inverted index (its own and its second version's)."""
        return set(self.sketch[:count]) | set(self.member[:count])


@dataclass(slots=True)
class _Meta:
    """Counters for metrics and the window, derived from the state like the indexes."""

    records: int = 0
    roots: int = 0
    size: int = 0  # bytes of every key and value of the state
    oldest_hour: int = -1  # earliest hour that may hold pages (-1: none)


class _Copy(NamedTuple):
    """A copy's decision, kept in `~d` while its writes are made, so that a redo makes the same."""

    kind: Literal["exact", "near"]
    root: bytes  # the root's page id
    similarity: float
    copies: int  # the root's pages, this one included
    changes: int  # what the root takes from the copy: `_FULLER` (its sketch) or `_SECOND`

    def pack(self) -> bytes:
        return _COPY.pack(_KINDS.index(self.kind) | self.changes, self.root, self.similarity, self.copies)

    @classmethod
    def unpack(cls, data: bytes) -> _Copy:
        flags, root, similarity, copies = _COPY.unpack(data)
        kind = _KINDS[flags & 0x3]
        assert kind is not None, "a copy is exact or near"
        return cls(kind, root, similarity, copies, flags & (_FULLER | _SECOND))


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


class Overlap(NamedTuple):
    """How much two texts share, estimated from their sketches."""

    coefficient: float  # |A∩B| / min(|A|, |B|): containment of the smaller text in the other
    shared: int  # sample hashes the estimate rests on
    resemblance: float  # |A∩B| / max(|A|, |B|): containment of the larger text in the other


def overlap(
    a: tuple[int, ...],
    b: tuple[int, ...],
    ka: int,
    kb: int,
    ignore: frozenset[int] | set[int] = frozenset(),
) -> Overlap:
    """Overlap of two texts from bottom-k sketches of sizes ka and kb.

    Only hashes below both sketches' thresholds are compared, so the sample is consistent: a hash
    below the threshold is in a sketch exactly when it is in that text. A sketch shorter than its
    k holds its whole text. Hashes in `ignore` (boilerplate) are left out on both sides.
    """
    ta = a[-1] if len(a) >= ka else math.inf
    tb = b[-1] if len(b) >= kb else math.inf
    if ta < tb:
        b = b[: bisect_right(b, ta)]
    elif tb < ta:
        a = a[: bisect_right(a, tb)]
    sa, sb = set(a), set(b)
    if ignore:
        sa -= ignore
        sb -= ignore
    smaller, larger = sorted((len(sa), len(sb)))
    if not smaller:
        return Overlap(0.0, 0, 0.0)
    shared = len(sa & sb)
    return Overlap(shared / smaller, shared, shared / larger)


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
        near_threshold: float = NEAR_THRESHOLD,
        same_site_threshold: float = SAME_SITE_THRESHOLD,
        index_sketch: int = INDEX_SKETCH,
        posted_hashes: int = POSTED_HASHES,
        lookup_hashes: int = LOOKUP_HASHES,
        min_near_shingles: int = MIN_NEAR_SHINGLES,
    ) -> None:
        self.state = state
        self.window_seconds = window_seconds
        self.near_threshold = near_threshold
        self.same_site_threshold = same_site_threshold
        self.index_sketch = index_sketch
        self.posted_hashes = posted_hashes
        self.lookup_hashes = lookup_hashes
        self.min_near_shingles = min_near_shingles
        self._meta = _Meta()
        self._postings = Postings()
        self._filed = Filed()
        self._decisions = -1  # the decision counter the derived indexes match (-1: not built)
        self._legacy: list[str] = []  # keys of the layout before `~d` still to delete
        self._watermark = Watermark()  # as unpacked from `_written`, the `~d` value last written
        self._written = b""

    def invalidate(self) -> None:
        """Forget the derived indexes (the state was recovered): the next call rebuilds them."""
        self._decisions = -1

    # -- metrics ----------------------------------------------------------------------------------

    def entries(self) -> int:
        """Pages currently remembered (cluster roots and duplicates)."""
        return self._sync().records

    def roots(self) -> int:
        """Articles currently indexed for near-duplicate lookup (cluster roots)."""
        return self._sync().roots

    def state_bytes(self) -> int:
        """Serialized size of the whole state: key bytes plus value bytes."""
        return self._sync().size

    # -- the decision -----------------------------------------------------------------------------

    def decide(self, url: str, fp: Fingerprint, seen_at: float) -> Decision:
        """Exact or near duplicate of an earlier story, or a new story; counts `seen_at` in the
        event-time watermark the decision returns.

        Idempotent: deciding the same url with the same content again (a replay after a crash)
        returns the same decision and does not change the state or the counts; so does deciding
        again a page whose owner was cut short while writing its decision.
        """
        aid = article_id(url, fp.content_hash)
        raw_id = bytes.fromhex(aid)
        sid = raw_id[:_SID]
        page_key = _page_key(sid)
        known = self.state.get(page_key)
        if known is not None:
            return replace(_decision(aid, _Record.unpack(known)), replay=True)
        chash = bytes.fromhex(fp.content_hash)
        raw = self.state.get(DECISIONS_KEY)
        decisions, _, last = _DECISIONS.unpack_from(raw) if raw else (0, -1, b"")
        oldest = self._sync(raw).oldest_hour
        watermark_bytes, copy_bytes = _split_decisions(raw) if raw else (self._legacy_watermark(), b"")
        if raw is not self._written and raw != self._written:  # else unpacked already
            self._watermark = Watermark.from_bytes(watermark_bytes)
        watermark = self._watermark
        # `~d` names this page: an owner was cut short deciding it. A copy is redone as it was
        # decided then, for its root may already count it (and hold its sketch, and its hash).
        redone = _Copy.unpack(copy_bytes) if last == sid and copy_bytes else None
        plan = self._plan(url, fp, chash, redone)
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
        self._delete_legacy()
        try:
            record = self._apply(plan, sid, raw_id, chash, fp, seen_at)
        except BaseException:
            self._decisions = -1  # the derived indexes may hold part of it: rebuild them
            raise
        return replace(_decision(aid, record), watermark=watermark.value)

    def _plan(self, url: str, fp: Fingerprint, chash: bytes, redone: _Copy | None) -> _Plan:
        """The decision, from reads only: a new story, or a copy of a root (`redone`, when given
        and its root is still there, instead of deciding again)."""
        site = site_of(url)
        template_key = _template_key(site) if fp.story_lines or fp.left_out else ""
        template_raw = self.state.get(template_key) if template_key else None
        template_hour, template = _unpack_template(template_raw)
        # Too short a text is matched exactly only: it is neither indexed nor a candidate. And a
        # sentence or two found again on the same site is that site's boilerplate, not a story;
        # so is a text the site's other pages leave out around their own stories.
        near = fp.shingles >= self.min_near_shingles and not _furniture(fp.story_lines, template)
        plan = _Plan(site, template_raw, template_hour, template, near)
        if redone is not None:
            root_key = _page_key(redone.root)
            data = self.state.get(root_key)
            if data is not None:
                plan.root_key, plan.root, plan.copy = root_key, _Record.unpack(data), redone
                if redone.changes:
                    plan.head = fp.sketch[: max(self.lookup_hashes, self.posted_hashes)]
                    plan.found = list(map(self._postings.get, plan.head))
                return plan
        match = self._exact(chash) if fp.sketch else None
        if match is not None and not near and match[1].site == site:
            match = None
        kind: Literal["exact", "near"] | None = "exact" if match else None
        similarity = resemblance = 1.0
        if match is None and near:
            plan.head = fp.sketch[: max(self.lookup_hashes, self.posted_hashes)]
            plan.found = list(map(self._postings.get, plan.head))
            match, similarity, resemblance = self._near(fp, site, plan.head, plan.found)
            kind = "near" if match else None
        if match is None or kind is None:
            return plan
        plan.root_key, plan.root = match
        changes = 0
        if kind == "near" and similarity >= FULLER_CONTAINS and _fuller(fp, plan.root.sketch):
            changes = _FULLER
        elif kind == "near" and not plan.root.member and resemblance < MEMBER_RESEMBLANCE:
            changes = _SECOND
        plan.copy = _Copy(kind, plan.root.root_id[:_SID], similarity, plan.root.copies + 1, changes)
        return plan

    def _apply(
        self, plan: _Plan, sid: bytes, raw_id: bytes, chash: bytes, fp: Fingerprint, seen_at: float
    ) -> _Record:
        """Write a planned decision: the root's record (a copy), the content hash, the site's
        template, the page's record last. Redoing it after a cut leaves the state it would have
        left: the root's copies are set, not counted, and what it took from the copy is taken once."""
        meta = self._meta
        site, head, found, root, copy = plan.site, plan.head, plan.found, plan.root, plan.copy
        posted = min(self.posted_hashes, self.index_sketch)
        if root is not None and copy is not None:
            root.copies = copy.copies
            sketch = fp.sketch[: self.index_sketch]
            if copy.changes & _FULLER:
                if root.sketch != sketch:  # else taken before the cut
                    self._reindex(root, sketch, head, found)
                root.site = site  # the sketch now holds this page's site's template, if any
            elif copy.changes & _SECOND and not root.member:
                root.member, root.member_site = sketch, site
                self._index(root.root_id[:_SID], head[:posted], found[:posted])
            self._put(plan.root_key, root.pack())
            self._put(_hash_key(chash), root.root_id[:_SID])
            record = _Record(
                False, copy.kind, root.root_id, seen_at, copy.copies, copy.similarity, site, chash[:8], ()
            )
        else:
            stored = fp.sketch[: self.index_sketch] if plan.near else ()
            record = _Record(True, None, raw_id, seen_at, 1, 0.0, site, chash[:8], stored)
            self._index(sid, head[:posted], found[:posted])
            self._put(_hash_key(chash), sid)
            meta.roots += 1
        hour = int(seen_at // HOUR)
        if fp.left_out:
            self._learn_template(site, plan.template_raw, plan.template_hour, plan.template, fp.left_out, hour)
        self._filed.pages[hour].append(sid)
        if meta.oldest_hour < 0 or hour < meta.oldest_hour:
            meta.oldest_hour = hour
        meta.records += 1
        self._put(_page_key(sid), record.pack(), None)  # the page record last: a replay redoes the rest
        return record

    def _learn_template(
        self, site: int, raw: bytes | None, last: int, learned: dict[int, int], left_out: tuple[int, ...], hour: int
    ) -> None:
        """Count the lines this page left out in its site's template (`learned`, updated in
        place), which keeps the `TEMPLATE_LINES` most often left out and the last hour a page of
        the site was seen; a site is filed under that hour, so its template leaves the window
        with the site's last page."""
        for h in learned.keys() & left_out:
            if learned[h] < TEMPLATE_COUNT:
                learned[h] += 1
        learned.update(dict.fromkeys(set(left_out).difference(learned), 1))
        count = 1
        while len(learned) > TEMPLATE_LINES:
            # the least often left out go, largest hashes first, down to three quarters of the
            # room so that a site's rotating lines (related links) cost a sort every few pages
            rare = sorted(h for h, n in learned.items() if n == count)
            for h in rare[max(0, len(rare) - (len(learned) - TEMPLATE_LINES * 3 // 4)) :]:
                del learned[h]
            count += 1
        if hour > last:
            last = hour
            self._filed.sites[hour].append(site)
        hashes = sorted(learned)
        value = _template_head(len(hashes)).pack(last, *hashes) + bytes(map(learned.__getitem__, hashes))
        self._put(_template_key(site), value, raw)

    def _exact(self, chash: bytes) -> tuple[str, _Record] | None:
        sid = self.state.get(_hash_key(chash))
        if sid is None:
            return None
        key = _page_key(sid)
        data = self.state.get(key)
        return (key, _Record.unpack(data)) if data is not None else None

    def _near(
        self, fp: Fingerprint, site: int, head: tuple[int, ...], found: list[Posting | None]
    ) -> tuple[tuple[str, _Record] | None, float, float]:
        limit = BOILERPLATE_ROOTS * _SID
        hits: dict[bytes, int] = {}
        boiler: set[int] = set()
        for h, data in zip(head, found, strict=True):
            if not data:
                continue
            if len(data) == _SID:  # the usual posting: one root (a set holds more than 8)
                hits[data] = hits.get(data, 0) + 1  # type: ignore[index, arg-type]
            elif isinstance(data, set) or len(data) >= limit:
                boiler.add(h)
            else:
                for i in range(0, len(data), _SID):
                    csid = data[i : i + _SID]
                    hits[csid] = hits.get(csid, 0) + 1
        best: tuple[str, _Record] | None = None
        best_sim = best_res = 0.0
        ranked = sorted(((n, csid) for csid, n in hits.items() if n >= CANDIDATE_HITS), reverse=True)
        for _, csid in ranked[:MAX_CANDIDATES]:
            key = _page_key(csid)
            data = self.state.get(key)
            if data is None:
                continue
            cand = _Record.unpack(data)
            sim = res = 0.0
            versions = [(cand.sketch, cand.site)]
            if cand.member:
                versions.append((cand.member, cand.member_site))
            for version, version_site in versions:
                # One site's pages share its template: more of the smaller text must be found there.
                need = self.same_site_threshold if version_site == site else self.near_threshold
                measured = overlap(fp.sketch, version, SKETCH_SIZE, self.index_sketch, boiler)
                if measured.shared >= MIN_SHARED and measured.coefficient >= need:
                    sim = max(sim, measured.coefficient)
                res = max(res, measured.resemblance)
            if sim > best_sim:
                best, best_sim, best_res = (key, cand), sim, res
        return best, round(best_sim, 4), best_res

    def _reindex(
        self, root: _Record, sketch: tuple[int, ...], head: tuple[int, ...], found: list[Posting | None]
    ) -> None:
        """Give a root a fuller version's sketch: post its smallest hashes, drop the old ones."""
        posted = min(self.posted_hashes, self.index_sketch)
        sid = root.root_id[:_SID]
        new = set(sketch[:posted]) | set(root.member[:posted])
        for h in root.sketch[:posted]:
            if h not in new:
                self._postings.remove(h, sid)
        self._index(sid, head[:posted], found[:posted])
        root.sketch = sketch

    def _index(self, sid: bytes, hashes: tuple[int, ...], found: list[Posting | None]) -> None:
        add = self._postings.add
        for h, old in zip(hashes, found, strict=True):
            add(h, sid, old)

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
            for sid in self._filed.pages.pop(hour, ()):
                page_key = _page_key(sid)
                data = self.state.get(page_key)
                if data is None:
                    continue
                record = _Record.unpack(data)
                if record.seen_at >= cutoff:
                    kept.append(sid)
                    continue
                self._forget(sid, page_key, record, meta)
                dropped += 1
            if kept:
                self._filed.pages[hour] = kept
                oldest = hour
                break  # a later hour holds later pages only
            self._expire_sites(hour)
            oldest = hour + 1
        meta.oldest_hour = oldest if meta.records else -1
        self._count_change()
        return dropped

    def expiry_due(self, now: float) -> bool:
        """Whether pages older than the window at `now` are still held (an `expire` call is due)."""
        oldest = self._sync().oldest_hour
        return 0 <= oldest <= int((now - self.window_seconds) // HOUR) - 1

    def _expire_sites(self, hour: int) -> None:
        """Drop the templates of the sites filed under `hour` that no later page has renewed."""
        for site in self._filed.sites.pop(hour, ()):
            template_key = _template_key(site)
            raw = self.state.get(template_key)
            if raw is not None and _unpack_template(raw)[0] <= hour:
                self._delete(template_key)

    def _forget(self, sid: bytes, page_key: str, record: _Record, meta: _Meta) -> None:
        if record.root:
            for h in record.posted(self.posted_hashes):
                self._postings.remove(h, sid)
            meta.roots -= 1
        hash_key = _hash_key(record.chash)
        if self.state.get(hash_key) in (sid, record.root_id[:_SID]):
            self._delete(hash_key)
        self._delete(page_key)
        meta.records -= 1

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
        """Derive the indexes and counters from the state's records and templates (one scan)."""
        meta, postings, filed, legacy = _Meta(), Postings(), Filed(), []
        for key, value in self.state.items():
            meta.size += len(key) + len(value)
            if not _current(key):
                legacy.append(key)
            elif key[0] == "a":
                record = _Record.unpack(value)
                sid = binascii.a2b_base64(key[1:] + "=")
                filed.pages[int(record.seen_at // HOUR)].append(sid)
                meta.records += 1
                if record.root:
                    meta.roots += 1
                    for h in record.posted(self.posted_hashes):
                        postings.add(h, sid, postings.get(h))
            elif key[0] == "s":
                filed.sites[_unpack_template(value)[0]].append(_SITE.unpack(binascii.a2b_base64(key[1:] + "=="))[0])
        # The window goes on from the hour it had reached (it may be ahead of the oldest page).
        legacy_meta = self.state.get("~")
        if raw:
            meta.oldest_hour = _DECISIONS.unpack_from(raw)[1]
        elif legacy_meta and len(legacy_meta) == _LEGACY_META.size:
            meta.oldest_hour = _LEGACY_META.unpack(legacy_meta)[3]
        else:
            meta.oldest_hour = filed.oldest_hour()
        self._meta, self._postings, self._filed, self._legacy = meta, postings, filed, legacy
        self._decisions = _DECISIONS.unpack_from(raw)[0] if raw else 0

    def _count_change(self) -> None:
        """Count a change that is not a decision (expiry), with the window's oldest hour."""
        raw = self.state.get(DECISIONS_KEY)
        decisions, _, last = _DECISIONS.unpack_from(raw) if raw else (0, -1, b"")
        rest = raw[_DECISIONS.size :] if raw else self._legacy_watermark()
        self._put(DECISIONS_KEY, _DECISIONS.pack(decisions + 1, self._meta.oldest_hour, last) + rest, raw)
        self._decisions = decisions + 1

    def _legacy_watermark(self) -> bytes:
        """The watermark as an owner of the layout before `~d` kept it."""
        return self.state.get("~w") or Watermark().to_bytes()

    def _delete_legacy(self) -> None:
        for _ in range(min(LEGACY_DELETES, len(self._legacy))):
            self._delete(self._legacy.pop())

    def _put(self, key: str, value: bytes, old: Any = _UNREAD) -> None:
        """Write one value unless it is already there (every write is a changelog record), keeping
        the byte count; pass `old` when the caller already read it."""
        if old is _UNREAD:
            old = self.state.get(key)
        if value == old:
            return
        self.state[key] = value  # first: a refused write leaves the count as it was
        self._meta.size += len(value) - (len(old) if old is not None else -len(key))

    def _delete(self, key: str) -> None:
        old = self.state.pop(key, None)
        if old is not None:
            self._meta.size -= len(key) + len(old)


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


@functools.cache
def _template_head(lines: int) -> struct.Struct:
    return struct.Struct(f">q{lines}I")


def _furniture(story_lines: tuple[int, ...], template: dict[int, int]) -> bool:
    """Whether most of a text's story lines are lines its site's other pages leave out.

    Both are samples of smallest hashes: a page's left-out lines reach less far up the hash
    range than the story's lines when the page leaves out more lines than the story has, so only
    the story lines within the range of the site's furniture lines are compared.
    """
    if len(template.keys() & story_lines) < FURNITURE_MIN_LINES:  # the usual case, at C speed
        return False
    furniture = [h for h, n in template.items() if n >= TEMPLATE_SEEN]
    if len(furniture) < FURNITURE_MIN_LINES:
        return False
    comparable = story_lines[: bisect_right(story_lines, max(furniture))]
    known = sum(template.get(h, 0) >= TEMPLATE_SEEN for h in comparable)
    return known >= FURNITURE_SHARE * len(comparable) and known >= FURNITURE_MIN_LINES


def _fuller(fp: Fingerprint, root_sketch: tuple[int, ...]) -> bool:
    """Whether the page has `FULLER_VERSION` times the shingles the root's sketch stands for (a
    full bottom-k sketch of k hashes whose largest is t estimates (k - 1) * 2^32 / t shingles)."""
    if len(root_sketch) < INDEX_SKETCH:
        return fp.shingles >= FULLER_VERSION * len(root_sketch)
    estimate = (len(root_sketch) - 1) * (1 << HASH_BITS) / (root_sketch[-1] + 1)
    return fp.shingles >= FULLER_VERSION * estimate


def _decision(aid: str, record: _Record) -> Decision:
    if record.root:
        return Decision(aid, None, None, 0.0, 1)
    similarity = round(record.similarity, 4)
    return Decision(aid, record.root_id.hex(), record.kind, similarity, record.copies)
