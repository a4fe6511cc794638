"""The StableToolBench benchmark (world-model transitions) and its interactive tool-use environment."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym

from ..benchmark import RecordedBenchmark
from ..errors import SwirlError
from ..spaces import UnicodeText
from .client import VirtualAPIClient
from .conversation import FINISH, format_call, parse_call, render_observation, render_state
from .fetch import DEFAULT_REMOTE_FILES, RemoteFile, fetch_remote
from .loader import SPLITS, LoadedData, Task, bundled_data_dir, load_data

MODES = ("world_model", "interactive")


class StableToolBench(RecordedBenchmark):
    """StableToolBench / ToolBench tool-use trajectories as (conversation, tool call, API response).

    `data_dir`: a folder laid out as upstream (StableToolBench and/or ToolBench checkouts, or any folder
    holding their `solvable_queries`, `data_example/answer`, ... trees); default: the bundled fixture.
    `source="remote"` fetches the public copies (`remote_files`, queries from GitHub raw files and the
    baselines' answers from the Hugging Face Hub) into `data_dir` (default ~/.cache/swirl/stabletoolbench)
    first. `mode="interactive"` makes `make_env` return a `ToolUseEnv` against `server_url`.
    """

    name: ClassVar[str] = "stabletoolbench"
    version: ClassVar[str] = "1"
    modality: ClassVar[str] = "text"
    splits: ClassVar[tuple[str, ...]] = SPLITS
    primary_metric: ClassVar[str] = "fwm/bleu"
    action_meta_keys: ClassVar[tuple[str, ...]] = ("function", "tool", "api", "category", "known_function",
                                                   "observation_code")

    def __init__(self, *, data_dir: str | Path | None = None, labelled: bool = False, source: str = "local",
                 remote_files: Iterable[RemoteFile] = DEFAULT_REMOTE_FILES, strict: bool = False,
                 mode: str = "world_model", server_url: str | None = None, max_steps: int = 12):
        if source not in ("local", "remote"):
            raise SwirlError(f"source must be 'local' or 'remote', got {source!r}")
        if mode not in MODES:
            raise SwirlError(f"mode must be one of {MODES}, got {mode!r}")
        if source == "remote" and data_dir is None:
            data_dir = Path.home() / ".cache" / "swirl" / "stabletoolbench"
        super().__init__(data_dir=data_dir, labelled=labelled, strict=strict)
        self.source, self.remote_files = source, tuple(remote_files)
        self.mode, self.server_url, self.max_steps = mode, server_url, max_steps

    def bundled_data_dir(self) -> Path:
        return bundled_data_dir()

    def read_data(self) -> LoadedData:
        if self.source == "remote":
            fetch_remote(self.root, self.remote_files)
        return load_data(self.root, strict=self.strict)

    def tasks(self, split: str = "test") -> list[Task]:
        """The split's queries whose functions can all be routed to the server (interactive episodes)."""
        self.check_split(split)
        return [t for t in self.data.tasks if t.split == split and t.complete]

    def make_env(self, *, split: str = "test", reveal_actions: bool = False):
        if self.mode == "interactive":
            if not self.server_url:
                raise SwirlError("mode='interactive' needs server_url='http://127.0.0.1:PORT'")
            return self.make_interactive_env(self.server_url, split)
        return super().make_env(split=split, reveal_actions=reveal_actions)

    def make_interactive_env(self, server_url: str, split: str = "test", *,
                             max_steps: int | None = None) -> ToolUseEnv:
        tasks = self.tasks(split)
        if not tasks:
            raise SwirlError(f"split {split!r} of {self.root} has no query with routable functions")
        return ToolUseEnv(tasks, VirtualAPIClient(server_url), max_steps=max_steps or self.max_steps)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "data_dir": str(self.root), "source": self.source, "mode": self.mode}


class ToolUseEnv(gym.Env):
    """A tool-using agent against the virtual API server.

    reset(seed) picks a query (the seed decides which) and returns X, the conversation so far. The
    action is a tool call in `format_call` form. step() returns the server's response (Y, rendered as in
    the transitions) and puts the grown conversation in info["next_context"]. A call to `Finish` ends the
    episode with reward 1.0 for `give_answer` with a non-empty `final_answer`, else 0.0 (this is only
    "the agent answered", not StableToolBench's judged pass rate); tool calls earn 0. Calls that do not
    parse or name no offered function get an error response, as upstream's environment gives them;
    unparseable text is not added to the conversation. Episodes are truncated after `max_steps` steps.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, tasks: list[Task], client: VirtualAPIClient, *, max_steps: int = 12,
                 max_text_length: int = 1 << 20):
        self.tasks, self.client, self.max_steps = tasks, client, max_steps
        self.observation_space = UnicodeText(max_text_length)
        self.action_space = UnicodeText(max_text_length)
        self._task: Task | None = None
        self._history: list[tuple[str, str]] = []
        self._done = True
        self._steps = 0

    def _context(self) -> str:
        assert self._task is not None
        return render_state(self._task.query, self._task.functions, self._history)

    def _info(self) -> dict[str, Any]:
        assert self._task is not None
        return {"query_id": self._task.query_id, "group": self._task.group, "turn": len(self._history),
                "functions": [f["name"] for f in self._task.functions]}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._task = self.tasks[int(self.np_random.integers(len(self.tasks)))]
        self._history, self._done, self._steps = [], False, 0
        return self._context(), self._info()

    def _respond(self, action: str) -> tuple[dict[str, Any], float, bool, str | None]:
        """(response, reward, terminated, canonical call text or None)."""
        assert self._task is not None
        try:
            name, arguments = parse_call(action)
        except SwirlError as exc:
            return {"error": f"Tool call parse error...: {exc}", "response": ""}, 0.0, False, None
        call = format_call(name, arguments)
        if name == FINISH:
            if not isinstance(arguments, dict) or "return_type" not in arguments:
                return {"error": 'must have "return_type"', "response": ""}, 0.0, False, call
            answered = arguments["return_type"] == "give_answer" and bool(str(arguments.get("final_answer", "")).strip())
            message = "successfully giving the final answer." if answered else "chose to give up and restart"
            return {"response": message}, float(answered), True, call
        route = self._task.routes.get(name)
        if route is None or name not in {f["name"] for f in self._task.functions}:
            return {"error": f"No such function name: {name}", "response": ""}, 0.0, False, call
        tool_input = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
        return self.client.call(route.category or "", route.tool, route.api, tool_input), 0.0, False, call

    def step(self, action: str):
        if self._task is None or self._done:
            raise RuntimeError("step() called before reset() or after the episode ended")
        response, reward, terminated, call = self._respond(action)
        observation = render_observation(response)
        if call is not None:
            self._history.append((call, observation))
        self._steps += 1  # every step spends budget, valid call or not, so a looping agent still stops
        self._done = terminated or self._steps >= self.max_steps
        truncated = self._done and not terminated
        info = self._info()
        info.update(response=copy.deepcopy(response), next_context=self._context(), valid_call=call is not None)
        return observation, reward, terminated, truncated, info

    def close(self) -> None:
        self.client.close()
