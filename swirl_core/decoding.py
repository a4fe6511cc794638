"""Generation backends: the samplers of token ids behind `WorldModelPair.sample`, chosen by name per run.

A backend is a callable with `generate_ids`'s signature (the `Backend` protocol), registered in `BACKENDS`
(`register_backend` adds one, `get_backend` looks one up):

- "fast", `generate_ids`: this module's loop. The KV cache and the attention mask are allocated once, finished
  rows leave the batch, and each prompt runs once for all its `repeats` samples.
- "hf", `hf_generate_ids`: transformers' `model.generate` (left padding, `num_return_sequences` for repeats).

The fast loop builds on transformers' per-layer cache: `Cache(layers=...)` handing `update`, `get_seq_length`,
`batch_repeat_interleave` and `batch_select_indices` to its layers, and `DynamicLayer`'s undocumented
`keys`, `values`, `device` and `is_initialized` attributes, which `_PreallocatedLayer` sets itself (the last
first appeared in transformers 4.57, hence the floor in pyproject.toml). `fast_path_problem` probes exactly
these once; should a release change them, "fast" warns once and runs "hf" instead.

The contract, which a vLLM backend would implement as well (a seam only: vLLM is not a dependency here):
`backend(model, prompt_ids, *, eos_id, pad_id, max_new_tokens, temperature=0.0, top_p=1.0, generator=None,
repeats=1)` returns len(prompt_ids) * repeats lists of new token ids, rows i*repeats .. i*repeats+repeats-1
for prompt i. A row ends with its first `eos_id` (kept) or after `max_new_tokens` ids. `temperature <= 0` is
greedy and must give "fast"'s ids (the tests compare backends token for token); otherwise tokens are drawn
from softmax(logits / temperature) cut to the smallest nucleus holding `top_p`, with no other processing.
Draws come from `generator` (a torch.Generator): the same generator state gives the same ids, and torch's global
RNG is left alone; with None they come from the global RNG. `model` is the live, possibly peft-wrapped
module being trained: a backend that runs elsewhere, such as a vLLM engine, must load its current weights
before sampling (SWIRL changes them after every optimiser step) and derive its seed from `generator`, as "hf"
does.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Sequence
from typing import Protocol

import torch
import transformers
from transformers import GenerationConfig, PreTrainedModel
from transformers.cache_utils import Cache, DynamicLayer

from swirl_envs.errors import SwirlError

from .logprobs import full_attention_with_cache, last_logit, left_pad, past_kwarg
from .lora import core_model


class Backend(Protocol):
    def __call__(self, model: PreTrainedModel, prompt_ids: Sequence[Sequence[int]], *, eos_id: int, pad_id: int,
                 max_new_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
                 generator: torch.Generator | None = None, repeats: int = 1) -> list[list[int]]: ...


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
    measures against); the ids are the same either way. Runs "hf" when `fast_path_problem` finds one.
    """
    if fast_path_problem() is not None:
        return hf_generate_ids(model, prompt_ids, eos_id=eos_id, pad_id=pad_id, max_new_tokens=max_new_tokens,
                               temperature=temperature, top_p=top_p, generator=generator, repeats=repeats)
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
    return _until_eos(produced[:, :steps].tolist(), eos_id)


def _until_eos(rows: list[list[int]], eos_id: int) -> list[list[int]]:
    return [row[:row.index(eos_id) + 1] if eos_id in row else row for row in rows]


@torch.no_grad()
def hf_generate_ids(model: PreTrainedModel, prompt_ids: Sequence[Sequence[int]], *, eos_id: int, pad_id: int,
                    max_new_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
                    generator: torch.Generator | None = None, repeats: int = 1) -> list[list[int]]:
    """The "hf" backend: transformers' `generate`, with the fast loop's contract (see the module docstring).
    A sampled call seeds a fork of torch's RNG from one draw of `generator`."""
    if max_new_tokens <= 0:
        return [[] for _ in range(len(prompt_ids) * repeats)]
    model = core_model(model)
    device = next(model.parameters()).device
    ids, mask = left_pad(prompt_ids, pad_id, device)
    sampling = temperature > 0
    # Fields left unset are filled from the model's own generation_config (a Hub model may ship top_k,
    # repetition_penalty, ...): the knobs that act are pinned, so both backends follow the same distribution.
    knobs = {"temperature": temperature, "top_p": top_p, "top_k": 0, "min_p": 0.0, "typical_p": 1.0} if sampling \
        else {}
    # greedy samples of one prompt are all the same: generate it once (generate refuses repeats without sampling)
    config = GenerationConfig(max_new_tokens=max_new_tokens, min_new_tokens=0, repetition_penalty=1.0,
                              no_repeat_ngram_size=0, num_beams=1, do_sample=sampling,
                              num_return_sequences=repeats if sampling else 1, eos_token_id=eos_id,
                              pad_token_id=pad_id, use_cache=True, **knobs)
    with _seeded_by(generator if sampling else None, device):
        out = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
    rows = out[:, ids.shape[1]:].tolist()
    return _until_eos(rows if sampling else [r for r in rows for _ in range(repeats)], eos_id)


@contextlib.contextmanager
def _seeded_by(generator: torch.Generator | None, device: torch.device):
    """torch's RNG forked and seeded by one draw of `generator` (`generate` takes no generator of its own);
    without a generator, the global RNG as it is."""
    if generator is None:
        yield
        return
    seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device))
    with torch.random.fork_rng(devices=[device] if device.type != "cpu" else [], device_type=device.type):
        torch.manual_seed(seed)
        yield


@functools.cache
def fast_path_problem() -> str | None:
    """Why the installed transformers cannot run the fast loop, or None. Checked once per process, by running
    the cache API the loop relies on (see the module docstring) on a two-token probe; a problem is warned
    about once, and `generate_ids` then runs the "hf" backend."""
    try:
        fresh, layer = DynamicLayer(), _PreallocatedLayer(3)
        cache, states = Cache(layers=[layer]), torch.zeros(1, 1, 2, 1)
        cache.update(states, states, 0)
        cache.batch_repeat_interleave(2)
        cache.batch_select_indices(torch.tensor([1]))
        ok = fresh.is_initialized is False and cache.get_seq_length() == 2 and layer.keys.shape == (1, 1, 2, 1)
        problem = None if ok else "the per-layer cache does not report what was stored"
    except Exception as exc:  # any change in the API shows up here; the reason goes into the warning
        problem = f"{type(exc).__name__}: {exc}"
    if problem is not None:
        warnings.warn(f"the fast generation loop does not fit transformers {transformers.__version__} ({problem}); "
                      "generating with the 'hf' backend (model.generate) instead", RuntimeWarning, stacklevel=2)
    return problem


BACKENDS: dict[str, Backend] = {"fast": generate_ids, "hf": hf_generate_ids}


def register_backend(name: str, backend: Backend) -> None:
    """Make `backend` selectable as `generation_backend=name` (e.g. a vLLM sampler; see the module docstring)."""
    BACKENDS[name] = backend


def get_backend(name: str) -> Backend:
    if name not in BACKENDS:
        raise SwirlError(f"unknown generation backend {name!r}; known: {', '.join(sorted(BACKENDS))}")
    return BACKENDS[name]
