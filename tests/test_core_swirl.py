"""The SWIRL trainer: blind to actions, resumable after a kill, Phase-I-only mode, KL reference, metrics."""

from __future__ import annotations

import dataclasses
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
    SFTConfig,
    SFTTrainer,
    SwirlConfig,
    SwirlTrainer,
    WorldModelPair,
    apply_overrides,
    get_trainer,
)
from swirl_core.logging import read_metrics
from swirl_core.trainer import SIMULATED_CRASH_EXIT_CODE
from swirl_envs.errors import SwirlError

torch.set_num_threads(1)


SMALL = ["progress=false", "max_length=48", "max_target_tokens=16", "tiny.vocab_size=320", "tiny.hidden_size=64",
         "tiny.intermediate_size=128"]
RL = [*SMALL, "iterations=2", "steps_per_phase=2", "batch_size=2", "fwm_group_size=3", "idm_group_size=4",
      "learning_rate=1e-3", "beta=0.05", "sample_batch_size=8"]

RUNNER = runner_script('''
    import json, sys, torch
    from swirl_core import apply_overrides, get_trainer
    torch.set_num_threads(1)
    name, output_dir, init, n, overrides, labelled = sys.argv[1:7]
    cls = get_trainer(name)
    config = apply_overrides(cls.config_class(), json.loads(overrides))
    cls(config).train(ball_world(int(n), labelled=labelled == "labelled"), output_dir,
                      init=None if init == "-" else init)
''')


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    config = apply_overrides(SFTConfig(), [*SMALL, "learning_rate=3e-3", "epochs=8", "batch_size=8"])
    return SFTTrainer(config).train(ball_world(48), tmp_path_factory.mktemp("warm") / "sft")


@pytest.fixture(scope="module")
def warm_shared(tmp_path_factory):
    config = apply_overrides(SFTConfig(), [*SMALL, "learning_rate=3e-3", "epochs=8", "batch_size=8", "shared=true"])
    return SFTTrainer(config).train(ball_world(48), tmp_path_factory.mktemp("warm") / "sft")


def weights(folder):
    files = sorted([*Path(folder).glob("*/model.safetensors"), *Path(folder).glob("*/adapter_model.safetensors")])
    return {p.parent.name: load_file(p) for p in files}


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("setting", ["default", "annotate-and-controls"])
def test_swirl_never_reads_actions(tmp_path, setting, warm, warm_shared):
    # every setting but latent_action=oracle (the control that asks for actions) is blind to them
    extra = ["latent_action=annotate", "annotate_min_logprob=-5", "reward_shuffle=true",
             f"judge_idm={warm_shared}"] if setting != "default" else []
    config = apply_overrides(SwirlConfig(), [*RL, "iterations=1", *extra])
    clean = ball_world(12, labelled=False)
    garbage = [dataclasses.replace(t, action=f"DELETE * FROM users; -- {i}") for i, t in enumerate(clean)]
    truth = ball_world(12, labelled=True)
    finals = [SwirlTrainer(config).train(data, tmp_path / name, init=warm)
              for name, data in (("none", clean), ("garbage", garbage), ("truth", truth))]
    first = weights(finals[0])
    assert sorted(first) == ["fwm", "idm"] and not same(first["fwm"], weights(warm)["fwm"])
    for other in finals[1:]:
        theirs = weights(other)
        assert all(same(first[role], theirs[role]) for role in first)
    assert read_metrics(tmp_path / "none")[-1]["reward/mean"] == read_metrics(tmp_path / "garbage")[-1]["reward/mean"]


def test_metrics_schedule_and_kl_reference(tmp_path, warm):
    final = SwirlTrainer(apply_overrides(SwirlConfig(), RL)).train(ball_world(12, labelled=False), tmp_path / "r",
                                                                  init=warm)
    log = read_metrics(tmp_path / "r")
    assert [(r["iteration"], r["phase"]) for r in log] == [
        (0, "phase1-fwm"), (0, "phase1-fwm"), (0, "phase2-idm"), (0, "phase2-idm"),
        (1, "phase1-fwm"), (1, "phase1-fwm"), (1, "phase2-idm"), (1, "phase2-idm")]
    wanted = {"reward/mean", "reward/std", "frac_reward_zero_std", "kl", "clip_ratio/region_mean",
              "completion_length", "logp_truth", "loss", "lr", "grad_norm"}
    assert all(wanted <= set(r) for r in log)
    assert all(-10.0 <= r["reward/mean"] <= 0.0 for r in log)
    # The reference is the model at the start of each iteration: KL is exactly 0 on the first update of each
    # model in an iteration (it has not moved yet), and positive once it has moved (a step whose groups all
    # had equal rewards has zero gradient and leaves the model where it was).
    kl = [r["kl"] for r in log]
    assert kl[0] == kl[2] == kl[4] == kl[6] == 0.0
    for i in (1, 3, 5, 7):
        assert (kl[i] > 0) == (log[i - 1]["grad_norm"] > 0), (i, kl[i], log[i - 1])
    assert kl[1] > 0
    state = json.loads((final / "trainer_state.json").read_text())
    assert state["complete"] and state["step"] == 8 and state["pairs"] == 12


CONTROLS = {"random-reward": ["reward_shuffle=true"], "oracle-z": ["latent_action=oracle"],
            "strong-judge": ["judge_idm={judge}"]}


@pytest.mark.parametrize("variant", ["separate-sample", "shared-annotate", "lora", *CONTROLS])
def test_killed_swirl_run_resumes_to_the_same_weights(tmp_path, variant, warm, warm_shared):
    init = warm_shared if variant == "shared-annotate" else warm
    overrides = [*RL, "save_steps=3", "save_total_limit=1"]
    if variant == "shared-annotate":
        overrides += ["shared=true", "latent_action=annotate", "annotate_min_logprob=-5"]
    overrides += [o.format(judge=warm_shared) for o in CONTROLS.get(variant, [])]
    if variant == "lora":  # its KL reference is an adapter snapshot (swirl_core.reference), saved mid-iteration
        overrides += ["lora.enabled=true", "lora.r=4", "lora.alpha=8"]
    labelled = "labelled" if variant == "oracle-z" else "state-only"
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "SWIRL_EXIT_AFTER_STEP": "5",
           "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    done = subprocess.run([sys.executable, str(script), "swirl", str(tmp_path / "killed"), str(init), "12",
                           json.dumps(overrides), labelled], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == SIMULATED_CRASH_EXIT_CODE, done.stderr[-2000:]
    killed = tmp_path / "killed"
    assert [p.name for p in killed.glob("checkpoint-*")] == ["checkpoint-000003"]
    assert (killed / "checkpoint-000003" / "ref").is_dir()  # mid-iteration: the KL reference is saved too
    config = apply_overrides(SwirlConfig(), overrides)
    data = ball_world(12, labelled=variant == "oracle-z")
    resumed = SwirlTrainer(config).train(data, killed, init=init)
    straight = SwirlTrainer(config).train(data, tmp_path / "straight", init=init)
    a, b = weights(resumed), weights(straight)
    trained = sorted(role for role in a if not role.startswith("base-"))  # LoRA pairs keep their bases beside
    assert trained == (["shared"] if variant == "shared-annotate" else ["fwm", "idm"])
    assert all(same(a[role], b[role]) for role in a)
    assert [r["reward/mean"] for r in read_metrics(killed)] == [r["reward/mean"] for r in read_metrics(tmp_path / "straight")]


def test_idm2fwm_updates_only_the_fwm_and_builds_tiny_without_init(tmp_path, warm):
    cls = get_trainer("swirl-idm2fwm")
    config = apply_overrides(cls.config_class(), [*RL, "iterations=1", "latent_action=annotate",
                                                  "annotate_min_logprob=-5"])
    final = cls(config).train(ball_world(12, labelled=False), tmp_path / "p1", init=warm)
    before, after = weights(warm), weights(final)
    assert same(before["idm"], after["idm"]) and not same(before["fwm"], after["fwm"])
    assert {r["phase"] for r in read_metrics(tmp_path / "p1")} == {"phase1-fwm"}
    scratch = SwirlTrainer(apply_overrides(SwirlConfig(), [*RL, "iterations=1", "steps_per_phase=1"]))
    pair = WorldModelPair.load(scratch.train(ball_world(6, labelled=False), tmp_path / "scratch"))
    assert pair.describe()["fwm"]["source"] == "tiny"


def test_annotation_filter_that_keeps_nothing_is_an_error(tmp_path, warm):
    config = apply_overrides(SwirlConfig(), [*RL, "latent_action=annotate", "annotate_min_logprob=0.0"])
    with pytest.raises(SwirlError, match="no IDM annotation reached mean log-prob 0.0"):
        SwirlTrainer(config).train(ball_world(6, labelled=False), tmp_path / "bad", init=warm)


def test_shared_weights_judge_is_frozen_for_the_whole_phase(tmp_path, warm_shared, monkeypatch):
    # Phase I of a shared pair: the IDM that scores the samples is the model as it was when the phase began,
    # not the model being trained (in a separate-weights run the IDM is not trained in Phase I either).
    seen: list[tuple[int, torch.Tensor]] = []
    original = WorldModelPair.score_actions

    def spy(self, *args, **kwargs):
        judge = self.models["idm"]
        seen.append((id(judge), torch.cat([p.detach().flatten() for p in judge.parameters()]).clone(),
                     judge is self.models["fwm"]))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(WorldModelPair, "score_actions", spy)
    config = apply_overrides(SwirlConfig(), [*RL, "iterations=1", "mode=idm2fwm", "steps_per_phase=3"])
    SwirlTrainer(config).train(ball_world(12, labelled=False), tmp_path / "r", init=warm_shared)
    assert len(seen) == 3 and not any(is_trained_model for _, _, is_trained_model in seen)
    assert all(torch.equal(seen[0][1], params) for _, params, _ in seen)  # the same weights at every step
    trained = weights(tmp_path / "r" / "final")["shared"]
    assert not same(trained, weights(warm_shared)["shared"])  # while the shared model itself moved
    log = read_metrics(tmp_path / "r")
    assert all(0 <= r["groups_flat"] <= 2 and r["reward/group_spread"] >= 0 for r in log)


def test_progress_on_held_out_pairs_by_the_frozen_initial_models(tmp_path, warm):
    config = apply_overrides(SwirlConfig(), [*RL, "progress_pairs=4"])
    final = SwirlTrainer(config).train(ball_world(12, labelled=False), tmp_path / "r", init=warm)
    log = read_metrics(tmp_path / "r")
    measured = [r for r in log if "progress/phase1_reward" in r]
    assert [(r["iteration"], r["phase"]) for r in measured] == [(0, "phase1-fwm"), (1, "phase1-fwm")]
    assert all(-10.0 <= r["progress/phase1_reward"] <= 0 and -10.0 <= r["progress/phase2_reward"] <= 0
               for r in measured)
    state = json.loads((final / "trainer_state.json").read_text())
    assert state["pairs"] == 8 and state["held_out"] == 4 and "progress/phase2_reward" in state
    # the judge is the initial pair: before any update, its own rewards are what the first row shows
    from swirl_core.swirl import fixed_judge_rewards

    initial = WorldModelPair.load(warm)
    held = [(t.state, t.next_state) for t in ball_world(12, labelled=False)]
    chosen = SwirlTrainer(config)._hold_out(held)[0]
    again = fixed_judge_rewards(initial, initial, [x for x, _ in chosen], [y for _, y in chosen], config=config,
                                seed=config.seed)
    assert again["phase1_reward"] == pytest.approx(measured[0]["progress/phase1_reward"])


def test_public_code_protocol_options(tmp_path, warm, monkeypatch):
    # judge=init and kl_reference=init: the initial (SFT) models judge every phase and anchor the KL for the
    # whole run; Phase II has its own beta and clipping; one pass over the data per phase; cosine decay.
    initial = {role: torch.cat([p.flatten() for p in WorldModelPair.load(warm).models[role].parameters()])
               for role in ("fwm", "idm")}
    judged: list[tuple[str, bool]] = []
    scorers = {"idm": WorldModelPair.score_actions, "fwm": WorldModelPair.score_next_states}

    def spy(role):
        def score(self, *args, **kwargs):
            params = torch.cat([p.detach().flatten() for p in self.models[role].parameters()])
            judged.append((len(args[0]), torch.equal(params, initial[role])))
            return scorers[role](self, *args, **kwargs)
        return score

    monkeypatch.setattr(WorldModelPair, "score_actions", spy("idm"))
    monkeypatch.setattr(WorldModelPair, "score_next_states", spy("fwm"))
    config = apply_overrides(SwirlConfig(), [*RL, "judge=init", "kl_reference=init", "idm_beta=0",
                                             "idm_max_grad_norm=0.1", "steps_per_phase=0", "lr_scheduler=cosine"])
    SwirlTrainer(config).train(ball_world(8, labelled=False), tmp_path / "r", init=warm)
    log = read_metrics(tmp_path / "r")
    assert len(log) == 2 * 2 * 4  # 2 iterations x 2 phases x ceil(8 pairs / batch 2)
    rewards = [ok for rows, ok in judged if rows > 2]  # group rows; logp_truth scores the batch with the FWM itself
    assert rewards and all(rewards)  # every reward came from an initial model, though both models trained
    phase1 = [r for r in log if r["phase"] == "phase1-fwm"]
    assert phase1[4]["kl"] > 0  # iteration 2 starts away from the initial reference: it was not reset
    assert all(r.get("kl", 0.0) == 0.0 for r in log if r["phase"] == "phase2-idm")  # idm_beta=0
    assert log[-1]["lr"] < log[0]["lr"] / 10
    assert not any(k.startswith("progress/") for r in log for k in r)  # no pairs held out: nothing to score


def test_flat_groups_can_be_left_out_of_the_update(tmp_path, warm):
    config = apply_overrides(SwirlConfig(), [*RL, "iterations=1", "drop_flat_groups=true", "flat_spread=0.05"])
    SwirlTrainer(config).train(ball_world(8, labelled=False), tmp_path / "r", init=warm)
    for row in read_metrics(tmp_path / "r"):
        assert row["groups_used"] == 2 - row["groups_flat"]
        assert ("loss" in row) == (row["groups_used"] > 0)  # no group with signal: no update at all
