"""The page-type classifier: real pages of each kind, HTML and text dumps, and junk input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from worker.document import RawPage
from worker.steps.clean import clean
from worker.steps.clean.html import drop_code, parse_html
from worker.steps.clean.page_type import KINDS, classify_text, classify_tree, text_features, tree_features

FIXTURES = Path(__file__).parent / "fixtures" / "page-types"
TRUTH = json.loads((FIXTURES / "ground-truth.json").read_text(encoding="utf-8"))
NEWS = Path(__file__).parent / "fixtures" / "pages"


def _html(folder: Path, page_id: str) -> str:
    return gzip.decompress((folder / "html" / f"{page_id}.html.gz").read_bytes()).decode("utf-8", "replace")


@pytest.mark.parametrize("page_id", sorted(TRUTH))
def test_each_kind_of_page_is_recognised_from_its_html(page_id: str) -> None:
    tree = drop_code(parse_html(_html(FIXTURES, page_id)))
    found = classify_tree(tree, TRUTH[page_id]["url"])
    assert found.kind == TRUTH[page_id]["page_type"]
    assert set(found.probabilities) == set(KINDS)
    assert abs(sum(found.probabilities.values()) - 1.0) < 1e-3
    assert found.confidence == max(found.probabilities.values())


@pytest.mark.parametrize("page_id", sorted(TRUTH))
def test_each_kind_of_page_is_recognised_from_its_text_dump(page_id: str) -> None:
    text = (FIXTURES / "text" / f"{page_id}.txt").read_text(encoding="utf-8")
    assert classify_text(text, TRUTH[page_id]["url"]).kind == TRUTH[page_id]["page_type"]


def test_news_pages_are_articles_and_cleaning_carries_the_type() -> None:
    truth = json.loads((NEWS / "ground-truth.json").read_text(encoding="utf-8"))
    kinds = []
    for page_id, item in truth.items():
        article = clean(RawPage(url=item["url"], html=_html(NEWS, page_id)))
        assert 0.0 < article.page_type_confidence <= 1.0  # type: ignore[union-attr,operator]
        kinds.append(article.page_type)  # type: ignore[union-attr]
        dumped = clean(RawPage(url=item["url"], text=(NEWS / "text" / f"{page_id}.txt").read_text(encoding="utf-8")))
        assert dumped.page_type == "article", page_id  # type: ignore[union-attr]
    assert kinds == ["article"] * len(kinds)  # a Korean page among them: no <p>, no metadata
    seed = (Path(__file__).parent / "fixtures" / "seed-page.txt").read_text(encoding="utf-8")
    url = "https://worldnewsdesk.example/ukraine-says-it-has-captured-two-north-korean-soldiers"
    dumped = clean(RawPage(url=url, text=seed))
    assert dumped.page_type == "article"  # type: ignore[union-attr]


@pytest.mark.parametrize("markup", ["<html></html>", "<p>one line</p>", "<div>" * 3000 + "deep", "\x00<<>>"])
def test_junk_markup_gets_a_type_without_failing(markup: str) -> None:
    tree = parse_html(markup)
    if tree is None:
        return
    features = tree_features(tree, "not a url")
    assert all(np.isfinite(v) for v in features.values())
    assert classify_tree(tree, None).kind in KINDS


def test_empty_text_gets_a_type_without_failing() -> None:
    assert all(np.isfinite(v) for v in text_features("", "").values())
    assert classify_text("", None).kind in KINDS


def test_article_and_duplicate_events_carry_the_page_type_within_their_schemas() -> None:
    from conftest import validate_event

    from worker.events import article_event, dead_letter_event, duplicate_event

    page_id = "0610"  # a shop's product page
    article = clean(RawPage(url=TRUTH[page_id]["url"], html=_html(FIXTURES, page_id)))
    assert article.page_type == "product"  # type: ignore[union-attr]
    _, event = article_event(article, "0" * 32, "1" * 64)  # type: ignore[arg-type]
    validate_event(event)
    assert event["page_type"] == "product" and 0.0 < event["page_type_confidence"] <= 1.0
    _, copy = duplicate_event("2" * 32, article, "0" * 32, "near", 0.9)  # type: ignore[arg-type]
    validate_event(copy)
    assert copy["page_type"] == "product"
    empty = clean(RawPage(url="https://example.com/news/1", html="<html><body><nav>Home</nav></body></html>"))
    from worker.document import Dropped, Origin

    assert isinstance(empty, Dropped) and empty.page_type is None  # too few words to have a kind
    _, letter = dead_letter_event(empty, b"{}", Origin("t", 0, 1), "https://example.com/news/1")
    validate_event(letter)
    assert "page_type" not in letter


def test_repeated_sibling_shapes_are_counted_per_parent() -> None:
    # forty lists of two items of one class: no parent repeats a shape three times
    markup = "<ul>" + "".join('<li class="a"><ul><li class="x">1</li><li class="x">2</li></ul></li>'
                              for _ in range(40)) + "</ul>"
    features = [tree_features(parse_html(markup), "https://example.com/") for _ in range(3)]
    assert [f["repeat_groups"] for f in features] == [1.0, 1.0, 1.0]  # the outer list's 40 items
    assert [f["repeat_sum"] for f in features] == [40.0, 40.0, 40.0]


def test_word_model_features_do_not_depend_on_the_hash_seed() -> None:
    """A page's word-model probabilities are the same bits in every process: sets of tokens are
    ordered by the string hash, which Python seeds afresh per process, and a sum in another order
    differs in its last bits (enough to move a page across a boosted tree's split)."""
    import subprocess
    import sys

    page_id = sorted(TRUTH)[0]
    script = (
        "import gzip, sys; from pathlib import Path\n"
        "from worker.steps.clean.html import drop_code, parse_html\n"
        "from worker.steps.clean.page_type import read_tree, shipped_model\n"
        f"markup = gzip.decompress(Path({str(FIXTURES / 'html' / f'{page_id}.html.gz')!r}).read_bytes())\n"
        "row, tokens = read_tree(drop_code(parse_html(markup.decode('utf-8', 'replace'))), "
        f"{TRUTH[page_id]['url']!r})\n"
        "print(sorted(shipped_model('html').words.features(tokens).items()))\n"
    )
    runs = {
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                       env={**__import__("os").environ, "PYTHONHASHSEED": seed}).stdout
        for seed in ("1", "2")
    }
    assert len(runs) == 1 and "words_text_article" in next(iter(runs))


def test_word_features_of_a_page_are_each_group_model_s_own() -> None:
    """`WordModels.features` looks a page's tokens up once in one table; each group's
    probabilities are those its own model gives the group's tokens (`grouped_tokens`), to the bit,
    on pages of every kind, from HTML and from dumps, and with tokens no model knows."""
    from worker.steps.clean.page_type import WORD_GROUPS, grouped_tokens, read_text, read_tree, shipped_model

    for source in ("html", "text"):
        models = shipped_model(source).words
        assert models is not None
        for page_id in sorted(TRUTH):
            if source == "html":
                tokens = read_tree(drop_code(parse_html(_html(FIXTURES, page_id))), TRUTH[page_id]["url"])[1]
            else:
                text = (FIXTURES / "text" / f"{page_id}.txt").read_text(encoding="utf-8")
                tokens = read_text(text, TRUTH[page_id]["url"])[1]
            for page in (tokens, [*tokens, "w:zzqx", "u:zzqx", "host:zzqx", "nosource", "zz:zz"], []):
                groups = grouped_tokens(page)
                expected: dict[str, float] = {}
                for model in models.models:
                    one = len(WORD_GROUPS[model.group]) == 1
                    expected.update(model.features(groups.get(model.group, []), one))
                assert models.features(page) == expected


def test_a_dump_s_story_is_read_apart_from_the_teasers_around_it() -> None:
    """The densest prose run of a dump is its story: its sentences (a closing quote may follow
    the stop), quotes and reporting verbs are counted in it, the teasers' dates and repeated lines
    outside it."""
    story = [
        "\u201cWe will rebuild the bridge before winter, whatever the council decides about the budget,\u201d"
        " the mayor said on Tuesday, standing beside the river with the engineers who inspected it.",
        "Engineers told the council that the old supports had cracked after the floods of last spring, and that"
        " the crossing could not carry lorries or buses until the new steel frame was in place.",
        "The work is expected to cost about four million and will close the road for three months, the town's"
        " transport office added in a statement published on its website late on Tuesday evening.",
    ]
    teasers = ["Another story headline here", "January 11, 2025", "69 views"] * 4
    features = text_features("\n".join(["Menu", "Home", *story, *teasers]), "https://news.example/a")
    assert features["dump_runs"] == 1.0 and features["dump_second_run"] == 0.0
    assert features["dump_run_sentences_per_word"] > 0.0
    assert features["dump_run_quotes_per_kword"] > 0.0 and features["dump_run_reporting_per_kword"] > 0.0
    assert features["dump_outside_dates_per_line"] > 0.0
    assert features["dump_outside_repeated_share"] > 0.5
    assert features["dump_run_dates"] == 0.0


def test_words_of_a_text_between_ascii_and_separators_are_the_general_tokens() -> None:
    """A text whose only non-ASCII characters are quotes, dashes, spaces and signs takes the ASCII
    path; its words are what the general tokeniser finds, whatever sits between them."""
    import random

    from worker.steps.clean.page_type import _BETWEEN_WORDS, _LETTERS, _TOKEN, _words

    assert not any(c.isalnum() or c == "_" for c in _BETWEEN_WORDS)
    pieces = ["news", "it", "a", "x2", "don", "t", "co", "op", "42", "_", " ", "\n", "-", "'", *_BETWEEN_WORDS]
    others = ["é", "ß", "\u0301", "\u200f", "ü", "Ω", "中"]  # letters and marks: the general path
    generator = random.Random(3)
    for trial in range(3000):
        parts = generator.choices(pieces, k=generator.randint(0, 30))
        if trial % 3 == 0:
            parts.append(generator.choice(others))
        lowered = "".join(generator.sample(parts, len(parts))).lower()
        letters = _LETTERS.findall(lowered)
        assert _words(lowered, letters) == _TOKEN.findall(lowered), repr(lowered)
        assert _words(lowered, letters, 5) == _TOKEN.findall(lowered)[:5], repr(lowered)
