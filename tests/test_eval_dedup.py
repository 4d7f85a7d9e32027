"""`ingest-worker eval dedup` on a small gzip fixture cut from the syndication dev set.

The fixture holds one story as published (nbcdfw.com) with three syndicated copies inside other
sites' pages (HTML and whole-page text dumps), the hosts' own stories (hard negatives that share
the copies' template junk), a second story with one copy, and an unrelated copy on a host.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from worker.cli import main as cli_main
from worker.evaluation.dedup import main, read_lines, score, score_groups

FIXTURES = Path(__file__).parent / "fixtures" / "dedup"
PAGES = FIXTURES / "pages.jsonl.gz"
TRUTH = FIXTURES / "truth.json"


def test_eval_dedup_scores_the_fixture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events_out = tmp_path / "events.jsonl"
    assert main(["--pages", str(PAGES), "--truth", str(TRUTH), "--events-out", str(events_out), "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["pages"] == 9
    assert figures["accounted"] + figures["dead_letters"] == 9
    assert figures["missing"] == 0
    assert figures["pairs_truth"] == 7
    assert figures["precision"] >= 0.8  # the fixture scores 1.0; the cleaner may still move it
    assert figures["recall"] >= 0.4
    assert 0 < figures["state_bytes_per_article"] <= 1024
    assert figures["pages_per_second"] > 0
    events = [json.loads(line) for line in events_out.read_text().splitlines()]
    kinds = {e["event_type"] for e in events}
    assert "article.v1" in kinds and "duplicate.v1" in kinds
    # the file written is what was scored
    truth = json.loads(TRUTH.read_text())
    assert score(truth, events).f1 == figures["f1"]
    # story folds: every truth pair of a fold's story counted in that fold, none left out
    folds = figures["folds"]
    assert len(folds) == 2 and sum(f["pages"] for f in folds) == 9
    assert sum(f["pairs_truth"] for f in folds) == figures["pairs_truth"]
    # the threshold curve: each point decided again, P and R per fold; stricter, no more pairs found
    near = [p for p in figures["curve"] if p["rule"] == "near_threshold"]
    assert [p["value"] for p in near] == sorted(p["value"] for p in near) and any(p["default"] for p in near)
    assert all(len(p["precision"]) == len(p["recall"]) == 2 for p in figures["curve"])
    assert near[0]["recall"][0] + near[0]["recall"][1] >= near[-1]["recall"][0] + near[-1]["recall"][1]
    # every rule's figures, each with its default marked, the anti-chaining rules also off (0.0)
    rules = {p["rule"] for p in figures["curve"]}
    assert rules == {
        "near_threshold", "same_site_resemblance", "consistent", "distinct", "member_site_resemblance",
        "doubtful_resemblance", "furniture_share", "fuller_copy", "through_other_site",
        "size_ratio",
    }
    for rule in rules:
        assert sum(p["default"] for p in figures["curve"] if p["rule"] == rule) == 1, rule
    for rule in ("consistent", "distinct", "member_site_resemblance", "doubtful_resemblance", "size_ratio"):
        assert 0.0 in {p["value"] for p in figures["curve"] if p["rule"] == rule}, rule
    assert figures["orders"] == 5 and figures["order_agreement"] == 1.0


def test_eval_dedup_text_output_through_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["eval", "dedup", "--pages", str(PAGES), "--truth", str(TRUTH)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("pages 9  accounted ")
    assert "pairs truth 7  predicted " in out
    assert "dedup P " in out and " F1 " in out
    assert "pages/s" in out and "bytes per indexed article" in out
    assert "fold 0 (training)" in out and "fold 1 (held out)" in out
    assert "threshold curve" in out and "random orders agree" in out


def test_score_matches_the_reference_definition() -> None:
    truth = {"u1": "s1", "u2": "s1", "u3": "s1", "u4": "s2", "u5": "s3"}
    events = [
        {"event_type": "article.v1", "id": "A", "url": "u1"},
        {"event_type": "duplicate.v1", "url": "u2", "duplicate_of": "A"},
        {"event_type": "article.v1", "id": "B", "url": "u3"},
        {"event_type": "duplicate.v1", "url": "u4", "duplicate_of": "B"},
        {"event_type": "dead_letter.v1", "url": "u5"},
    ]
    result = score(truth, events)
    assert (result.pages, result.accounted, result.dead_letters, result.missing) == (5, 4, 1, 1)
    assert (result.pairs_truth, result.pairs_predicted, result.pairs_correct) == (3, 2, 1)
    assert result.precision == 0.5 and result.recall == pytest.approx(1 / 3)


def test_groups_score_the_pairs_that_hold_a_page_of_each_group(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    truth = {"u1": "s1", "u2": "s1", "u3": "s1", "u4": "s2", "u5": "s2"}
    events = [
        {"event_type": "article.v1", "id": "A", "url": "u1"},
        {"event_type": "duplicate.v1", "url": "u2", "duplicate_of": "A"},
        {"event_type": "article.v1", "id": "C", "url": "u3"},
        {"event_type": "duplicate.v1", "url": "u4", "duplicate_of": "A"},
        {"event_type": "article.v1", "id": "D", "url": "u5"},
    ]
    groups = {u: "original" for u in ("u1", "u4")} | {"u2": "lead", "u3": "truncate", "u5": "lead"}
    by = {g.group: g for g in score_groups(truth, events, groups)}
    # lead pages u2, u5: truth pairs u1-u2, u2-u3, u4-u5; predicted u1-u2, u2-u4; correct u1-u2
    assert (by["lead"].pairs_truth, by["lead"].pairs_predicted, by["lead"].pairs_correct) == (3, 2, 1)
    assert by["truncate"].recall == 0.0 and by["truncate"].pairs_predicted == 0
    assert by["original"].pages == 2
    groups_file = tmp_path / "groups.json"
    groups_file.write_text(json.dumps({url: "fixture" for url in json.loads(TRUTH.read_text())}))
    assert main(["--pages", str(PAGES), "--truth", str(TRUTH), "--groups", str(groups_file), "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["groups"]["fixture"]["recall"] == figures["recall"]
    assert figures["groups"]["fixture"]["precision"] == figures["precision"]


def test_read_lines_accepts_plain_and_gzip(tmp_path: Path) -> None:
    plain = tmp_path / "pages.jsonl"
    plain.write_bytes(b'{"a": 1}\n{"b": 2}\n')
    assert read_lines(str(plain)) == [b'{"a": 1}', b'{"b": 2}']
    assert len(read_lines(str(PAGES))) == 9
