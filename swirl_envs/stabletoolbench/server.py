"""A virtual API server speaking StableToolBench's `POST /virtual` protocol.

Request body (JSON object): `category`, `tool_name`, `api_name` (strings), `tool_input` (a JSON string
or an object), and optionally `strip`, `toolbench_key`, `rapidapi_key` (strings, ignored here). The
answer is the API's response, normally `{"error": "", "response": ...}`.

Cache layout and key, as upstream's server (so its `tool_response_cache` folders work unchanged):
`<cache_dir>/<category'>/<tool'>_for_<category'>/<api'>.json`, where category' is the standardised
category, tool' = standardize(tool_name) and api' = change_name(standardize(api_name)); each file is one
JSON object whose keys are `str(parsed tool_input)`, i.e. the Python repr of the parsed arguments
(`"{'query': 'x'}"`, `"{}"` for no input), and whose values are the stored responses.

On a miss, a pluggable simulator `Callable[[dict], Any]` answers (a dict, or JSON text of one), and the
answer is saved to the cache unless `save_misses=False`. Saving takes a per-file lock, re-reads the file,
adds the entry and atomically replaces the file (temp file in the same folder, fsync, os.replace), so
concurrent misses on one file never lose entries and readers never see a half-written file. The lock is
per process: do not point two server processes at one cache folder while both save misses.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..errors import SwirlError
from ..fileio import write_atomic
from .conversation import change_name, format_call, render_state, standardize, standardize_category

log = logging.getLogger(__name__)

Simulator = Callable[[dict], Any]

MAX_BODY_BYTES = 1 << 20
MAX_NAME_CHARS = 256
MAX_DEPTH = 64  # nesting of the body and of tool_input: deeper is refused before anything recurses on it
RETRY_AFTER_S = 2
_REQUIRED = {"category": str, "tool_name": str, "api_name": str}
_OPTIONAL = {"strip": str, "toolbench_key": str, "rapidapi_key": str}
NO_SIMULATOR_ERROR = "No cached response for this call and no simulator is configured"


class RequestError(SwirlError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _check_name(field: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RequestError(400, f"field {field!r} must be a non-empty string")
    if len(value) > MAX_NAME_CHARS:
        raise RequestError(400, f"field {field!r} is longer than {MAX_NAME_CHARS} characters")
    if "\x00" in value or "/" in value or "\\" in value or ".." in value or os.path.isabs(value):
        raise RequestError(400, f"field {field!r} may not contain '/', '\\\\', '..' or NUL")
    return value


def validate_request(body: Any) -> dict[str, Any]:
    """The request as a dict with parsed `tool_input`, or RequestError(400) naming the bad field."""
    if not isinstance(body, dict):
        raise RequestError(400, "request body must be a JSON object")
    unknown = set(body) - set(_REQUIRED) - set(_OPTIONAL) - {"tool_input"}
    if unknown:
        raise RequestError(400, f"unknown fields {sorted(unknown)}")
    for name in _REQUIRED:
        if name not in body:
            raise RequestError(400, f"missing field {name!r}")
        _check_name(name, body[name])
    for name, kind in _OPTIONAL.items():
        if name in body and not isinstance(body[name], kind):
            raise RequestError(400, f"field {name!r} must be a string")
    if "tool_input" not in body:
        raise RequestError(400, "missing field 'tool_input'")
    if not isinstance(body["tool_input"], str | dict):
        raise RequestError(400, "field 'tool_input' must be a JSON string or an object")
    return dict(body)


@dataclass(frozen=True)
class CacheLocation:
    category: str  # standardised
    tool: str  # "<tool>_for_<category>"
    api: str
    function: str  # the model-facing name, `<api>_for_<tool>`

    def relpath(self) -> Path:
        return Path(self.category, self.tool, self.api + ".json")


def cache_location(category: str, tool_name: str, api_name: str) -> CacheLocation:
    """Upstream's folder/file names for a call (its `prepare_tool_name_and_url`)."""
    std_category = standardize_category(category)
    api = change_name(standardize(api_name)).split(f"_for_{tool_name}")[0]
    if tool_name.endswith(f"_for_{std_category}"):
        bare = standardize(tool_name[: -len(f"_for_{std_category}")])
        folder = tool_name
    else:
        bare = standardize(tool_name)
        folder = f"{bare}_for_{std_category}"
    return CacheLocation(std_category, folder, api, f"{api}_for_{bare}"[-64:])


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


def cache_key(tool_input: Any) -> str:
    """Upstream's cache key: the Python str() of the parsed input."""
    return str(tool_input)


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


class ResponseCache:
    """The cache folder: lookups through a small parsed-file memory, saves under per-file locks."""

    def __init__(self, cache_dir: str | Path, *, memory_files: int = 256):
        self.root = Path(cache_dir).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._locks: dict[Path, tuple[threading.Lock, dict[str, Any]]] = {}  # per file: lock, queued entries
        self._locks_guard = threading.Lock()
        self._memory: OrderedDict[Path, tuple[tuple[int, int], dict]] = OrderedDict()
        self._memory_guard = threading.Lock()
        self._memory_files = memory_files

    def path_for(self, location: CacheLocation) -> Path:
        path = (self.root / location.relpath()).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            raise RequestError(400, "tool/api names resolve outside the cache folder")
        return path

    def _file_state(self, path: Path) -> tuple[threading.Lock, dict[str, Any]]:
        with self._locks_guard:
            if path not in self._locks:
                self._locks[path] = (threading.Lock(), {})
            return self._locks[path]

    def read(self, path: Path) -> dict:
        """The file's entries ({} if absent); SwirlError if it exists but is not a JSON object."""
        try:
            stat = path.stat()
        except FileNotFoundError:
            return {}
        except OSError as exc:  # e.g. a file where a folder should be
            raise SwirlError(f"cache file {path}: {exc}") from None
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._memory_guard:
            cached = self._memory.get(path)
            if cached is not None and cached[0] == stamp:
                self._memory.move_to_end(path)
                return cached[1]
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SwirlError(f"cache file {path}: unreadable or not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise SwirlError(f"cache file {path}: expected a JSON object keyed by tool input")
        with self._memory_guard:
            self._memory[path] = (stamp, data)
            self._memory.move_to_end(path)
            while len(self._memory) > self._memory_files:
                self._memory.popitem(last=False)
        return data

    def get(self, path: Path, key: str) -> Any | None:
        return self.read(path).get(key)

    def put(self, path: Path, key: str, value: Any) -> None:
        """Add one entry; returns once it is on disk. Concurrent puts to one file share a write (group
        commit): each queues its entry, and whoever holds the file's lock writes everything queued."""
        lock, pending = self._file_state(path)
        with self._locks_guard:
            pending[key] = value
        with lock:
            with self._locks_guard:
                batch = dict(pending)
                pending.clear()
            if not batch:
                return  # an earlier holder of the lock already wrote our entry
            try:
                entries = dict(self.read(path))  # re-read under the lock
                entries.update(batch)
                path.parent.mkdir(parents=True, exist_ok=True)
                # indent=4 and ASCII-only, as upstream writes it: readable under any locale
                write_atomic(path, json.dumps(entries, indent=4))
            except BaseException:
                with self._locks_guard:  # give the entries back to the next writer
                    for k, v in batch.items():
                        pending.setdefault(k, v)
                raise
            finally:
                with self._memory_guard:
                    self._memory.pop(path, None)


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
    """The protocol without HTTP: `answer(body) -> (status, response)`; the HTTP handler wraps it."""

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
        self._admitted, self._capacity = 0, max_simulations + max_waiting

    def _count(self, name: str) -> None:
        with self._stats_guard:
            self.stats[name] += 1

    def answer(self, body: Any) -> tuple[int, dict]:
        try:
            request = validate_request(body)
            location = cache_location(request["category"], request["tool_name"], request["api_name"])
            path = self.cache.path_for(location)
        except RequestError as exc:
            self._count("errors")
            return exc.status, {"error": str(exc), "response": ""}
        if location.api == "chat_with_user":  # upstream answers this pseudo-API itself
            return 200, {"error": "", "response": "Chat with user."}
        try:
            ok, tool_input = parse_tool_input(request["tool_input"])
        except RequestError as exc:
            self._count("errors")
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
            self._count("hits")
            return 200, hit
        self._count("misses")
        if self.simulator is None:
            return 200, {"error": f"{NO_SIMULATOR_ERROR} ({location.relpath().as_posix()} key {key})",
                         "response": ""}
        # The request as sent, plus what the cache derived: the parsed input, the model-facing function.
        simulated = {**request, "tool_input": tool_input, "cache_key": key, "function": location.function,
                     "cache_file": location.relpath().as_posix()}
        with self._stats_guard:
            admitted = self._admitted < self._capacity
            self._admitted += admitted
        if not admitted:
            self._count("busy")
            return 503, {"error": f"the simulator is busy; retry after {RETRY_AFTER_S} s", "response": ""}
        try:
            with self._slots:
                response = _as_response(self.simulator(simulated))
            json.dumps(response)  # a value that cannot be stored must not reach the cache's write queue
        except Exception as exc:  # the simulator is user code; its failure is one error response
            log.exception("simulator failed for %s", location.relpath())
            return 200, {"error": f"Failed to generate fake response: {type(exc).__name__}: {exc}", "response": ""}
        finally:
            with self._stats_guard:
                self._admitted -= 1
        self._count("simulated")
        if self.save_misses and not corrupt:
            self.cache.put(path, key, response)
        return 200, response


class _Handler(BaseHTTPRequestHandler):
    server_version = "swirl-virtual-api/1"
    protocol_version = "HTTP/1.1"  # keep-alive: load tests and agents reuse connections
    timeout = 30  # a client that stalls mid-request frees its thread
    # One buffered write per response (flushed by http.server after each request) and no Nagle delay:
    # unbuffered headers + body as two small writes cost ~40 ms per request through delayed ACKs.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True

    def _send(self, status: int, payload: Any) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        if status == 503:
            self.send_header("Retry-After", str(RETRY_AFTER_S))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str, *, close: bool = False) -> None:
        if close:
            self.close_connection = True
        self._send(status, {"error": message, "response": ""})

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path.split("?", 1)[0] != "/virtual":
            self._error(404, f"unknown path {self.path!r}; POST /virtual", close=True)
            return
        length_text = self.headers.get("Content-Length")
        if length_text is None or not length_text.isdigit():
            self._error(411, "Content-Length required", close=True)
            return
        length = int(length_text)
        limit = self.server.max_body_bytes  # type: ignore[attr-defined]
        if length > limit:
            self._error(413, f"request body of {length} bytes exceeds the limit of {limit}", close=True)
            return
        raw = self.rfile.read(length)
        try:
            body = loads_bounded(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            self._error(400, f"request body is not valid JSON: {exc}")
            return
        try:
            status, payload = self.server.api.answer(body)  # type: ignore[attr-defined]
        except Exception as exc:  # e.g. the cache folder became unwritable: answer, do not drop the line
            log.exception("request failed")
            status, payload = 500, {"error": f"server error: {type(exc).__name__}: {exc}", "response": ""}
        self._send(status, payload)

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/health":
            self._send(200, {"status": "ok", **self.server.api.stats})  # type: ignore[attr-defined]
        else:
            self._error(405 if self.path == "/virtual" else 404, "use POST /virtual", close=True)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug("%s %s", self.address_string(), format % args)


class VirtualAPIServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], api: VirtualAPI, *, max_body_bytes: int = MAX_BODY_BYTES):
        self.api, self.max_body_bytes = api, max_body_bytes
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


def make_server(cache_dir: str | Path, *, host: str = "127.0.0.1", port: int = 0,
                simulator: Simulator | None = None, save_misses: bool = True,
                max_body_bytes: int = MAX_BODY_BYTES, max_simulations: int = 2,
                max_waiting: int = 16) -> VirtualAPIServer:
    """A bound, not yet serving, server; call `.serve_forever()` (e.g. in a thread), then `.shutdown()`."""
    api = VirtualAPI(cache_dir, simulator=simulator, save_misses=save_misses, max_simulations=max_simulations,
                     max_waiting=max_waiting)
    return VirtualAPIServer((host, port), api, max_body_bytes=max_body_bytes)


def serve(cache_dir: str | Path, *, host: str = "127.0.0.1", port: int = 8080,
          simulator: Simulator | None = None, save_misses: bool = True,
          max_body_bytes: int = MAX_BODY_BYTES, max_simulations: int = 2, max_waiting: int = 16) -> None:
    """Serve until interrupted (Ctrl-C)."""
    server = make_server(cache_dir, host=host, port=port, simulator=simulator, save_misses=save_misses,
                         max_body_bytes=max_body_bytes, max_simulations=max_simulations, max_waiting=max_waiting)
    print(f"virtual API server on {server.url}/virtual, cache {server.api.cache.root}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


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
