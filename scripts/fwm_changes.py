"""Does an FWM change the state, and are its changes right? Counted from report cards' samples.jsonl.

    python scripts/fwm_changes.py runs/experiments/smollm2-135m/textweb/main/seed0/cards/*/samples.jsonl

Whole-state BLEU mostly measures what a next state copies from the state: a prediction that repeats x
scores high while the changed part is wrong. Per file and method, this splits the FWM's predictions into
those that add no line to the state although the truth does (`fwm/adds_no_line`) and those that add some,
and prints how many there are (and the predictions' mean length against the truths'), their mean sentence
BLEU and, for the ones that change, the changed-line F1 (`fwm/delta_line_f1`) and changed-field F1
(`fwm/changed_f1`, simulators that read their states). Only text states (records with `delta_prediction`)
are counted.

With `--split-by REF` (a reference card's samples.jsonl, e.g. SFT's), the same test transitions are also split
by what the reference did: where it repeated x and where it changed the state, each method's mean sentence
BLEU and repeats are printed beside the reference's on both parts (`where_ref_repeats`,
`where_ref_changes`). A method that stops repeating x is then seen where it made its changes. Exact matches
are compared too (`exact_flips`: right in both, right only in the reference, right only in the method, and
the first few lost ones as truth and prediction): a short result, an API's token, is right or wrong whole.

With `--by-action`, each method's predictions are also grouped by the name of the action the FWM was given
(a tool call's `name`, else the action's first word), with each group's corpus BLEU of the changed lines
(`fwm/delta_bleu` on that group) and mean changed-field F1 and state match: where a method gains or loses.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from statistics import mean

from evals.metrics import adds_no_line, corpus_bleu_score

FLIP_EXAMPLES = 12  # lost exact matches printed whole


def mean_score(items: list[dict], metric: str) -> float | None:
    """Mean of a per-sample score over FWM records that have it (a simulator's field scores may be None)."""
    values = [f["scores"][metric] for f in items if f["scores"].get(metric) is not None]
    return round(mean(values), 3) if values else None


def summarise(records: list[dict]) -> dict[str, float | int | None]:
    fwm = [r["fwm"] for r in records if r.get("fwm") and "delta_prediction" in r["fwm"]]
    flags = [(f, adds_no_line(f["delta_prediction"], f["delta_truth"])) for f in fwm]
    repeats = [f for f, flag in flags if flag == 1.0]
    changes = [f for f, flag in flags if flag == 0.0]
    chars = [len(f["prediction"]) for f in fwm]
    return {"n": len(fwm), "prediction_chars": round(mean(chars), 1) if chars else None,
            "truth_chars": round(mean(len(f["truth"]) for f in fwm), 1) if fwm else None,
            "truth_changes": len(repeats) + len(changes), "repeats_x": len(repeats),
            "bleu_of_repeats": mean_score(repeats, "fwm/bleu"), "bleu_of_changes": mean_score(changes, "fwm/bleu"),
            "delta_line_f1_of_changes": mean_score(changes, "fwm/delta_line_f1"),
            "changed_f1_of_changes": mean_score(changes, "fwm/changed_f1"), "changed_f1": mean_score(fwm, "fwm/changed_f1")}


def action_name(action: str) -> str:
    try:
        call = json.loads(action)
    except json.JSONDecodeError:
        call = None
    if isinstance(call, dict) and isinstance(call.get("name"), str):
        return call["name"]
    return re.split(r"[\s(]", action.strip(), maxsplit=1)[0]


def by_action(records: list[dict]) -> dict[str, dict]:
    """Per action name: how many, corpus BLEU of the changed lines, mean changed-field F1 and state match."""
    groups: dict[str, list[dict]] = {}
    for r in records:
        if r.get("fwm") and "delta_prediction" in r["fwm"] and "input_action" in r["fwm"]:
            groups.setdefault(action_name(r["fwm"]["input_action"]), []).append(r["fwm"])
    return {name: {"n": len(fwm), "delta_bleu": round(corpus_bleu_score([f["delta_prediction"] for f in fwm],
                                                                         [f["delta_truth"] for f in fwm]), 2),
                   "changed_f1": mean_score(fwm, "fwm/changed_f1"), "state_exact": mean_score(fwm, "fwm/state_exact")}
            for name, fwm in sorted(groups.items())}


def text_records(rows: list[dict]) -> dict[int, dict]:
    return {r["index"]: r["fwm"] for r in rows if r.get("fwm") and "delta_prediction" in r["fwm"]}


def split_by_reference(records: dict[int, dict], reference: dict[int, dict]) -> dict[str, dict]:
    """Mean sentence BLEU and repeats of `records` and `reference` where the reference repeats x / changes it."""
    def repeats(record: dict) -> bool:
        return adds_no_line(record["delta_prediction"], record["delta_truth"]) == 1.0

    def bleu(side: dict[int, dict], ids: list[int]) -> float | None:
        return round(mean(side[i]["scores"]["fwm/bleu"] for i in ids), 3) if ids else None

    def exact(record: dict) -> bool:
        return record["scores"].get("fwm/exact_match") == 1.0

    shared = [i for i in reference if i in records]
    lost = [i for i in shared if exact(reference[i]) and not exact(records[i])]
    out: dict[str, dict] = {"exact_flips": {
        "kept": sum(exact(reference[i]) and exact(records[i]) for i in shared), "lost": len(lost),
        "won": sum(exact(records[i]) and not exact(reference[i]) for i in shared),
        "lost_examples": [[records[i]["truth"], records[i]["prediction"]] for i in lost[:FLIP_EXAMPLES]]}}
    for name, flag in (("where_ref_repeats", True), ("where_ref_changes", False)):
        ids = [i for i in reference if i in records and repeats(reference[i]) == flag]
        out[name] = {"n": len(ids), "ref_bleu": bleu(reference, ids), "bleu": bleu(records, ids),
                     "repeats_x": sum(repeats(records[i]) for i in ids)}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("samples", nargs="+", type=Path, help="samples.jsonl files of report cards")
    p.add_argument("--split-by", type=Path, default=None, metavar="REF",
                   help="a reference card's samples.jsonl: also split the transitions by whether it repeated x")
    p.add_argument("--by-action", action="store_true",
                   help="also group each method's predictions by the name of the action the FWM was given")
    args = p.parse_args(argv)
    for path in [*args.samples, *([args.split_by] if args.split_by else [])]:
        if not path.is_file():
            print(f"error: {path}: no such file", file=sys.stderr)
            return 2
    read = lambda path: [json.loads(line) for line in path.read_text().splitlines() if line.strip()]  # noqa: E731
    reference = text_records(read(args.split_by)) if args.split_by else None
    for path in args.samples:
        rows = read(path)
        for method in dict.fromkeys(r["method"] for r in rows):
            mine = [r for r in rows if r["method"] == method]
            extra = split_by_reference(text_records(mine), reference) if reference is not None else {}
            if args.by_action:
                extra["by_action"] = by_action(mine)
            print(json.dumps({"file": str(path), "method": method, **summarise(mine), **extra}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
