"""The HTML cleaner's block features and its learned trees: shapes, the model file, training."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np

from worker.evaluation.clean_training import TreeChoice, block_page, choose_trees, fit_trees, train_block_model
from worker.evaluation.extraction_metric import word_prf
from worker.steps.clean.blocks import FEATURES, page_blocks, page_signals
from worker.steps.clean.html import drop_code, parse_html, select_paragraphs
from worker.steps.clean.trees import BlockModel, shipped_blocks

WCXB = Path(__file__).parent / "fixtures" / "wcxb"
TRUTH = json.loads((WCXB / "ground-truth.json").read_text(encoding="utf-8"))


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
        page_columns = blocks.features[:, FEATURES.index("page_log_words"):]
        assert (page_columns == page_columns[0]).all()  # page features are the page's, not the block's


def test_page_signals_read_the_url_and_declared_types() -> None:
    tree = parse_html('<html><head><script type="application/ld+json">{"@type": "Product"}</script>'
                      '<meta property="og:type" content="product"></head><body><p>x</p></body></html>')
    signals = page_signals(tree, "https://shop.example/products/blue-mug?variant=2")
    assert signals["declares_product"] == 1.0 and signals["declares_article"] == 0.0
    assert signals["url_product"] == 1.0 and signals["url_depth"] == 2.0 and signals["url_is_root"] == 0.0
    assert page_signals(tree, "https://example.com/")["url_is_root"] == 1.0


def test_trees_learn_the_story_and_survive_a_round_trip_through_their_file() -> None:
    pages = {i: block_page(b.texts, b.features, TRUTH[i]["articleBody"]) for i in TRUTH if (b := _blocks(i))}
    urls = {i: TRUTH[i]["url"] for i in TRUTH}
    choice, f1 = choose_trees(pages, urls, folds=2)
    assert isinstance(choice, TreeChoice) and 0.0 <= f1 <= 1.0
    model = train_block_model(pages, urls)
    assert model.features == FEATURES and model.choices["pages"] == 7
    again = BlockModel.from_text(model.to_text())
    blocks = _blocks("0426")
    assert np.allclose(again.probabilities(blocks.features), model.probabilities(blocks.features))
    assert select_paragraphs(blocks, again) == select_paragraphs(blocks, model)
    booster = fit_trees(list(pages.values()), 15, 20)
    assert booster.num_trees() == 20


def test_the_shipped_model_reads_the_features_the_code_computes() -> None:
    model = shipped_blocks()
    assert model.features == FEATURES
    assert 0.0 < model.threshold < 1.0
    kept = select_paragraphs(_blocks("0426"), model)
    assert word_prf(TRUTH["0426"]["articleBody"], "\n".join(kept))[2] >= 0.8
