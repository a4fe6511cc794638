"""scripts/phase_rewards.py: the flat-group counts docs/results.md quotes for each SWIRL run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "phase_rewards.py"
spec = importlib.util.spec_from_file_location("phase_rewards", SCRIPT)
phase_rewards = importlib.util.module_from_spec(spec)
spec.loader.exec_module(phase_rewards)


def step(phase: str, flat: int, reward: float, spread: float, **more: float) -> dict:
    return {"phase": phase, "groups_flat": flat, "reward/mean": reward, "reward/group_spread": spread,
            "kl": 0.01, "completion_length": 40.0, **more}


def test_flat_groups_are_summed_per_phase(tmp_path, capsys):
    run = tmp_path / "swirl"
    (run / "checkpoint-000010").mkdir(parents=True)
    (run / "checkpoint-000010" / "trainer_state.json").write_text(json.dumps({"config": {"batch_size": 4,
                                                                                         "flat_spread": 0.01}}))
    rows = [step("phase1-fwm", 3, -0.1, 0.05, **{"reward/length_slope": -0.002}),
            step("phase1-fwm", 1, -0.3, 0.25, **{"reward/length_slope": -0.004}), step("phase2-idm", 4, -2.0, 0.0),
            {"step": 3, "loss": 0.5}]  # a row without rewards is not a phase step
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert phase_rewards.main([str(run)]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["phase1-fwm"] == {"steps": 2, "groups": 8, "groups_flat": 4, "reward_mean": -0.2,
                                   "group_spread_mean": 0.15, "group_spread_widest_step": 0.25, "kl_mean": 0.01,
                                   "completion_length": 40.0, "length_slope_mean": -0.003}
    assert found["phase2-idm"]["groups"] == 4 and found["phase2-idm"]["groups_flat"] == 4
    assert found["phase2-idm"]["length_slope_mean"] is None  # a run from before the slope was logged


def test_a_folder_without_a_run_is_exit_2(tmp_path, capsys):
    assert phase_rewards.main([str(tmp_path)]) == 2
    assert str(tmp_path) in capsys.readouterr().err
    (tmp_path / "metrics.jsonl").write_text("")
    assert phase_rewards.main([str(tmp_path)]) == 2
    assert "trainer_state.json" in capsys.readouterr().err
