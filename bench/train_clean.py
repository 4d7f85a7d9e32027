"""Train the cleaners' shipped models on labelled folders and write them to worker/data/.

    python bench/train_clean.py --data /work/shared/bench/extraction/dev \\
        --text /work/shared/bench/wcxb/dev /work/shared/bench/extraction/dev

`--data` trains the HTML block model (`clean-blocks.json`) on every page of the folder. `--text`
folders (one or more) train the text-dump line model (`clean-lines.json`,
`worker/evaluation/dump_training.py`): its selection rule is chosen on site-grouped folds of
those pages, then its trees are trained on all of them. `ingest-worker eval extraction --data DIR
--folds K` trains the same way on K-1 folds and reports the held-out figures.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from worker.evaluation.clean_training import labelled_pages, train
from worker.evaluation.dump_training import train_line_model
from worker.evaluation.extraction import dump_pages, html_training_candidates, load_bench
from worker.steps.clean.blocks import FEATURES as BLOCK_FEATURES
from worker.steps.clean.line_model import LINE_MODEL_FILE
from worker.steps.clean.model import DATA


def main() -> None:
    """Train on every page of the folders given and write worker/data/clean-*.json."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, help="folder for the HTML block model")
    parser.add_argument("--text", type=Path, nargs="*", default=[], help="folders for the text-dump line model")
    parser.add_argument("--out", type=Path, default=DATA, help="where the model files go")
    args = parser.parse_args()
    if args.data:
        bench = load_bench(args.data)
        pages = labelled_pages(sorted(bench.bodies), lambda i: html_training_candidates(bench, i), bench.bodies)
        model = train(pages.values(), BLOCK_FEATURES)
        (args.out / "clean-blocks.json").write_text(model.to_json() + "\n", encoding="utf-8")
        print(f"clean-blocks.json: {len(pages)} pages, {sum(len(p.rows) for p in pages.values())} blocks")
    if args.text:
        lines = [page for folder in args.text for page in dump_pages(load_bench(folder)).values()]
        model, scores = train_line_model(lines)
        for selection, score in scores.items():
            print(f"selection {selection.rule} {selection.value}: inner-fold score {score:.4f}")
        (args.out / LINE_MODEL_FILE.name).write_text(model.to_json() + "\n", encoding="utf-8")
        print(f"{LINE_MODEL_FILE.name}: {len(lines)} pages, {sum(len(p.dump.lines) for p in lines)} lines, "
              f"selection {model.selection.rule} {model.selection.value}")


if __name__ == "__main__":
    main()
