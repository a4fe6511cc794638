"""SWIRL: learn the FWM and the IDM from state-only transitions (x, y) by alternating two GRPO phases.

Phase I (update the FWM, freeze the IDM): take a latent action z for (x, y) from the IDM, sample a group
of next states y_hat ~ P_theta(. | x, z), reward each with log Q_phi(z | x, y_hat): a prediction is good
when the IDM can still read the action back from it. Phase II (update the IDM, freeze the FWM): sample a
group of z_hat ~ Q_phi(. | x, y), reward each with log P_theta(y | x, z_hat): an inferred action is good
when it makes the real next state likely. Rewards are length-normalised (mean token log-prob) and
clipped below at `reward_min`; the KL penalty pulls toward the model as it was at the start of the
current iteration. The trainer reads only `state` and `next_state` of each transition, never `action`,
except under the oracle-z control below, which asks for the actions explicitly.

An iteration runs the phases in `phase_order`; mode "idm2fwm" runs Phase I only (the published
IDM->FWM variant). The latent action of Phase I is either sampled fresh at every step (the paper) or
annotated once per iteration by greedy IDM decoding, keeping pairs whose mean token log-prob is at least
`annotate_min_logprob` (the public code).

Three controls say why SWIRL wins or not (issue 13): `reward_shuffle` permutes each group's rewards in both
phases (what noise alone does); `latent_action="oracle"` gives Phase I the transitions' true actions as z
(Phase I's ceiling given a perfect IDM; the data must carry actions); `judge_idm` scores Phase I with another
pair's IDM, frozen, e.g. SFT on L and U's true actions (is the judge the bottleneck?).
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from swirl_envs.errors import SwirlError

from .checkpoint import read_state
from .config import TrainerConfig
from .grpo import (
    SCALES,
    deterministic,
    group_advantages,
    grpo_loss,
    length_slope,
    shuffle_within_groups,
    without_length_trend,
)
from .logging import MetricsLogger
from .logprobs import completion_logprobs
from .lora import core_model, load_trained_state, save_trained_state
from .models import Generation, WorldModelPair, repeat_each
from .reference import AdapterSnapshot, FrozenCopy, snapshot
from .trainer import CheckpointedTrainer

PHASE_NAMES = {"fwm": "phase1-fwm", "idm": "phase2-idm"}
JUDGE_FILE = "judge.safetensors"  # shared weights: the current phase's frozen judge, for a resume mid-phase
# Fields added after runs existed (the controls, length_neutral) are left out of the resume fingerprint at
# these values: runs made before them resume
CONTROL_DEFAULTS = {"reward_shuffle": False, "judge_idm": None, "fwm_greedy_in_group": False,
                    "length_neutral": False}


@dataclass
class SwirlConfig(TrainerConfig):
    mode: str = "iterative"  # "iterative" | "idm2fwm" (Phase I only)
    iterations: int = 3
    phase_order: tuple[str, ...] = ("fwm", "idm")  # Phase I (fwm) then Phase II (idm) in each iteration
    steps_per_phase: int = 10  # 0: one pass over the (x, y) pairs per phase
    batch_size: int = 4  # (x, y) pairs per optimiser step; each becomes one group
    learning_rate: float = 1e-5
    fwm_group_size: int = 8
    idm_group_size: int = 16
    fwm_temperature: float = 0.75
    fwm_top_p: float = 0.96
    fwm_greedy_in_group: bool = False  # Phase I: each group's first member is the FWM's greedy decode, so the
    # advantages rank the samples against what evaluation reads, and only a sample the judge prefers to it gains
    idm_temperature: float = 0.7
    idm_top_p: float = 0.9
    fwm_max_new_tokens: int | None = None  # rollout budget; must equal the pair's target budget (None: it does)
    idm_max_new_tokens: int | None = None
    latent_action: str = "sample"  # "sample" | "annotate" (greedy once per iteration) | "oracle" (true actions)
    # Phase I's z: "sample" draws it fresh each step; "oracle" is a control and refuses state-only data
    annotate_min_logprob: float = -2.0
    reward_normalize: bool = True  # mean token log-prob (True) or the sum
    reward_min: float = -10.0
    advantage_scale: str = "group"  # "group" | "batch" | "none" | "best" (each group's top sample 1, others 0)
    loss_type: str = "dapo"
    beta: float = 0.04
    epsilon_low: float = 0.2
    epsilon_high: float = 0.2
    updates_per_batch: int = 1  # >1 reuses one sampled batch with importance ratios (PPO-style)
    sample_batch_size: int = 64  # rows per generation / scoring forward pass
    flat_spread: float = 0.01  # a group whose rewards span less than this is counted in `groups_flat`
    kl_reference: str = "iteration"  # "iteration": the model at each iteration's start | "init": the initial
    # (e.g. SFT) model for the whole run, as the method's public code does
    judge: str = "current"  # "current": the other model as it is (frozen during the phase) | "init": the
    # initial other model, frozen for the whole run (the public code's setup); judge_idm overrides Phase I's
    idm_beta: float | None = None  # KL coefficient of Phase II (None: beta); the public code uses 0.1
    idm_max_grad_norm: float | None = None  # gradient clipping of Phase II (None: max_grad_norm); public code 0.1
    drop_flat_groups: bool = False  # leave groups whose rewards span less than flat_spread out of the update
    length_neutral: bool = False  # take out of each step's rewards their within-group linear trend in completion
    # length (`reward/length_slope`, logged either way): a judge that prefers short completions then ranks by
    # what is left. A variant of the method, for the judge measured to shorten toolsim's responses
    progress_pairs: int = 0  # pairs held out of training; each iteration's progress is scored on them by
    # the initial (e.g. SFT) models frozen, logged as progress/* (0: no held-out measurement)
    gradient_checkpointing: bool = False  # recompute activations in backward: less memory, ~1/3 more train compute
    phase_steps: dict[str, int] = field(default_factory=dict)  # per-phase override of steps_per_phase
    reward_shuffle: bool = False  # control: permute each group's rewards (both phases) before the advantages
    judge_idm: str | None = None  # control: a pair folder whose IDM, frozen, judges Phase I (not the trained IDM)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mode not in ("iterative", "idm2fwm"):
            raise SwirlError(f"mode must be 'iterative' or 'idm2fwm', got {self.mode!r}")
        if self.latent_action not in ("sample", "annotate", "oracle"):
            raise SwirlError(f"latent_action must be 'sample', 'annotate' or 'oracle', got {self.latent_action!r}")
        if self.kl_reference not in ("iteration", "init") or self.judge not in ("current", "init"):
            raise SwirlError(f"kl_reference is 'iteration' or 'init' and judge 'current' or 'init', got "
                             f"{self.kl_reference!r} and {self.judge!r}")
        if self.fwm_greedy_in_group and self.fwm_group_size < 2:
            raise SwirlError(f"fwm_greedy_in_group needs fwm_group_size >= 2 (the greedy decode and a sample), "
                             f"got {self.fwm_group_size}")
        if self.advantage_scale not in SCALES:
            raise SwirlError(f"advantage_scale must be one of {', '.join(SCALES)}, got {self.advantage_scale!r}")
        if not set(self.phase_order) <= {"fwm", "idm"} or not self.phase_order:
            raise SwirlError(f"phase_order names phases 'fwm' and 'idm', got {self.phase_order!r}")
        self.phase_order = tuple(self.phase_order)

    def phases(self) -> tuple[str, ...]:
        return ("fwm",) if self.mode == "idm2fwm" else self.phase_order

    def steps(self, phase: str, pairs: int = 0) -> int:
        """Optimiser steps of one phase: phase_steps, else steps_per_phase, where 0 means one pass over `pairs`."""
        steps = int(self.phase_steps.get(phase, self.steps_per_phase))
        return steps if steps > 0 else max(1, -(-pairs // self.batch_size))


@dataclass
class _Schedule:
    """Maps a global step to (iteration, phase, step within phase); a pure function of the config."""

    config: SwirlConfig
    pairs: int = 0  # (x, y) pairs trained on (for steps_per_phase=0)

    def blocks(self) -> list[tuple[int, str, int]]:
        out = []
        for iteration in range(self.config.iterations):
            for phase in self.config.phases():
                out.append((iteration, phase, self.config.steps(phase, self.pairs)))
        return out

    def total(self) -> int:
        return sum(n for _, _, n in self.blocks())

    def locate(self, step: int) -> tuple[int, int, str, int]:
        """(iteration, phase index, phase, step within phase) of global step `step` (0-based)."""
        start = 0
        for iteration, phase, n in self.blocks():
            if step < start + n:
                return iteration, self.config.phases().index(phase), phase, step - start
            start += n
        raise IndexError(step)


class SwirlTrainer(CheckpointedTrainer):
    name = "swirl"
    config_class = SwirlConfig
    judge: torch.nn.Module | None = None  # shared weights: the current phase's frozen judge
    strong_judge: WorldModelPair | None = None  # judge_idm's pair, frozen: its IDM scores Phase I
    actions: list[Any] | None = None  # latent_action=oracle: the true action of each trained pair

    def train(self, data: Any, output_dir: str | Path, init: str | Path | None = None) -> Path:
        c, output_dir = self.config, Path(output_dir)
        world = self.accelerator.num_processes  # several processes: each owns whole groups of every batch
        if c.batch_size % world:
            raise SwirlError(f"batch_size {c.batch_size} must split evenly over {world} processes")
        if (done := self.finished(output_dir)) is not None:
            return done
        transitions = self.transitions(data)
        # Only X and Y leave the transition here; the action field is read by the oracle-z control alone.
        pairs = [(t.state, t.next_state) for t in transitions]
        if not pairs:
            raise SwirlError("SWIRL got no transitions")
        actions = self._oracle_actions(transitions) if c.latent_action == "oracle" else None
        texts = [s for xy in pairs for s in xy if isinstance(s, str)]
        held_out, pairs = self._hold_out(pairs)
        # the held-out choice depends only on the count and the seed: the actions stay aligned with the pairs
        self.actions = None if actions is None else self._hold_out(actions)[1]
        resume = self.resume_point(output_dir)
        pair = self.build_pair(resume or init, texts)
        # Progress is measured on pairs never trained on, by the initial models frozen (the SFT pair when
        # init is one): the trained models' own rewards move with the judge they are trained against.
        judge = self.build_pair(init, texts).to(pair.device) if held_out or c.judge == "init" else None
        self.initial = judge  # the initial models, frozen: progress judge, and Phase I/II judge with judge=init
        if judge is not None:
            for model in judge.unique_models().values():
                model.eval().requires_grad_(False)
        for name in ("fwm_max_new_tokens", "idm_max_new_tokens"):
            budget = getattr(c, name)
            if budget is not None and budget != pair.max_target_tokens:
                raise SwirlError(f"{name}={budget} differs from the pair's target budget {pair.max_target_tokens}, "
                                 "which evaluation generates: rollouts would be rewarded for other text than is "
                                 "scored (leave it unset, or give SFT another max_target_tokens)")
        self.strong_judge = None
        if c.judge_idm:  # the strong-judge control: another pair, frozen; its IDM scores Phase I
            self.strong_judge = WorldModelPair.load(c.judge_idm, dtype=c.dtype, merge=True).to(pair.device)
            for model in self.strong_judge.unique_models().values():
                model.eval().requires_grad_(False)
        schedule = _Schedule(c, len(pairs))
        total = schedule.total()
        # each model's LR schedule spans the steps it takes (its own phases; all of them when shared)
        own = {role: sum(n for _, phase, n in schedule.blocks() if phase == role) for role in ("fwm", "idm")}
        self.make_optimizers(pair, c.phases(), {**own, "shared": total})
        self.prepare_models(pair)
        self.refs: dict[str, FrozenCopy | AdapterSnapshot] = {}
        self.judge: torch.nn.Module | None = None
        self.annotations: dict[str, Any] | None = None
        step = 0
        if resume is not None:
            self.restore(resume)
            state = read_state(resume)
            step = int(state["step"])
            self.annotations = state.get("annotations")
            if (c.beta or c.idm_beta) and (resume / "ref").is_dir():
                self._load_refs(pair, resume / "ref")
            if pair.shared and (resume / JUDGE_FILE).is_file():
                self.judge = copy.deepcopy(pair.fwm).eval().requires_grad_(False)
                load_trained_state(self.judge, str(resume / JUDGE_FILE))
        else:
            torch.manual_seed(c.seed)
        with MetricsLogger(output_dir, total_steps=total, progress=c.progress, description=self.name,
                           resume_step=step if resume else None, config=c, main=self.is_main) as log:
            while step < total:
                iteration, phase_index, phase, within = schedule.locate(step)
                if phase_index == 0 and within == 0:
                    self._start_iteration(pair)
                if within == 0:
                    self._start_phase(pair)
                if phase == "fwm" and within == 0 and c.latent_action == "annotate":
                    self._annotate(pair, pairs, iteration)
                log.describe(f"{self.name} it{iteration + 1} {PHASE_NAMES[phase]}")
                batch = self.shard(self._batch(pairs, iteration, phase_index, phase, within))
                progress = {}
                if held_out and phase_index == 0 and within == 0 and self.is_main:  # before each iteration
                    progress = self._progress(pair, judge, held_out)
                metrics = self._phase1(pair, batch) if phase == "fwm" else self._phase2(pair, batch)
                metrics.update({"iteration": iteration, "phase": PHASE_NAMES[phase], **progress})
                step += 1
                log.log(step, metrics, write=step % c.log_steps == 0 or step == total)
                if c.save_steps and step % c.save_steps == 0 and step < total:  # every process: it waits there
                    self.save_checkpoint(output_dir, step, pair, {"total_steps": total,
                                                                 "annotations": self.annotations},
                                         extra=lambda folder: self._save_frozen_models(folder, pair))
                self.maybe_exit(step)
        final_progress = self._progress(pair, judge, held_out) if held_out and self.is_main else {}
        return self.finish(output_dir, pair, {"step": step, "total_steps": total, "pairs": len(pairs),
                                              "held_out": len(held_out), **final_progress})

    def config_fingerprint(self) -> dict[str, Any]:
        return {k: v for k, v in super().config_fingerprint().items()
                if k not in CONTROL_DEFAULTS or v != CONTROL_DEFAULTS[k]}

    @staticmethod
    def _oracle_actions(transitions: list[Any]) -> list[Any]:
        missing = sum(t.action is None for t in transitions)
        if missing:
            raise SwirlError(f"latent_action=oracle needs the true actions, but {missing} of {len(transitions)} "
                             "transitions have none (state-only data)")
        return [t.action for t in transitions]

    def prepare_models(self, pair: WorldModelPair) -> None:
        """Gradient checkpointing if asked, then the base's `accelerator.prepare`."""
        for key in self.optimizers:
            if self.config.gradient_checkpointing:  # applies in train mode only: sampling keeps its KV cache
                core_model(pair.unique_models()[key]).gradient_checkpointing_enable({"use_reentrant": False})
        super().prepare_models(pair)

    # ------------------------------------------------------------------ schedule pieces

    def _start_iteration(self, pair: WorldModelPair) -> None:
        """Snapshot the KL reference: each trained model as it is at the start of this iteration.

        The first snapshot allocates (a copy, or a LoRA model's adapters only: swirl_core.reference); later
        ones overwrite it in place.
        """
        if not self.config.beta and not self.config.idm_beta:
            self.refs = {}
            return
        self.refs = getattr(self, "refs", {})
        if self.config.kl_reference == "init" and self.refs:
            return  # the reference stays the initial model for the whole run
        for key in self.optimizers:
            model = pair.models["fwm" if key == "shared" else key]
            if key in self.refs:
                self.refs[key].update(model)
            else:
                self.refs[key] = snapshot(model)

    def _hold_out(self, pairs: list[Any]) -> tuple[list[Any], list[Any]]:
        """(held out, trained on): `progress_pairs` pairs chosen by the seed, kept out of training."""
        n = self.config.progress_pairs
        if n <= 0:
            return [], pairs
        if n >= len(pairs):
            raise SwirlError(f"progress_pairs={n} leaves nothing to train on ({len(pairs)} pairs)")
        chosen = set(np.random.default_rng([self.config.seed, 7]).permutation(len(pairs))[:n].tolist())
        return ([p for i, p in enumerate(pairs) if i in chosen], [p for i, p in enumerate(pairs) if i not in chosen])

    def _progress(self, pair: WorldModelPair, judge: WorldModelPair, held_out: list[tuple[Any, Any]]) -> dict[str, float]:
        """Both phases' rewards of the current models on the held-out pairs, scored by the frozen judge."""
        with torch.random.fork_rng(devices=[]):  # measuring must not shift the training run's draws
            found = fixed_judge_rewards(pair, judge, [x for x, _ in held_out], [y for _, y in held_out],
                                        config=self.config, num_samples=4, seed=self.config.seed)
        return {f"progress/{k}": v for k, v in found.items()}

    def _start_phase(self, pair: WorldModelPair) -> None:
        """Shared weights: the judge of this phase (the IDM in Phase I, the FWM in Phase II) is the model as
        it was when the phase began, frozen, as the other model is in a separate-weights run; without the
        snapshot the model being trained would score its own samples."""
        if not pair.shared:
            self.judge = None
        elif self.judge is None:
            self.judge = copy.deepcopy(pair.fwm).eval().requires_grad_(False)
        else:
            self.judge.load_state_dict(pair.fwm.state_dict())

    @contextlib.contextmanager
    def _judged_by(self, pair: WorldModelPair, role: str):
        """The pair to score with, whose model in `role` is the phase's frozen judge: judge_idm's own pair
        (Phase I), the initial model (judge=init), the snapshot of a shared model, or (separate weights) the
        other model itself, which this phase does not train."""
        if role == "idm" and self.strong_judge is not None:
            yield self.strong_judge  # its own tokenizer and prompt format: it reads the samples as text
            return
        frozen = self.initial.models[role] if self.config.judge == "init" else self.judge
        if frozen is None:
            yield pair
            return
        models = pair.models
        pair.models = {**models, role: frozen}
        try:
            yield pair
        finally:
            pair.models = models

    def _save_frozen_models(self, folder: Path, pair: WorldModelPair) -> None:
        self._save_refs(folder / "ref", pair)
        if self.judge is not None:
            save_trained_state(self.judge, str(folder / JUDGE_FILE))

    def _save_refs(self, folder: Path, pair: WorldModelPair) -> None:
        if not self.refs:
            return
        folder.mkdir(parents=True, exist_ok=True)
        for key, ref in self.refs.items():
            ref.save(folder / f"{key}.safetensors", pair.models["fwm" if key == "shared" else key])

    def _load_refs(self, pair: WorldModelPair, folder: Path) -> None:
        self.refs = {}
        for key in self.optimizers:
            model = pair.models["fwm" if key == "shared" else key]
            self.refs[key] = snapshot(model)
            self.refs[key].load(folder / f"{key}.safetensors", model)

    def _annotate(self, pair: WorldModelPair, pairs: list[tuple[Any, Any]], iteration: int) -> None:
        """Greedy IDM labels for every (x, y), kept where their mean token log-prob clears the bar."""
        if self.annotations is not None and self.annotations.get("iteration") == iteration:
            return  # resumed mid-phase: reuse the labels the killed run made
        c = self.config
        xs, ys = [x for x, _ in pairs], [y for _, y in pairs]
        zs = pair.predict_actions(xs, ys, max_new_tokens=c.idm_max_new_tokens, batch_size=c.sample_batch_size)
        scores = pair.score_actions(xs, ys, zs, batch_size=c.sample_batch_size).tolist()
        keep = [i for i, s in enumerate(scores) if s >= c.annotate_min_logprob]
        if not keep:
            raise SwirlError(f"no IDM annotation reached mean log-prob {c.annotate_min_logprob} (best "
                             f"{max(scores):.2f}); warm-start the IDM with SFT or lower annotate_min_logprob")
        self.annotations = {"iteration": iteration, "actions": zs, "keep": keep}

    def _batch(self, pairs: list[tuple[Any, Any]], iteration: int, phase_index: int, phase: str,
               within: int) -> list[tuple[int, Any, Any]]:
        """The step's (index, x, y): a pass over the data in an order fixed by (seed, iteration, phase)."""
        pool = list(range(len(pairs)))
        if phase == "fwm" and self.config.latent_action == "annotate" and self.annotations is not None:
            pool = self.annotations["keep"]  # Phase I trains only on pairs with a confident annotation
        order = np.random.default_rng([self.config.seed, iteration, phase_index]).permutation(len(pool))
        size = self.config.batch_size
        picked = [pool[order[(within * size + j) % len(pool)]] for j in range(size)]
        return [(i, *pairs[i]) for i in picked]

    # ------------------------------------------------------------------ the two phases

    def _phase1(self, pair: WorldModelPair, batch: list[tuple[int, Any, Any]]) -> dict[str, Any]:
        c = self.config
        xs, ys = [x for _, x, _ in batch], [y for _, _, y in batch]
        if c.latent_action == "oracle":
            zs = [self.actions[i] for i, _, _ in batch]
        elif c.latent_action == "annotate" and self.annotations is not None:
            zs = [self.annotations["actions"][i] for i, _, _ in batch]
        else:
            zs = pair.sample("idm", xs, ys, temperature=c.idm_temperature, top_p=c.idm_top_p,
                             max_new_tokens=c.idm_max_new_tokens, batch_size=c.sample_batch_size,
                             generator=self.generator).texts
        group = c.fwm_group_size
        gen = pair.sample("fwm", xs, zs, num_samples=group - c.fwm_greedy_in_group, temperature=c.fwm_temperature,
                          top_p=c.fwm_top_p, max_new_tokens=c.fwm_max_new_tokens, batch_size=c.sample_batch_size,
                          generator=self.generator)
        if c.fwm_greedy_in_group:
            greedy = pair.sample("fwm", xs, zs, max_new_tokens=c.fwm_max_new_tokens, batch_size=c.sample_batch_size)
            gen = with_leading_member(greedy, gen)
        with self._judged_by(pair, "idm") as judge:
            rewards = judge.score_actions(repeat_each(xs, group), gen.texts, repeat_each(zs, group),
                                          normalize=c.reward_normalize, batch_size=c.sample_batch_size)
        truth = pair.score_next_states(xs, zs, ys, batch_size=c.sample_batch_size)
        metrics = self._update(pair, "fwm", gen.prompt_ids, gen.completion_ids, rewards, group)
        metrics["logp_truth"] = self.accelerator.gather(truth).mean().item()  # log P(y | x, z) of the real y
        if c.fwm_greedy_in_group:  # the share of groups whose judge prefers the greedy decode to every sample
            top = self.accelerator.gather(rewards.float()).view(-1, group).argmax(1)
            metrics["greedy_top"] = (top == 0).float().mean().item()
        return metrics

    def _phase2(self, pair: WorldModelPair, batch: list[tuple[int, Any, Any]]) -> dict[str, Any]:
        c = self.config
        xs, ys = [x for _, x, _ in batch], [y for _, _, y in batch]
        group = c.idm_group_size
        gen = pair.sample("idm", xs, ys, num_samples=group, temperature=c.idm_temperature, top_p=c.idm_top_p,
                          max_new_tokens=c.idm_max_new_tokens, batch_size=c.sample_batch_size,
                          generator=self.generator)
        with self._judged_by(pair, "fwm") as judge:
            rewards = judge.score_next_states(repeat_each(xs, group), gen.texts, repeat_each(ys, group),
                                              normalize=c.reward_normalize, batch_size=c.sample_batch_size)
        metrics = self._update(pair, "idm", gen.prompt_ids, gen.completion_ids, rewards, group)
        metrics["logp_truth"] = metrics["reward/mean"]  # here the reward is log P(y | x, z_hat) of the real y
        return metrics

    def _update(self, pair: WorldModelPair, role: str, prompts: list[list[int]], completions: list[list[int]],
                raw_rewards: torch.Tensor, group: int) -> dict[str, Any]:
        """One GRPO step (or `updates_per_batch` of them) on `role` from a sampled, scored group batch."""
        c = self.config
        key = "shared" if pair.shared else role
        rewards = raw_rewards.float().clamp(min=c.reward_min)
        # the figures of the global batch: every process's rewards and lengths (this one's groups alone otherwise)
        own_lengths = torch.tensor([len(x) for x in completions], dtype=torch.float32, device=rewards.device)
        raw_all, lengths = self.accelerator.gather((raw_rewards.float(), own_lengths))
        all_rewards = raw_all.clamp(min=c.reward_min)
        grouped = all_rewards.view(-1, group)
        spread = grouped.max(1).values - grouped.min(1).values
        summary = {"reward/mean": all_rewards.mean().item(),
                   "reward/std": all_rewards.std().item() if len(all_rewards) > 1 else 0.0,
                   "reward/raw_mean": raw_all.mean().item(),
                   "frac_reward_zero_std": (grouped.std(1) < 1e-6).float().mean().item() if group > 1 else 1.0,
                   # groups whose rewards barely differ give (almost) no gradient: count them
                   "reward/group_spread": spread.mean().item(), "groups_flat": int((spread < c.flat_spread).sum()),
                   "completion_length": lengths.mean().item(),
                   "reward/length_slope": length_slope(all_rewards, lengths, group)}
        world = self.accelerator.num_processes
        if c.length_neutral:  # the slope of the global batch, taken out of this process's groups
            rewards = without_length_trend(rewards, own_lengths, group, summary["reward/length_slope"])
        if c.reward_shuffle:  # the control: each group keeps its values, their link to the samples is cut
            rewards = shuffle_within_groups(rewards, group, self.generator)  # checkpointed: resumes exactly
        if c.drop_flat_groups and world == 1:  # dynamic sampling, without refilling
            keep = (spread >= c.flat_spread).tolist()
            if not any(keep):
                return {**summary, "groups_used": 0, "lr": self.schedulers[key].get_last_lr()[0]}
            rows = [i for i in range(len(completions)) if keep[i // group]]
            prompts, completions = [prompts[i] for i in rows], [completions[i] for i in rows]
            rewards, summary["groups_used"] = rewards[rows], sum(keep)
        beta = c.idm_beta if role == "idm" and c.idm_beta is not None else c.beta
        clip = c.idm_max_grad_norm if role == "idm" and c.idm_max_grad_norm is not None else None
        if c.advantage_scale == "batch" and world > 1:  # the batch std spans all processes
            start = self.accelerator.process_index * len(rewards)
            advantages = group_advantages(self.accelerator.gather(rewards), group, "batch")[start:start + len(rewards)]
        else:  # a group lives on one process
            advantages = group_advantages(rewards, group, c.advantage_scale)
        model, pad = pair.models[role], pair.tokenizers[role].pad_token_id
        device = pair.device
        chunks = self.micro_batches(len(completions))
        loss_type, normalisers, row_share = self._loss_normalisers(completions, chunked=len(chunks) > 1)
        # Right after a KL snapshot the reference still is the policy, and before the first update the policy
        # is the sampler: their log-probs are then the first training forward's, detached (a forward saved).
        ref = self.refs.get(key) if beta else None
        ref_is_policy = ref is not None and ref.is_policy(model)
        old_is_first = c.updates_per_batch > 1 and deterministic(model)
        # the reference's and the sampler's log-probs of each chunk, keyed by its first row
        ref_logp: dict[int, torch.Tensor | None] = dict.fromkeys(rows.start for rows in chunks)
        old_logp: dict[int, torch.Tensor | None] = dict.fromkeys(rows.start for rows in chunks)
        with torch.no_grad():
            if ref is not None and not ref_is_policy:
                with ref.applied(model) as reference:  # an adapter snapshot swaps weights in once, not per chunk
                    for rows in chunks:
                        ref_logp[rows.start], _ = completion_logprobs(reference, prompts[rows], completions[rows], pad)
            if c.updates_per_batch > 1 and not old_is_first:
                for rows in chunks:
                    old_logp[rows.start], _ = completion_logprobs(model, prompts[rows], completions[rows], pad)
        model.train()
        trained = self.trained.get(key, model)
        logs: dict[str, float] = {}
        for update in range(c.updates_per_batch):
            def loss_of(rows: slice, first: bool = update == 0):
                logp, mask = completion_logprobs(trained, prompts[rows], completions[rows], pad)
                if first and ref_is_policy:
                    ref_logp[rows.start] = logp.detach()
                if first and old_is_first:
                    old_logp[rows.start] = logp.detach()
                loss, figures = grpo_loss(logp, old_logp[rows.start], ref_logp[rows.start],
                                          advantages[rows].to(device), mask, loss_type=loss_type, beta=beta,
                                          epsilon_low=c.epsilon_low, epsilon_high=c.epsilon_high, **normalisers)
                return loss * (row_share * len(completions[rows]) if row_share else 1.0), (figures, mask.sum())

            parts = self.accumulate(trained, chunks, loss_of)
            grad_norm = self.step_optimizer(key, model, max_grad_norm=clip)
            figures = merge_figures([extra for _, extra in parts])
            # each process's loss is its share of the global one; the figures are means over the processes
            shown = torch.tensor([sum(float(loss) for loss, _ in parts), *map(float, figures.values())],
                                 dtype=torch.float32, device=device)
            shown = self.accelerator.reduce(shown, "mean").tolist()
            logs = {"loss": shown[0], "grad_norm": grad_norm, **dict(zip(figures, shown[1:], strict=True))}
        return {**summary, "lr": self.schedulers[key].get_last_lr()[0], **logs}

    def _loss_normalisers(self, completions: list[list[int]], chunked: bool) -> tuple[str, dict[str, Any], float]:
        """Loss type, normalisers and per-row share under which the summed gradient of every micro-batch on
        every process (DDP averages over processes) equals the one-forward, one-process loss's.

        Each process holds the same number of sequences, so with one chunk "grpo" (a mean of sequence means)
        needs nothing; token-mean losses divide by the global token count over the processes, and dr_grpo by
        the global width. Chunks of a sequence-averaged loss ("grpo", "dr_grpo") weigh their rows' share.
        """
        world = self.accelerator.num_processes
        loss_type = self.config.loss_type
        if world == 1 and not chunked:
            return loss_type, {}, 0.0
        local = torch.tensor([sum(len(x) for x in completions), max([1, *(len(x) for x in completions)])],
                             dtype=torch.float32, device=self.device)
        counts = self.accelerator.gather(local[None]).view(world, 2)
        tokens, width = counts[:, 0].sum().item(), counts[:, 1].max().item()
        row_share = 1.0 / len(completions) if chunked and loss_type in ("grpo", "dr_grpo") else 0.0
        loss_type = "dapo" if loss_type == "bnpo" else loss_type  # the same, counted over the whole batch
        return loss_type, {"num_items": tokens / world, "max_completion_length": int(width)}, row_share


def with_leading_member(first: Generation, rest: Generation) -> Generation:
    """Groups of `rest` (rows grouped by prompt) with `first`'s one completion per prompt put in front."""
    per = len(rest.texts) // len(first.texts)
    rows = [(first, i) if k == 0 else (rest, i * per + k - 1) for i in range(len(first.texts)) for k in range(per + 1)]
    return Generation([g.texts[j] for g, j in rows], [g.prompt_ids[j] for g, j in rows],
                      [g.completion_ids[j] for g, j in rows])


def merge_figures(parts: list[tuple[dict[str, torch.Tensor], torch.Tensor]]) -> dict[str, torch.Tensor]:
    """grpo_loss's figures of a batch from those of its micro-batches (token means weigh by active tokens)."""
    if len(parts) == 1:
        return parts[0][0]
    tokens = torch.stack([n for _, n in parts]).float()
    merged = {}
    for name in parts[0][0]:
        values = torch.stack([figures[name].float() for figures, _ in parts])
        if name.endswith("_min"):
            merged[name] = values.min()
        elif name.endswith("_max"):
            merged[name] = values.max()
        else:
            merged[name] = (values * tokens).sum() / tokens.sum().clamp(min=1.0)
    return merged


@dataclass
class SwirlIdm2FwmConfig(SwirlConfig):
    mode: str = "idm2fwm"


class SwirlIdm2FwmTrainer(SwirlTrainer):
    """The Phase-I-only variant (IDM -> FWM) under its own trainer name."""

    name = "swirl-idm2fwm"
    config_class = SwirlIdm2FwmConfig


def evaluate_rewards(pair: WorldModelPair, states: list[Any], next_states: list[Any], *,
                     config: SwirlConfig | None = None, num_samples: int = 8, seed: int = 0,
                     actions: list[str] | None = None) -> dict[str, float]:
    """The two SWIRL objectives on fixed data, with a fixed sampling seed (so two models compare fairly):
    `fixed_judge_rewards` with the pair as its own judge. "phase1_reward" takes z from the IDM's greedy guess
    (or `actions` when given)."""
    found = fixed_judge_rewards(pair, pair, states, next_states, config=config, num_samples=num_samples, seed=seed,
                                actions=actions)
    return {"phase1_reward": found["phase1_reward"], "phase2_reward": found["phase2_reward"]}


def fixed_judge_rewards(pair: WorldModelPair, judge: WorldModelPair, states: list[Any], next_states: list[Any], *,
                        config: SwirlConfig | None = None, num_samples: int = 4, seed: int = 0,
                        actions: list[str] | None = None) -> dict[str, float]:
    """The two SWIRL objectives of `pair`'s models, judged by `judge` (another, frozen pair, or itself) on
    fixed data.

    "phase1_reward": mean log Q_judge(z | x, y_hat) over y_hat ~ pair's FWM(x, z), with z the judge IDM's
    greedy action for (x, y) (or `actions`); "phase2_reward": mean log P_judge(y | x, z_hat) over
    z_hat ~ pair's IDM(x, y). Clipped and length-normalised as the trainer's rewards, with its sampling
    settings; "*_flat_groups": groups whose rewards span less than `flat_spread` (no GRPO signal).
    """
    c = config or SwirlConfig()
    n = num_samples
    generator = torch.Generator(device=pair.device).manual_seed(seed)
    zs = actions if actions is not None else judge.predict_actions(
        states, next_states, max_new_tokens=c.idm_max_new_tokens, batch_size=c.sample_batch_size)
    y_hat = pair.predict_next_states(states, zs, num_samples=n, temperature=c.fwm_temperature, top_p=c.fwm_top_p,
                                     max_new_tokens=c.fwm_max_new_tokens, batch_size=c.sample_batch_size,
                                     generator=generator)
    phase1 = judge.score_actions(repeat_each(states, n), y_hat, repeat_each(zs, n), normalize=c.reward_normalize,
                                 batch_size=c.sample_batch_size).clamp(min=c.reward_min)
    z_hat = pair.predict_actions(states, next_states, num_samples=n, temperature=c.idm_temperature,
                                 top_p=c.idm_top_p, max_new_tokens=c.idm_max_new_tokens,
                                 batch_size=c.sample_batch_size, generator=generator)
    phase2 = judge.score_next_states(repeat_each(states, n), z_hat, repeat_each(next_states, n),
                                     normalize=c.reward_normalize,
                                     batch_size=c.sample_batch_size).clamp(min=c.reward_min)

    def flat(rewards: torch.Tensor) -> int:
        grouped = rewards.view(-1, n)
        return int(((grouped.max(1).values - grouped.min(1).values) < c.flat_spread).sum())

    return {"phase1_reward": phase1.mean().item(), "phase2_reward": phase2.mean().item(),
            "phase1_flat_groups": flat(phase1), "phase2_flat_groups": flat(phase2)}
