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
candidate is then verified on the two stored sketches (overlap coefficient below the common
bottom-k threshold) before anything is merged. Shingles that several different stories share are
boilerplate (footers, cookie notes, sign-up boxes) and count for nothing, and two pages of the
same site must overlap more than pages of different sites, because their template adds overlap
of its own.

State layout (keys are short ASCII strings, values are packed bytes):

    a<page id>   one record per decided page: its decision; a cluster root also keeps its sketch
    h<text hash> content hash -> root page id (exact duplicates)
    p<bucket>    sketch-hash bucket -> root page ids (candidate lookup)
    ~            counters (records, roots, bytes) so metrics never scan the table

Only roots (first-seen articles) are indexed for near-duplicate lookup, so every duplicate points
at its cluster root, never at another duplicate.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from worker.document import Article
from worker.steps.dedup_text import (
    HASH_BITS,
    SKETCH_SIZE,
    bottom_k,
    content_hash,
    shingle_hashes,
    story_tokens,
)

FORMAT_VERSION = 1

NEAR_THRESHOLD = 0.4
"""Least share of the smaller text's shingle sample found in the other text (different sites)."""

SAME_SITE_THRESHOLD = 0.75
"""The same for two pages of one site, whose shared template adds overlap of its own."""

MIN_SHARED = 3
"""Least number of shared (non-boilerplate) sample hashes to call two texts one story."""

BOILERPLATE_ROOTS = 3
"""A shingle hash found in this many different stories is boilerplate and does not count."""

MAX_POSTING = 32
"""A bucket stops growing at this many roots (it is boilerplate by then)."""

MAX_CANDIDATES = 8
"""Candidates verified per decision, the ones sharing most sample hashes first."""


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What the pool computes per article: exact hash, near-duplicate sketch, shingle count."""

    content_hash: str  # hex sha256 of the normalised text
    sketch: tuple[int, ...] = ()  # bottom-k 48-bit shingle hashes of the story, ascending
    shingles: int = 0  # distinct story shingles (the sketch holds min(shingles, k) of them)

    def to_bytes(self) -> bytes:
        """Compact binary form: version, hash, shingle count, then 6 bytes per sketch hash."""
        head = struct.pack(">B32sI", FORMAT_VERSION, bytes.fromhex(self.content_hash), self.shingles)
        return head + _pack_hashes(self.sketch)

    @classmethod
    def from_bytes(cls, data: bytes) -> Fingerprint:
        """Inverse of `to_bytes`."""
        version, digest, shingles = struct.unpack_from(">B32sI", data)
        if version != FORMAT_VERSION:
            raise ValueError(f"unknown fingerprint format {version}")
        return cls(digest.hex(), _unpack_hashes(data[37:]), shingles)


def fingerprint(article: Article) -> Fingerprint:
    """Exact hash of the normalised text plus a bottom-k sketch of the story's shingles."""
    every, story = story_tokens(article.text)
    hashes = shingle_hashes(story)
    return Fingerprint(content_hash(every), bottom_k(hashes, SKETCH_SIZE), len(hashes))


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


# --- packed state -------------------------------------------------------------------------------

_HASH_BYTES = HASH_BITS // 8
_KINDS: tuple[Literal["exact", "near"] | None, ...] = (None, "exact", "near")
_ROOT = 0x80
# flags | root article id | seen_at | copies | similarity | site | content hash prefix
_RECORD = struct.Struct(">B16sdIfI8s")
_META = struct.Struct(">QQQ")
_META_KEY = "~"


def _pack_hashes(hashes: tuple[int, ...]) -> bytes:
    return b"".join(h.to_bytes(_HASH_BYTES, "big") for h in hashes)


def _unpack_hashes(data: bytes) -> tuple[int, ...]:
    n = _HASH_BYTES
    return tuple(int.from_bytes(data[i : i + n], "big") for i in range(0, len(data) - n + 1, n))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _page_key(raw_id: bytes) -> str:
    return "a" + _b64(raw_id[:8])


def _hash_key(chash: bytes) -> str:
    return "h" + _b64(chash[:8])


def _bucket_key(h: int) -> str:
    return "p" + _b64((h >> (HASH_BITS - 32)).to_bytes(4, "big"))


def site_of(url: str) -> int:
    """32-bit hash of the page's host without `www.` (two pages of one site share a template)."""
    host = (urlsplit(url).hostname or "").removeprefix("www.")
    return int.from_bytes(hashlib.blake2b(host.encode(), digest_size=4).digest(), "big")


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

    def pack(self) -> bytes:
        flags = (_ROOT if self.root else 0) | _KINDS.index(self.kind)
        head = _RECORD.pack(
            flags, self.root_id, self.seen_at, self.copies, self.similarity, self.site, self.chash
        )
        return head + _pack_hashes(self.sketch) if self.root else head

    @classmethod
    def unpack(cls, data: bytes) -> _Record:
        flags, root_id, seen_at, copies, sim, site, chash = _RECORD.unpack_from(data)
        root = bool(flags & _ROOT)
        sketch = _unpack_hashes(data[_RECORD.size :]) if root else ()
        return cls(root, _KINDS[flags & 0x3], root_id, seen_at, copies, sim, site, chash, sketch)


def overlap(
    a: tuple[int, ...], b: tuple[int, ...], k: int = SKETCH_SIZE, ignore: frozenset[int] = frozenset()
) -> tuple[float, int]:
    """Overlap coefficient |A∩B|/min(|A|,|B|) estimated from two bottom-k sketches, and the
    number of shared sample hashes it rests on.

    Only hashes below both sketches' thresholds are compared, so the sample is consistent: a hash
    below the threshold is in a sketch exactly when it is in that text. Hashes in `ignore`
    (boilerplate) are left out on both sides.
    """
    ta = a[-1] if len(a) >= k else math.inf
    tb = b[-1] if len(b) >= k else math.inf
    t = min(ta, tb)
    sa = {h for h in a if h <= t and h not in ignore}
    sb = {h for h in b if h <= t and h not in ignore}
    smaller = min(len(sa), len(sb))
    if not smaller:
        return 0.0, 0
    shared = len(sa & sb)
    return shared / smaller, shared


class DedupIndex:
    """Exact and near-duplicate decisions over a mapping of state, with a time window."""

    def __init__(
        self,
        state: MutableMapping[str, bytes],
        window_seconds: float = 7 * 86400,
        *,
        near_threshold: float = NEAR_THRESHOLD,
        same_site_threshold: float = SAME_SITE_THRESHOLD,
        sketch_size: int = SKETCH_SIZE,
    ) -> None:
        self.state = state
        self.window_seconds = window_seconds
        self.near_threshold = near_threshold
        self.same_site_threshold = same_site_threshold
        self.sketch_size = sketch_size
        meta = state.get(_META_KEY)
        if meta is None:
            self._records, self._roots, self._bytes = self._recount()
        else:
            self._records, self._roots, self._bytes = _META.unpack(meta)

    # -- metrics ----------------------------------------------------------------------------------

    def entries(self) -> int:
        """Pages currently remembered (roots and duplicates)."""
        return self._records

    def roots(self) -> int:
        """Articles currently indexed for near-duplicate lookup (cluster roots)."""
        return self._roots

    def state_bytes(self) -> int:
        """Serialized size of the whole state: key bytes plus value bytes."""
        return self._bytes + len(_META_KEY) + _META.size

    # -- the decision -----------------------------------------------------------------------------

    def decide(self, url: str, fp: Fingerprint, seen_at: float) -> Decision:
        """Exact or near duplicate of an earlier story, or a new story.

        Idempotent: deciding the same url with the same content again (a replay after a crash)
        returns the same decision and does not change the state or the counts.
        """
        aid = article_id(url, fp.content_hash)
        raw_id = bytes.fromhex(aid)
        page_key = _page_key(raw_id)
        known = self.state.get(page_key)
        if known is not None:
            return _decision(aid, _Record.unpack(known))

        chash = bytes.fromhex(fp.content_hash)
        site = site_of(url)
        match = self._exact(chash) if fp.shingles or fp.sketch else None
        kind: Literal["exact", "near"] | None = "exact" if match else None
        similarity = 1.0
        boiler: set[int] = set()
        buckets: dict[str, list[bytes]] = {}
        if match is None:
            match, similarity = self._near(fp.sketch, site, boiler, buckets)
            kind = "near" if match else None

        if match is not None:
            root_key, root = match
            root.copies += 1
            self._put(root_key, root.pack())
            self._put(_hash_key(chash), root.root_id[:8])
            record = _Record(
                False, kind, root.root_id, seen_at, root.copies, similarity, site, chash[:8], ()
            )
        else:
            record = _Record(True, None, raw_id, seen_at, 1, 0.0, site, chash[:8], fp.sketch)
            self._index(raw_id[:8], fp.sketch, buckets)
            self._put(_hash_key(chash), raw_id[:8])
            self._roots += 1
        self._records += 1
        self._put(page_key, record.pack())  # last: a replay redoes everything before it
        self._save_meta()
        return _decision(aid, record)

    def _exact(self, chash: bytes) -> tuple[str, _Record] | None:
        sid = self.state.get(_hash_key(chash))
        if sid is None:
            return None
        key = "a" + _b64(sid)
        data = self.state.get(key)
        return (key, _Record.unpack(data)) if data is not None else None

    def _near(
        self,
        sketch: tuple[int, ...],
        site: int,
        boiler: set[int],
        buckets: dict[str, list[bytes]],
    ) -> tuple[tuple[str, _Record] | None, float]:
        hits: dict[bytes, int] = {}
        for h in sketch:
            bkey = _bucket_key(h)
            data = self.state.get(bkey)
            sids = [data[i : i + 8] for i in range(0, len(data), 8)] if data else []
            buckets[bkey] = sids
            if len(sids) >= BOILERPLATE_ROOTS:
                boiler.add(h)
                continue
            for sid in sids:
                hits[sid] = hits.get(sid, 0) + 1
        best: tuple[str, _Record] | None = None
        best_sim = 0.0
        ranked = sorted((n, sid) for sid, n in hits.items() if n >= MIN_SHARED)
        ignore = frozenset(boiler)
        for _, sid in ranked[::-1][:MAX_CANDIDATES]:
            key = "a" + _b64(sid)
            data = self.state.get(key)
            if data is None:
                continue
            cand = _Record.unpack(data)
            sim, shared = overlap(sketch, cand.sketch, self.sketch_size, ignore)
            need = self.same_site_threshold if cand.site == site else self.near_threshold
            if shared >= MIN_SHARED and sim >= need and sim > best_sim:
                best, best_sim = (key, cand), sim
        return best, round(best_sim, 4)

    def _index(self, sid: bytes, sketch: tuple[int, ...], buckets: dict[str, list[bytes]]) -> None:
        for h in sketch:
            bkey = _bucket_key(h)
            sids = buckets.get(bkey)
            if sids is None:
                data = self.state.get(bkey)
                sids = [data[i : i + 8] for i in range(0, len(data), 8)] if data else []
            if sid in sids or len(sids) >= MAX_POSTING:
                continue
            sids.append(sid)
            self._put(bkey, b"".join(sids))

    # -- the window -------------------------------------------------------------------------------

    def expire(self, now: float) -> int:
        """Forget pages seen before `now - window_seconds`; returns how many were dropped."""
        cutoff = now - self.window_seconds
        old: list[tuple[str, _Record]] = []
        for key in list(self.state.keys()):
            if key.startswith("a"):
                data = self.state.get(key)
                if data is not None:
                    record = _Record.unpack(data)
                    if record.seen_at < cutoff:
                        old.append((key, record))
        for key, record in old:
            own_sid = base64.urlsafe_b64decode(key[1:] + "=")
            hkey = _hash_key(record.chash)
            if record.root:
                for h in record.sketch:
                    self._unindex(_bucket_key(h), own_sid)
                self._roots -= 1
            target = self.state.get(hkey)
            if target is not None and target in (own_sid, record.root_id[:8]):
                self._delete(hkey)
            self._delete(key)
            self._records -= 1
        if old:
            self._save_meta()
        return len(old)

    def _unindex(self, bkey: str, sid: bytes) -> None:
        data = self.state.get(bkey)
        if not data:
            return
        sids = [data[i : i + 8] for i in range(0, len(data), 8) if data[i : i + 8] != sid]
        if sids:
            self._put(bkey, b"".join(sids))
        else:
            self._delete(bkey)

    # -- bookkeeping ------------------------------------------------------------------------------

    def _put(self, key: str, value: bytes) -> None:
        old = self.state.get(key)
        if old is None:
            self._bytes += len(key) + len(value)
        else:
            self._bytes += len(value) - len(old)
        self.state[key] = value

    def _delete(self, key: str) -> None:
        old = self.state.pop(key, None)
        if old is not None:
            self._bytes -= len(key) + len(old)

    def _save_meta(self) -> None:
        self.state[_META_KEY] = _META.pack(self._records, self._roots, self._bytes)

    def _recount(self) -> tuple[int, int, int]:
        records = roots = size = 0
        for key, value in self.state.items():
            if key == _META_KEY:
                continue
            size += len(key.encode()) + len(value)
            if key.startswith("a"):
                records += 1
                roots += bool(value[0] & _ROOT)
        return records, roots, size


def _decision(aid: str, record: _Record) -> Decision:
    if record.root:
        return Decision(aid, None, None, 0.0, 1)
    similarity = round(record.similarity, 4)
    return Decision(aid, record.root_id.hex(), record.kind, similarity, record.copies)
