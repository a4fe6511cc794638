"""Supervised baseline: FWM on (X, Z) -> Y and IDM on (X, Y) -> Z from action-labelled transitions.

Loss is the mean negative log-likelihood over target-span tokens only (prompt tokens are context).
Batching is length-grouped with padding rather than packing: examples are shuffled, sorted by length
inside windows of 16 batches, cut into batches, and the batch order is shuffled again. Each row holds one
example, so no example can attend to another, and padding waste stays small without the attention-mask
surgery that packing would need. The order is a pure function of (seed, epoch), so a resumed run
sees exactly the batches the killed one would have. Under several processes each takes its share of every
batch and divides by the batch's global target-token count, so the averaged gradient is one process's.
With `micro_batch_size` a process's share runs in chunks under that same count (gradient accumulation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from swirl_envs.errors import SwirlError
from swirl_envs.transition import Transition

from .checkpoint import read_state
from .config import TrainerConfig
from .logging import MetricsLogger
from .logprobs import completion_logprobs
from .models import WorldModelPair
from .prompts import serialize_action
from .trainer import CheckpointedTrainer

Example = tuple[str, list[int], list[int]]  # (role, prompt ids, target ids)


@dataclass
class SFTConfig(TrainerConfig):
    learning_rate: float = 1e-3  # tiny models from scratch; use ~1e-5 for a pretrained hub model
    epochs: int = 3
    max_steps: int | None = None  # overrides epochs when set
    train_fwm: bool = True
    train_idm: bool = True
    group_window: int = 16  # batches per length-sorting window
    fit_target_tokens: bool = False  # set the pair's target budget to the longest target (+ eos) in the data,
    # at most max_target_tokens; SWIRL from this pair and evaluation then use that budget


def length_grouped_batches(lengths: list[int], batch_size: int, seed: int, epoch: int,
                           window: int = 16) -> list[list[int]]:
    """Index batches of similar length, in a shuffled order that depends only on (seed, epoch)."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths)).tolist()
    span = batch_size * window
    batches = []
    for start in range(0, len(order), span):
        chunk = sorted(order[start:start + span], key=lambda i: (lengths[i], i))
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def nll(model: torch.nn.Module, examples: list[Example], pad_id: int,
        per: float | None = None) -> tuple[torch.Tensor, int]:
    """Summed NLL of the target tokens over `per` (default: their number, i.e. the mean per target token),
    and the number of target tokens."""
    logp, mask = completion_logprobs(model, [e[1] for e in examples], [e[2] for e in examples], pad_id)
    tokens = int(mask.sum())
    return -(logp.sum() / max(tokens if per is None else per, 1)), tokens


def chunk_nll(model: torch.nn.Module, examples: list[Example], pad_id: int, per: float, weight: float):
    """`chunk -> (loss, None)` for CheckpointedTrainer.accumulate: a slice's NLL over the whole batch's count."""
    return lambda chunk: (nll(model, examples[chunk], pad_id, per=per)[0] * weight, None)


def target_budget(pair: WorldModelPair, transitions: list[Transition], roles: tuple[str, ...], *,
                  fit: bool = False) -> dict[str, int]:
    """The target lengths (tokens + eos) against the pair's budget: longest, and how many are cut. With `fit`,
    the budget becomes the longest target, never above the configured cap (the prompt grows to match)."""
    lengths = []
    for t in transitions:
        if "fwm" in roles:
            lengths.append(len(pair.encode("fwm", pair.next_state_text(t.state, t.next_state))) + 1)
        if "idm" in roles:
            lengths.append(len(pair.encode("idm", serialize_action(t.action))) + 1)
    cap, longest = pair.max_target_tokens, max(lengths, default=0)
    if fit and longest:
        pair.max_target_tokens = min(cap, longest)
    return {"cap": cap, "longest": longest, "used": pair.max_target_tokens, "targets": len(lengths),
            "cut": sum(n > pair.max_target_tokens for n in lengths)}


def build_examples(pair: WorldModelPair, transitions: list[Transition], roles: tuple[str, ...]) -> list[Example]:
    examples = []
    for t in transitions:
        for role in roles:
            if role == "fwm":
                target = pair.target_ids("fwm", pair.next_state_text(t.state, t.next_state))
                prompt = pair.prompt_ids("fwm", t.state, t.action)
            else:
                target = pair.target_ids("idm", serialize_action(t.action))
                prompt = pair.prompt_ids("idm", t.state, t.next_state)
            examples.append((role, prompt, target))
    return examples


class SFTTrainer(CheckpointedTrainer):
    name = "sft"
    config_class = SFTConfig

    def roles(self) -> tuple[str, ...]:
        roles = tuple(r for r, on in (("fwm", self.config.train_fwm), ("idm", self.config.train_idm)) if on)
        if not roles:
            raise SwirlError("SFT with train_fwm=False and train_idm=False has nothing to train")
        return roles

    def labelled(self, transitions: list[Transition], pair: WorldModelPair, output_dir: Path) -> list[Transition]:
        """The transitions to learn from; the supervised baseline needs their actions."""
        labelled = [t for t in transitions if t.action is not None]
        if not labelled:
            raise SwirlError("SFT needs action-labelled transitions: open the benchmark with labelled=True")
        return labelled

    @staticmethod
    def tokenizer_texts(transitions: list[Transition]) -> list[str]:
        texts = []
        for t in transitions:
            texts += [s for s in (t.state, t.next_state, t.action) if isinstance(s, str)]
        return texts

    def train(self, data: Any, output_dir: str | Path, init: str | Path | None = None) -> Path:
        c, output_dir = self.config, Path(output_dir)
        if (done := self.finished(output_dir)) is not None:
            return done
        transitions = self.transitions(data)
        resume = self.resume_point(output_dir)
        pair = self.build_pair(resume or init, self.tokenizer_texts(transitions))
        roles = self.roles()
        transitions = self.labelled(transitions, pair, output_dir)
        budget = target_budget(pair, transitions, roles, fit=c.fit_target_tokens and resume is None)
        streams = self._streams(pair, transitions, roles)
        per_epoch = max(math.ceil(len(s) / c.batch_size) for s in streams.values())
        total = c.max_steps if c.max_steps is not None else c.epochs * per_epoch
        self.make_optimizers(pair, roles, total)
        self.prepare_models(pair)
        step = 0
        if resume is not None:
            self.restore(resume)
            step = self._read_step(resume)
        else:
            torch.manual_seed(c.seed)
        for model in pair.unique_models().values():
            model.train()
        world = self.accelerator.num_processes
        with MetricsLogger(output_dir, total_steps=total, progress=c.progress, description=self.name,
                           resume_step=step if resume else None, config=c, main=self.is_main) as log:
            while step < total:
                epoch, index = divmod(step, per_epoch)
                metrics: dict[str, Any] = {"epoch": epoch}
                for key, examples in streams.items():
                    batches = self._batches(key, examples, epoch)
                    if index >= len(batches):
                        continue
                    batch = [examples[i] for i in batches[index]]
                    model, pad = self.trained[key], pair.tokenizers["fwm" if key == "shared" else key].pad_token_id
                    # DDP averages over processes: the sum over the global batch's tokens, times the processes
                    tokens = sum(len(e[2]) for e in batch)
                    mine = self.shard(batch)
                    rows = mine or batch[:1]  # fewer examples than processes: a forward all the same, for DDP,
                    weight = 1.0 if mine else 0.0  # weighing nothing
                    parts = self.accumulate(model, self.micro_batches(len(rows)),
                                            chunk_nll(model, rows, pad, tokens / world, weight))
                    loss = sum(part for part, _ in parts)
                    metrics[f"grad_norm/{key}"] = self.step_optimizer(key, model)
                    metrics[f"loss/{key}"] = self.accelerator.reduce(loss.detach(), "mean").item()
                    metrics[f"tokens/{key}"] = tokens
                    metrics["lr"] = self.schedulers[key].get_last_lr()[0]
                step += 1
                losses = [v for k, v in metrics.items() if k.startswith("loss/")]
                metrics["loss"] = sum(losses) / max(len(losses), 1)
                log.log(step, metrics, write=step % c.log_steps == 0 or step == total)
                if c.save_steps and step % c.save_steps == 0 and step < total:  # every process: it waits there
                    self.save_checkpoint(output_dir, step, pair, {"total_steps": total})
                self.maybe_exit(step)
        return self.finish(output_dir, pair, {"step": step, "total_steps": total, "target_budget": budget,
                                              "examples": {k: len(v) for k, v in streams.items()}})

    def _streams(self, pair: WorldModelPair, transitions: list[Transition],
                 roles: tuple[str, ...]) -> dict[str, list[Example]]:
        # A shared model learns both jobs from one mixed stream; separate models each get their own.
        if pair.shared:
            return {"shared": build_examples(pair, transitions, roles)}
        return {role: build_examples(pair, transitions, (role,)) for role in roles}

    def _batches(self, key: str, examples: list[Example], epoch: int) -> list[list[int]]:
        cache = self.__dict__.setdefault("_batch_cache", {})
        if (key, epoch) not in cache:
            for stale in [k for k in cache if k[1] != epoch]:
                del cache[stale]
            lengths = [len(e[1]) + len(e[2]) for e in examples]
            cache[key, epoch] = length_grouped_batches(lengths, self.config.batch_size, self.config.seed, epoch,
                                                       self.config.group_window)
        return cache[key, epoch]

    @staticmethod
    def _read_step(folder: Path) -> int:
        return int(read_state(folder)["step"])
