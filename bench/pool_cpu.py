"""Where the step pool's CPU a page goes beyond the same steps run inline.

    python bench/pool_cpu.py --pages PAGES.jsonl[.gz] [--rounds 3]

The pool processes run `prepare` (clean + fingerprint) on every page and `tag_texts` on the
unique articles in batches. This runs exactly that work in fresh processes, with no Kafka and no
pipe, so the causes can be told apart:

- `one`: one process does all pages (the clean and entities stages of `bench/throughput.py`'s
  inline pass);
- `split, one after the other`: two processes, pages dealt alternately, run one at a time: each
  process meets half of the pages' words and markup for the first time on its own;
- `split, at once`: the same two processes run together on the machine's two cores: adds what
  two CPU-heavy processes sharing the L3 cache and memory bandwidth cost;
- `one, pickled`: one process, each call's arguments and result pickled and unpickled as the
  pool's pipe does (both ends counted);
- `one, tag calls of one`: one process, each unique article tagged in a call of its own, right
  after its page is cleaned, as the worker's tag agent mostly does in a burst (its 50 ms window
  collects one or two articles while pages are cleaned at the rate the pool allows).

Which pages are unique (and so tagged) comes from one dedup pass in this process first, so every
variant does the same work. Each child loads the models before its clock starts. Variants
alternate within each round; CPU ms a page is each variant's children's CPU over all pages.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import Any

from worker.cpu import prepare, tag_texts, warm_up
from worker.document import Dropped, Prepared
from worker.settings import Settings
from worker.steps.decode import decode
from worker.steps.dedup import DedupIndex, Fingerprint

sys.path.insert(0, str(Path(__file__).parent))
from throughput import read_pages  # noqa: E402


def unique_pages(pages: Sequence[bytes], settings: Settings) -> list[int]:
    """Numbers of the pages whose article the dedup decision keeps (all pages in one index)."""
    index = DedupIndex({}, window_seconds=settings.dedup_window_days * 86400)
    kept = []
    for number, value in enumerate(pages):
        page = decode(value, None, settings.max_page_bytes, ())
        prepared = prepare(page) if not isinstance(page, Dropped) else page
        if isinstance(prepared, Dropped):
            continue
        fp = Fingerprint.from_bytes(prepared.fingerprint)
        if index.decide(prepared.article.url, fp, time.time()).duplicate_of is None:
            kept.append(number)
    return kept


def _roundtrip(value: Any) -> Any:
    """`value` pickled and unpickled as a call's arguments or result crossing the pool's pipe."""
    return pickle.loads(ForkingPickler.dumps(value))


def run_share(pages: Sequence[bytes], numbers: Sequence[int], unique: set[int], settings: Settings,
              pickled: bool, tag_batch: int) -> float:
    """CPU seconds this process spends on the pool's work for the pages `numbers`."""
    warm_up(settings.spacy_model)
    through: Callable[[Any], Any] = _roundtrip if pickled else (lambda value: value)
    decoded = [decode(pages[number], None, settings.max_page_bytes, ()) for number in numbers]
    texts: list[str] = []
    languages: list[str | None] = []

    def tag_pending() -> None:
        through(tag_texts(*through((texts, languages, settings.spacy_model, settings.entity_batch_size))))
        texts.clear()
        languages.clear()

    started = time.process_time()
    for number, page in zip(numbers, decoded, strict=True):
        if isinstance(page, Dropped):
            continue
        prepared = through(prepare(through(page)))
        if isinstance(prepared, Prepared) and number in unique:
            texts.append(prepared.article.text)
            languages.append(prepared.article.language)
            if len(texts) >= tag_batch:
                tag_pending()
    if texts:
        tag_pending()
    return time.process_time() - started


def children(args: argparse.Namespace, unique_file: str, parts: int, together: bool, pickled: bool,
             tag_batch: int) -> float:
    """CPU seconds of `parts` child processes sharing the pages, run together or one by one."""
    command = [sys.executable, __file__, "--pages", args.pages, "--unique", unique_file, "--parts", str(parts),
               "--tag-batch", str(tag_batch)]
    if pickled:
        command.append("--pickled")
    runs = [command + ["--part", str(part)] for part in range(parts)]
    if together:
        started = [subprocess.Popen(run, stdout=subprocess.PIPE) for run in runs]
        outputs = [process.communicate()[0] for process in started]
    else:
        outputs = [subprocess.run(run, stdout=subprocess.PIPE, check=True).stdout for run in runs]
    return sum(float(output) for output in outputs)


VARIANTS: dict[str, tuple[int, bool, bool, int]] = {  # name -> (processes, together, pickled, tag batch)
    "one": (1, False, False, 0),
    "split, one after the other": (2, False, False, 0),
    "split, at once": (2, True, False, 0),
    "one, pickled": (1, False, True, 0),
    "one, tag calls of one": (1, False, False, 1),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", required=True, help="raw page events, JSONL (.gz fine)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--unique", help=argparse.SUPPRESS)  # a child: the unique page numbers
    parser.add_argument("--parts", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--part", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--pickled", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tag-batch", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    pages = read_pages(args.pages)
    settings = Settings()
    if args.part is not None:
        unique = set(json.loads(Path(args.unique).read_text()))
        numbers = range(args.part, len(pages), args.parts)
        tag_batch = args.tag_batch or settings.entity_batch_size
        print(run_share(pages, list(numbers), unique, settings, args.pickled, tag_batch))
        return
    unique_file = f"/tmp/pool_cpu_unique_{os.getpid()}.json"
    Path(unique_file).write_text(json.dumps(unique_pages(pages, settings)))
    try:
        print(f"{len(pages)} pages, {len(json.loads(Path(unique_file).read_text()))} unique; "
              f"load average {os.getloadavg()[0]:.1f} at start", flush=True)
        for round_number in range(1, args.rounds + 1):
            figures = []
            for name, (parts, together, pickled, tag_batch) in VARIANTS.items():
                seconds = children(args, unique_file, parts, together, pickled, tag_batch)
                figures.append(f"{name} {1000 * seconds / len(pages):.1f}")
            print(f"round {round_number}, CPU ms a page: " + "; ".join(figures)
                  + f" (load average {os.getloadavg()[0]:.1f})", flush=True)
    finally:
        os.unlink(unique_file)


if __name__ == "__main__":
    main()
