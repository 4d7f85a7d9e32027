"""`ingest-worker eval page-types`: the page-type classifier on held-out folds of labelled pages.

`--data DIR` is a folder in the article-extraction-benchmark layout with a `page_type` per page
(WCXB's dev split)::

    ground-truth.json   {id: {"url": str, "page_type": str, ...}}
    html/<id>.html.gz   the page as fetched
    text/<id>.txt       the whole page saved as visible text (optional)

The pages are split into `--folds K` folds grouped by site (a site's pages share a template:
a model that saw it would score too well on its other pages). For each outer fold a model is
trained on the other folds, with its hyperparameters chosen by an inner grouped
cross-validation inside those folds only (nested), and it classifies the held-out fold. The
report pools the held-out predictions: accuracy, article-vs-other precision/recall/F1, the
confusion matrix, per-fold accuracy, and the classifier's CPU per page. `bench/train_page_type.py`
runs the same selection on all pages and writes the shipped models.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from worker.cli.progress import Progress
from worker.steps.clean.html import drop_code, parse_html
from worker.steps.clean.page_type import (
    KINDS,
    WORD_GROUPS,
    PageTypeModel,
    WordModel,
    WordModels,
    grouped_tokens,
    read_text,
    read_tree,
    word_values,
)
from worker.steps.common import host

Source = Literal["html", "text"]

# The grid the inner folds choose from; rounds are read off one fit every `ROUND_STEP` rounds.
GRID: tuple[dict[str, object], ...] = tuple(
    {"num_leaves": leaves, "min_child_samples": 20, "balanced": balanced}
    for leaves in (7, 15)
    for balanced in (False, True)
)
# Text dumps' models are not weighted by kind: balanced weights give each of the seven kinds a
# seventh of the training weight (articles are 53% of WCXB and most of a news crawl), and the
# dump model so trained read a news story's dump, sidebar teasers below it, as a forum.
GRID_OF: dict[str, tuple[dict[str, object], ...]] = {
    "html": GRID,
    "text": tuple(params for params in GRID if not params["balanced"]),
}
MAX_ROUNDS = 300
ROUND_STEP = 50
LEARNING_RATE = 0.05
INNER_FOLDS = 3


@dataclass(slots=True)
class Labelled:
    """Feature rows of labelled pages: ids, site, true kind (index into `KINDS`), features."""

    source: Source = "html"
    ids: list[str] = field(default_factory=list)
    sites: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    rows: list[dict[str, float]] = field(default_factory=list)
    tokens: list[list[str]] = field(default_factory=list)  # the word model's input
    seconds: float = 0.0  # CPU seconds the features took (parse excluded for HTML: the cleaner parses)

    def matrix(self, names: Sequence[str]) -> np.ndarray:
        """The rows as a matrix over `names` (NaN where a page has no such feature)."""
        return np.array([[row.get(n, np.nan) for n in names] for row in self.rows], dtype=float)


def site(url: str) -> str:
    """The site a page belongs to: its host's registrable part (`blog.x.com` and `x.com` are one)."""
    name = host(url)
    labels = name.split(".")
    keep = 3 if len(labels) >= 3 and len(labels[-2]) <= 3 and len(labels[-1]) == 2 else 2  # x.co.uk
    return ".".join(labels[-keep:])


def fold_of_site(name: str, folds: int) -> int:
    """A site's fold: a stable hash of its name, so a site's pages always share one fold."""
    return int(hashlib.sha1(name.encode("utf-8")).hexdigest(), 16) % folds


def load(root: Path, source: Source) -> Labelled:
    """The feature rows of every labelled page of `root` that has a `source` file."""
    truth = json.loads((root / "ground-truth.json").read_text(encoding="utf-8"))
    data = Labelled(source=source)
    meter = Progress(f"{source} features", len(truth))
    for page_id, item in sorted(truth.items()):
        meter.advance()
        kind = item.get("page_type")
        if kind not in KINDS:
            continue
        url = item.get("url") or ""
        if source == "html":
            path = root / "html" / f"{page_id}.html.gz"
            if not path.exists():
                continue
            tree = parse_html(gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace"))
            if tree is None:
                continue
            drop_code(tree)
            started = time.process_time()
            row, tokens = read_tree(tree, url)
        else:
            path = root / "text" / f"{page_id}.txt"
            if not path.exists():
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            started = time.process_time()
            row, tokens = read_text(text, url)
        data.seconds += time.process_time() - started
        data.ids.append(page_id)
        data.sites.append(site(url))
        data.labels.append(KINDS.index(kind))
        data.rows.append(row)
        data.tokens.append(tokens)
    meter.finish()
    return data


WORD_C = 10.0  # the word models' inverse regularisation (chosen on folds 1-4 of WCXB dev, fold 0 unseen)
WORD_MIN_SITES = 2  # a token counts only when pages of at least this many sites show it


def fit_words(tokens: Sequence[list[str]], labels: np.ndarray, sites: Sequence[str]) -> WordModels:
    """A word model for each group of tokens these pages show (`WORD_GROUPS`)."""
    groups = [grouped_tokens(page) for page in tokens]
    return WordModels([
        fit_group(group, [page.get(group, []) for page in groups], labels, sites)
        for group in WORD_GROUPS if any(group in page for page in groups)
    ])


def fit_group(group: str, tokens: Sequence[list[str]], labels: np.ndarray, sites: Sequence[str]) -> WordModel:
    """One group's word model (multinomial logistic regression over token values) trained on these
    pages; only tokens seen on `WORD_MIN_SITES` sites or more, so no site's own words are learned."""
    from scipy.sparse import csr_matrix
    from sklearn.linear_model import LogisticRegression

    seen: dict[str, set[str]] = {}
    for page, name in zip(tokens, sites, strict=True):
        for token in set(page):
            seen.setdefault(token, set()).add(name)
    vocabulary = {t: i for i, t in enumerate(sorted(t for t, s in seen.items() if len(s) >= WORD_MIN_SITES))}
    present = sorted(set(int(v) for v in labels))
    intercept = np.full(len(KINDS), -30.0)
    if len(present) < 2 or not vocabulary:
        counts = np.bincount(labels, minlength=len(KINDS)).astype(float)
        return WordModel(group, list(np.log(np.maximum(counts, 1e-13) / max(counts.sum(), 1.0))), {})
    rows, cols, values = [], [], []
    for r, page in enumerate(tokens):
        for token, value in word_values(page).items():
            c = vocabulary.get(token)
            if c is not None:
                rows.append(r)
                cols.append(c)
                values.append(value)
    x = csr_matrix((values, (rows, cols)), shape=(len(tokens), len(vocabulary)))
    model = LogisticRegression(C=WORD_C, max_iter=3000)
    model.fit(x, labels)
    coef = np.zeros((len(KINDS), len(vocabulary)))
    if len(present) == 2:  # sklearn's binary form: one row, for the second class
        coef[present[1]] = model.coef_[0]
        intercept[present[0]], intercept[present[1]] = 0.0, float(model.intercept_[0])
    else:
        for j, kind in enumerate(model.classes_):
            coef[int(kind)] = model.coef_[j]
            intercept[int(kind)] = float(model.intercept_[j])
    keep = np.abs(coef).max(axis=0) >= 1e-3
    weights = {t: coef[:, i].tolist() for t, i in vocabulary.items() if keep[i]}
    return WordModel(group, intercept.tolist(), weights)


def word_rows(model: WordModels, tokens: Sequence[list[str]]) -> list[dict[str, float]]:
    """The word model's features of each page."""
    return [model.features(page) for page in tokens]


def out_of_fold_words(tokens: Sequence[list[str]], labels: np.ndarray, sites: Sequence[str]) -> list[dict[str, float]]:
    """Each page's word features from a word model that did not see its site (grouped folds inside
    these pages): the boosted model learns how far to trust words it could not have memorised."""
    folds = _folds(sites, INNER_FOLDS, salt="words:")
    out: list[dict[str, float]] = [{} for _ in tokens]
    for k in range(INNER_FOLDS):
        train = [i for i in range(len(tokens)) if folds[i] != k]
        test = [i for i in range(len(tokens)) if folds[i] == k]
        if not test:
            continue
        model = fit_words([tokens[i] for i in train], labels[train], [sites[i] for i in train])
        for i, row in zip(test, word_rows(model, [tokens[i] for i in test]), strict=True):
            out[i] = row
    return out


def _with_words(rows: Sequence[dict[str, float]], words: Sequence[dict[str, float]]) -> list[dict[str, float]]:
    return [{**row, **w} for row, w in zip(rows, words, strict=True)]


def _weights(labels: np.ndarray, balanced: bool) -> np.ndarray:
    if not balanced:
        return np.ones(len(labels))
    counts = np.bincount(labels, minlength=len(KINDS)).astype(float)
    return (len(labels) / (len(KINDS) * np.maximum(counts, 1.0)))[labels]


def fit(x: np.ndarray, y: np.ndarray, names: Sequence[str], params: dict[str, object], rounds: int) -> PageTypeModel:
    """A LightGBM multiclass model over `names` with the grid point `params`, `rounds` rounds."""
    import lightgbm

    train = lightgbm.Dataset(x, label=y, weight=_weights(y, bool(params["balanced"])),
                             feature_name=list(names), free_raw_data=False)
    booster = lightgbm.train(_lgb_params(params), train, num_boost_round=rounds)
    return PageTypeModel(booster.model_to_string())


def _lgb_params(params: dict[str, object]) -> dict[str, object]:
    return {
        "objective": "multiclass",
        "num_class": len(KINDS),
        "learning_rate": LEARNING_RATE,
        "num_leaves": params["num_leaves"],
        "min_child_samples": params["min_child_samples"],
        "feature_fraction": 0.7,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "num_threads": 1,
        "verbosity": -1,
        "seed": 7,
        "deterministic": True,
    }


def _folds(sites: Sequence[str], folds: int, salt: str = "") -> np.ndarray:
    return np.array([fold_of_site(salt + s, folds) for s in sites])


def select(x: np.ndarray, y: np.ndarray, sites: Sequence[str], names: Sequence[str],
           grid: Sequence[dict[str, object]] = GRID) -> tuple[dict[str, object], int]:
    """The point of `grid` and number of rounds with the best inner grouped-CV accuracy on these
    pages (ties: the lower log loss), found on these pages only."""
    import lightgbm

    inner = _folds(sites, INNER_FOLDS, salt="inner:")
    steps = list(range(ROUND_STEP, MAX_ROUNDS + 1, ROUND_STEP))
    best: tuple[float, float, int, int] | None = None
    for g, params in enumerate(grid):
        correct = np.zeros(len(steps))
        loss = np.zeros(len(steps))
        for k in range(INNER_FOLDS):
            train, test = inner != k, inner == k
            if not test.any() or not train.any():
                continue
            data = lightgbm.Dataset(x[train], label=y[train], weight=_weights(y[train], bool(params["balanced"])),
                                    feature_name=list(names))
            booster = lightgbm.train(_lgb_params(params), data, num_boost_round=MAX_ROUNDS)
            for s, rounds in enumerate(steps):
                p = np.asarray(booster.predict(x[test], num_iteration=rounds, num_threads=1))
                correct[s] += float((p.argmax(axis=1) == y[test]).sum())
                loss[s] -= float(np.log(np.clip(p[np.arange(len(p)), y[test]], 1e-9, 1.0)).sum())
        for s, rounds in enumerate(steps):
            key = (-correct[s], loss[s], g, rounds)
            if best is None or key < best:
                best = key
    assert best is not None
    return dict(grid[best[2]]), best[3]


@dataclass(slots=True)
class Result:
    """Held-out predictions of every page and what each outer fold chose."""

    ids: list[str]
    truth: np.ndarray
    predicted: np.ndarray
    probabilities: np.ndarray
    fold: np.ndarray
    chosen: list[str]
    features_seconds: float
    predict_seconds: float


def nested(data: Labelled, folds: int) -> Result:
    """Each outer fold classified by a model trained, and tuned, on the other folds only (its word
    model too, and the word features it learns from are out-of-fold inside those folds)."""
    y = np.array(data.labels)
    outer = _folds(data.sites, folds)
    probabilities = np.zeros((len(y), len(KINDS)))
    chosen: list[str] = []
    predict_seconds = 0.0
    meter = Progress("outer folds", folds, unit="folds")
    for k in range(folds):
        train_i = [i for i in range(len(y)) if outer[i] != k]
        test_i = [i for i in range(len(y)) if outer[i] == k]
        train_sites = [data.sites[i] for i in train_i]
        train_tokens = [data.tokens[i] for i in train_i]
        train_rows = _with_words([data.rows[i] for i in train_i],
                                 out_of_fold_words(train_tokens, y[train_i], train_sites))
        names = sorted({n for row in train_rows for n in row})
        x = np.array([[row.get(n, np.nan) for n in names] for row in train_rows], dtype=float)
        params, rounds = select(x, y[train_i], train_sites, names, GRID_OF[data.source])
        chosen.append(f"{params} rounds={rounds}")
        model = fit(x, y[train_i], names, params, rounds)
        model.words = fit_words(train_tokens, y[train_i], train_sites)
        started = time.process_time()
        for i in test_i:
            probabilities[i] = model.page_probabilities(data.rows[i], data.tokens[i])
        predict_seconds += time.process_time() - started
        meter.advance()
    meter.finish()
    return Result(data.ids, y, probabilities.argmax(axis=1), probabilities, outer, chosen,
                  data.seconds, predict_seconds)


def train_shipped(data: Labelled) -> tuple[PageTypeModel, dict[str, object], int]:
    """The model to ship: hyperparameters chosen by grouped CV on all pages, trained on all
    (its word features out-of-fold, its word model on all pages)."""
    y = np.array(data.labels)
    rows = _with_words(data.rows, out_of_fold_words(data.tokens, y, data.sites))
    names = sorted({n for row in rows for n in row})
    x = np.array([[row.get(n, np.nan) for n in names] for row in rows], dtype=float)
    params, rounds = select(x, y, data.sites, names, GRID_OF[data.source])
    model = fit(x, y, names, params, rounds)
    model.words = fit_words(data.tokens, y, data.sites)
    return model, params, rounds


# -- figures -------------------------------------------------------------------------------------


def accuracy(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Share of pages whose kind is right."""
    return float((truth == predicted).mean()) if len(truth) else 0.0


def binary_scores(truth: np.ndarray, predicted: np.ndarray, positive: int = 0) -> tuple[float, float, float]:
    """Precision, recall and F1 of one kind (default: article) against all the others."""
    tp = float(((truth == positive) & (predicted == positive)).sum())
    fp = float(((truth != positive) & (predicted == positive)).sum())
    fn = float(((truth == positive) & (predicted != positive)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def confusion(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Counts: rows the true kind, columns the predicted kind, both in `KINDS` order."""
    matrix = np.zeros((len(KINDS), len(KINDS)), dtype=int)
    for t, p in zip(truth, predicted, strict=True):
        matrix[t, p] += 1
    return matrix


def figures(result: Result, folds: int) -> dict[str, object]:
    """The report's numbers as a dict (the `--json` output)."""
    precision, recall, f1 = binary_scores(result.truth, result.predicted)
    pages = len(result.truth)
    return {
        "pages": pages,
        "folds": folds,
        "accuracy": round(accuracy(result.truth, result.predicted), 4),
        "article_vs_other": {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)},
        "per_kind_recall": {
            kind: round(float((result.predicted[result.truth == i] == i).mean()), 4)
            for i, kind in enumerate(KINDS) if (result.truth == i).any()
        },
        "confusion": {"kinds": list(KINDS), "rows_true_columns_predicted": confusion(result.truth,
                                                                                     result.predicted).tolist()},
        "fold_accuracy": [
            round(accuracy(result.truth[result.fold == k], result.predicted[result.fold == k]), 4)
            for k in range(folds)
        ],
        "chosen": result.chosen,
        "cpu_ms_per_page": round(1000 * (result.features_seconds + result.predict_seconds) / max(pages, 1), 2),
    }


def report(name: str, numbers: dict[str, object]) -> Iterator[str]:
    """The human-readable lines of one source's figures."""
    pair = numbers["article_vs_other"]
    assert isinstance(pair, dict)
    yield (f"{name}: {numbers['pages']} pages, held-out folds (k={numbers['folds']}, grouped by site, "
           "hyperparameters chosen inside the training folds)")
    yield (f"  accuracy {numbers['accuracy']:.3f}; article vs other: P {pair['precision']:.3f} "
           f"R {pair['recall']:.3f} F1 {pair['f1']:.3f}; {numbers['cpu_ms_per_page']} ms CPU per page "
           "(features + model, parse excluded)")
    yield "  per-fold accuracy: " + " ".join(f"{a:.3f}" for a in numbers["fold_accuracy"])  # type: ignore[attr-defined]
    matrix = numbers["confusion"]["rows_true_columns_predicted"]  # type: ignore[index]
    short = [k[:5] for k in KINDS]
    yield "  confusion (rows true, columns predicted):"
    yield "  " + " " * 14 + " ".join(f"{s:>6}" for s in short) + "  recall"
    for kind, row in zip(KINDS, matrix, strict=True):
        total = sum(row) or 1
        yield f"  {kind:<14}" + " ".join(f"{n:>6}" for n in row) + f"  {row[KINDS.index(kind)] / total:.3f}"


def shipped(data: Labelled, source: Source) -> Result:
    """Every page classified by the shipped model (no folds: on pages it was trained on, the
    figures say only that it learned them)."""
    from worker.steps.clean.page_type import shipped_model

    model = shipped_model(source)
    started = time.process_time()
    probabilities = np.array([model.page_probabilities(row, tokens) for row, tokens in
                              zip(data.rows, data.tokens, strict=True)]).reshape(len(data.rows), len(KINDS))
    seconds = time.process_time() - started
    y = np.array(data.labels)
    return Result(data.ids, y, probabilities.argmax(axis=1), probabilities, np.zeros(len(y), dtype=int),
                  ["shipped model"], data.seconds, seconds)


def sections(root: Path, sources: Sequence[Source], folds: int) -> tuple[list[tuple[str, list[str]]],
                                                                          dict[str, object]]:
    """Page-type accuracy and confusion of a labelled folder's pages as report sections (title,
    lines) and figures by source: held-out folds when `folds` > 1 (the same nested evaluation as
    `ingest-worker eval page-types`), else the shipped models."""
    found: list[tuple[str, list[str]]] = []
    numbers: dict[str, object] = {}
    for source in sources:
        data = load(root, source)
        if not data.ids:
            continue
        result = nested(data, folds) if folds > 1 else shipped(data, source)
        figures_of = figures(result, max(folds, 1))
        numbers[source] = figures_of
        how = f"held-out folds, k={folds}" if folds > 1 else "shipped model"
        lines = list(report(source, figures_of))[1:]
        found.append((f"page types from {'HTML' if source == 'html' else 'text dumps'} ({how})", lines))
    return found, numbers


def build_parser() -> argparse.ArgumentParser:
    """The flags of `ingest-worker eval page-types`."""
    parser = argparse.ArgumentParser(prog="ingest-worker eval page-types", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="labelled folder (WCXB layout)")
    parser.add_argument("--folds", type=int, default=5, metavar="K", help="outer folds, grouped by site (default 5)")
    parser.add_argument("--mode", choices=("html", "text", "both"), default="both",
                        help="classify the HTML pages, the text dumps, or both (default)")
    parser.add_argument("--predictions-out", type=Path, metavar="FILE",
                        help="write each page's held-out prediction as JSONL")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    return parser


def main(argv: list[str]) -> int:
    """Run the nested evaluation and print the figures."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.folds < 2:
        parser.error("--folds needs K >= 2")
    if not (args.data / "ground-truth.json").exists():
        parser.error(f"{args.data} has no ground-truth.json")
    sources: list[Source] = ["html", "text"] if args.mode == "both" else [args.mode]
    out: dict[str, object] = {}
    lines: list[str] = []
    predictions: list[dict[str, object]] = []
    for source in sources:
        data = load(args.data, source)
        if not data.ids:
            parser.error(f"{args.data} has no labelled {source} pages")
        result = nested(data, args.folds)
        numbers = figures(result, args.folds)
        out[source] = numbers
        lines.extend(report(source, numbers))
        for i, page_id in enumerate(result.ids):
            predictions.append({
                "id": page_id, "source": source, "page_type": KINDS[result.truth[i]],
                "predicted": KINDS[result.predicted[i]], "fold": int(result.fold[i]),
                "probabilities": {k: round(float(p), 4) for k, p in zip(KINDS, result.probabilities[i], strict=True)},
            })
    if args.predictions_out:
        args.predictions_out.write_text("".join(json.dumps(p) + "\n" for p in predictions), encoding="utf-8")
    print(json.dumps(out, indent=2) if args.json else "\n".join(lines))
    sys.stdout.flush()
    return 0
