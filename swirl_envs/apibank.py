"""API-Bank (Li et al., 2023): multi-turn tool-use dialogues with the recorded results of runnable APIs.

Formats read below the data folder (upstream's `api-bank/` layout; default: the bundled copy in
`swirl_envs/data/apibank/`, see its NOTICE):

* `lv1-lv2-samples/level-1-given-desc/*.jsonl` (level 1) and `lv1-lv2-samples/level-2-toolsearcher/*.jsonl`
  (level 2): one dialogue per file, one turn per line: `{"role": "User"|"AI", "text": ...}` or
  `{"role": "API", "api_name", "param_dict": {name: string}, "result": {"api_name"?, "input", "output",
  "exception"}}`. Problems are located by file and line number (the record, from 1).
* `test-data/level-3.json` (level 3): a JSON array of tasks `{"requirement", "response", "apis": [{"api_name",
  "input", "output": {"api_name"?, "input", "output", "exception"}}]}`. Records are array indices.

A transition is one API call. X = the dialogue up to the call: every User and AI turn and every earlier call
with its result (level 3: the requirement and the earlier calls; its `response` is the final answer, so it is
never shown). AI turns stay in X: they are what the user saw, and API-Bank's own evaluation shows the model
the dialogue up to the call. API descriptions are in X where the level gives them in the data: level 2 and 3
find them with `ToolSearcher`, whose results are in the history; level 1's descriptions live in upstream's API
classes, which are not part of the data. Z = the call, `{"name": ..., "arguments": {...}}` with sorted keys
(StableToolBench's shape, so the tool-call metrics apply); the arguments are `param_dict` (levels 1-2) or
`input` (level 3), as the caller wrote them, not the API's type-converted `result.input`. Y = the result's
`output` as JSON text, or `{"exception": ..., "output": ...}` when the call failed (`exception` set).

Consistency checks that find damage a JSON parser cannot see: the call's argument names must equal those of
the result's `input` (the API echoes them; a level-1/2 call without arguments echoes null), and a result's
`api_name`, where present, must be the call's. At a problem the rest of that dialogue is dropped (later calls
would show a history without the damaged turn); the calls before it are kept. An empty dialogue file (one
upstream) yields nothing and is counted in `skipped`, not as a problem: a JSON Lines file with no lines is
well formed.

Splits never share a dialogue: a dialogue's split is decided by a salted sha256 of its opening request (the
first User turn, or level 3's requirement, whitespace-normalised; the file path where a dialogue opens
otherwise), so dialogues opening with the same request (several upstream files do) land together:
bucket = hash % 100; < 10 validation, < 30 test, else train. Identical transitions are kept once.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .benchmark import RecordedBenchmark, salted_split, transition_key
from .errors import DataError
from .transition import Transition

SPLITS = ("train", "validation", "test")
SPLIT_SALT = "swirl-apibank-1"
DIALOGUE_FOLDERS = {"level-1-given-desc": 1, "level-2-toolsearcher": 2}
LEVEL3_FILE = "test-data/level-3.json"
ROLES = ("User", "AI", "API")


def bundled_data_dir() -> Path:
    return Path(__file__).resolve().parent / "data" / "apibank"


def normalize_text(text: str) -> str:
    return " ".join(text.split())


def split_of(identity: str) -> str:
    return salted_split(SPLIT_SALT, identity)


def format_call(name: str, arguments: Mapping[str, Any]) -> str:
    """Z: `{"name": ..., "arguments": {...}}`, name first and argument keys sorted, Unicode unescaped."""
    args = json.dumps(dict(arguments), sort_keys=True, ensure_ascii=False)
    return f'{{"name": {json.dumps(name, ensure_ascii=False)}, "arguments": {args}}}'


def render_result(output: Any, exception: str | None) -> str:
    """Y: the output as JSON text; a failed call shows its exception too (output is then usually null)."""
    if exception is None:
        return json.dumps(output, ensure_ascii=False)
    return json.dumps({"exception": exception, "output": output}, ensure_ascii=False)


def render_state(opening: list[str], history: Iterable[tuple[str, ...]]) -> str:
    """X: the opening lines, then each turn: `User: ...`, `AI: ...`, or `Call i: <Z>` / `Result i: <Y>`."""
    lines = list(opening)
    calls = 0
    for turn in history:
        if turn[0] == "call":
            calls += 1
            lines += [f"Call {calls}: {turn[2]}", f"Result {calls}: {turn[3]}"]
        else:
            lines.append(f"{turn[0]}: {' '.join(turn[1].split())}")
    return "\n".join(lines)


@dataclass
class LoadReport:
    data_dir: str = ""
    files: Counter = field(default_factory=Counter)  # level -> files read
    problems: list[str] = field(default_factory=list)  # located, one line each
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    duplicates: int = 0
    calls: Counter = field(default_factory=Counter)  # level -> calls read
    transitions: Counter = field(default_factory=Counter)  # split -> count
    dialogues: Counter = field(default_factory=Counter)  # split -> dialogues with transitions

    def as_dict(self) -> dict[str, Any]:
        return {"data_dir": self.data_dir, "files": dict(self.files), "problems": list(self.problems),
                "skipped": dict(self.skipped), "duplicates": self.duplicates, "calls": dict(self.calls),
                "transitions": dict(self.transitions), "dialogues": dict(self.dialogues)}


@dataclass
class _Dialogue:
    rel: str
    episode_id: str
    level: int
    identity: str  # what decides the split
    opening: list[str]  # X's first lines
    turns: list[tuple[str, ...]] = field(default_factory=list)  # ("User"|"AI", text) or ("call", name, Z, Y)
    records: list[str] = field(default_factory=list)  # where each turn is in its file


def _kind(value: Any) -> str:
    return "null" if value is None else "an object" if isinstance(value, Mapping) else type(value).__name__


def _expect(value: Any, kinds: tuple[type, ...], what: str, rel: str, record: Any, field: str) -> Any:
    if not isinstance(value, kinds):
        raise DataError(f"expected {what}, got {_kind(value)}", path=rel, record=record, field=field)
    return value


def _same_value(argument: Any, echoed: Any) -> bool:
    """A level-3 argument as the API echoed it: equal, or a number the API parsed from its text."""
    if isinstance(argument, bool) or isinstance(echoed, bool):  # True == 1 in Python, not in JSON
        return argument is echoed
    if isinstance(argument, str) and isinstance(echoed, int | float):
        try:
            return float(argument) == echoed
        except ValueError:
            return False
    if argument != echoed:
        return False
    return type(argument) is type(echoed) or all(isinstance(v, int | float) for v in (argument, echoed))


def _result(result: Any, name: str, arguments: Mapping[str, Any], rel: str, record: Any, prefix: str,
            null_input: bool) -> str:
    """Check an API's recorded result against its call and render it as Y. Levels 1-2 (`null_input`) echo
    their string arguments converted by rules of each API (numbers, Python list literals), so only the names
    are compared there; level 3's echo must hold the same values."""
    _expect(result, (dict,), "an object", rel, record, prefix)
    for key in ("input", "output", "exception"):
        if key not in result:
            raise DataError("missing", path=rel, record=record, field=f"{prefix}.{key}")
    echoed = result["input"]
    if echoed is None and null_input:
        echoed = {}
    _expect(echoed, (dict,), "an object" + (" or null" if null_input else ""), rel, record, f"{prefix}.input")
    if set(echoed) != set(arguments):
        raise DataError(f"argument names {sorted(arguments)} differ from the echoed input's {sorted(echoed)}",
                        path=rel, record=record, field=f"{prefix}.input")
    for key, value in arguments.items() if not null_input else ():
        if not _same_value(value, echoed[key]):
            raise DataError(f"argument {key!r} is {value!r} in the call but {echoed[key]!r} in the echoed input",
                            path=rel, record=record, field=f"{prefix}.input.{key}")
    if "api_name" in result and result["api_name"] != name:
        raise DataError(f"the result is for {result['api_name']!r}, the call is to {name!r}", path=rel,
                        record=record, field=f"{prefix}.api_name")
    exception = _expect(result["exception"], (str, type(None)), "null or a string", rel, record,
                        f"{prefix}.exception")
    return render_result(result["output"], exception)


class _Loader:
    def __init__(self, root: Path, strict: bool):
        self.root, self.strict = root, strict
        self.report = LoadReport(data_dir=str(root))

    def problem(self, reason: str, error: DataError) -> None:
        if self.strict:
            raise error
        self.report.skipped[reason] += 1
        self.report.problems.append(str(error))

    def dialogues(self) -> Iterator[_Dialogue]:
        if not self.root.is_dir():
            raise DataError("data folder does not exist or is not a folder", path=self.root)
        found = False
        for folder, level in DIALOGUE_FOLDERS.items():
            for path in sorted(self.root.glob(f"**/{folder}/*.jsonl")):
                found = True
                dialogue = self._jsonl(path, path.relative_to(self.root).as_posix(), level)
                if dialogue is not None:
                    yield dialogue
        level3 = sorted(self.root.glob(f"**/{LEVEL3_FILE}"))
        for path in level3:
            yield from self._level3(path, path.relative_to(self.root).as_posix())
        if not found and not level3:
            raise DataError(f"no API-Bank data below it (looked for {'/'.join(DIALOGUE_FOLDERS)} *.jsonl and "
                            f"{LEVEL3_FILE})", path=self.root)

    def _jsonl(self, path: Path, rel: str, level: int) -> _Dialogue | None:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            self.problem("unreadable file", DataError(f"cannot read: {exc}", path=rel))
            return None
        self.report.files[f"level-{level}"] += 1
        dialogue = _Dialogue(rel, rel, level, rel, ["Dialogue:"])
        for number, line in enumerate(raw.split(b"\n"), 1):
            if not line.strip():
                continue
            try:
                self._turn(dialogue, line, number)
            except DataError as exc:
                self.problem("bad turn (rest of the dialogue dropped)", exc)
                break
        if not dialogue.turns:
            self.report.skipped["empty dialogue file" if not raw.strip() else "dialogue without turns"] += 1
            return None
        return dialogue

    def _turn(self, dialogue: _Dialogue, line: bytes, number: int) -> None:
        rel = dialogue.rel
        try:
            turn = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise DataError(f"not UTF-8 ({exc.reason} at byte {exc.start})", path=rel, record=number) from None
        except ValueError as exc:
            raise DataError(f"not valid JSON ({exc})", path=rel, record=number) from None
        _expect(turn, (dict,), "a turn object", rel, number, "role")
        role = turn.get("role")
        if role not in ROLES:
            raise DataError(f"expected one of {', '.join(ROLES)}, got {role!r}", path=rel, record=number,
                            field="role")
        if role != "API":
            text = _expect(turn.get("text"), (str,), "a string", rel, number, "text")
            if not dialogue.turns and role == "User":
                dialogue.identity = text
            dialogue.turns.append((role, text))
            dialogue.records.append(str(number))
            return
        name = _expect(turn.get("api_name"), (str,), "a string", rel, number, "api_name")
        if not name:
            raise DataError("expected a non-empty API name", path=rel, record=number, field="api_name")
        arguments = _expect(turn.get("param_dict"), (dict,), "an object", rel, number, "param_dict")
        for key, value in arguments.items():
            # Upstream's calls are parsed from model text, so every value is a string; another type is damage.
            _expect(value, (str,), "a string", rel, number, f"param_dict.{key}")
        result = _result(turn.get("result"), name, arguments, rel, number, "result", null_input=True)
        self.report.calls[f"level-{dialogue.level}"] += 1
        dialogue.turns.append(("call", name, format_call(name, arguments), result))
        dialogue.records.append(str(number))

    def _level3(self, path: Path, rel: str) -> Iterator[_Dialogue]:
        try:
            tasks = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            self.problem("unreadable file", DataError(f"cannot read: {exc}", path=rel))
            return
        except ValueError as exc:
            self.problem("invalid JSON", DataError(f"not valid JSON ({exc})", path=rel))
            return
        if not isinstance(tasks, list):
            self.problem("bad level-3 file", DataError(f"expected a list of tasks, got {_kind(tasks)}", path=rel))
            return
        self.report.files["level-3"] += 1
        for index, task in enumerate(tasks):
            try:
                _expect(task, (dict,), "a task object", rel, index, "requirement")
                requirement = _expect(task.get("requirement"), (str,), "a string", rel, index, "requirement")
                apis = _expect(task.get("apis"), (list,), "a list of calls", rel, index, "apis")
            except DataError as exc:
                self.problem("bad level-3 task", exc)
                continue
            dialogue = _Dialogue(rel, f"{rel}:{index}", 3, requirement,
                                 [f"Requirement: {normalize_text(requirement)}"])
            for j, api in enumerate(apis):
                try:
                    dialogue.turns.append(self._level3_call(api, rel, index, f"apis[{j}]"))
                except DataError as exc:
                    self.problem("bad level-3 call (rest of the task dropped)", exc)
                    break
                self.report.calls["level-3"] += 1
                dialogue.records.append(f"{index}.apis[{j}]")
            if dialogue.turns:
                yield dialogue
            else:
                self.report.skipped["level-3 task without calls"] += 1

    def _level3_call(self, api: Any, rel: str, index: int, where: str) -> tuple[str, ...]:
        _expect(api, (dict,), "a call object", rel, index, where)
        name = _expect(api.get("api_name"), (str,), "a string", rel, index, f"{where}.api_name")
        if not name:
            raise DataError("expected a non-empty API name", path=rel, record=index, field=f"{where}.api_name")
        arguments = _expect(api.get("input"), (dict,), "an object", rel, index, f"{where}.input")
        result = _result(api.get("output"), name, arguments, rel, index, f"{where}.output", null_input=False)
        return ("call", name, format_call(name, arguments), result)


@dataclass
class LoadedData:
    transitions: dict[str, list[Transition]]
    report: LoadReport


def load_data(root: str | Path, *, strict: bool = False) -> LoadedData:
    """Every dialogue under `root` as deduplicated transitions per split, with the loader's report."""
    loader = _Loader(Path(root), strict)
    report = loader.report
    out: dict[str, list[Transition]] = {s: [] for s in SPLITS}
    seen: set[bytes] = set()
    for dialogue in loader.dialogues():
        split = split_of(dialogue.identity)
        if not any(turn[0] == "call" for turn in dialogue.turns):
            report.skipped["dialogue without API calls"] += 1  # two upstream dialogues only talk
            continue
        episode: list[Transition] = []
        for position, turn in enumerate(dialogue.turns):
            if turn[0] != "call":
                continue
            _, name, action, result = turn
            state = render_state(dialogue.opening, dialogue.turns[:position])
            transition = Transition(
                state=state, next_state=result, action=action, episode_id=dialogue.episode_id, step=len(episode),
                meta={"level": dialogue.level, "source_file": dialogue.rel, "record": dialogue.records[position],
                      "turn": position, "api_name": name})
            key = transition_key(transition)
            if key in seen:
                report.duplicates += 1
                continue
            seen.add(key)
            episode.append(transition)
        if episode:
            out[split] += episode
            report.dialogues[split] += 1
    for split in SPLITS:
        report.transitions[split] = len(out[split])
    return LoadedData(out, report)


class APIBank(RecordedBenchmark):
    """API-Bank dialogues (levels 1-3) as (dialogue and API results so far, API call, API result).

    `data_dir`: a folder holding upstream's `lv1-lv2-samples/` and/or `test-data/level-3.json` (an
    `api-bank/` checkout); default: the bundled copy. `strict=True` raises the first located DataError
    instead of skipping damaged records; `report()` says what was read, skipped and yielded.
    """

    name: ClassVar[str] = "apibank"
    version: ClassVar[str] = "1"
    modality: ClassVar[str] = "text"
    splits: ClassVar[tuple[str, ...]] = SPLITS
    # most API results are one to three words ('"success"', a token), too short for BLEU's 4-grams: 0 for all
    primary_metric: ClassVar[str] = "fwm/exact_match"
    action_meta_keys: ClassVar[tuple[str, ...]] = ("api_name",)

    def bundled_data_dir(self) -> Path:
        return bundled_data_dir()

    def read_data(self) -> LoadedData:
        return load_data(self.root, strict=self.strict)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "data_dir": str(self.root),
                "transitions": dict(self.data.report.transitions)}
