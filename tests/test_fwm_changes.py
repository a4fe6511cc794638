"""scripts/fwm_changes.py: the repeat-or-change split behind docs/results.md's SmolLM2 textweb analysis."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from evals import metrics

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "fwm_changes.py"
spec = importlib.util.spec_from_file_location("fwm_changes", SCRIPT)
fwm_changes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fwm_changes)


def record(method: str, prediction: str, truth: str, state: str) -> dict:
    return {"method": method, "fwm": {"prediction": prediction, "truth": truth,
                                      "delta_prediction": metrics.new_lines(prediction, state),
                                      "delta_truth": metrics.new_lines(truth, state),
                                      "scores": metrics.fwm_sample_scores(prediction, truth, state)}}


def test_predictions_are_split_into_repeats_of_x_and_changes(tmp_path, capsys):
    state, truth = "page: home\n[1] link Lamps", "page: lamps\n[1] link Home"
    rows = [record("sft", state, truth, state), record("sft", truth, truth, state),
            record("sft", "page: garden\n[1] link Home", truth, state), record("sft", state, state, state),
            record("swirl", truth, truth, state)]
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert fwm_changes.main([str(samples)]) == 0
    sft, swirl = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert sft["method"] == "sft" and sft["n"] == 4 and sft["truth_changes"] == 3 and sft["repeats_x"] == 1
    assert sft["delta_line_f1_of_changes"] == 0.75  # one change right (1.0), one half right (0.5)
    assert sft["bleu_of_repeats"] < 100 and sft["changed_f1"] is None  # no simulator parse: no field F1
    assert swirl["repeats_x"] == 0 and swirl["delta_line_f1_of_changes"] == 1.0
    assert swirl["prediction_chars"] == swirl["truth_chars"] == len(truth)


def test_a_missing_samples_file_is_exit_2(tmp_path, capsys):
    assert fwm_changes.main([str(tmp_path / "nope.jsonl")]) == 2
    assert "nope.jsonl" in capsys.readouterr().err


def test_split_by_a_reference_compares_methods_where_the_reference_repeated_x(tmp_path, capsys):
    state, truth = "page: home\n[1] link Lamps", "page: lamps\n[1] link Home"
    wrong = "error: not found"
    reference = [record("sft", state, truth, state), record("sft", truth, truth, state)]  # repeats, then changes
    other = [record("swirl", wrong, truth, state), record("swirl", truth, truth, state)]
    for rows in (reference, other):
        for index, row in enumerate(rows):
            row["index"] = index
    ref_file, other_file = tmp_path / "sft.jsonl", tmp_path / "swirl.jsonl"
    ref_file.write_text("".join(json.dumps(r) + "\n" for r in reference))
    other_file.write_text("".join(json.dumps(r) + "\n" for r in other))
    assert fwm_changes.main([str(other_file), "--split-by", str(ref_file)]) == 0
    found = json.loads(capsys.readouterr().out)
    repeated, changed = found["where_ref_repeats"], found["where_ref_changes"]
    assert repeated["n"] == changed["n"] == 1 and repeated["repeats_x"] == changed["repeats_x"] == 0
    assert repeated["bleu"] < repeated["ref_bleu"]  # the wrong change scores below sft's copy of x
    assert changed["bleu"] == changed["ref_bleu"] == 100.0
    assert found["exact_flips"] == {"kept": 1, "lost": 0, "won": 0, "lost_examples": []}
    assert fwm_changes.main([str(other_file), "--split-by", str(tmp_path / "gone.jsonl")]) == 2


def test_split_by_a_reference_counts_the_exact_matches_a_method_lost_and_won(tmp_path, capsys):
    state, token, other_token = "user: log me in", '{"token": "a9s8"}', '{"token": "a9q1"}'
    sft = [record("sft", p, t, state) for p, t in ((token, token), (token, token), ('"ok"', '"success"'))]
    swirl = [record("swirl", p, t, state) for p, t in ((token, token), (other_token, token), ('"success"', '"success"'))]
    files = []
    for name, rows in (("sft", sft), ("swirl", swirl)):
        for index, row in enumerate(rows):
            row["index"] = index
        files.append(tmp_path / f"{name}.jsonl")
        files[-1].write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert fwm_changes.main([str(files[1]), "--split-by", str(files[0])]) == 0
    assert json.loads(capsys.readouterr().out)["exact_flips"] == {
        "kept": 1, "lost": 1, "won": 1, "lost_examples": [[token, other_token]]}


def test_by_action_groups_predictions_by_the_called_function(tmp_path, capsys):
    state = "responses:"
    truths = {"convert_units": "responses:\n1. {\"result\": 328.084}", "get_weather": "responses:\n1. {\"temp\": 5}"}
    rows = []
    for name, prediction in [("convert_units", truths["convert_units"]), ("convert_units", "responses:\n1. {}"),
                             ("get_weather", truths["get_weather"])]:
        row = record("sft", prediction, truths[name], state)
        row["fwm"]["input_action"] = json.dumps({"name": name, "arguments": {}})
        rows.append(row)
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert fwm_changes.main([str(samples), "--by-action"]) == 0
    groups = json.loads(capsys.readouterr().out)["by_action"]
    assert list(groups) == ["convert_units", "get_weather"]
    assert groups["convert_units"]["n"] == 2 and groups["get_weather"]["n"] == 1
    assert groups["get_weather"]["delta_bleu"] == 100.0 and groups["convert_units"]["delta_bleu"] < 100.0
    assert fwm_changes.action_name("click [3]") == "click" and fwm_changes.action_name("move(a, 1)") == "move"
    assert fwm_changes.action_name("") == fwm_changes.action_name("(a)") == ""  # no name: one group, no crash
