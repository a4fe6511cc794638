"""Experiment results over seeds: mean and standard error of every metric, gains against each method's SFT
baseline, the measured leaderboard rows (each with the command that reproduces it) and the markdown table.
evals/experiments.py produces the per-seed results this module reads."""

from __future__ import annotations

import json
import math
import shlex
import statistics
from pathlib import Path
from typing import Any

from evals.figures import fmt_gain, fmt_mean_se
from evals.methods import CONTROLS, STAGED, baseline_of
from evals.methods import EXPERIMENT_METHODS as METHODS
from swirl_envs.errors import SwirlError
from swirl_envs.fileio import dumps_json, write_atomic

EXPERIMENT_MODEL = "tiny-experiment"  # model of evals.experiments' rows; `swirl-eval check` skips other models


def row_model(summary: dict[str, Any], method: str) -> str:
    """The model column of a method's row: tiny runs keep EXPERIMENT_MODEL (their rows stay as they were), a
    pretrained preset is named with `+lora` when the method trained adapters (the default; --set
    METHOD.lora.enabled=false trains every weight), and `-experiment`, so that the study's rows never
    replace the embedded defaults' CI rows of the same base model (`smollm2-135m+lora`). A run with its own
    --tag (an ablation, a low-label variant) ends in `-<tag>`: its rows sit beside the main run's, never over them."""
    model = summary.get("model", "tiny")
    tag = "" if summary.get("tag", "main") == "main" else f"-{summary['tag']}"
    if model == "tiny":
        return EXPERIMENT_MODEL + tag
    lora = summary["overrides"].get(method, {}).get("lora.enabled",
                                                    summary.get("model_fields", {}).get("lora", {}).get("enabled"))
    return (f"{model}+lora-experiment" if lora else f"{model}-experiment") + tag


def mean_se(values: list[float]) -> tuple[float, float | None]:
    m = statistics.fmean(values)
    return m, (statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else None)


def aggregate(per_seed: dict[int, dict[str, Any]], headline: str = "fwm/bleu") -> dict[str, Any]:
    """Mean and standard error over seeds of every metric, horizon point and training time; gains vs sft.
    Each method is aggregated over the seeds that trained it (its row's `seeds`), so a method run on one
    seed sits beside methods run on three; its gain compares it with its baseline on those same seeds."""
    seeds = sorted(per_seed)
    present = list(dict.fromkeys(m for s in seeds for m in per_seed[s]["methods"]))
    known = [*METHODS, *CONTROLS, *STAGED]
    methods = [m for m in known if m in present] + [m for m in present if m not in known]
    table: dict[str, Any] = {}
    for m in methods:
        own = [s for s in seeds if m in per_seed[s]["methods"]]
        metrics = {}
        for key in per_seed[own[0]]["methods"][m]["metrics"]:
            values = [per_seed[s]["methods"][m]["metrics"].get(key) for s in own]
            if all(isinstance(v, int | float) for v in values):
                mean, se = mean_se(values)
                metrics[key] = {"mean": mean, "se": se, "values": values}
        row: dict[str, Any] = {"seeds": own, "metrics": metrics}
        curves = [per_seed[s]["methods"][m].get("horizon") for s in own]
        if all(curves):
            row["horizon"] = [dict(zip(("mean", "se"), mean_se(list(c)), strict=True)) for c in zip(*curves, strict=True)]
        times = [per_seed[s]["train_seconds"].get(m) for s in own]
        if all(t is not None for t in times):
            row["train_seconds"] = mean_se(times)[0]
        if compute := mean_compute([per_seed[s].get("compute", {}).get(m) or {} for s in own]):
            row["compute"] = compute
        table[m] = row
    for method, row in table.items():
        row["vs_sft"] = gains_over(per_seed, method, baseline_of(method), row["seeds"], headline)
    copies = [per_seed[s].get("copy", {}).get(headline) for s in seeds]  # y = x on the same test transitions
    copy = {}
    if all(c is not None for c in copies):
        mean, se = mean_se(copies)
        copy[headline] = {"mean": mean, "se": se, "values": copies}
    return {"seeds": seeds, "headline": headline, "copy": copy, "methods": table}


def gains_over(per_seed: dict[int, dict[str, Any]], method: str, baseline: str, seeds: list[int],
               headline: str) -> dict[str, Any]:
    """The method's gain over its baseline on the seeds both were run on (none when they share none)."""
    shared = [s for s in seeds if baseline in per_seed[s]["methods"]]
    gains = {}
    for key in (headline, "idm/exact_match"):
        a_values = [per_seed[s]["methods"][method]["metrics"].get(key) for s in shared]
        b_values = [per_seed[s]["methods"][baseline]["metrics"].get(key) for s in shared]
        if not shared or not all(isinstance(v, int | float) for v in a_values + b_values):
            continue
        (a, a_se), (b, b_se) = mean_se(a_values), mean_se(b_values)
        if not b:
            continue
        one_seed = a_se is None or b_se is None  # no spread to compare with
        se = None if one_seed else math.sqrt(a_se ** 2 + b_se ** 2)
        gains[key] = {"baseline": baseline, "seeds": shared, "absolute": a - b, "relative": (a - b) / b,
                      "combined_se": se, "relative_se": None if one_seed else se / abs(b),
                      "beyond_se": None if one_seed else abs(a - b) > se}
    return gains


def mean_compute(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Mean over seeds of each compute figure every seed has (steps, samples, train_seconds, load_1m)."""
    rows = [{**{k: r.get(k) for k in ("steps", "samples", "train_seconds")},
             "load_1m": (r.get("load_average") or [None])[0]} for r in runs]
    return {k: statistics.fmean(r[k] for r in rows) for k in rows[0]
            if all(isinstance(r[k], int | float) for r in rows)}



def leaderboard_rows(summary: dict[str, Any], per_seed: dict[int, dict[str, Any]], bench_version: str,
                     limit: int | None) -> list[dict[str, Any]]:
    """Measured leaderboard rows: every metric's mean over seeds, with the standard error over seeds."""
    hashes = {h for r in per_seed.values() for h in r["data_hash_test"]}
    if len(hashes) != 1:
        raise SwirlError(f"seeds of {summary['env']} were evaluated on different test data: {sorted(hashes)}")
    rows = []
    for method, row in summary["methods"].items():
        rows.append({"method": method, "model": row_model(summary, method), "seeds": row["seeds"],
                     "command": method_command(summary, method), "benchmark_version": bench_version,
                     "data_hash": next(iter(hashes)), "split": "test", "limit": limit, "ci": False,
                     "metrics": {k: {"value": round(v["mean"], 4),
                                     "stderr": None if v["se"] is None else round(v["se"], 4),
                                     "n": len(v["values"])} for k, v in row["metrics"].items()}})
    return rows


def method_command(summary: dict[str, Any], method: str) -> str:
    """The command that reproduces one method's row (its dependencies, e.g. sft for swirl, train with it)."""
    from swirl_core.config import format_value

    sets = [f"{method}.{k}={format_value(v)}"
            for k, v in sorted(summary["overrides"].get(method, {}).items())]
    model = summary.get("model", "tiny")
    seeds = summary.get("methods", {}).get(method, {}).get("seeds", summary["seeds"])  # the method's own
    return shlex.join(["python", "-m", "evals.experiments", "--env", summary["env"],
                       *(["--model", model] if model != "tiny" else []), "--seeds",
                       *map(str, seeds), "--methods", method,
                       *(["--tag", summary["tag"]] if summary["tag"] != "main" else []),
                       *[arg for k, v in summary.get("setup_overrides", {}).items()
                         for arg in ("--" + k.replace("_", "-"), str(v))],
                       *[arg for item in sets for arg in ("--set", item)]])


def write_leaderboard(path: Path, rows: list[dict[str, Any]]) -> None:
    """Replace this experiment's rows (those with the same model names) in a leaderboard; other rows, e.g.
    another model's, stay as they are."""
    from evals.leaderboard import validate_leaderboard

    board = json.loads(path.read_text())
    models = {r["model"] for r in rows} or {EXPERIMENT_MODEL}
    kept = [r for r in board["rows"] if r.get("model") not in models]
    board["rows"] = [r for r in kept if "reference" not in r] + rows + [r for r in kept if "reference" in r]
    validate_leaderboard(board, where=path)
    write_atomic(path, dumps_json(board))


def markdown_table(env: str, summary: dict[str, Any]) -> str:
    """One row per method (naming its seeds when fewer than the summary's): headline and IDM metrics, gain vs
    sft, horizon curve and the method's own compute (optimiser steps, samples drawn, training minutes, 1-minute
    load at its finish); the copy baseline
    (y = x) first, so every FWM score reads against what copying the state already scores."""
    fwm, idm = summary["headline"], "idm/exact_match"
    lines = [f"| {env} | {fwm} | gain vs sft | idm/exact_match | idm/token_f1 | horizon k=1..H | steps | samples "
             "| train min | load |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    if copy := summary.get("copy", {}).get(fwm):
        lines.append(f"| copy (y = x) | {fmt_mean_se(copy)} |  |  |  |  |  |  |  |  |")

    def figure(compute: dict[str, float], key: str, scale: float = 1.0, digits: int = 0) -> str:
        return f"{compute[key] / scale:.{digits}f}" if key in compute else ""

    for m, row in summary["methods"].items():
        g = row["vs_sft"].get(fwm)
        gain = "" if not g or m == "sft" else fmt_gain(g)
        curve = " / ".join(f"{p['mean']:.1f}" for p in row.get("horizon", []))
        c = row.get("compute", {})
        name = m if len(row.get("seeds", summary["seeds"])) == len(summary["seeds"]) else \
            f"{m} (seeds {' '.join(map(str, row['seeds']))})"
        lines.append(f"| {name} | {fmt_mean_se(row['metrics'].get(fwm))} | {gain} | "
                     f"{fmt_mean_se(row['metrics'].get(idm), 100)} | "
                     f"{fmt_mean_se(row['metrics'].get('idm/token_f1'), 100)} | {curve} | {figure(c, 'steps')} | "
                     f"{figure(c, 'samples')} | {figure(c, 'train_seconds', 60, 1)} | {figure(c, 'load_1m', 1, 1)} |")
    return "\n".join(lines)

