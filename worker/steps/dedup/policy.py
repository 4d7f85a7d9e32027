"""What counts as the same story: the dedup decision's rules, apart from how the state is kept.

Pure functions over fingerprints and what the state knows of earlier stories (their sketches and
sites, a site's template); `index.DedupIndex` finds those in the state, asks these rules, and
writes what they decide.

Near duplicates are decided on *containment*, not Jaccard: a syndicated copy that keeps only the
first half of a story, or wraps it in another site's junk, still has most of its (smaller) shingle
sample inside the original's. Each candidate is verified on the two sketches (overlap coefficient
below the common bottom-k threshold) before anything is merged. Shingles that several different
stories share are boilerplate (footers, cookie notes, sign-up boxes) and count for nothing. Two
pages of the same site share that site's template, so for them more of the smaller text must be
found, and a sentence or two found again on the same site is not a copy.

A cluster is represented by up to two versions of its story: the root's sketch, replaced by a
fuller version when one arrives (the original after a cut copy that came first), and a second,
different version (another lead, other paragraphs kept). Both are verified against.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass
from typing import NamedTuple

from worker.steps.dedup.fingerprint import Fingerprint
from worker.steps.dedup.shingles import HASH_BITS, SKETCH_SIZE

INDEX_SKETCH = 80
"""Shingle hashes a root keeps for verification (a prefix of the fingerprint's sketch)."""

CANDIDATE_HITS = 1
"""Bucket hits that make a root a candidate (it is then verified on the whole sketches)."""

MAX_CANDIDATES = 8
"""Candidates verified per decision, the ones sharing most sample hashes first."""

BOILERPLATE_ROOTS = 3
"""A shingle hash found in this many different stories is boilerplate and does not count."""

NEAR_THRESHOLD = 0.35
"""Least share of the smaller text's shingle sample found in the other text (different sites)."""

SAME_SITE_THRESHOLD = 0.6
"""Least share of the smaller text's sample in the other for two pages of one site: their shared
template alone makes the smaller one look partly contained (different stories of one site reach
0.52 on the dev set), so more of it must be found than across sites."""

MIN_SHARED = 3
"""Least number of shared (non-boilerplate) sample hashes to call two texts one story."""

MIN_NEAR_SHINGLES = 40
"""Texts with fewer distinct shingles (about two sentences) are matched exactly, never near."""

FULLER_VERSION = 1.25
"""A near duplicate with this many times the root's shingles, that holds at least
`FULLER_CONTAINS` of the root's sample, is a fuller version of the story (the original after a
cut copy, a copy with the lead the first one dropped): the root keeps its sketch from then on, so
later copies are compared with the fullest text seen rather than with the first one."""

FULLER_CONTAINS = 0.5

MEMBER_RESEMBLANCE = 0.8
"""A near duplicate that resembles the root (as a whole) less than this, and is not a fuller
version of it, is another version of the story (another lead, other paragraphs kept): the root
keeps its sketch as well, once, so later copies are compared with both versions and the story is
found through either."""

TEMPLATE_LINES = 64
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

FULLER = 0x4
"""What a root takes from a near copy: its sketch (a fuller version of the story)."""
SECOND = 0x8
"""What a root takes from a near copy: its sketch as the root's second version."""


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


@dataclass(frozen=True, slots=True)
class Version:
    """One version of a known story: the sketch it is compared through, and its page's site."""

    sketch: tuple[int, ...]
    site: int


@dataclass(frozen=True, slots=True)
class Policy:
    """The figures of the rules (defaults: the module's constants)."""

    near_threshold: float = NEAR_THRESHOLD
    same_site_threshold: float = SAME_SITE_THRESHOLD
    index_sketch: int = INDEX_SKETCH
    min_near_shingles: int = MIN_NEAR_SHINGLES

    def matchable(self, fp: Fingerprint, template: dict[int, int]) -> bool:
        """Whether a text may be a near copy (and, as a new story, be found by later copies).

        Too short a text is matched exactly only: it is neither indexed nor a candidate; so is a
        text its site's other pages leave out around their own stories (`furniture`).
        """
        return fp.shingles >= self.min_near_shingles and not furniture(fp.story_lines, template)

    @staticmethod
    def exact_counts(matchable: bool, site: int, root_site: int) -> bool:
        """Whether the same text as a known story's is a copy of it: a sentence or two (or the
        site's furniture) found again on the same site is that site's boilerplate, not a story."""
        return matchable or root_site != site

    def likeness(
        self, fp: Fingerprint, site: int, versions: tuple[Version, ...], boiler: set[int]
    ) -> tuple[float, float]:
        """How much of a known story the page holds: the best containment among its versions that
        passes the rules (0.0 when none does), and the best resemblance (as a whole)."""
        sim = res = 0.0
        for version in versions:
            # One site's pages share its template: more of the smaller text must be found there.
            need = self.same_site_threshold if version.site == site else self.near_threshold
            measured = overlap(fp.sketch, version.sketch, SKETCH_SIZE, self.index_sketch, boiler)
            if measured.shared >= MIN_SHARED and measured.coefficient >= need:
                sim = max(sim, measured.coefficient)
            res = max(res, measured.resemblance)
        return sim, res

    @staticmethod
    def takes(
        fp: Fingerprint, similarity: float, resemblance: float, root: Version, has_second: bool
    ) -> int:
        """What the root of a story takes from a near copy of it: `FULLER` (the copy's sketch
        replaces its own), `SECOND` (kept as its second version), or 0."""
        if similarity >= FULLER_CONTAINS and fuller(fp, root.sketch):
            return FULLER
        if not has_second and resemblance < MEMBER_RESEMBLANCE:
            return SECOND
        return 0


def fuller(fp: Fingerprint, root_sketch: tuple[int, ...]) -> bool:
    """Whether the page has `FULLER_VERSION` times the shingles the root's sketch stands for (a
    full bottom-k sketch of k hashes whose largest is t estimates (k - 1) * 2^32 / t shingles)."""
    if len(root_sketch) < INDEX_SKETCH:
        return fp.shingles >= FULLER_VERSION * len(root_sketch)
    estimate = (len(root_sketch) - 1) * (1 << HASH_BITS) / (root_sketch[-1] + 1)
    return fp.shingles >= FULLER_VERSION * estimate


def learn_template(learned: dict[int, int], left_out: tuple[int, ...]) -> None:
    """Count the lines a page of a site left out in the site's template (`learned`, updated in
    place), which keeps the `TEMPLATE_LINES` most often left out."""
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


def furniture(story_lines: tuple[int, ...], template: dict[int, int]) -> bool:
    """Whether most of a text's story lines are lines its site's other pages leave out.

    Both are samples of smallest hashes: a page's left-out lines reach less far up the hash
    range than the story's lines when the page leaves out more lines than the story has, so only
    the story lines within the range of the site's furniture lines are compared.
    """
    if len(template.keys() & story_lines) < FURNITURE_MIN_LINES:  # the usual case, at C speed
        return False
    lines = [h for h, n in template.items() if n >= TEMPLATE_SEEN]
    if len(lines) < FURNITURE_MIN_LINES:
        return False
    comparable = story_lines[: bisect_right(story_lines, max(lines))]
    known = sum(template.get(h, 0) >= TEMPLATE_SEEN for h in comparable)
    return known >= FURNITURE_SHARE * len(comparable) and known >= FURNITURE_MIN_LINES
