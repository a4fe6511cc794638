"""Identifiability ceilings: how often a transition's next state is reached by exactly one action.

Several actions can give the same next state (a push of a block pinned at a wall, a flawed tool call
whose error does not depend on its other arguments), and no inverse dynamics model can tell which of
them was taken. So the IDM's achievable score is `idm/action_valid`, and exact match can reach at most
the share of transitions whose y only one action reaches. Each simulator enumerates the actions that
can be taken from a state (`candidate_actions`) and runs every one of them from the same world:

    python -m swirl_envs.sims.ceiling --bench toolsim --split test --limit 200
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from ..registry import make_benchmark
from ..transition import Transition
from .base import Simulator


def reaching(sim: Simulator, t: Transition) -> list[str]:
    """The candidate actions from `t.state` that lead to `t.next_state`."""
    actions = sim.candidate_actions(t)
    return [a for a, y in zip(actions, sim.outcomes(t, actions), strict=True) if y == t.next_state]


def ceiling(sim: Simulator, split: str = "test", limit: int | None = 200) -> dict[str, Any]:
    """n; `unique`: the share of transitions whose y exactly one action reaches; `mean_reaching`: the mean
    number of actions that reach y; `true_not_enumerated`: transitions whose true action is not among the
    candidates (counted as reaching y besides them); `mean_candidates`."""
    if not sim.labelled:
        raise ValueError("the ceiling needs the true actions: open the simulator with labelled=True")
    started, n, unique, total, missing, candidates = time.perf_counter(), 0, 0, 0, 0, 0
    for t in sim.transitions(split, limit=limit):
        actions = sim.candidate_actions(t)
        extra = t.action not in actions
        reach = sum(y == t.next_state for y in sim.outcomes(t, actions)) + extra
        n, unique, total = n + 1, unique + (reach == 1), total + reach
        missing, candidates = missing + extra, candidates + len(actions)
    return {"bench": sim.name, "difficulty": sim.difficulty, "split": split, "limit": limit, "n": n,
            "unique": unique / n, "mean_reaching": total / n, "true_not_enumerated": missing,
            "mean_candidates": candidates / n, "seconds": round(time.perf_counter() - started, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m swirl_envs.sims.ceiling", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bench", required=True, choices=("textphysics", "textweb", "toolsim"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=200, help="transitions (0: the whole split)")
    parser.add_argument("--difficulty", default="medium")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args(argv)
    sim = make_benchmark(args.bench, labelled=True, difficulty=args.difficulty)
    result = ceiling(sim, args.split, args.limit or None)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['bench']} ({result['difficulty']}, {result['split']}, n={result['n']}): "
              f"y reached by exactly one action {result['unique']:.1%}; actions reaching y {result['mean_reaching']:.2f} "
              f"on average of {result['mean_candidates']:.0f} candidates; true action not enumerated "
              f"{result['true_not_enumerated']} ({result['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
