"""How far restricting the publication date to sources tied to the article moves the two date
figures: date right (of the articles labelled with a date) and dated|undated (of the articles
labelled with none given one).

    python bench/metadata_dates.py --data /work/shared/bench/wcxb/dev [--held-out]

Each page is read once by `clean.metadata.read_meta`; the inputs its date choice was given
(structured dates, the url, what the page shows) are kept, and `choose_date` is run again on
them with sources taken away, cumulatively:

1. every source (the rules as written; the HTML reader now chooses with its date model);
2. without the day shown next to the headline as 'Updated ...' (the last resort);
3. and without the sources not tied to the article: weak structured dates (`<time>` elements
   anywhere, a web page's JSON-LD, `date` meta tags), the url's day, days labelled 'Published'
   away from the headline;
4. and without a structured published date the page never shows;
5. and without the days shown next to the headline or the byline: only the article's own
   structured published date (article JSON-LD, `article:published_time`) that the page shows.

Each row is also run alone (one source taken away, the others kept). Folds as in `ingest-worker
eval metadata` (five, grouped by site); training folds 1-3 are printed, folds 4-5 only with
`--held-out`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from worker.evaluation.metadata import RULES_FROM, date_right, load_labelled, site_fold
from worker.steps.clean import metadata
from worker.steps.clean.html import drop_code, parse_html
from worker.steps.clean.page import iso_date

Inputs = tuple[list[str], list[str], list[str], str | None, metadata.Shown, list[str]]
Cut = Callable[[Inputs], Inputs]


def read_inputs(root: Path, held_out: bool) -> list[tuple[str | None, Inputs]]:
    """(labelled day, date inputs) of every article of the folds asked for."""
    labelled = load_labelled(root)
    kept: list[Inputs] = []
    original = metadata.date_sources  # given the same inputs as `choose_date`

    def keep(strong: Sequence[str], weak: Sequence[str], modified: Sequence[str], url: str | None,
             seen: metadata.Shown, tagged: Sequence[str] = ()) -> dict[str, list[date]]:
        kept.append((list(strong), list(weak), list(modified), url, seen, list(tagged)))
        return original(strong, weak, modified, url, seen, tagged)

    pages: list[tuple[str | None, Inputs]] = []
    metadata.date_sources = keep  # type: ignore[assignment]
    try:
        for page_id in sorted(labelled.labels):
            label = labelled.labels[page_id]
            fold = site_fold(str(label["url"]), 5) + 1
            if label.get("page_type") != "article" or (fold not in RULES_FROM) != held_out:
                continue
            markup = labelled.html(page_id)
            tree = parse_html(markup) if markup else None
            if tree is None:
                continue
            kept.clear()
            metadata.read_meta(drop_code(tree), str(label["url"]))
            pages.append((label.get("published"), kept[0]))
    finally:
        metadata.date_sources = original  # type: ignore[assignment]
    return pages


def _shown(value: str, seen: metadata.Shown) -> bool:
    day = metadata._stated_day(value)
    return day is not None and any(day + timedelta(days=k) in seen.shown for k in (-1, 0, 1))


def no_updates(i: Inputs) -> Inputs:
    return i[0], i[1], i[2], i[3], replace(i[4], updates=[]), i[5]


def no_untied(i: Inputs) -> Inputs:
    return i[0], [], i[2], None, replace(i[4], labelled=[]), i[5]


def no_unshown_structured(i: Inputs) -> Inputs:
    return [v for v in i[0] if _shown(v, i[4])], i[1], i[2], i[3], i[4], [v for v in i[5] if _shown(v, i[4])]


def no_shown_days(i: Inputs) -> Inputs:
    return i[0], i[1], i[2], i[3], replace(i[4], header=[], signed=[], original=[]), i[5]


CUTS: list[tuple[str, Cut]] = [
    ("'Updated' day next to the headline", no_updates),
    ("weak structured, url, 'Published' elsewhere", no_untied),
    ("structured date the page never shows", no_unshown_structured),
    ("days next to the headline or byline", no_shown_days),
]


def score(pages: list[tuple[str | None, Any]], cut: Cut) -> str:
    dated = right = undated = given = 0
    for label, inputs in pages:
        found = iso_date(metadata.choose_date(*cut(inputs)))
        if label:
            dated += 1
            right += date_right(str(label), found)
        else:
            undated += 1
            given += found is not None
    return f"{right / dated:.3f} ({right}/{dated})   {given / undated:.3f} ({given}/{undated})"


def main() -> None:
    """Print the curve."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--held-out", action="store_true", help="folds 4-5 instead of the training folds 1-3")
    args = parser.parse_args()
    pages = read_inputs(args.data, args.held_out)
    print(f"articles, {'held-out folds 4-5' if args.held_out else 'training folds 1-3'}: "
          "date right (right/dated)   dated|undated (given/undated)")
    print(f"{'every source':<68}{score(pages, lambda i: i)}")
    cuts: list[Cut] = []
    for name, cut in CUTS:
        cuts.append(cut)

        def together(i: Inputs, chosen: tuple[Cut, ...] = tuple(cuts)) -> Inputs:
            for c in chosen:
                i = c(i)
            return i

        print(f"{'- ' + name + ' (and the rows above)':<68}{score(pages, together)}")
    for name, cut in CUTS:
        print(f"{'- ' + name + ' alone':<68}{score(pages, cut)}")


if __name__ == "__main__":
    main()
