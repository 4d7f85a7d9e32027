"""Train the shipped page-type models on labelled pages and write them to worker/data/.

    python bench/train_page_type.py --data /work/shared/bench/wcxb/dev

One model for HTML pages (`page-type-html.txt`), one for text dumps (`page-type-text.txt`),
LightGBM's text format, with its word models (`-words.json.gz`) and its decision rule
(`-rule.json`: the weight of P(article) against the other kinds). The hyperparameters and the
weight are chosen by cross-validation grouped by site on the folder's pages, then the model is
trained on all of them. `ingest-worker eval page-types
--data DIR --folds K` runs the same selection inside each outer training fold and reports the
held-out figures.
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

from worker.evaluation.page_types import load, train_shipped
from worker.steps.clean.page_type import DATA


def main() -> None:
    """Train on every labelled page of --data and write worker/data/page-type-*.txt."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="folder with ground-truth.json (page_type per page)")
    parser.add_argument("--out", type=Path, default=DATA, help="where the model files go")
    parser.add_argument("--mode", choices=("html", "text", "both"), default="both")
    args = parser.parse_args()
    for source in ("html", "text"):
        if args.mode not in (source, "both"):
            continue
        data = load(args.data, source)  # type: ignore[arg-type]
        model, params, rounds = train_shipped(data)
        path = args.out / f"page-type-{source}.txt"
        path.write_text(model.booster.model_to_string(), encoding="utf-8")
        rule = args.out / f"page-type-{source}-rule.json"
        rule.write_text(json.dumps({"article_weight": model.article_weight}) + "\n", encoding="utf-8")
        if model.words is not None:
            words = args.out / f"page-type-{source}-words.json.gz"
            words.write_bytes(gzip.compress(model.words.to_json().encode("utf-8"), mtime=0))
        print(f"{path.name}: {len(data.ids)} pages, {len(model.features)} features, {params} rounds={rounds}, "
              f"article weight {model.article_weight}")


if __name__ == "__main__":
    main()
