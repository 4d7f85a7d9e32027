"""The publication-date model the reader ships (`clean.date_model`, applied by
`clean.metadata.choose_published`), trained and measured on labelled pages beside the reader's
former rules (`clean.metadata.choose_date`, kept for text dumps) and trafilatura on the same
pages: every day a page states or shows is a candidate, described by where the page states it;
the model scores each candidate as the page's publication day, and the best one is given when
its score reaches a threshold, else no date.

    python bench/metadata_date_model.py --data /work/shared/bench/wcxb/dev
    python bench/metadata_date_model.py --data /work/shared/bench/wcxb/dev --save worker/data/date-model.json.gz

Candidates and features: `clean.metadata.date_candidates` (`DATE_SOURCES`, `DATE_FEATURES`): the
days of the article's JSON-LD `datePublished`, the publication meta tags, the weak structured
dates (`<time>` elements, a web page's JSON-LD, `date` meta tags), the modified dates, the url's
day, the days the page shows next to the headline (as the story's or as 'Updated ...'), after
the author's name, labelled 'Published ...' or 'Originally published ...', a structured day
shown without its year under the headline, and the first 30 other days the page shows; which
of those state a day (first, or a day apart), whether and how often the page shows it, where
it first shows it from the headline and in the page, how many sources agree, how many days
the page shows and states, whether it is the latest or earliest, after the modified date and
how far before it, how many years before the latest day shown. Training and the threshold's
choice: `worker.evaluation.date_model_training`.

Default: nested over the five site-grouped folds of `ingest-worker eval metadata`: each held out
in turn, the threshold chosen on inner folds of the other four and the model trained on them;
figures on articles, per fold and pooled, beside the rules (written from folds 1-3: in-sample
there) and trafilatura, the best candidate (the ceiling of any chooser of these candidates), and
the out-of-fold curve of the threshold. `--save PATH`: the model trained on every fold (the
shipped one), its threshold chosen on their inner folds.
"""

from __future__ import annotations

import argparse
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from worker.evaluation import date_model_training as training
from worker.evaluation.metadata import FOLDS, _trafilatura, load_labelled, site_fold
from worker.steps.clean import metadata
from worker.steps.clean.date_model import save_date_model
from worker.steps.clean.html import drop_code, parse_html


@dataclass(frozen=True, slots=True)
class Page:
    """One labelled page: its candidates, fold, and the rules' and trafilatura's days."""

    dated: training.DatedPage
    fold: int  # 1-based
    rules: date | None
    trafilatura: date | None


def read_pages(root: Path) -> list[Page]:
    """Every page with HTML of the labelled folder `root`."""
    labelled = load_labelled(root)
    kept: list[tuple[Any, ...]] = []
    sources = metadata.date_sources

    def keep(*args: Any) -> dict[str, list[date]]:
        kept.append(args)
        return sources(*args)

    pages: list[Page] = []
    metadata.date_sources = keep  # type: ignore[assignment]  # the rules' inputs are date_sources'
    try:
        for page_id in sorted(labelled.labels):
            label = labelled.labels[page_id]
            url = str(label["url"])
            markup = labelled.html(page_id)
            tree = parse_html(markup) if markup else None
            if markup is None or tree is None:
                continue
            kept.clear()
            theirs = metadata._stated_day(_trafilatura(parse_html(markup), url).published)
            meta = metadata.read_meta(drop_code(tree), url)
            day = label.get("published")
            pages.append(Page(
                training.DatedPage(page_id, (urlsplit(url).hostname or "").removeprefix("www."),
                                   label.get("page_type") == "article", str(day) if day else None,
                                   meta.date_candidates),
                site_fold(url, FOLDS) + 1, metadata._stated_day(metadata.choose_date(*kept[0])), theirs,
            ))
    finally:
        metadata.date_sources = sources  # type: ignore[assignment]
    return pages


def tally(pages: Sequence[Page], days: Sequence[date | None]) -> dict[str, float]:
    """Articles' date right, dated|undated and utility of the days given."""
    right = dated = undated = dated_undated = wrong = 0
    for page, day in zip(pages, days, strict=True):
        if not page.dated.article:
            continue
        label = page.dated.label
        if label is not None:
            ok = day is not None and day.isoformat() == label
            dated += 1
            right += ok
            wrong += day is not None and not ok
        else:
            undated += 1
            dated_undated += day is not None
    return {
        "date_right": right / max(dated, 1), "dated_undated": dated_undated / max(undated, 1),
        "utility": right - wrong - dated_undated, "right": right, "dated": dated, "wrong": wrong,
        "given_undated": dated_undated, "undated": undated,
    }


def _line(name: str, t: Mapping[str, float]) -> str:
    return (f"{name:<24} date right {t['date_right']:.3f} ({t['right']}/{t['dated']}, {t['wrong']} wrong)  "
            f"dated|undated {t['dated_undated']:.3f} ({t['given_undated']}/{t['undated']})  utility {t['utility']}")


def main() -> None:
    """Print the model's nested figures beside the rules' and trafilatura's, or save the model."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--save", type=Path, help="write the model trained on every fold here")
    parser.add_argument("--cache", type=Path, help="a file keeping the pages read between runs")
    args = parser.parse_args()
    if args.cache is not None and args.cache.exists():
        pages = pickle.loads(args.cache.read_bytes())
    else:
        pages = read_pages(args.data)
        if args.cache is not None:
            args.cache.write_bytes(pickle.dumps(pages))
    if args.save:
        model = training.train([p.dated for p in pages])
        save_date_model(model, args.save)
        print(f"{args.save}: trained on {len(pages)} pages, threshold {model.threshold}")
        return
    given: dict[str, date | None] = {}
    scored: dict[str, tuple[date | None, float]] = {}
    for fold in range(1, FOLDS + 1):
        train = [p.dated for p in pages if p.fold != fold]
        test = [p for p in pages if p.fold == fold]
        model = training.train(train)
        days = training.given(model, [p.dated for p in test])
        given.update(zip((p.dated.page_id for p in test), days, strict=True))
        scored.update(zip((p.dated.page_id for p in test), training.best_scores(model, [p.dated for p in test]),
                          strict=True))
        print(f"fold {fold} held out (threshold {model.threshold}):")
        print(_line("  model", tally(test, days)))
        print(_line("  rules", tally(test, [p.rules for p in test])))
        print(_line("  trafilatura", tally(test, [p.trafilatura for p in test])))
    for name, folds in (("all folds", range(1, FOLDS + 1)), ("folds 4-5", (4, 5))):
        chosen = [p for p in pages if p.fold in folds]
        print(f"articles, {name}, each fold held out:")
        print(_line("  model", tally(chosen, [given[p.dated.page_id] for p in chosen])))
        print(_line("  rules", tally(chosen, [p.rules for p in chosen])))
        print(_line("  trafilatura", tally(chosen, [p.trafilatura for p in chosen])))
        print(_line("  best candidate", tally(chosen, [
            next((d for d, _ in p.dated.candidates if d.isoformat() == p.dated.label), None) for p in chosen
        ])))
    print("all folds, out of fold, by threshold:")
    for t in (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95):
        print(_line(f"  {t:.2f}", tally(pages, [
            d if s >= t else None for d, s in (scored[p.dated.page_id] for p in pages)
        ])))


if __name__ == "__main__":
    main()
