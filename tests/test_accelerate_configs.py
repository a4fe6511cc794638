"""configs/accelerate/*.yaml are files `accelerate launch --config_file` accepts, and they say what
docs/speed.md says they do. What launch would hand the processes is built as launch builds it; nothing runs
on a GPU here. Also benchmarks/gpu_check.sh's path on a machine without CUDA."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils import DistributedType
from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "accelerate"
EXPECTED = {"single_gpu_bf16.yaml": DistributedType.NO, "multi_gpu_ddp.yaml": DistributedType.MULTI_GPU,
            "fsdp_full_shard.yaml": DistributedType.FSDP, "deepspeed_zero2.yaml": DistributedType.DEEPSPEED,
            "deepspeed_zero3.yaml": DistributedType.DEEPSPEED}


def launch_args(name: str):
    """The arguments `accelerate launch --config_file <name> train.py` settles on, and the config it read."""
    args = launch_command_parser().parse_args(["--config_file", str(CONFIGS / name), "train.py"])
    args, config, _ = _validate_launch_command(args)
    return args, config


def test_every_config_is_listed_and_documented():
    assert sorted(p.name for p in CONFIGS.glob("*.yaml")) == sorted(EXPECTED)
    speed = (CONFIGS.parent.parent / "docs" / "speed.md").read_text()
    assert all(f"configs/accelerate/{name}" in speed for name in EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_loads_with_accelerates_classes_in_bf16(name):
    config = load_config_from_file(str(CONFIGS / name))  # unknown keys raise
    assert config.distributed_type == EXPECTED[name] and config.mixed_precision == "bf16"
    args, _ = launch_args(name)
    assert args.mixed_precision == "bf16" and not args.cpu
    assert (args.num_processes == 1) == (name == "single_gpu_bf16.yaml")


def test_fsdp_shards_fully_and_wraps_each_llama_decoder_layer():
    args, _ = launch_args("fsdp_full_shard.yaml")
    assert args.use_fsdp and args.fsdp_version == 2
    env = prepare_multi_gpu_env(args)
    assert env["ACCELERATE_USE_FSDP"] == "true" and env["ACCELERATE_MIXED_PRECISION"] == "bf16"
    assert env["FSDP_AUTO_WRAP_POLICY"] == "TRANSFORMER_BASED_WRAP"
    assert env["FSDP_TRANSFORMER_CLS_TO_WRAP"] == "LlamaDecoderLayer"
    assert env["FSDP_RESHARD_AFTER_FORWARD"] == "true" and env["FSDP_OFFLOAD_PARAMS"] == "false"


@pytest.mark.parametrize("name, stage", [("deepspeed_zero2.yaml", 2), ("deepspeed_zero3.yaml", 3)])
def test_deepspeed_zero_stage_and_bf16_reach_the_processes(name, stage):
    args, config = launch_args(name)
    assert args.use_deepspeed and config.deepspeed_config["zero_stage"] == stage
    # as launch_command does before deepspeed_launcher: the fields the processes take from the config file
    args.deepspeed_fields_from_accelerate_config = ",".join([*config.deepspeed_config, "mixed_precision"])
    _, env = prepare_deepspeed_cmd_env(args)
    assert env["ACCELERATE_USE_DEEPSPEED"] == "true" and env["ACCELERATE_DEEPSPEED_ZERO_STAGE"] == str(stage)
    assert env["ACCELERATE_MIXED_PRECISION"] == "bf16"
    assert env["ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE"] == "none"
    if stage == 3:
        assert env["ACCELERATE_DEEPSPEED_ZERO3_INIT"] == "true"
        assert env["ACCELERATE_DEEPSPEED_ZERO3_SAVE_16BIT_MODEL"] == "true"


def test_gpu_check_without_cuda_says_so_and_exits_0():
    script = CONFIGS.parent.parent / "benchmarks" / "gpu_check.sh"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHON": sys.executable}  # no GPU, even on a GPU machine
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("gpu_check: no CUDA device (torch: ") and "nothing to check" in done.stdout
    assert done.stdout.count("\n") == 1
