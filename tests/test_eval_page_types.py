"""`ingest-worker eval page-types`: nested held-out figures on a labelled folder, through the command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from worker.evaluation.page_types import binary_scores, confusion, fit_words, fold_of_site, site
from worker.steps.clean.page_type import KINDS, WordModels

FIXTURES = Path(__file__).parent / "fixtures" / "page-types"


def test_the_command_reports_accuracy_article_f1_and_the_confusion_on_held_out_folds(tmp_path: Path) -> None:
    # two processes with different string-hash seeds: the nested figures are a function of the
    # code and the pages (seeded, single-threaded boosting; features and word sums in fixed order)
    outputs = []
    for seed in ("1", "2"):
        predictions = tmp_path / f"predictions-{seed}.jsonl"
        result = subprocess.run(
            [sys.executable, "-m", "worker", "eval", "page-types", "--data", str(FIXTURES), "--folds", "2",
             "--mode", "html", "--json", "--predictions-out", str(predictions)],
            capture_output=True, text=True, timeout=600, check=True, env={**os.environ, "PYTHONHASHSEED": seed},
        )
        figures = json.loads(result.stdout)["html"]
        figures.pop("cpu_ms_per_page")
        outputs.append((figures, predictions.read_text()))
    assert outputs[0] == outputs[1]
    assert figures["pages"] == 7 and figures["folds"] == 2
    matrix = np.array(figures["confusion"]["rows_true_columns_predicted"])
    assert matrix.sum() == 7 and (matrix.sum(axis=1) == 1).all()  # one page of each kind
    assert figures["accuracy"] == round(float(np.trace(matrix)) / 7, 4)
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert len(rows) == 7 and {r["fold"] for r in rows} <= {0, 1}
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-3 for r in rows)


def test_sites_share_a_fold_and_the_scores_count_right() -> None:
    assert site("https://blog.example.com/a") == site("https://www.example.com/b") == "example.com"
    assert site("https://news.bbc.co.uk/x") == "bbc.co.uk"
    assert fold_of_site("example.com", 5) == fold_of_site("example.com", 5)
    truth, predicted = np.array([0, 0, 1, 2, 0]), np.array([0, 1, 1, 0, 0])
    precision, recall, f1 = binary_scores(truth, predicted)
    assert (precision, recall) == (2 / 3, 2 / 3) and abs(f1 - 2 / 3) < 1e-9
    assert confusion(truth, predicted)[0].tolist() == [2, 1, 0, 0, 0, 0, 0]


def test_word_models_learn_only_words_of_several_sites_and_survive_their_json() -> None:
    # two sites say "cart" on product pages, one site alone says "zebra": only "cart" is learned
    tokens = [["u:cart", "u:zebra"], ["u:cart"], ["u:story"], ["u:story"], ["u:cart"], ["u:story"]]
    labels = np.array([2, 2, 0, 0, 2, 0])  # product, article
    sites = ["a.com", "b.com", "a.com", "b.com", "c.com", "c.com"]
    models = fit_words(tokens, labels, sites)
    assert [m.group for m in models.models] == ["url"]
    assert set(models.models[0].weights) == {"u:cart", "u:story"}
    found = models.features(["u:cart", "h1:ignored"])
    assert set(found) == {f"words_url_{kind}" for kind in KINDS}
    assert abs(sum(found.values()) - 1) < 1e-9 and max(found, key=found.get) == "words_url_product"
    again = WordModels.from_json(models.to_json())
    assert again.features(["u:story"]) == pytest.approx(models.features(["u:story"]), abs=1e-3)
