"""Parameter-efficient training: LoRA adapters through peft, and looking through the wrappers.

A pair's model is either a plain causal LM or a `peft.PeftModel` around one. Trainers keep the PeftModel
(its `save_pretrained` writes peft's standard adapter folder, which `PeftModel.from_pretrained(base, folder)`
loads on its own); forward passes that need the model's own signature (cache, `logits_to_keep`) go to
`core_model`, the wrapped causal LM, whose LoRA layers are injected in place and so stay active.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from swirl_envs.errors import SwirlError


@dataclass
class LoraSettings:
    """LoRA adapters instead of full fine-tuning (peft)."""

    enabled: bool = False  # train LoRA adapters on a frozen base instead of every weight
    r: int = 8  # adapter rank
    alpha: int = 16  # scaling numerator: the update is alpha / r * B @ A
    dropout: float = 0.0  # dropout on the adapter input (0 keeps train and eval forwards identical)
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")  # or ("all-linear",)

    def __post_init__(self) -> None:
        if self.r < 1 or self.alpha <= 0 or not 0.0 <= self.dropout < 1.0 or not self.target_modules:
            raise SwirlError(f"lora needs r >= 1, alpha > 0, 0 <= dropout < 1 and target modules, got {self}")
        self.target_modules = tuple(self.target_modules)

    def peft_config(self) -> Any:
        from peft import LoraConfig

        targets = "all-linear" if self.target_modules == ("all-linear",) else list(self.target_modules)
        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout, target_modules=targets,
                          task_type="CAUSAL_LM")


def is_adapter(model: torch.nn.Module) -> bool:
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)


def core_model(model: torch.nn.Module) -> torch.nn.Module:
    """The causal LM under a DistributedDataParallel and/or peft wrapper."""
    model = getattr(model, "module", model)
    return model.get_base_model() if is_adapter(model) else model


def add_adapters(model: torch.nn.Module, settings: LoraSettings) -> torch.nn.Module:
    """`model` with fresh LoRA adapters (the base frozen); a model that already has adapters keeps them."""
    if is_adapter(model):
        return model
    from peft import get_peft_model

    return get_peft_model(model, settings.peft_config())


def load_adapters(base: torch.nn.Module, folder: str, trainable: bool = True) -> torch.nn.Module:
    from peft import PeftModel

    return PeftModel.from_pretrained(base, folder, is_trainable=trainable)


def save_trained_state(model: torch.nn.Module, path: str) -> None:
    """What a training run changes, as safetensors: the adapters of a PeftModel, every weight otherwise."""
    if is_adapter(model):
        from peft import get_peft_model_state_dict
        from safetensors.torch import save_file

        # adapters never resize the embeddings; "auto" would ask the Hub about the base at every checkpoint
        save_file(get_peft_model_state_dict(model, save_embedding_layers=False), path)
    else:
        from safetensors.torch import save_model

        save_model(model, path)  # handles tied weights, which save_file refuses


def load_trained_state(model: torch.nn.Module, path: str) -> None:
    if is_adapter(model):
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        result = set_peft_model_state_dict(model, load_file(path))
        if getattr(result, "unexpected_keys", None):
            raise SwirlError(f"{path}: adapter tensors the model lacks, e.g. {result.unexpected_keys[0]}")
    else:
        from safetensors.torch import load_model

        load_model(model, path)


@contextlib.contextmanager
def folded_adapters(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Inference through LoRA layers folded into plain Linears holding W + (alpha / r) B A.

    An unmerged LoRA Linear runs three matmuls and an add per forward; when decoding a token at a time, those
    small extra kernels cost as much as the layer itself (on an H200 they doubled SWIRL's generation time).
    Unlike peft's `merge`/`unmerge`, which round the base weights a little on every cycle, the folded
    weights are temporary copies: inside the block each LoRA layer is swapped for a Linear of its own, on exit
    the original modules come back untouched, so training goes on bit for bit. Costs one copy of the adapted
    weights while the block runs. Layers peft has merged or disabled, and variants (DoRA) or non-Linear bases,
    stay as they are. Yields the model; a model without adapters passes through.
    """
    swaps: list[tuple[torch.nn.Module, str, torch.nn.Module]] = []
    if is_adapter(getattr(model, "module", model)):
        from peft.tuners.lora import Linear as LoraLinear

        with torch.no_grad():
            for parent in list(core_model(model).modules()):
                for name, child in list(parent.named_children()):
                    folded = _folded_linear(child) if isinstance(child, LoraLinear) else None
                    if folded is not None:
                        setattr(parent, name, folded)
                        swaps.append((parent, name, child))
    try:
        yield model
    finally:
        for parent, name, child in swaps:
            setattr(parent, name, child)


def _folded_linear(layer: Any) -> torch.nn.Linear | None:
    """A plain Linear computing what the LoRA Linear `layer` computes now; None where it cannot be folded."""
    adapters = [a for a in layer.active_adapters if a in layer.lora_A]
    base = layer.get_base_layer()
    if (not adapters or layer.merged or layer.disable_adapters or type(base) is not torch.nn.Linear
            or any(getattr(layer, "lora_variant", {}).get(a) or getattr(layer, "use_dora", {}).get(a)
                   for a in adapters)):
        return None
    weight = base.weight.detach().clone()
    for adapter in adapters:
        weight += layer.get_delta_weight(adapter).to(weight.dtype)
    folded = torch.nn.utils.skip_init(torch.nn.Linear, base.in_features, base.out_features, bias=base.bias is not None,
                                      device=weight.device, dtype=weight.dtype)
    folded.weight = torch.nn.Parameter(weight, requires_grad=False)
    if base.bias is not None:
        folded.bias = base.bias
    return folded


def adapter_parameters(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    """(name, parameter) of every LoRA adapter weight in the model ([] without adapters)."""
    return [(name, p) for name, p in model.named_parameters() if "lora_" in name]


def describe_adapters(model: torch.nn.Module) -> dict[str, Any] | None:
    if not is_adapter(model):
        return None
    config = model.peft_config[model.active_adapter]
    trainable = sum(p.numel() for _, p in adapter_parameters(model))
    return {"type": "lora", "r": config.r, "alpha": config.lora_alpha,
            "target_modules": sorted(config.target_modules), "adapter_parameters": trainable}
