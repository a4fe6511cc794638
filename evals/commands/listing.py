"""`swirl-eval list`: benchmarks (with gym ids), model presets, trainers and installed plugins."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..leaderboard import EXIT_OK
from .common import rich_console


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

    console = rich_console()
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


def register(add) -> None:
    """Add this group's subcommands; `add(name, help, examples)` returns a subparser."""
    p = add("list", "list benchmarks (with gym ids), trainers and installed plugins",
            "  swirl-eval list\n  swirl-eval list --json | jq '.plugins'\n")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_list)
