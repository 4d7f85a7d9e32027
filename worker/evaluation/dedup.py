"""`ingest-worker eval dedup`: run the real pipeline over raw pages and score its duplicate calls.

    ingest-worker eval dedup --pages pages.jsonl.gz --truth truth.json [--events-out FILE]
                             [--groups groups.json] [--folds 2] [--orders 5] [--json]

The pages go through the same steps as the `process` command (decode, clean, fingerprint, the
dedup decision; entity tagging is skipped, it does not change what is a duplicate), with pages
of every kind published as articles (the page-type setting is not what is measured). The truth is
`{url: story_id}`. Pages that share a story form one truth cluster; an article event and the
duplicate events pointing at it (transitively) form one predicted cluster. The figures are the
pairwise precision, recall and F1 of "same story" (and, with `--groups {url: group}`, the same
restricted to the pairs that hold a page of each group, e.g. one edit kind), how many input pages
were accounted for by an event, the throughput and the dedup state per indexed article.

Held-out protocol: each story falls in a fold by the first hex digit of the sha256 of its id
(`--folds N`: digit * N // 16), and each fold is scored on the pairs that hold a page of its
stories. Fold 0 is where the rules' figures are chosen; the others are held out. The threshold
curve decides the cleaned pages again (cleaning once) at each figure of ten rules (the
near-duplicate threshold, the same-site resemblance, the share a page must have in common with
every text a cluster keeps, the overlap under which two known stories are different ones, the
resemblance asked of a page of a site the cluster holds a copy of, and of a doubtful copy, the
share of a kept text a fuller copy must hold for its own text to be kept, the share of a
text's lines its site's other pages left out that makes it the site's furniture, and the
resemblance asked of a page of a site the cluster keeps a text of, against another site's text, and the
least size of the smaller text as a share of the larger for a near verdict) and prints
precision and recall per fold; `--orders N` decides them in N random orders and prints
how well the story clusters agree (pairwise F1 of "same cluster" between each order and the
file's, the lowest).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from worker.cli import ArgumentParser
from worker.cli.failures import UsageError
from worker.cli.files import output, read_bytes, writable
from worker.cli.progress import Progress
from worker.document import PAGE_KINDS, Prepared
from worker.settings import Settings
from worker.steps.dedup.fingerprint import Fingerprint
from worker.steps.dedup.index import DedupIndex
from worker.steps.dedup.policy import Policy

CURVES = {
    "near_threshold": (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9),
    "same_site_resemblance": (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0),
    "consistent": (0.0, 0.1, 0.2, 0.3),
    "distinct": (0.0, 0.05, 0.1, 0.2),
    "member_site_resemblance": (0.0, 0.3, 0.5, 0.7, 1.0),
    "doubtful_resemblance": (0.0, 0.1, 0.2, 0.3),
    "furniture_share": (0.5, 0.67, 0.8, 0.9, 1.0),
    "fuller_copy": (0.35, 0.4, 0.45, 0.5, 0.55, 1.0),
    "through_other_site": (0.3, 0.5, 0.7, 1.0),
    "size_ratio": (0.0, 0.05, 0.1, 0.2),
}
"""Each rule's figures the threshold curve decides the pages at (the others at their defaults;
0.0 turns `consistent`, `distinct`, `member_site_resemblance` and `doubtful_resemblance` off;
`furniture_share`: the share of a text dump's sampled story lines its site's other pages left out
that makes it the site's furniture, matched with nothing; `fuller_copy` 1.0 keeps a fuller copy's
text only as any other firm copy's, from 0.6 of the smaller text; `through_other_site` 1.0 asks
a page of a site the cluster keeps a text of the same text as every kept text; `size_ratio` 0.0
lets a text of any size be a copy of another)."""


@dataclass(frozen=True, slots=True)
class Score:
    """Pairwise scores of a run against the truth, and how many pages were accounted for."""

    pages: int
    accounted: int
    dead_letters: int
    missing: int
    pairs_truth: int
    pairs_predicted: int
    pairs_correct: int
    precision: float
    recall: float
    f1: float


def read_lines(path: str) -> list[bytes]:
    """The lines of a file, gunzipped when it starts with the gzip magic bytes (a file that cannot
    be read, or is cut short, raises `UsageError` naming it)."""
    return read_bytes(path).splitlines()


def score(truth: Mapping[str, str], events: Iterable[Mapping[str, Any]]) -> Score:
    """Pairwise precision/recall/F1 of "same story" of emitted events against `{url: story}`."""
    t, p, seen, dead = _pair_sets(truth, events)
    correct = len(t & p)
    precision, recall, f1 = _prf(correct, len(p), len(t))
    return Score(
        pages=len(truth),
        accounted=len(seen & set(truth)),
        dead_letters=dead,
        missing=len(set(truth) - seen),
        pairs_truth=len(t),
        pairs_predicted=len(p),
        pairs_correct=correct,
        precision=precision,
        recall=recall,
        f1=f1,
    )


@dataclass(frozen=True, slots=True)
class GroupScore:
    """Scores restricted to the pairs that hold at least one page of a group (e.g. an edit kind)."""

    group: str
    pages: int
    pairs_truth: int
    pairs_predicted: int
    pairs_correct: int
    precision: float
    recall: float


def score_groups(
    truth: Mapping[str, str], events: Iterable[Mapping[str, Any]], groups: Mapping[str, str]
) -> list[GroupScore]:
    """Per group of `{url: group}`: precision and recall over the pairs with a page of that group."""
    t, p, _, _ = _pair_sets(truth, events)
    out = []
    for group in sorted(set(groups.values())):
        members = {url for url, g in groups.items() if g == group and url in truth}
        gt = {pair for pair in t if pair[0] in members or pair[1] in members}
        gp = {pair for pair in p if pair[0] in members or pair[1] in members}
        correct = len(gt & gp)
        precision, recall, _ = _prf(correct, len(gp), len(gt))
        out.append(GroupScore(group, len(members), len(gt), len(gp), correct, precision, recall))
    return out


def _prf(correct: int, predicted: int, actual: int) -> tuple[float, float, float]:
    precision = correct / predicted if predicted else 1.0
    recall = correct / actual if actual else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def _pair_sets(
    truth: Mapping[str, str], events: Iterable[Mapping[str, Any]]
) -> tuple[set[tuple[str, str]], set[tuple[str, str]], set[str], int]:
    """Truth pairs, predicted pairs, the urls an event accounted for, and the dead letters."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        parent[find(a)] = find(b)

    seen: set[str] = set()
    dead = 0
    for event in events:
        kind = str(event.get("event_type", ""))
        if kind.startswith("article"):
            seen.add(event["url"])
            union("url:" + event["url"], "id:" + event["id"])
        elif kind.startswith("duplicate"):
            seen.add(event["url"])
            union("url:" + event["url"], "id:" + event["duplicate_of"])
        elif kind.startswith("dead"):
            dead += 1
    by_truth: dict[str, set[str]] = defaultdict(set)
    by_pred: dict[str, set[str]] = defaultdict(set)
    for url, story in truth.items():
        by_truth[story].add(url)
        by_pred[find("url:" + url) if url in seen else "alone:" + url].add(url)
    return _pairs(by_truth), _pairs(by_pred), seen, dead


def _pairs(groups: Mapping[str, set[str]]) -> set[tuple[str, str]]:
    return {(a, b) for members in groups.values() for a in members for b in members if a < b}


def run_pipeline(
    lines: Iterable[bytes], settings: Settings, state: dict[str, bytes], candidates: list[bytes] | None = None
) -> Iterator[dict[str, Any]]:
    """The `process` stages over raw page lines, entity tagging off (`candidates`: see
    `process_lines`)."""
    from worker.offline import process_lines

    for event in process_lines(lines, settings, tag_entities=False, state=state, candidates=candidates):
        yield dict(event)


def fold_of(story: str, folds: int) -> int:
    """The fold of a story: the first hex digit of the sha256 of its id, in `folds` equal ranges."""
    return int(hashlib.sha256(story.encode()).hexdigest()[0], 16) * folds // 16


def fold_truths(truth: Mapping[str, str], folds: int) -> list[dict[str, str]]:
    """Per fold, the truth of the pages of its stories."""
    out: list[dict[str, str]] = [{} for _ in range(folds)]
    for url, story in truth.items():
        out[fold_of(story, folds)][url] = story
    return out


def score_fold(truth: Mapping[str, str], fold: Mapping[str, str], events: Iterable[Mapping[str, Any]]) -> Score:
    """`score` restricted to the pairs that hold a page of the fold's stories (a wrong merge of a
    fold's page with any other page counts against the fold)."""
    t, p, seen, dead = _pair_sets(truth, events)
    t = {pair for pair in t if pair[0] in fold or pair[1] in fold}
    p = {pair for pair in p if pair[0] in fold or pair[1] in fold}
    correct = len(t & p)
    precision, recall, f1 = _prf(correct, len(p), len(t))
    return Score(len(fold), len(seen & set(fold)), dead, len(set(fold) - seen), len(t), len(p), correct,
                 precision, recall, f1)


def decide_again(
    hops: list[bytes], rules: Policy, window_seconds: float, seed: int | None = None
) -> list[dict[str, Any]]:
    """Decide the cleaned pages again on a fresh state (in a random order with `seed`): the
    article and duplicate events `score` reads, nothing else."""
    order = list(hops)
    if seed is not None:
        random.Random(seed).shuffle(order)
    index = DedupIndex({}, window_seconds=window_seconds, rules=rules)
    events: list[dict[str, Any]] = []
    for hop in order:
        prepared = Prepared.from_bytes(hop)
        url = prepared.article.url
        decision = index.decide(url, Fingerprint.from_bytes(prepared.fingerprint), prepared.seen_at)
        if decision.duplicate_of is None:
            events.append({"event_type": "article", "url": url, "id": decision.article_id})
        else:
            events.append({"event_type": "duplicate", "url": url, "duplicate_of": decision.duplicate_of})
    return events


def clusters(events: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """`{url: cluster}` of the article and duplicate events (a duplicate's cluster is its root's id)."""
    out = {}
    for event in events:
        kind = str(event.get("event_type", ""))
        if kind.startswith("article"):
            out[event["url"]] = event["id"]
        elif kind.startswith("duplicate"):
            out[event["url"]] = event["duplicate_of"]
    return out


def agreement(a: Mapping[str, str], b: Mapping[str, str]) -> float:
    """How well two clusterings of the same pages agree: the F1 of their "same cluster" pairs
    (1.0 when both put every page alone)."""
    pa, pb = _cluster_pairs(a), _cluster_pairs(b)
    if not pa and not pb:
        return 1.0
    return 2 * len(pa & pb) / (len(pa) + len(pb))


def _cluster_pairs(assigned: Mapping[str, str]) -> set[tuple[str, str]]:
    groups: dict[str, set[str]] = defaultdict(set)
    for url, cluster in assigned.items():
        groups[cluster].add(url)
    return _pairs(groups)


def build_parser() -> argparse.ArgumentParser:
    """Flags of `ingest-worker eval dedup`."""
    parser = ArgumentParser(
        prog="ingest-worker eval dedup",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--pages", required=True, help="raw page events, JSONL (may be gzipped)")
    parser.add_argument("--truth", required=True, help="JSON {url: story_id} (may be gzipped)")
    parser.add_argument("--events-out", help="write the emitted events here as JSONL")
    parser.add_argument("--groups", help="JSON {url: group}: also score the pairs of each group's pages")
    parser.add_argument("--folds", type=int, default=2, help="story folds scored apart (fold 0: rules chosen)")
    parser.add_argument("--orders", type=int, default=5, help="random orders the clusters are compared in (0: none)")
    parser.add_argument("--no-curve", action="store_true", help="skip the threshold curve")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    return parser


def main(argv: list[str]) -> int:
    """Run the evaluation; returns the process exit code."""
    args = build_parser().parse_args(argv)
    if args.events_out:
        writable(args.events_out, "--events-out")
    try:
        truth = json.loads(b"\n".join(read_lines(args.truth)))
    except ValueError as exc:
        raise UsageError(f"--truth {args.truth} is not JSON ({exc}); give the truth file: {{url: story id}}") from exc
    if not isinstance(truth, dict):
        raise UsageError(f"--truth {args.truth} holds a JSON {type(truth).__name__}; give the truth file: "
                         "{url: story id}")
    lines = read_lines(args.pages)
    # Dedup is measured on every page of the stream: pages of any kind are published here, so a
    # page the page-type classifier would skip still counts as the story it carries.
    settings = Settings.from_env().with_overrides(article_page_types=",".join(PAGE_KINDS))
    state: dict[str, bytes] = {}
    started = time.perf_counter()
    progress = Progress("eval dedup", len(lines), unit="lines")
    hops: list[bytes] = []
    events = list(run_pipeline(progress.iterate(lines), settings, state, hops))
    seconds = time.perf_counter() - started
    progress.finish()
    if args.events_out:
        with output(args.events_out, "--events-out") as out:
            for event in events:
                out.write(orjson.dumps(event) + b"\n")
    result = score(truth, events)
    index = DedupIndex(state)
    pages = sum(1 for line in lines if line.strip())
    figures: dict[str, Any] = asdict(result)
    figures.update(
        seconds=round(seconds, 3),
        pages_per_second=round(pages / seconds, 1) if seconds else 0.0,
        indexed_articles=index.roots(),
        state_entries=index.entries(),
        state_bytes=index.state_bytes(),
        state_bytes_per_article=round(index.state_bytes() / index.roots(), 1) if index.roots() else 0.0,
    )
    groups = score_groups(truth, events, json.loads(b"\n".join(read_lines(args.groups)))) if args.groups else []
    if groups:
        figures["groups"] = {g.group: asdict(g) for g in groups}
    folds = fold_truths(truth, max(1, args.folds))
    figures["folds"] = [asdict(score_fold(truth, fold, events)) for fold in folds]
    window = settings.dedup_window_days * 86400
    if not args.no_curve:
        rules = [(name, v, _with(name, v)) for name, values in CURVES.items() for v in values]
        figures["curve"] = [
            _curve_point(truth, folds, decide_again(hops, policy, window), name, value) for name, value, policy in rules
        ]
    if args.orders > 0:
        first = clusters(events)
        figures["orders"] = args.orders
        figures["order_agreement"] = round(
            min(agreement(first, clusters(decide_again(hops, Policy(), window, seed))) for seed in range(args.orders)),
            4,
        )
    if args.json:
        print(json.dumps(figures, sort_keys=True))
        return 0
    r = result
    print(f"pages {r.pages}  accounted {r.accounted} (+{r.dead_letters} dead letters)  missing {r.missing}")
    print(f"pairs truth {r.pairs_truth}  predicted {r.pairs_predicted}  correct {r.pairs_correct}")
    print(f"dedup P {r.precision:.3f}  R {r.recall:.3f}  F1 {r.f1:.3f}")
    print(f"throughput {figures['pages_per_second']} pages/s ({pages} pages in {seconds:.2f} s, one process)")
    print(
        f"dedup state {figures['state_bytes']} bytes for {index.roots()} indexed articles "
        f"({index.entries()} pages): {figures['state_bytes_per_article']} bytes per indexed article"
    )
    for g in groups:
        print(
            f"group {g.group:<10} pages {g.pages:>4}  pairs truth {g.pairs_truth:>5}  "
            f"P {g.precision:.3f}  R {g.recall:.3f}"
        )
    for n, f in enumerate(figures["folds"]):
        role = "training" if n == 0 else "held out"
        print(
            f"fold {n} ({role:<8}) pages {f['pages']:>4}  pairs truth {f['pairs_truth']:>5}  "
            f"P {f['precision']:.3f}  R {f['recall']:.3f}  F1 {f['f1']:.3f}"
        )
    if "curve" in figures:
        print("threshold curve (the other rule at its default), P / R per fold:")
        for point in figures["curve"]:
            per_fold = "  ".join(f"{p:.3f} / {r:.3f}" for p, r in zip(point["precision"], point["recall"], strict=True))
            mark = " (default)" if point["default"] else ""
            print(f"  {point['rule']:<24} {point['value']:<5} {per_fold}{mark}")
    if "order_agreement" in figures:
        agree = figures["order_agreement"]
        print(f"clusters in {args.orders} random orders agree with the file's: {agree:.4f} (lowest)")
    return 0


def _with(rule: str, value: float) -> Policy:
    """The default rules with one figure changed."""
    figures: dict[str, Any] = {rule: value}
    return Policy(**figures)


def _curve_point(
    truth: Mapping[str, str], folds: list[dict[str, str]], events: list[dict[str, Any]], rule: str, value: float
) -> dict[str, Any]:
    scores = [score_fold(truth, fold, events) for fold in folds]
    default = value == getattr(Policy(), rule)
    return {
        "rule": rule,
        "value": value,
        "default": default,
        "precision": [round(s.precision, 4) for s in scores],
        "recall": [round(s.recall, 4) for s in scores],
    }


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
