"""`ingest-worker eval metadata`: publication date, authors and title of labelled pages, beside
trafilatura's `extract_metadata` and the previous reader, on held-out folds.

`--data DIR` is a folder laid out like the WCXB split::

    ground-truth.json   {id: {"url", "title", "author", "published" (YYYY-MM-DD), "page_type"}}
                        (title, author, published null where the page shows none)
    html/<id>.html.gz   the page as fetched
    text/<id>.txt       the whole page saved as visible text (for --mode text)

Metrics (each over the pages the label applies to):

- date right: of the pages labelled with a date, the share whose `published_at` falls on that
  day (the day the timestamp states, in its own time zone);
- dated when undated: of the pages labelled with no date, the share given one (lower is better);
- author found: of the pages labelled with an author, the share where every name given is a
  run of whole words of the label (nothing added: no site name, no second unlabelled person)
  and one name given is the label's first name (the label up to its first `,` `;` `&` `|` `/`
  `and` `with`) or the whole label; names compared folded, accents and punctuation dropped,
  parenthesised parts and a leading "By", "Dr", "Prof", "Mr", "Mrs" or "Ms" ignored;
- authors when unlabelled: of the pages labelled with no author, the share given one;
- title exact: of the pages labelled with a title, the share whose title equals it once both
  are folded and reduced to their words.

Folds are grouped by site (the url's host without `www.`): every page of a site falls in the
same fold. `--rules-from` names the folds the reader's rules and thresholds were written from
(looked at, tried on); the figures that count are pooled over the other, held-out, folds, and
the training folds' figures are printed apart. The reader's learned date model is not the
shipped one here (trained on every fold): each fold's HTML pages get their date from a model
trained on the other folds' pages, its threshold chosen on their inner folds
(`worker.evaluation.date_model_training`), so every fold's date figures are held out. CPU is
this process's time per page of each reader alone (the page parsed beforehand), interleaved
page by page.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import re
import sys
import time
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from worker.cli import ArgumentParser
from worker.cli.progress import Progress
from worker.document import Article, RawPage
from worker.evaluation import date_model_training, metadata_previous
from worker.steps.clean.html import drop_code, parse_html
from worker.steps.clean.metadata import PageMeta, choose_published, read_meta
from worker.steps.clean.normalize import normalize_line
from worker.steps.clean.page import clean, iso_date

FOLDS = 5
RULES_FROM = (1, 2, 3)  # the folds the reader's rules were written from (1-based)
_LEAD = re.compile(r"\s*(?:[,;&|/(]|\band\b|\bwith\b)\s*", re.I)


@dataclass(frozen=True, slots=True)
class Found:
    """What one reader gives for one page."""

    title: str | None
    authors: list[str]
    published: str | None


Reader = Callable[[str, str], Found]


def fold_words(text: str | None) -> str:
    """Folded words: NFKD, accents dropped, casefolded, `\\w+` runs joined by one space."""
    text = unicodedata.normalize("NFKD", text or "")
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    return " ".join(re.findall(r"\w+", text))


_HONORIFIC = re.compile(r"^(?:by |dr |prof |mr |mrs |ms )+")


def _name(text: str) -> str:
    return _HONORIFIC.sub("", fold_words(re.sub(r"\([^)]*\)", " ", text)))


def author_found(label: str, authors: Sequence[str]) -> bool:
    """Every name given is a run of whole words of the label, and one of them is the label's
    first name or the whole label."""
    names = [n for n in (_name(a) for a in authors) if n]
    if not names:
        return False
    label = re.sub(r"\([^)]*\)", " ", label)
    whole = fold_words(label)
    if any(f" {n} " not in f" {whole} " for n in names):
        return False
    whole = _name(label)
    lead = _name(_LEAD.split(label.strip(), maxsplit=1)[0])
    return lead in names or whole in names


def title_exact(label: str, title: str | None) -> bool:
    """The title equals the label once both are folded to their words."""
    return bool(title) and fold_words(label) == fold_words(title)


def date_right(label: str, published: str | None) -> bool:
    """The timestamp states the labelled day."""
    return published is not None and published[:10] == label


def site_fold(url: str, folds: int) -> int:
    """The fold (0-based) of a page: a hash of its host, so a site's pages share a fold."""
    host = (urlsplit(url).hostname or "").lower().removeprefix("www.")
    return int(hashlib.md5(host.encode()).hexdigest(), 16) % folds


@dataclass(frozen=True, slots=True)
class Labelled:
    """A labelled folder: labels by page id, and where the pages are."""

    root: Path
    labels: dict[str, dict[str, Any]]

    def html(self, page_id: str) -> str | None:
        """The page's HTML, or None when the folder has none for it."""
        path = self.root / "html" / f"{page_id}.html.gz"
        return gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace") if path.exists() else None

    def text(self, page_id: str) -> str | None:
        """The page's text dump, or None when the folder has none for it."""
        path = self.root / "text" / f"{page_id}.txt"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else None


def load_labelled(root: Path) -> Labelled:
    """Read `ground-truth.json` of a labelled folder."""
    raw = json.loads((root / "ground-truth.json").read_text(encoding="utf-8"))
    return Labelled(root, {i: rec for i, rec in raw.items() if isinstance(rec, dict) and rec.get("url")})


def _event_fields(title: str | None, authors: Sequence[str], published: str | None) -> Found:
    """What `clean` puts in the article (page.py's normalisation of the reader's fields)."""
    return Found(
        normalize_line(title or "") or None,
        [a for a in (normalize_line(x) for x in authors) if a][:10],
        iso_date(published),
    )


def _trafilatura(tree: Any, url: str) -> Found:
    from trafilatura.metadata import extract_metadata

    try:
        found = extract_metadata(tree, default_url=url)
    except Exception:  # trafilatura can fail on odd trees
        return Found(None, [], None)
    authors = [a.strip() for a in (found.author or "").split(";") if a.strip()]
    return Found(found.title, authors, found.date)


@dataclass
class Tally:
    """Counts of one reader over a set of pages."""

    dated: int = 0
    date_right: int = 0
    undated: int = 0
    undated_given: int = 0
    authored: int = 0
    author_found: int = 0
    unauthored: int = 0
    unauthored_given: int = 0
    titled: int = 0
    title_exact: int = 0

    def add(self, label: Mapping[str, Any], found: Found) -> None:
        """Count one page."""
        if label.get("published"):
            self.dated += 1
            self.date_right += date_right(str(label["published"]), found.published)
        else:
            self.undated += 1
            self.undated_given += bool(found.published)
        if label.get("author"):
            self.authored += 1
            self.author_found += author_found(str(label["author"]), found.authors)
        else:
            self.unauthored += 1
            self.unauthored_given += bool(found.authors)
        if label.get("title"):
            self.titled += 1
            self.title_exact += title_exact(str(label["title"]), found.title)

    def figures(self) -> dict[str, float | int]:
        """The shares, with the page counts they are over."""

        def share(a: int, b: int) -> float:
            return a / b if b else 0.0

        return {
            "date_right": share(self.date_right, self.dated),
            "dated_when_undated": share(self.undated_given, self.undated),
            "author_found": share(self.author_found, self.authored),
            "authors_when_unlabelled": share(self.unauthored_given, self.unauthored),
            "title_exact": share(self.title_exact, self.titled),
            "pages_dated": self.dated,
            "pages_undated": self.undated,
            "pages_authored": self.authored,
            "pages_unauthored": self.unauthored,
            "pages_titled": self.titled,
        }


def read_html(
    labelled: Labelled, ids: Sequence[str], folds: int = FOLDS,
) -> tuple[dict[str, dict[str, Found]], dict[str, float]]:
    """The three readers on every page's HTML: predictions and CPU seconds of each. The `clean`
    reader's dates are given by fold models (`fold_dates`)."""
    names = ("clean", "previous", "trafilatura")
    found: dict[str, dict[str, Found]] = {n: {} for n in names}
    seconds = dict.fromkeys(names, 0.0)
    dated: dict[str, tuple[list[Any], list[str]]] = {}  # page id: its date candidates and stated dates
    progress = Progress("eval metadata (html)", len(ids))
    for page_id in ids:
        markup = labelled.html(page_id)
        url = str(labelled.labels[page_id]["url"])
        if markup is None:
            progress.advance()
            continue
        for name in names:
            tree = parse_html(markup)
            if tree is None:
                found[name][page_id] = Found(None, [], None)
                continue
            if name != "trafilatura":
                drop_code(tree)  # as `clean` does before reading metadata
            started = time.process_time()
            if name == "trafilatura":
                found[name][page_id] = _trafilatura(tree, url)
            else:
                reader = read_meta if name == "clean" else metadata_previous.read_meta
                meta = reader(tree, url)
                found[name][page_id] = _event_fields(meta.title, meta.authors, meta.published_at)
                if isinstance(meta, PageMeta):
                    dated[page_id] = (meta.date_candidates, meta.date_stated)
            seconds[name] += time.process_time() - started
        progress.advance()
    progress.finish()
    folded = fold_dates(labelled, dated, folds)
    for page_id, published in folded.items():
        found["clean"][page_id] = replace(found["clean"][page_id], published=iso_date(published))
    if unfolded := len(dated) - len(folded):
        print(f"eval metadata: {unfolded} of {len(dated)} pages are in folds whose other folds are too few to "
              "train a date model; their dates are the shipped model's, not held out", file=sys.stderr)
    return found, seconds


def fold_dates(
    labelled: Labelled, dated: Mapping[str, tuple[list[Any], list[str]]], folds: int,
) -> dict[str, str | None]:
    """Each page's date chosen among its candidates by a date model trained on the pages of the
    other folds (every page kind), its threshold chosen on their inner folds."""
    pages = {
        page_id: date_model_training.DatedPage(
            page_id, (urlsplit(str(labelled.labels[page_id]["url"])).hostname or "").lower().removeprefix("www."),
            labelled.labels[page_id].get("page_type") == "article",
            str(labelled.labels[page_id]["published"]) if labelled.labels[page_id].get("published") else None,
            candidates,
        )
        for page_id, (candidates, _) in dated.items()
    }
    fold_of = {page_id: site_fold(str(labelled.labels[page_id]["url"]), folds) for page_id in pages}
    out: dict[str, str | None] = {}
    for k in range(folds):
        train = [page for page_id, page in pages.items() if fold_of[page_id] != k]
        if not date_model_training.trainable(train):  # a small folder: the shipped model's dates stay
            continue
        model = date_model_training.train(train)
        for page_id in (i for i in pages if fold_of[i] == k):
            out[page_id] = choose_published(pages[page_id].candidates, dated[page_id][1], model)
    return out


def read_text(labelled: Labelled, ids: Sequence[str]) -> dict[str, Found]:
    """The `clean` step's title, authors and date of every page's text dump."""
    found: dict[str, Found] = {}
    progress = Progress("eval metadata (text)", len(ids))
    for page_id in ids:
        dump = labelled.text(page_id)
        if dump is not None:
            article = clean(RawPage(url=str(labelled.labels[page_id]["url"]), text=dump))
            found[page_id] = (
                Found(article.title or None, article.authors, article.published_at)
                if isinstance(article, Article) else Found(None, [], None)
            )
        progress.advance()
    progress.finish()
    return found


def tallies(
    labelled: Labelled, found: Mapping[str, Mapping[str, Found]], folds: int, rules_from: Sequence[int]
) -> dict[str, dict[str, dict[str, Tally]]]:
    """Tallies by page group ('articles', 'all'), fold set ('held_out', 'training', and each
    fold 'fold N') and reader."""
    out: dict[str, dict[str, dict[str, Tally]]] = {}
    for group in ("articles", "all"):
        sets: dict[str, dict[str, Tally]] = {}
        for name, pages in found.items():
            for page_id, result in pages.items():
                label = labelled.labels[page_id]
                if group == "articles" and label.get("page_type") != "article":
                    continue
                k = site_fold(str(label["url"]), folds) + 1
                for key in ("held_out" if k not in rules_from else "training", f"fold {k}"):
                    sets.setdefault(key, {}).setdefault(name, Tally()).add(label, result)
        out[group] = sets
    return out


_COLUMNS = (
    ("date_right", "date right"),
    ("dated_when_undated", "dated|undated"),
    ("author_found", "author found"),
    ("authors_when_unlabelled", "author|none"),
    ("title_exact", "title exact"),
)


def _report(
    result: dict[str, dict[str, dict[str, Tally]]], seconds: Mapping[str, float], pages: int,
    folds: int, rules_from: Sequence[int],
) -> list[str]:
    held = [k for k in range(1, folds + 1) if k not in rules_from]
    lines = [
        f"folds grouped by site: {folds}; rules written from folds {', '.join(map(str, rules_from))}; "
        f"held-out folds {', '.join(map(str, held))}",
        "dated|undated: share of pages labelled with no date given one (lower is better); "
        "author|none: the same for authors",
    ]
    for group in ("articles", "all"):
        for key in ("held_out", "training", *(f"fold {k}" for k in range(1, folds + 1))):
            readers = result[group].get(key)
            if not readers:
                continue
            first = next(iter(readers.values()))
            title = "held-out folds" if key == "held_out" else "training folds" if key == "training" else key
            lines.append(
                f"\n{group}, {title} ({first.dated} dated, {first.undated} undated, {first.authored} with "
                f"author, {first.titled} titled):"
            )
            lines.append(f"{'reader':<12}" + "".join(f"{label:>15}" for _, label in _COLUMNS))
            for name, tally in readers.items():
                figures = tally.figures()
                lines.append(f"{name:<12}" + "".join(f"{figures[key]:>15.3f}" for key, _ in _COLUMNS))
    if seconds and pages:
        lines.append("\nCPU a page (the reader alone, page parsed beforehand):")
        for name, total in seconds.items():
            lines.append(f"{name:<12}{1000 * total / pages:>8.2f} ms")
    return lines


def build_parser() -> argparse.ArgumentParser:
    """Flags of `eval metadata`."""
    parser = ArgumentParser(prog="ingest-worker eval metadata", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="labelled folder (ground-truth.json, html/, text/)")
    parser.add_argument("--folds", type=int, default=FOLDS, help="folds grouped by site")
    parser.add_argument(
        "--rules-from", default=",".join(map(str, RULES_FROM)),
        help="comma-separated folds (1-based) the rules were written from; the others are held out",
    )
    parser.add_argument("--mode", choices=("html", "text", "both"), default="html")
    parser.add_argument("--limit", type=int, default=0, help="only the first N pages (by id)")
    parser.add_argument("--predictions-out", type=Path, help="write every reader's fields per page as JSON")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    return parser


def main(argv: list[str]) -> int:
    """Run the evaluation; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not (args.data / "ground-truth.json").is_file():
        print(f"error: {args.data}/ground-truth.json not found", file=sys.stderr)
        return 2
    if args.folds < 2:
        parser.error("--folds needs K >= 2")
    try:
        rules_from = [int(k) for k in args.rules_from.split(",") if k.strip()]
    except ValueError:
        parser.error("--rules-from takes fold numbers, e.g. 1,2,3")
    labelled = load_labelled(args.data)
    ids = sorted(labelled.labels)[: args.limit or None]
    found: dict[str, dict[str, Found]] = {}
    seconds: dict[str, float] = {}
    if args.mode in ("html", "both"):
        found, seconds = read_html(labelled, ids, args.folds)
    if args.mode in ("text", "both"):
        found["clean text"] = read_text(labelled, ids)
    result = tallies(labelled, found, args.folds, rules_from)
    pages = len(found.get("clean", {}))
    if args.predictions_out:
        args.predictions_out.parent.mkdir(parents=True, exist_ok=True)
        body = {name: {i: {"title": f.title, "authors": f.authors, "published": f.published}
                       for i, f in pages_found.items()} for name, pages_found in found.items()}
        args.predictions_out.write_text(json.dumps(body, ensure_ascii=False, indent=1), encoding="utf-8")
    if args.json:
        figures: dict[str, Any] = {
            group: {key: {name: t.figures() for name, t in readers.items()} for key, readers in sets.items()}
            for group, sets in result.items()
        }
        figures["cpu_ms_per_page"] = {n: 1000 * s / pages for n, s in seconds.items()} if pages else {}
        figures["folds"] = {"count": args.folds, "rules_from": rules_from}
        print(json.dumps(figures))
    else:
        print("\n".join(_report(result, seconds, pages, args.folds, rules_from)))
    return 0
