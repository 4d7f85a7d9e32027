"""Train the cleaners' shipped models on a labelled folder and write them to worker/data/.

    python bench/train_clean.py --data /work/shared/bench/extraction/dev

`ingest-worker eval extraction --data DIR --folds K` trains the same way on K-1 folds and
reports the held-out figures; this script trains on every page of the folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from worker.evaluation.clean_training import labelled_pages, train
from worker.evaluation.extraction import html_training_candidates, load_bench, text_training_candidates
from worker.steps.clean.blocks import FEATURES as BLOCK_FEATURES
from worker.steps.clean.dump import LINE_FEATURES
from worker.steps.clean.model import DATA


def main() -> None:
    """Train on every page of --data and write worker/data/clean-*.json."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="folder with ground-truth.json")
    parser.add_argument("--out", type=Path, default=DATA, help="where the model files go")
    args = parser.parse_args()
    bench = load_bench(args.data)
    ids = sorted(bench.bodies)
    for name, candidates, features in (
        ("blocks", html_training_candidates, BLOCK_FEATURES),
        ("lines", text_training_candidates, LINE_FEATURES),
    ):
        pages = labelled_pages(ids, lambda i, find=candidates: find(bench, i), bench.bodies)  # type: ignore[misc]
        model = train(pages.values(), features)
        (args.out / f"clean-{name}.json").write_text(model.to_json() + "\n", encoding="utf-8")
        print(f"clean-{name}.json: {len(pages)} pages, {sum(len(p.rows) for p in pages.values())} {name}")


if __name__ == "__main__":
    main()
