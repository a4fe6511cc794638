"""The two published comparison methods that use no action labels beyond the SFT warm start.

Bootstrap: the IDM labels state-only transitions (greedy decoding) and the FWM is fine-tuned on those
pseudo-labels with the SFT loss. Test-time verification: sample N next states from the FWM and keep the
one under which the IDM finds the given action most likely (mean token log-prob).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import gather_object

from swirl_envs.errors import SwirlError
from swirl_envs.transition import Transition

from .checkpoint import write_json_atomic
from .models import WorldModelPair, repeat_each
from .sft import SFTConfig, SFTTrainer


@dataclass
class BootstrapConfig(SFTConfig):
    learning_rate: float = 1e-4
    epochs: int = 1
    train_idm: bool = False  # the published baseline improves the FWM only
    label_max_new_tokens: int | None = None
    min_label_logprob: float | None = None  # drop pseudo-labels whose mean token log-prob is below this
    label_batch_size: int = 32


class BootstrapTrainer(SFTTrainer):
    """SFT on state-only transitions whose actions are the IDM's greedy guesses (needs init=SFT checkpoint)."""

    name = "bootstrap"
    config_class = BootstrapConfig

    def labelled(self, transitions: list[Transition], pair: WorldModelPair, output_dir: Path) -> list[Transition]:
        c = self.config
        cache = output_dir / "pseudo_labels.json"
        if cache.is_file():  # a resumed run must train on the very labels the first attempt made
            labels = json.loads(cache.read_text())
        else:  # each process labels its share; all of them train on every label
            mine = self.shard(transitions)
            xs, ys = [t.state for t in mine], [t.next_state for t in mine]
            actions = pair.predict_actions(xs, ys, max_new_tokens=c.label_max_new_tokens,
                                           batch_size=c.label_batch_size) if mine else []
            scores = pair.score_actions(xs, ys, actions, batch_size=c.label_batch_size).tolist() if mine else []
            labels = {"actions": gather_object(actions), "scores": gather_object(scores)}
            if self.is_main:
                output_dir.mkdir(parents=True, exist_ok=True)
                write_json_atomic(cache, labels)
            self.accelerator.wait_for_everyone()
        kept = [dataclasses.replace(t, action=a) for t, a, s in zip(transitions, labels["actions"], labels["scores"], strict=True)
                if c.min_label_logprob is None or s >= c.min_label_logprob]
        if not kept:
            raise SwirlError("no pseudo-label passed min_label_logprob; lower it or warm-start the IDM")
        return kept

    def train(self, data: Any, output_dir: str | Path, init: str | Path | None = None) -> Path:
        if init is None and self.config.model == "tiny":
            raise SwirlError("bootstrap pseudo-labels with a trained IDM: pass init=<SFT checkpoint>")
        return super().train(data, output_dir, init)


def verify_next_states(pair: WorldModelPair, states: Sequence[Any], actions: Sequence[Any], n: int = 8, *,
                       temperature: float = 0.75, top_p: float = 0.96, max_new_tokens: int | None = None,
                       batch_size: int = 32, generator: torch.Generator | None = None,
                       return_scores: bool = False) -> list[str] | tuple[list[str], torch.Tensor]:
    """Best-of-n next states: sample n from the FWM, keep the one maximising log Q(action | state, candidate).

    The default sampling settings are the paper's FWM ones. Ties keep the earliest sample. With
    return_scores, also returns the (len(states), n) matrix of IDM mean token log-probs.
    """
    if n < 1:
        raise SwirlError(f"verification needs n >= 1 samples, got {n}")
    candidates = pair.predict_next_states(states, actions, num_samples=n, temperature=temperature, top_p=top_p,
                                          max_new_tokens=max_new_tokens, batch_size=batch_size, generator=generator)
    scores = pair.score_actions(repeat_each(states, n), candidates, repeat_each(actions, n), batch_size=batch_size).view(-1, n)
    best = scores.argmax(1).tolist()
    chosen = [candidates[i * n + k] for i, k in enumerate(best)]
    return (chosen, scores) if return_scores else chosen
