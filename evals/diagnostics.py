"""What a report card shows besides its metrics: whether a method's outputs are degenerate, and examples.

A model that prints one string for every input, or exactly what another method prints, can still move a
metric (token overlap rewards the right punctuation); the card says so instead of leaving it to a reader
of samples.jsonl. Per method and model (fwm, idm):

* `distinct`: how many different predictions it made over the n scored transitions;
* `most_common`: how many predictions equal its most frequent one;
* `same_as`: per other method, on how many of the same transitions the two predictions are equal.

A method is flagged when at least half of its predictions are one string, or at least half equal another
method's. `examples` holds the first few scored transitions of a text benchmark: the input's last lines,
the action, the true next state and each method's FWM and IDM predictions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from swirl_envs.transition import Transition

ROLES = ("fwm", "idm")
FLAG_SHARE = 0.5
CONTEXT_LINES = 6  # lines of X shown per example
CELL_CHARS = 600  # longer texts are cut (the full ones are in samples.jsonl)


def _predictions(records: Sequence[Mapping[str, Any]], role: str) -> dict[int, str]:
    return {r["index"]: r[role]["prediction"] for r in records if r.get(role)}


def method_diagnostics(records: Sequence[Mapping[str, Any]], methods: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per method: {fwm: {n, distinct, most_common, same_as}, idm: {...}, flags: [..]} (see the module doc)."""
    by_method = {m: [r for r in records if r["method"] == m] for m in methods}
    predictions = {(m, role): _predictions(by_method[m], role) for m in methods for role in ROLES}
    out: dict[str, dict[str, Any]] = {}
    for method in methods:
        entry: dict[str, Any] = {"flags": []}
        for role in ROLES:
            mine = predictions[method, role]
            if not mine:
                continue
            counts = Counter(mine.values())
            top_text, top = counts.most_common(1)[0]
            same_as = {}
            for other in methods:
                theirs = predictions[other, role]
                if other != method and theirs:
                    same_as[other] = sum(1 for i, text in mine.items() if theirs.get(i) == text)
            n = len(mine)
            entry[role] = {"n": n, "distinct": len(counts), "most_common": top, "same_as": same_as}
            if top > 1 and top >= FLAG_SHARE * n:
                entry["flags"].append(f"{role}: {top}/{n} predictions are the same text ({_short(top_text, 60)!r})")
            for other, equal in same_as.items():
                if n > 1 and equal >= FLAG_SHARE * n:
                    entry["flags"].append(f"{role}: {equal}/{n} predictions identical to {other}'s")
        out[method] = entry
    return out


def _short(text: Any, limit: int = CELL_CHARS) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def last_lines(text: Any, lines: int = CONTEXT_LINES) -> str:
    kept = str(text).splitlines()[-lines:]
    return "\n".join(_short(line, 240) for line in kept)


def text_examples(data: Sequence[Transition], records: Sequence[Mapping[str, Any]], methods: Sequence[str],
                  rows: int) -> list[dict[str, Any]]:
    """The first `rows` scored transitions with the input's last lines, truth and every method's predictions."""
    by_key = {(r["method"], r["index"]): r for r in records}
    examples = []
    for index, t in enumerate(data):
        if len(examples) >= rows:
            break
        if t.action is None or not isinstance(t.state, str):
            continue
        predictions = {}
        for method in methods:
            record = by_key.get((method, index)) or {}
            predictions[method] = {role: _short((record.get(role) or {}).get("prediction")) for role in ROLES}
        examples.append({"index": index, "episode_id": t.episode_id, "step": t.step,
                         "context": last_lines(t.state), "action": _short(t.action),
                         "next_state": _short(t.next_state), "predictions": predictions})
    return examples
