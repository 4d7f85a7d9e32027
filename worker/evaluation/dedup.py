"""`ingest-worker eval dedup`: run the real pipeline over raw pages and score its duplicate calls.

    ingest-worker eval dedup --pages pages.jsonl.gz --truth truth.json [--events-out FILE]
                             [--groups groups.json] [--json]

The pages go through the same steps as the `process` command (decode, clean, fingerprint, the
dedup decision; entity tagging is skipped, it does not change what is a duplicate). The truth is
`{url: story_id}`. Pages that share a story form one truth cluster; an article event and the
duplicate events pointing at it (transitively) form one predicted cluster. The figures are the
pairwise precision, recall and F1 of "same story" (and, with `--groups {url: group}`, the same
restricted to the pairs that hold a page of each group, e.g. one edit kind), how many input pages
were accounted for by an event, the throughput and the dedup state per indexed article.
"""

from __future__ import annotations

import argparse
import json
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
from worker.settings import Settings
from worker.steps.dedup.index import DedupIndex


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


def run_pipeline(lines: Iterable[bytes], settings: Settings, state: dict[str, bytes]) -> Iterator[dict[str, Any]]:
    """The `process` stages over raw page lines, entity tagging off."""
    from worker.offline import process_lines

    for event in process_lines(lines, settings, tag_entities=False, state=state):
        yield dict(event)


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
    settings = Settings.from_env()
    state: dict[str, bytes] = {}
    started = time.perf_counter()
    progress = Progress("eval dedup", len(lines), unit="lines")
    events = list(run_pipeline(progress.iterate(lines), settings, state))
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
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
