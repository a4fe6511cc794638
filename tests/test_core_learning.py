"""Learning works: on the textual physics simulator, Phase I raises the IDM's reward for the FWM's predictions
and Phase II raises the FWM's reward for the IDM's inferred actions (SFT warm start, then state-only SWIRL)."""

from __future__ import annotations

import pytest
import torch

import swirl_envs
from swirl_core import SFTConfig, SFTTrainer, SwirlConfig, SwirlTrainer, WorldModelPair, apply_overrides
from swirl_core import evaluate_rewards as rewards_of

torch.set_num_threads(2)

SHAPE = ["progress=false", "max_length=160", "max_target_tokens=80", "tiny.vocab_size=512"]


@pytest.mark.slow
def test_swirl_phases_raise_their_rewards_on_textphysics(tmp_path):
    bench = swirl_envs.make_benchmark("textphysics", labelled=True, difficulty="easy")
    transitions = list(bench.transitions("train", limit=168))
    labelled, state_only = transitions[:160], [t.without_action() for t in transitions[160:]]
    assert all(t.action is None for t in state_only)

    sft = apply_overrides(SFTConfig(), [*SHAPE, "epochs=4", "batch_size=16", "learning_rate=2e-3"])
    warm = SFTTrainer(sft).train(labelled, tmp_path / "sft")

    # One iteration over a small state-only pool; the checkpoint at the phase boundary separates the phases.
    steps = 8
    config = apply_overrides(SwirlConfig(), [
        *SHAPE, "iterations=1", f"steps_per_phase={steps}", f"save_steps={steps}", "batch_size=4",
        "fwm_group_size=8", "idm_group_size=8", "learning_rate=5e-4", "latent_action=annotate",
        "annotate_min_logprob=-10", "sample_batch_size=64"])
    final = SwirlTrainer(config).train(state_only, tmp_path / "swirl", init=warm)

    xs, ys = [t.state for t in state_only], [t.next_state for t in state_only]
    # Phase I leaves the IDM untouched, Phase II the FWM: each comparison holds the rewarding model fixed.
    start, middle, end = (rewards_of(WorldModelPair.load(p), xs, ys, config=config, num_samples=8, seed=1)
                          for p in (warm, tmp_path / "swirl" / f"checkpoint-{steps:06d}", final))
    print(f"phase I reward (IDM log-prob of z given FWM samples): {start['phase1_reward']:.3f} -> "
          f"{middle['phase1_reward']:.3f}; phase II reward (FWM log-prob of y given IDM samples): "
          f"{middle['phase2_reward']:.3f} -> {end['phase2_reward']:.3f}")
    assert middle["phase1_reward"] > start["phase1_reward"]
    assert end["phase2_reward"] > middle["phase2_reward"]
