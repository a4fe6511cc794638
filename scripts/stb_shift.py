"""How the bundled StableToolBench splits differ, and how a run's predictions follow the train split.

    python scripts/stb_shift.py                                             # the splits alone
    python scripts/stb_shift.py runs/leaderboard/stabletoolbench/samples.jsonl   # and a run's predictions

Per split: where the transitions come from (ToolBench's real RapidAPI answers or StableToolBench's
GPT-simulated server), how many responses are JSON with a non-empty "error" field, how many are not JSON,
how many functions are called and how many of a split's calls go to functions the train split calls.
With a samples.jsonl of `swirl-eval run`: the same counts over each method's FWM predictions, and the
functions its IDM names against the true ones.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from evals.metrics import parse_json, parse_tool_call
from swirl_envs.registry import make_benchmark


def kind(response: str) -> str:
    """As the card's metrics read it (`fwm/json_valid`'s parser)."""
    ok, value = parse_json(response)
    if not ok:
        return "not JSON"
    return "error" if isinstance(value, dict) and value.get("error") else "JSON, no error"


def function(call: str) -> str | None:
    """The tool name as `idm/name_exact` reads it, None when the text is no tool call."""
    parsed = parse_tool_call(call)
    return parsed.name if parsed is not None else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("samples", nargs="?", type=Path, help="samples.jsonl of `swirl-eval run --bench stabletoolbench`")
    args = p.parse_args(argv)
    if args.samples is not None and not args.samples.is_file():
        print(f"error: {args.samples}: no such file", file=sys.stderr)
        return 2
    bench = make_benchmark("stabletoolbench", labelled=True)
    trained_functions: set[str] = set()
    for split in bench.splits:
        items = list(bench.transitions(split))
        source = Counter("GPT-simulated" if t.meta["source_file"].startswith("data_example/") else "real"
                         for t in items)
        functions = Counter(function(t.action) for t in items)
        if split == "train":
            trained_functions, seen = set(functions), ""
        else:
            seen = f", {sum(n for f, n in functions.items() if f in trained_functions)} of them train functions"
        print(f"{split}: {len(items)} transitions; source {dict(source)}; "
              f"responses {dict(Counter(kind(t.next_state) for t in items))}; "
              f"{len(functions)} functions called (most: {functions.most_common(1)[0][1]} calls){seen}")
    if args.samples is None:
        return 0
    rows = [json.loads(line) for line in args.samples.read_text().splitlines() if line.strip()]
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        print(f"{method}: FWM predictions {dict(Counter(kind(r['fwm']['prediction']) for r in mine))}")
        named = Counter(function(r["idm"]["prediction"]) or "(no tool call)" for r in mine)
        names = [(function(r["idm"]["prediction"]), function(r["idm"]["truth"])) for r in mine]
        right = Counter(truth in trained_functions for predicted, truth in names
                        if predicted is not None and predicted == truth)
        seen = sum(truth in trained_functions for _, truth in names)
        print(f"{method}: IDM right function {sum(right.values())}/{len(mine)} ({right[True]}/{seen} where the "
              f"train split calls the true function, {right[False]}/{len(mine) - seen} where it does not); "
              f"names most given {named.most_common(3)}; true functions {len({truth for _, truth in names})}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
