"""`ingest-worker eval entities`: scoring, label mapping, output formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from worker.cli import main as cli_main
from worker.evaluation.entities import gain_interval, mapped, prf, read_gold, score

SAMPLE = Path(__file__).parent / "fixtures" / "entities-gold-sample.jsonl"


def test_exact_span_and_type_scoring() -> None:
    gold = [{(0, 5, "PERSON"), (10, 15, "GPE")}]
    predicted = [{(0, 5, "PERSON"), (10, 15, "ORG"), (20, 22, "GPE")}]
    result = score(gold, predicted)
    assert result["overall"]["tp"] == 1
    assert result["overall"]["fp"] == 2
    assert result["overall"]["fn"] == 1
    assert result["per_label"]["PERSON"]["f1"] == 1.0
    assert result["per_label"]["GPE"] == prf(0, 1, 1)


def test_conll_mapping() -> None:
    spans = [(0, 1, "PERSON"), (1, 2, "GPE"), (2, 3, "FAC"), (3, 4, "NORP"), (4, 5, "LAW"),
             (5, 6, "PER"), (6, 7, "MISC"), (7, 8, "DATE")]
    assert mapped(spans, conll=True) == {(0, 1, "PER"), (1, 2, "LOC"), (2, 3, "LOC"),
                                         (3, 4, "MISC"), (4, 5, "MISC"), (5, 6, "PER"),
                                         (6, 7, "MISC")}
    assert (1, 2, "GPE") in mapped(spans, conll=False)


def test_read_gold_split() -> None:
    everything = read_gold(SAMPLE)
    dev = read_gold(SAMPLE, "dev")
    assert len(everything) == 4
    assert {doc.split for doc in dev} == {"dev"}
    assert any(doc.doc_id == "seed-page" for doc in everything)


@pytest.fixture(scope="module")
def json_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("eval") / "predictions.jsonl"
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = cli_main(["eval", "entities", "--gold", str(SAMPLE), "--conll", "--json",
                         "--predictions-out", str(out), "--repeat", "1"])
    assert code == 0
    return json.loads(buffer.getvalue()), out


def test_json_report(json_run: tuple[dict, Path]) -> None:
    report, _ = json_run
    assert report["docs"] == 4 and report["labels"] == "conll"
    for system in ("ours", "plain"):
        assert set(report[system]["overall"]) >= {"precision", "recall", "f1"}
        assert report[system]["speed"]["docs_per_s"] > 0
        assert set(report[system]["per_label"]) <= {"PER", "ORG", "LOC", "MISC"}
    assert report["f1_gain_points"] > 0
    low, high = report["f1_gain_interval_95"]
    assert low <= report["f1_gain_points"] <= high
    assert report["time_per_token_ratio"] > 0


def test_predictions_out(json_run: tuple[dict, Path]) -> None:
    _, out = json_run
    lines = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert len(lines) == 4
    seed = next(line for line in lines if line["doc_id"] == "seed-page")
    labels = {e["label"] for e in seed["entities"]}
    assert "PER" in labels and labels <= {"PER", "ORG", "LOC", "MISC"}  # labels as scored
    assert all(e["end"] > e["start"] for e in seed["entities"])


def test_text_report(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(["eval", "entities", "--gold", str(SAMPLE), "--split", "dev", "--repeat", "1"])
    out = capsys.readouterr().out
    assert code == 0
    assert "entities step: P=" in out and "plain model NER: P=" in out
    assert "F1 gain" in out and "time per token" in out


def test_missing_gold_file(tmp_path: Path) -> None:
    assert cli_main(["eval", "entities", "--gold", str(tmp_path / "nope.jsonl")]) == 2


def test_gain_interval() -> None:
    gold = [{(0, 5, "PER")}, {(0, 3, "LOC")}, {(1, 4, "ORG")}]
    assert gain_interval(gold, gold, gold) == (0.0, 0.0)
    low, high = gain_interval(gold, gold, [set(), set(), set()])
    assert low == high == 100.0  # every draw: ours perfect, plain finds nothing
    low, high = gain_interval(gold, gold, [gold[0], set(), set()])
    assert 0.0 <= low < high <= 100.0
