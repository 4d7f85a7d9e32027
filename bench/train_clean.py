"""Train the cleaners' shipped models on labelled folders and write them to worker/data/.

    python bench/train_clean.py --html /work/shared/bench/wcxb/dev \\
        --text /work/shared/bench/wcxb/dev /work/shared/bench/extraction/dev

`--html` folders (one or more) train the HTML block model (`clean-blocks.lgb.gz`): its choices
(tree count, context trees or none, keep threshold, paragraph filter) are made on site-grouped
folds of those pages, then the trees are trained on all of them (the context trees on the first
trees' held-out probabilities of those folds; the story-page trees also on the folders' article
pages with their story taken out). `--text` folders (one or more) train the text-dump
line model (`worker/evaluation/dump_training.py`): its selection rule is chosen on site-grouped
folds of those pages, then its trees are trained on all of them. `ingest-worker eval extraction
--data DIR --folds K` trains the same way on K-1 folds and reports the held-out figures.
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

from worker.evaluation.clean_training import BlockPage, made_from, train_block_model
from worker.evaluation.dump_training import train_line_model
from worker.evaluation.extraction import block_pages, dump_pages, load_bench
from worker.steps.clean.line_model import LINE_MODEL_FILE
from worker.steps.clean.model import DATA


def main() -> None:
    """Train on every page of the folders given and write the models to worker/data/."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--html", type=Path, nargs="*", default=[], help="folders for the HTML block model")
    parser.add_argument("--text", type=Path, nargs="*", default=[], help="folders for the text-dump line model")
    parser.add_argument("--out", type=Path, default=DATA, help="where the model files go")
    args = parser.parse_args()
    if args.html:
        train_html(args.html, args.out)
    if args.text:
        lines = [page for folder in args.text for page in dump_pages(load_bench(folder)).values()]
        model, scores = train_line_model(lines)
        for selection, score in scores.items():
            print(f"selection {selection.rule} {selection.value} share {selection.share}: inner-fold score {score:.4f}")
        for kind, selection in model.by_kind.items():
            print(f"{kind} pages: {selection.rule} {selection.value} share {selection.share}")
        (args.out / LINE_MODEL_FILE.name).write_bytes(gzip.compress((model.to_json() + "\n").encode("utf-8"), mtime=0))
        print(f"{LINE_MODEL_FILE.name}: {len(lines)} pages, {sum(len(p.dump.lines) for p in lines)} lines, "
              f"selection {model.selection.rule} {model.selection.value} share {model.selection.share}")


def train_html(folders: list[Path], out: Path) -> None:
    """The block model, its choices made on site-grouped folds of all the folders' pages."""
    pages: dict[str, BlockPage] = {}
    urls: dict[str, str] = {}
    for folder in folders:
        bench = load_bench(folder)
        found = block_pages(bench, sorted(bench.bodies), storyless=True)
        pages |= {f"{folder}:{i}": page for i, page in found.items()}
        urls |= {f"{folder}:{i}": bench.urls[made_from(i)] for i in found}
    model = train_block_model(pages, urls)
    model.write(out / "clean-blocks.lgb.gz")
    blocks = sum(len(p.rows) for p in pages.values())
    print(f"clean-blocks.lgb.gz: {len(pages)} pages, {blocks} blocks, choices {json.dumps(model.choices)}")


if __name__ == "__main__":
    main()
