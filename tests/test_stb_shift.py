"""scripts/stb_shift.py: the counts behind docs/results.md's StableToolBench split table."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "stb_shift.py"
spec = importlib.util.spec_from_file_location("stb_shift", SCRIPT)
stb_shift = importlib.util.module_from_spec(spec)
spec.loader.exec_module(stb_shift)


def test_splits_and_a_runs_predictions_are_counted(tmp_path, capsys):
    call = '{"name": "%s", "arguments": {}}'
    rows = [{"method": "sft", "fwm": {"prediction": '{"error": "Unauthorized", "response": ""}'},
             "idm": {"prediction": call % "a_for_x", "truth": call % "a_for_x"}},
            {"method": "sft", "fwm": {"prediction": "not json"},
             "idm": {"prediction": "garbled", "truth": call % "b_for_x"}}]
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert stb_shift.main([str(samples)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("train: 235 transitions;") and "'real': 227" in out[0] and "'error': 52" in out[0]
    test = next(line for line in out if line.startswith("test:"))
    assert "'GPT-simulated': 31" in test and "'error': 1" in test
    assert test.endswith("13 functions called (most: 6 calls), 6 of them train functions")
    assert "sft: FWM predictions {'error': 1, 'not JSON': 1}" in out
    assert any(line.startswith("sft: IDM right function 1/2 (0/0 where the train split calls the true function, "
                               "1/2 where it does not);") and "true functions 2" in line for line in out)


def test_a_missing_samples_file_is_exit_2(tmp_path, capsys):
    assert stb_shift.main([str(tmp_path / "nope.jsonl")]) == 2
    assert "nope.jsonl" in capsys.readouterr().err
