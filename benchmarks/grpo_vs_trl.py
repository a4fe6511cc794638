"""One SWIRL iteration (Phase I + Phase II) with our trainer against the same work as two TRL GRPOTrainer runs.

    .venv/bin/python benchmarks/grpo_vs_trl.py --preset tiny
    .venv/bin/python benchmarks/grpo_vs_trl.py --preset base
    .venv/bin/python benchmarks/grpo_vs_trl.py --preset smollm2 [--lora]
    python3 benchmarks/grpo_vs_trl.py --preset smollm2 --random-init DIR --device cuda --dtype bfloat16

`--random-init DIR` builds both models with random weights from DIR's config.json and tokenizer (a Hub-layout
folder without weights: same shapes, tokenizer and prompts, so the same cost), for a machine that lacks the
preset's weights. `--device cuda --dtype bfloat16` runs both sides on the GPU in bfloat16 (ours: models loaded
in bfloat16; TRL: loaded in bfloat16, bf16=True); timings then synchronise the device, memory is the peak of
torch.cuda.max_memory_allocated over the allocation before the models were loaded, and the roofline is a
bfloat16 matmul on the device.

The parent process builds one pair (FWM + IDM: a tiny pair from textphysics text with a fixed seed, or two
copies of SmolLM2-135M-Instruct), saves it to a temporary folder and times a large matmul (the achievable
FLOP/s roofline). Each side then runs in its own fresh subprocess that loads the saved pair, so peak-RSS
figures do not mix:

* ours: `SwirlTrainer` internals on a fixed batch: snapshot the KL references, Phase I (sample z from the
  IDM, a group of y_hat from the FWM, rewards log Q(z | x, y_hat), one GRPO step), Phase II (a group of
  z_hat from the IDM, rewards log P(y | x, z_hat), one GRPO step).
* TRL: one `GRPOTrainer` per model (model given as the saved folder, so TRL loads it and its reference
  itself) whose reward function scores completions with the other trainer's (frozen for this step)
  model. TRL's dataset is fixed before training, so z for Phase I is sampled by the same batched IDM
  sampler ahead of time and its cost is added to every TRL iteration. TRL runs its Phase I steps, then
  its Phase II steps; a step's time is taken from on_step_begin to on_step_end (generation, rewards,
  reference forward, loss and optimiser step all happen in between).

Both sides: same batch of (x, y), group size, completion budget, sampling temperature/top_p, loss type
(dapo), beta, epsilon, learning rate, one optimiser step per phase, gradient checkpointing (TRL's default).
`--lora` puts the same peft LoraConfig on both (r 16, alpha 32, every attention and MLP projection: the
project's SmolLM2 setting); ours adds it to the loaded pair, TRL gets it as `peft_config`. Deviations that
come with each library's design, not with the benchmark: TRL's KL reference is the initial model (with LoRA:
the base with adapters disabled, no copy), ours each trained model as it was at the iteration's start (a
full copy, LoRA or not), so after the first step TRL runs a reference forward that ours skips; TRL's
optimiser is transformers' default (fused AdamW), ours torch's AdamW.

Per-iteration time is the median over the measured iterations after one warm-up, in wall-clock and in
process CPU seconds (the second is less disturbed by other jobs on a shared machine). Peak memory is the
peak RSS of the child minus its RSS before any model was loaded. Iteration FLOPs are estimated as
2*params*tokens per forward token and 6*params*tokens per trained token (4 with LoRA; attention's quadratic
term ignored), counted as the work TRL does (a group's shared prompt once per sample, where ours runs it once
per group; a reference forward on every trained token, which ours skips right after the KL snapshot) and
used for both sides' MFU. `mfu_ours` is our GRPO updates only (forward, backward, optimiser step) against
the FLOPs they execute: each group's prompt once, the LM head on completion tokens only, 6 per weight and
token (full) or 4 per frozen weight and token plus 6 per adapter weight (LoRA: no weight gradients for the
base), gradient checkpointing's second forward not counted; the roofline is the best 2048^3 fp32 matmul
rate seen in the run (the parent at start, ours' child before and after its iterations).
The last line is `ratio_time_trl_over_ours=X ratio_mem_trl_over_ours=Y` (above 1: ours is better).
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

PRESETS = {
    # the swirl_core tiny preset (TinyConfig defaults)
    "tiny": {"model": {}, "batch": 4, "group": 8, "length": 32, "iters": 3},
    # a Llama config with ~25M parameters
    "base": {"model": {"hidden_size": 512, "intermediate_size": 1376, "num_hidden_layers": 8,
                       "num_attention_heads": 8}, "batch": 2, "group": 4, "length": 16, "iters": 2},
    # SmolLM2-135M-Instruct (the swirl_core model preset) on textphysics' real prompts (~140-200 tokens; targets
    # capped at 64), sized so that full fine-tuning stays near 6 GB a side: two models, two KL references and
    # two AdamW states are ~5 GB before activations, and TRL's step at 4 x 4 rows peaked at +9.8 GB
    "smollm2": {"model": "smollm2-135m", "batch": 1, "group": 4, "length": 32, "iters": 1,
                "format": {"max_length": 512, "max_target_tokens": 64}},
}
# --lora, on both sides: the project's SmolLM2 setting (evals/experiments.py SMOLLM2_FIELDS)
LORA = {"r": 16, "alpha": 32, "dropout": 0.0,
        "target_modules": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")}
SAMPLING = {"temperature": 0.8, "top_p": 0.95}
GRPO = {"loss_type": "dapo", "beta": 0.04, "epsilon": 0.2, "learning_rate": 1e-5, "reward_min": -10.0}


def rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def rss_now_mb() -> float:
    # The base of the peak-RSS growth: the current RSS, not the peak so far, which start-up transients
    # (imports, reading the data) can push above what a small model run ever reaches.
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def lora_settings():
    from swirl_core.lora import LoraSettings

    return LoraSettings(enabled=True, **LORA)


def param_counts(model) -> dict[str, int]:
    """Parameters by what a token costs: `body` (every token), `head` (the LM head: only the positions whose
    logits are taken, completions here) and `adapter` (LoRA). The input embedding is a lookup: no FLOPs."""
    from swirl_core.lora import adapter_parameters, core_model

    core = core_model(model)
    emb_in, head = core.get_input_embeddings().weight, core.get_output_embeddings().weight
    adapter = sum(p.numel() for _, p in adapter_parameters(model))
    total = sum(p.numel() for p in model.parameters())  # unique tensors: a tied head counts once
    head_n = head.numel()
    return {"body": total - emb_in.numel() - (0 if head is emb_in else head_n) - adapter, "head": head_n,
            "adapter": adapter}


def update_tokens(prompts, completions) -> tuple[int, int]:
    """(tokens the GRPO update's forward runs, completion tokens): a run of identical prompts (a group)
    runs its prompt once, as completion_logprobs' shared prefix does; padding is not counted."""
    from itertools import groupby

    shared = sum(len(p) for p, _ in groupby(map(tuple, prompts)))
    completion = sum(len(c) for c in completions)
    return shared + completion, completion


def sync(device: str) -> None:
    """Wait for queued device work, so that a wall-clock reading covers it (CUDA runs asynchronously)."""
    if device != "cpu":
        torch.cuda.synchronize()


def memory_now_mb(device: str) -> float:
    return torch.cuda.memory_allocated() / 2**20 if device != "cpu" else rss_now_mb()


def memory_peak_mb(device: str) -> float:
    return torch.cuda.max_memory_allocated() / 2**20 if device != "cpu" else rss_peak_mb()


def matmul_flops(device: str = "cpu", dtype: str = "float32", reps: int = 5) -> float:
    """Achievable FLOP/s of torch.matmul in `dtype` on `device` (best of `reps`): 2048^3 on a CPU, 8192^3 on
    a GPU, whose small products are launch-bound."""
    n = 2048 if device == "cpu" else 8192
    a, b = (torch.randn(n, n, device=device, dtype=getattr(torch, dtype)) for _ in range(2))
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(reps):
        sync(device)
        start = time.perf_counter()
        torch.matmul(a, b)
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def load_inputs(args):
    import swirl_envs

    rows = list(swirl_envs.make_benchmark("textphysics").transitions("train", limit=args.batch))
    return [r.state for r in rows], [r.next_state for r in rows]


# ---------------------------------------------------------------------------------------------- ours


def run_ours(args) -> dict:
    from swirl_core import models
    from swirl_core import swirl as swirl_module
    from swirl_core.models import WorldModelPair, count_parameters
    from swirl_core.swirl import SwirlConfig, SwirlTrainer

    xs, ys = load_inputs(args)
    base = memory_now_mb(args.device)
    pair = WorldModelPair.load(args.pair_dir, dtype=args.dtype).to(args.device)
    pair.generation_backend = args.generation_backend
    if args.lora:
        pair.add_adapters(lora_settings(), seed=0)
    # around the run too: on a shared machine the achievable rate drifts
    roofline = [matmul_flops(args.device, args.dtype)]
    config = SwirlConfig(batch_size=args.batch, fwm_group_size=args.group, idm_group_size=args.group,
                         fwm_max_new_tokens=args.length, idm_max_new_tokens=args.length,
                         fwm_temperature=SAMPLING["temperature"], idm_temperature=SAMPLING["temperature"],
                         fwm_top_p=SAMPLING["top_p"], idm_top_p=SAMPLING["top_p"], loss_type=GRPO["loss_type"],
                         beta=GRPO["beta"], epsilon_low=GRPO["epsilon"], epsilon_high=GRPO["epsilon"],
                         learning_rate=GRPO["learning_rate"], reward_min=GRPO["reward_min"],
                         sample_batch_size=args.batch * args.group, progress=False, device=args.device,
                         dtype=args.dtype, generation_backend=args.generation_backend,
                         gradient_checkpointing=args.gradient_checkpointing == "on")
    trainer = SwirlTrainer(config)
    trainer.make_optimizers(pair, ("fwm", "idm"), args.iters + 1)
    trainer.prepare_models(pair)
    trainer.refs, trainer.annotations = {}, None
    torch.manual_seed(0)

    # Count tokens and time in the batched generator and scorer (models.py's own references, so the
    # trainer's training forward, imported into swirl.py, is not counted as scoring).
    counts = {"gen_tokens": 0, "gen_s": 0.0, "gen_forward_tokens": 0, "score_tokens": 0, "score_s": 0.0,
              "train_tokens": 0, "ref_tokens": 0, "update_s": 0.0, "update_tokens": 0, "update_logit_tokens": 0}
    generate, score, get_backend = models.generate_ids, models.completion_logprobs, models.get_backend

    def timed_generate(model, prompts, generate=generate, **kw):
        sync(args.device)
        start = time.perf_counter()
        out = generate(model, prompts, **kw)
        sync(args.device)
        counts["gen_s"] += time.perf_counter() - start
        counts["gen_tokens"] += sum(len(o) for o in out)
        rows = [p for p in prompts for _ in range(kw.get("repeats", 1))]  # a shared prompt counts per sample
        counts["gen_forward_tokens"] += sum(len(p) + len(o) for p, o in zip(rows, out, strict=True))
        return out

    def timed_score(model, prompts, completions, pad):
        sync(args.device)
        start = time.perf_counter()
        out = score(model, prompts, completions, pad)
        sync(args.device)
        counts["score_s"] += time.perf_counter() - start
        counts["score_tokens"] += sum(len(p) + len(c) for p, c in zip(prompts, completions, strict=True))
        return out

    def counted_update_forward(model, prompts, completions, pad):  # the GRPO step's forwards
        # FLOPs are the work TRL does: its reference forward runs on the trained tokens whenever beta != 0,
        # while ours takes the fresh snapshot's log-probs from the training forward (one step per phase here).
        if torch.is_grad_enabled():
            tokens = sum(len(p) + len(c) for p, c in zip(prompts, completions, strict=True))
            counts["train_tokens"] += tokens
            counts["ref_tokens"] += tokens if GRPO["beta"] else 0
        return score(model, prompts, completions, pad)

    update = trainer._update

    def timed_update(pair, role, prompts, completions, *rest):  # the training step: forward, backward, AdamW
        sync(args.device)
        start = time.perf_counter()
        out = update(pair, role, prompts, completions, *rest)
        sync(args.device)
        counts["update_s"] += time.perf_counter() - start
        tokens, logit_tokens = update_tokens(prompts, completions)
        counts["update_tokens"] += tokens
        counts["update_logit_tokens"] += logit_tokens
        return out

    models.generate_ids, models.completion_logprobs = timed_generate, timed_score
    models.get_backend = lambda name: functools.partial(timed_generate, generate=get_backend(name))
    trainer._update = timed_update
    swirl_module.completion_logprobs = counted_update_forward
    batch = [(i, x, y) for i, (x, y) in enumerate(zip(xs, ys, strict=True))]
    times, cpu_times, per_iter, lengths = [], [], [], []
    for _ in range(args.iters + 1):
        before = dict(counts)
        start, cpu_start = time.perf_counter(), time.process_time()
        trainer._start_iteration(pair)
        m1 = trainer._phase1(pair, batch)
        m2 = trainer._phase2(pair, batch)
        sync(args.device)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
        per_iter.append({k: counts[k] - before[k] for k in counts})
        lengths.append((m1["completion_length"], m2["completion_length"]))
    roofline.append(matmul_flops(args.device, args.dtype))
    params = count_parameters(pair.fwm) - param_counts(pair.fwm)["adapter"]
    measured = per_iter[1:]
    mean = {k: statistics.mean(d[k] for d in measured) for k in counts}
    forward_tokens = mean["gen_forward_tokens"] + mean["score_tokens"] + mean["ref_tokens"]
    per_weight = 4 if args.lora else 6  # LoRA: a frozen weight needs no weight gradient
    flops = 2 * params * forward_tokens + per_weight * params * mean["train_tokens"]
    # The update's FLOPs as executed (shared prompts once): forward 2 per weight and token, backward 4 for
    # trained weights (input and weight gradients) and 2 for frozen ones (input gradients only); gradient
    # checkpointing's recomputed forward is not counted (model FLOPs, not hardware FLOPs).
    n = param_counts(pair.fwm)
    fixed = n["body"] * mean["update_tokens"] + n["head"] * mean["update_logit_tokens"]
    update_flops = per_weight * fixed + 6 * n["adapter"] * mean["update_tokens"]
    return {"time_s": statistics.median(times[1:]), "all_times_s": times,
            "mean_time_s": statistics.mean(times[1:]), "cpu_s": statistics.median(cpu_times[1:]),
            "peak_memory_delta_mb": memory_peak_mb(args.device) - base,
            "params": params, "param_counts": n, "completion_length": lengths[-1], "flops": flops,
            "update_s": mean["update_s"], "update_flops": update_flops, "roofline": roofline,
            "gen_tokens_per_s": mean["gen_tokens"] / max(mean["gen_s"], 1e-9),
            "score_tokens_per_s": mean["score_tokens"] / max(mean["score_s"], 1e-9),
            "gen_s": mean["gen_s"], "score_s": mean["score_s"]}


# ---------------------------------------------------------------------------------------------- TRL


def run_trl(args) -> dict:
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from swirl_core.models import WorldModelPair

    xs, ys = load_inputs(args)
    base = memory_now_mb(args.device)
    folder = Path(args.pair_dir)
    info = json.loads((folder / "pair.json").read_text())
    tok = AutoTokenizer.from_pretrained(folder / "fwm")
    steps = args.iters + 1
    holder: dict = {}

    def common(out: str) -> GRPOConfig:
        return GRPOConfig(output_dir=out, per_device_train_batch_size=args.batch * args.group,
                          gradient_accumulation_steps=1, num_generations=args.group,
                          max_completion_length=args.length, temperature=SAMPLING["temperature"],
                          top_p=SAMPLING["top_p"], loss_type=GRPO["loss_type"], beta=GRPO["beta"],
                          epsilon=GRPO["epsilon"], epsilon_high=GRPO["epsilon"],
                          learning_rate=GRPO["learning_rate"], lr_scheduler_type="constant", max_grad_norm=1.0,
                          max_steps=steps, logging_steps=1, save_strategy="no", report_to="none",
                          use_cpu=args.device == "cpu", bf16=args.dtype == "bfloat16",
                          model_init_kwargs={"dtype": args.dtype},
                          disable_tqdm=True, shuffle_dataset=False, use_vllm=False, seed=0, scale_rewards="group",
                          gradient_checkpointing=args.gradient_checkpointing == "on")

    def phase1_reward(prompts, completions, x, z, **_):  # log Q(z | x, y_hat) under the IDM
        return holder["pair"].score_actions(x, completions, z, batch_size=len(x)).clamp(
            min=GRPO["reward_min"]).tolist()

    def phase2_reward(prompts, completions, x, y, **_):  # log P(y | x, z_hat) under the FWM
        return holder["pair"].score_next_states(x, completions, y, batch_size=len(x)).clamp(
            min=GRPO["reward_min"]).tolist()

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times: list[float] = []
            self.cpu_times: list[float] = []

        def on_step_begin(self, *a, **k):
            sync(args.device)
            self.start, self.cpu_start = time.perf_counter(), time.process_time()

        def on_step_end(self, *a, **k):
            sync(args.device)
            self.times.append(time.perf_counter() - self.start)
            self.cpu_times.append(time.process_time() - self.cpu_start)

    with tempfile.TemporaryDirectory() as out:
        timers = (StepTimer(), StepTimer())
        peft = {"peft_config": lora_settings().peft_config()} if args.lora else {}
        fmt = {"max_length": info["max_length"], "max_target_tokens": info["max_target_tokens"],
               "keep_head": info["prompt"]["keep_head"], "layout": info["prompt"]["layout"]}
        fwm_tr = GRPOTrainer(model=str(folder / "fwm"), reward_funcs=phase1_reward, args=common(out + "/p1"),
                             train_dataset=Dataset.from_dict({"prompt": [""]}), processing_class=tok,
                             callbacks=[timers[0]], **peft)
        pair = WorldModelPair(fwm_tr.model, None, tokenizer=tok, **fmt)
        ds2 = Dataset.from_dict({"prompt": [tok.decode(pair.prompt_ids("idm", x, y))
                                            for _ in range(steps) for x, y in zip(xs, ys, strict=True)],
                                 "x": xs * steps, "y": ys * steps})
        idm_tr = GRPOTrainer(model=str(folder / "idm"), reward_funcs=phase2_reward, args=common(out + "/p2"),
                             train_dataset=ds2, processing_class=tok, callbacks=[timers[1]], **peft)
        holder["pair"] = pair = WorldModelPair(fwm_tr.model, idm_tr.model, tokenizer=tok, **fmt)
        generator = torch.Generator(device=args.device).manual_seed(0)
        zs, z_times, z_cpu = [], [], []
        for _ in range(steps):  # one batch of z per Phase I step, as our trainer samples them
            sync(args.device)
            start, cpu_start = time.perf_counter(), time.process_time()
            zs += pair.sample("idm", xs, ys, temperature=SAMPLING["temperature"], top_p=SAMPLING["top_p"],
                              max_new_tokens=args.length, batch_size=args.batch, generator=generator).texts
            sync(args.device)
            z_times.append(time.perf_counter() - start)
            z_cpu.append(time.process_time() - cpu_start)
        z_time = statistics.median(z_times[1:])
        fwm_tr.train_dataset = Dataset.from_dict({
            "prompt": [tok.decode(pair.prompt_ids("fwm", x, z)) for x, z in zip(xs * steps, zs,
                                                                                                   strict=True)],
            "x": xs * steps, "z": zs})
        start = time.perf_counter()
        fwm_tr.train()
        idm_tr.train()
        total = time.perf_counter() - start
        lengths = [[h["completions/mean_length"] for h in t.state.log_history if "completions/mean_length" in h]
                   for t in (fwm_tr, idm_tr)]
    p1, p2 = (statistics.median(t.times[1:]) for t in timers)
    cpu = sum(statistics.median(t[1:]) for t in (timers[0].cpu_times, timers[1].cpu_times, z_cpu))
    return {"time_s": p1 + p2 + z_time, "cpu_s": cpu, "phase1_step_s": p1, "phase2_step_s": p2,
            "z_sampling_s": z_time, "train_calls_total_s": total, "step_times_s": [t.times for t in timers],
            "completion_length": [ln[-1] if ln else None for ln in lengths],
            "peak_memory_delta_mb": memory_peak_mb(args.device) - base}


# ---------------------------------------------------------------------------------------------- driver


def child_command(side: str, args) -> list[str]:
    return [sys.executable, __file__, "--side", side, "--pair-dir", args.pair_dir, "--batch", str(args.batch),
            "--group", str(args.group), "--length", str(args.length), "--iters", str(args.iters),
            "--threads", str(args.threads), "--gradient-checkpointing", args.gradient_checkpointing,
            "--device", args.device, "--dtype", args.dtype, "--generation-backend", args.generation_backend,
            *(["--lora"] if args.lora else [])]


def child(side: str, args) -> dict:
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": str(args.threads)}
    done = subprocess.run(child_command(side, args), capture_output=True, text=True, env=env)
    if done.returncode:
        sys.exit(f"{side} side failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--batch", type=int, help="(x, y) pairs per step (each one group)")
    parser.add_argument("--group", type=int, help="group size of both phases")
    parser.add_argument("--length", type=int, help="max completion tokens of both phases")
    parser.add_argument("--iters", type=int, help="measured iterations (after one warm-up)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads in every process (default 1: on a shared, loaded machine more threads "
                             "than free cores make small ops spin and wait)")
    parser.add_argument("--gradient-checkpointing", choices=("on", "off"), default="on",
                        help="on both sides (default on: TRL's GRPOConfig default)")
    parser.add_argument("--lora", action="store_true",
                        help="LoRA adapters (r 16, alpha 32, every projection) on both sides, not all weights")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where both sides run")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                        help="both sides' weights and the roofline matmul")
    parser.add_argument("--generation-backend", choices=("fast", "hf"), default="fast",
                        help="ours' sampler: the project's decode loop or Hugging Face generate (TRL's)")
    parser.add_argument("--random-init", metavar="DIR",
                        help="random weights from DIR's config.json and tokenizer instead of the preset's model "
                             "(same shapes and prompts, so the same cost; for machines without its weights)")
    parser.add_argument("--side", choices=("ours", "trl"), help=argparse.SUPPRESS)
    parser.add_argument("--pair-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for key in ("batch", "group", "length", "iters"):
        if getattr(args, key) is None:
            setattr(args, key, PRESETS[args.preset][key])
    return args


def build_pair(preset: dict, random_init: str | None = None):
    """The pair both sides start from: a tiny pair built from textphysics text, a model preset's weights
    (FWM and IDM two copies of it), or random weights from `random_init`'s config and tokenizer."""
    from swirl_core.models import WorldModelPair, build_tiny_pair

    if random_init:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        config = AutoConfig.from_pretrained(random_init)
        torch.manual_seed(0)
        fwm, idm = (AutoModelForCausalLM.from_config(config) for _ in range(2))
        return WorldModelPair(fwm, idm, tokenizer=AutoTokenizer.from_pretrained(random_init),
                              **preset.get("format", {}))
    if isinstance(preset["model"], str):
        return WorldModelPair.load(preset["model"], **preset["format"])
    import swirl_envs

    texts = [t for r in swirl_envs.make_benchmark("textphysics").transitions("train", limit=64)
             for t in (r.state, r.next_state)]
    return build_tiny_pair(texts, seed=0, **preset["model"])


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    if args.side:
        print(json.dumps(run_ours(args) if args.side == "ours" else run_trl(args)))
        return

    pair = build_pair(PRESETS[args.preset], args.random_init)
    roofline_start = matmul_flops(args.device, args.dtype)
    with tempfile.TemporaryDirectory() as tmp:
        args.pair_dir = str(pair.save(Path(tmp) / "pair"))
        del pair
        gc.collect()  # the children hold their own copies: do not keep a third in this process
        ours = child("ours", args)
        trl = child("trl", args)
    # the best rate seen in the run: a lower MFU than any single, possibly contended, measurement would give
    roofline = max(roofline_start, *ours["roofline"])
    print(f"preset={args.preset} lora={'on' if args.lora else 'off'} params/model={ours['params']:,} "
          f"batch={args.batch} group={args.group} max_completion={args.length} iters={args.iters}(+1 warm-up) "
          f"torch_threads={torch.get_num_threads()} gradient_checkpointing={args.gradient_checkpointing} "
          f"device={torch.cuda.get_device_name() if args.device == 'cuda' else 'cpu'} dtype={args.dtype} "
          f"generation_backend={args.generation_backend} "
          f"weights={'random (' + args.random_init + ')' if args.random_init else 'preset'} "
          f"loadavg={os.getloadavg()[0]:.2f}")
    memory = "peak RSS" if args.device == "cpu" else "peak GPU memory"
    print(f"roofline matmul {args.dtype}: {roofline / 1e9:.1f} GFLOP/s (best of: parent at start "
          f"{roofline_start / 1e9:.1f}, ours before/after {ours['roofline'][0] / 1e9:.1f}/"
          f"{ours['roofline'][1] / 1e9:.1f})")
    print(f"ours: {ours['time_s']:.3f} s/iteration (all {[round(t, 3) for t in ours['all_times_s']]}), "
          f"{memory} +{ours['peak_memory_delta_mb']:.0f} MB, completion length {ours['completion_length']}")
    other = ours["mean_time_s"] - ours["gen_s"] - ours["score_s"] - ours["update_s"]
    print(f"ours: generation {ours['gen_tokens_per_s']:.0f} new tokens/s ({ours['gen_s']:.3f} s/iter), "
          f"scoring {ours['score_tokens_per_s']:.0f} tokens/s ({ours['score_s']:.3f} s/iter), "
          f"GRPO updates {ours['update_s']:.3f} s/iter, rest {other:.3f} s/iter (means of measured iterations)")
    print(f"trl:  {trl['time_s']:.3f} s/iteration (phase I step {trl['phase1_step_s']:.3f} + phase II step "
          f"{trl['phase2_step_s']:.3f} + z sampling {trl['z_sampling_s']:.3f}; both train() calls "
          f"{trl['train_calls_total_s']:.2f} s for {args.iters + 1} steps each), {memory} "
          f"+{trl['peak_memory_delta_mb']:.0f} MB, completion length {trl['completion_length']}")
    for name, side in (("ours", ours), ("trl", trl)):
        achieved = ours["flops"] / side["time_s"]
        print(f"{name}: {ours['flops'] / 1e9:.2f} model GFLOP/iteration -> {achieved / 1e9:.2f} GFLOP/s, "
              f"MFU {100 * achieved / roofline:.1f}% of the matmul roofline (work counted as TRL does it)")
    step_rate = ours["update_flops"] / max(ours["update_s"], 1e-9)
    print(f"ours: training steps {ours['update_flops'] / 1e9:.2f} GFLOP/iteration as executed "
          f"({'LoRA: 4' if args.lora else '6'} x weights x tokens"
          f"{' + 6 x adapter weights x tokens' if args.lora else ''}) in {ours['update_s']:.3f} s -> "
          f"{step_rate / 1e9:.2f} GFLOP/s")
    print(f"mfu_ours={step_rate / roofline:.3f} roofline_gflops={roofline / 1e9:.1f}")
    # CPU seconds: a second view that other jobs on a shared machine disturb less than wall time does
    print(f"cpu time per iteration: ours {ours['cpu_s']:.3f} s, trl {trl['cpu_s']:.3f} s, "
          f"ratio_cpu_trl_over_ours={trl['cpu_s'] / ours['cpu_s']:.2f}")
    print(f"ratio_time_trl_over_ours={trl['time_s'] / ours['time_s']:.2f} "
          f"ratio_mem_trl_over_ours={trl['peak_memory_delta_mb'] / max(ours['peak_memory_delta_mb'], 1e-9):.2f}")


if __name__ == "__main__":
    main()
