"""How the bundled StableToolBench splits differ, and how a run's predictions follow the train split.

    python scripts/stb_shift.py                                             # the splits alone
    python scripts/stb_shift.py runs/leaderboard/stabletoolbench/samples.jsonl   # and a run's predictions

Per split: where the transitions come from (ToolBench's real RapidAPI answers or StableToolBench's
GPT-simulated server), how many responses are JSON with a non-empty "error" field, how many are not JSON.
With a samples.jsonl of `swirl-eval run`: the same counts over each method's FWM predictions, and the
functions its IDM names against the true ones.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from swirl_envs.errors import SwirlError
from swirl_envs.registry import make_benchmark
from swirl_envs.stabletoolbench import parse_call


def kind(response: str) -> str:
    try:
        value = json.loads(response)
    except ValueError:
        return "not JSON"
    return "error" if isinstance(value, dict) and value.get("error") else "JSON, no error"


def function(call: str) -> str:
    try:
        return parse_call(call)[0]
    except SwirlError:
        return "(unparseable)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("samples", nargs="?", type=Path, help="samples.jsonl of `swirl-eval run --bench stabletoolbench`")
    args = p.parse_args(argv)
    if args.samples is not None and not args.samples.is_file():
        print(f"error: {args.samples}: no such file", file=sys.stderr)
        return 2
    bench = make_benchmark("stabletoolbench", labelled=True)
    for split in bench.splits:
        items = list(bench.transitions(split))
        source = Counter("GPT-simulated" if t.meta["source_file"].startswith("data_example/") else "real"
                         for t in items)
        print(f"{split}: {len(items)} transitions; source {dict(source)}; "
              f"responses {dict(Counter(kind(t.next_state) for t in items))}")
    if args.samples is None:
        return 0
    rows = [json.loads(line) for line in args.samples.read_text().splitlines() if line.strip()]
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        print(f"{method}: FWM predictions {dict(Counter(kind(r['fwm']['prediction']) for r in mine))}")
        named = Counter(function(r["idm"]["prediction"]) for r in mine)
        right = sum(function(r["idm"]["prediction"]) == function(r["idm"]["truth"]) for r in mine)
        print(f"{method}: IDM right function {right}/{len(mine)}; names most given {named.most_common(3)}; "
              f"true functions {len(Counter(function(r['idm']['truth']) for r in mine))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
