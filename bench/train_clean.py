"""Train the cleaners' shipped models on a labelled folder and write them to worker/data/.

    python bench/train_clean.py --data /work/shared/bench/extraction/dev

`ingest-worker eval extraction --data DIR --folds K` trains the same way on K-1 folds and
reports the held-out figures; this script trains on every page of the folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from worker.evaluation.clean_training import labelled_pages, train
from worker.evaluation.extraction import html_training_candidates, load_bench
from worker.steps.clean.blocks import FEATURES as BLOCK_FEATURES
from worker.steps.clean.model import DATA


def main() -> None:
    """Train on every page of --data and write worker/data/clean-*.json."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="folder with ground-truth.json")
    parser.add_argument("--out", type=Path, default=DATA, help="where the model files go")
    args = parser.parse_args()
    bench = load_bench(args.data)
    pages = labelled_pages(sorted(bench.bodies), lambda i: html_training_candidates(bench, i), bench.bodies)
    model = train(pages.values(), BLOCK_FEATURES)
    (args.out / "clean-blocks.json").write_text(model.to_json() + "\n", encoding="utf-8")
    print(f"clean-blocks.json: {len(pages)} pages, {sum(len(p.rows) for p in pages.values())} blocks")


if __name__ == "__main__":
    main()
