"""Gradient accumulation: `micro_batch_size` splits a step's forward into chunks, not the step itself.

A run with micro-batches must end where the run without them ends (up to float rounding), for SFT and for
SWIRL under every loss aggregation, separate and shared weights, full and LoRA.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from support import ball_world

from swirl_core import SFTConfig, SFTTrainer, SwirlConfig, SwirlTrainer, apply_overrides
from swirl_core.logging import read_metrics
from swirl_core.swirl import merge_figures
from swirl_envs.errors import SwirlError

torch.set_num_threads(1)

SMALL = ["progress=false", "max_length=48", "max_target_tokens=16", "tiny.vocab_size=320", "tiny.hidden_size=64",
         "tiny.intermediate_size=128"]
RL = [*SMALL, "iterations=1", "steps_per_phase=2", "batch_size=2", "fwm_group_size=3", "idm_group_size=4",
      "learning_rate=1e-3", "beta=0.05", "sample_batch_size=8"]


def weights(folder: Path) -> dict[str, dict[str, torch.Tensor]]:
    files = sorted([*folder.glob("*/model.safetensors"), *folder.glob("*/adapter_model.safetensors")])
    return {p.parent.name: load_file(p) for p in files}


def assert_close_weights(a: Path, b: Path) -> None:
    """Equal up to float rounding. Not element by element: where a gradient is ~0, rounding can flip its
    sign and Adam's normalisation turns that into a step of up to the learning rate for that one weight."""
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys() and wa
    for role in wa:
        assert wa[role].keys() == wb[role].keys()
        diff = torch.cat([(wa[role][k] - wb[role][k]).flatten() for k in wa[role]]).norm()
        size = torch.cat([wa[role][k].flatten() for k in wa[role]]).norm()
        assert diff <= 1e-4 * size, (role, float(diff), float(size))


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    config = apply_overrides(SFTConfig(), [*SMALL, "learning_rate=3e-3", "epochs=4", "batch_size=8"])
    return SFTTrainer(config).train(ball_world(32), tmp_path_factory.mktemp("warm") / "sft")


@pytest.mark.parametrize("extra", [[], ["shared=true"], ["lora.enabled=true", "lora.r=4"]],
                         ids=["separate", "shared", "lora"])
def test_sft_with_micro_batches_ends_where_one_forward_does(tmp_path, extra):
    base = [*SMALL, "learning_rate=3e-3", "epochs=2", "batch_size=8", *extra]
    whole = SFTTrainer(apply_overrides(SFTConfig(), base)).train(ball_world(16), tmp_path / "whole")
    chunked = SFTTrainer(apply_overrides(SFTConfig(), [*base, "micro_batch_size=3"])).train(
        ball_world(16), tmp_path / "chunked")
    assert_close_weights(whole, chunked)
    rows = [read_metrics(tmp_path / run) for run in ("whole", "chunked")]
    keys = ["loss", *(k for k in rows[0][0] if k.startswith("grad_norm/"))]  # AdamW divides out a gradient's
    for key in keys:  # scale: the weights alone would not see a mis-scaled loss
        assert [r[key] for r in rows[0]] == pytest.approx([r[key] for r in rows[1]], rel=1e-4), key


@pytest.mark.parametrize("extra", [["loss_type=dapo"], ["loss_type=grpo"], ["loss_type=dr_grpo"],
                                   ["loss_type=bnpo", "updates_per_batch=2"],
                                   ["loss_type=grpo", "lora.enabled=true", "lora.r=4", "lora.alpha=8"]],
                         ids=["dapo", "grpo", "dr_grpo", "bnpo-2-updates", "grpo-lora"])
def test_swirl_with_micro_batches_ends_where_one_forward_does(tmp_path, warm, extra):
    data = ball_world(8, labelled=False)
    whole = SwirlTrainer(apply_overrides(SwirlConfig(), [*RL, *extra])).train(data, tmp_path / "whole", init=warm)
    # 6 or 8 completions per update in chunks of 5: one full chunk and one partial
    chunked = SwirlTrainer(apply_overrides(SwirlConfig(), [*RL, *extra, "micro_batch_size=5"])).train(
        data, tmp_path / "chunked", init=warm)
    assert_close_weights(whole, chunked)
    rows = [read_metrics(tmp_path / run) for run in ("whole", "chunked")]
    for a, b in zip(*rows, strict=True):
        assert a["reward/mean"] == pytest.approx(b["reward/mean"], rel=1e-4, abs=1e-6)
        # AdamW divides out a gradient's scale, so the weights alone would not see a mis-scaled loss
        for key in ("loss", "grad_norm", "kl", "clip_ratio/region_mean", "clip_ratio/high_max"):
            assert a[key] == pytest.approx(b[key], rel=1e-3, abs=1e-5), key  # the loss itself is ~0 on-policy


def test_merged_figures_are_those_of_the_whole_batch():
    one = {"kl": torch.tensor(0.2), "clip_ratio/low_min": torch.tensor(0.1), "clip_ratio/high_max": torch.tensor(0.5)}
    two = {"kl": torch.tensor(0.5), "clip_ratio/low_min": torch.tensor(0.0), "clip_ratio/high_max": torch.tensor(0.3)}
    merged = merge_figures([(one, torch.tensor(10)), (two, torch.tensor(30))])
    assert merged["kl"].item() == pytest.approx((0.2 * 10 + 0.5 * 30) / 40)
    assert merged["clip_ratio/low_min"].item() == 0.0 and merged["clip_ratio/high_max"].item() == 0.5


def test_micro_batch_size_must_be_positive():
    with pytest.raises(SwirlError, match="micro_batch_size"):
        SFTConfig(micro_batch_size=0)
