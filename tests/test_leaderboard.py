"""Leaderboard files and the regression check."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jsonschema
import pytest

from evals import leaderboard as lb
from evals.report import build_report, validate_report

ROOT = Path(__file__).resolve().parent.parent
BOARDS = ROOT / "leaderboards"
PAPER = Path("/work/shared/paper_reference.json")
HASH = "sha256:" + "1" * 64
EXPECTED = {"stabletoolbench", "textphysics", "textweb", "toolsim", "scienceworld", "mind2web", "aurora", "bytemorph",
            "worldprediction", "visualphysics"}


def card(values: dict[str, dict[str, tuple[float, float | None]]], *, version="1", data_hash=HASH, name="toybench"):
    results = {m: {k: {"value": v, "stderr": s, "n": 50} for k, (v, s) in row.items()} for m, row in values.items()}
    report = build_report(
        benchmark={"name": name, "version": version, "split": "test", "limit": None, "n_transitions": 50,
                   "data_hash": data_hash, "modality": "text", "primary_metric": "fwm/bleu"},
        config={"batch_size": 8, "temperature": 0.0, "top_p": 1.0, "max_new_tokens": None, "bootstrap_samples": 100},
        seeds={"run": 0, "bootstrap": 0}, models={m: {"model": "tiny", "checkpoint": None, "sha256": None,
                                                      "details": {}} for m in values},
        results=results, command="swirl-eval run --bench toybench", wall_time_s=1.0)
    validate_report(report)
    return report


def board(rows, **extra):
    return {"benchmark": "toybench", "benchmark_version": "1", "data_hash": HASH, "primary_metric": "fwm/bleu",
            "rows": rows, **extra}


MEASURED = {"method": "sft", "model": "tiny", "seeds": [0], "command": "swirl-eval run --bench toybench",
            "metrics": {"fwm/bleu": {"value": 20.0, "stderr": 1.0, "n": 50},
                        "idm/exact_match": {"value": 0.5, "stderr": 0.05, "n": 50}}}
REFERENCE = {"method": "swirl", "reference": "arXiv 2602.06130", "metrics": {"fwm/bleu": {"value": 99.0}}}


def test_within_combined_standard_error_passes():
    # allowed drop for BLEU: 2 * sqrt(1^2 + 1^2) = 2.83; 17.5 is 2.5 below 20
    result = lb.check(card({"sft": {"fwm/bleu": (17.5, 1.0), "idm/exact_match": (0.5, 0.05)}}), board([MEASURED]))
    assert result.exit_code == lb.EXIT_OK and len(result.comparisons) == 2
    bleu = result.comparisons[0]
    assert bleu.margin == pytest.approx(2 * math.sqrt(2)) and bleu.ok


def test_drop_beyond_tolerance_is_a_regression():
    result = lb.check(card({"sft": {"fwm/bleu": (17.0, 1.0), "idm/exact_match": (0.5, 0.05)}}), board([MEASURED]))
    assert result.exit_code == lb.EXIT_REGRESSION
    assert [(c.method, c.metric) for c in result.regressions] == [("sft", "fwm/bleu")]
    # a larger absolute tolerance (CLI) or k forgives it
    assert lb.check(card({"sft": {"fwm/bleu": (17.0, 1.0)}}), board([MEASURED]), abs_tolerance=3.5).exit_code == 0
    assert lb.check(card({"sft": {"fwm/bleu": (17.0, 1.0)}}), board([MEASURED]), k=3).exit_code == 0


def test_tolerance_stored_in_the_leaderboard_per_metric():
    stored = board([MEASURED], check={"abs_tolerance": {"fwm/bleu": 5.0, "default": 0.0}, "k": 0})
    result = lb.check(card({"sft": {"fwm/bleu": (15.5, 1.0), "idm/exact_match": (0.49, 0.05)}}), stored)
    by_metric = {c.metric: c for c in result.comparisons}
    assert by_metric["fwm/bleu"].ok and by_metric["fwm/bleu"].margin == 5.0
    assert not by_metric["idm/exact_match"].ok  # k = 0, tolerance 0: any drop regresses
    # the CLI value wins over the stored one
    assert lb.check(card({"sft": {"fwm/bleu": (15.5, 1.0)}}), stored, abs_tolerance=1.0).exit_code == 1


def test_improvements_pass_and_reference_rows_are_never_compared():
    result = lb.check(card({"sft": {"fwm/bleu": (30.0, 1.0)}, "swirl": {"fwm/bleu": (1.0, 0.1)}}),
                      board([MEASURED, REFERENCE]))
    assert result.exit_code == 0
    assert {c.method for c in result.comparisons} == {"sft"}
    only_reference = lb.check(card({"swirl": {"fwm/bleu": (1.0, 0.1)}}), board([REFERENCE]))
    assert only_reference.exit_code == 0 and not only_reference.comparisons
    assert "no measured rows" in only_reference.notes[0]


def test_refuses_other_version_data_or_benchmark():
    fresh = {"sft": {"fwm/bleu": (20.0, 1.0)}}
    with pytest.raises(lb.RefusedError, match="version"):
        lb.check(card(fresh, version="2"), board([MEASURED]))
    with pytest.raises(lb.RefusedError, match="data hash"):
        lb.check(card(fresh, data_hash="sha256:" + "2" * 64), board([MEASURED]))
    with pytest.raises(lb.RefusedError, match="leaderboard is for"):
        lb.check(card(fresh, name="other"), board([MEASURED]))
    # a row measured on its own data (e.g. with --limit) carries its own hash
    row = dict(MEASURED, data_hash="sha256:" + "2" * 64)
    assert lb.check(card(fresh, data_hash="sha256:" + "2" * 64), board([row])).exit_code == 0


def test_record_writes_measured_rows_and_keeps_references():
    fresh = card({"sft": {"fwm/bleu": (21.0, 0.9)}, "swirl": {"fwm/bleu": (23.0, 0.8)}})
    updated = lb.record(board([MEASURED, REFERENCE]), fresh, report_path="runs/x/report.json", ci=True)
    lb.validate_leaderboard(updated)
    measured = lb.measured_rows(updated)
    assert {r["method"] for r in measured} == {"sft", "swirl"}
    assert measured[0]["metrics"]["fwm/bleu"] == {"value": 21.0, "stderr": 0.9, "n": 50}
    assert measured[0]["command"] == "swirl-eval run --bench toybench" and measured[0]["ci"] is True
    assert REFERENCE in updated["rows"]
    assert lb.check(fresh, updated).exit_code == 0
    # rows of another model for the same method (an experiment's) are kept beside the new ones
    other = dict(MEASURED, model="tiny-experiment")
    kept = lb.record(board([other]), fresh)
    assert other in kept["rows"] and len(lb.measured_rows(kept)) == 3


def test_compare_pairs_metrics_and_refuses_other_data():
    a = card({"sft": {"fwm/bleu": (20.0, 1.0)}, "swirl": {"fwm/bleu": (22.0, 1.0)}})
    b = card({"sft": {"fwm/bleu": (20.5, 1.0)}, "swirl": {"fwm/bleu": (30.0, 1.0)}})
    sides = lb.compare(a, b)
    assert [(s.method, s.difference, s.significant) for s in sides] == [("sft", 0.5, False), ("swirl", 8.0, True)]
    other = card({"sft": {"fwm/bleu": (20.0, 1.0)}}, data_hash="sha256:" + "3" * 64)
    with pytest.raises(lb.RefusedError, match="data_hash"):
        lb.compare(a, other)
    assert lb.compare(a, other, force=True)


# ------------------------------------------------------------------ the shipped leaderboard files


def test_every_benchmark_has_a_valid_leaderboard():
    schema = json.loads(lb.SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    found = {p.stem for p in BOARDS.glob("*.json")}
    assert EXPECTED <= found
    for path in BOARDS.glob("*.json"):
        data = lb.load_leaderboard(path)
        assert data["benchmark"] == path.stem
        for row in lb.measured_rows(data):  # a measured row names the project command that reproduces it
            assert row["command"].startswith(("swirl-eval ", "python -m evals.experiments ")), (path, row)


def test_reference_rows_quote_the_paper_exactly():
    if not PAPER.exists():
        pytest.skip("shared/paper_reference.json is not here")
    paper = json.loads(PAPER.read_text())

    def ref(bench, method, metric):
        rows = [r for r in lb.load_leaderboard(BOARDS / f"{bench}.json")["rows"]
                if "reference" in r and r["method"] == method]
        assert len(rows) == 1, (bench, method)
        assert rows[0]["reference"].startswith("arXiv 2602.06130")
        return rows[0]["metrics"][metric]["value"]

    text = paper["text_environments"]["rows"]
    assert ref("stabletoolbench", "sft", "fwm/bleu") == text["SFT"][-1] == 12.85
    assert ref("stabletoolbench", "swirl", "fwm/bleu") == text["SWIRL"][-1]
    assert ref("stabletoolbench", "swirl", "fwm/bleu:id_low") == text["SWIRL"][5]
    assert ref("scienceworld", "swirl", "fwm/bertscore") == text["SWIRL"][0]
    assert ref("scienceworld", "sft", "fwm/rougeL") == text["SFT"][1]
    assert ref("mind2web", "base", "fwm/rougeL") == text["Qwen-2.5-3B-Instruct"][3]
    aurora = paper["aurora_bench"]["rows"]
    assert ref("aurora", "verify@8", "judge/gpt4o") == aurora["Test-time verification N=8"][-1]
    assert ref("aurora", "swirl-shared", "judge/gpt4o:kubric") == aurora["SWIRL Iterative + shared weights"][4]
    assert ref("bytemorph", "swirl-idm2fwm", "judge/gpt4o") == paper["bytemorph"]["rows"]["SWIRL IDM->FWM"][-1]
    wp = paper["worldprediction_bench"]
    assert ref("worldprediction", "swirl", "judge/gpt4o") == wp["average"]["SWIRL Iterative"]
    assert ref("worldprediction", "sft", "judge/gpt4o:t3") == wp["by_turn_T1_to_T6"]["SFT"][2]
