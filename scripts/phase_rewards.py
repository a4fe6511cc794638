"""How much did a SWIRL run's rewards say? Per phase, from the run folder's metrics.jsonl and trainer state.

    python scripts/phase_rewards.py runs/experiments/smollm2-135m/toolsim/l30/seed0/swirl-idm2fwm

A GRPO group whose rewards span less than `flat_spread` (0.01 nats by default) gives its samples near-zero
advantages, so the share of flat groups says how much of a phase's updates was signal. Per phase this
prints the steps, the groups they scored (steps x the run's batch_size), how many were flat, the mean
reward, the mean and widest of the steps' mean within-group spread, the mean KL to the reference, the
mean completion length and the mean within-group slope of the reward on completion length (reward units
per token; negative: the judge prefers shorter completions; logged by runs since session 18, else None).
These are the figures docs/results.md quotes as "N of 64 groups flat".
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from statistics import fmean


def trainer_config(run: Path) -> dict:
    """The run's trainer config from its final state, else from its latest checkpoint."""
    states = [run / "final" / "trainer_state.json", *sorted(run.glob("checkpoint-*/trainer_state.json"))[::-1]]
    for state in states:
        if state.is_file():
            return json.loads(state.read_text())["config"]
    raise FileNotFoundError(f"{run}: no final/ or checkpoint-*/ trainer_state.json")


def phase_figures(rows: list[dict], batch_size: int) -> dict[str, dict]:
    phases: dict[str, list[dict]] = {}
    for row in rows:
        if "phase" in row and "groups_flat" in row:
            phases.setdefault(row["phase"], []).append(row)

    def mean_of(items: list[dict], key: str) -> float | None:
        values = [r[key] for r in items if isinstance(r.get(key), int | float)]
        return round(fmean(values), 4) if values else None

    return {phase: {"steps": len(items), "groups": len(items) * batch_size,
                    "groups_flat": sum(r["groups_flat"] for r in items),
                    "reward_mean": mean_of(items, "reward/mean"),
                    "group_spread_mean": mean_of(items, "reward/group_spread"),
                    "group_spread_widest_step": round(max(r["reward/group_spread"] for r in items), 4),
                    "kl_mean": mean_of(items, "kl"), "completion_length": mean_of(items, "completion_length"),
                    "length_slope_mean": mean_of(items, "reward/length_slope")}
            for phase, items in phases.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="SWIRL run folders (each with metrics.jsonl)")
    args = p.parse_args(argv)
    configs = []
    for run in args.runs:  # every folder checked before any is read
        if not (run / "metrics.jsonl").is_file():
            print(f"error: {run}: no metrics.jsonl", file=sys.stderr)
            return 2
        try:
            configs.append(trainer_config(run))
        except FileNotFoundError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    for run, config in zip(args.runs, configs, strict=True):
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
        print(json.dumps({"run": str(run), "flat_spread": config.get("flat_spread"),
                          **phase_figures(rows, config["batch_size"])}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
