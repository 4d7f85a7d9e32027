"""What the pool computes per article for deduplication: pure, no state.

`fingerprint(article)` gives the sha256 of the normalised text (exact duplicates), a bottom-k
sketch of the story's word shingles (near duplicates, see `shingles`), and, for a page cleaned
from a text dump, the line hashes that tell a site's furniture from a story. `article_id` is the
deterministic id of a page's article.
"""

from __future__ import annotations

import functools
import hashlib
import struct
from dataclasses import dataclass

from worker.document import Article
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

FORMAT_VERSION = 3
"""Fingerprints that carry line hashes (pages cleaned from a text dump); one without them is
written in version 2, so either version reads the other's hops."""

STORY_LINES = 16
"""Hashes of the story's long lines a fingerprint carries (the smallest), to tell furniture."""

LEFT_OUT_LINES = 32
"""Hashes of the long lines the cleaner left out of the page a fingerprint carries (the smallest)."""

HASH_BYTES = HASH_BITS // 8


def pack_hashes(hashes: tuple[int, ...]) -> bytes:
    """32-bit hashes, 4 bytes each, big-endian."""
    return packed_hashes(len(hashes)).pack(*hashes)


def unpack_hashes(data: bytes) -> tuple[int, ...]:
    """Inverse of `pack_hashes` (a trailing partial hash is ignored)."""
    return packed_hashes(len(data) // HASH_BYTES).unpack_from(data)


@functools.lru_cache(maxsize=1024)  # bounded: a count per sketch size, whatever a record holds
def packed_hashes(count: int) -> struct.Struct:
    """The layout of `count` packed hashes (`pack_hashes`), to read them in place."""
    return struct.Struct(f">{count}I")


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
            return struct.pack(">B32sI", 2, digest, self.shingles) + pack_hashes(self.sketch)
        head = struct.pack(
            ">B32sIBB", FORMAT_VERSION, digest, self.shingles, len(self.story_lines), len(self.left_out)
        )
        return head + pack_hashes(self.story_lines + self.left_out + self.sketch)

    @classmethod
    def from_bytes(cls, data: bytes) -> Fingerprint:
        """Inverse of `to_bytes` (either version)."""
        version, digest, shingles = struct.unpack_from(">B32sI", data)
        if version == 2:
            return cls(digest.hex(), unpack_hashes(data[37:]), shingles)
        if version != FORMAT_VERSION:
            raise ValueError(f"unknown fingerprint format {version}")
        story, left = struct.unpack_from(">BB", data, 37)
        hashes = unpack_hashes(data[39:])
        return cls(
            digest.hex(), hashes[story + left :], shingles, hashes[:story], hashes[story : story + left]
        )


def fingerprint(article: Article, page_text: str | None = None) -> Fingerprint:
    """Exact hash of the normalised text plus a bottom-k sketch of the story's shingles; with the
    page's text dump, also the hashes that tell a site's furniture from a story (see
    `policy.furniture`)."""
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
