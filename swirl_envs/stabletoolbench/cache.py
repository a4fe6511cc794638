"""The `/virtual` server's response cache: upstream StableToolBench's folder layout and key, saved safely.

Layout and key, as upstream's server (so its `tool_response_cache` folders work unchanged):
`<cache_dir>/<category'>/<tool'>_for_<category'>/<api'>.json`, where category' is the standardised
category, tool' = standardize(tool_name) and api' = change_name(standardize(api_name)); each file is one
JSON object whose keys are `str(parsed tool_input)`, i.e. the Python repr of the parsed arguments
(`"{'query': 'x'}"`, `"{}"` for no input), and whose values are the stored responses.

Saving takes a per-file lock, re-reads the file, adds the entry and atomically replaces the file (temp
file in the same folder, fsync, os.replace), so concurrent saves to one file never lose entries and
readers never see a half-written file. The lock is per process: do not point two server processes at one
cache folder while both save misses.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SwirlError
from ..fileio import write_atomic
from .conversation import change_name, standardize, standardize_category


class OutsideCacheError(SwirlError):
    """Names that would resolve to a file outside the cache folder."""


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


def cache_key(tool_input: Any) -> str:
    """Upstream's cache key: the Python str() of the parsed input."""
    return str(tool_input)


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
        """The file for `location`; OutsideCacheError if the names resolve outside the folder (a symlink,
        say: the request validation already refuses '/', '..' and the like)."""
        path = (self.root / location.relpath()).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            raise OutsideCacheError("tool/api names resolve outside the cache folder")
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
