"""CPU of the clean step a page, HTML pages and text dumps apart, and whether its output changed.

```bash
python bench/clean_cpu.py --pages /work/shared/bench/dedup/dev/pages.jsonl.gz \
    --extraction /work/shared/bench/extraction/dev [--wild /work/shared/bench/extraction-wild/dev] \
    [--reps 3] [--save digests.json | --compare digests.json] [--against OTHER_CHECKOUT] \
    [--mode html|text|both] [--every N] [--trafilatura]
```

Every page is cleaned `--reps` times (one pass first, untimed, fills the caches a running worker
has warm); the figure is process CPU time, milliseconds a page, by set and mode. `--save` writes
one digest a page of everything cleaning yields: the whole result (article fields or the drop),
the page type with every kind's probability, and the candidate texts, feature rows and tokens the
learned models read (so a fold model trained by `eval extraction` or `eval page-types` would be the
same too); `--compare` checks those against a saved file and
exits 1 when any page differs. To compare two versions of the code, save with one and compare
with the other (`PYTHONPATH=<other checkout>` runs this script on that checkout's `worker`).
`--against` times another checkout's `worker` beside this one: one process a pass, the two
alternating, `--reps` passes each, and prints both and their ratio (the machine is shared and
its load moves single runs by 10-30%).
`--trafilatura` times trafilatura's default `extract` on each HTML page right after `clean` in
the same pass, and prints the ratio. `--worker-collector` times under the cyclic collector's
thresholds the worker's step processes set (`worker.cpu.COLLECTOR_THRESHOLDS`) instead of
Python's defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import gzip
import hashlib
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import orjson

import worker
from worker.document import RawPage
from worker.evaluation.extraction import load_bench, load_wild
from worker.steps.clean import clean
from worker.steps.clean.html import drop_code, html_candidates, parse_html
from worker.steps.clean.language import normalize_code
from worker.steps.clean.page_type import read_text, read_tree
from worker.steps.decode import decode


def _jsonl_pages(path: str) -> list[tuple[str, RawPage]]:
    """Raw page events, one JSON object a line, decoded as the worker decodes them."""
    with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as handle:
        lines = [line.strip() for line in handle if line.strip()]
    return [(f"pages/{n}", page) for n, line in enumerate(lines) if isinstance(page := decode(line), RawPage)]


def _extraction_pages(root: Path) -> list[tuple[str, RawPage]]:
    """The labelled set's HTML pages and text dumps (two pages per id where it has both)."""
    bench = load_bench(root)
    found: list[tuple[str, RawPage]] = []
    for page_id in sorted(bench.urls):
        if (html := bench.html(page_id)) is not None:
            found.append((f"extraction/html/{page_id}", RawPage(url=bench.urls[page_id], html=html)))
        if (text := bench.text(page_id)) is not None:
            found.append((f"extraction/text/{page_id}", RawPage(url=bench.urls[page_id], text=text)))
    return found


def _wild_pages(root: Path) -> list[tuple[str, RawPage]]:
    """The wild set's HTML pages, decoded as its evaluation decodes them."""
    wild = load_wild(root)
    return [(f"wild/{i}", RawPage(url=wild.items[i]["url"], html=html))
            for i in sorted(wild.items) if (html := wild.html(i)) is not None]


def mode(page: RawPage) -> str:
    """'html' or 'text': the path `clean` takes for the page."""
    return "html" if isinstance(page.html, str) and page.html.strip() else "text"


def digest(page: RawPage) -> str:
    """SHA-256 of everything cleaning yields for the page (its time stamps left out)."""
    result = clean(page)
    fields = dataclasses.asdict(result)
    fields.pop("stage_seconds", None)
    parts = [type(result).__name__.encode(), orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)]
    if mode(page) == "html":
        found = html_candidates(page.html or "", page.url)
        if found is not None:
            parts += [orjson.dumps(found.blocks.texts), found.blocks.features.tobytes(),
                      orjson.dumps(dataclasses.asdict(found.meta), option=orjson.OPT_SORT_KEYS),
                      orjson.dumps(dataclasses.asdict(found.page_type), option=orjson.OPT_SORT_KEYS)]
        if (tree := parse_html(page.html or "")) is not None:
            # what the page-type models read (the word models read each distinct token once)
            features, tokens = read_tree(drop_code(tree), page.url)
            parts += [orjson.dumps(features, option=orjson.OPT_SORT_KEYS), orjson.dumps(sorted(set(tokens)))]
    elif isinstance(page.text, str) and page.text.strip():
        from worker.steps.clean.dump import read_dump  # here: a checkout timed by --against may lack it

        dump = read_dump(page.text, normalize_code(page.language), page.url)
        features, tokens = read_text(page.text, page.url)
        parts += [orjson.dumps([line.text for line in dump.lines]), dump.rows.tobytes(),
                  orjson.dumps(features, option=orjson.OPT_SORT_KEYS), orjson.dumps(sorted(set(tokens)))]
    return hashlib.sha256(b"\x00".join(parts)).hexdigest()


def _trafilatura(html: str) -> str:
    """trafilatura's default `extract`, comments left out (as `eval extraction` runs it)."""
    import trafilatura

    return trafilatura.extract(html, include_comments=False) or ""


def cpu_ms(pages: list[tuple[str, RawPage]], reps: int, beside_trafilatura: bool = False) -> dict[str, float]:
    """CPU milliseconds a page of `clean`, by set and mode, over `reps` timed passes; with
    `beside_trafilatura`, trafilatura's default extract on each HTML page right after it."""
    for _, page in pages:
        clean(page)
        if beside_trafilatura and page.html:
            _trafilatura(page.html)
    spent: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for _ in range(reps):
        for key, page in pages:
            group = f"{key.split('/')[0]} {mode(page)}"
            started = time.process_time()
            clean(page)
            elapsed = time.process_time() - started
            for name in (group, f"{key.split('/')[0]} all"):
                spent[name] += elapsed
                count[name] += 1
            if beside_trafilatura and page.html:
                name = f"{key.split('/')[0]} trafilatura"
                started = time.process_time()
                _trafilatura(page.html)
                spent[name] += time.process_time() - started
                count[name] += 1
    return {name: 1000 * spent[name] / count[name] for name in sorted(spent)}


def _one_pass(checkout: Path, argv: list[str]) -> dict[str, float]:
    """One timed pass of this script in a fresh process on `checkout`'s `worker` package."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    out = subprocess.run([sys.executable, __file__, *argv, "--reps", "1", "--json"], env=env,
                         capture_output=True, text=True, check=True).stdout
    return dict(json.loads(out.splitlines()[-1]))


def side_by_side(other: Path, argv: list[str], reps: int) -> None:
    """Time this checkout and `other` in alternating processes, `reps` passes each."""
    this = Path(worker.__file__).resolve().parents[1]
    spent: dict[str, dict[str, float]] = {"this": defaultdict(float), "other": defaultdict(float)}
    for rep in range(reps):
        order = [("this", this), ("other", other)] if rep % 2 == 0 else [("other", other), ("this", this)]
        for side, checkout in order:
            for name, ms in _one_pass(checkout, argv).items():
                spent[side][name] += ms / reps
    print(f"{'':16s} {'this':>8s} {'other':>8s}  other/this   (CPU ms a page; this {this}, other {other})")
    for name in sorted(spent["this"]):
        mine, theirs = spent["this"][name], spent["other"][name]
        print(f"{name:16s} {mine:8.2f} {theirs:8.2f}  {theirs / mine:.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", help="raw page events, JSONL (.gz fine)")
    parser.add_argument("--extraction", type=Path, help="a labelled extraction folder (html/, text/)")
    parser.add_argument("--wild", type=Path, help="a wild-set folder (html/, evaldata.json)")
    parser.add_argument("--reps", type=int, default=3, help="timed passes over the pages (0: none)")
    parser.add_argument("--save", type=Path, help="write one output digest a page to this file")
    parser.add_argument("--compare", type=Path, help="check the output digests against this file")
    parser.add_argument("--against", type=Path, help="another checkout to time beside this one")
    parser.add_argument("--mode", choices=("html", "text", "both"), default="both",
                        help="clean only the HTML pages or only the text dumps")
    parser.add_argument("--every", type=int, default=1, help="only every Nth page (in the sets' order)")
    parser.add_argument("--trafilatura", action="store_true",
                        help="time trafilatura's default extract on each HTML page beside `clean`")
    parser.add_argument("--worker-collector", action="store_true",
                        help="time under the collector thresholds the worker's step processes set")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # one pass's figures
    args = parser.parse_args()
    if args.worker_collector:
        from worker.cpu import COLLECTOR_THRESHOLDS

        gc.set_threshold(*COLLECTOR_THRESHOLDS)
    if args.against:
        sources = [arg for flag in ("pages", "extraction", "wild") if getattr(args, flag)
                   for arg in (f"--{flag}", str(getattr(args, flag)))]
        sources += ["--mode", args.mode, "--every", str(args.every)]
        sources += ["--worker-collector"] if args.worker_collector else []
        side_by_side(args.against.resolve(), sources, args.reps)
        return 0
    pages = [*(_jsonl_pages(args.pages) if args.pages else []),
             *(_extraction_pages(args.extraction) if args.extraction else []),
             *(_wild_pages(args.wild) if args.wild else [])]
    pages = [(key, page) for key, page in pages if args.mode in ("both", mode(page))][::args.every]
    if args.reps:
        figures = cpu_ms(pages, args.reps, args.trafilatura)
        if args.json:
            print(json.dumps(figures))
            return 0
        for name, ms in figures.items():
            print(f"{name:16s} {ms:6.2f} ms CPU a page")
        for name in (n for n in figures if n.endswith(" trafilatura")):
            html = name.replace(" trafilatura", " html")
            print(f"{html:16s} {figures[html] / figures[name]:6.2f} x trafilatura's CPU a page")
    if args.save or args.compare:
        digests = {key: digest(page) for key, page in pages}
        if args.save:
            args.save.write_text(json.dumps(digests, indent=0, sort_keys=True), encoding="utf-8")
            print(f"{len(digests)} page digests written to {args.save}")
        if args.compare:
            saved = json.loads(args.compare.read_text(encoding="utf-8"))
            differing = sorted(k for k in digests.keys() | saved.keys() if digests.get(k) != saved.get(k))
            print(f"{len(digests)} pages compared: {len(differing)} differ")
            # Wild-set pages are a held-out check: name how many differ, not which.
            for key in (k for k in differing[:20] if not k.startswith("wild/")):
                print(f"  differs: {key}")
            return 1 if differing else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
