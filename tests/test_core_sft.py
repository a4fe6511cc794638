"""SFT baseline, bootstrap and test-time verification; run hygiene (determinism, atomic checkpoints, resume)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from support import ball_world, runner_script

from swirl_core import (
    BootstrapConfig,
    BootstrapTrainer,
    SFTConfig,
    SFTTrainer,
    WorldModelPair,
    apply_overrides,
    verify_next_states,
)
from swirl_core.logging import read_metrics
from swirl_core.trainer import SIMULATED_CRASH_EXIT_CODE
from swirl_envs.errors import SwirlError

torch.set_num_threads(1)


SMALL = ["progress=false", "max_length=48", "max_target_tokens=16", "tiny.vocab_size=320", "tiny.hidden_size=64",
         "tiny.intermediate_size=128", "batch_size=8"]

RUNNER = runner_script('''
    import json, sys, torch
    from swirl_core import apply_overrides, get_trainer
    torch.set_num_threads(1)
    name, output_dir, init, n, labelled, overrides = sys.argv[1:7]
    cls = get_trainer(name)
    config = apply_overrides(cls.config_class(), json.loads(overrides))
    cls(config).train(ball_world(int(n), labelled == "1"), output_dir, init=None if init == "-" else init)
''')


def run_killed(tmp_path, name, output_dir, overrides, exit_after, *, init=None, n=24, labelled=True):
    """Run a trainer in a subprocess that dies (os._exit) right after optimiser step `exit_after`."""
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    # The checkout goes first on the path, as pytest's `pythonpath` does for this process.
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "SWIRL_EXIT_AFTER_STEP": str(exit_after),
           "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    done = subprocess.run([sys.executable, str(script), name, str(output_dir), str(init or "-"), str(n),
                           "1" if labelled else "0", json.dumps(overrides)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == SIMULATED_CRASH_EXIT_CODE, done.stderr[-2000:]


def weights(folder):
    return {p.parent.name: load_file(p) for p in sorted(folder.glob("*/model.safetensors"))}


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys() and wa
    for role in wa:
        assert wa[role].keys() == wb[role].keys()
        for key in wa[role]:
            assert torch.equal(wa[role][key], wb[role][key]), (role, key)


def sft_config(*extra):
    return apply_overrides(SFTConfig(), [*SMALL, "learning_rate=3e-3", *extra])


def test_sft_learns_both_models_and_logs(tmp_path):
    final = SFTTrainer(sft_config("epochs=8")).train(ball_world(48), tmp_path / "run")
    assert final == tmp_path / "run" / "final" and sorted(weights(final)) == ["fwm", "idm"]
    log = read_metrics(tmp_path / "run")
    assert [r["step"] for r in log] == list(range(1, 49))
    first, last = log[0], log[-1]
    assert last["loss/fwm"] < first["loss/fwm"] / 3 and last["loss/idm"] < first["loss/idm"] / 3
    assert {"grad_norm/fwm", "tokens/idm", "lr", "epoch"} <= set(last)
    pair = WorldModelPair.load(final)
    # After training, the true action is more likely than the wrong one for most transitions.
    test = ball_world(20)[10:]
    wrong = ["push right" if t.action == "push left" else "push left" for t in test]
    states, nexts = [t.state for t in test], [t.next_state for t in test]
    right_score = pair.score_actions(states, nexts, [t.action for t in test])
    assert (right_score > pair.score_actions(states, nexts, wrong)).float().mean() >= 0.8
    state = json.loads((final / "trainer_state.json").read_text())
    assert state["complete"] and state["step"] == 48 and state["examples"] == {"fwm": 48, "idm": 48}


def test_same_seed_same_bytes_and_rerun_is_a_noop(tmp_path):
    data = ball_world(16)
    a = SFTTrainer(sft_config("epochs=2")).train(data, tmp_path / "a")
    b = SFTTrainer(sft_config("epochs=2")).train(data, tmp_path / "b")
    for role in ("fwm", "idm"):
        assert (a / role / "model.safetensors").read_bytes() == (b / role / "model.safetensors").read_bytes()
    c = SFTTrainer(sft_config("epochs=2", "seed=1")).train(data, tmp_path / "c")
    assert (a / "fwm" / "model.safetensors").read_bytes() != (c / "fwm" / "model.safetensors").read_bytes()
    mtime = (a / "fwm" / "model.safetensors").stat().st_mtime_ns
    assert SFTTrainer(sft_config("epochs=2")).train(data, tmp_path / "a") == a
    assert (a / "fwm" / "model.safetensors").stat().st_mtime_ns == mtime
    with pytest.raises(SwirlError, match="different trainer or config"):
        SFTTrainer(sft_config("epochs=3")).train(data, tmp_path / "a")


def test_killed_sft_run_resumes_to_the_same_weights(tmp_path):
    overrides = [*SMALL, "learning_rate=3e-3", "epochs=3", "save_steps=2", "save_total_limit=1"]
    run_killed(tmp_path, "sft", tmp_path / "killed", overrides, exit_after=5)
    killed = tmp_path / "killed"
    assert not (killed / "final").exists() and sorted(p.name for p in killed.glob("checkpoint-*")) == ["checkpoint-000004"]
    assert [r["step"] for r in read_metrics(killed)] == [1, 2, 3, 4, 5]  # step 5 ran, was not saved
    config = apply_overrides(SFTConfig(), overrides)
    resumed = SFTTrainer(config).train(ball_world(24), killed)
    straight = SFTTrainer(config).train(ball_world(24), tmp_path / "straight")
    assert_same_weights(resumed, straight)
    assert [r["step"] for r in read_metrics(killed)] == list(range(1, 10))
    assert [r["loss"] for r in read_metrics(killed)] == [r["loss"] for r in read_metrics(tmp_path / "straight")]


def test_a_run_killed_for_memory_resumes_in_smaller_chunks(tmp_path):
    """micro_batch_size is a memory knob: resuming with it ends where the uninterrupted run does (up to
    float rounding), so an out-of-memory kill costs the steps since the last checkpoint, not the run."""
    overrides = [*SMALL, "learning_rate=3e-3", "epochs=3", "save_steps=2", "save_total_limit=1"]
    run_killed(tmp_path, "sft", tmp_path / "killed", overrides, exit_after=5)
    resumed = SFTTrainer(apply_overrides(SFTConfig(), [*overrides, "micro_batch_size=3"])).train(
        ball_world(24), tmp_path / "killed")
    straight = SFTTrainer(apply_overrides(SFTConfig(), overrides)).train(ball_world(24), tmp_path / "straight")
    wa, wb = weights(resumed), weights(straight)
    assert wa.keys() == wb.keys() == {"fwm", "idm"}
    for role in wa:
        diff = torch.cat([(wa[role][k] - wb[role][k]).flatten() for k in wa[role]]).norm()
        assert diff <= 1e-4 * torch.cat([w.flatten() for w in wb[role].values()]).norm(), role


def test_shared_weights_sft_and_unlabelled_data_is_refused(tmp_path):
    final = SFTTrainer(sft_config("shared=true", "epochs=1")).train(ball_world(16), tmp_path / "shared")
    assert sorted(weights(final)) == ["shared"] and WorldModelPair.load(final).shared
    assert read_metrics(tmp_path / "shared")[-1]["tokens/shared"] > 0
    with pytest.raises(SwirlError, match="labelled"):
        SFTTrainer(sft_config()).train(ball_world(8, labelled=False), tmp_path / "nolabels")


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    root = tmp_path_factory.mktemp("warm")
    return SFTTrainer(sft_config("epochs=6")).train(ball_world(32), root / "sft")


def test_bootstrap_trains_the_fwm_on_idm_pseudo_labels(tmp_path, warm):
    config = apply_overrides(BootstrapConfig(), [*SMALL, "epochs=1"])
    final = BootstrapTrainer(config).train(ball_world(16, labelled=False), tmp_path / "boot", init=warm)
    labels = json.loads((tmp_path / "boot" / "pseudo_labels.json").read_text())
    assert len(labels["actions"]) == 16 and set(labels["actions"]) <= {"push left", "push right"}
    before, after = weights(warm), weights(final)
    assert all(torch.equal(before["idm"][k], after["idm"][k]) for k in before["idm"])
    assert any(not torch.equal(before["fwm"][k], after["fwm"][k]) for k in before["fwm"])
    with pytest.raises(SwirlError, match="init"):
        BootstrapTrainer(config).train(ball_world(4, labelled=False), tmp_path / "noinit")


def test_verify_next_states_keeps_the_candidate_the_idm_prefers(warm):
    pair = WorldModelPair.load(warm)
    data = ball_world(6)
    states, actions = [t.state for t in data], [t.action for t in data]
    chosen, scores = verify_next_states(pair, states, actions, n=4, return_scores=True, batch_size=16,
                                        generator=torch.Generator().manual_seed(0))
    candidates = pair.predict_next_states(states, actions, num_samples=4, temperature=0.75, top_p=0.96,
                                          batch_size=16, generator=torch.Generator().manual_seed(0))
    assert scores.shape == (6, 4)
    for i, best in enumerate(scores.argmax(1).tolist()):
        assert chosen[i] == candidates[i * 4 + best]
        expected = pair.score_actions([states[i]], [chosen[i]], [actions[i]])
        torch.testing.assert_close(expected[0], scores[i].max(), atol=1e-5, rtol=1e-5)


def test_dtype_option_trains_and_saves_in_that_dtype(tmp_path):
    final = SFTTrainer(sft_config("dtype=bfloat16", "epochs=1")).train(ball_world(16), tmp_path / "bf16")
    saved = weights(final)
    assert all(t.dtype == torch.bfloat16 for role in saved.values() for t in role.values())
    pair = WorldModelPair.load(final, dtype="bfloat16")
    assert next(pair.fwm.parameters()).dtype == torch.bfloat16
    assert pair.predict_next_states(["ball at 1"], ["push left"], max_new_tokens=4)[0] is not None
    with pytest.raises(SwirlError, match="dtype"):
        sft_config("dtype=float64")


def test_target_budget_fitted_to_the_data_and_reported(tmp_path):
    final = SFTTrainer(sft_config("epochs=1", "max_target_tokens=40", "fit_target_tokens=true")).train(
        ball_world(16), tmp_path / "fit")
    budget = json.loads((final / "trainer_state.json").read_text())["target_budget"]
    assert budget["cap"] == 40 and budget["used"] == budget["longest"] < 40 and budget["cut"] == 0
    assert json.loads((final / "pair.json").read_text())["max_target_tokens"] == budget["used"]
    capped = SFTTrainer(sft_config("epochs=1", "max_target_tokens=4")).train(ball_world(16), tmp_path / "cap")
    budget = json.loads((capped / "trainer_state.json").read_text())["target_budget"]
    assert budget["used"] == 4 and budget["cut"] > 0  # reported, so a cut budget is never silent


def test_swirl_rollout_budget_must_match_evaluation(tmp_path):
    from swirl_core import SwirlConfig, SwirlTrainer

    final = SFTTrainer(sft_config("epochs=1")).train(ball_world(8), tmp_path / "sft")
    config = apply_overrides(SwirlConfig(), ["progress=false", "fwm_max_new_tokens=7", "iterations=1"])
    with pytest.raises(SwirlError, match="fwm_max_new_tokens=7 differs"):
        SwirlTrainer(config).train(ball_world(8, labelled=False), tmp_path / "swirl", init=final)
