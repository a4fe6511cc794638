"""scripts/pseudo_labels.py: bootstrap's pseudo-labels scored against U's true actions."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

from evals.experiments import ENVS, make_split

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "pseudo_labels.py"
spec = importlib.util.spec_from_file_location("pseudo_labels", SCRIPT)
pseudo_labels = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pseudo_labels)


def test_labels_are_scored_by_validity_name_and_confusion(tmp_path, capsys):
    seed_folder = tmp_path / "l4" / "seed0"
    (seed_folder / "bootstrap").mkdir(parents=True)
    overrides = {"labelled": 4, "unlabelled": 6}
    (seed_folder / "results.json").write_text(json.dumps({"env": "toolsim", "seed": 0, "model": "tiny"}))
    (tmp_path / "l4" / "summary.json").write_text(json.dumps({"setup_overrides": overrides}))
    truths = make_split(dataclasses.replace(ENVS["toolsim"], **overrides), 0).oracle
    wrong = json.dumps({"name": "no_such_function", "arguments": {}})
    labels = [t.action for t in truths[:-1]] + [wrong]
    (seed_folder / "bootstrap" / "pseudo_labels.json").write_text(json.dumps({"actions": labels,
                                                                             "scores": [0.0] * len(labels)}))
    assert pseudo_labels.main([str(seed_folder)]) == 0
    found = json.loads(capsys.readouterr().out)
    n = len(truths)
    assert found["labels"] == n and found["valid"] == round((n - 1) / n, 4)
    assert found["name_right"] == round((n - 1) / n, 4)
    last = pseudo_labels.function_of(truths[-1].action)
    assert found["by_true_function"][last]["no_such_function"] == 1
    assert sum(sum(row.values()) for row in found["by_true_function"].values()) == n


def test_a_seed_without_bootstrap_is_exit_2(tmp_path, capsys):
    (tmp_path / "seed0").mkdir()
    assert pseudo_labels.main([str(tmp_path / "seed0")]) == 2
    assert "results.json" in capsys.readouterr().err
