"""`ingest-worker eval extraction`: score the `clean` step on labelled pages, beside trafilatura.

`--data DIR` is a folder laid out like the article-extraction benchmark::

    ground-truth.json   {id: {"articleBody": str, "url": str, "page_type": str (optional)}}
    html/<id>.html.gz   the raw page (gzip, UTF-8)
    text/<id>.txt       the whole page saved as visible text

scored with the folder's own metric (`extraction_metric`): when its pages carry a `page_type`
(the WCXB layout), word-bag F1 per page averaged over pages, overall and per page type, as the
benchmark's `score.py` computes it, and the page-type classifier's accuracy and confusion
beside it (held-out like `ingest-worker eval page-types` with `--folds`); otherwise the article
benchmark's shingle-overlap F1.
With `--folds K` the learned models of the cleaners are trained on K-1 folds of that folder
and every page is cleaned by the model that did not see it: the figures are held-out figures.
Folds are grouped by site (pages of one site share a template and a fold). Without it the
shipped models run (trained on the folder itself when it is the dev split: in-sample figures).

`--wild DIR` is a second held-out set laid out like the wild extraction set::

    evaldata.json       {id: {"url": str, "with": [snippet, ...], "without": [snippet, ...]}}
    html/<id>.html.gz   the raw page as fetched (bytes, any encoding)

scored with snippet F1 (a `with` snippet found: true positive, missed: false negative; a
`without` snippet found: false positive), cleaned by the shipped models.

Trafilatura's default extraction runs on the same pages in the same run. Speed is pages per
CPU second of this process, the extractors interleaved page by page so that a busy machine
slows all of them alike; the report gives CPU milliseconds per page of each. The
story-sentence check runs every sentence of the true bodies through the boilerplate filters
and reports the share they would drop.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from worker.cli import ArgumentParser
from worker.cli.failures import UsageError
from worker.cli.progress import Progress
from worker.document import Article, RawPage
from worker.evaluation.clean_training import (
    NO_STORY,
    STORY_SHARE,
    BlockPage,
    block_fold_models,
    block_page,
    fold_of,
    story_shares,
)
from worker.evaluation.dump_training import DumpPage, dump_page, fold_line_models, held_out_report
from worker.evaluation.extraction_metric import (
    PAGE_TYPES,
    Score,
    Triple,
    aggregate,
    mean_words,
    page_counts,
    score_predictions,
    shingle_counts,
    word_prf,
)
from worker.evaluation.page_types import sections as page_type_sections
from worker.evaluation.paired import Difference, paired_difference
from worker.steps.clean.blocks import PageBlocks, page_blocks
from worker.steps.clean.boilerplate import is_dropped_as_junk
from worker.steps.clean.html import drop_code, html_candidates, parse_html
from worker.steps.clean.model import CleanModels
from worker.steps.clean.page import clean
from worker.steps.clean.structure import text_blocks

__all__ = ["aggregate", "main", "page_counts", "score_predictions", "shingle_counts", "word_prf"]

Extractor = Callable[[str, str], str]


@dataclass(frozen=True, slots=True)
class Bench:
    """A labelled folder: true bodies and urls by page id, and where the pages are."""

    root: Path
    bodies: dict[str, str]
    urls: dict[str, str]
    page_types: dict[str, str] = field(default_factory=dict)  # WCXB layout only

    @property
    def words(self) -> bool:
        """Whether the folder is scored with word-bag F1 (it has page types: WCXB)."""
        return bool(self.page_types)

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
    types = {i: str(rec["page_type"]) for i, rec in raw.items() if rec.get("page_type")}
    return Bench(root=root, bodies=bodies, urls=urls, page_types=types)


def _measure(
    inputs: Mapping[str, str], extractors: Mapping[str, Extractor]
) -> tuple[dict[str, dict[str, str]], dict[str, float]]:
    """Run every extractor on every page, interleaved page by page so that the machine's load
    weighs on all of them alike; time is the process's CPU time (the work is single-threaded).
    Returns the predictions and CPU seconds of each extractor."""
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
    return predictions, seconds


def _clean_body(page: RawPage, models: CleanModels | None = None) -> str:
    result = clean(page, models)
    return result.text if isinstance(result, Article) else ""


def _trafilatura_default(html: str) -> str:
    """Trafilatura's default settings, comments left out (the benchmark's bodies have none)."""
    import trafilatura

    return trafilatura.extract(html, include_comments=False) or ""


def html_training_candidates(bench: Bench, page_id: str) -> PageBlocks | None:
    """A page's blocks with their feature rows (None when it has no parsable HTML)."""
    html = bench.html(page_id)
    found = html_candidates(html, bench.urls[page_id]) if html is not None else None
    return found.blocks if found is not None else None


STORY_SHARE_OF_CONTAINER = 0.6  # the story's container goes whole when the story is this share of its words


def without_story(tree: Any, truth: str) -> Any | None:
    """The parsed page with its story taken out (None when no block of it is story): the
    page's template with nothing to publish, as a news crawler also fetches it (an index, a
    tag page, an error page of the same site). The story blocks' nearest common container goes
    whole when the story holds most of its words; otherwise each story block's element does."""
    blocks = [b for b in text_blocks(tree) if b.text.strip()]
    story = [b for b, share in zip(blocks, story_shares([b.text for b in blocks], truth), strict=True)
             if share >= STORY_SHARE]
    if not story:
        return None
    chains = [[story[0].element, *story[0].element.iterancestors()][::-1]]
    chains += [[b.element, *b.element.iterancestors()][::-1] for b in story[1:]]
    common = None
    for level in zip(*chains, strict=False):
        if any(el is not level[0] for el in level):
            break
        common = level[0]
    words = {id(b.element): len(b.text.split()) for b in blocks}
    story_words = sum(len(b.text.split()) for b in story)
    inside = sum(words.get(id(el), 0) for el in common.iter()) if common is not None else 0
    if common is not None and common.tag not in ("body", "html") and story_words >= STORY_SHARE_OF_CONTAINER * inside:
        targets = [common]
    else:
        targets = list(dict.fromkeys(b.element for b in story))
    for el in targets:
        if el.getparent() is not None:
            el.drop_tree()
    return tree


def block_pages(bench: Bench, ids: Iterable[str], storyless: bool = False) -> dict[str, BlockPage]:
    """Labelled blocks of every page of `ids` with parsable HTML; with `storyless`, also each
    article page with its story taken out (`without_story`, id `<page>/no-story`, an empty
    true body), which trains the block model that a page may hold nothing to keep."""
    pages = {}
    for page_id in ids:
        found = html_training_candidates(bench, page_id)
        if found is None:
            continue
        pages[page_id] = block_page(found, bench.bodies[page_id])
        if storyless and bench.page_types.get(page_id) == "article":
            tree = parse_html(bench.html(page_id) or "")
            bare = without_story(drop_code(tree), bench.bodies[page_id]) if tree is not None else None
            if bare is not None:
                blocks = page_blocks(bare, bench.urls[page_id])
                if len(blocks.texts):
                    pages[page_id + NO_STORY] = block_page(blocks, "")
    return pages


def dump_pages(bench: Bench) -> dict[str, DumpPage]:
    """The folder's labelled text dumps, read for the line model, by page id, with their page
    kind (a folder without page types is the article benchmark's: news articles)."""
    return {
        i: dump_page(i, text, bench.bodies[i], bench.urls[i], bench.words, str(bench.root),
                     bench.page_types.get(i, "article" if not bench.words else None))
        for i in sorted(bench.bodies) if (text := bench.text(i)) is not None
    }


@dataclass
class Evaluation:
    """Scores by name ('html', 'trafilatura', 'text'), pooled and per fold, the predictions,
    the story-sentence check and the wild set's scores."""

    scores: dict[str, Score] = field(default_factory=dict)
    folds: dict[str, list[tuple[float, float, float, int]]] = field(default_factory=dict)
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    sentences: tuple[int, int] | None = None
    wild: dict[str, Score] = field(default_factory=dict)
    # clean html minus trafilatura, by set ('labelled', 'wild'), with its bootstrap interval
    differences: dict[str, Difference] = field(default_factory=dict)
    metric: str = "shingle F1"
    type_counts: dict[str, int] = field(default_factory=dict)  # labelled pages by page type
    # further report sections (title, lines), e.g. page-type accuracy from a page-type evaluation
    sections: list[tuple[str, list[str]]] = field(default_factory=list)


def _page_rows(bench: Bench, predictions: Mapping[str, str]) -> dict[str, Triple]:
    """Per page: word-bag (precision, recall, F1) on a WCXB folder, normalised shingle
    (tp, fp, fn) otherwise."""
    figure = word_prf if bench.words else page_counts
    return {i: figure(bench.bodies[i], text) for i, text in predictions.items()}


def _summary(bench: Bench, rows: Iterable[Triple]) -> tuple[float, float, float]:
    """(F1, precision, recall) of per-page rows in the folder's metric."""
    return mean_words(rows) if bench.words else aggregate(rows)


def _scored(
    bench: Bench, predictions: dict[str, str], seconds: float, folds: int
) -> tuple[Score, list[tuple[float, float, float, int]]]:
    rows = _page_rows(bench, predictions)
    f1, p, r = _summary(bench, rows.values())
    per_fold = []
    if folds > 1:
        assignment = fold_of(predictions, folds, bench.urls)
        for k in range(folds):
            ids = [i for i in predictions if assignment[i] == k]
            per_fold.append((*_summary(bench, (rows[i] for i in ids)), len(ids)))
    types = {
        kind: _summary(bench, (rows[i] for i in predictions if bench.page_types.get(i) == kind))[0]
        for kind in PAGE_TYPES if any(bench.page_types.get(i) == kind for i in predictions)
    }
    return Score(f1, p, r, len(predictions), seconds, types), per_fold




def evaluate(
    bench: Bench, modes: list[str], folds: int = 0, also: Mapping[str, Sequence[DumpPage]] | None = None
) -> Evaluation:
    """Clean the folder's pages in each mode beside trafilatura's default; with `folds` > 1
    every page is cleaned by models trained on the other folds (the text-dump line model also
    on the dumps `also` by folder, dealt to the same site-grouped folds, and their held-out
    figures are a report section)."""
    also = also or {}
    result = Evaluation(metric="word F1" if bench.words else "shingle F1")
    for kind in bench.page_types.values():
        result.type_counts[kind] = result.type_counts.get(kind, 0) + 1
    if "html" in modes:
        pages = {i: h for i in bench.bodies if (h := bench.html(i)) is not None}
        models = block_fold_models(block_pages(bench, sorted(pages), storyless=True), bench.urls, folds) \
            if folds > 1 else {}
        predictions, seconds = _measure(pages, {
            "html": lambda i, h: _clean_body(
                RawPage(url=bench.urls[i], html=h), CleanModels(blocks=models.get(i))
            ),
            "trafilatura": lambda i, h: _trafilatura_default(h),
        })
        for name in ("html", "trafilatura"):
            result.scores[name], result.folds[name] = _scored(bench, predictions[name], seconds[name], folds)
        result.outputs["html"] = predictions["html"]
        rows = {name: [row for _, row in sorted(_page_rows(bench, predictions[name]).items())]
                for name in ("html", "trafilatura")}
        result.differences["labelled"] = paired_difference(
            rows["html"], rows["trafilatura"], lambda draw: _summary(bench, draw)[0])
    if "text" in modes:
        dumps = {i: t for i in bench.bodies if (t := bench.text(i)) is not None}
        extra = [page for pages in also.values() for page in pages]
        line_models, extra_models = fold_line_models(dump_pages(bench), bench.urls, folds, extra) \
            if folds > 1 else ({}, [])
        predictions, seconds = _measure(dumps, {
            "text": lambda i, t: _clean_body(
                RawPage(url=bench.urls[i], text=t), CleanModels(lines=line_models.get(i))
            ),
        })
        result.scores["text"], result.folds["text"] = _scored(bench, predictions["text"], seconds["text"], folds)
        result.outputs["text"] = predictions["text"]
        start = 0
        for folder, dumps_of_folder in also.items():
            end = start + len(dumps_of_folder)
            section = held_out_report(folder, dumps_of_folder, extra_models[start:end])
            result.sections.append(("text dumps of --train-also folders", section))
            start = end
    sentences = story_sentences(bench.bodies.values())
    result.sentences = (sum(1 for s in sentences if is_dropped_as_junk(s)), len(sentences))
    return result


_SENTENCE_BREAK = re.compile(r"(?<=[.!?…。！？])\s+|(?<=[.!?][\"'”’»)\]])\s+|\n+")


def story_sentences(bodies: object) -> list[str]:
    """Every sentence (and every one-line paragraph) of the true bodies, in order."""
    found: list[str] = []
    for body in bodies:  # type: ignore[attr-defined]
        found.extend(s.strip() for s in _SENTENCE_BREAK.split(str(body)) if s and s.strip())
    return found


# --- the wild set: snippet scoring --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WildSet:
    """Pages with snippets their main text must contain ('with') and must not ('without')."""

    root: Path
    items: dict[str, dict]

    def html(self, page_id: str) -> str | None:
        """The page's HTML decoded from its bytes (declared or detected encoding)."""
        path = self.root / "html" / f"{page_id}.html.gz"
        if not path.exists():
            return None
        from trafilatura.utils import decode_file

        return str(decode_file(gzip.decompress(path.read_bytes())))


def load_wild(root: Path) -> WildSet:
    """Read `evaldata.json` of a wild-set folder."""
    return WildSet(root, json.loads((root / "evaldata.json").read_text(encoding="utf-8")))


def _squeeze(text: str | None) -> str:
    return re.sub(r"\s+", " ", text or "").strip()


def snippet_counts(item: Mapping[str, list[str]], text: str | None) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives) of one page's snippets in `text`."""
    found = _squeeze(text)
    hits = sum(1 for s in item["with"] if _squeeze(s) in found)
    return hits, sum(1 for s in item["without"] if _squeeze(s) in found), len(item["with"]) - hits


def snippet_f1(rows: Sequence[tuple[int, int, int]]) -> tuple[float, float, float]:
    """(F1, precision, recall) of summed per-page snippet counts."""
    tp, fp, fn = (sum(column) for column in zip(*rows, strict=True)) if rows else (0, 0, 0)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return f1, precision, recall


def snippet_score(items: Mapping[str, dict], texts: Mapping[str, str]) -> tuple[float, float, float]:
    """(F1, precision, recall) over all snippets of all pages (the wild set's own metric)."""
    return snippet_f1([snippet_counts(item, texts.get(page_id)) for page_id, item in items.items()])


def evaluate_wild(wild: WildSet) -> tuple[dict[str, Score], Difference]:
    """Clean (HTML, shipped models) and trafilatura's default on every page of the wild set:
    their scores and the difference between them with its interval over pages."""
    pages = {i: h for i in wild.items if (h := wild.html(i)) is not None}
    predictions, seconds = _measure(pages, {
        "html": lambda i, h: _clean_body(RawPage(url=wild.items[i]["url"], html=h)),
        "trafilatura": lambda i, h: _trafilatura_default(h),
    })
    scores = {}
    for name in ("html", "trafilatura"):
        f1, p, r = snippet_score(wild.items, predictions[name])
        scores[name] = Score(f1, p, r, len(pages), seconds[name])
    rows = {name: [snippet_counts(wild.items[i], predictions[name].get(i)) for i in sorted(wild.items)]
            for name in ("html", "trafilatura")}
    difference = paired_difference(rows["html"], rows["trafilatura"], lambda draw: snippet_f1(draw)[0])
    return scores, difference


# --- report ---------------------------------------------------------------------------------

_NAMES = {"html": "clean html", "trafilatura": "trafilatura default", "text": "clean text"}


def _line(name: str, s: Score, digits: int = 3) -> str:
    return (
        f"{_NAMES[name]:<20} F1 {s.f1:.{digits}f}  P {s.precision:.{digits}f}  R {s.recall:.{digits}f}  "
        f"n {s.pages}  {s.pages_per_second:.1f} pages/s, {s.cpu_ms_per_page:.1f} ms CPU a page"
    )


def _type_lines(scores: Mapping[str, Score], counts: Mapping[str, int]) -> list[str]:
    """Word F1 per page type, one column per system."""
    names = [n for n in ("html", "trafilatura", "text") if n in scores and scores[n].types]
    if not names:
        return []
    header = "  ".join(f"{_NAMES[n]:>19}" for n in names)
    lines = ["word F1 by page type:", f"{'page type':<14} {'pages':>5}  {header}"]
    for kind in PAGE_TYPES:
        if kind in scores[names[0]].types:
            cells = "  ".join(f"{scores[n].types.get(kind, 0.0):>19.3f}" for n in names)
            lines.append(f"{kind:<14} {counts.get(kind, 0):>5}  {cells}")
    return lines


def _report(result: Evaluation, folds: int) -> list[str]:
    lines = []
    if result.scores:
        kind = f"held-out folds (k={folds}, each page cleaned by models trained on the other folds)" \
            if folds > 1 else "shipped models"
        lines.append(f"labelled folder ({result.metric}), {kind}:")
    if folds > 1 and result.folds:
        names = [n for n in ("html", "trafilatura", "text") if result.folds.get(n)]
        lines.append("fold  pages  " + "  ".join(f"{_NAMES[n]:>19}" for n in names))
        for k in range(folds):
            pages = result.folds[names[0]][k][3]
            lines.append(f"{k + 1:>4}  {pages:>5}  " + "  ".join(f"{result.folds[n][k][0]:>19.3f}" for n in names))
        lines.append("pooled over the held-out folds:")
    lines.extend(_line(name, result.scores[name]) for name in ("html", "trafilatura", "text") if name in result.scores)
    lines.extend(_type_lines(result.scores, result.type_counts))
    if "labelled" in result.differences:
        lines.append(_difference_line(result.differences["labelled"], 3))
    ratio = speed_ratio(result.scores)
    if ratio is not None:
        lines.append(f"speed clean html / trafilatura default: {ratio:.2f}x "
                     f"(CPU a page: {1 / ratio:.2f}x trafilatura's)")
    if result.sentences is not None:
        dropped, total = result.sentences
        lines.append(
            f"story sentences dropped by the boilerplate filters: {dropped} of {total} "
            f"({100 * dropped / max(1, total):.2f}%)"
        )
    for title, section in result.sections:
        lines.append(f"{title}:")
        lines.extend(section)
    if result.wild:
        lines.append("wild set (snippet F1, shipped models):")
        lines.extend(_line(name, result.wild[name], 4) for name in ("html", "trafilatura"))
        lines.append(_difference_line(result.differences["wild"], 4))
        ratio = speed_ratio(result.wild)
        if ratio is not None:
            lines.append(f"speed clean html / trafilatura default: {ratio:.2f}x")
    return lines


def _difference_line(difference: Difference, digits: int) -> str:
    return (
        f"clean html - trafilatura default: F1 {difference.value:+.{digits}f} (95% interval over pages drawn "
        f"with replacement, {difference.resamples} draws: {difference.low:+.{digits}f} to "
        f"{difference.high:+.{digits}f}; clean html ahead in {100 * difference.ahead:.1f}% of draws)"
    )


def speed_ratio(scores: Mapping[str, Score]) -> float | None:
    """Pages/s of clean (html) divided by pages/s of trafilatura's default, when both ran."""
    if "html" in scores and "trafilatura" in scores:
        base = scores["trafilatura"].pages_per_second
        return scores["html"].pages_per_second / base if base > 0 else None
    return None


def build_parser() -> argparse.ArgumentParser:
    """Flags of `ingest-worker eval extraction`."""
    parser = ArgumentParser(
        prog="ingest-worker eval extraction",
        description="Score the clean step (article extraction) on labelled pages, beside trafilatura.",
    )
    parser.add_argument("--data", type=Path, help="folder with ground-truth.json, html/ and text/")
    parser.add_argument("--mode", choices=("html", "text", "both"), default="both")
    parser.add_argument(
        "--folds", type=int, default=0, metavar="K",
        help="train the learned models on K-1 folds of --data and clean each page with the "
        "model that did not see it",
    )
    parser.add_argument(
        "--train-also", type=Path, action="append", default=[], metavar="DIR",
        help="with --folds: the text-dump line model also trains on this labelled folder's dumps, "
        "dealt to the same site-grouped folds, and reports their held-out figures; repeatable",
    )
    parser.add_argument("--wild", type=Path, help="also score a folder with evaldata.json (snippet F1)")
    parser.add_argument(
        "--predictions-out", metavar="PREFIX", help="write PREFIX.html.json / PREFIX.text.json"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    return parser


def _figures(scores: Mapping[str, Score]) -> dict[str, object]:
    figures: dict[str, object] = {
        key: {**asdict(s), "pages_per_second": s.pages_per_second, "cpu_ms_per_page": s.cpu_ms_per_page}
        for key, s in scores.items()
    }
    figures["speed_ratio"] = speed_ratio(scores)
    return figures


def main(argv: list[str]) -> int:
    """Run the evaluation; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.data is None and args.wild is None:
        parser.error("give --data DIR, --wild DIR or both")
    if args.data is not None and not (args.data / "ground-truth.json").is_file():
        raise UsageError(f"--data {args.data}: no ground-truth.json in it; give the labelled folder")
    if args.wild is not None and not (args.wild / "evaldata.json").is_file():
        raise UsageError(f"--wild {args.wild}: no evaldata.json in it; give the wild set's folder")
    if args.folds == 1 or args.folds < 0:
        parser.error("--folds needs K >= 2")
    modes = ["html", "text"] if args.mode == "both" else [args.mode]
    also = {str(folder): list(dump_pages(load_bench(folder)).values()) for folder in args.train_also} \
        if args.folds > 1 and "text" in modes else {}
    bench = load_bench(args.data) if args.data is not None else None
    result = evaluate(bench, modes, args.folds, also) if bench is not None else Evaluation()
    type_figures: dict[str, object] = {}
    if bench is not None and bench.page_types:
        found, type_figures = page_type_sections(bench.root, modes, args.folds)  # type: ignore[arg-type]
        result.sections.extend(found)
    if args.wild is not None:
        result.wild, result.differences["wild"] = evaluate_wild(load_wild(args.wild))
    if args.predictions_out:
        for mode, predictions in result.outputs.items():
            path = Path(f"{args.predictions_out}.{mode}.json")
            path.parent.mkdir(parents=True, exist_ok=True)
            body = {i: {"articleBody": text} for i, text in predictions.items()}
            path.write_text(json.dumps(body, ensure_ascii=False, indent=1), encoding="utf-8")
    if args.json:
        figures = _figures(result.scores)
        if args.folds > 1:
            figures["folds"] = {
                name: [dict(zip(("f1", "precision", "recall", "pages"), row, strict=True)) for row in rows]
                for name, rows in result.folds.items()
            }
        if result.sentences is not None:
            dropped, total = result.sentences
            figures["story_sentences"] = {"dropped": dropped, "total": total, "share": dropped / max(1, total)}
        if result.wild:
            figures["wild"] = _figures(result.wild)
        figures["difference"] = {name: asdict(d) for name, d in result.differences.items()}
        figures["metric"] = result.metric
        if result.type_counts:
            figures["type_counts"] = result.type_counts
        if type_figures:
            figures["page_types"] = type_figures
        print(json.dumps(figures))
    else:
        print("\n".join(_report(result, args.folds)))
    return 0
