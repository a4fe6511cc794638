"""ScienceWorld, the real simulator (the `scienceworld` package from PyPI; it runs a Scala jar, so it needs Java).

Transitions come from two kinds of episode per (task, variation):
  * gold: the simulator's own gold action sequence for that variation;
  * random: seeded rollouts over the simulator's list of valid actions (a verb first, then one of its actions).
X is the state as upstream agents see it, rendered compactly (see `render_state`), Z the action command,
Y the state rendered the same way after the action, so each episode chains (Y of step t is X of step t+1).

Splits follow upstream's variation splits: train / validation / test = the simulator's train / dev / test
variations of each task (the first `variations` of each). Starting the JVM costs about a second and loading
a task a few more, so one simulator is kept per benchmark instance and episodes are generated lazily, one
whole episode at a time (so two interleaved iterators never see each other's simulator state).

The package is an optional extra: nothing here imports it until a simulator is needed, and where the
package or Java is missing the benchmark says so in one line (`check_requirements`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import random
import re
import shutil
import subprocess
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

from .benchmark import Benchmark
from .env import TransitionEnv
from .errors import DataError, SwirlError, UnknownNameError
from .transition import Transition

SPLIT_VARIATIONS = {"train": "get_variations_train", "validation": "get_variations_dev",
                    "test": "get_variations_test"}
CACHE_FORMAT = "swirl-scienceworld-cache/1"
MIN_JAVA = 11
EPISODE_MEMORY = 256  # episodes an env keeps to replay without the simulator
# The simulator lists a room's contents (and numbers ambiguous objects) in hash-set order, and its objects hash
# by identity. HotSpot draws identity hashes from per-thread generators, so that order changed with every episode
# the JVM had played before and with the machine's CPU count (a second pass over a split gave other data). A
# constant identity hash leaves insertion order, which each load() rebuilds the same way.
JVM_OPTIONS = "-XX:+UnlockExperimentalVMOptions -XX:hashCode=2"


@dataclass(frozen=True)
class ScienceWorldConfig:
    """What to generate. `tasks=None` means every task the simulator knows (30 in scienceworld 1.2)."""

    tasks: tuple[str, ...] | None = None
    variations: int | None = 3  # per task and split: the first N of the split's variation list; None = all
    include_gold: bool = True
    include_random: bool = True
    random_rollouts: int = 1  # random episodes per variation
    rollout_length: int = 10  # steps of a random episode (it stops early if the task ends)
    max_gold_steps: int | None = None  # truncate gold sequences (None = whole sequence)
    simplifications: str = ""  # upstream's simplification string, e.g. "easy" or "openDoors,selfWateringFlowerPots"
    # A wrong "focus on" ends the task at score -100, so random rollouts skip it by default to stay long.
    exclude_random_prefixes: tuple[str, ...] = ("focus on",)
    seed: int = 0

    def __post_init__(self):
        if self.variations is not None and self.variations < 1:
            raise SwirlError(f"scienceworld: variations must be >= 1 or None, got {self.variations}")
        if self.random_rollouts < 0 or self.rollout_length < 1:
            raise SwirlError("scienceworld: random_rollouts must be >= 0 and rollout_length >= 1, got "
                             f"{self.random_rollouts} and {self.rollout_length}")
        if self.max_gold_steps is not None and self.max_gold_steps < 1:
            raise SwirlError(f"scienceworld: max_gold_steps must be >= 1 or None, got {self.max_gold_steps}")
        if not (self.include_gold or (self.include_random and self.random_rollouts > 0)):
            raise SwirlError("scienceworld: nothing to generate; enable include_gold or include_random")


def check_requirements() -> None:
    """Raise SwirlError (one line, what to do) unless the scienceworld package and Java 11+ are available."""
    _check_package()
    java = shutil.which("java")
    if java is None:
        raise SwirlError(f"ScienceWorld needs Java {MIN_JAVA}+ on PATH (install a JRE, e.g. "
                         "`apt-get install openjdk-17-jre-headless`); no `java` executable was found")
    major = java_major_version(java)
    if major is not None and major < MIN_JAVA:
        raise SwirlError(f"ScienceWorld needs Java {MIN_JAVA}+ but {java} is Java {major}; "
                         "put a newer JRE first on PATH")


def _check_package() -> None:
    if importlib.util.find_spec("scienceworld") is None:
        raise SwirlError("ScienceWorld is not installed: pip install 'swirl-suite[scienceworld]' "
                         "(the `scienceworld` package from PyPI)")


def java_major_version(java: str) -> int | None:
    """The major version `java -version` reports (8 for "1.8.0_x"), or None when it cannot be read."""
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def _tidy(text: str, header: str = "") -> str:
    """Strip a redundant header, trailing spaces and blank lines; tabs become two spaces."""
    text = text.strip()
    if header and text.startswith(header):
        text = text[len(header):]
    lines = [line.replace("\t", "  ").rstrip() for line in text.split("\n")]
    return "\n".join(line for line in lines if line.strip()).strip("\n")


def render_state(task: str, observation: str, inventory: str, look: str) -> str:
    """The canonical text of a ScienceWorld state: what upstream agents read, with boilerplate removed.

    >>> render_state("Task Description:\\nBoil water.", "You move to the kitchen.",
    ...              "In your inventory, you see:\\n\\tan orange\\n", "This room is called the kitchen.")
    'Task: Boil water.\\nObservation: You move to the kitchen.\\nInventory:\\n  an orange\\nLook: This room is called the kitchen.'
    """
    inv = _tidy(inventory, "In your inventory, you see:")
    inv_text = f"Inventory:\n{inv}" if inv.startswith("  ") else f"Inventory: {inv}"  # items go one a line
    return "\n".join([f"Task: {_tidy(task, 'Task Description:').strip()}",
                      f"Observation: {_tidy(observation)}", inv_text, f"Look: {_tidy(look)}"])


def _rng(seed: int, *parts: Any) -> random.Random:
    # String seeds hash stably across processes (unlike hash()), so rollouts are reproducible everywhere.
    digest = hashlib.blake2b("/".join(map(str, (seed, *parts))).encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "little"))


def _random_action(rng: random.Random, valid: list[str], exclude: tuple[str, ...]) -> str | None:
    """A valid action, drawn verb first: the list holds every object pair for "connect"/"mix"/"move" (thousands)
    against a handful of "open"/"go"/"look" actions, and a flat draw would almost never move the agent."""
    by_verb: dict[str, list[str]] = {}
    for action in sorted(valid):  # the simulator's list order is not part of its contract
        if not action.startswith(exclude):
            by_verb.setdefault(action.split(" ", 1)[0], []).append(action)
    if not by_verb:
        return None
    return rng.choice(by_verb[rng.choice(sorted(by_verb))])


@dataclass(frozen=True)
class EpisodePlan:
    """Which episode to play: a task variation's gold sequence, or its random rollout number `rollout`."""

    task: str
    variation: int
    source: str  # "gold" | "random"
    rollout: int = 0

    @property
    def episode_id(self) -> str:
        return f"{self.task}-v{self.variation}-" + ("gold" if self.source == "gold" else f"random{self.rollout}")


class ScienceWorld(Benchmark):
    """The ScienceWorld simulator as a benchmark (see the module docstring).

    `cache_path` (or `data_dir`, which means the same here) names a directory where each completely generated
    split is written as JSONL and read back on later runs with the same configuration; nothing is cached
    unless one is given. Call `close()` (or use `with`) to stop the JVM early; it also stops with Python.
    """

    name = "scienceworld"
    version = "1"
    modality = "text"
    splits: ClassVar[tuple[str, ...]] = ("train", "validation", "test")
    primary_metric = "fwm/bleu"

    def __init__(self, *, data_dir: str | Path | None = None, labelled: bool = False,
                 tasks: list[str] | tuple[str, ...] | str | None = None, variations: int | None = 3,
                 include_gold: bool = True, include_random: bool = True, random_rollouts: int = 1,
                 rollout_length: int = 10, max_gold_steps: int | None = None, simplifications: str = "",
                 exclude_random_prefixes: tuple[str, ...] = ("focus on",), seed: int = 0,
                 cache_path: str | Path | None = None):
        super().__init__(data_dir=data_dir, labelled=labelled)
        if isinstance(tasks, str):
            tasks = [t for t in tasks.split(",") if t]
        self.config = ScienceWorldConfig(
            tasks=tuple(tasks) if tasks is not None else None, variations=variations, include_gold=include_gold,
            include_random=include_random, random_rollouts=random_rollouts, rollout_length=rollout_length,
            max_gold_steps=max_gold_steps, simplifications=simplifications,
            exclude_random_prefixes=tuple(exclude_random_prefixes), seed=seed)
        cache = cache_path if cache_path is not None else data_dir
        self.cache_dir = Path(cache) if cache is not None else None
        self._env = None
        self._tasks: tuple[str, ...] | None = None
        self._variations: dict[tuple[str, str], list[int]] = {}

    # ------------------------------------------------------------ the simulator

    def simulator(self):
        """The one `scienceworld.ScienceWorldEnv` of this instance, started on first use."""
        if self._env is None:
            check_requirements()
            from scienceworld import ScienceWorldEnv

            # The step limit is ours to enforce (rollout_length, max_gold_steps): the package's default of
            # 100 moves would cut long gold sequences short.
            with _java_tool_options(JVM_OPTIONS):  # ScienceWorldEnv takes no JVM options of its own
                self._env = ScienceWorldEnv("", envStepLimit=1 << 30)
        return self._env

    def close(self) -> None:
        if self._env is not None:
            env, self._env = self._env, None
            env.close()

    def __enter__(self) -> ScienceWorld:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def task_names(self) -> tuple[str, ...]:
        """The configured tasks in upstream's canonical names (task ids such as "1-1" are accepted)."""
        if self._tasks is None:
            _check_package()  # the task list ships with the package; no JVM needed
            from scienceworld.constants import ID2TASK
            from scienceworld.utils import infer_task

            known = list(ID2TASK.values())
            wanted = self.config.tasks if self.config.tasks is not None else tuple(known)
            names = []
            for task in wanted:
                name = infer_task(task)
                if name not in known:
                    raise UnknownNameError("scienceworld task", task, known)
                names.append(name)
            self._tasks = tuple(names)
        return self._tasks

    def variations(self, task: str, split: str) -> list[int]:
        """The variations of `task` that this benchmark uses for `split` (upstream's split, first N)."""
        self.check_split(split)
        key = (task, split)
        if key not in self._variations:
            env = self.simulator()
            env.load(task, 0, self.config.simplifications)
            listed = sorted(getattr(env, SPLIT_VARIATIONS[split])())
            self._variations[key] = listed[: self.config.variations] if self.config.variations else listed
        return self._variations[key]

    def _plans(self, task: str, variation: int) -> list[EpisodePlan]:
        plans = [EpisodePlan(task, variation, "gold")] if self.config.include_gold else []
        if self.config.include_random:
            plans += [EpisodePlan(task, variation, "random", k) for k in range(self.config.random_rollouts)]
        return plans

    def run_episode(self, plan: EpisodePlan, split: str) -> list[Transition]:
        """Play one episode in the simulator and record its transitions (the whole episode, then return)."""
        cfg, env = self.config, self.simulator()
        env.load(plan.task, plan.variation, cfg.simplifications, generateGoldPath=plan.source == "gold")
        observation, info = env.reset()
        state = render_state(info["taskDesc"], observation, info["inv"], info["look"])
        gold: list[str] = []
        if plan.source == "gold":
            gold = env.get_gold_action_sequence()[: cfg.max_gold_steps]
        rng = _rng(cfg.seed, plan.task, plan.variation, split, plan.rollout)
        out: list[Transition] = []
        for step in range(len(gold) if plan.source == "gold" else cfg.rollout_length):
            action = gold[step] if gold else _random_action(rng, info["valid"], cfg.exclude_random_prefixes)
            if action is None:
                break
            observation, reward, done, info = env.step(action)
            next_state = render_state(info["taskDesc"], observation, info["inv"], info["look"])
            meta = {"task": plan.task, "variation": plan.variation, "split": split, "source": plan.source,
                    "score": info["score"], "reward": reward, "done": bool(done)}
            out.append(Transition(state, next_state, action, plan.episode_id, step, meta))
            state = next_state
            if done:
                break
        return out

    # ------------------------------------------------------------ the benchmark API

    def _generate(self, split: str) -> Iterator[Transition]:
        for task in self.task_names():
            for variation in self.variations(task, split):
                for plan in self._plans(task, variation):
                    yield from self.run_episode(plan, split)

    def _load(self, split: str) -> Iterator[Transition]:
        if self.cache_dir is None:
            return self._generate(split)
        path = self.cache_file(split)
        if path.exists():
            return read_cache(path, self._cache_header(split))
        return self._generate_into_cache(split, path)

    def _generate_into_cache(self, split: str, path: Path) -> Iterator[Transition]:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + f".partial-{os.getpid()}")
        complete = False
        try:
            with partial.open("w", encoding="utf-8") as f:
                f.write(json.dumps(self._cache_header(split)) + "\n")
                for t in self._generate(split):
                    f.write(json.dumps({"episode_id": t.episode_id, "step": t.step, "state": t.state,
                                        "next_state": t.next_state, "action": t.action, "meta": dict(t.meta)},
                                       ensure_ascii=False) + "\n")
                    yield t
            complete = True
            partial.replace(path)  # only a split generated to the end becomes the cache
        finally:
            if not complete:
                partial.unlink(missing_ok=True)

    def _cache_header(self, split: str) -> dict[str, Any]:
        # Canonical task names, so that "1-1" and "boil" share a cache.
        config = {**asdict(self.config), "tasks": self.task_names()}
        return {"format": CACHE_FORMAT, "benchmark_version": self.version, "split": split,
                "scienceworld": _package_version(), "config": _jsonable(config)}

    def cache_file(self, split: str) -> Path:
        """Where `split` is cached: the name carries a hash of the configuration and package version."""
        if self.cache_dir is None:
            raise SwirlError("scienceworld: no cache_path was given")
        header = json.dumps(self._cache_header(split), sort_keys=True)
        return self.cache_dir / f"scienceworld-{split}-{hashlib.sha256(header.encode()).hexdigest()[:16]}.jsonl"

    def make_env(self, *, split: str = "test", reveal_actions: bool = False) -> TransitionEnv:
        """An env whose seed picks a task, one of its split's variations and an episode kind, then plays it."""
        self.check_split(split)
        played: OrderedDict[str, list[Transition]] = OrderedDict()  # episodes are deterministic: replay them

        def play(plan: EpisodePlan) -> list[Transition]:
            if plan.episode_id not in played:
                played[plan.episode_id] = self.run_episode(plan, split)
                if len(played) > EPISODE_MEMORY:
                    played.popitem(last=False)
            played.move_to_end(plan.episode_id)
            return played[plan.episode_id]

        def source(np_rng) -> list[Transition]:
            tasks = self.task_names()
            task = tasks[int(np_rng.integers(len(tasks)))]
            variations = self.variations(task, split)
            variation = variations[int(np_rng.integers(len(variations)))]
            plans = self._plans(task, variation)
            # A random rollout can end on its first step; an env episode needs at least one transition.
            return play(plans[int(np_rng.integers(len(plans)))]) or play(plans[0])

        return TransitionEnv(source, modality=self.modality, reveal_actions=reveal_actions)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "config": _jsonable(asdict(self.config)),
                "cache_dir": str(self.cache_dir) if self.cache_dir else None}


def read_cache(path: Path, header: dict[str, Any]) -> Iterator[Transition]:
    """Transitions from a cache file written by `ScienceWorld`; a mismatched or corrupt file is a DataError."""
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"not valid JSON ({exc.msg}); delete the file to regenerate it",
                                path=path, record=f"line {lineno}") from None
            if lineno == 1:
                if row != json.loads(json.dumps(header)):
                    raise DataError("cache header does not match this configuration; delete the file",
                                    path=path, record="line 1")
                continue
            for key in ("episode_id", "step", "state", "next_state", "action", "meta"):
                if key not in row:
                    raise DataError("missing from cached transition", path=path, record=f"line {lineno}",
                                    field=key)
            yield Transition(row["state"], row["next_state"], row["action"], row["episode_id"], row["step"],
                             row["meta"])


@contextmanager
def _java_tool_options(options: str) -> Iterator[None]:
    """JAVA_TOOL_OPTIONS (which every JVM reads at start) with `options` added, for the JVMs started inside."""
    before = os.environ.get("JAVA_TOOL_OPTIONS")
    os.environ["JAVA_TOOL_OPTIONS"] = f"{before} {options}" if before else options
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("JAVA_TOOL_OPTIONS", None)
        else:
            os.environ["JAVA_TOOL_OPTIONS"] = before


def _package_version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("scienceworld")
    except metadata.PackageNotFoundError:
        return None


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))
