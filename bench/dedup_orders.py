#!/usr/bin/env python3
"""The dedup decision of two code trees side by side, on the same cleaned pages, in file order and
in random orders, scored per story fold.

    python bench/dedup_orders.py prepare --pages pages.jsonl.gz --truth truth.json --out STREAM.pkl.gz
    python bench/dedup_orders.py score STREAM.pkl.gz [...] [--before DIR] [--orders 5] [--json FILE]

`prepare` runs the pipeline once over a stream (decode, clean, fingerprint: the `eval dedup`
steps) and keeps what the dedup owner gets for each page (the `Prepared` hops) with the truth, so
every later decision is made on the same cleaned pages. `score` decides each kept stream on a
fresh state with each code tree (this one, and `--before DIR`, a checkout of older code, each in
a subprocess importing its own tree): in file order, then in `--orders` random orders (seeds
0..N-1). It prints per tree and stream the pairwise P / R / F1 of "same story" per fold in file
order (fold 0: where the rules' figures are chosen; fold 1 held out; `eval dedup`'s folds), the
mean P / R over the random orders per fold, how well the story clusters of the random orders
agree with the file order's (the lowest, as `eval dedup` prints) and with each other (the
lowest of every pair), and the decisions per CPU second of the file-order pass.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def prepare(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(HERE))
    from worker.document import PAGE_KINDS
    from worker.evaluation.dedup import read_lines, run_pipeline
    from worker.settings import Settings

    truth = json.loads(b"\n".join(read_lines(args.truth)))
    settings = Settings.from_env().with_overrides(article_page_types=",".join(PAGE_KINDS))
    hops: list[bytes] = []
    for _ in run_pipeline(read_lines(args.pages), settings, {}, hops):
        pass
    with gzip.open(args.out, "wb") as out:
        pickle.dump({"truth": truth, "hops": hops, "window": settings.dedup_window_days * 86400}, out)
    print(f"{args.out}: {len(hops)} cleaned pages of {len(truth)} in the truth")


def clusters(args: argparse.Namespace) -> None:
    """(In a subprocess with the tree to measure first on the path.) Every order's events as JSON."""
    from worker.evaluation.dedup import decide_again
    from worker.steps.dedup.policy import Policy

    with gzip.open(args.stream, "rb") as f:
        kept = pickle.load(f)
    started = time.process_time()
    first = decide_again(kept["hops"], Policy(), kept["window"])
    cpu = time.process_time() - started
    orders = [decide_again(kept["hops"], Policy(), kept["window"], seed) for seed in range(args.orders)]
    json.dump({"file": first, "orders": orders, "per_second": len(kept["hops"]) / cpu}, sys.stdout)


class _Watching:
    """The rules of this tree, watching which known stories `choose` was offered for each page (and
    with `largest`, choosing among stories whose roots are one story the one with most pages)."""

    def __init__(self, largest: float | None) -> None:
        from worker.steps.dedup.policy import Policy, overlap

        watcher = self

        class Rules(Policy):
            def choose(self, found, ignore):  # type: ignore[no-untyped-def]
                chosen = Policy.choose(self, found, ignore)
                watcher.offered, watcher.ignore = list(found), ignore
                if chosen is None or largest is None:
                    return chosen
                mine = found[chosen][1].versions[0].sketch
                alike = [
                    i for i, (_, known) in enumerate(found)
                    if i == chosen or overlap(mine, known.versions[0].sketch, 80, 80, ignore).coefficient >= largest
                ]
                return max(alike, key=lambda i: (watcher.pages.get(watcher.root_of(found[i][1]), 0), found[i][0]))

        self.rules = Rules()
        self.offered: list = []
        self.ignore: set[int] = set()
        self.roots: dict[tuple[int, ...], str] = {}  # a root's kept sketch -> its article id
        self.pages: dict[str, int] = {}  # pages a root's cluster got

    def root_of(self, known) -> str:  # type: ignore[no-untyped-def]
        return self.roots[known.versions[0].sketch]


def _linked(hops: list[bytes], window: float, seed: int | None, links: str, largest: float | None) -> dict[str, str]:
    """`{url: cluster}` of one order, with clusters a page was like linked by the rule `links`
    (`none`; `all`; `firm`: the page a firm copy of both; `roots:R`: the two roots' own texts
    resemble each other R or more, pages of one site 1.0) through a union-find over root ids: what
    publishing cluster merges would give."""
    import random

    from worker.document import Prepared
    from worker.steps.dedup.fingerprint import Fingerprint
    from worker.steps.dedup.index import DedupIndex
    from worker.steps.dedup.policy import FIRM_COPY, INDEX_SKETCH, overlap

    order = list(hops)
    if seed is not None:
        random.Random(seed).shuffle(order)
    watch = _Watching(largest)
    index = DedupIndex({}, window_seconds=window, rules=watch.rules)
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    assigned: dict[str, str] = {}
    for hop in order:
        prepared = Prepared.from_bytes(hop)
        url, fp = prepared.article.url, Fingerprint.from_bytes(prepared.fingerprint)
        watch.offered = []
        decision = index.decide(url, fp, prepared.seen_at)
        root = decision.duplicate_of or decision.article_id
        assigned[url] = root
        watch.pages[root] = watch.pages.get(root, 0) + 1
        if decision.duplicate_of is None:
            watch.roots[fp.sketch[:INDEX_SKETCH]] = decision.article_id
            continue
        if links == "none" or decision.kind != "near" or len(watch.offered) < 2:
            continue
        mine = next(known for _, known in watch.offered if watch.root_of(known) == root)
        like = next(like for like, known in watch.offered if known is mine)
        for other_like, other in watch.offered:
            if other is mine:
                continue
            a, b = mine.versions[0], other.versions[0]
            roots = overlap(a.sketch, b.sketch, INDEX_SKETCH, INDEX_SKETCH, watch.ignore)
            if links == "firm":
                ok = like.similarity >= FIRM_COPY and other_like.similarity >= FIRM_COPY
            elif links.startswith("roots:"):
                floor = 1.0 if a.site == b.site else float(links.split(":")[1])
                ok = roots.shared >= 3 and roots.resemblance >= floor
            else:
                ok = links == "all"
            if ok:
                x, y = sorted((find(root), find(watch.root_of(other))))
                parent[y] = x
    return {url: find(root) for url, root in assigned.items()}


def variants(args: argparse.Namespace) -> None:
    """Fold 0 only (the training fold): this tree's decision with cluster links or another choice
    among the clusters a page is like, in file order and in random orders."""
    sys.path.insert(0, str(HERE))
    from worker.evaluation.dedup import agreement, fold_truths, score_fold

    for stream in args.streams:
        with gzip.open(stream, "rb") as f:
            kept = pickle.load(f)
        truth = kept["truth"]
        fold = fold_truths(truth, 2)[0]
        runs = [
            _linked(kept["hops"], kept["window"], seed, args.links, args.largest)
            for seed in [None, *range(args.orders)]
        ]
        scores = [
            score_fold(truth, fold, [{"event_type": "duplicate", "url": u, "duplicate_of": c} for u, c in run.items()])
            for run in runs
        ]
        first, orders = scores[0], scores[1:]
        mean_p = sum(s.precision for s in orders) / len(orders) if orders else 0.0
        mean_r = sum(s.recall for s in orders) / len(orders) if orders else 0.0
        agree = min((agreement(runs[0], run) for run in runs[1:]), default=1.0)
        print(
            f"{Path(stream).name:<22} links {args.links:<10} largest {args.largest}  fold0 file "
            f"{first.precision:.3f}/{first.recall:.3f}/{first.f1:.3f}  orders' mean P/R {mean_p:.4f}/{mean_r:.4f}  "
            f"agree file {agree:.3f}",
            flush=True,
        )


def score(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(HERE))
    from worker.evaluation.dedup import agreement, fold_truths, score_fold
    from worker.evaluation.dedup import clusters as clusters_of

    trees = [("now", str(HERE))]
    if args.before:
        trees.insert(0, ("before", args.before))
    report: dict[str, dict[str, dict]] = {}
    for stream in args.streams:
        with gzip.open(stream, "rb") as f:
            truth = pickle.load(f)["truth"]
        folds = fold_truths(truth, 2)
        for name, tree in trees:
            env = dict(os.environ, PYTHONPATH=tree)
            out = subprocess.run(
                [sys.executable, __file__, "clusters", stream, "--orders", str(args.orders)],
                env=env, cwd=tree, check=True, capture_output=True,
            ).stdout
            runs = json.loads(out)
            file_scores = [score_fold(truth, fold, runs["file"]) for fold in folds]
            order_scores = [[score_fold(truth, fold, events) for fold in folds] for events in runs["orders"]]
            first = clusters_of(runs["file"])
            each = [clusters_of(events) for events in runs["orders"]]
            figures = {
                "file": [(s.precision, s.recall, s.f1) for s in file_scores],
                "orders_mean": [
                    (sum(o[i].precision for o in order_scores) / len(order_scores),
                     sum(o[i].recall for o in order_scores) / len(order_scores))
                    for i in range(len(folds))
                ] if order_scores else [],
                "agree_file": min((agreement(first, c) for c in each), default=1.0),
                "agree_pairwise": min((agreement(a, b) for a, b in itertools.combinations(each, 2)), default=1.0),
                "per_second": runs["per_second"],
            }
            report.setdefault(stream, {})[name] = figures
            f0, f1 = figures["file"]
            means = "  ".join(f"{p:.3f}/{r:.3f}" for p, r in figures["orders_mean"])
            print(
                f"{Path(stream).name:<22} {name:<6} fold0 {f0[0]:.3f}/{f0[1]:.3f}/{f0[2]:.3f}  "
                f"fold1 {f1[0]:.3f}/{f1[1]:.3f}/{f1[2]:.3f}  orders' mean P/R {means}  "
                f"agree file {figures['agree_file']:.3f} pairwise {figures['agree_pairwise']:.3f}  "
                f"{figures['per_second']:,.0f}/s",
                flush=True,
            )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--pages", required=True)
    p.add_argument("--truth", required=True)
    p.add_argument("--out", required=True)
    c = sub.add_parser("clusters")
    c.add_argument("stream")
    c.add_argument("--orders", type=int, default=5)
    s = sub.add_parser("score")
    s.add_argument("streams", nargs="+")
    s.add_argument("--before", help="a checkout of the code to compare with")
    s.add_argument("--orders", type=int, default=5)
    s.add_argument("--json", help="write the figures here")
    v = sub.add_parser("variants")
    v.add_argument("streams", nargs="+")
    v.add_argument("--links", default="none", help="none, all, firm or roots:R (see `_linked`)")
    v.add_argument("--largest", type=float, help="join the largest of the clusters whose roots share this much")
    v.add_argument("--orders", type=int, default=5)
    args = parser.parse_args()
    {"prepare": prepare, "clusters": clusters, "score": score, "variants": variants}[args.command](args)


if __name__ == "__main__":
    main()
