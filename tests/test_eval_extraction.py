"""`ingest-worker eval extraction` on a mini benchmark folder, and its metric."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from worker.cli import main as cli_main
from worker.document import PAGE_KINDS
from worker.evaluation.clean_training import NO_STORY, fold_of, made_from, page_folds, site_of
from worker.evaluation.extraction import (
    aggregate,
    block_pages,
    load_bench,
    main,
    page_counts,
    shingle_counts,
    snippet_f1,
    snippet_score,
    word_prf,
)
from worker.evaluation.paired import paired_difference

PAGES = Path(__file__).parent / "fixtures" / "pages"


def test_metric_matches_the_benchmark_definition() -> None:
    assert shingle_counts("") == {}
    assert shingle_counts("one two") == {("one", "two"): 1}
    assert sum(shingle_counts("a b c d e").values()) == 2
    assert page_counts("a b c d e", "a b c d e") == (1.0, 0.0, 0.0)
    assert page_counts("", "") == (0.0, 0.0, 0.0)
    tp, fp, fn = page_counts("a b c d e f", "a b c d x")
    assert (tp, fp, fn) == (0.25, 0.25, 0.5)  # shared abcd; extra bcdx; missing bcde, cdef
    f1, p, r = aggregate([(0.5, 0.25, 0.25), (0.0, 0.0, 1.0)])
    assert p == pytest.approx(2 / 3)  # the empty prediction has tp+fp == 0: no precision row
    assert r == pytest.approx((2 / 3 + 0.0) / 2)
    assert f1 == pytest.approx(2 * p * r / (p + r))


def test_eval_prints_figures_and_writes_predictions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = tmp_path / "out" / "pred"
    assert main(["--data", str(PAGES), "--predictions-out", str(prefix)]) == 0
    out = capsys.readouterr().out
    for label in ("clean html", "trafilatura default", "clean text", "pages/s", "speed"):
        assert label in out
    truth = json.loads((PAGES / "ground-truth.json").read_text(encoding="utf-8"))
    for mode in ("html", "text"):
        predictions = json.loads(Path(f"{prefix}.{mode}.json").read_text(encoding="utf-8"))
        assert set(predictions) == set(truth)
        assert all(isinstance(v["articleBody"], str) for v in predictions.values())
        assert sum(bool(v["articleBody"]) for v in predictions.values()) >= 4


def test_eval_json_through_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["eval", "extraction", "--data", str(PAGES), "--mode", "text", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert set(figures) >= {"text", "speed_ratio"}
    assert figures["text"]["pages"] == 5
    assert 0.8 <= figures["text"]["f1"] <= 1.0
    assert figures["text"]["pages_per_second"] > 0


def test_eval_html_mode_scores_well(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data", str(PAGES), "--mode", "html", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["html"]["f1"] >= 0.9
    assert figures["trafilatura"]["pages"] == 5
    assert figures["speed_ratio"] > 0


def test_eval_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["eval", "extraction", "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "ground-truth.json" in err and len(err.strip().splitlines()) == 1


WILD = Path(__file__).parent / "fixtures" / "wild"


def test_eval_held_out_folds_and_wild_set_in_one_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data", str(PAGES), "--folds", "2", "--wild", str(WILD), "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    for mode in ("html", "trafilatura", "text"):
        folds = figures["folds"][mode]
        assert len(folds) == 2 and sum(f["pages"] for f in folds) == 5
        assert all(0.0 <= f["f1"] <= 1.0 for f in folds)
    assert figures["html"]["f1"] >= 0.8  # trained on two or three pages, scored on the others
    assert figures["wild"]["html"]["pages"] == 5 and figures["wild"]["trafilatura"]["pages"] == 5
    assert figures["wild"]["html"]["f1"] >= 0.8
    for name in ("labelled", "wild"):
        difference = figures["difference"][name]
        assert difference["low"] <= difference["value"] <= difference["high"]
        assert 0.0 <= difference["ahead"] <= 1.0 and difference["resamples"] == 2000
    assert figures["difference"]["labelled"]["value"] == pytest.approx(
        figures["html"]["f1"] - figures["trafilatura"]["f1"])
    assert figures["difference"]["wild"]["value"] == pytest.approx(
        figures["wild"]["html"]["f1"] - figures["wild"]["trafilatura"]["f1"])
    sentences = figures["story_sentences"]
    assert sentences["total"] > 100 and sentences["share"] < 0.05  # the 0.5% bound: test_clean.py


def test_eval_report_names_held_out_folds_and_wild(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data", str(PAGES), "--mode", "text", "--folds", "2", "--wild", str(WILD)]) == 0
    out = capsys.readouterr().out
    for label in ("held-out folds", "pooled", "story sentences", "wild set", "trafilatura default"):
        assert label in out
    assert "clean html - trafilatura default: F1" in out and "95% interval over pages" in out


def test_paired_difference_tells_a_resolved_lead_from_one_page() -> None:
    f1 = lambda rows: snippet_f1(rows)[0]  # noqa: E731
    perfect, missed = (1, 0, 0), (0, 0, 1)
    same = paired_difference([perfect] * 20, [perfect] * 20, f1)
    assert (same.value, same.low, same.high, same.ahead) == (0.0, 0.0, 0.0, 0.0)
    everywhere = paired_difference([perfect] * 20, [missed] * 20, f1)
    assert everywhere.low == everywhere.high == 1.0 and everywhere.ahead == 1.0
    # Ahead on one page of 20: the lead is real on this set, but a draw leaves that page out
    # about a third of the time, so the interval reaches zero and the share ahead says so.
    one_page = paired_difference([missed] * 19 + [perfect], [missed] * 20, f1)
    assert one_page.value > 0.0 and one_page.low == 0.0
    assert 0.55 < one_page.ahead < 0.75
    again = paired_difference([missed] * 19 + [perfect], [missed] * 20, f1)
    assert again == one_page  # a fixed seed: the same predictions give the same interval
    with pytest.raises(ValueError):
        paired_difference([perfect], [], f1)


def test_snippet_score() -> None:
    items = {"a": {"with": ["one two", "three"], "without": ["menu"]}}
    assert snippet_score(items, {"a": "one  two\nthree"}) == (1.0, 1.0, 1.0)
    f1, p, r = snippet_score(items, {"a": "one two menu"})
    assert (p, r) == (0.5, 0.5) and f1 == pytest.approx(0.5)
    assert snippet_score(items, {}) == (0.0, 0.0, 0.0)


def test_eval_refuses_one_fold(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--data", str(PAGES), "--folds", "1"])


WCXB = Path(__file__).parent / "fixtures" / "wcxb"


def test_word_metric_is_the_wcxb_scorer() -> None:
    assert word_prf("", "") == (1.0, 1.0, 1.0) and word_prf("", "x") == (0.0, 0.0, 0.0)
    assert word_prf("a b", "") == (0.0, 0.0, 0.0)
    # multiset overlap of lower-cased words: truth {a, b, b, c}, prediction {a, b, d}
    p, r, f1 = word_prf("A b b, c.", "a B d")
    assert (p, r) == (2 / 3, 2 / 4) and f1 == pytest.approx(2 * p * r / (p + r))


def test_folds_keep_a_site_together() -> None:
    urls = {f"{k:02d}": f"https://{'news.' if k % 2 else ''}site{k % 5}.co.uk/{k}" for k in range(40)}
    urls |= {f"x{k}": f"https://www.other{k}.com/" for k in range(20)}
    assignment = fold_of(urls, 5, urls)
    sites: dict[str, set[int]] = {}
    for page_id, fold in assignment.items():
        sites.setdefault(site_of(urls[page_id]), set()).add(fold)
    assert len(sites) == 25 and all(len(folds) == 1 for folds in sites.values())
    sizes = [sum(1 for k in assignment.values() if k == fold) for fold in range(5)]
    assert max(sizes) - min(sizes) <= 8  # sites of 8 pages dealt to the emptiest fold
    assert fold_of(urls, 5, urls) == assignment


def test_eval_on_the_wcxb_layout_scores_like_its_scorer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = tmp_path / "pred"
    assert main(["--data", str(WCXB), "--mode", "html", "--json", "--predictions-out", str(prefix)]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["metric"] == "word F1"
    assert figures["type_counts"] == dict.fromkeys(figures["html"]["types"], 1)
    assert len(figures["html"]["types"]) == 7 and len(figures["trafilatura"]["types"]) == 7
    truth = json.loads((WCXB / "ground-truth.json").read_text(encoding="utf-8"))
    predictions = json.loads(Path(f"{prefix}.html.json").read_text(encoding="utf-8"))
    rows = {i: word_prf(truth[i]["articleBody"], predictions[i]["articleBody"]) for i in truth}
    assert figures["html"]["f1"] == pytest.approx(sum(r[2] for r in rows.values()) / len(rows))
    for kind, f1 in figures["html"]["types"].items():
        assert f1 == pytest.approx(next(r[2] for i, r in rows.items() if truth[i]["page_type"] == kind))
    assert figures["html"]["cpu_ms_per_page"] > 0 and figures["trafilatura"]["cpu_ms_per_page"] > 0
    # the page-type classifier beside the extraction figures: one page of each kind
    types = figures["page_types"]["html"]
    matrix = np.array(types["confusion"]["rows_true_columns_predicted"])
    assert types["pages"] == 7 and matrix.sum() == 7 and (matrix.sum(axis=1) == 1).all()
    assert types["accuracy"] == round(float(np.trace(matrix)) / 7, 4)
    assert types["cpu_ms_per_page"] > 0


def test_eval_report_on_the_wcxb_layout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data", str(WCXB), "--mode", "html", "--folds", "2"]) == 0
    out = capsys.readouterr().out
    for label in ("word F1", "word F1 by page type", "collection", "ms CPU a page", "CPU a page:",
                  "page types from HTML (held-out folds, k=2):", "confusion (rows true, columns predicted)"):
        assert label in out
    confusion = out.split("confusion (rows true, columns predicted):")[1].splitlines()[2:9]
    assert [row.split()[0] for row in confusion] == list(PAGE_KINDS)
    assert sum(int(n) for row in confusion for n in row.split()[1:8]) == 7  # every page counted once


def test_an_article_page_without_its_story_trains_as_a_page_with_nothing_to_keep() -> None:
    bench = load_bench(WCXB)
    pages = block_pages(bench, sorted(bench.bodies), storyless=True)
    made = sorted(i for i in pages if made_from(i) != i)
    assert made == [f"0426{NO_STORY}"]  # the fixture's one article page; other kinds are not made
    real, bare = pages["0426"], pages[made[0]]
    assert real.labels.sum() > 10 and bare.truth == "" and not bare.labels.any()
    story = {t for t, label in zip(real.texts, real.labels, strict=True) if label}
    assert not story & set(bare.texts)  # the story is gone, the template stays
    assert 0 < len(bare.texts) < len(real.texts)
    urls = {i: bench.urls[made_from(i)] for i in pages}
    folds = page_folds(pages, 3, urls)
    assert folds[made[0]] == folds["0426"]
    assert {i: k for i, k in folds.items() if i in bench.bodies} == fold_of(bench.bodies, 3, bench.urls)
