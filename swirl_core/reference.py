"""The KL reference of a GRPO update: a trained model as it was at a snapshot, frozen.

Fully trained models are copied whole. A LoRA model keeps only its adapter weights: the frozen base is the
same in the policy and the reference, so a copy would hold a second base for nothing (540 MB at 135M
parameters, more than the LoRA optimiser and activations together). Its reference forward swaps the
snapshot's adapters into the policy, runs without gradients, and swaps the policy's back.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from pathlib import Path

import torch

from .grpo import deterministic, same_policy
from .lora import adapter_parameters, is_adapter, load_trained_state, save_trained_state


class FrozenCopy:
    """A whole frozen copy of the model (full fine-tuning)."""

    def __init__(self, model: torch.nn.Module):
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    def update(self, model: torch.nn.Module) -> None:
        self.model.load_state_dict(model.state_dict())  # in place: no new allocation every iteration

    def is_policy(self, model: torch.nn.Module) -> bool:
        return same_policy(self.model, model)

    @contextlib.contextmanager
    def applied(self, model: torch.nn.Module) -> Iterator[torch.nn.Module]:
        yield self.model

    def save(self, path: Path, model: torch.nn.Module) -> None:
        save_trained_state(self.model, str(path))

    def load(self, path: Path, model: torch.nn.Module) -> None:
        load_trained_state(self.model, str(path))


class AdapterSnapshot:
    """A LoRA model's adapter weights at the snapshot; the base weights are the policy's own."""

    def __init__(self, model: torch.nn.Module):
        self.weights = {name: p.detach().clone() for name, p in adapter_parameters(model)}

    def update(self, model: torch.nn.Module) -> None:
        with torch.no_grad():
            for name, p in adapter_parameters(model):
                self.weights[name].copy_(p)

    def is_policy(self, model: torch.nn.Module) -> bool:
        return deterministic(model) and all(torch.equal(self.weights[n], p) for n, p in adapter_parameters(model))

    @contextlib.contextmanager
    def applied(self, model: torch.nn.Module) -> Iterator[torch.nn.Module]:
        """The policy itself, wearing the snapshot's adapters and in eval mode, until the block ends."""
        own = dict(adapter_parameters(model))
        saved = {name: p.detach().clone() for name, p in own.items()}
        training = model.training
        try:
            with torch.no_grad():
                for name, p in own.items():
                    p.copy_(self.weights[name])  # in place: the optimiser keeps its parameter objects
            yield model.eval()
        finally:
            with torch.no_grad():
                for name, p in own.items():
                    p.copy_(saved[name])
            model.train(training)

    # Saved through the policy in peft's own layout, the file a whole frozen copy of it would write.
    def save(self, path: Path, model: torch.nn.Module) -> None:
        with self.applied(model):
            save_trained_state(model, str(path))

    def load(self, path: Path, model: torch.nn.Module) -> None:
        own = {name: p.detach().clone() for name, p in adapter_parameters(model)}
        load_trained_state(model, str(path))
        self.update(model)
        with torch.no_grad():
            for name, p in adapter_parameters(model):
                p.copy_(own[name])


def snapshot(model: torch.nn.Module) -> FrozenCopy | AdapterSnapshot:
    """The model's KL reference as it is now."""
    return AdapterSnapshot(model) if is_adapter(model) else FrozenCopy(model)
