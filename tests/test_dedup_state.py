"""The dedup state's layout: facts in the mapping (each write a changelog record), indexes derived
in memory; a rebuild and a cut-short owner decide alike."""

from __future__ import annotations

import asyncio
import gzip
import random
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import orjson
import pytest
from test_dedup import T0, decide, page, story

from worker.document import PAGE_KINDS, Origin
from worker.runtime.compute import InlineCompute
from worker.runtime.metrics import Metrics
from worker.settings import Settings
from worker.stages import Stages
from worker.steps.dedup.index import DECISIONS_KEY, Decision, DedupIndex, _template_key
from worker.steps.dedup.policy import Policy
from worker.steps.dedup.postings import unpack_ids

FIXTURES = Path(__file__).parent / "fixtures" / "dedup"
DEV_PAGES = FIXTURES / "dev-pages.jsonl.gz"
BROKER = 1_790_000_000.0  # the broker's time of every page (each has its own fetched_at)


def _lines() -> list[bytes]:
    return [line for line in gzip.decompress(DEV_PAGES.read_bytes()).splitlines() if line.strip()]


def derived(index: DedupIndex) -> tuple[Any, ...]:
    """What an index derived from its state, in a form independent of the order it was built in."""
    index.entries()  # brought up to date with the state first
    memory = index._memory
    assert memory is not None
    postings = {h: set(unpack_ids(v) if isinstance(v, bytes) else v) for h, v in memory._postings.items()}
    pages = {hour: sorted(sids) for hour, sids in memory._filed.pages.items() if sids}
    # a site renewed in a later hour may still be listed under an earlier one: where it counts is
    # the last hour it is filed under, which is its template's
    sites: dict[int, int] = {}
    for hour, filed in memory._filed.sites.items():
        for site in filed:
            sites[site] = max(sites.get(site, hour), hour)
    templates = {site: hour for site, hour in sites.items() if index.state.get(_template_key(site))}
    counters = (index._meta, memory.records, memory.roots, memory.size)
    return counters, postings, pages, templates


def assert_rebuilt_alike(index: DedupIndex) -> None:
    """The indexes kept up to date decision by decision are the ones a rebuild derives."""
    assert derived(index) == derived(DedupIndex(index.state, index.window_seconds))


def test_indexes_kept_decision_by_decision_equal_a_rebuild_from_the_records() -> None:
    state: dict[str, bytes] = {}
    index = DedupIndex(state, window_seconds=2 * 86400)
    for seed in range(40):
        original = story(500 + seed, paragraphs=10)
        when = T0 + seed * 3 * 3600
        decide(index, f"https://a.example/{seed}", page(original[:4]), when=when)  # a cut copy first
        decide(index, f"https://b.example/{seed}", page(original), when=when + 60)  # the fuller original
        decide(index, f"https://c.example/{seed}", page(original[5:]), when=when + 120)
        if seed % 7 == 6:
            assert_rebuilt_alike(index)
            index.expire(when)
    assert_rebuilt_alike(index)
    assert index.entries() < 120  # the window moved: pages were dropped
    assert index.state_bytes() == sum(len(k) + len(v) for k, v in state.items())


class Writes(dict[str, bytes]):
    """A dict that records every write and delete (each one a changelog record in production)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.log: list[tuple[str, bytes | None]] = []

    def __setitem__(self, key: str, value: bytes) -> None:
        self.log.append((key, value))
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.log.append((key, None))
        super().__delitem__(key)

    def pop(self, key: str, *default: Any) -> Any:
        if key in self:
            self.log.append((key, None))
        return super().pop(key, *default)


def test_a_decision_writes_its_record_its_hash_and_the_counter_and_a_copy_its_root() -> None:
    state = Writes()
    index = DedupIndex(state)
    original = story(900)
    decide(index, "https://a.example/1", page(original))
    assert len(state.log) == 3  # `~d`, the content hash, the page record
    state.log.clear()
    decide(index, "https://b.example/2", page(original[:5]))
    assert len(state.log) == 4  # and the root's record (its copies)
    state.log.clear()
    decide(index, "https://b.example/2", page(original[:5]))  # a replay writes nothing
    assert state.log == []


@pytest.fixture(scope="module")
def hops() -> list[bytes]:
    """The dev pages cleaned and fingerprinted once: what the dedup owner consumes. Each is fetched
    a minute after the one before (the dev pages share one time), so that the watermark tells
    a page counted twice."""
    every_kind = Settings(article_page_types=",".join(PAGE_KINDS))  # each dev page reaches the owner
    stages = Stages(every_kind, DedupIndex({}), InlineCompute(), Metrics.create())
    loop = asyncio.new_event_loop()
    hops = []
    try:
        for n, line in enumerate(_lines()):
            raw = orjson.loads(line) | {"fetched_at": f"2025-01-10T{n // 60:02d}:{n % 60:02d}:00Z"}
            outs = loop.run_until_complete(stages.page(orjson.dumps(raw), None, Origin("file", 0, n), BROKER))
            hops.append(outs[0].value)
        return hops
    finally:
        loop.close()


def _decide_all(
    hops: list[bytes], state: MutableMapping[str, bytes], index: DedupIndex | None = None
) -> Iterator[tuple[str, str | None, bytes]]:
    """The dedup owner's stage over `hops`: each page's route, the story it duplicates, and the
    window after it (oldest hour, last page, watermark)."""
    stages = Stages(Settings(), index or DedupIndex(state), InlineCompute(), Metrics.create())
    for n, hop in enumerate(hops):
        out = stages.decide(hop, Origin("file", 0, n))[0]
        yield out.route, out.event.get("duplicate_of") if out.event else None, state[DECISIONS_KEY][8:]


class Killed(BaseException):
    """The owner's process dies (not an error a page's dead letter could stand for)."""


class Dying(dict[str, bytes]):
    """A state whose owner is killed before its `cut`-th write reaches the changelog."""

    def __init__(self, cut: int) -> None:
        super().__init__()
        self.cut = cut

    def __setitem__(self, key: str, value: bytes) -> None:
        self.cut -= 1
        if self.cut < 0:
            raise Killed
        super().__setitem__(key, value)


def test_an_owner_killed_mid_decision_is_followed_by_one_that_decides_alike(hops: list[bytes]) -> None:
    """Whatever write the owner is killed before, its successor, recovering the writes made so
    far and redoing the page, makes the decisions and keeps the window of an owner never killed."""
    clean_state: dict[str, bytes] = {}
    clean = list(_decide_all(hops, clean_state))
    for cut in range(600, 606):  # about 4 writes a page: every point of one decision and the next
        state = Dying(cut)
        first: list[tuple[str, str | None, bytes]] = []
        with pytest.raises(Killed):
            first.extend(_decide_all(hops, state))
        recovered = dict(state)  # what reached the changelog
        second = list(_decide_all(hops[len(first) :], recovered))
        assert [*first, *second] == clean
        assert derived(DedupIndex(recovered)) == derived(DedupIndex(clean_state))


class Failing(dict[str, bytes]):
    """A state that refuses one write with an error (the page becomes a dead letter)."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.fail_at = fail_at

    def __setitem__(self, key: str, value: bytes) -> None:
        self.fail_at -= 1
        if self.fail_at == 0:
            raise RuntimeError("refused")
        super().__setitem__(key, value)


def test_an_owner_going_on_after_a_failed_decision_matches_its_state(hops: list[bytes]) -> None:
    for fail_at in range(400, 404):
        state = Failing(fail_at)
        index = DedupIndex(state)
        routes = [route for route, *_ in _decide_all(hops, state, index)]
        assert routes.count("dead_letters") == 1
        assert derived(index) == derived(DedupIndex(dict(state)))


def test_a_page_whose_events_cannot_be_built_is_the_one_dead_letter_of_its_batch(
    hops: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decided together, pages fail alone: one page whose outputs (or window check) raise ends as
    a dead letter and every other page of the batch gets the outputs it gets one by one."""
    batch = [(hop, Origin("candidates", 0, n)) for n, hop in enumerate(hops[:12])]
    expected = Stages(Settings(), DedupIndex({}), InlineCompute(), Metrics.create()).decide_many(batch)
    stages = Stages(Settings(), DedupIndex({}), InlineCompute(), Metrics.create())
    built, expiry_checked = stages._decided, stages.index.expiry_due
    calls = {"built": 0, "expiry": 0}

    def third_fails(*args: Any) -> Any:
        calls["built"] += 1
        if calls["built"] == 3:
            raise RuntimeError("this page's events cannot be built")
        return built(*args)

    def second_check_fails(mark: float) -> bool:
        calls["expiry"] += 1
        if calls["expiry"] == 2:
            raise RuntimeError("the window cannot be checked")
        return expiry_checked(mark)

    monkeypatch.setattr(stages, "_decided", third_fails)
    monkeypatch.setattr(stages.index, "expiry_due", second_check_fails)
    outs = stages.decide_many(batch)
    assert [[o.route for o in page] for page in outs[:2] + outs[3:]] == \
        [[o.route for o in page] for page in expected[:2] + expected[3:]]
    assert [o.route for o in outs[2]] == ["dead_letters"]
    assert b"this page's events cannot be built" in outs[2][0].value
    assert calls["expiry"] >= 2  # the failed check reached


def test_a_copy_redone_after_its_root_was_written_counts_once() -> None:
    """An owner killed between a copy's root record (its copies) and the copy's own record: the
    redone page gets the decision, the copy count and the state of an owner never killed."""
    original = story(777, paragraphs=10)
    pages = [
        ("https://a.example/cut", page(original[:4]), T0),  # a cut copy first: the root
        ("https://b.example/full", page(original), T0 + 60),  # the fuller original: the root takes its sketch
        ("https://c.example/rest", page(original[3:]), T0 + 120),  # another version: the root keeps it too
        ("https://d.example/same", page(original), T0 + 180),  # an exact copy of the original
        ("https://e.example/mix", page(original[2:7] + story(778)[:3]), T0 + 240),  # part of it, and more
    ]

    def decisions(state: MutableMapping[str, bytes], todo: list[tuple[str, str, float]]) -> Iterator[Decision]:
        index = DedupIndex(state)
        for url, text, when in todo:
            yield decide(index, url, text, when)

    clean_state = Writes()
    clean = list(decisions(clean_state, pages))
    assert [(d.kind, d.copies) for d in clean] == [(None, 1), ("near", 2), ("near", 3), ("exact", 4), ("near", 5)]
    assert clean[-1].similarity < 1
    for cut in range(len(clean_state.log)):  # killed before each write in turn
        state = Dying(cut)
        first: list[Decision] = []
        with pytest.raises(Killed):
            first.extend(decisions(state, pages))
        recovered = dict(state)  # what reached the changelog
        second = list(decisions(recovered, pages[len(first) :]))
        assert [*first, *second] == clean, cut
        assert recovered == clean_state, cut


def test_five_random_orders_give_the_same_story_clusters(hops: list[bytes]) -> None:
    """The dev pages (40 syndicated stories, the hosts' own stories around them) decided in the
    file's order and in five random orders: the story clusters agree (pairwise F1 of "same
    cluster") at 0.99 or more, and every order finds the copies."""
    from worker.evaluation.dedup import agreement, clusters, decide_again

    window = Settings().dedup_window_days * 86400
    first = clusters(decide_again(hops, Policy(), window))
    assert len(set(first.values())) < len(first) - 100  # most copies found
    for seed in range(5):
        again = clusters(decide_again(hops, Policy(), window, seed))
        assert set(again) == set(first)
        assert agreement(first, again) >= 0.99, seed


@pytest.mark.parametrize(
    ("fixture", "agree", "precision", "recall"),
    [("wcxb-fingerprints.jsonl.gz", 0.985, 0.99, 0.975), ("wcxb-hard-fingerprints.jsonl.gz", 0.975, 0.985, 0.95)],
)
def test_five_random_orders_of_a_stream_of_many_sites_give_the_same_story_clusters(
    fixture: str, agree: float, precision: float, recall: float
) -> None:
    """The WCXB syndication stream's pages (1,228 of hundreds of sites, 150 stories syndicated
    into other sites' templates beside every site's own story), and its heavier edits
    (`dev-hard`), as the dedup owner gets them (see the fixtures' README): decided in the file's
    order and in five random orders, the story clusters agree at `agree` or more (WCXB:
    0.987-0.993 measured, 0.987-0.991 before a text ten times another's was refused as its copy;
    dev-hard: 0.976-0.981, 0.974-0.981 before; the 0.99 target is not met: pages whose text
    holds two stories, and copies of different parts of a story, are joined or not by which page
    came first), and no order's precision or recall falls under a normal (0.99, 0.975) or a
    harder (0.985, 0.95) stream's floor."""
    import base64

    from worker.evaluation.dedup import agreement, clusters, score
    from worker.steps.dedup.fingerprint import Fingerprint

    raw = gzip.decompress((FIXTURES / fixture).read_bytes())
    rows = [orjson.loads(line) for line in raw.splitlines()]
    truth = {row["url"]: row["story"] for row in rows}

    def events(order: list[dict[str, Any]]) -> list[dict[str, str]]:
        index = DedupIndex({})
        out = []
        for row in order:
            fp = Fingerprint.from_bytes(base64.b64decode(row["fingerprint"]))
            decision = index.decide(row["url"], fp, row["seen_at"])
            if decision.duplicate_of is None:
                out.append({"event_type": "article", "url": row["url"], "id": decision.article_id})
            else:
                out.append({"event_type": "duplicate", "url": row["url"], "duplicate_of": decision.duplicate_of})
        return out

    first = events(rows)
    for seed in [None, *range(5)]:
        order = list(rows)
        if seed is not None:
            random.Random(seed).shuffle(order)
        again = events(order)
        scored = score(truth, again)
        assert scored.precision >= precision and scored.recall >= recall, (seed, scored)
        assert agreement(clusters(first), clusters(again)) >= agree, seed


def test_a_candidate_left_out_before_it_is_unpacked_is_one_the_rules_would_not_call_like() -> None:
    """`policy.may_be_like` on a record's packed hashes (`_kept_hashes`) leaves out only
    candidates that `Policy.likeness` finds like no text of, whatever they share."""
    from worker.steps.dedup.fingerprint import Fingerprint
    from worker.steps.dedup.index import _kept_hashes, _Record, filing
    from worker.steps.dedup.policy import Version, may_be_like

    rng = random.Random(5)
    rules = Policy()
    left_out = liked = 0
    for _ in range(3_000):
        pool = sorted(rng.sample(range(1 << 32), 400))
        texts = [tuple(sorted(rng.sample(pool, rng.randint(3, 128)))) for _ in range(rng.randint(1, 3))]
        sites = tuple(rng.sample(range(1 << 32), rng.choice((0, 0, 1, 5))))  # its copies' sites
        record = _Record(True, None, rng.randbytes(16), T0, 1, 0.0, 7, bytes(8), texts[0][: rules.index_sketch],
                         tuple(Version(text[: rules.index_sketch], 8 + i) for i, text in enumerate(texts[1:])), sites)
        packed = record.pack()
        known = record.known()
        assert known.versions == (Version(record.sketch, record.site), *record.versions)
        assert set(_kept_hashes(packed)) == {h for version in known.versions for h in version.sketch}
        assert filing(packed, 16) == (True, T0, record.posted(16))
        shared = rng.sample(pool, rng.choice((1, 2, 3, 4, 5, 40, 128)))  # the rest from outside the pool
        sketch = tuple(sorted(set(shared) | set(rng.sample(range(1 << 32), 128 - len(shared)))))
        fp = Fingerprint("00" * 32, sketch, rng.randint(128, 3_000))
        like = rules.likeness(fp, 9, known, set())
        if not may_be_like(set(fp.sketch), _kept_hashes(packed)):
            left_out += 1
            assert like is None
        liked += like is not None
    assert left_out > 500 and liked > 30  # both kinds were met
    copy = _Record(False, "near", bytes(16), T0, 2, 0.5, 7, bytes(8), ())
    assert _kept_hashes(copy.pack()) == () and filing(copy.pack(), 16) == (False, T0, set())
    short = _Record(True, None, bytes(16), T0, 2, 0.0, 7, bytes(8), (), (), (11, 12))  # matched exactly only
    assert _kept_hashes(short.pack()) == () and filing(short.pack(), 16) == (True, T0, set())
