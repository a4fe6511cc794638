"""One registry type for everything pluggable (benchmarks, trainers, image codecs): names -> objects.

An entry is registered with the object itself or with an import string, "module:attr" (dots after the
colon reach nested attributes), imported only when the entry is first asked for, so listing names stays
cheap. Third-party packages add entries through an entry-point group: listing them reads package metadata
only, and a plugin that fails to load is recorded with its distribution and error, never taking the
built-ins down.

This module imports only the standard library and `swirl_envs.errors`, so swirl_envs, swirl_core and
evals may all build on it.
"""

from __future__ import annotations

import importlib
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Generic, TypeVar

from .errors import SwirlError, UnknownNameError

T = TypeVar("T")


def import_object(target: str) -> Any:
    """The object an import string names: "package.module:Class" or "module:outer.inner"."""
    module_name, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split(".") if attr else []:
        obj = getattr(obj, part)
    return obj


# ---------------------------------------------------------------- entry-point plugins


@dataclass
class PluginInfo:
    group: str
    name: str
    value: str
    distribution: str
    version: str
    status: str = "not loaded"  # "loaded" | "failed" once tried
    error: str = ""
    traceback: str = ""  # shown with --debug

    @property
    def failure(self) -> str:
        """One line naming the plugin, its distribution and what went wrong."""
        return (f"{self.group} plugin {self.name!r} from {self.distribution} {self.version} failed to load: "
                f"{self.error}")

    def record_failure(self, exc: BaseException) -> None:
        self.status, self.error = "failed", f"{type(exc).__name__}: {exc}"
        self.traceback = traceback.format_exc()
        _PLUGIN_STATUS[(self.group, self.name)] = self


# What was tried so far, by (group, entry name): listing again must not forget a failure.
_PLUGIN_STATUS: dict[tuple[str, str], PluginInfo] = {}


def discover_plugins(group: str) -> list[PluginInfo]:
    """Entry points of a group, read from package metadata without importing plugin code."""
    found = []
    for ep in metadata.entry_points(group=group):
        dist = getattr(ep, "dist", None)
        found.append(_PLUGIN_STATUS.get((group, ep.name)) or PluginInfo(
            group, ep.name, ep.value, dist.name if dist else "?", dist.version if dist else "?"))
    return sorted(found, key=lambda p: p.name)


def load_entry_point(info: PluginInfo) -> Any:
    """Import a plugin's object; a failure is recorded on `info` and re-raised."""
    try:
        obj = metadata.EntryPoint(name=info.name, value=info.value, group=info.group).load()
    except Exception as exc:  # a plugin may fail in any way; the caller decides whether that is fatal
        info.record_failure(exc)
        raise
    info.status, info.error, info.traceback = "loaded", "", ""
    _PLUGIN_STATUS[(info.group, info.name)] = info
    return obj


# ---------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Entry:
    name: str
    target: Any  # the object, or an import string resolved on first get()
    source: str  # "builtin", a plugin's distribution, or the module that registered it
    about: Mapping[str, Any] = field(default_factory=dict)  # what the owner keeps with it (an env id, ...)


class LazyRegistry(Generic[T]):
    """Named objects of one kind, imported on first use; plugins come from entry-point `group`, whose entry
    names are registry names and whose values are the objects. `check(name, obj)` vets every object (it
    raises SwirlError) when it is registered or first imported."""

    def __init__(self, kind: str, group: str | None = None, check: Callable[[str, Any], None] | None = None):
        self.kind, self.group, self.check = kind, group, check
        self._entries: dict[str, Entry] = {}
        self._loaded: dict[str, T] = {}

    def register(self, name: str, target: str | T, *, source: str | None = None, override: bool = False,
                 **about: Any) -> None:
        """Add `name`; registering the same target again is a no-op, another one needs `override`."""
        old = self._entries.get(name)
        if old is not None and not override and old.target != target and self._loaded.get(name) is not target:
            raise SwirlError(f"{self.kind} {name!r} is already registered by {old.source}")
        if not isinstance(target, str) and self.check is not None:
            self.check(name, target)
        if source is None:
            source = target.partition(":")[0] if isinstance(target, str) else getattr(target, "__module__", "?")
        self._entries[name] = Entry(name, target, source, about)
        self._loaded.pop(name, None)

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)
        self._loaded.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def plugins(self) -> list[PluginInfo]:
        """This kind's installed plugins with their load status (nothing is imported here)."""
        return discover_plugins(self.group) if self.group else []

    def names(self) -> list[str]:
        """Registered and installed-plugin names; no plugin code is imported."""
        return sorted(set(self._entries) | {p.name for p in self.plugins()})

    def entry(self, name: str) -> Entry:
        """The registered entry (a plugin's is registered by get()); UnknownNameError lists the known names."""
        if name not in self._entries:
            raise UnknownNameError(self.kind, name, self.names())
        return self._entries[name]

    def get(self, name: str) -> T:
        """The object called `name`, imported (and loaded from its plugin) on first use."""
        if name in self._loaded:
            return self._loaded[name]
        if name not in self._entries:
            self._register_plugin(name)
        target = self.entry(name).target
        obj = import_object(target) if isinstance(target, str) else target
        if isinstance(target, str) and self.check is not None:
            self.check(name, obj)
        self._loaded[name] = obj
        return obj

    def _register_plugin(self, name: str) -> None:
        info = next((p for p in self.plugins() if p.name == name), None)
        if info is None:
            raise UnknownNameError(self.kind, name, self.names())
        try:
            obj = load_entry_point(info)
        except Exception as exc:
            raise SwirlError(info.failure) from exc
        self.register(name, obj, source=info.distribution, override=True)
