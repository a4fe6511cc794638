"""How right were bootstrap's pseudo-labels? Its IDM's guesses for U against U's true actions.

    python scripts/pseudo_labels.py runs/experiments/smollm2-135m/toolsim/l30/seed0

Bootstrap labels every state-only transition of U with its IDM's greedy action and trains the FWM on them
(`bootstrap/pseudo_labels.json` in the seed's folder). The experiment rebuilds the seed's split from its
`results.json` and the setup in `../summary.json`, so U's true actions are known; this prints how many labels
are valid (executed from x in the simulator they give y; simulators only), how many name the right function,
and, per true function, the functions the labels named. An FWM trained on a label that names another function
learns to answer one call with another's response.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

from evals.experiments import make_split, model_setups
from evals.metrics import parse_tool_call
from swirl_envs.registry import make_benchmark


def function_of(action: str) -> str:
    call = parse_tool_call(action)
    return call.name if call is not None else "(not a call)"


def label_figures(truths: list, labels: list[str], execute) -> dict:
    confusion: dict[str, Counter] = defaultdict(Counter)
    for t, label in zip(truths, labels, strict=True):
        confusion[function_of(t.action)][function_of(label)] += 1
    named = sum(n for truth, row in confusion.items() for label, n in row.items() if label == truth)
    found = {"labels": len(labels), "name_right": round(named / len(labels), 4),
             "by_true_function": {truth: dict(row.most_common()) for truth, row in sorted(confusion.items())}}
    if execute is not None:
        found["valid"] = round(sum(execute(t, z) == t.next_state for t, z in zip(truths, labels, strict=True))
                               / len(labels), 4)
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("seed_folder", type=Path, help="an experiment's seed folder (results.json, bootstrap/)")
    args = p.parse_args(argv)
    labels_file = args.seed_folder / "bootstrap" / "pseudo_labels.json"
    for needed in (args.seed_folder / "results.json", args.seed_folder.parent / "summary.json", labels_file):
        if not needed.is_file():
            print(f"error: {needed}: not found (run bootstrap on this seed first)", file=sys.stderr)
            return 2
    results = json.loads((args.seed_folder / "results.json").read_text())
    overrides = json.loads((args.seed_folder.parent / "summary.json").read_text()).get("setup_overrides", {})
    setup = dataclasses.replace(model_setups(results["model"])[results["env"]], **overrides)
    labels = json.loads(labels_file.read_text())["actions"]
    truths = make_split(setup, results["seed"]).oracle  # U in order, with its actions
    if len(truths) != len(labels):
        print(f"error: {labels_file}: {len(labels)} labels for the split's {len(truths)} U transitions",
              file=sys.stderr)
        return 2
    bench = make_benchmark(setup.bench, labelled=True, **setup.bench_options)
    found = label_figures(truths, labels, getattr(bench, "execute", None))
    print(json.dumps({"seed_folder": str(args.seed_folder), **found}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
