"""The trainer base every built-in trainer (and any plugin that wants it) derives from: data intake, model
setup (presets, LoRA), AdamW and LR schedules per distinct set of weights, atomic checkpoints and resume,
and one `accelerate.Accelerator` that runs it all in one or several processes.

A resumed run is bit-identical to an uninterrupted one: checkpoints (swirl_core.checkpoint) hold the pair,
optimiser, scheduler and RNG state, and a run refuses to resume from a checkpoint of another config.

Several processes (`accelerate launch`, torchrun) are data parallel over one global batch: `batch_size` is
the batch of an optimiser step whatever the number of processes; each process takes its contiguous share
(`shard`), the trained models are `accelerator.prepare`d (DDP averages their gradients) and the losses are
normalised by global counts, so that N processes end where one would, up to float rounding. For the same
reason `micro_batch_size` (gradient accumulation: a share runs in chunks, DDP syncs on the last) changes the
memory a step needs, not the step. The main process alone writes (checkpoints, the final pair,
metrics.jsonl, trackers); the others wait for it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import gather_object

from swirl_envs.errors import SwirlError
from swirl_envs.fileio import atomic_directory

from .checkpoint import (
    STATE_FILE,
    latest_checkpoint,
    prune_checkpoints,
    read_state,
    rng_state,
    set_rng_state,
    torch_load,
)
from .config import to_dict
from .logging import check_trackers
from .lora import core_model
from .models import DTYPES, WorldModelPair, build_tiny_pair

# Config fields that may differ between a killed run and its resumption without changing the result
# (micro_batch_size up to float rounding: a run killed for memory resumes in smaller chunks).
RESUME_NEUTRAL = ("progress", "save_steps", "save_total_limit", "log_steps", "device", "report_to",
                  "micro_batch_size")
# Fields added after runs were saved: left out of the fingerprint at their default, so those runs still resume
# (a non-default value changes what is sampled, so it must match).
LATER_FIELD_DEFAULTS = {"generation_backend": "fast", "mixed_precision": "no", "fold_adapters": True,
                        "changes_only": False}
EXIT_AFTER_STEP_ENV = "SWIRL_EXIT_AFTER_STEP"  # testing hook: die right after this optimiser step
SIMULATED_CRASH_EXIT_CODE = 86  # distinct from 1, which an ordinary traceback also gives


def make_accelerator(device: str, mixed_precision: str = "no") -> Accelerator:
    """The Accelerator of a run on `device`: gloo on CPU, accelerate's choice (nccl on NVIDIA GPUs) otherwise.

    Models are placed by the trainer (`device_placement=False`), so that "cuda:1" in one process stays there.
    """
    cpu = torch.device(device).type == "cpu"
    state = AcceleratorState._shared_state
    # accelerate keeps one state per process and refuses new settings; one plain process may run trainers of
    # different devices or precisions in turn (tests, experiments), so it starts afresh for them.
    if state and state.get("num_processes", 1) == 1 and (
            state.get("_mixed_precision") != mixed_precision or (state["device"].type == "cpu") != cpu):
        AcceleratorState._reset_state(reset_partial_state=True)
    return Accelerator(cpu=cpu, mixed_precision=mixed_precision, device_placement=False)


class CheckpointedTrainer:
    """What every built-in trainer shares: data intake, model setup, optimisers, checkpoints, resume.

    Subclasses set `config_class` and `name` and implement `train`. Protocol (see swirl_core.registry):
    `Trainer(config).train(transitions_or_benchmark, output_dir, init=None) -> Path` of the final pair.
    A train step: `make_optimizers`, `prepare_models`, then per step the loss on `shard(global batch)` through
    `self.trained[key]`, `self.accelerator.backward(loss)` and `step_optimizer`.
    """

    name: str = "trainer"
    config_class: type = object

    def __init__(self, config: Any = None):
        self.config = config if config is not None else self.config_class()
        c = self.config
        check_trackers(c.report_to)  # a missing tracker package fails here, before any data or model
        for plugin in ("FSDP", "DEEPSPEED"):  # what `accelerate launch` sets for a sharded config file
            if os.environ.get(f"ACCELERATE_USE_{plugin}", "").lower() in ("1", "true"):
                raise SwirlError(f"{plugin} is not supported yet: sampling and scoring run the unsharded modules; "
                                 "launch with a DDP config (docs/speed.md, 'GPU users: FSDP and DeepSpeed')")
        launched = os.environ.get("ACCELERATE_MIXED_PRECISION")  # what `accelerate launch` was told
        if launched and launched != c.mixed_precision:  # the config decides (its fingerprint records it)
            raise SwirlError(f"accelerate launch asks for mixed precision {launched} but the config has "
                             f"{c.mixed_precision}: pass --set mixed_precision={launched} (or launch with it)")
        self.accelerator = make_accelerator(c.device, c.mixed_precision)  # joins the launcher's process group
        asked = torch.device(c.device)
        # "cuda" is this process's own GPU under a launcher; an explicit index ("cuda:1") is kept
        self.device = asked if asked.index is not None or asked.type != self.accelerator.device.type \
            else self.accelerator.device
        self.is_main = self.accelerator.is_main_process
        # on the training device: torch.multinomial samples there with this generator; every process draws
        # its own samples (for its own groups), process 0 the stream of a one-process run
        rank = self.accelerator.process_index
        seed = c.seed if rank == 0 else int(np.random.SeedSequence([c.seed, rank]).generate_state(1)[0])
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, torch.optim.lr_scheduler.LambdaLR] = {}
        self.trained: dict[str, torch.nn.Module] = {}  # per optimiser key: the model to run training forwards on

    def shard(self, items: list) -> list:
        """This process's contiguous share of a global batch (accelerate's split: when the batch does not
        divide, the first processes take one more)."""
        with self.accelerator.split_between_processes(list(items)) as mine:
            return list(mine)

    def micro_batches(self, count: int) -> list[slice]:
        """Row slices of a process's `count` rows, `micro_batch_size` at a time (all at once when unset)."""
        size = self.config.micro_batch_size or max(count, 1)
        return [slice(start, start + size) for start in range(0, count, size)] or [slice(0, 0)]

    def accumulate(self, model: torch.nn.Module, chunks: list[slice], loss_of) -> list[Any]:
        """Forward and backward `loss_of(chunk)` (-> (loss, extra)) for every chunk; gradients add up.

        Each chunk's loss must already be its share of the batch loss (normalised by whole-batch counts), so
        that the summed gradient is the one of a single forward. Under DDP only the last backward all-reduces.
        Returns each chunk's (detached loss, extra).
        """
        out = []
        for i, chunk in enumerate(chunks):
            sync = i == len(chunks) - 1
            with contextlib.nullcontext() if sync else self.accelerator.no_sync(model):
                loss, extra = loss_of(chunk)
                self.accelerator.backward(loss)
            out.append((loss.detach(), extra))
        return out

    # ------------------------------------------------------------------ inputs

    def transitions(self, data: Any) -> list:
        """A list of Transition from an iterable of them or from a Benchmark (config.split, config.limit)."""
        if hasattr(data, "transitions") and callable(data.transitions):
            return list(data.transitions(self.config.split, limit=self.config.limit))
        items = list(data)
        return items[: self.config.limit] if self.config.limit is not None else items

    def build_pair(self, init: str | Path | None, texts: list[str]):
        c = self.config
        options = {"max_length": c.max_length, "max_target_tokens": c.max_target_tokens, "keep_head": c.keep_head,
                   "changes_only": c.changes_only}
        if init is not None:
            pair = WorldModelPair.load(init, dtype=c.dtype, **options)
        elif c.model == "tiny":
            tiny = {k: v for k, v in dataclasses.asdict(c.tiny).items()}
            pair = build_tiny_pair(texts, shared=c.shared, seed=c.seed, **options, **tiny)
            for model in pair.unique_models().values():
                model.to(DTYPES[c.dtype])
        else:
            pair = WorldModelPair.load(c.model, c.idm_model, shared=c.shared, dtype=c.dtype, **options)
        if c.lora.enabled:  # a pair that already has adapters (e.g. an SFT LoRA init) keeps training them
            pair.add_adapters(c.lora, seed=c.seed)
        pair.generation_backend, pair.fold_adapters = c.generation_backend, c.fold_adapters
        return pair.to(self.device)

    # ------------------------------------------------------------------ optimisation

    def make_optimizers(self, pair, roles: tuple[str, ...], total_steps: int | dict[str, int]) -> None:
        """One AdamW (and LR schedule) per distinct set of weights among `roles`; `total_steps` is the number of
        optimiser steps each will take (one number, or per key: "fwm", "idm", "shared")."""
        c = self.config
        self.optimizers, self.schedulers = {}, {}
        for key, model in pair.unique_models().items():
            if key != "shared" and key not in roles:
                continue
            trainable = [p for p in model.parameters() if p.requires_grad]  # LoRA: the adapters only
            optimizer = torch.optim.AdamW(trainable, lr=c.learning_rate, betas=(c.adam_beta1, c.adam_beta2),
                                          weight_decay=c.weight_decay)
            self.optimizers[key] = optimizer
            steps = total_steps[key] if isinstance(total_steps, dict) else total_steps
            self.schedulers[key] = torch.optim.lr_scheduler.LambdaLR(optimizer, self._lr_lambda(steps))

    def _lr_lambda(self, total_steps: int):
        warmup, kind = self.config.warmup_steps, self.config.lr_scheduler

        def factor(step: int) -> float:
            if warmup and step < warmup:
                return (step + 1) / warmup
            if kind == "linear":
                return max(0.0, (total_steps - step) / max(1, total_steps - warmup))
            if kind == "cosine":
                done = (step - warmup) / max(1, total_steps - warmup)
                return 0.5 * (1.0 + math.cos(math.pi * min(1.0, done)))
            return 1.0

        return factor

    def prepare_models(self, pair) -> None:
        """Each trained model and its optimiser through `accelerator.prepare`: DDP (gradients averaged in
        backward) under several processes, the mixed-precision autocast. `self.trained[key]` is the model to run
        training forwards on; sampling and scoring use the pair's own modules, which share its weights."""
        for key in self.optimizers:
            model = core_model(pair.unique_models()[key])  # peft's LoRA layers live inside the causal LM
            self.trained[key], self.optimizers[key] = self.accelerator.prepare(model, self.optimizers[key])

    def step_optimizer(self, key: str, model: torch.nn.Module, max_grad_norm: float | None = None) -> float:
        clip = self.config.max_grad_norm if max_grad_norm is None else max_grad_norm
        grad_norm = self.accelerator.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], clip)
        optimizer = self.optimizers[key]
        optimizer.step()
        # the schedule follows the steps taken (fp16: a step with inf gradients is skipped)
        if not getattr(optimizer, "step_was_skipped", False):
            self.schedulers[key].step()
        optimizer.zero_grad(set_to_none=True)
        return float(grad_norm)

    # ------------------------------------------------------------------ checkpoints

    def config_fingerprint(self) -> dict[str, Any]:
        return {k: v for k, v in to_dict(self.config).items()
                if k not in RESUME_NEUTRAL and not (k in LATER_FIELD_DEFAULTS and v == LATER_FIELD_DEFAULTS[k])}

    def save_checkpoint(self, output_dir: Path, step: int, pair, state: dict[str, Any],
                        extra: Any = None) -> Path:
        """checkpoint-<step>/: the pair, optimiser + scheduler + RNG state and trainer_state.json, atomically.

        Every process calls it: each one's RNG state (CUDA's included) is kept, as rng.pt (process 0) and
        rng-<i>.pt; the main process writes and the others wait. `extra(folder)` may write more (a reference
        model, cached pseudo-labels).
        """
        folder = output_dir / f"checkpoint-{step:06d}"
        rngs = gather_object([rng_state(self.generator)])
        if self.is_main:
            with atomic_directory(folder) as tmp:
                pair.save_into(tmp)
                torch.save({k: o.state_dict() for k, o in self.optimizers.items()}, tmp / "optimizer.pt")
                torch.save({k: s.state_dict() for k, s in self.schedulers.items()}, tmp / "scheduler.pt")
                for rank, rng in enumerate(rngs):
                    torch.save(rng, tmp / (f"rng-{rank}.pt" if rank else "rng.pt"))
                if self.accelerator.scaler is not None:  # fp16's loss scale
                    torch.save(self.accelerator.scaler.state_dict(), tmp / "scaler.pt")
                if extra is not None:
                    extra(tmp)
                full = {"trainer": self.name, "step": step, "config": self.config_fingerprint(), **state}
                (tmp / STATE_FILE).write_text(json.dumps(full, indent=2, sort_keys=True, default=str))
            prune_checkpoints(output_dir, self.config.save_total_limit)
        self.accelerator.wait_for_everyone()
        return folder

    def resume_point(self, output_dir: Path) -> Path | None:
        """The newest checkpoint to resume from, after checking it was made by the same config."""
        folder = latest_checkpoint(output_dir)
        if folder is None:
            return None
        stored = read_state(folder)
        mine = json.loads(json.dumps(self.config_fingerprint(), default=str))
        if stored.get("trainer") != self.name or stored.get("config") != mine:
            raise SwirlError(f"{folder} was written by a different trainer or config; use a new output_dir "
                             "or delete it to start over")
        return folder

    def restore(self, folder: Path) -> None:
        """Load optimiser, scheduler and RNG state (call after make_optimizers on the checkpoint's pair)."""
        for key, sd in torch_load(folder / "optimizer.pt").items():
            self.optimizers[key].load_state_dict(sd)
        for key, sd in torch_load(folder / "scheduler.pt").items():
            self.schedulers[key].load_state_dict(sd)
        if self.accelerator.scaler is not None and (folder / "scaler.pt").is_file():
            self.accelerator.scaler.load_state_dict(torch_load(folder / "scaler.pt"))
        rank = self.accelerator.process_index
        own = folder / f"rng-{rank}.pt"
        if rank and own.is_file():
            set_rng_state(torch_load(own), self.generator)
        else:  # a checkpoint of fewer processes: this one keeps its own sampling stream
            set_rng_state(torch_load(folder / "rng.pt"), self.generator if rank == 0 else None)

    def finish(self, output_dir: Path, pair, state: dict[str, Any]) -> Path:
        """final/: the trained pair and trainer_state.json (the main process writes, every process returns it)."""
        final = output_dir / "final"
        if self.is_main:
            with atomic_directory(final) as tmp:
                pair.save_into(tmp)
                full = {"trainer": self.name, "config": self.config_fingerprint(), "complete": True, **state}
                (tmp / STATE_FILE).write_text(json.dumps(full, indent=2, sort_keys=True, default=str))
        self.accelerator.wait_for_everyone()
        return final

    def finished(self, output_dir: Path) -> Path | None:
        """The final pair of an already completed run with this config (so a rerun is a no-op)."""
        final = output_dir / "final"
        if not (final / STATE_FILE).is_file():
            return None
        stored = read_state(final)
        mine = json.loads(json.dumps(self.config_fingerprint(), default=str))
        if stored.get("trainer") == self.name and stored.get("config") == mine and stored.get("complete"):
            return final
        raise SwirlError(f"{final} holds a run with a different trainer or config; use a new output_dir")

    @staticmethod
    def maybe_exit(step: int) -> None:
        if os.environ.get(EXIT_AFTER_STEP_ENV) == str(step):
            os._exit(SIMULATED_CRASH_EXIT_CODE)  # simulate a crash: no cleanup, no final save
