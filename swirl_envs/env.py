"""A Gymnasium view of any benchmark: the agent predicts the next state, the env reveals the truth.

reset(seed) picks an episode (the seed decides which, so equal seeds give equal episodes) and returns
its first state. step(prediction) scores the prediction against the true next state with the
benchmark's similarity, returns that true next state, and ends the episode after its last transition.
`info` carries the transition's meta and, only for envs made with reveal_actions=True, its action.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from .similarity import as_array, similarity
from .spaces import UnicodeText, image_space
from .transition import Transition

EpisodeSource = Callable[[np.random.Generator], list[Transition]]


class TransitionEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, episode_source: EpisodeSource, *, modality: str = "text", max_text_length: int = 1 << 20,
                 image_shape: tuple[int, int] | None = None, reveal_actions: bool = False,
                 hidden_meta: tuple[str, ...] = (), similarity_fn: Callable[[Any, Any], float] = similarity):
        self.episode_source, self.modality = episode_source, modality
        self.reveal_actions, self.similarity_fn = reveal_actions, similarity_fn
        self.hidden_meta = () if reveal_actions else tuple(hidden_meta)  # meta that would give the action away
        # Gymnasium's action space is what step() takes: a predicted next state, shaped like an observation.
        if modality == "text":
            self.observation_space = UnicodeText(max_text_length)
            self.action_space = UnicodeText(max_text_length)
        else:
            if image_shape is None:
                raise ValueError("image envs need image_shape=(height, width)")
            self.observation_space = image_space(*image_shape)
            self.action_space = image_space(*image_shape)
        self._episode: list[Transition] = []
        self._cursor = 0

    def _observe(self, state):
        return state if self.modality == "text" else as_array(state)

    def _info(self, transition: Transition) -> dict[str, Any]:
        # A deep copy: nested meta (lists, dicts) must not be shared between the infos of two calls.
        meta = {k: v for k, v in transition.meta.items() if k not in self.hidden_meta}
        info: dict[str, Any] = {"meta": copy.deepcopy(meta), "episode_id": transition.episode_id,
                                "step": transition.step}
        if self.reveal_actions:
            info["action"] = transition.action
        return info

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._episode = self.episode_source(self.np_random)
        if not self._episode:
            raise RuntimeError("episode source returned an empty episode")
        self._cursor = 0
        first = self._episode[0]
        return self._observe(first.state), self._info(first)

    def step(self, predicted_next_state):
        """Gymnasium's `step(action)`: here the agent's move is its prediction of the next state, not the
        hidden action Z, which this env never takes (and reveals only with reveal_actions=True)."""
        if self._cursor >= len(self._episode):
            raise RuntimeError("step() called after the episode ended; call reset()")
        transition = self._episode[self._cursor]
        reward = float(self.similarity_fn(predicted_next_state, transition.next_state))
        self._cursor += 1
        terminated = self._cursor >= len(self._episode)
        info = self._info(transition)
        if not terminated:
            # Some benchmarks' next context differs from Y (a tool conversation grows by call and response).
            upcoming = self._episode[self._cursor].state
            if upcoming is not transition.next_state and not _same(upcoming, transition.next_state):
                info["next_context"] = self._observe(upcoming)
        return self._observe(transition.next_state), reward, terminated, False, info


def _same(a, b) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return np.array_equal(as_array(a), as_array(b))


def episodes_env(episodes: list[list[Transition]], **kwargs) -> TransitionEnv:
    """An env over a fixed list of episodes (a dataset split): the seed's generator picks one."""
    if not episodes:
        raise ValueError("no episodes to serve")
    return TransitionEnv(lambda rng: episodes[int(rng.integers(len(episodes)))], **kwargs)
