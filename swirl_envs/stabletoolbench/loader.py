"""Read StableToolBench / ToolBench data laid out as upstream, and turn trajectories into transitions.

Formats read (found anywhere below the data folder, by their upstream folder names):

* query sets: `.../test_instruction/<group>.json` (StableToolBench) and `.../instruction/*.json`
  (ToolBench): lists of `{query, query_id, api_list, "relevant APIs"}`; `.../test_query_ids/<group>.json`
  restricts a group to the listed ids, as upstream's evaluation does.
* answers: `.../answer/**/<id>_<method>.json`: DFS trees (`tree`) and CoT chains (`trys`), each
  holding `Action` / `Action Input` node pairs with the tool's `observation`.
* converted predictions: `.../model_predictions_converted/**/<group>.json`: `{id: {query,
  available_tools, answer: {answer_details: [role nodes with "next"]}}}`.
* response examples: `.../response_examples/<category>/<tool>.json`: per-API response *schemas* only
  (no inputs, no responses), so they are validated and counted but yield no transitions.

Every problem (unreadable file, record of the wrong shape, call without observation) is counted in the
`LoadReport` with its location; with `strict=True` the first one raises a DataError instead.

Splits never share a query: a query's split is decided by a salted sha256 of its whitespace-normalised
text (so the same query reached through different files, ids or groups always lands together):
bucket = hash % 100; < 10 validation, < 30 test, else train.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..benchmark import salted_split, transition_key
from ..errors import DataError
from ..transition import Transition
from .conversation import (
    FINISH,
    finish_function,
    format_call,
    function_from_api,
    render_observation,
    render_state,
    standardize,
)

SPLITS = ("train", "validation", "test")
SPLIT_SALT = "swirl-stabletoolbench-1"


def bundled_data_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "data" / "stabletoolbench"


def normalize_query(query: str) -> str:
    return " ".join(query.split())


def split_of(query: str) -> str:
    return salted_split(SPLIT_SALT, query)


@dataclass(frozen=True)
class Route:
    """Where a function call goes on the virtual API server."""

    category: str | None  # None where the source does not say (ToolBench answers without their query)
    tool: str  # standardised tool name
    api: str  # standardised api name


@dataclass
class Task:
    """A query with the functions offered for it."""

    query: str
    query_id: str
    group: str
    functions: list[dict[str, Any]]
    routes: dict[str, Route]
    source_file: str
    record: str

    @property
    def split(self) -> str:
        return split_of(self.query)

    @property
    def complete(self) -> bool:
        """Every non-Finish function can be routed to the server."""
        names = [f["name"] for f in self.functions if f.get("name") != FINISH]
        return bool(names) and all(n in self.routes and self.routes[n].category for n in names)


@dataclass
class Call:
    """One tool call in a trajectory, with the calls that followed it."""

    name: str
    arguments: Any
    observation: str | None
    code: int | None
    record: str
    children: list[Call] = field(default_factory=list)


@dataclass
class LoadReport:
    data_dir: str = ""
    files: Counter = field(default_factory=Counter)  # kind -> files read
    problems: list[str] = field(default_factory=list)  # located, one line each
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    duplicates: int = 0
    transitions: Counter = field(default_factory=Counter)  # split -> count
    episodes: Counter = field(default_factory=Counter)
    queries_with_transitions: Counter = field(default_factory=Counter)
    tasks: Counter = field(default_factory=Counter)  # split -> queries with routable functions

    def as_dict(self) -> dict[str, Any]:
        return {"data_dir": self.data_dir, "files": dict(self.files), "problems": list(self.problems),
                "skipped": dict(self.skipped), "duplicates": self.duplicates,
                "transitions": dict(self.transitions), "episodes": dict(self.episodes),
                "queries_with_transitions": dict(self.queries_with_transitions), "tasks": dict(self.tasks)}


class _Problems:
    def __init__(self, report: LoadReport, strict: bool):
        self.report, self.strict = report, strict

    def __call__(self, reason: str, message: str | DataError, *, path: Any = None, record: Any = None,
                 field: str | None = None):
        error = message if isinstance(message, DataError) else DataError(message, path=path, record=record,
                                                                           field=field)
        if self.strict:
            raise error
        self.report.skipped[reason] += 1
        self.report.problems.append(str(error))


def _read_json(path: Path, problem: _Problems, rel: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problem("unreadable file", f"cannot read: {exc}", path=rel)
        return None
    if not text.strip():
        problem("empty file", "file is empty (0 bytes), not JSON", path=rel)
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        problem("invalid JSON", f"not valid JSON: {exc}", path=rel)
        return None


_ANSWER_NAME = re.compile(r"^(?P<id>[^_]+)_(?P<method>.+)\.json$")
_TOOL_IN_DESCRIPTION = re.compile(r'subfunction for tool "([^"]+)"')


def _kind(rel: Path) -> str | None:
    parts = rel.parts[:-1]
    if "test_query_ids" in parts:
        return "query_ids"
    if "model_predictions_converted" in parts:
        return "converted"
    if "response_examples" in parts:
        return "response_examples"
    if parts and parts[-1] in ("test_instruction", "instruction"):
        return "queries"
    if "answer" in parts or re.search(r"_(DFS|CoT)", rel.name):
        return "answer"
    return None


class _Loader:
    def __init__(self, root: Path, strict: bool):
        self.root = root
        self.report = LoadReport(data_dir=str(root))
        self.problem = _Problems(self.report, strict)
        self.tasks_by_query: dict[str, Task] = {}  # normalised query -> task from a query file
        self.tool_category: dict[str, str] = {}  # standardised tool -> category
        self.response_schemas: dict[tuple[str, str], dict[str, Any]] = {}

    # ------------------------------------------------------------ files

    def files(self) -> dict[str, list[tuple[Path, str]]]:
        if not self.root.is_dir():
            raise DataError("data folder does not exist or is not a folder", path=self.root)
        by_kind: dict[str, list[tuple[Path, str]]] = {}
        for path in sorted(self.root.rglob("*.json")):
            rel = path.relative_to(self.root)
            kind = _kind(rel)
            if kind is None:
                self.report.files["ignored"] += 1
                continue
            by_kind.setdefault(kind, []).append((path, rel.as_posix()))
        return by_kind

    def load(self) -> tuple[list[Task], list[tuple[Task, list[Call], dict[str, Any]]]]:
        by_kind = self.files()
        allowed: dict[tuple[Path, str], set[str]] = {}  # (folder above, group) -> ids
        for path, rel in by_kind.get("query_ids", []):
            data = _read_json(path, self.problem, rel)
            if isinstance(data, dict):
                allowed[(path.parent.parent, path.stem)] = {str(k) for k in data}
                self.report.files["query_ids"] += 1
            elif data is not None:
                self.problem("bad query ids", "expected an object {query_id: ...}", path=rel)
        for path, rel in by_kind.get("queries", []):
            self._queries(path, rel, allowed.get((path.parent.parent, path.stem)))
        for path, rel in by_kind.get("response_examples", []):
            self._response_examples(path, rel)
        trajectories = []
        for path, rel in by_kind.get("answer", []):
            trajectories += self._answer(path, rel)
        for path, rel in by_kind.get("converted", []):
            trajectories += self._converted(path, rel)
        return list(self.tasks_by_query.values()), trajectories

    def _queries(self, path: Path, rel: str, allowed: set[str] | None) -> None:
        data = _read_json(path, self.problem, rel)
        if data is None:
            return
        if not isinstance(data, list):
            self.problem("bad query file", "expected a list of query records", path=rel)
            return
        self.report.files["queries"] += 1
        group = path.stem
        for index, record in enumerate(data):
            if not isinstance(record, dict) or not isinstance(record.get("query"), str):
                self.problem("bad query record", "expected an object with a string 'query'", path=rel,
                             record=index, field="query")
                continue
            query_id = str(record.get("query_id", index))
            if allowed is not None and query_id not in allowed:
                self.report.skipped["query not in test_query_ids"] += 1
                continue
            if "api_list" not in record:
                self.report.skipped["query without api_list (open domain)"] += 1
                continue
            functions, routes = [], {}
            try:
                if not isinstance(record["api_list"], list):
                    raise DataError("expected a list", path=rel, record=index, field="api_list")
                for api in record["api_list"]:
                    function, category, tool, api_name = function_from_api(api, where=rel)
                    functions.append(function)
                    routes[function["name"]] = Route(category, tool, api_name)
                    self.tool_category.setdefault(tool, category)
            except DataError as exc:
                located = exc if exc.record is not None else DataError(str(exc).split(": ", 1)[-1], path=rel,
                                                                       record=index, field="api_list")
                self.problem("bad query record", located)
                continue
            task = Task(record["query"], query_id, group, functions + [finish_function()], routes, rel, str(index))
            self.tasks_by_query.setdefault(normalize_query(task.query), task)

    def _response_examples(self, path: Path, rel: str) -> None:
        data = _read_json(path, self.problem, rel)
        if data is None:
            return
        if not isinstance(data, dict) or not isinstance(data.get("api_list"), list):
            self.problem("bad response example", "expected {'api_list': [...]}", path=rel, field="api_list")
            return
        self.report.files["response_examples"] += 1
        schemas = {}
        for api in data["api_list"]:
            if isinstance(api, dict) and "name" in api:
                schemas[standardize(str(api["name"]))] = api.get("schema")
        self.response_schemas[(path.parent.name, path.stem)] = schemas

    # ------------------------------------------------------------ trajectories

    def _task_for(self, query: str, query_id: str, group: str, functions: Any, rel: str, record: str) -> Task:
        known = self.tasks_by_query.get(normalize_query(query))
        if not isinstance(functions, list):
            raise DataError("expected a list of functions", path=rel, record=record, field="function")
        routes = dict(known.routes) if known else {}
        for index, function in enumerate(functions):
            name = function.get("name") if isinstance(function, dict) else None
            if not isinstance(name, str):
                raise DataError("function without a name", path=rel, record=record, field="function")
            _check_function(function, rel, record, f"function[{index}]")
            if name == FINISH or name in routes:
                continue
            tool_match = _TOOL_IN_DESCRIPTION.search(str(function.get("description", "")))
            if tool_match and name.endswith("_for_" + tool_match.group(1)):
                tool = tool_match.group(1)
                routes[name] = Route(self.tool_category.get(tool), tool, name[: -len("_for_" + tool)])
        if not any(isinstance(f, dict) and f.get("name") == FINISH for f in functions):
            functions = [*functions, finish_function()]
        return Task(query, query_id, group, list(functions), routes, rel, record)

    def _answer(self, path: Path, rel: str) -> list[tuple[Task, list[Call], dict[str, Any]]]:
        data = _read_json(path, self.problem, rel)
        if data is None:
            return []
        match = _ANSWER_NAME.match(path.name)
        generation = data.get("answer_generation") if isinstance(data, dict) else None
        if not match or not isinstance(generation, dict) or not isinstance(generation.get("query"), str):
            self.problem("bad answer file", "expected <id>_<method>.json with answer_generation.query",
                         path=rel, field="answer_generation")
            return []
        try:
            task = self._task_for(generation["query"], match["id"], path.parent.name.removesuffix("_answer"),
                                  generation.get("function"), rel, "answer_generation")
            if "tree" in data:
                roots, fmt = self._dfs_calls(data["tree"]["tree"], None, rel, "tree"), "dfs"
            elif "trys" in data:
                roots, fmt = [], "cot"
                if not isinstance(data["trys"], list):
                    raise DataError("expected a list of attempts", path=rel, field="trys")
                for t, attempt in enumerate(data["trys"]):
                    roots += self._chain_calls(attempt["chain"], rel, f"trys[{t}].chain")
            else:
                raise DataError("neither a DFS 'tree' nor CoT 'trys'", path=rel)
        except (KeyError, TypeError, AttributeError) as exc:
            self.problem("bad answer file", f"unexpected structure near {exc!r}", path=rel)
            return []
        except DataError as exc:
            self.problem("bad answer file", exc)
            return []
        self.report.files["answer_" + fmt] += 1
        return [(task, roots, {"format": fmt, "method": match["method"]})]

    def _dfs_calls(self, node: Mapping[str, Any], name: str | None, rel: str, record: str) -> list[Call]:
        calls: list[Call] = []
        for i, child in enumerate(_children(node, "children", rel, record)):
            where = f"{record}.children[{i}]"
            kind = _node_type(child, rel, where)
            if kind == "Action":
                if not _children(child, "children", rel, where):
                    raise DataError("an Action without its Action Input", path=rel, record=where,
                                    field="children")
                calls += self._dfs_calls(child, _action_name(child, rel, where), rel, where)
            elif kind == "Action Input":
                # Dropping a call and keeping the calls below it would give them a history without it.
                if not name:
                    raise DataError("an Action Input without its Action", path=rel, record=where,
                                    field="node_type")
                below = self._dfs_calls(child, None, rel, where)
                calls.append(Call(name, _arguments(child, "description", rel, where), child.get("observation"),
                                  child.get("observation_code"), where, below))
            else:  # a Thought passes its subtree through
                calls += self._dfs_calls(child, name, rel, where)
        return calls

    def _chain_calls(self, chain: Any, rel: str, record: str) -> list[Call]:
        if not isinstance(chain, list):
            raise DataError(f"expected a list of nodes, got {type(chain).__name__}", path=rel, record=record)
        calls: list[Call] = []
        name = None
        for i, node in enumerate(chain):
            where = f"{record}[{i}]"
            kind = _node_type(node, rel, where)
            if kind == "Action":
                if name:
                    raise DataError("an Action without its Action Input", path=rel, record=f"{record}[{i - 1}]",
                                    field="node_type")
                name = _action_name(node, rel, where)
            elif kind == "Action Input":
                # A lost Action would otherwise drop this call and give every later call a wrong history.
                if not name:
                    raise DataError("an Action Input without its Action", path=rel, record=where,
                                    field="node_type")
                calls.append(Call(name, _arguments(node, "description", rel, where), node.get("observation"),
                                  node.get("observation_code"), where))
                name = None
        for earlier, later in zip(calls, calls[1:], strict=False):
            earlier.children.append(later)
        return calls[:1]

    def _converted(self, path: Path, rel: str) -> list[tuple[Task, list[Call], dict[str, Any]]]:
        data = _read_json(path, self.problem, rel)
        if data is None:
            return []
        if not isinstance(data, dict):
            self.problem("bad converted file", "expected an object {query_id: prediction}", path=rel)
            return []
        self.report.files["converted"] += 1
        out = []
        for query_id, item in data.items():
            try:
                task = self._task_for(item["query"], str(query_id), path.stem, item["available_tools"], rel,
                                      str(query_id))
                roots = self._converted_calls(item["answer"]["answer_details"], rel,
                                              f"{query_id}.answer.answer_details")
                method = str(item["answer"].get("method", ""))
            except (KeyError, TypeError, AttributeError) as exc:
                self.problem("bad converted record", f"missing or malformed {exc!r}", path=rel, record=query_id)
                continue
            except DataError as exc:
                self.problem("bad converted record", exc)
                continue
            out.append((task, roots, {"format": "converted", "method": method}))
        return out

    def _converted_calls(self, nodes: Any, rel: str, record: str) -> list[Call]:
        if not isinstance(nodes, list):
            raise DataError(f"expected a list of nodes, got {type(nodes).__name__}", path=rel, record=record)
        calls: list[Call] = []
        for i, node in enumerate(nodes):
            where = f"{record}[{i}]"
            if not isinstance(node, Mapping) or not isinstance(node.get("role"), str):
                raise DataError("expected a node with a string 'role'", path=rel, record=where, field="role")
            below = self._converted_calls(_children(node, "next", rel, where), rel, where + ".next")
            if node["role"] == "tool":
                message = node.get("message")
                if not isinstance(message, Mapping) or not isinstance(message.get("name"), str) \
                        or not message["name"]:
                    raise DataError("a tool node needs a message with a non-empty string 'name'", path=rel,
                                    record=where, field="message")
                calls.append(Call(message["name"], _arguments(message, "arguments", rel, where + ".message"),
                                  message.get("response"), None, where, below))
            else:
                calls += below
        return calls


def _check_function(function: Mapping[str, Any], rel: str, record: str, field: str) -> None:
    """The parts of a function schema that the state shows must have their JSON-schema types.

    Each may be absent; a wrong type would otherwise render as a different (or empty) signature.
    """
    expected = [("description", function, str), ("parameters", function, Mapping)]
    params = function.get("parameters") or {}
    if isinstance(params, Mapping):
        expected += [("parameters.properties", params, Mapping), ("parameters.required", params, list)]
        properties = params.get("properties") or {}
        if isinstance(properties, Mapping):
            for pname, spec in properties.items():
                if not isinstance(spec, Mapping):
                    raise DataError(f"expected an object, got {type(spec).__name__}", path=rel, record=record,
                                    field=f"{field}.parameters.properties.{pname}")
                expected += [(f"parameters.properties.{pname}.type", spec, str),
                             (f"parameters.properties.{pname}.enum", spec, list)]
    for name, holder, kind in expected:
        value = holder.get(name.rsplit(".", 1)[-1])
        if value is not None and not isinstance(value, kind):
            raise DataError(f"expected {'an object' if kind is Mapping else kind.__name__}, got "
                            f"{type(value).__name__}", path=rel, record=record, field=f"{field}.{name}")
    required = params.get("required") if isinstance(params, Mapping) else None
    if isinstance(required, list) and not all(isinstance(r, str) for r in required):
        raise DataError("expected a list of parameter names", path=rel, record=record,
                        field=f"{field}.parameters.required")


_NODE_TYPES = ("Thought", "Action", "Action Input")


def _node_type(node: Any, rel: str, where: str) -> str:
    if not isinstance(node, Mapping):
        raise DataError(f"expected a node object, got {type(node).__name__}", path=rel, record=where)
    kind = node.get("node_type")
    if kind not in _NODE_TYPES:
        raise DataError(f"expected one of {', '.join(_NODE_TYPES)}, got {kind!r}", path=rel, record=where,
                        field="node_type")
    return kind


def _children(node: Any, key: str, rel: str, where: str) -> list[Any]:
    # Upstream always writes the key; a missing one would silently drop every call below the node.
    if not isinstance(node, Mapping) or not isinstance(node.get(key), list):
        got = type(node.get(key)).__name__ if isinstance(node, Mapping) and key in node else "nothing"
        raise DataError(f"expected a list, got {got}", path=rel, record=where, field=key)
    return node[key]


def _action_name(node: Mapping[str, Any], rel: str, where: str) -> str:
    name = node.get("description")
    if not isinstance(name, str) or not name:
        raise DataError("an Action needs its function name as a non-empty string", path=rel, record=where,
                        field="description")
    return name


def _arguments(node: Mapping[str, Any], key: str, rel: str, where: str) -> str:
    # Upstream stores arguments as JSON text; any other type would become a different call.
    value = node.get(key)
    if not isinstance(value, str):
        raise DataError(f"expected the call's arguments as a string, got {type(value).__name__}", path=rel,
                        record=where, field=key)
    return value


@dataclass
class LoadedData:
    tasks: list[Task]
    transitions: dict[str, list[Transition]]
    report: LoadReport
    response_schemas: dict[tuple[str, str], dict[str, Any]]


def load_data(root: str | Path, *, strict: bool = False) -> LoadedData:
    """Everything under `root`: tasks (queries with functions) and deduplicated transitions per split."""
    loader = _Loader(Path(root), strict)
    query_tasks, trajectories = loader.load()
    report = loader.report
    seen: set[bytes] = set()
    out: dict[str, list[Transition]] = {s: [] for s in SPLITS}
    queries_seen: dict[str, set[str]] = {s: set() for s in SPLITS}
    tasks = {normalize_query(t.query): t for t in query_tasks}
    for task, roots, source in trajectories:
        tasks.setdefault(normalize_query(task.query), task)
        split = task.split
        for branch, steps in enumerate(_branches(roots, report, loader.problem, task.source_file,
                                                      _RESPONSE_FIELD[source["format"]])):
            episode_id = f"{task.source_file}:{task.record if source['format'] == 'converted' else task.query_id}:{branch}"
            episode = []
            for history, call in steps:
                transition = _transition(task, history, call, source, episode_id, len(episode))
                key = transition_key(transition)
                if key in seen:
                    report.duplicates += 1
                    continue
                seen.add(key)
                episode.append(transition)
            if episode:
                out[split] += episode
                report.episodes[split] += 1
                queries_seen[split].add(normalize_query(task.query))
    for split in SPLITS:
        report.transitions[split] = len(out[split])
        report.queries_with_transitions[split] = len(queries_seen[split])
    task_list = list(tasks.values())
    for task in task_list:
        if task.complete:
            report.tasks[task.split] += 1
    return LoadedData(task_list, out, report, loader.response_schemas)


_RESPONSE_FIELD = {"dfs": "observation", "cot": "observation", "converted": "message.response"}


def _branches(roots: list[Call], report: LoadReport, problem: _Problems, rel: str,
              response_field: str) -> Iterator[list[tuple[list[tuple[str, str]], Call]]]:
    """Split a call tree into chains: the first child continues a chain, every other child starts one.

    Each chain carries the full conversation before its first call, so every call appears exactly once.
    """
    pending: list[tuple[list[Call], list[tuple[str, str]]]] = [(roots, [])]
    while pending:
        calls, history = pending.pop(0)
        steps: list[tuple[list[tuple[str, str]], Call]] = []
        while calls:
            call, rest = calls[0], calls[1:]
            if rest:
                pending.append((rest, history))
            if call.name == FINISH:
                report.skipped["Finish call (not a tool transition)"] += 1
                calls = []
                continue
            if not isinstance(call.observation, str):
                # The calls after it are dropped with it: their history would lack this response.
                problem("call without observation", "a tool call without its response (a string)", path=rel,
                        record=call.record, field=response_field)
                calls = []
                continue
            steps.append((history, call))
            history = history + [(format_call(call.name, call.arguments), render_observation(call.observation))]
            calls = call.children
        if steps:
            yield steps


def _transition(task: Task, history: list[tuple[str, str]], call: Call, source: dict[str, Any],
                episode_id: str, step: int) -> Transition:
    route = task.routes.get(call.name)
    meta = {"query_id": task.query_id, "group": task.group, "function": call.name,
            "tool": route.tool if route else None, "api": route.api if route else None,
            "category": route.category if route else None, "known_function": route is not None,
            "source_file": task.source_file, "record": call.record, "format": source["format"],
            "method": source["method"], "turn": len(history), "observation_code": call.code}
    return Transition(state=render_state(task.query, task.functions, history),
                      next_state=render_observation(call.observation),
                      action=format_call(call.name, call.arguments), episode_id=episode_id, step=step,
                      meta=meta)
