"""StableToolBench's `/virtual` protocol without HTTP: the request model, its bounded parsing, and
`VirtualAPI`, which answers a call from the response cache or, on a miss, from a simulator.

A simulator is a `Callable[[dict], Any]` answering a miss (a dict, or JSON text of one); its answer is
saved to the cache unless `save_misses=False`. At most `max_simulations` run at once, at most
`max_waiting` wait for a slot, and the rest are refused (503) so that the caller can retry later.
`server` puts this behind FastAPI and uvicorn.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from ..errors import SwirlError
from .cache import OutsideCacheError, ResponseCache, cache_key, cache_location
from .conversation import format_call, render_state

log = logging.getLogger(__name__)

Simulator = Callable[[dict], Any]

MAX_NAME_CHARS = 256
MAX_DEPTH = 64  # nesting of the body and of tool_input: deeper is refused before anything recurses on it
RETRY_AFTER_S = 2
NO_SIMULATOR_ERROR = "No cached response for this call and no simulator is configured"


class RequestError(SwirlError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------- the request


def _safe_name(value: str) -> str:
    # The names become folder and file names in the cache: nothing that could climb out of it.
    if not value.strip():
        raise PydanticCustomError("blank_name", "must be a non-empty string")
    if "\x00" in value or "/" in value or "\\" in value or ".." in value or os.path.isabs(value):
        raise PydanticCustomError("unsafe_name", "may not contain '/', '\\\\', '..' or NUL")
    return value


Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS), AfterValidator(_safe_name)]


class VirtualRequest(BaseModel):
    """One call of a virtual API, as upstream StableToolBench's clients send it."""

    model_config = ConfigDict(extra="forbid", strict=True)

    category: Name = Field(description="the tool's RapidAPI category, e.g. 'Data'")
    tool_name: Name = Field(description="the tool, bare ('theclique') or suffixed ('theclique_for_Data')")
    api_name: Name = Field(description="the API of the tool, e.g. 'transfermarkt_search'")
    tool_input: str | dict[str, Any] = Field(description="the arguments: JSON text ('' for none) or an object")
    strip: str = Field("", description="accepted for upstream compatibility; ignored")
    toolbench_key: str = Field("", description="accepted for upstream compatibility; ignored")
    rapidapi_key: str = Field("", description="accepted for upstream compatibility; ignored")


class VirtualResponse(BaseModel):
    """The API's answer (a cached or simulated response), or a refusal with its reason in `error`."""

    error: str = ""
    response: Any = ""


def _one_line(exc: ValidationError) -> str:
    """pydantic's report as one line naming the field, in the words the protocol's clients already know."""
    errors = exc.errors(include_url=False)
    unknown = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden")
    if unknown:
        return f"unknown fields {unknown}"
    error = errors[0]
    if not error["loc"]:
        return "request body must be a JSON object"
    field = error["loc"][0]
    if error["type"] == "missing":
        return f"missing field {field!r}"
    if field == "tool_input":  # a union: pydantic's report lists each branch, which says less than this
        return "field 'tool_input' must be a JSON string or an object"
    message = error["msg"]
    return f"field {field!r}: {message[:1].lower()}{message[1:]}"


def parse_request(body: Any) -> VirtualRequest:
    """The validated request, or RequestError(400) naming the bad field."""
    try:
        return VirtualRequest.model_validate(body)
    except ValidationError as exc:
        raise RequestError(400, _one_line(exc)) from None


def nesting_depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """Depth of nested lists/objects, counted level by level without recursion; stops counting past `limit`."""
    depth, level = 0, [value]
    while depth <= limit:
        containers = [v for v in level if isinstance(v, dict | list)]
        if not containers:
            break
        depth += 1
        level = [child for v in containers for child in (v.values() if isinstance(v, dict) else v)]
    return depth


class NestingError(ValueError):
    """A JSON document nested deeper than MAX_DEPTH."""


def loads_bounded(text: str | bytes) -> Any:
    """json.loads that refuses (NestingError) a document nested deeper than MAX_DEPTH."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise NestingError(f"nested deeper than {MAX_DEPTH} levels") from None
    if nesting_depth(value) > MAX_DEPTH:
        raise NestingError(f"nested deeper than {MAX_DEPTH} levels")
    return value


def parse_tool_input(raw: str | dict) -> tuple[bool, Any]:
    """(ok, parsed) as upstream: '' is {}, a dict stays, other text must be JSON; RequestError (400) for
    JSON nested deeper than MAX_DEPTH."""
    if isinstance(raw, dict):
        return True, raw
    if raw == "":
        return True, {}
    try:
        return True, loads_bounded(raw)
    except NestingError as exc:
        raise RequestError(400, f"tool_input is {exc}") from None
    except ValueError:
        return False, None


# ---------------------------------------------------------------- the protocol, without HTTP


def _as_response(result: Any) -> dict:
    """A simulator's answer as a response dict: a dict as is, JSON text of a dict parsed, else wrapped."""
    if isinstance(result, dict):
        return result
    if isinstance(result, str):
        try:
            parsed = json.loads(result)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            return parsed
    return {"error": "", "response": result}


class VirtualAPI:
    """The protocol without HTTP: `answer(body) -> (status, response)`; thread-safe, blocking."""

    def __init__(self, cache_dir: str | Path, *, simulator: Simulator | None = None, save_misses: bool = True,
                 max_simulations: int = 2, max_waiting: int = 16):
        if max_simulations < 1 or max_waiting < 0:
            raise SwirlError(f"max_simulations must be >= 1 and max_waiting >= 0, got {max_simulations}, {max_waiting}")
        self.cache = ResponseCache(cache_dir)
        self.simulator, self.save_misses = simulator, save_misses
        self.stats = {"hits": 0, "misses": 0, "simulated": 0, "errors": 0, "busy": 0}
        self._stats_guard = threading.Lock()
        # A model answers misses: at most `max_simulations` run at once (more would only thrash the cores),
        # at most `max_waiting` wait for a slot, and the rest are told to come back (503, Retry-After).
        self._slots = threading.Semaphore(max_simulations)
        self.capacity = max_simulations + max_waiting
        self._admitted = self._running = self._peak_running = 0

    def count(self, name: str) -> None:
        """Add one to `stats[name]` (thread-safe; the HTTP layer counts the requests it refuses)."""
        with self._stats_guard:
            self.stats[name] += 1

    def health(self) -> dict[str, Any]:
        """The counters, plus the simulations running and admitted now and the most ever run at once."""
        with self._stats_guard:
            return {"status": "ok", **self.stats, "running": self._running, "admitted": self._admitted,
                    "peak_running": self._peak_running}

    def answer(self, body: Any) -> tuple[int, dict]:
        """Validate a decoded JSON body, then answer it."""
        try:
            call = parse_request(body)
        except RequestError as exc:
            self.count("errors")
            return exc.status, {"error": str(exc), "response": ""}
        return self.answer_call(call)

    def answer_call(self, call: VirtualRequest) -> tuple[int, dict]:
        try:
            location = cache_location(call.category, call.tool_name, call.api_name)
            path = self.cache.path_for(location)
        except OutsideCacheError as exc:
            self.count("errors")
            return 400, {"error": str(exc), "response": ""}
        if location.api == "chat_with_user":  # upstream answers this pseudo-API itself
            return 200, {"error": "", "response": "Chat with user."}
        try:
            ok, tool_input = parse_tool_input(call.tool_input)
        except RequestError as exc:
            self.count("errors")
            return exc.status, {"error": str(exc), "response": ""}
        if not ok:
            return 200, {"error": "Tool input parse error...\n", "response": ""}
        key = cache_key(tool_input)
        corrupt = False
        try:
            hit = self.cache.get(path, key)
        except SwirlError as exc:  # a broken cache file is reported, never overwritten
            log.error("%s", exc)
            hit, corrupt = None, True
        if hit is not None:
            self.count("hits")
            return 200, hit
        self.count("misses")
        if self.simulator is None:
            return 200, {"error": f"{NO_SIMULATOR_ERROR} ({location.relpath().as_posix()} key {key})",
                         "response": ""}
        # The request as sent, plus what the cache derived: the parsed input, the model-facing function.
        simulated = {**call.model_dump(exclude_unset=True), "tool_input": tool_input, "cache_key": key,
                     "function": location.function, "cache_file": location.relpath().as_posix()}
        with self._stats_guard:
            admitted = self._admitted < self.capacity
            self._admitted += admitted
        if not admitted:
            self.count("busy")
            return 503, {"error": f"the simulator is busy; retry after {RETRY_AFTER_S} s", "response": ""}
        try:
            with self._slots:
                with self._stats_guard:
                    self._running += 1
                    self._peak_running = max(self._peak_running, self._running)
                try:
                    response = _as_response(self.simulator(simulated))
                finally:
                    with self._stats_guard:
                        self._running -= 1
            json.dumps(response)  # a value that cannot be stored must not reach the cache's write queue
        except Exception as exc:  # the simulator is user code; its failure is one error response
            log.exception("simulator failed for %s", location.relpath())
            return 200, {"error": f"Failed to generate fake response: {type(exc).__name__}: {exc}", "response": ""}
        finally:
            with self._stats_guard:
                self._admitted -= 1
        self.count("simulated")
        if self.save_misses and not corrupt:
            self.cache.put(path, key, response)
        return 200, response

# ---------------------------------------------------------------- a trained world model as the simulator


def simulator_state(request: dict) -> tuple[str, str]:
    """The (X, Z) texts for a server request, in the transitions' rendering.

    The server sees one call, not the conversation, so X holds no query or history: just the one function.
    """
    function = {"name": request["function"], "description": "", "parameters": {
        "type": "object", "properties": {k: {"type": "string"} for k in request["tool_input"]}
        if isinstance(request["tool_input"], dict) else {}, "required": []}}
    return render_state("", [function]), format_call(request["function"], request["tool_input"])


def fwm_simulator(predict_next_states: Callable[[list[str], list[str]], Sequence[str]]) -> Simulator:
    """A simulator answering from a forward world model: `predict_next_states(states, actions)` -> Y texts."""

    def simulate(request: dict) -> dict:
        state, action = simulator_state(request)
        (prediction,) = predict_next_states([state], [action])
        return _as_response(prediction)

    return simulate
