"""Names, tool calls and the text rendering of a tool-use conversation.

Name normalisation follows upstream ToolBench/StableToolBench exactly, because the virtual API
server's cache layout and the function names shown to models are built from it:

* `standardize(s)`: every character outside CJK, ASCII letters, digits, `_` and `^` becomes `_`
  (upstream's character class keeps a literal `^`), runs of `_` collapse, the result is lower-cased
  and stripped of leading/trailing `_`, and a leading digit gets a `get_` prefix.
* `change_name(s)`: Python keywords and a few reserved words get an `is_` prefix.
* a tool function is named `change_name(standardize(api)) + "_for_" + standardize(tool)`, keeping
  the last 64 characters (OpenAI's function-name limit).

The text forms the world models see (one canonical rendering, so equal conversations give equal text):

* Z, a tool call: `{"name": "<function>", "arguments": {...}}` with the argument keys sorted, no ASCII
  escaping (`format_call` / `parse_call`). Arguments a model wrote that are not JSON stay a string.
* Y, a tool response: the observation re-serialised compactly as JSON when it parses, else verbatim.
* X, the conversation so far: the query, the available functions (one line each, sorted by name,
  `Finish` last) and every earlier call with its response. Agent "thoughts" are left out on purpose:
  they usually announce the next call and would leak Z into X.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..errors import DataError

_NOT_NAME_CHAR = re.compile(r"[^\u4e00-\u9fa5a-zA-Z0-9_^]")
_RESERVED = frozenset({"from", "class", "return", "false", "true", "id", "and"})
FINISH = "Finish"
FUNCTION_NAME_LIMIT = 64


def standardize(name: str) -> str:
    name = re.sub(r"_{2,}", "_", _NOT_NAME_CHAR.sub("_", name)).lower().strip("_")
    return "get_" + name if name[:1].isdigit() else name


def change_name(name: str) -> str:
    return "is_" + name if name in _RESERVED else name


def standardize_category(category: str) -> str:
    """Upstream's folder name for a category: spaces, commas and slashes become `_`, one `__` pass."""
    return re.sub(r"[ ,/]", "_", category).replace("__", "_")


def api_function_name(api_name: str, standard_tool_name: str) -> str:
    """The name a model calls: `<api>_for_<tool>`, both standardised, at most 64 characters."""
    return f"{change_name(standardize(api_name))}_for_{standard_tool_name}"[-FUNCTION_NAME_LIMIT:]


# ---------------------------------------------------------------- calls (Z)


def parse_arguments(raw: Any) -> Any:
    """A call's arguments as upstream's server reads them: '' is {}, JSON text is parsed, else kept raw."""
    if isinstance(raw, str):
        if not raw.strip():
            return {}
        try:
            return json.loads(raw, strict=False)
        except ValueError:
            return raw
    return {} if raw is None else raw


def format_call(name: str, arguments: Any) -> str:
    """Z: the one canonical text of a tool call, `{"name": ..., "arguments": {...}}` with sorted keys."""
    args = json.dumps(parse_arguments(arguments), sort_keys=True, ensure_ascii=False)
    return f'{{"name": {json.dumps(name, ensure_ascii=False)}, "arguments": {args}}}'


def parse_call(text: str) -> tuple[str, Any]:
    """Inverse of `format_call` (key order and spacing free); raises DataError on anything else."""
    try:
        obj = json.loads(text, strict=False)
    except (TypeError, ValueError) as exc:
        raise DataError(f"tool call is not JSON: {exc}", field="action") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not obj["name"]:
        raise DataError('tool call must be a JSON object with a non-empty string "name"', field="action")
    extra = set(obj) - {"name", "arguments"}
    if extra:
        raise DataError(f"tool call has unexpected keys {sorted(extra)}", field="action")
    return obj["name"], parse_arguments(obj.get("arguments", {}))


# ---------------------------------------------------------------- responses (Y)


def render_observation(observation: Any) -> str:
    """Y: JSON text re-serialised compactly (unescaped Unicode), other text verbatim."""
    if not isinstance(observation, str):
        return json.dumps(observation, ensure_ascii=False)
    try:
        return json.dumps(json.loads(observation, strict=False), ensure_ascii=False)
    except ValueError:
        return observation


# ---------------------------------------------------------------- functions and context (X)

_DESCRIPTION = re.compile(r'The description of this function is: "(.*)"\s*$', re.S)
DESCRIPTION_CHARS = 160


def _short_description(description: str) -> str:
    match = _DESCRIPTION.search(description or "")
    text = match.group(1) if match else ("" if "subfunction for tool" in (description or "") else description or "")
    text = " ".join(text.split())
    return text if len(text) <= DESCRIPTION_CHARS else text[: DESCRIPTION_CHARS - 3] + "..."


def render_function(function: Mapping[str, Any]) -> str:
    """One line: `name(req: type, opt?: type) description`; enums are listed with `|`."""
    params = function.get("parameters") or {}
    properties = params.get("properties") or {}
    required = [r for r in params.get("required") or [] if r]
    parts = []
    for pname in sorted(properties, key=lambda p: (p not in required, p)):
        spec = properties[pname] if isinstance(properties[pname], Mapping) else {}
        kind = "|".join(map(str, spec["enum"])) if spec.get("enum") else str(spec.get("type", "string"))
        parts.append(f"{pname}{'' if pname in required else '?'}: {kind}")
    line = f"{function.get('name', '')}({', '.join(parts)})"
    description = "" if function.get("name") == FINISH else _short_description(function.get("description", ""))
    return f"{line} {description}" if description else line


def render_functions(functions: Iterable[Mapping[str, Any]]) -> str:
    names = {}
    for f in functions:  # one line per name: sources list the same function more than once
        names.setdefault(f.get("name", ""), f)
    ordered = sorted(names, key=lambda n: (n == FINISH, n))
    return "\n".join(render_function(names[n]) for n in ordered)


def render_state(query: str, functions: Iterable[Mapping[str, Any]],
                 history: Sequence[tuple[str, str]] = ()) -> str:
    """X: query, functions, and the (call, response) pairs so far, each call in `format_call` form."""
    lines = [f"Query: {query.strip()}", "Functions:", render_functions(functions)]
    for i, (call, response) in enumerate(history, 1):
        lines += [f"Call {i}: {call}", f"Response {i}: {response}"]
    return "\n".join(lines)


def finish_function() -> dict[str, Any]:
    return {"name": FINISH,
            "description": "Give the final answer, or give up and restart.",
            "parameters": {"type": "object",
                           "properties": {"return_type": {"type": "string",
                                                          "enum": ["give_answer", "give_up_and_restart"]},
                                          "final_answer": {"type": "string"}},
                           "required": ["return_type"]}}


_PARAM_TYPES = {"NUMBER": "integer", "STRING": "string", "BOOLEAN": "boolean"}


def function_from_api(api: Mapping[str, Any], *, where: str = "") -> tuple[dict[str, Any], str, str, str]:
    """Upstream's OpenAI-style function for one `api_list` entry, with its (category, tool, api) route."""
    try:
        category, tool_name, api_name = api["category_name"], api["tool_name"], api["api_name"]
    except (KeyError, TypeError) as exc:
        raise DataError(f"api_list entry lacks {exc}", path=where or None, field="api_list") from None
    for key, value in (("category_name", category), ("tool_name", tool_name), ("api_name", api_name)):
        if not isinstance(value, str):
            raise DataError(f"api_list entry's {key} must be a string, got {type(value).__name__}",
                            path=where or None, field="api_list")
    tool = standardize(tool_name)
    pure_api = change_name(standardize(api_name))
    name = api_function_name(api_name, tool)
    description = f'This is the subfunction for tool "{tool}", you can use this tool.'
    if str(api.get("api_description") or "").strip():
        text = str(api["api_description"]).strip().replace(api_name, name)[:256]
        description += f'The description of this function is: "{text}"'
    properties: dict[str, Any] = {}
    required: list[str] = []
    optional: list[str] = []
    # Upstream lists optional parameters only for APIs that also have required ones; kept, so that
    # functions built from a query file equal those recorded in the answer files.
    groups = (("required_parameters", required), ("optional_parameters", optional))
    for group, names in groups if api.get("required_parameters") else ():
        if not isinstance(api.get(group) or [], list):
            raise DataError("expected a list of parameters", path=where or None, field=group)
        for para in api.get(group) or []:
            if not isinstance(para, Mapping) or "name" not in para:
                raise DataError("parameter without a name", path=where or None, field=group)
            pname = change_name(standardize(str(para["name"])))
            spec = {"type": _PARAM_TYPES.get(str(para.get("type", "")), "string"),
                    "description": str(para.get("description") or "")[:256]}
            if len(str(para.get("default", ""))) != 0:
                spec["example_value"] = para.get("default")
            properties[pname] = spec
            names.append(pname)
    function = {"name": name, "description": description,
                "parameters": {"type": "object", "properties": properties, "required": required,
                               "optional": optional}}
    return function, str(category), tool, pure_api
