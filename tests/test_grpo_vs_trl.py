"""benchmarks/grpo_vs_trl.py: its presets, options and FLOP counts, without running a model."""

import importlib.util
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "grpo_vs_trl.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("grpo_vs_trl", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smollm2_preset_and_lora_reach_both_sides(bench):
    args = bench.parse_args(["--preset", "smollm2", "--lora"])
    preset = bench.PRESETS["smollm2"]
    assert (args.batch, args.group, args.length, args.iters) == (1, 4, 32, 1)
    assert preset["model"] == "smollm2-135m" and preset["format"]["max_target_tokens"] >= args.length
    args.pair_dir = "/nowhere"
    for side in ("ours", "trl"):
        cmd = bench.child_command(side, args)
        assert "--lora" in cmd and cmd[cmd.index("--side") + 1] == side
        assert bench.parse_args(cmd[2:]).lora  # what the child parses back
    full = bench.parse_args(["--preset", "smollm2", "--batch", "2", "--length", "8"])
    full.pair_dir = "/nowhere"
    assert "--lora" not in bench.child_command("ours", full)
    assert (full.batch, full.group, full.length) == (2, 4, 8)


def test_lora_is_the_projects_smollm2_setting(bench):
    from evals.experiments import SMOLLM2_FIELDS

    lora = SMOLLM2_FIELDS["lora"]
    config = bench.lora_settings().peft_config()
    assert (config.r, config.lora_alpha, config.lora_dropout) == (lora["r"], lora["alpha"], 0.0)
    assert set(config.target_modules) == set(lora["target_modules"])


def test_flop_counts(bench):
    # two groups of two: each prompt runs once, every completion token once
    prompts = [[1, 2, 3], [1, 2, 3], [4, 5], [4, 5]]
    assert bench.update_tokens(prompts, [[7], [7, 8], [], [9]]) == (3 + 2 + 4, 4)

    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True))
    n = bench.param_counts(model)
    assert n["head"] == 64 * 16 and n["adapter"] == 0
    assert n["body"] + n["head"] == sum(p.numel() for p in model.parameters())  # the tied table counted once
    from peft import get_peft_model

    wrapped = get_peft_model(model, bench.lora_settings().peft_config())
    assert bench.param_counts(wrapped) == {**n, "adapter": wrapped.get_nb_trainable_parameters()[0]}


def test_device_dtype_and_backend_reach_both_sides(bench):
    args = bench.parse_args(["--preset", "tiny", "--device", "cuda", "--dtype", "bfloat16",
                             "--generation-backend", "hf"])
    args.pair_dir = "/nowhere"
    for side in ("ours", "trl"):
        child = bench.parse_args(bench.child_command(side, args)[2:])
        assert (child.device, child.dtype, child.generation_backend) == ("cuda", "bfloat16", "hf")
    default = bench.parse_args([])
    assert (default.device, default.dtype, default.generation_backend) == ("cpu", "float32", "fast")


def test_random_init_takes_the_folders_shapes_and_tokenizer(bench, tmp_path):
    from transformers import LlamaConfig

    from swirl_core.tiny import train_tokenizer

    tokenizer = train_tokenizer(["the lamp is on", "the lamp is off"] * 8, vocab_size=300)
    tokenizer.save_pretrained(tmp_path)
    LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2).save_pretrained(tmp_path)
    pair = bench.build_pair(bench.PRESETS["smollm2"], str(tmp_path))
    assert pair.fwm is not pair.idm and pair.max_target_tokens == bench.PRESETS["smollm2"]["format"]["max_target_tokens"]
    assert pair.fwm.config.num_key_value_heads == 2 and pair.fwm.get_input_embeddings().num_embeddings == len(tokenizer)
    assert not torch.equal(pair.fwm.lm_head.weight, pair.idm.lm_head.weight)  # two draws, not one copy
    again = bench.build_pair(bench.PRESETS["smollm2"], str(tmp_path))
    assert torch.equal(again.fwm.lm_head.weight, pair.fwm.lm_head.weight)  # seeded

