"""evals/judge_alignment.py: how a judge's within-group rewards relate to the truth."""

from __future__ import annotations

import json

import pytest
from support import block_pair

from evals import judge_alignment


def test_correlation_is_per_group_and_flat_groups_are_counted_not_averaged():
    assert judge_alignment.within_group_correlation([1.0, 2.0, 3.0], [10.0, 20.0, 30.0]) == pytest.approx(1.0)
    assert judge_alignment.within_group_correlation([1.0, 2.0], [5.0, 1.0]) == pytest.approx(-1.0)
    assert judge_alignment.within_group_correlation([1.0, 1.0], [5.0, 1.0]) is None  # the judge cannot rank
    groups = [{"rewards": [1.0, 2.0], "truth_wins": 1.0, "q": [0.0, 1.0]},
              {"rewards": [0.0, 0.0], "truth_wins": 0.0, "q": [0.0, 1.0]}]
    found = judge_alignment.summarise(groups, ("q",), "phase1")
    assert found == {"phase1/groups": 2, "phase1/truth_wins": 0.5, "phase1/corr_q": 1.0, "phase1/groups_flat_q": 1,
                     "phase1/reward_spread": 0.5}


def test_truth_wins_counts_ties_half():
    assert judge_alignment.truth_wins(0.0, [-1.0, 0.0, 1.0, -2.0]) == pytest.approx(0.625)


def test_a_pair_is_judged_on_a_simulator_with_its_validity(tmp_path, capsys):
    folder = block_pair(max_length=160).save(tmp_path / "pair")
    out = tmp_path / "alignment.json"
    assert judge_alignment.main([str(folder), "--env", "textphysics", "--limit", "3", "--group", "2",
                                 "--output", str(out)]) == 0
    found = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out) == found
    assert found["transitions"] == 3 and found["phase1/groups"] == 3 and found["phase2/groups"] == 3
    assert 0.0 <= found["phase1/truth_wins"] <= 1.0 and 0.0 <= found["phase2/valid_share"] <= 1.0
    assert found["phase1/truth_delta_chars"] > 0 and found["phase1/sample_delta_chars"] >= 0
    for key in ("phase1/corr_bleu", "phase1/corr_delta_f1", "phase1/corr_delta_bleu", "phase1/corr_delta_chars",
                "phase2/corr_valid"):  # None only when every group is flat
        flat = found[key.replace("corr_", "groups_flat_")]
        assert 0 <= flat <= 3 and (found[key] is None) == (flat == 3)


def test_samples_near_temperature_zero_score_as_greedy_decoding(tmp_path):
    folder = block_pair(max_length=160).save(tmp_path / "pair")
    out = tmp_path / "cold.json"
    assert judge_alignment.main([str(folder), "--env", "textphysics", "--limit", "3", "--group", "2",
                                 "--oracle-z", "--fwm-temperature", "1e-4", "--output", str(out)]) == 0
    found = json.loads(out.read_text())
    assert found["phase1/fwm_temperature"] == 1e-4
    assert found["phase1/sample_bleu"] == found["phase1/picked_bleu"] == pytest.approx(found["phase1/greedy_bleu"])
    assert found["phase1/sample_delta_chars"] == found["phase1/picked_delta_chars"]
    assert found["phase1/sample_delta_bleu"] == found["phase1/picked_delta_bleu"] == pytest.approx(
        found["phase1/greedy_delta_bleu"])
    assert found["phase1/greedy_top"] == 1.0  # every sample is the greedy decode: the judge cannot prefer one
    assert found["phase1/picked_with_greedy_bleu"] == pytest.approx(found["phase1/greedy_bleu"])


def test_a_missing_pair_is_exit_2_before_loading(tmp_path, capsys):
    assert judge_alignment.main([str(tmp_path / "nope"), "--env", "textweb"]) == 2
    assert "nope" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        judge_alignment.main([str(tmp_path), "--env", "textweb", "--group", "1"])
    assert stop.value.code == 2
    with pytest.raises(SystemExit) as stop:
        judge_alignment.main([str(tmp_path), "--env", "textweb", "--fwm-temperature", "0"])
    assert stop.value.code == 2
