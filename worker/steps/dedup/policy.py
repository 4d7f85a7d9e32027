"""What counts as the same story: the dedup decision's rules, apart from how the state is kept.

Pure functions over fingerprints and what the state knows of earlier stories (a cluster root's
own text and its firm copies', a site's template); `index.DedupIndex` finds those
in the state, asks these rules, and writes what they decide.

The evidence is the story's own text, never the site's:

- Near duplicates are decided on *containment*, not Jaccard: a syndicated copy that keeps only
  the first half of a story, or wraps it in another site's junk, still has most of its (smaller)
  shingle sample inside the original's. Each candidate is verified on the two sketches (overlap
  coefficient below the common bottom-k threshold).
- Shingles that several different stories share are boilerplate (footers, cookie notes, sign-up
  boxes) and count for nothing.
- A text under a tenth of the other's size is no copy of it, nor the other of it: the two would
  meet, and the verdict rest on enough of the smaller text, in some arrival orders only
  (`SIZE_RATIO`).
- Two pages of one site share its template, and a page of a site can carry the site's own story
  (its title, key points, a block of its text) around another story: for them the texts must be
  the same as a whole (resemblance), not merely one inside the other. That holds for a page and
  a cluster compared through a page of its site too, but for two copies of another site's story
  on one host: when the root is another site's page and the host's kept pages are inside it, the
  host's page is judged against the other site's text, and must be inside it (`Policy.through`);
  a page of a site the cluster holds any
  copy of must be mostly the text it is compared with. A doubtful copy (a part of a story in
  it) must be more than a block of a page of mostly other text (a story's key points or lede
  shown above another one). A text the site's other pages leave out
  (`furniture`), or a sentence or two found again on the same site, is not a story.
- No chaining: a page is compared with the own texts of a cluster's root and of up to two of its
  firm copies (most of one text inside the other, or a fuller copy holding a good part of the
  text it is like, from another site), never with a text made of several pages, so that which
  page came first (a cut copy, the original) matters less; any other doubtful copy adds
  nothing to what later pages are compared with, so one doubtful merge cannot pull in a second
  story. A page must share some of its text with every
  text the cluster keeps (a firm copy that held a second story cannot pull that story in), and
  a page that is a copy of two known stories whose own texts are different holds both (a host
  page that kept its own story around a syndicated one): it is a copy of neither.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from worker.steps.dedup.fingerprint import Fingerprint
from worker.steps.dedup.shingles import SKETCH_SIZE

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

SAME_SITE_RESEMBLANCE = 1.0
"""Least share of the *larger* text's sample found in the other for two pages of one site (or a
page and a cluster compared through a page of its site): their shared template, or the site's own story left
around another one, makes one page look contained in the other, so the two must be the same text
as a whole: at 1.0, every sampled shingle of either is in the other."""

MEMBER_SITE_RESEMBLANCE = 0.5
"""Least share of the *larger* text's sample found in the other for a page of a site the cluster
holds a copy of (a copy whose text it does not keep), besides `NEAR_THRESHOLD`: that site's
template can carry the story's text (its own story, or its key points) around another story, so
the page must be mostly the text it is compared with, not a block of it among other text."""

THROUGH_OTHER_SITE = MEMBER_SITE_RESEMBLANCE
"""Least share of the *larger* text's sample found in the other for a page of a site the cluster
keeps a text of, compared with a kept text of *another* site when the cluster's root is another
site's page too (two copies of another site's story on one host): as a page of a site the story
was seen on, besides `NEAR_THRESHOLD`, and the page must be the smaller text, inside the other
site's. The site's template carrying the story's text around another story makes a page of it
the *larger* text; a page the same as a kept text of its own site is still a copy, and when the
root is the site's own page (the site's own story, which its template can carry) every text is
still asked `SAME_SITE_RESEMBLANCE`. At 1.0: every text of a cluster that keeps a page of the
site is asked the same text."""

DOUBTFUL_RESEMBLANCE = 0.2
"""Least share of the *larger* text's sample found in the other for a doubtful copy (under
`FIRM_COPY` of the smaller text in the other): part of a story inside a page that is four fifths
or more other text is a page showing that story's text (its key points or lede under another
story, a host page that kept its own story beside a syndicated one), not evidence that the page
tells that story. A firm copy (most of the smaller text inside) is judged on containment alone."""

SITES = 16
"""Sites of its copies a cluster root remembers (4 bytes each); a cluster seen on more sites
judges pages of the others as any other site's."""

MIN_SHARED = 3
"""Least number of shared (non-boilerplate) sample hashes to call two texts one story."""

MIN_NEAR_SHINGLES = 40
"""Texts with fewer distinct shingles (about two sentences) are matched exactly, never near."""

FIRM_COPY = 0.6
"""Least containment that makes a near copy firm enough for its text to stand for the story."""

FULLER_COPY = 0.4
"""Least containment that makes a near copy that is the *larger* text (the story's kept text
inside it: a fuller copy after a cut one) firm enough for its text to stand for the story too."""

KEEP_RESEMBLANCE = 0.8
"""A firm copy that resembles the root as a whole this much or more adds no text of its own."""

VERSIONS = 2
"""Firm copies' own texts a cluster keeps besides its root's."""

CONSISTENT = 0.2
"""Least share of the smaller text a page must have in common with *every* text a cluster is
compared through (its root's and its firm copies'), besides being a copy of one of them: a page
that is like one kept text and shares next to nothing with another is a second story (a firm copy
that held two), not this one."""

DISTINCT = 0.1
"""Two known stories whose own texts share less than this (of the smaller) are different stories:
a page found a copy of both holds two stories (a host page that kept its own story around a
syndicated one), and which of them it is cannot be told from its text."""

TEMPLATE_LINES = 64
"""Line hashes a site's template keeps, with how many of its pages left each out: room for all
the furniture lines a page can bring (the same ones on every page) and as many more."""

TEMPLATE_SEEN = 2
"""A line left out of this many pages of a site is that site's furniture."""

TEMPLATE_COUNT = TEMPLATE_SEEN + 1
"""Counts stop here: a line left out often enough changes its site's template no more."""

FURNITURE_SHARE = 0.9
"""A text with at least this share of its sampled story lines in its site's furniture (and at
least `FURNITURE_MIN_LINES` of them) is the site's furniture, not a story: the cleaner kept a
block that the site's other pages show around their own stories (a comment policy, a terms
notice: nearly every line of it). A page whose template kept the site's own title, key points
and headlines above a syndicated body has half or more of its sampled lines from the template
when the body is short, and still holds a story: it is judged on its text like any page (the
same-site and doubtful-copy rules are what keep its template's story out of the verdict)."""

FURNITURE_MIN_LINES = 3

SIZE_RATIO = 0.1
"""Least size of the smaller text, as a share of the larger (both estimated from their kept
hashes), for a near verdict between them. A text under a tenth of the other cannot be told a
copy the same way whichever of them came first: the candidate lookup meets them only when one of
the larger text's 16 posted hashes (or of its 16 looked up) falls in the smaller text (about
16 × the share of the time) and the verdict rests on the few of the smaller text's shingles under
the larger text's 80 kept hashes (80 × the share: 8 at a tenth, under 3 at a twentieth), so one
order joins them and another does not. Such a page is nine tenths or more other text: a host page
showing the story among its own."""



class Overlap(NamedTuple):
    """How much two texts share, estimated from their sketches."""

    coefficient: float  # |A∩B| / min(|A|, |B|): containment of the smaller text in the other
    shared: int  # sample hashes the estimate rests on
    resemblance: float  # |A∩B| / max(|A|, |B|): containment of the larger text in the other
    larger: bool = False  # the first text is the larger (its sample is)


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
    return Overlap(shared / smaller, shared, shared / larger, len(sa) > len(sb))


@dataclass(frozen=True, slots=True)
class Version:
    """One page's own text of a story, as a sketch, and the page's site."""

    sketch: tuple[int, ...]
    site: int


@dataclass(frozen=True, slots=True)
class Known:
    """What the state knows of a cluster for judging a page against it: the own texts of its root
    (first) and of its firm copies (`Policy.keeps`)."""

    versions: tuple[Version, ...]
    sites: tuple[int, ...] = ()  # the sites of the cluster's other pages (its copies)

    @property
    def site(self) -> int:
        """The root's site."""
        return self.versions[0].site

    def holds(self, site: int) -> bool:
        """Whether a text the cluster is compared through is a page of `site`."""
        return any(version.site == site for version in self.versions)

    def seen_on(self, site: int) -> bool:
        """Whether the cluster holds a page of `site` (a copy whose text it does not keep)."""
        return site in self.sites


class Likeness(NamedTuple):
    """A page's verified likeness to a known story (the root's own text)."""

    similarity: float  # containment of the smaller text in the other
    resemblance: float  # containment of the larger text in the other
    fuller: bool = False  # the page is the larger text: the known one is (mostly) inside it


@dataclass(frozen=True, slots=True)
class Policy:
    """The figures of the rules (defaults: the module's constants)."""

    near_threshold: float = NEAR_THRESHOLD
    same_site_resemblance: float = SAME_SITE_RESEMBLANCE
    index_sketch: int = INDEX_SKETCH
    min_near_shingles: int = MIN_NEAR_SHINGLES
    firm_copy: float = FIRM_COPY
    fuller_copy: float = FULLER_COPY
    consistent: float = CONSISTENT
    distinct: float = DISTINCT
    member_site_resemblance: float = MEMBER_SITE_RESEMBLANCE
    doubtful_resemblance: float = DOUBTFUL_RESEMBLANCE
    through_other_site: float = THROUGH_OTHER_SITE
    furniture_share: float = FURNITURE_SHARE
    size_ratio: float = SIZE_RATIO

    def matchable(self, fp: Fingerprint, template: dict[int, int]) -> bool:
        """Whether a text may be a near copy (and, as a new story, be found by later copies).

        Too short a text is matched exactly only: it is neither indexed nor a candidate; so is a
        text its site's other pages leave out around their own stories (`furniture`).
        """
        return fp.shingles >= self.min_near_shingles and not furniture(fp.story_lines, template, self.furniture_share)

    @staticmethod
    def exact_counts(matchable: bool, site: int, known: Known) -> bool:
        """Whether the same text as a known story's is a copy of it: a sentence or two (or the
        site's furniture) found again on a site the story was seen on is that site's
        boilerplate, not a story."""
        return matchable or not known.holds(site)

    def likeness(self, fp: Fingerprint, site: int, known: Known, ignore: set[int]) -> Likeness | None:
        """The page's likeness to a known story if the rules call it the same story, else None.

        `ignore`: the hashes that are not evidence (boilerplate).
        """
        same_site = known.holds(site)
        through = same_site and self.through(site, known, ignore)
        member_site = not same_site and known.seen_on(site)
        best: Likeness | None = None
        coefficients: list[float] = []  # each kept text's, measured once for the check below
        size: float | None = None  # the page's, estimated as a kept text's (`text_size`)
        for version in known.versions:
            measured = overlap(fp.sketch, version.sketch, SKETCH_SIZE, self.index_sketch, ignore)
            coefficients.append(measured.coefficient)
            if measured.shared < MIN_SHARED:
                continue
            if size is None:
                size = text_size(fp.sketch, self.index_sketch)
            other = text_size(version.sketch, self.index_sketch)
            if min(size, other) < self.size_ratio * max(size, other):
                continue  # one text under a tenth of the other: no verdict in every order, so none
            if through and version.site != site:
                # Two copies of another site's story on one host: the page is judged against the
                # other site's text as a page of a site the story was seen on, and must be inside
                # it (the host's template carrying that text around another story is larger).
                if (
                    measured.coefficient < self.near_threshold
                    or measured.resemblance < self.through_other_site
                    or measured.larger
                ) and measured.resemblance < self.same_site_resemblance:
                    continue
            elif same_site:
                # One site's pages share its template: the texts must be the same as a whole.
                if measured.resemblance < self.same_site_resemblance:
                    continue
            elif measured.coefficient < self.near_threshold:
                continue
            elif measured.coefficient < self.firm_copy and measured.resemblance < self.doubtful_resemblance:
                # A block of one text inside a page of mostly other text (a site's page showing
                # another story's key points or lede, or keeping its own story beside one).
                continue
            elif member_site and measured.resemblance < self.member_site_resemblance:
                # A page of a site the story was seen on: the site's page may carry the story's
                # text (the site's own story) around another one, so it must be mostly that text.
                continue
            like = Likeness(measured.coefficient, measured.resemblance, measured.larger)
            if best is None or like > best:
                best = like
        if best is None or len(known.versions) < 2:
            return best
        if min(coefficients) < self.consistent:
            return None  # like one kept text, a stranger to another: not the story they share
        return best

    def through(self, site: int, known: Known, ignore: set[int]) -> bool:
        """Whether a page of `site`, a site the cluster keeps a text of, may be judged against the
        cluster's texts of other sites as a page of a site the story was seen on
        (`through_other_site`): only when the root is another site's page and every kept text of
        `site` is inside the root's text (no fuller than it). A kept page of the site that is
        larger than the root can be the site's template (its own story) around another story's
        text, and the site's next page, the site's own story, would then join through it."""
        root = known.versions[0]
        if root.site == site:
            return False
        return not any(
            version.site == site
            and overlap(version.sketch, root.sketch, self.index_sketch, self.index_sketch, ignore).larger
            for version in known.versions[1:]
        )

    def choose(self, found: list[tuple[Likeness, Known]], ignore: set[int]) -> int | None:
        """Which of the known stories a page is like (`found`, each the rules called the same
        story) it is a copy of: the most like, unless it is also like a story whose own text is
        a different one (`distinct`): a page holding two stories is a copy of neither."""
        if not found:
            return None
        best = max(range(len(found)), key=lambda i: found[i][0])  # the first of equals
        mine = found[best][1].versions[0].sketch
        for i, (_, known) in enumerate(found):
            if i != best and (
                overlap(mine, known.versions[0].sketch, self.index_sketch, self.index_sketch, ignore).coefficient
                < self.distinct
            ):
                return None
        return best

    def keeps(self, like: Likeness, site: int, known: Known) -> bool:
        """Whether a cluster keeps a near copy's own text as a version of its story, which later
        pages are compared with too: only a firm copy (most of the smaller text inside the other,
        from a site the cluster had no page of) that adds text of its own (it does not resemble
        the root as a whole), and at most `VERSIONS` of them. A doubtful copy never does, so it
        cannot pull in a second story."""
        return (
            (like.similarity >= self.firm_copy or (like.fuller and like.similarity >= self.fuller_copy))
            and like.resemblance < KEEP_RESEMBLANCE
            and not known.holds(site)
            and len(known.versions) <= VERSIONS
        )

def with_site(sites: tuple[int, ...], site: int, own: int) -> tuple[int, ...]:
    """A root's copies' sites with one more copy's `site` (`own`: the root's), at most `SITES`."""
    if site == own or site in sites or len(sites) >= SITES:
        return sites
    return (*sites, site)


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


def furniture(story_lines: tuple[int, ...], template: dict[int, int], share: float = FURNITURE_SHARE) -> bool:
    """Whether (nearly) all of a text's story lines, `share` of them, are lines its site's other
    pages leave out.

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
    return known >= share * len(comparable) and known >= FURNITURE_MIN_LINES


def text_size(sketch: tuple[int, ...], k: int) -> float:
    """The number of distinct shingles of a text, estimated from the `k` smallest hashes of its
    sketch (all of them when it holds fewer): a page's and a root's kept text are estimated
    alike, so two texts compare the same whichever of them came first."""
    if len(sketch) < k:
        return float(len(sketch))
    return (k - 1) * 4294967296.0 / max(1, sketch[k - 1])


def may_be_like(sample: set[int], kept: Iterable[int]) -> bool:
    """Whether a page whose sketch holds the hashes `sample` can be like a known story whose kept
    texts (its root's and its firm copies') hold the hashes `kept`: `Policy.likeness` asks for
    `MIN_SHARED` shared hashes with one of those texts, and they are among these. A necessary
    condition only, cheap enough to leave out before a candidate is unpacked the many roots that
    share one posted hash with the page by chance."""
    return len(sample.intersection(kept)) >= MIN_SHARED
