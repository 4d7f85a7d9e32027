"""The HTML cleaner's block features and its learned trees: shapes, the model file, training."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np

from worker.evaluation.clean_training import (
    THRESHOLDS,
    TreeChoice,
    block_page,
    choose_trees,
    fit_context,
    fit_story_pages,
    fit_trees,
    kept_text,
    learned_nothing,
    made_from,
    repeat_labels,
    train_block_model,
)
from worker.evaluation.extraction import block_pages, load_bench
from worker.evaluation.extraction_metric import word_prf
from worker.steps.clean.blocks import FEATURES, PAGE_FEATURES, PageBlocks, page_blocks, page_signals, repeat_columns
from worker.steps.clean.context import CONTEXT_FEATURES, context_rows
from worker.steps.clean.html import drop_code, join_row_cells, parse_html, select_paragraphs
from worker.steps.clean.trees import BlockModel, expected_f1_keep, shipped_blocks

WCXB = Path(__file__).parent / "fixtures" / "wcxb"
TRUTH = json.loads((WCXB / "ground-truth.json").read_text(encoding="utf-8"))
PAGES = Path(__file__).parent / "fixtures" / "pages"  # news pages of five sites


def _blocks(page_id: str):  # type: ignore[no-untyped-def]
    html = gzip.decompress((WCXB / "html" / f"{page_id}.html.gz").read_bytes()).decode("utf-8")
    tree = parse_html(html)
    drop_code(tree)
    return page_blocks(tree, TRUTH[page_id]["url"])


def test_every_block_gets_one_finite_row_of_every_feature() -> None:
    for page_id in TRUTH:
        blocks = _blocks(page_id)
        assert len(blocks.texts) > 5
        assert blocks.features.shape == (len(blocks.texts), len(FEATURES))
        assert np.isfinite(blocks.features).all()
        page_columns = blocks.features[:, [FEATURES.index(name) for name in PAGE_FEATURES]]
        assert (page_columns == page_columns[0]).all()  # page features are the page's, not the block's
        assert blocks.ancestors.shape == (len(blocks.texts), 4)
        # blocks sharing a parent share its grandparent too
        parents = {}
        for row in blocks.ancestors:
            assert parents.setdefault(int(row[0]), tuple(row[1:])) == tuple(row[1:])


def test_a_repeated_text_is_counted_and_its_later_copies_marked() -> None:
    texts = ["Home", "The mayor opened the bridge today.", "Home", "The mayor opened the bridge today.",
             "A second paragraph of the story."]
    columns = repeat_columns(texts, np.array([1.0, 6.0, 1.0, 6.0, 6.0]))
    assert columns[:, 0].tolist() == [np.log(2)] * 4 + [0.0]
    # a later copy of three words or more is marked; a one-word menu item repeated is not
    assert columns[:, 1].tolist() == [0.0, 0.0, 0.0, 1.0, 0.0]


def test_a_later_copy_is_story_only_while_the_true_body_holds_that_many() -> None:
    texts = ["The mayor opened the bridge today.", "Menu", "The mayor opened the bridge today.",
             "Added in version 3.2.", "Added in version 3.2.", "Added in version 3.2."]
    labels = np.array([1.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    truth = "The mayor opened the bridge today. Added in version 3.2. Text. Added in version 3.2."
    # the story's paragraph is once in the body: its second copy is not story; the note is
    # twice in the body: its first two copies are story, the third is not
    assert repeat_labels(texts, labels, truth).tolist() == [1.0, 0.0, 0.0, 1.0, 1.0, 0.0]
    assert repeat_labels(texts[:2], labels[:2], truth).tolist() == [1.0, 0.0]  # nothing repeated


def test_page_signals_read_the_url_and_declared_types() -> None:
    tree = parse_html('<html><head><script type="application/ld+json">{"@type": "Product"}</script>'
                      '<meta property="og:type" content="product"></head><body><p>x</p></body></html>')
    signals = page_signals(tree, "https://shop.example/products/blue-mug?variant=2")
    assert signals["declares_product"] == 1.0 and signals["declares_article"] == 0.0
    assert signals["url_product"] == 1.0 and signals["url_depth"] == 2.0 and signals["url_is_root"] == 0.0
    assert page_signals(tree, "https://example.com/")["url_is_root"] == 1.0


def test_trees_learn_the_story_and_survive_a_round_trip_through_their_file() -> None:
    bench = load_bench(WCXB)
    pages = block_pages(bench, sorted(bench.bodies), storyless=True)  # 7 labelled, 1 without its story
    urls = {i: bench.urls[made_from(i)] for i in pages}
    inner = choose_trees(pages, urls, folds=2)
    assert isinstance(inner.choice, TreeChoice) and 0.0 <= inner.f1 <= 1.0
    assert set(inner.first[inner.choice.trees]) == set(pages)  # every page held out once
    model = train_block_model(pages, urls)
    assert model.features == FEATURES and model.choices["pages"] == 7 and model.choices["story_less_pages"] == 1
    labelled = [p for i, p in pages.items() if made_from(i) == i]
    booster = fit_trees(labelled, 15, 20)
    assert booster.num_trees() == 20
    first = [booster.predict(p.rows) for p in pages.values()]
    story = [made_from(i) == i for i in pages]
    labelled_first = [f for f, s in zip(first, story, strict=True) if s]
    context = fit_context(labelled, labelled_first, 10)
    with_context = BlockModel(booster, FEATURES, 0.4, False, {}, context,
                              fit_story_pages(list(pages.values()), story, first))
    blocks = _blocks("0426")
    for trained in (model, with_context):
        again = BlockModel.from_text(trained.to_text())
        assert (again.context is None) == (trained.context is None)
        assert (again.story is None) == (trained.story is None)
        assert np.allclose(again.scores(blocks)[0], trained.scores(blocks)[0])
        assert select_paragraphs(blocks, again) == select_paragraphs(blocks, trained)
    assert not np.allclose(with_context.scores(blocks)[0], with_context.probabilities(blocks.features))
    assert with_context.scores(blocks)[1] == 0.4
    # story-page trees that find no story on the page: the first trees' probabilities stand,
    # kept at the threshold chosen for the first trees alone
    no_story = fit_story_pages(list(pages.values()), [not s for s in story], first)
    gated = BlockModel.from_text(BlockModel(booster, FEATURES, 0.4, False, {}, context, no_story, 0.25).to_text())
    probabilities, threshold = gated.scores(blocks)
    assert np.allclose(probabilities, gated.probabilities(blocks.features)) and threshold == 0.25
    assert model.choices["plain_threshold"] in THRESHOLDS
    assert fit_story_pages(labelled, [True] * 7, labelled_first) is None  # one kind of page: nothing learned
    # the expected-F1 rule on a page with a story: what `keep` returns, and it survives the file
    by_f1 = BlockModel.from_text(BlockModel(booster, FEATURES, 0.4, False, {}, context, None, 0.25, 1.5).to_text())
    assert by_f1.power == 1.5
    words = np.expm1(blocks.features[:, FEATURES.index("log_words")])
    assert np.array_equal(by_f1.keep(blocks), expected_f1_keep(by_f1.scores(blocks)[0], words, 1.5))
    assert np.array_equal(gated.keep(blocks), probabilities >= 0.25)


def test_context_trees_that_learned_nothing_are_no_choice() -> None:
    # Two labelled pages: each inner fold's context trees learn from one page's blocks, too few
    # for a leaf of 200, and give every block one probability. A keep rule over that keeps all
    # or nothing, and the expected-F1 rule always all: such trees are not among the choices.
    bench = load_bench(PAGES)
    pages = block_pages(bench, [i for i in sorted(bench.bodies) if i[:2] in ("23", "2f")])
    urls = {i: bench.urls[i] for i in pages}
    inner = choose_trees(pages, urls, folds=2)
    one = [pages[i] for i in sorted(pages)[:1]]
    blind = fit_context(one, [inner.first[inner.choice.trees][sorted(pages)[0]]], 50)
    rows = context_rows(one[0].blocks, np.full(len(one[0].rows), 0.5))
    assert learned_nothing(blind) and len(set(blind.predict(rows))) == 1
    assert inner.choice.context_trees == 0 and inner.choice.power is None
    model = train_block_model(pages, urls)
    assert model.context is None and model.power is None and model.threshold == model.plain_threshold
    labelled = [p for i, p in block_pages(load_bench(WCXB), sorted(TRUTH)).items() if made_from(i) == i]
    booster = fit_trees(labelled, 15, 20)
    assert not learned_nothing(booster)
    assert not learned_nothing(fit_context(labelled, [booster.predict(p.rows) for p in labelled], 10))


def test_the_expected_f1_rule_keeps_a_clear_story_and_more_of_a_doubtful_page() -> None:
    words = np.array([100.0, 80.0, 10.0, 10.0, 5.0])
    story = np.array([0.95, 0.9, 0.3, 0.2, 0.05])
    assert expected_f1_keep(story, words, 1.0).tolist() == [True, True, False, False, False]
    # a page of many doubtful items of the same size: keeping them all is worth more
    items = np.full(10, 20.0)
    assert expected_f1_keep(np.full(10, 0.35), items, 1.0).all()
    # a higher power counts a doubtful block for less
    doubtful = np.array([0.9, 0.45])
    assert expected_f1_keep(doubtful, np.array([50.0, 50.0]), 1.0).tolist() == [True, True]
    assert expected_f1_keep(doubtful, np.array([50.0, 50.0]), 2.0).tolist() == [True, False]
    assert expected_f1_keep(np.zeros(0), np.zeros(0), 1.0).tolist() == []


def test_context_rows_read_the_neighbours_the_ancestors_and_the_densest_run() -> None:
    # six blocks: a menu item, four story paragraphs under one parent, a footer line
    features = np.zeros((6, len(FEATURES)))
    features[:, FEATURES.index("log_words")] = np.log1p([3, 40, 50, 45, 30, 4])
    ancestors = np.array([[0, 5, 6, 7], [1, 4, 6, 7], [1, 4, 6, 7], [1, 4, 6, 7], [1, 4, 6, 7], [2, 5, 6, 7]])
    blocks = PageBlocks([f"b{k}" for k in range(6)], features, ancestors)
    first = np.array([0.3, 0.9, 0.2, 0.95, 0.8, 0.1])
    rows = context_rows(blocks, first)
    column = {name: rows[:, k] for k, name in enumerate(CONTEXT_FEATURES)}
    assert rows.shape == (6, len(CONTEXT_FEATURES)) and np.isfinite(rows).all()
    assert column["p"].tolist() == first.tolist()
    assert column["p_prev"][2] == 0.9 and column["p_next"][2] == 0.95 and column["p_prev"][0] == 0.0
    assert column["up1_max"][2] == 0.95 and column["up1_mean"][2] == np.mean([0.9, 0.2, 0.95, 0.8])
    assert column["in_run"].tolist() == [0, 1, 1, 1, 1, 0]  # the low block inside the body stays in it
    assert column["run_gap"][5] > 0 and column["before_run"][0] == 1.0
    assert context_rows(PageBlocks([], np.zeros((0, len(FEATURES)))), np.zeros(0)).shape == (0, len(CONTEXT_FEATURES))


def test_the_shipped_model_reads_the_features_the_code_computes() -> None:
    model = shipped_blocks()
    assert model.features == FEATURES
    assert 0.0 < model.threshold < 1.0
    kept = select_paragraphs(_blocks("0426"), model)
    assert word_prf(TRUTH["0426"]["articleBody"], "\n".join(kept))[2] >= 0.8


def test_the_kept_cells_of_a_table_row_are_one_line() -> None:
    tree = parse_html(
        "<html><body><p>Standings after the final race of the season, updated every week.</p>"
        "<table><tr><th>Pos.</th><th>Driver</th><th>Points</th></tr>"
        "<tr><td>1</td><td>Kyle Busch</td><td>5040</td></tr>"
        "<tr><td>2</td><td><p>Martin Truex Jr.</p><p>Team car</p></td><td>5035</td></tr></table>"
        "<table><tr><td><p>A layout cell holding a story.</p><p>Its second paragraph.</p></td>"
        "<td>Sidebar</td></tr></table></body></html>"
    )
    blocks = page_blocks(tree, "https://example.com/standings")
    assert len(blocks.table_rows) == len(blocks.texts)
    lines = join_row_cells(blocks, list(range(len(blocks.texts))))
    assert lines[:3] == [
        "Standings after the final race of the season, updated every week.", "Pos. Driver Points",
        "1 Kyle Busch 5040",
    ]
    # a cell of several blocks is not one value of its row: its blocks stay lines of their own
    assert lines[3:] == ["2", "Martin Truex Jr.", "Team car", "5035", "A layout cell holding a story.",
                         "Its second paragraph.", "Sidebar"]
    # a dropped cell leaves the row's other kept cells on one line
    assert join_row_cells(blocks, [1, 3, 4]) == ["Pos. Points", "1"]


def test_training_scores_the_lines_the_cleaner_gives() -> None:
    blocks = page_blocks(parse_html(
        "<html><body><p>Standings after the final race of the season, updated every week.</p>"
        "<table><tr><td>1</td><td>Kyle Busch</td><td>5040</td></tr></table></body></html>"
    ), "https://example.com/standings")
    page = block_page(blocks, "Standings after the final race of the season, updated every week.")
    assert page.blocks.table_rows == blocks.table_rows
    kept = kept_text(page, np.ones(len(blocks.texts)), 0.5, False)
    assert kept.splitlines() == join_row_cells(blocks, list(range(len(blocks.texts))))
    assert kept.splitlines()[-1] == "1 Kyle Busch 5040"
