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


def test_a_missing_samples_file_is_exit_2(tmp_path, capsys):
    assert fwm_changes.main([str(tmp_path / "nope.jsonl")]) == 2
    assert "nope.jsonl" in capsys.readouterr().err
