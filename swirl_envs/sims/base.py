"""What the textual simulators share: seeded episodes, fixed evaluation splits, an unbounded train stream."""

from __future__ import annotations

import hashlib
import itertools
import random
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from ..benchmark import Benchmark
from ..env import TransitionEnv
from ..errors import SwirlError
from ..transition import Transition

DIFFICULTIES = ("easy", "medium", "hard")


def split_rng(name: str, split: str, index: int) -> random.Random:
    """A generator for episode `index` of `split`, independent of every other (name, split, index)."""
    digest = hashlib.blake2b(f"{name}/{split}/{index}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "little"))


class Simulator(Benchmark):
    """Subclasses implement `episode(rng, episode_id)`: build a world from the seed, act, record transitions.

    Text simulators also offer `candidate_actions(transition) -> list[str]` (the distinct actions that can be
    taken from the state: the generator's support, widened where the rendered state cannot tell; used by
    `swirl_envs.sims.ceiling`) and `parse_state(text) -> dict[str, str] | None` (a rendered state as fields,
    None when `text` is not one; the card's state metrics). Pictures have neither, so they are not abstract.
    """

    splits: ClassVar[tuple[str, ...]] = ("train", "validation", "test")
    unbounded_splits: ClassVar[tuple[str, ...]] = ("train",)
    eval_episodes: ClassVar[dict[str, int]] = {"validation": 100, "test": 200}

    def __init__(self, *, labelled: bool = False, difficulty: str = "medium", episode_length: int = 5,
                 data_dir: Any = None, **options: Any):
        super().__init__(data_dir=data_dir, labelled=labelled)
        if difficulty not in DIFFICULTIES:
            raise SwirlError(f"{self.name}: difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")
        if episode_length < 1:
            raise SwirlError(f"{self.name}: episode_length must be >= 1, got {episode_length}")
        self.difficulty, self.episode_length, self.options = difficulty, episode_length, options

    @abstractmethod
    def episode(self, rng: random.Random, episode_id: str,
                override: tuple[int, Sequence[str]] | None = None) -> list[Transition]:
        """One multi-step episode, every next state computed by the simulator's rules. With `override` =
        (step, actions), the episode ends at that step with one last transition per action, each taken
        instead of the sampled one from its own copy of the same world (the same draws)."""

    def outcomes(self, transition: Transition, actions: Sequence[str]) -> list[str]:
        """The next state the rules give for each action taken in `transition`'s state (the same world, the
        same draws): one replay of the episode up to the step, then each action on its own copy."""
        split, _, index = str(transition.episode_id).rpartition("-")
        if split not in self.splits or not index.isdigit():
            raise SwirlError(f"{self.name}: episode id {transition.episode_id!r} is not one of this simulator's")
        episode = self.episode(split_rng(self.name, split, int(index)), transition.episode_id,
                               override=(transition.step, list(actions)))
        return [t.next_state for t in episode[transition.step:]]

    def execute(self, transition: Transition, action: str) -> str:
        """The next state the rules give when `action` is taken in `transition`'s state: an IDM's action is
        right when this is `transition.next_state`, even if it differs from the recorded action. An action
        the simulator cannot read changes nothing, as an invalid one does."""
        return self.outcomes(transition, [action])[0]

    def _load(self, split: str) -> Iterator[Transition]:
        indices = itertools.count() if split in self.unbounded_splits else range(self.eval_episodes[split])
        for index in indices:
            yield from self.episode(split_rng(self.name, split, index), f"{split}-{index}")

    def make_env(self, *, split: str = "test", reveal_actions: bool = False) -> TransitionEnv:
        self.check_split(split)

        def source(np_rng) -> list[Transition]:
            # Evaluation splits draw one of their fixed episodes; train draws from the unbounded stream.
            bound = self.eval_episodes.get(split, 1 << 62)
            index = int(np_rng.integers(bound))
            return self.episode(split_rng(self.name, split, index), f"{split}-{index}")

        return TransitionEnv(source, modality=self.modality, reveal_actions=reveal_actions,
                             hidden_meta=self.action_meta_keys,
                             image_shape=self.image_shape)
