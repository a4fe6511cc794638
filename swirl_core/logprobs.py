"""Log-probabilities of completions given prompts, in one masked forward pass per batch.

Prompts are left-padded and completions right-padded, so every completion starts at the same column and
only the last T+1 positions need logits. A GRPO group repeats one long prompt for every short completion:
adjacent rows that share a long prompt prefix run it once and the rest against its keys/values (same
numbers up to float rounding, gradients included). Works through DistributedDataParallel and peft wrappers.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel
from transformers.cache_utils import Cache, DynamicLayer
from transformers.modeling_layers import GradientCheckpointingLayer

from .lora import core_model


def past_kwarg(model: PreTrainedModel) -> str:
    # transformers 5 renamed `past_key_values` to `cache`; accept either generation of the API.
    params = inspect.signature(core_model(model).forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _accepts(model: PreTrainedModel, name: str) -> bool:
    return name in inspect.signature(core_model(model).forward).parameters


def left_pad(rows: Sequence[Sequence[int]], pad_id: int, device: torch.device | str = "cpu"):
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
            mask[i, width - len(r):] = 1
    return ids.to(device), mask.to(device)


def right_pad(rows: Sequence[Sequence[int]], pad_id: int, device: torch.device | str = "cpu"):
    width = max(max((len(r) for r in rows), default=0), 1)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids.to(device), mask.to(device)


def completion_logprobs(model: PreTrainedModel, prompt_ids: Sequence[Sequence[int]],
                        completion_ids: Sequence[Sequence[int]], pad_id: int, *,
                        share_prefix: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probs of each completion given its prompt.

    Prompts are left-padded and completions right-padded, so every completion starts at the same column
    and only the last T+1 positions need logits. Returns (logp, mask), both (sequences, T): logp[i, j] is
    log p(completion_i[j] | prompt_i, completion_i[:j]); mask marks real tokens. Differentiable.

    A GRPO group repeats one long prompt for every short completion. With `share_prefix`, runs of adjacent
    rows whose prompts share a long prefix run that prefix once (per run) and the rest of each row against
    its keys/values: same numbers up to float rounding, gradients included, for a fraction of the tokens.
    """
    if not hasattr(model, "module"):  # DDP stays (it syncs gradients); a peft wrapper is looked through
        model = core_model(model)
    device = next(model.parameters()).device
    c_ids, c_mask = right_pad(completion_ids, pad_id, device)
    width = c_ids.shape[1]
    kwargs: dict[str, Any] = {"logits_to_keep": width + 1} if _accepts(model, "logits_to_keep") else {}
    groups = _prefix_groups(prompt_ids) if share_prefix and _can_share_prefix(model) else None
    logits = _shared_prefix_logits(model, prompt_ids, c_ids, c_mask, groups, pad_id, kwargs) if groups else None
    if logits is None:
        p_ids, p_mask = left_pad(prompt_ids, pad_id, device)
        ids, mask = torch.cat([p_ids, c_ids], 1), torch.cat([p_mask, c_mask], 1)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False, **kwargs).logits
    logits = logits[:, -(width + 1):-1].float()
    logp = torch.gather(logits, -1, c_ids.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, -1)
    return logp * c_mask, c_mask


def _shared_prefix_logits(model, prompt_ids, c_ids, c_mask, groups, pad_id, kwargs) -> torch.Tensor | None:
    """Logits of [prompt suffix, completion] rows run against their group's prefix keys/values (see
    `completion_logprobs`), or None when the model did not fill the cache (then the caller runs it plainly)."""
    device = c_ids.device
    bare = core_model(model)  # prefix pass outside DDP: DDP sees one forward per backward
    starts = np.cumsum([0] + [size for size, _ in groups[:-1]])
    h_ids, h_mask = left_pad([prompt_ids[i][:n] for i, (_, n) in zip(starts, groups, strict=True)], pad_id, device)
    row_group = torch.tensor([g for g, (size, _) in enumerate(groups) for _ in range(size)], device=device)
    shared = [n for size, n in groups for _ in range(size)]
    s_ids, s_mask = left_pad([p[n:] for p, n in zip(prompt_ids, shared, strict=True)], pad_id, device)
    prefix = Cache(layers=[_SharedPrefixLayer() for _ in range(bare.config.get_text_config().num_hidden_layers)])
    past = past_kwarg(bare)
    with _cache_through_checkpointing(bare):
        bare(input_ids=h_ids, attention_mask=h_mask, position_ids=(h_mask.cumsum(-1) - 1).clamp(min=0),
             use_cache=False, **{past: prefix}, **last_logit(bare))
        if not all(layer.is_initialized for layer in prefix.layers):  # e.g. a block that drops the cache
            return None
        rows = Cache(layers=[_SharedPrefixLayer(layer, row_group) for layer in prefix.layers])
        tail = torch.cat([s_mask, c_mask], 1)
        positions = torch.tensor(shared, device=device)[:, None] + tail.cumsum(-1) - 1
        return model(input_ids=torch.cat([s_ids, c_ids], 1), attention_mask=torch.cat([h_mask[row_group], tail], 1),
                     position_ids=positions.clamp(min=0), use_cache=False, **{past: rows}, **kwargs).logits


class _SharedPrefixLayer(DynamicLayer):
    """One layer's keys/values of the shared prefixes, safe to replay under gradient checkpointing.

    Made empty, `update` stores the prefix states (a backward replay stores the same values again). Made
    from such a layer and a row -> prefix `index`, it only reads: each row's prefix (a differentiable
    gather) followed by the row's own states, and stores nothing, so a replay sees what the forward saw.
    """

    def __init__(self, prefix: _SharedPrefixLayer | None = None, index: torch.Tensor | None = None):
        super().__init__()
        self.index = index
        if prefix is not None:
            self.keys, self.values, self.device, self.is_initialized = prefix.keys, prefix.values, prefix.device, True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if self.index is None:
            self.device, self.is_initialized = key_states.device, True
            self.keys, self.values = key_states, value_states
            return key_states, value_states
        return (torch.cat([self.keys[self.index], key_states], -2),
                torch.cat([self.values[self.index], value_states], -2))


def _prefix_groups(prompts: Sequence[Sequence[int]]) -> list[tuple[int, int]] | None:
    """(rows, shared prefix length) for each run of adjacent prompts sharing at least half of the run's
    first prompt, or None when no run has two rows. The shared part stops at least one token short of
    every prompt, so the second pass always holds the token whose logits predict the first completion token.
    """
    prompts, groups, i = [list(p) for p in prompts], [], 0
    while i < len(prompts):
        first, j = prompts[i], i + 1
        shared = len(first) - 1
        while j < len(prompts):
            limit = min(shared, len(prompts[j]) - 1)
            a, b = first[:limit], prompts[j][:limit]
            common = limit if a == b else next((k for k, (u, v) in enumerate(zip(a, b, strict=True)) if u != v), limit)
            if common < max(1, len(first) // 2):
                break
            shared, j = common, j + 1
        if shared < 1:
            return None
        groups.append((j - i, shared))
        i = j
    return groups if any(size > 1 for size, _ in groups) else None


def _can_share_prefix(model: PreTrainedModel) -> bool:
    """A plain full-attention decoder that takes a cache (no sliding window, no recurrent state), and
    gradient checkpointing, if on, is the non-reentrant kind (reentrant checkpoints cut the gradient that
    flows through the cached prefix)."""
    bare = core_model(model)
    if not full_attention_with_cache(bare):
        return False
    for layer in bare.modules():
        if isinstance(layer, GradientCheckpointingLayer) and layer.gradient_checkpointing:
            func = getattr(layer, "_gradient_checkpointing_func", None)
            if getattr(func, "keywords", {}).get("use_reentrant", True) is not False:
                return False
    return True


def full_attention_with_cache(model: PreTrainedModel) -> bool:
    config = model.config.get_text_config()
    if getattr(config, "sliding_window", None) or config.is_encoder_decoder:
        return False
    if any(t != "full_attention" for t in getattr(config, "layer_types", None) or ()):
        return False
    return _accepts(model, "cache") or _accepts(model, "past_key_values")


@contextlib.contextmanager
def _cache_through_checkpointing(model: PreTrainedModel):
    """Let checkpointed layers keep the cache (transformers drops it, since a replay would write it twice;
    `_SharedPrefixLayer` is replay-safe). The decision is taken in the forward, so backward replays keep it."""
    layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer) and m.gradient_checkpointing]
    for layer in layers:
        layer._can_checkpoint_with_cache = True
    try:
        yield
    finally:
        for layer in layers:
            del layer._can_checkpoint_with_cache


def last_logit(model: PreTrainedModel) -> dict[str, int]:
    return {"logits_to_keep": 1} if _accepts(model, "logits_to_keep") else {}


def reduce_logprobs(logp: torch.Tensor, mask: torch.Tensor, normalize: bool) -> torch.Tensor:
    total = (logp * mask).sum(-1)
    return total / mask.sum(-1).clamp(min=1) if normalize else total
