"""Random damage to every loader's files (issue 15): a located error or a recorded problem, never a traceback,
and never a transition that the intact files do not have.

Each loader reads a small copy of its bundled data. One example damages one file in one way: truncation,
an invalid UTF-8 byte, a removed field, or a value of the wrong JSON type (for parquet: a dropped column or a
column of the wrong type; JSON Lines files are damaged one record at a time). The damaged file is put back after
each load, so examples do not compound.
Scienceworld needs Java and reads no files of ours, so it is not here.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from swirl_envs.errors import SwirlError  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "swirl_envs" / "data"
BAD_BYTES = (b"\xff", b"\x80", b"\xc3\x28", b"\xed\xa0\x80")  # never valid UTF-8, wherever they land
WRONG_VALUES = (None, True, 0, 2.5, "x", [], [1], {}, {"a": 1})

Key = tuple[Any, ...]


@dataclass
class Case:
    """A loader over a small copy of its data: `load(root)` gives transition keys and located problems."""

    name: str
    build: Callable[[Path], list[str]]  # copies the data under root; returns the files damage may hit
    load: Callable[[Path], tuple[list[Key], list[str]]]
    # Fields whose absence (or null) the loader documents as valid: dropping them may change what is read.
    optional: frozenset[str] = frozenset()
    free: frozenset[str] = frozenset()  # fields that may hold any JSON value (shown as they are)
    name_maps: frozenset[str] = frozenset()  # objects keyed by names (a schema's properties): entries may go
    # Runs of consecutive fields below which anything is valid content, shown as it is (an API's output).
    free_below: frozenset[tuple[str, ...]] = frozenset()
    # How many levels of a file's top objects are keyed by record id, by file name: removing a record is not
    # damage that a loader could see.
    record_levels: dict[str, int] = field(default_factory=dict)
    root: Path = Path()
    files: list[str] = field(default_factory=list)
    baseline: list[Key] = field(default_factory=list)

    def __repr__(self) -> str:  # hypothesis prints it with every failure
        return f"Case({self.name})"


def _copy(root: Path, source: Path, rels: list[str]) -> None:
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / rel, root / rel)


def _image_key(image: Any) -> str:
    return hashlib.sha256(np.asarray(image).tobytes()).hexdigest()


# ---------------------------------------------------------------- the loaders


def _stb_build(root: Path) -> list[str]:
    files = ["solvable_queries_example/test_instruction/G1_instruction.json",
             "solvable_queries_example/test_query_ids/G1_instruction.json",
             "data_example/answer/virtual_chatgpt_cot/G1_instruction/1073_CoT@1.json",
             "data_example/answer/virtual_chatgpt_dfs/G1_instruction/1073_DFS_woFilter_w2.json",
             "data_example/model_predictions_converted/virtual_chatgpt_cot/G1_instruction.json",
             "toolbench/data_example/answer/G1_answer/10_ChatGPT_DFS_woFilter_w2.json",
             "from_OpenBMB_ToolBench/data_example/toolenv/response_examples/Commerce/ado_stock.json"]
    _copy(root, DATA / "stabletoolbench", files)
    return files


def _stb_load(root: Path) -> tuple[list[Key], list[str]]:
    from swirl_envs.stabletoolbench import load_data

    data = load_data(root)
    # Deduplication keeps the first copy of a call, so which file's copy survives may change: compare content.
    keys = sorted((split, t.state, t.action, t.next_state) for split, ts in data.transitions.items() for t in ts)
    return keys, list(data.report.problems)


def _mind2web_build(root: Path) -> list[str]:
    files = ["data/test_task/test_task_0.json", "data/train/train_1.json"]
    _copy(root, DATA / "mind2web", files)
    return files


def _mind2web_load(root: Path) -> tuple[list[Key], list[str]]:
    from swirl_envs.mind2web import Mind2Web

    bench = Mind2Web(data_dir=root, source="raw", labelled=True)
    keys = [(split, t.state, t.action, t.next_state, t.episode_id, t.step)
            for split in ("test", "train") for t in bench.transitions(split)]
    return keys, []


def _aurora_build(root: Path) -> list[str]:
    records = json.loads((DATA / "aurora" / "test.json").read_text())
    kept = [r for r in records if r["task"] == "kubric"][:3]
    kept += [next(r for r in records if r["task"] == "magicbrush"), next(r for r in records if not r.get("output"))]
    (root / "test.json").write_text(json.dumps(kept, indent=1))
    images = [r[k] for r in kept[:3] for k in ("input", "output")]
    _copy(root, DATA / "aurora", images)
    prompts = {r["instruction"] for r in kept}
    disc = [r for r in json.loads((DATA / "aurora/disc_edit_data/kubric/valid.json").read_text())
            if r["prompt"] in prompts] or json.loads((DATA / "aurora/disc_edit_data/kubric/valid.json").read_text())[:2]
    (root / "disc_edit_data/kubric").mkdir(parents=True)
    (root / "disc_edit_data/kubric/valid.json").write_text(json.dumps(disc, indent=1))
    return ["test.json", "disc_edit_data/kubric/valid.json", images[0], images[1]]


def _visual_keys(bench: Any, split: str) -> tuple[list[Key], list[str]]:
    keys = [(t.episode_id, t.step, t.action, _image_key(t.state), _image_key(t.next_state))
            for t in bench.transitions(split)]
    summary = bench.summaries[split]
    return keys, [f"{reason} ({group})" for reason, group in summary.skipped]


def _aurora_load(root: Path) -> tuple[list[Key], list[str]]:
    from swirl_envs.visual.aurora import AuroraBench

    return _visual_keys(AuroraBench(data_dir=root, labelled=True), "test")


def _bytemorph_build(root: Path) -> list[str]:
    rel = "data/test-00000-of-00001.parquet"
    _copy(root, DATA / "bytemorph", [rel])
    return [rel]


def _bytemorph_load(root: Path) -> tuple[list[Key], list[str]]:
    from swirl_envs.visual.bytemorph import ByteMorph

    return _visual_keys(ByteMorph(data_dir=root, labelled=True), "test")


def _worldprediction_build(root: Path) -> list[str]:
    out = []
    for name in ("WM_annotations.json", "PP_annotations.json"):
        data = json.loads((DATA / "worldprediction" / name).read_text())
        source, samples = next(iter(data.items()))
        small = {source: dict(list(samples.items())[:2])}
        (root / name).write_text(json.dumps(small, indent=1))
        out.append(name)
        for sample in small[source].values():
            states = sample["states"]
            _copy(root, DATA / "worldprediction", [states["initial_state"], states["final_state"]])
    first = next(iter(json.loads((root / out[0]).read_text()).values()))
    return [*out, next(iter(first.values()))["states"]["initial_state"]]


def _worldprediction_load(root: Path) -> tuple[list[Key], list[str]]:
    from swirl_envs.visual.worldprediction import WorldPrediction

    keys, problems = [], []
    for task in ("wm", "pp"):
        task_keys, task_problems = _visual_keys(WorldPrediction(data_dir=root, task=task, labelled=True), "test")
        keys += task_keys
        problems += task_problems
    return keys, problems


def _apibank_build(root: Path) -> list[str]:
    dialogues = ["lv1-lv2-samples/level-1-given-desc/GetToday-level-1-1.jsonl",  # a call without arguments
                 # a result without its api_name, and a call whose arguments the API converts
                 "lv1-lv2-samples/level-1-given-desc/DeleteAccount-ModifyPassword-GetUserToken-level-2-3.jsonl",
                 "lv1-lv2-samples/level-1-given-desc/QueryMeeting-level-1-1.jsonl",
                 "lv1-lv2-samples/level-2-toolsearcher/DeleteAgenda-level-3-1.jsonl",
                 "lv1-lv2-samples/level-1-given-desc/SearchEngine-level-1-1.jsonl"]  # 0 bytes upstream
    _copy(root, DATA / "apibank", dialogues)
    tasks = json.loads((DATA / "apibank" / "test-data/level-3.json").read_text())
    (root / "test-data").mkdir()
    # Task 5 passes numbers as text and 17 as numbers; 0 is the first.
    (root / "test-data/level-3.json").write_text(json.dumps([tasks[0], tasks[5], tasks[17]], indent=1))
    return [*dialogues[:-1], "test-data/level-3.json"]


def _apibank_load(root: Path) -> tuple[list[Key], list[str]]:
    from swirl_envs.apibank import load_data

    data = load_data(root)
    keys = sorted((split, t.state, t.action, t.next_state) for split, ts in data.transitions.items() for t in ts)
    return keys, list(data.report.problems)


CASES = {case.name: case for case in [
    # Function schemas (JSON schema) may leave out any of these; the state shows what is there.
    Case("stabletoolbench", _stb_build, _stb_load,
         optional=frozenset({"description", "parameters", "properties", "required", "optional", "type", "enum",
                             "example_value", "api_description", "required_parameters", "optional_parameters"}),
         free=frozenset({"enum", "example_value", "default"}), name_maps=frozenset({"properties"}),
         record_levels={"G1_instruction.json": 1}),
    Case("mind2web", _mind2web_build, _mind2web_load,
         optional=frozenset({"action_reprs", "subdomain", "pos_candidates", "neg_candidates", "cleaned_html",
                             "raw_html", "original_op", "value", "is_original_target", "is_top_level_target",
                             "backend_node_id"})),
    Case("aurora", _aurora_build, _aurora_load, optional=frozenset({"output", "task", "pos", "neg"})),
    Case("bytemorph", _bytemorph_build, _bytemorph_load),
    Case("worldprediction", _worldprediction_build, _worldprediction_load, optional=frozenset({"caption", "frames"}),
         record_levels={"WM_annotations.json": 2, "PP_annotations.json": 2}),
    # An API's output may be any JSON value; a string exception is a failed call (Y shows it); a level-1/2
    # result may leave out its api_name (30 upstream do), and level 3's final answer is never read.
    Case("apibank", _apibank_build, _apibank_load, optional=frozenset({"api_name", "response"}),
         free=frozenset({"exception"}), free_below=frozenset({("result", "output"), ("output", "output")})),
]}


class _Cases(dict):
    def __repr__(self) -> str:  # hypothesis prints its arguments: the copies' baselines are long
        return "cases"


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> dict[str, Case]:
    for case in CASES.values():
        case.root = tmp_path_factory.mktemp(case.name)
        case.files = case.build(case.root)
        case.baseline, problems = case.load(case.root)
        assert case.baseline, f"{case.name}: the intact copy yields no transitions"
        assert not [p for p in problems if any(f in p for f in case.files)], problems
    return _Cases(CASES)


# ---------------------------------------------------------------- damage


def _json_kind(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return repr(value) if value is None else "bool"
    return "number" if isinstance(value, (int, float)) else type(value).__name__


def _paths(value: Any, prefix: tuple = ()) -> Iterator[tuple]:
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield (*prefix, key)
        yield from _paths(child, (*prefix, key))


@dataclass(frozen=True)
class Damage:
    rel: str
    kind: str
    data: bytes = field(repr=False)
    where: str = ""  # the JSON path or parquet column hit
    path: tuple = ()  # the JSON path as its steps
    key: Any = None  # the field a JSON damage hit (its last path element)
    value: Any = None  # the value put there (None for a removal)

    def __repr__(self) -> str:  # without the damaged bytes
        return f"Damage({self.kind} of {self.rel} at {self.where or '-'}: {self.value!r}, {len(self.data)} bytes)"


@st.composite
def damages(draw, name: str) -> Damage:
    case = CASES[name]
    files, root = case.files, case.root
    rel = draw(st.sampled_from(files))
    raw = (root / rel).read_bytes()
    suffix = Path(rel).suffix
    kinds = ["truncate"] + {".json": ["bad bytes", "remove field", "wrong type"],
                            ".jsonl": ["bad bytes", "remove field", "wrong type"],
                            ".parquet": ["drop column", "wrong column type"]}.get(suffix, [])
    kind = draw(st.sampled_from(kinds))
    if kind == "truncate" and suffix == ".jsonl":
        # Cut inside a line: a JSON Lines file cut between lines is a shorter well-formed file (upstream
        # API-Bank has a dialogue of 0 bytes), which no reader can tell from an intact one.
        cuts, start = [], 0
        for line in raw.split(b"\n"):
            cuts += range(start + 1, start + len(line.rstrip()))  # a record that lost at least its last byte
            start += len(line) + 1
        return Damage(rel, kind, raw[: draw(st.sampled_from(cuts))])
    if kind == "truncate":
        # Image formats end in a trailer that decoders may not need; cut at least 16 bytes off them.
        return Damage(rel, kind, raw[: draw(st.integers(0, len(raw) - (1 if suffix == ".json" else 16)))])
    if kind == "bad bytes":
        at = draw(st.integers(0, len(raw)))
        return Damage(rel, kind, raw[:at] + draw(st.sampled_from(BAD_BYTES)) + raw[at:])
    if suffix == ".parquet":
        return _parquet_damage(draw, rel, raw, kind)
    data = [json.loads(line) for line in raw.splitlines() if line.strip()] if suffix == ".jsonl" else json.loads(raw)
    levels = case.record_levels.get(Path(rel).name, 0) if isinstance(data, dict) else 0
    paths = [p for p in _paths(data) if len(p) > levels and (kind == "wrong type" or isinstance(p[-1], str))]
    if not paths:  # a file of record ids only (test_query_ids): nothing but its records to lose
        return Damage(rel, "truncate", raw[: draw(st.integers(0, len(raw) - 1))])
    path = draw(st.sampled_from(paths))
    parent = data
    for step in path[:-1]:
        parent = parent[step]
    if kind == "remove field":
        del parent[path[-1]]
        value = None
    else:
        original = _json_kind(parent[path[-1]])
        value = draw(st.sampled_from([v for v in WRONG_VALUES if _json_kind(v) != original]))
        parent[path[-1]] = value
    field_name = next((step for step in reversed(path) if isinstance(step, str)), None)  # a list item's field
    if kind == "remove field" and len(path) > 1 and path[-2] in case.name_maps:
        field_name = path[-2]  # one entry of a map of names left out: as optional as the map
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in data) if suffix == ".jsonl" else \
        json.dumps(data, ensure_ascii=False)
    return Damage(rel, kind, text.encode("utf-8"), "/".join(map(str, path)), path, field_name, value)


def _parquet_damage(draw, rel: str, raw: bytes, kind: str) -> Damage:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(raw))
    column = draw(st.sampled_from(table.column_names))
    if kind == "drop column":
        table = table.drop_columns([column])
    else:
        bad = draw(st.sampled_from(["int", "null", "invalid utf-8"]))
        values = {"int": pa.array(range(table.num_rows), pa.int64()),
                  "null": pa.nulls(table.num_rows, pa.string()),
                  "invalid utf-8": pa.array([b"\xff\xfe"] * table.num_rows, pa.binary())}[bad]
        table = table.set_column(table.column_names.index(column), column, values)
        column = (column, bad)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return Damage(rel, kind, buffer.getvalue(), str(column), key=column)


# ---------------------------------------------------------------- the property


def _check(case: Case, damage: Damage) -> None:
    target = case.root / damage.rel
    intact = target.read_bytes()
    target.write_bytes(damage.data)
    try:
        try:
            keys, problems = case.load(case.root)
        except SwirlError as exc:  # anything else fails the test with its traceback
            message = str(exc)
            assert damage.rel in message or Path(damage.rel).name in message, f"error does not name the file: {message}"
            assert "\n" not in message, f"error is not one line: {message!r}"
            return
    finally:
        target.write_bytes(intact)
    if keys == case.baseline:
        return  # the damage did not matter (an unused field, trailing whitespace)
    if damage.key in case.free or (damage.value is None and damage.key in case.optional):
        return  # an optional field left out: other transitions are the right reading of what is left
    steps = tuple(damage.path)
    if any(steps[i:i + len(run)] == run for run in case.free_below for i in range(len(steps) - len(run) + 1)):
        return  # a value inside free content (an API's output): shown as it is
    invented = set(keys) - set(case.baseline)
    assert len(invented) == 0, f"{damage} gave {len(invented)} transitions that the intact data does not have"
    located = [p for p in problems if damage.rel in p]
    assert located, (
        f"{damage} lost transitions without a located problem: {len(keys)} of {len(case.baseline)} left")


# DAMAGE_EXAMPLES=2000 searches harder (about 2 minutes); 60 keeps the suite's share near 10 s.
FAST = settings(max_examples=int(os.environ.get("DAMAGE_EXAMPLES", 60)), derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])


@pytest.mark.parametrize("name", list(CASES))
@FAST
@given(data=st.data())
def test_damaged_files_give_a_located_error_or_problem_never_a_wrong_transition(cases, name, data):
    case = cases[name]
    _check(case, data.draw(damages(name)))
