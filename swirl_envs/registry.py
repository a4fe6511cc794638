"""One registry of benchmarks, the Gymnasium ids over them, and third-party plugins.

Built-ins are declared here as import paths and imported only when used. Plugins are Python entry
points in the `swirl.envs` group (name = namespace, value = `module:register`, a function that calls
`register_benchmark`). Importing swirl_envs runs every installed plugin's `register` so that
`gymnasium.make("<namespace>/<Env>-v0")` knows its ids: Gymnasium (>= 1.0) looks ids up in a plain dict
with no hook for loading a plugin on a miss, so the ids must be there before it is asked (Gymnasium's
own entry-point loader, up to 0.29, likewise ran every plugin when gymnasium was imported). A plugin
that fails is logged in one line and skipped; `make` names its error when one of its ids is asked for.
Benchmarks themselves (their modules and data) are still imported only when built.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

from . import lazy_registry
from .errors import SwirlError, UnknownNameError
from .lazy_registry import LazyRegistry, PluginInfo, load_entry_point

ENV_GROUP = "swirl.envs"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    entry_point: Any  # "module:Class" (a Benchmark subclass) or a callable returning a Benchmark
    env_id: str | None = None
    description: str = ""
    source: str = "builtin"  # or the plugin's distribution name


BENCHMARKS: LazyRegistry[Any] = LazyRegistry("benchmark")

BUILTINS = [
    BenchmarkSpec("textphysics", "swirl_envs.sims.physics:TextPhysics", "swirl/TextPhysics-v0",
                  "objects on a line with friction, walls and collisions; push/pull/drop/wait"),
    BenchmarkSpec("textweb", "swirl_envs.sims.web:TextWeb", "swirl/TextWeb-v0",
                  "a generated shop/inbox website as accessibility-tree text; click/type/select/back/submit"),
    BenchmarkSpec("toolsim", "swirl_envs.sims.tools:ToolSim", "swirl/ToolSim-v0",
                  "simulated JSON APIs (weather, currency, calendar, database, ...); action = JSON tool call"),
    BenchmarkSpec("scienceworld", "swirl_envs.scienceworld:ScienceWorld", "swirl/ScienceWorld-v0",
                  "the ScienceWorld simulator (optional extra, needs Java)"),
    BenchmarkSpec("mind2web", "swirl_envs.mind2web:Mind2Web", "swirl/Mind2Web-v0",
                  "Mind2Web web trajectories: cleaned HTML, element operations"),
    BenchmarkSpec("stabletoolbench", "swirl_envs.stabletoolbench:StableToolBench", "swirl/StableToolBench-v0",
                  "StableToolBench / ToolBench trajectories: conversation, tool call, API response"),
    BenchmarkSpec("apibank", "swirl_envs.apibank:APIBank", "swirl/APIBank-v0",
                  "API-Bank dialogues (levels 1-3, 752 calls in 311 dialogues): dialogue and API results so far, "
                  "JSON API call, API result; 505 train / 79 validation / 168 test transitions"),
    BenchmarkSpec("aurora", "swirl_envs.visual.aurora:AuroraBench", "swirl/AuroraBench-v0",
                  "AURORA-Bench image edits (source image, instruction, edited image)"),
    BenchmarkSpec("bytemorph", "swirl_envs.visual.bytemorph:ByteMorph", "swirl/ByteMorph-v0",
                  "ByteMorph-Bench non-rigid image edits"),
    BenchmarkSpec("worldprediction", "swirl_envs.visual.worldprediction:WorldPrediction",
                  "swirl/WorldPrediction-v0", "WorldPrediction WM/PP: which action links two frames"),
    BenchmarkSpec("visualphysics", "swirl_envs.visual.physics:VisualPhysics", "swirl/VisualPhysics-v0",
                  "rendered 2-D physics with Kubric-style edit instructions"),
]


def register_benchmark(name: str, entry_point: str | Any, *, env_id: str | None = None,
                       description: str = "", source: str = "builtin", override: bool = False) -> None:
    """Add a benchmark (and optionally its Gymnasium id). Plugins call this from their register()."""
    BENCHMARKS.register(name, entry_point, source=source, override=override, env_id=env_id,
                        description=description)
    if env_id is not None and env_id not in gym.registry:
        gym.register(id=env_id, entry_point="swirl_envs.registry:make_env", kwargs={"benchmark": name})


def benchmark_names() -> list[str]:
    return BENCHMARKS.names()


def get_spec(name: str) -> BenchmarkSpec:
    if name not in BENCHMARKS:
        load_plugins()
    entry = BENCHMARKS.entry(name)
    return BenchmarkSpec(name, entry.target, entry.about["env_id"], entry.about["description"], entry.source)


def make_benchmark(name: str, **kwargs: Any):
    """Build a benchmark by name, e.g. make_benchmark("textphysics", labelled=True)."""
    get_spec(name)  # loads the plugins first when the name is not known yet
    return BENCHMARKS.get(name)(**kwargs)


def make_env(benchmark: str, *, split: str = "test", reveal_actions: bool = False, **kwargs: Any):
    """Gymnasium entry point: the env view of a benchmark's split (see swirl_envs.env)."""
    bench = make_benchmark(benchmark, labelled=True, **kwargs)
    return bench.make_env(split=split, reveal_actions=reveal_actions)


def make(env_id: str, **kwargs: Any) -> gym.Env:
    """gymnasium.make, after loading the plugin that owns the id's namespace if it is not registered yet;
    an id in the namespace of a plugin that failed to load raises that plugin's error."""
    if env_id not in gym.registry:
        namespace = env_id.split("/", 1)[0] if "/" in env_id else None
        for info in load_plugins(only=namespace):
            if info.name == namespace and info.status == "failed":
                raise SwirlError(f"env id {env_id!r}: {info.failure}")
    if env_id not in gym.registry:
        known = [e.about["env_id"] for e in map(BENCHMARKS.entry, BENCHMARKS.names()) if e.about["env_id"]]
        raise UnknownNameError("env id", env_id, known)
    return gym.make(env_id, **kwargs)


def discover_plugins(group: str = ENV_GROUP) -> list[PluginInfo]:
    """A group's plugins (env plugins by default) with their status, from package metadata only."""
    return lazy_registry.discover_plugins(group)


def load_plugins(only: str | None = None) -> list[PluginInfo]:
    """Import and run the `register` function of each env plugin (once; `only`: the plugin of that
    namespace); returns every env plugin's status."""
    infos = discover_plugins(ENV_GROUP)
    for info in infos:
        if info.status != "not loaded" or (only is not None and info.name != only):
            continue
        try:
            load_entry_point(info)()
        except Exception as exc:  # load_entry_point records import errors; this records register()'s
            info.record_failure(exc)
            log.warning(info.failure)
    return infos


for _spec in BUILTINS:
    register_benchmark(_spec.name, _spec.entry_point, env_id=_spec.env_id, description=_spec.description)
