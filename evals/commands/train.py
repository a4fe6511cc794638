"""`swirl-eval train` (a registered trainer on a benchmark's train split) and `merge` (LoRA into full weights)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from swirl_envs.errors import SwirlError

from ..leaderboard import EXIT_OK
from .common import UsageError, load_benchmark, nonneg, positive, rich_console


def cmd_train(args: argparse.Namespace) -> int:
    from swirl_core.config import apply_overrides
    from swirl_core.registry import get_trainer

    trainer_class = get_trainer(args.method)
    config = apply_overrides(trainer_class.config_class(), args.set)
    if args.seed is not None:
        config = apply_overrides(config, {"seed": args.seed})
    labelled = args.method == "sft"  # the supervised baseline; every other trainer learns without actions
    bench = load_benchmark(args.bench, args.data_dir, labelled=labelled)
    bench.check_split(args.split)
    transitions = list(bench.transitions(args.split, limit=args.limit))
    if not transitions:
        raise SwirlError(f"split {args.split!r} of {args.bench!r} has no transitions to train on")
    output = Path(args.output or Path("checkpoints") / args.bench / args.method)
    kind = "action-labelled" if labelled else "state-only"
    rich_console(stderr=True).print(f"training {args.method} on {len(transitions)} {kind} transitions of "
                                f"{args.bench}/{args.split} -> {output}")
    init = args.init
    if init is not None and Path(init).exists():
        from ..checkpoints import resolve_checkpoint

        init = str(resolve_checkpoint(init))  # a training run's folder means its final pair
    if init is None and bench.modality == "image":
        from ..image_init import image_init_pair

        # Images reach a language model as codec text: a run from scratch first gets a codec and a pair
        # whose tokenizer knows its codes (and a prompt budget that holds two images).
        user_keys = {item.partition("=")[0].strip() for item in args.set}
        folder, config = image_init_pair(transitions, config, output, codec_path=args.codec,
                                         codebook_size=args.codebook_size, image_size=args.codec_image_size,
                                         user_keys=user_keys, log=rich_console(stderr=True).print)
        init = str(folder)
    elif args.codec is not None:
        raise UsageError("--codec applies to image benchmarks trained without --init")
    final = trainer_class(config).train(transitions, output, init=init)
    print(f"wrote {final}")
    return EXIT_OK


def cmd_merge(args: argparse.Namespace) -> int:
    from swirl_core.models import WorldModelPair

    from ..checkpoints import resolve_checkpoint

    source = resolve_checkpoint(args.pair)
    if not (source / "pair.json").is_file():
        raise UsageError(f"{args.pair}: not a model pair (pair.json) or a training run (final/, checkpoint-N/)")
    if Path(args.output).resolve() == source.resolve():
        raise UsageError("--output must differ from the pair it merges")
    pair = WorldModelPair.load(source)
    if not pair.has_adapters:
        raise UsageError(f"{source} has no adapters to merge (its weights are already full)")
    pair.save(args.output, merged=True)
    print(f"wrote {args.output} (adapters merged into full weights)")
    return EXIT_OK


def _trainer_fields_help() -> str:
    """The config fields `--set` takes: those every trainer shares, then what each built-in trainer adds."""
    try:
        from swirl_core.config import TrainerConfig, describe_fields
        from swirl_core.registry import BUILTIN_TRAINERS, get_trainer
    except ImportError:
        return ""
    shared = {f.name for f in dataclasses.fields(TrainerConfig)}
    lines = ["config fields (--set KEY=VALUE; defaults shown), shared by every trainer:",
             *describe_fields(TrainerConfig())]
    for name in BUILTIN_TRAINERS:
        cls = get_trainer(name).config_class
        own = [f.name for f in dataclasses.fields(cls) if f.name not in shared]
        changed = [f.name for f in dataclasses.fields(cls) if f.name in shared
                   and getattr(cls(), f.name) != getattr(TrainerConfig(), f.name)]
        if own or changed:
            lines += [f"{name} adds (or sets another default for):",
                      *describe_fields(cls(), skip=set(shared) - set(changed))]
    return "\n".join(lines) + "\n"


def register(add) -> None:
    """Add this group's subcommands; `add(name, help, examples)` returns a subparser."""
    p = add("train", "train a method (trainer registry) on a benchmark's train split",
            "  swirl-eval train --bench textphysics --method sft --limit 500 --output ckpt/sft\n"
            "  swirl-eval train --bench textphysics --method swirl --init ckpt/sft --limit 500 --set iterations=1\n"
            "  swirl-eval train --bench stabletoolbench --method sft --set model=smollm2-135m --set lora.enabled=true "
            "--set learning_rate=3e-4\n"
            "  swirl-eval train --bench stabletoolbench --method sft --set model=Qwen/Qwen2.5-0.5B-Instruct\n"
            "\nsft sees action-labelled transitions; every other method trains on state-only transitions.\n"
            "Rerunning the same command resumes from the last checkpoint in --output.\n")
    p.help_tail = _trainer_fields_help
    p.add_argument("--bench", required=True, help="benchmark name")
    p.add_argument("--method", required=True, help="trainer name (see `swirl-eval list`)")
    p.add_argument("--init", default=None, help="start from this pair folder or run (e.g. an SFT checkpoint)")
    p.add_argument("--output", default=None, help="output folder (default: checkpoints/<bench>/<method>/)")
    p.add_argument("--split", default="train", help="split to train on")
    p.add_argument("--limit", type=nonneg, default=None,
                   help="use the first N transitions (required for simulator streams)")
    p.add_argument("--seed", type=int, default=None, help="shorthand for --set seed=N")
    p.add_argument("--data-dir", default=None, help="read the benchmark from this folder")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. --set learning_rate=1e-4 --set tiny.hidden_size=64 (repeatable)")
    p.add_argument("--codec", default=None, metavar="DIR",
                   help="image benchmarks without --init: a saved image codec (python -m swirl_core.image_codec "
                        "--save DIR) instead of fitting one on the training images")
    p.add_argument("--codebook-size", type=positive, default=256, help="image benchmarks: codes of a fitted codec")
    p.add_argument("--codec-image-size", type=positive, default=64,
                   help="image benchmarks: side the codec resizes images to (patch 4: (side/4)^2 tokens per image)")
    p.set_defaults(func=cmd_train)

    p = add("merge", "export a LoRA pair with its adapters merged into full weights (plain save_pretrained folders)",
            "  swirl-eval merge ckpt/stb-sft --output ckpt/stb-sft-merged\n")
    p.add_argument("pair", help="a pair folder or a `swirl-eval train` output folder whose models have adapters")
    p.add_argument("--output", required=True, help="folder for the merged pair (written atomically)")
    p.set_defaults(func=cmd_merge)
