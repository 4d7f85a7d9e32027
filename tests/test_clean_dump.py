"""The text-dump cleaner's learned parts: line features, selection rules, the line model and its
training (folds grouped by site, the selection rule chosen inside the training pages)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from worker.document import Article, RawPage
from worker.evaluation import dump_training
from worker.evaluation.dump_training import (
    SELECTIONS,
    choose_selection,
    dump_page,
    fold_line_models,
    train_line_model,
    vocabulary,
)
from worker.evaluation.extraction import main
from worker.steps.clean.dump import (
    LINE_FEATURES,
    ROW_FEATURES,
    read_dump,
    select_lines,
)
from worker.steps.clean.line_model import WORD_SCORE_FEATURES, LineModel, Selection, shipped_line_model
from worker.steps.clean.model import CleanModels
from worker.steps.clean.page import clean

WCXB = Path(__file__).parent / "fixtures" / "wcxb"
PAGES = Path(__file__).parent / "fixtures" / "pages"

STORY = (
    "The council voted on Tuesday to close the old bridge for repairs after engineers found "
    "cracks in two of its supports, a decision that will add twenty minutes to many commutes."
)


def _labelled(folder: Path, word_metric: bool) -> list:
    truth = json.loads((folder / "ground-truth.json").read_text(encoding="utf-8"))
    return [
        dump_page(i, (folder / "text" / f"{i}.txt").read_text(encoding="utf-8"), rec["articleBody"] or "",
                  rec["url"], word_metric, str(folder), rec.get("page_type", "article"))
        for i, rec in sorted(truth.items())
    ]


def test_rows_read_indentation_neighbours_and_the_url() -> None:
    text = "\n".join([
        "Home", "  * News", "  * Sport",
        "      Bridge closes for repairs",
        f"      {STORY}",
        f"      {STORY.replace('council', 'mayor')}",
        "  Privacy policy",
    ])
    dump = read_dump(text, "en", "https://news.example/2024/bridge-closes-for-repairs")
    assert dump.rows.shape == (7, len(ROW_FEATURES))
    column = {name: dump.rows[:, k] for k, name in enumerate(ROW_FEATURES)}
    assert list(column["indent"] * 40) == [0, 2, 2, 6, 6, 6, 2]
    assert column["page_indented"][0] == 1.0
    assert column["indent_story_share"][4] == 1.0 and column["indent_story_share"][0] == 0.0
    assert column["url_overlap"][3] == 1.0  # every word of the path is in the headline
    assert column["after_url_line"][4] == 1.0 and column["after_url_line"][0] == 0.0
    assert column["log_size@+1"][3] == dump.rows[4, LINE_FEATURES.index("log_size")]
    assert column["log_size@-2"][0] == -1.0  # before the page's first line
    assert "bridge" in dump.words[3] and all(not w.isdigit() for words in dump.words for w in words)


def test_selection_rules() -> None:
    lines = ["Home", "Menu", STORY, "Share this article", STORY.replace("council", "mayor"), "About us"]
    dump = read_dump("\n".join(lines), "en")
    story = np.array([0.1, 0.05, 0.95, 0.6, 0.9, 0.2])
    # the boilerplate pattern line inside the run is never kept
    assert select_lines(dump.lines, story, Selection("run", 0.3)) == [2, 4]
    only_second = np.array([0.1, 0.1, 0.1, 0.1, 0.9, 0.1])
    assert select_lines(dump.lines, only_second, Selection("run", 0.3)) == [4]
    with pytest.raises(ValueError):
        Selection("top", 1.0)
    teasers = read_dump("\n".join([STORY, "Read more:", "Bridge repairs begin next week", STORY]), "en")
    assert select_lines(teasers.lines, np.array([0.9, 0.1, 0.9, 0.9]), Selection("run", 0.3)) == [0, 3]
    with pytest.raises(ValueError):
        Selection("run", 0.3, 0.0)


def test_a_share_below_one_keeps_the_other_runs_that_reach_it() -> None:
    menu = "Home About Contact Privacy Terms Careers Advertise Newsletter Subscribe Help Shop"
    gap = [menu, menu.upper(), menu.lower(), menu.title(), menu.swapcase()]
    replies = [STORY, *gap, STORY.replace("council", "mayor"), *gap, STORY.replace("council", "board")]
    dump = read_dump("\n".join(replies), "en")
    story = np.array([0.95, *[0.02] * 5, 0.6, *[0.02] * 5, 0.6])
    assert select_lines(dump.lines, story, Selection("run", 0.3)) == [0]
    # each reply is a run of its own: a share of 0.25 keeps both, 1.0 only the densest
    assert select_lines(dump.lines, story, Selection("run", 0.3, 0.25)) == [0, 6, 12]
    assert select_lines(dump.lines, story, Selection("run", 0.3, 1.0)) == [0]


def test_training_chooses_inside_the_pages_and_the_model_round_trips(monkeypatch: pytest.MonkeyPatch) -> None:
    pages = _labelled(WCXB, True) + _labelled(PAGES, False)
    assert len({p.site for p in pages}) >= 3
    assert all(len(p.labels) == len(p.dump.lines) and p.labels.max() == 1.0 for p in pages)
    selection, by_kind, scores = choose_selection(pages)
    assert selection in SELECTIONS and set(scores) == set(SELECTIONS)
    assert scores[selection] == max(scores.values()) and all(0.0 <= s <= 1.0 for s in scores.values())
    assert by_kind == {}  # no kind has MIN_KIND_PAGES pages here
    monkeypatch.setattr(dump_training, "MIN_KIND_PAGES", 5)
    model, _ = train_line_model(pages)
    assert model.selection == selection and model.vocabulary == tuple(vocabulary(pages))
    assert set(model.by_kind) == {"article"} and model.by_kind["article"] in SELECTIONS  # 6 article pages
    assert model.selection_for("article") == model.by_kind["article"] and model.selection_for("forum") == selection
    again = LineModel.from_json(model.to_json())
    assert again.by_kind == model.by_kind and again.selection == model.selection
    page = pages[0].dump
    assert np.allclose(again.probabilities(page.rows, page.words, page.grams),
                       model.probabilities(page.rows, page.words, page.grams))
    truth = json.loads((WCXB / "ground-truth.json").read_text(encoding="utf-8"))
    first = sorted(truth)[0]
    result = clean(RawPage(url=truth[first]["url"], text=(WCXB / "text" / f"{first}.txt").read_text()),
                   CleanModels(lines=again))
    assert isinstance(result, Article) and result.mode == "text"


def test_fold_models_never_saw_the_fold_sites() -> None:
    pages = {p.page_id: p for p in _labelled(WCXB, True)}
    truth = json.loads((WCXB / "ground-truth.json").read_text(encoding="utf-8"))
    urls = {i: rec["url"] for i, rec in truth.items()}
    extra = _labelled(PAGES, False)
    models, extra_models = fold_line_models(pages, urls, 2, extra)
    assert set(models) == set(pages) and len({id(m) for m in models.values()}) == 2
    assert len(extra_models) == len(extra) and {id(m) for m in extra_models} <= {id(m) for m in models.values()}
    # each fold's page kinds come from a classifier trained on the same folds
    assert all(m.page_types is not None for m in models.values())
    assert len({id(m.page_types) for m in models.values()}) == 2
    with pytest.raises(ValueError, match="no page to train on"):
        fold_line_models({i: pages[i] for i in list(pages)[:1]}, urls, 2)


def test_shipped_model_matches_the_features() -> None:
    model = shipped_line_model()
    assert model.features == ROW_FEATURES + WORD_SCORE_FEATURES and model.line_words.weights
    assert model.selection in SELECTIONS and len(model.vocabulary) > 100


def test_eval_text_mode_reports_the_train_also_folder(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data", str(WCXB), "--mode", "text", "--folds", "2", "--train-also", str(PAGES)]) == 0
    out = capsys.readouterr().out
    assert "text dumps of --train-also folders:" in out
    line = next(x for x in out.splitlines() if x.startswith(str(PAGES)))
    assert "(shingle F1, 5 pages, cleaned by the held-out line models above)" in line
    f1 = float(line.split("): F1 ")[1].split()[0])
    assert 0.5 <= f1 <= 1.0  # news dumps, trained on 7 WCXB pages and the other fold's news pages
