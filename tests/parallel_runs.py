"""The runs tests/test_distributed.py compares, in one script that works alone or under a launcher:

    python parallel_runs.py OUT                                                   # one process
    PARALLEL_CASES=sft,swirl python parallel_runs.py OUT                          # some of the cases
    accelerate launch --multi_gpu --num_processes 2 parallel_runs.py OUT INIT     # two, gloo on a CPU

Each trainer (sft, bootstrap, swirl; full and LoRA) trains a tiny model from the same start on the same global
batches into OUT/<case>/. Bootstrap and SWIRL start from INIT, a finished SFT pair (default: OUT/sft/final),
so that both process counts begin from the same weights.

SWIRL samples its groups here with `per_row`, which draws each sample alone from a seed of its own: the
"fast" backend draws a whole batch from one stream, so a group's samples would depend on which process and
which batch it is in, and two processes could not reproduce one draw for draw.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from support import ball_world

from swirl_core import (
    BootstrapConfig,
    BootstrapTrainer,
    SFTConfig,
    SFTTrainer,
    SwirlConfig,
    SwirlTrainer,
    apply_overrides,
)
from swirl_core.decoding import generate_ids, register_backend

TINY = ["progress=false", "max_length=48", "max_target_tokens=16", "tiny.vocab_size=320", "tiny.hidden_size=64",
        "tiny.intermediate_size=128", "learning_rate=1e-3", "save_steps=2"]
LORA = ["lora.enabled=true", "lora.r=4", "learning_rate=1e-2"]
# 7 examples per stream in batches of 3: the shares are uneven (2 + 1) and the last batch (1) leaves a process empty
SFT = [*TINY, "epochs=2", "batch_size=3"]
SWIRL = [*TINY, "iterations=1", "steps_per_phase=2", "batch_size=2", "fwm_group_size=3", "idm_group_size=4",
         "advantage_scale=batch", "beta=0.05", "sample_batch_size=64", "generation_backend=per-row"]
CASES = {"sft": (SFTTrainer, SFTConfig, SFT), "sft-lora": (SFTTrainer, SFTConfig, [*SFT, *LORA]),
         "bootstrap": (BootstrapTrainer, BootstrapConfig, SFT),
         "bootstrap-lora": (BootstrapTrainer, BootstrapConfig, [*SFT, *LORA]),
         "swirl": (SwirlTrainer, SwirlConfig, SWIRL), "swirl-lora": (SwirlTrainer, SwirlConfig, [*SWIRL, *LORA]),
         # gradient accumulation: chunks of 2 rows, so that under DDP only each step's last backward syncs
         "sft-micro": (SFTTrainer, SFTConfig, [*SFT, "micro_batch_size=1"]),
         "swirl-micro": (SwirlTrainer, SwirlConfig, [*SWIRL, "micro_batch_size=2"]),
         # the default backend: each process draws from its own checkpointed stream (for the resume test;
         # its draws depend on the process count, so it is not compared with one process)
         "swirl-lora-fast": (SwirlTrainer, SwirlConfig, [*SWIRL, *LORA, "generation_backend=fast"])}


def per_row(model, prompt_ids, *, eos_id, pad_id, max_new_tokens, temperature=0.0, top_p=1.0, generator=None,
            repeats=1):
    """Each sample alone, seeded by its prompt, its place in the group and the call number (every process
    makes the same calls): the same tokens whichever process or batch holds the group."""
    per_row.calls += 1
    device = next(model.parameters()).device
    out = []
    for prompt in prompt_ids:
        for k in range(repeats):
            seed = hash((tuple(prompt), k, per_row.calls)) % 2**62  # a tuple of ints hashes alike in every process
            out += generate_ids(model, [prompt], eos_id=eos_id, pad_id=pad_id, max_new_tokens=max_new_tokens,
                                temperature=temperature, top_p=top_p,
                                generator=torch.Generator(device).manual_seed(seed))
    return out


per_row.calls = 0
register_backend("per-row", per_row)


def main(out: Path, init: Path | None) -> None:
    torch.set_num_threads(1)
    chosen = os.environ.get("PARALLEL_CASES")  # comma-separated names: a subset of CASES
    for case, (trainer_class, config_class, overrides) in CASES.items():
        if chosen and case not in chosen.split(","):
            continue
        data = ball_world(7 if case.startswith("sft") else 8, labelled=case.startswith("sft"))
        start = None if case.startswith("sft") else init or out / "sft" / "final"
        final = trainer_class(apply_overrides(config_class(), overrides)).train(data, out / case, start)
        assert (final / "trainer_state.json").is_file()  # every process returns after the main one has written


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else None)
