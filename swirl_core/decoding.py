"""Batched sampling with a preallocated KV cache: the generation loop behind `WorldModelPair.sample`."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedModel
from transformers.cache_utils import Cache, DynamicLayer

from swirl_envs.errors import SwirlError

from .logprobs import full_attention_with_cache, last_logit, left_pad, past_kwarg
from .lora import core_model


def _sample(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None):
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, -1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(-1, descending=True)
        # Drop a token once the mass before it already reaches top_p; the most likely token always stays.
        drop = sorted_probs.cumsum(-1) - sorted_probs >= top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


class _PreallocatedLayer(DynamicLayer):
    """A DynamicLayer whose keys/values live in buffers sized for the whole generation: `update` writes the
    new states in place and returns a view of the filled part, instead of re-concatenating the cache every
    token (quadratic copying). Attention sees the same values and length as with DynamicLayer."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity, self.length = capacity, 0

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.device, self.is_initialized = key_states.device, True
            b, h, _, d = key_states.shape
            self._k = key_states.new_empty(b, h, self.capacity, d)
            self._v = value_states.new_empty(b, h, self.capacity, value_states.shape[-1])
        end = self.length + key_states.shape[-2]
        if end > self.capacity:
            raise SwirlError(f"generation cache overflow ({end} > {self.capacity} positions)")
        self._k[:, :, self.length:end] = key_states
        self._v[:, :, self.length:end] = value_states
        self.length = end
        self.keys, self.values = self._k[:, :, :end], self._v[:, :, :end]
        return self.keys, self.values

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.is_initialized:
            self._k, self._v = (t.repeat_interleave(repeats, 0) for t in (self._k, self._v))
            self.keys, self.values = self._k[:, :, :self.length], self._v[:, :, :self.length]

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.is_initialized:
            self._k, self._v = self._k[indices], self._v[indices]
            self.keys, self.values = self._k[:, :, :self.length], self._v[:, :, :self.length]


def _preallocated_cache(model: PreTrainedModel, capacity: int) -> Cache | None:
    """A cache of `_PreallocatedLayer`s for a plain full-attention decoder that takes one, else None (the
    model then builds its own cache, e.g. GPT-2 or a sliding-window model)."""
    if not full_attention_with_cache(model):
        return None
    layers = model.config.get_text_config().num_hidden_layers
    return Cache(layers=[_PreallocatedLayer(capacity) for _ in range(layers)])


@torch.no_grad()
def generate_ids(model: PreTrainedModel, prompt_ids: Sequence[Sequence[int]], *, eos_id: int, pad_id: int,
                 max_new_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
                 generator: torch.Generator | None = None, repeats: int = 1, shrink: bool = True) -> list[list[int]]:
    """Batched sampling with a KV cache; each row stops at its eos (kept in the output) or the budget, and
    finished rows leave the batch (and the cache) as they accumulate.

    With `repeats` > 1 each prompt is sampled that many times (rows i*repeats .. i*repeats+repeats-1): the
    prompt is run once and its cache copied, instead of running the same prompt once per sample.
    The cache and the attention mask are allocated once for prompt + budget and filled in place.
    `shrink=False` keeps finished rows in the batch to the end (the reference `benchmarks/decode_shrink.py`
    measures against); the ids are the same either way.
    """
    model = core_model(model)
    device = next(model.parameters()).device
    ids, prompt_mask = left_pad(prompt_ids, pad_id, device)
    width = ids.shape[1]
    positions = (prompt_mask.cumsum(-1) - 1).clamp(min=0)
    past_name = past_kwarg(model)
    cache = _preallocated_cache(model, width + max_new_tokens)
    out = model(input_ids=ids, attention_mask=prompt_mask, position_ids=positions, use_cache=True,
                **({past_name: cache} if cache is not None else {}), **last_logit(model))
    past = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
    logits = out.logits[:, -1]
    mask = torch.zeros(len(prompt_ids), width + max_new_tokens, dtype=torch.long, device=device)
    mask[:, :width] = prompt_mask
    if repeats > 1:
        past.batch_repeat_interleave(repeats)
        logits, mask, positions = (t.repeat_interleave(repeats, 0) for t in (logits, mask, positions))
    positions = positions[:, -1:]
    done = torch.zeros(len(prompt_ids) * repeats, dtype=torch.bool, device=device)
    produced = torch.full((len(done), max_new_tokens), pad_id, dtype=torch.long, device=device)
    rows = torch.arange(len(done), device=device)  # the row of `produced` each batch row writes to
    can_shrink = shrink and callable(getattr(past, "batch_select_indices", None))
    # Sampling always draws for every row (the finished rows' last logits stand in for them), so that a
    # seed gives the same tokens whether or not the batch has shrunk.
    all_logits = logits.clone()
    steps = 0
    for step in range(max_new_tokens):
        all_logits[rows] = logits
        token = _sample(all_logits, temperature, top_p, generator)[rows]
        token = torch.where(done, torch.full_like(token, pad_id), token)
        produced[rows, step] = token
        steps = step + 1
        done |= token == eos_id
        if bool(done.all()):
            break
        if can_shrink and 4 * int(done.sum()) >= len(done):
            # Finished rows would still be run (and their cache read) every step until the longest row ends;
            # dropping them once a quarter is done bounds the copies to a few while most of the waste goes.
            keep = (~done).nonzero().squeeze(1)
            past.batch_select_indices(keep)
            rows, token, done, mask, positions = (t[keep] for t in (rows, token, done, mask, positions))
        mask[:, width + step] = ~done
        positions = positions + 1
        out = model(input_ids=token.unsqueeze(1), attention_mask=mask[:, :width + step + 1], position_ids=positions,
                    use_cache=True, **{past_name: past})
        past = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
        logits = out.logits[:, -1]
    result = []
    for row in produced[:, :steps].tolist():
        cut = row.index(eos_id) + 1 if eos_id in row else len(row)
        result.append(row[:cut])
    return result
