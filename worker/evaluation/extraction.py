"""`ingest-worker eval extraction`: score the `clean` step on a labelled folder of pages.

The folder is laid out like the article-extraction benchmark::

    ground-truth.json   {id: {"articleBody": str, "url": str}}
    html/<id>.html.gz   the raw page (gzip, UTF-8)
    text/<id>.txt       the whole page saved as visible text

The metric is shingle-overlap F1 (4-token shingles of ``\\w+`` tokens, per-page normalised
counts, macro precision and recall), the same as the benchmark's own scorer. Trafilatura's
default extraction runs on the same HTML pages in the same run, so the speed ratio compares
like with like. Speed is pages per CPU second of this process, with the extractors interleaved
page by page, so a busy machine slows all of them alike.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from worker.cli.progress import Progress
from worker.document import Article, RawPage
from worker.steps.clean.page import clean

WORD = re.compile(r"\w+", re.UNICODE)
SHINGLE_LEN = 4

Triple = tuple[float, float, float]


@dataclass(frozen=True, slots=True)
class Score:
    """Macro F1, precision and recall over `pages` pages, and the extractor's CPU seconds."""

    f1: float
    precision: float
    recall: float
    pages: int
    seconds: float

    @property
    def pages_per_second(self) -> float:
        """Pages handled per CPU second (0 when nothing was timed)."""
        return self.pages / self.seconds if self.seconds > 0 else 0.0


def shingle_counts(text: str) -> Counter[tuple[str, ...]]:
    """The multiset of 4-token shingles of `text` (one shorter shingle for 1-3 tokens)."""
    tokens = WORD.findall(text or "")
    if not tokens:
        return Counter()
    if len(tokens) < SHINGLE_LEN:
        return Counter([tuple(tokens)])
    return Counter(
        tuple(tokens[k : k + SHINGLE_LEN]) for k in range(len(tokens) - SHINGLE_LEN + 1)
    )


def page_counts(truth: str, prediction: str) -> Triple:
    """Normalised (tp, fp, fn) of one page: shared, extra and missing shingles over their sum."""
    true_shingles = shingle_counts(truth)
    predicted = shingle_counts(prediction)
    tp = sum((true_shingles & predicted).values())
    fp = sum(predicted.values()) - tp
    fn = sum(true_shingles.values()) - tp
    total = tp + fp + fn
    if total == 0:
        return 0.0, 0.0, 0.0
    return tp / total, fp / total, fn / total


def _precision(tp: float, fp: float, fn: float) -> float:
    if fp == 0 and fn == 0:
        return 1.0
    if tp == 0 and fp == 0:
        return 0.0
    return tp / (tp + fp)


def _recall(tp: float, fp: float, fn: float) -> float:
    if fp == 0 and fn == 0:
        return 1.0
    if tp == 0 and fn == 0:
        return 0.0
    return tp / (tp + fn)


def aggregate(triples: Iterable[Triple]) -> tuple[float, float, float]:
    """(F1, precision, recall) from per-page triples: macro means, F1 their harmonic mean."""
    rows = list(triples)
    precisions = [_precision(*t) for t in rows if t[0] + t[1] > 0]
    recalls = [_recall(*t) for t in rows if t[0] + t[2] > 0]
    p = sum(precisions) / len(precisions) if precisions else 0.0
    r = sum(recalls) / len(recalls) if recalls else 0.0
    f1 = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return f1, p, r


def score_predictions(
    truth: Mapping[str, str], predictions: Mapping[str, str]
) -> tuple[float, float, float]:
    """(F1, precision, recall) of `predictions` against `truth`; a missing id is an empty body."""
    return aggregate(page_counts(truth[i], predictions.get(i, "")) for i in truth)


@dataclass(frozen=True, slots=True)
class Bench:
    """A labelled folder: true bodies and urls by page id, and where the pages are."""

    root: Path
    bodies: dict[str, str]
    urls: dict[str, str]

    def html(self, page_id: str) -> str | None:
        """The page's HTML, or None when the folder has no HTML for it."""
        path = self.root / "html" / f"{page_id}.html.gz"
        if path.exists():
            return gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")
        plain = self.root / "html" / f"{page_id}.html"
        if plain.exists():
            return plain.read_text(encoding="utf-8", errors="replace")
        return None

    def text(self, page_id: str) -> str | None:
        """The page's text dump, or None when the folder has none for it."""
        path = self.root / "text" / f"{page_id}.txt"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else None


def load_bench(root: Path) -> Bench:
    """Read `ground-truth.json` of a benchmark folder."""
    raw = json.loads((root / "ground-truth.json").read_text(encoding="utf-8"))
    bodies = {i: str(rec.get("articleBody") or "") for i, rec in raw.items()}
    urls = {i: str(rec.get("url") or f"https://example.invalid/{i}") for i, rec in raw.items()}
    return Bench(root=root, bodies=bodies, urls=urls)


def _measure(
    bench: Bench, inputs: Mapping[str, str], extractors: Mapping[str, Callable[[str, str], str]]
) -> dict[str, tuple[Score, dict[str, str]]]:
    """Run every extractor on every page, interleaved page by page so that the machine's load
    weighs on all of them alike; time is the process's CPU time (the work is single-threaded)."""
    ids = sorted(inputs)
    predictions: dict[str, dict[str, str]] = {name: {} for name in extractors}
    seconds = dict.fromkeys(extractors, 0.0)
    if ids:
        for extract in extractors.values():
            extract(ids[0], inputs[ids[0]])  # warm-up: imports and caches are not timed
    progress = Progress(f"eval extraction ({', '.join(extractors)})", len(ids))
    for page_id in ids:
        for name, extract in extractors.items():
            started = time.process_time()
            predictions[name][page_id] = extract(page_id, inputs[page_id])
            seconds[name] += time.process_time() - started
        progress.advance()
    progress.finish()
    truth = {i: bench.bodies[i] for i in ids}
    results = {}
    for name in extractors:
        f1, p, r = score_predictions(truth, predictions[name])
        results[name] = (Score(f1, p, r, len(ids), seconds[name]), predictions[name])
    return results


def _clean_body(page: RawPage) -> str:
    result = clean(page)
    return result.text if isinstance(result, Article) else ""


def _trafilatura_default(html: str) -> str:
    """Trafilatura's default settings, comments left out (the benchmark's bodies have none)."""
    import trafilatura

    return trafilatura.extract(html, include_comments=False) or ""


def evaluate(bench: Bench, modes: Iterable[str]) -> tuple[dict[str, Score], dict[str, dict]]:
    """Scores by name ('html', 'text', 'trafilatura') and the predictions of each mode."""
    scores: dict[str, Score] = {}
    outputs: dict[str, dict] = {}
    modes = list(modes)
    if "html" in modes:
        pages = {i: h for i in bench.bodies if (h := bench.html(i)) is not None}
        measured = _measure(bench, pages, {
            "html": lambda i, h: _clean_body(RawPage(url=bench.urls[i], html=h)),
            "trafilatura": lambda i, h: _trafilatura_default(h),
        })
        scores["html"], outputs["html"] = measured["html"]
        scores["trafilatura"] = measured["trafilatura"][0]
    if "text" in modes:
        dumps = {i: t for i in bench.bodies if (t := bench.text(i)) is not None}
        measured = _measure(bench, dumps, {
            "text": lambda i, t: _clean_body(RawPage(url=bench.urls[i], text=t)),
        })
        scores["text"], outputs["text"] = measured["text"]
    return scores, outputs


def _report(scores: Mapping[str, Score]) -> list[str]:
    lines = []
    names = {"html": "clean html", "trafilatura": "trafilatura default", "text": "clean text"}
    for key in ("html", "trafilatura", "text"):
        if key in scores:
            s = scores[key]
            lines.append(
                f"{names[key]:<20} F1 {s.f1:.3f}  P {s.precision:.3f}  R {s.recall:.3f}  "
                f"n {s.pages}  {s.pages_per_second:.1f} pages/s (CPU time)"
            )
    ratio = speed_ratio(scores)
    if ratio is not None:
        lines.append(f"speed clean html / trafilatura default: {ratio:.2f}x")
    return lines


def speed_ratio(scores: Mapping[str, Score]) -> float | None:
    """Pages/s of clean (html) divided by pages/s of trafilatura's default, when both ran."""
    if "html" in scores and "trafilatura" in scores:
        base = scores["trafilatura"].pages_per_second
        return scores["html"].pages_per_second / base if base > 0 else None
    return None


def build_parser() -> argparse.ArgumentParser:
    """Flags of `ingest-worker eval extraction`."""
    parser = argparse.ArgumentParser(
        prog="ingest-worker eval extraction",
        description="Score the clean step (article extraction) on a labelled folder.",
    )
    parser.add_argument("--data", required=True, type=Path, help="folder with ground-truth.json")
    parser.add_argument("--mode", choices=("html", "text", "both"), default="both")
    parser.add_argument(
        "--predictions-out", metavar="PREFIX", help="write PREFIX.html.json / PREFIX.text.json"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    return parser


def main(argv: list[str]) -> int:
    """Run the evaluation; returns the process exit code."""
    args = build_parser().parse_args(argv)
    if not (args.data / "ground-truth.json").is_file():
        print(f"error: {args.data}/ground-truth.json not found", file=sys.stderr)
        return 2
    modes = ("html", "text") if args.mode == "both" else (args.mode,)
    bench = load_bench(args.data)
    scores, outputs = evaluate(bench, modes)
    if args.predictions_out:
        for mode, predictions in outputs.items():
            path = Path(f"{args.predictions_out}.{mode}.json")
            path.parent.mkdir(parents=True, exist_ok=True)
            body = {i: {"articleBody": text} for i, text in predictions.items()}
            path.write_text(json.dumps(body, ensure_ascii=False, indent=1), encoding="utf-8")
    if args.json:
        figures: dict[str, object] = {
            key: {**asdict(s), "pages_per_second": s.pages_per_second} for key, s in scores.items()
        }
        figures["speed_ratio"] = speed_ratio(scores)
        print(json.dumps(figures))
    else:
        print("\n".join(_report(scores)))
    return 0
