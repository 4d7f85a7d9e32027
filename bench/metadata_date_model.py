"""A learned chooser of the publication date, measured against the reader's rules
(`clean.metadata.choose_date`) on the same pages: every day a page states is a candidate,
described by where the page states it; a model scores each candidate as the page's publication
day, and the best one is given when its score reaches a threshold, else no date.

    python bench/metadata_date_model.py --data /work/shared/bench/wcxb/dev [--rules] [--no-htmldate]
    python bench/metadata_date_model.py --data /work/shared/bench/wcxb/dev --held-out

Candidates: the days of the article's JSON-LD `datePublished`, the publication meta tags, the
weak structured dates (`<time>` elements, a web page's JSON-LD, `date` meta tags), the modified
dates, the url's day, htmldate's quick guess (`find_date`, `extensive_search=False`, latest
date; `--no-htmldate` leaves it out), the days the page shows next to the headline (as the
story's or as 'Updated ...'), after the author's name, labelled 'Published ...' or 'Originally
published ...', a structured day shown without its year under the headline, and the first 30
other days the page shows. Features (`FEATURES`): which of those state the day (and state it
first, or a day apart), whether and how often the page shows it, where it first shows it from
the headline and in the page, how many sources agree, how many days the page shows and states,
whether it is the latest or earliest, after the modified date, how far before it, how many
years before the latest day shown. `--rules` adds the rules' choice as a feature (the rules
were written from folds 1-3, so a model trained there learns to trust them more than they
earn elsewhere: its nested figures are not an out-of-sample estimate).

Choices, every one inside the training pages: the model's kind (logistic regression or
LightGBM) and its threshold, by the articles' utility on three site-grouped inner folds (+1
for the labelled day, -1 for a wrong day or a day given to a page labelled with none, 0 for no
date: a wrong date is worse than none). Every page kind trains the model (the undated ones
teach it when a page's dates are not its publication's); the figures are on articles.

Default: nested on the folds the rules come from (1-3 of `ingest-worker eval metadata`'s five
site-grouped folds): each held out in turn, the choices made and the model trained on the
other two; beside the rules on the same pages, the best candidate (the ceiling of any chooser
of these candidates), and the out-of-fold curve of the threshold. `--held-out`: the choices
made and the model trained on folds 1-3, scored on folds 4-5 beside the rules.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from worker.evaluation.metadata import RULES_FROM, load_labelled, site_fold
from worker.steps.clean import metadata
from worker.steps.clean.html import drop_code, parse_html

SOURCES = (
    "tagged",  # a publication meta tag (article:published_time, ...)
    "ld",  # the article's JSON-LD datePublished (or a <time> marked as the publication's)
    "weak",  # a <time> element, a web page's JSON-LD, a `date` meta tag
    "modified",  # dateModified, article:modified_time, a <time> marked as the update's
    "url",  # the url's /YYYY/MM/DD/
    "htmldate",  # htmldate's quick guess
    "header",  # shown next to the headline, not as an update
    "signed",  # shown right after the author's name
    "labelled",  # labelled 'Published ...', 'Posted on ...' anywhere
    "original",  # labelled 'Originally published on ...'
    "updates",  # shown next to the headline as 'Updated ...'
    "yearless",  # a structured day shown under the headline without its year
)
_NEAR = ("tagged", "ld", "weak", "modified", "url", "htmldate")  # a moment may fall a day apart
FEATURES = (
    *(f"in_{s}" for s in SOURCES),
    *(f"first_{s}" for s in SOURCES[:4]),
    *(f"near_{s}" for s in _NEAR),
    "shown", "shown_near", "shown_only_update", "shown_times", "shown_order",
    "from_headline", "before_headline", "place_in_page", "sources", "sources_near",
    "page_days_shown", "page_candidates", "page_structured", "page_modified", "page_headline",
    "latest", "earliest", "after_modified", "years_to_modified", "years_before_latest_shown",
    "rules_pick", "page_rules_none",
)
THRESHOLDS = tuple(round(0.05 * k, 2) for k in range(1, 19))
KINDS = ("logistic", "lightgbm")
INNER_FOLDS = 3


@dataclass(frozen=True, slots=True)
class Candidate:
    """A day the page states, with its features (`FEATURES`, in order)."""

    day: date
    features: list[float]


@dataclass(frozen=True, slots=True)
class Page:
    """One page's date candidates and label."""

    page_id: str
    host: str
    fold: int
    article: bool
    label: str | None  # the labelled day, YYYY-MM-DD (or a month, YYYY-MM, which no day matches)
    rules: date | None  # the rules' day
    trafilatura: date | None  # trafilatura's `extract_metadata` day
    candidates: list[Candidate]


def date_sources(
    strong: Sequence[str], weak: Sequence[str], modified: Sequence[str], url: str | None, seen: metadata.Shown,
    tagged: Sequence[str], guessed: str | None,
) -> dict[str, list[date]]:
    """The days a page states, by where it states them (`SOURCES`), in order."""

    def days(values: Sequence[str]) -> list[date]:
        return list(dict.fromkeys(d for v in values if (d := metadata._stated_day(v)) is not None))

    url_day = metadata._url_day(url)
    return {
        "tagged": days(tagged),
        "ld": days([v for v in strong if v not in tagged]),
        "weak": days(weak),
        "modified": days(modified),
        "url": [url_day] if url_day is not None else [],
        "htmldate": days([guessed] if guessed else []),
        "header": seen.header,
        "signed": seen.signed,
        "labelled": seen.labelled,
        "original": seen.original,
        "updates": seen.updates,
        "yearless": [d for d in days(strong) if (d.month, d.day) in seen.yearless],
    }


def candidates(sources: Mapping[str, Sequence[date]], seen: metadata.Shown, rules: date | None) -> list[Candidate]:
    """Every day of `sources` and the first 30 other days the page shows, described."""
    places: dict[date, tuple[int, int]] = {}
    for day, at in metadata.shown_dates(seen.text):
        where, count = places.get(day, (at, 0))
        places[day] = (where, count + 1)
    days = list(dict.fromkeys(d for s in SOURCES for d in sources.get(s, ())))
    stated = set(days)
    by_place = sorted(places, key=lambda d: places[d][0])
    days += [d for d in by_place[:30] if d not in stated]
    order = {d: k for k, d in enumerate(by_place)}
    changed = list(sources.get("modified", ()))
    last_change = max(changed) if changed else None
    latest, earliest = (max(stated), min(stated)) if stated else (None, None)
    latest_shown = max(places) if places else None
    page = [
        math.log1p(len(places)), math.log1p(len(days)),
        float(sum(bool(sources.get(s)) for s in ("tagged", "ld", "weak"))), float(bool(changed)),
        float(seen.headline_at >= 0),
    ]
    out: list[Candidate] = []
    for day in days:
        inside = [float(day in sources.get(s, ())) for s in SOURCES]
        stated_first = [float(bool(sources.get(s)) and sources[s][0] == day) for s in SOURCES[:4]]
        near = [float(any(abs((d - day).days) <= 1 for d in sources.get(s, ()))) for s in _NEAR]
        place = places.get(day)
        shown_near = any(abs((d - day).days) <= 1 for d in seen.shown)
        if place is not None and seen.headline_at >= 0:
            offset = (place[0] - seen.headline_at) / 1000
            from_headline, before = max(-5.0, min(5.0, offset)), float(offset < 0)
        else:
            from_headline, before = 5.0, 0.0
        out.append(Candidate(day, [
            *inside, *stated_first, *near,
            float(day in seen.shown), float(shown_near), float(seen.shown.get(day) is True),
            math.log1p(place[1]) if place else 0.0, float(min(order.get(day, 30), 30)),
            from_headline, before, place[0] / max(len(seen.text), 1) if place else 1.0, sum(inside), sum(near),
            *page,
            float(day == latest), float(day == earliest), float(last_change is not None and day > last_change),
            max(-3.0, min(3.0, (last_change - day).days / 365)) if last_change is not None else 0.0,
            float(min(latest_shown.year - day.year, 10)) if latest_shown is not None else 0.0,
            float(day == rules), float(rules is None),
        ]))
    return out


def read_inputs(root: Path, held_out: bool) -> list[tuple[Any, ...]]:
    """(id, host, fold, is an article, labelled day, the date choice's inputs and htmldate's
    guess, trafilatura's day) of the pages of folds 1-3, or of folds 4-5 when `held_out`."""
    from htmldate import find_date

    from worker.evaluation.metadata import _trafilatura

    labelled = load_labelled(root)
    kept: list[tuple[Any, ...]] = []
    original = metadata.choose_date

    def keep(*args: Any) -> str | None:
        kept.append(args)
        return original(*args)

    out: list[tuple[Any, ...]] = []
    metadata.choose_date = keep  # type: ignore[assignment]
    try:
        for page_id in sorted(labelled.labels):
            label = labelled.labels[page_id]
            url = str(label["url"])
            fold = site_fold(url, 5) + 1
            if (fold not in RULES_FROM) != held_out:
                continue
            markup = labelled.html(page_id)
            tree = parse_html(markup) if markup else None
            if markup is None or tree is None:
                continue
            kept.clear()
            theirs = metadata._stated_day(_trafilatura(parse_html(markup), url).published)
            tree = drop_code(tree)
            metadata.read_meta(tree, url)
            try:
                guessed = find_date(tree, url=url, original_date=False, extensive_search=False)
            except Exception:  # htmldate can fail on odd trees
                guessed = None
            day = label.get("published")
            out.append((
                page_id, (urlsplit(url).hostname or "").removeprefix("www."), fold,
                label.get("page_type") == "article", str(day) if day else None, (*kept[0], guessed), theirs,
            ))
    finally:
        metadata.choose_date = original  # type: ignore[assignment]
    return out


def read_pages(root: Path, held_out: bool, cache: Path | None, htmldate: bool, rules: bool) -> list[Page]:
    """The pages with their candidates (their inputs cached in `cache` when given)."""
    if cache is not None and cache.exists():
        inputs = pickle.loads(cache.read_bytes())
    else:
        inputs = read_inputs(root, held_out)
        if cache is not None:
            cache.write_bytes(pickle.dumps(inputs))
    pages = []
    for page_id, host, fold, article, label, stated, theirs in inputs:
        strong, weak, modified, url, seen, tagged, guessed = stated
        ruled = metadata._stated_day(metadata.choose_date(strong, weak, modified, url, seen, tagged))
        sources = date_sources(strong, weak, modified, url, seen, tagged, guessed if htmldate else None)
        found = candidates(sources, seen, ruled)
        if not rules:  # the rules' two features zeroed
            found = [Candidate(c.day, [*c.features[:-2], 0.0, 0.0]) for c in found]
        pages.append(Page(page_id, host, fold, article, label, ruled, theirs, found))
    return pages


@dataclass(frozen=True, slots=True)
class Model:
    """A candidate scorer and the score a candidate needs to be given."""

    kind: str
    threshold: float
    fitted: Any  # (scaler means, scales, LogisticRegression) or a lightgbm.Booster

    def scores(self, rows: Sequence[Sequence[float]]) -> np.ndarray:
        """The probability that each candidate is the publication day."""
        x = np.array(rows, dtype=float).reshape(-1, len(FEATURES))
        if self.kind == "lightgbm":
            return np.asarray(self.fitted.predict(x))
        means, scales, regression = self.fitted
        return np.asarray(regression.predict_proba((x - means) / scales)[:, 1])


def fit(pages: Sequence[Page], kind: str, threshold: float = 0.5) -> Model:
    """A model of `kind` trained on the candidates of `pages`."""
    x = np.array([c.features for p in pages for c in p.candidates], dtype=float).reshape(-1, len(FEATURES))
    y = np.array([float(c.day.isoformat() == p.label) for p in pages for c in p.candidates])
    if kind == "lightgbm":
        import lightgbm

        booster = lightgbm.train(
            {"objective": "binary", "learning_rate": 0.05, "num_leaves": 15, "min_data_in_leaf": 10,
             "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1, "seed": 7, "verbose": -1,
             "num_threads": 1},
            lightgbm.Dataset(x, y), num_boost_round=200,
        )
        return Model(kind, threshold, booster)
    from sklearn.linear_model import LogisticRegression

    means = x.mean(axis=0)
    scales = x.std(axis=0)
    scales[scales == 0] = 1.0
    return Model(kind, threshold, (means, scales, LogisticRegression(max_iter=2000).fit((x - means) / scales, y)))


def best_scores(model: Model, pages: Sequence[Page]) -> list[tuple[date | None, float]]:
    """Each page's best candidate and its score."""
    out: list[tuple[date | None, float]] = []
    for page in pages:
        if not page.candidates:
            out.append((None, 0.0))
            continue
        scores = model.scores([c.features for c in page.candidates])
        k = int(np.argmax(scores))
        out.append((page.candidates[k].day, float(scores[k])))
    return out


def tally(pages: Sequence[Page], given: Sequence[date | None]) -> dict[str, float]:
    """Articles' date right, dated|undated and utility of the days `given`."""
    right = dated = undated = dated_undated = wrong = 0
    for page, day in zip(pages, given, strict=True):
        if not page.article:
            continue
        if page.label is not None:
            ok = day is not None and day.isoformat() == page.label
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


def choose(pages: Sequence[Page]) -> tuple[str, float]:
    """The kind and threshold with the best articles' utility over inner site-grouped folds."""
    groups = [int(hashlib.md5(p.host.encode()).hexdigest()[:8], 16) % INNER_FOLDS for p in pages]
    utility: dict[tuple[str, float], float] = {}
    for kind in KINDS:
        best: list[tuple[date | None, float]] = [(None, 0.0)] * len(pages)
        for k in range(INNER_FOLDS):
            test = [i for i, g in enumerate(groups) if g == k]
            model = fit([p for p, g in zip(pages, groups, strict=True) if g != k], kind)
            for i, scored in zip(test, best_scores(model, [pages[i] for i in test]), strict=True):
                best[i] = scored
        for t in THRESHOLDS:
            utility[(kind, t)] = tally(pages, [d if s >= t else None for d, s in best])["utility"]
    return max(utility, key=lambda kt: (utility[kt], kt[0] == "logistic", kt[1]))


def _line(name: str, t: Mapping[str, float]) -> str:
    return (f"{name:<26} date right {t['date_right']:.3f} ({t['right']}/{t['dated']}, {t['wrong']} wrong)  "
            f"dated|undated {t['dated_undated']:.3f} ({t['given_undated']}/{t['undated']})  utility {t['utility']}")


def main() -> None:
    """Print the learned chooser's figures beside the rules'."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--held-out", action="store_true", help="train on folds 1-3, score folds 4-5")
    parser.add_argument("--rules", action="store_true", help="the rules' choice as a feature")
    parser.add_argument("--no-htmldate", action="store_true", help="without htmldate's guess")
    parser.add_argument("--cache", type=Path, help="a folder keeping the pages' inputs between runs")
    args = parser.parse_args()
    kwargs = {"htmldate": not args.no_htmldate, "rules": args.rules}
    cache = (lambda name: args.cache / name) if args.cache else (lambda name: None)
    pages = read_pages(args.data, False, cache("folds-1-3.pkl"), **kwargs)
    print(f"articles; model: {'with' if args.rules else 'without'} the rules' choice, "
          f"{'without' if args.no_htmldate else 'with'} htmldate's guess")
    if args.held_out:
        kind, threshold = choose(pages)
        model = fit(pages, kind, threshold)
        test = read_pages(args.data, True, cache("folds-4-5.pkl"), **kwargs)
        given = [d if s >= threshold else None for d, s in best_scores(model, test)]
        print(f"held-out folds 4-5, the model trained on folds 1-3 ({kind}, threshold {threshold}):")
        print(_line("rules", tally(test, [p.rules for p in test])))
        print(_line("learned", tally(test, given)))
        print(_line("trafilatura", tally(test, [p.trafilatura for p in test])))
        return
    out_of_fold: dict[str, date | None] = {}
    for outer in RULES_FROM:
        train = [p for p in pages if p.fold != outer]
        test = [p for p in pages if p.fold == outer]
        kind, threshold = choose(train)
        for page, (day, score) in zip(test, best_scores(fit(train, kind, threshold), test), strict=True):
            out_of_fold[page.page_id] = day if score >= threshold else None
        print(f"fold {outer} held out: {kind}, threshold {threshold}")
    print(f"folds {', '.join(map(str, RULES_FROM))}, nested:")
    print(_line("rules", tally(pages, [p.rules for p in pages])))
    print(_line("learned", tally(pages, [out_of_fold[p.page_id] for p in pages])))
    print(_line("trafilatura", tally(pages, [p.trafilatura for p in pages])))
    print(_line("best candidate", tally(
        pages, [next((c.day for c in p.candidates if c.day.isoformat() == p.label), None) for p in pages]
    )))
    for kind in KINDS:
        scored: dict[str, tuple[date | None, float]] = {}
        for outer in RULES_FROM:
            test = [p for p in pages if p.fold == outer]
            model = fit([p for p in pages if p.fold != outer], kind)
            scored.update(zip((p.page_id for p in test), best_scores(model, test), strict=True))
        print(f"{kind}, out of fold, by threshold:")
        for t in (0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95):
            given = [d if s >= t else None for d, s in (scored[p.page_id] for p in pages)]
            print(_line(f"  {t:.2f}", tally(pages, given)))


if __name__ == "__main__":
    main()
