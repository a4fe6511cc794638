"""The model layer: a forward world model P(Y | X, Z) and an inverse dynamics model Q(Z | X, Y) as prompts.

Both are ordinary causal LMs (`AutoModelForCausalLM`); the role lives entirely in the prompt. Token
sequences (markers are literal strings; the tiny tokenizer has each as one special token, any other
tokenizer simply spells them out, so no embedding needs resizing):

    FWM:  [bos] <|fwm|> <|state|> X <|action|> Z <|next_state|>  ||  Y <|eos|>
    IDM:  [bos] <|idm|> <|state|> X <|next_state|> Y <|action|>  ||  Z <|eos|>

Everything left of `||` is the prompt; the right side is the target span that is generated, scored and
trained on. Serialisation: text states and actions are used verbatim (a JSON tool call is its text; a dict
is dumped as compact JSON with sorted keys); images go through the optional codec's `image_to_text`.
User text is encoded with `split_special_tokens=True`, so a state that contains "<|eos|>" cannot forge a
marker.

Context budget (`max_length` tokens in all): the target span is capped at `max_target_tokens` (keeping its
start; a capped target gets no eos); in the prompt, Z (FWM) or Y (IDM) is capped the same way, and the
state X gets whatever is left, truncated from the LEFT: tool conversations and web pages grow at the end,
and the most recent turns are what the next step depends on.

Two published setups: separate weights (`fwm` and `idm` are two models) and shared weights (one model,
the role marker tells it which job to do; `pair.shared` is True and `pair.fwm is pair.idm`).
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.cache_utils import Cache, DynamicLayer
from transformers.modeling_layers import GradientCheckpointingLayer

from swirl_envs.errors import SwirlError

from .checkpoint import atomic_directory
from .tiny import BOS, TinyConfig, tiny_model, train_tokenizer

ROLES = ("fwm", "idm")
MARKERS = {"fwm": "<|fwm|>", "idm": "<|idm|>", "state": "<|state|>", "action": "<|action|>",
           "next_state": "<|next_state|>"}
PAIR_FILE = "pair.json"
CODEC_DIR = "codec"  # where save() puts the pair's image codec (when it has one)


@dataclass
class Generation:
    """Sampled completions, grouped by prompt: row i*num_samples + k is sample k of prompt i."""

    texts: list[str]
    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]  # ends with eos when the model stopped by itself


def serialize_action(action: Any) -> str:
    if isinstance(action, str):
        return action
    if isinstance(action, dict | list):
        return json.dumps(action, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    raise SwirlError(f"an action must be text (or a JSON-able dict/list), got {type(action).__name__}")


def repeat_each(items: Sequence[Any], n: int) -> list[Any]:
    """Each item n times in a row: the row layout of `num_samples=n` sampling (rows i*n .. i*n+n-1), so
    that the sampled completions line up with their states and contexts for scoring."""
    return [v for v in items for _ in range(n)]


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _past_kwarg(model: PreTrainedModel) -> str:
    # transformers 5 renamed `past_key_values` to `cache`; accept either generation of the API.
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _accepts(model: PreTrainedModel, name: str) -> bool:
    model = getattr(model, "module", model)  # look through a DistributedDataParallel wrapper
    return name in inspect.signature(model.forward).parameters


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
    bare = getattr(model, "module", model)  # prefix pass outside DDP: DDP sees one forward per backward
    starts = np.cumsum([0] + [size for size, _ in groups[:-1]])
    h_ids, h_mask = left_pad([prompt_ids[i][:n] for i, (_, n) in zip(starts, groups, strict=True)], pad_id, device)
    row_group = torch.tensor([g for g, (size, _) in enumerate(groups) for _ in range(size)], device=device)
    shared = [n for size, n in groups for _ in range(size)]
    s_ids, s_mask = left_pad([p[n:] for p, n in zip(prompt_ids, shared, strict=True)], pad_id, device)
    prefix = Cache(layers=[_SharedPrefixLayer() for _ in range(bare.config.get_text_config().num_hidden_layers)])
    past = _past_kwarg(bare)
    with _cache_through_checkpointing(bare):
        bare(input_ids=h_ids, attention_mask=h_mask, position_ids=(h_mask.cumsum(-1) - 1).clamp(min=0),
             use_cache=False, **{past: prefix}, **_last_logit(bare))
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
    bare = getattr(model, "module", model)
    if not _full_attention_with_cache(bare):
        return False
    for layer in bare.modules():
        if isinstance(layer, GradientCheckpointingLayer) and layer.gradient_checkpointing:
            func = getattr(layer, "_gradient_checkpointing_func", None)
            if getattr(func, "keywords", {}).get("use_reentrant", True) is not False:
                return False
    return True


def _full_attention_with_cache(model: PreTrainedModel) -> bool:
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


def _last_logit(model: PreTrainedModel) -> dict[str, int]:
    return {"logits_to_keep": 1} if _accepts(model, "logits_to_keep") else {}


def reduce_logprobs(logp: torch.Tensor, mask: torch.Tensor, normalize: bool) -> torch.Tensor:
    total = (logp * mask).sum(-1)
    return total / mask.sum(-1).clamp(min=1) if normalize else total


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


def _preallocated_cache(model: PreTrainedModel, capacity: int) -> Cache | None:
    """A cache of `_PreallocatedLayer`s for a plain full-attention decoder that takes one, else None (the
    model then builds its own cache, e.g. GPT-2 or a sliding-window model)."""
    if not _full_attention_with_cache(model):
        return None
    layers = model.config.get_text_config().num_hidden_layers
    return Cache(layers=[_PreallocatedLayer(capacity) for _ in range(layers)])


@torch.no_grad()
def generate_ids(model: PreTrainedModel, prompt_ids: Sequence[Sequence[int]], *, eos_id: int, pad_id: int,
                 max_new_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
                 generator: torch.Generator | None = None, repeats: int = 1) -> list[list[int]]:
    """Batched sampling with a KV cache; each row stops at its eos (kept in the output) or the budget.

    With `repeats` > 1 each prompt is sampled that many times (rows i*repeats .. i*repeats+repeats-1): the
    prompt is run once and its cache copied, instead of running the same prompt once per sample.
    The cache and the attention mask are allocated once for prompt + budget and filled in place.
    """
    device = next(model.parameters()).device
    ids, prompt_mask = left_pad(prompt_ids, pad_id, device)
    width = ids.shape[1]
    positions = (prompt_mask.cumsum(-1) - 1).clamp(min=0)
    past_name = _past_kwarg(model)
    cache = _preallocated_cache(model, width + max_new_tokens)
    out = model(input_ids=ids, attention_mask=prompt_mask, position_ids=positions, use_cache=True,
                **({past_name: cache} if cache is not None else {}), **_last_logit(model))
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
    steps = 0
    for step in range(max_new_tokens):
        token = _sample(logits, temperature, top_p, generator)
        token = torch.where(done, torch.full_like(token, pad_id), token)
        produced[:, step] = token
        steps = step + 1
        done |= token == eos_id
        if bool(done.all()):
            break
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


class WorldModelPair:
    """An FWM and an IDM (two models, or one shared model) with their tokenizers and prompt format."""

    def __init__(self, fwm: PreTrainedModel, idm: PreTrainedModel | None = None, *,
                 tokenizer: PreTrainedTokenizerBase, idm_tokenizer: PreTrainedTokenizerBase | None = None,
                 codec: Any = None, max_length: int = 1024, max_target_tokens: int = 256,
                 sources: dict[str, str] | None = None, device: str | torch.device | None = None):
        self.shared = idm is None or idm is fwm
        self.models: dict[str, PreTrainedModel] = {"fwm": fwm, "idm": fwm if self.shared else idm}
        idm_tok = tokenizer if self.shared or idm_tokenizer is None else idm_tokenizer
        self.tokenizers: dict[str, PreTrainedTokenizerBase] = {"fwm": tokenizer, "idm": idm_tok}
        for tok in {id(t): t for t in self.tokenizers.values()}.values():
            if tok.eos_token_id is None:
                raise SwirlError(f"tokenizer {tok.name_or_path!r} has no eos token; the target span needs one")
            if tok.pad_token_id is None:
                tok.pad_token = tok.eos_token  # padding is always masked, so reusing eos is safe
        self.codec = codec
        self.max_length, self.max_target_tokens = max_length, max_target_tokens
        self.sources = sources or {r: getattr(self.models[r].config, "_name_or_path", "") or "?" for r in ROLES}
        self._marker_cache: dict[tuple[str, str], list[int]] = {}
        if device is not None:
            self.to(device)

    # ------------------------------------------------------------------ construction and storage

    @property
    def fwm(self) -> PreTrainedModel:
        return self.models["fwm"]

    @property
    def idm(self) -> PreTrainedModel:
        return self.models["idm"]

    @property
    def device(self) -> torch.device:
        return next(self.fwm.parameters()).device

    def to(self, device: str | torch.device) -> WorldModelPair:
        for model in self.unique_models().values():
            model.to(device)
        return self

    def unique_models(self) -> dict[str, PreTrainedModel]:
        """{"shared": model} or {"fwm": ..., "idm": ...}: each distinct set of weights once."""
        return {"shared": self.fwm} if self.shared else dict(self.models)

    @classmethod
    def load(cls, path_or_fwm: str | Path, idm: str | Path | None = None, *, shared: bool = False,
             device: str | torch.device | None = None, codec: Any = None, **format_options: Any) -> WorldModelPair:
        """A pair from a folder written by `save` (fwm/+idm/ or shared/), or from hub ids / local model paths.

        With one model path and shared=False the FWM and IDM start as two independent copies of it.
        `format_options` (max_length, max_target_tokens) override the stored or default prompt budget.
        """
        folder = Path(path_or_fwm)
        if idm is None and (folder / PAIR_FILE).is_file():
            info = json.loads((folder / PAIR_FILE).read_text())
            options = {"max_length": info["max_length"], "max_target_tokens": info["max_target_tokens"]}
            options.update(format_options)
            sources = info.get("sources")
            if codec is None and info.get("codec"):
                codec = _load_codec(info["codec"], folder / CODEC_DIR)
            if info["shared"]:
                model, tok = _load_model(folder / "shared")
                return cls(model, None, tokenizer=tok, codec=codec, sources=sources, device=device, **options)
            fwm, fwm_tok = _load_model(folder / "fwm")
            idm_model, idm_tok = _load_model(folder / "idm")
            return cls(fwm, idm_model, tokenizer=fwm_tok, idm_tokenizer=idm_tok, codec=codec, sources=sources,
                       device=device, **options)
        fwm, fwm_tok = _load_model(path_or_fwm)
        if idm is not None:
            idm_model, idm_tok = _load_model(idm)
        elif shared:
            idm_model, idm_tok = None, None
        else:
            idm_model, idm_tok = copy.deepcopy(fwm), fwm_tok
        sources = {"fwm": str(path_or_fwm), "idm": str(idm if idm is not None else path_or_fwm)}
        if "max_length" not in format_options:
            limit = getattr(fwm.config, "max_position_embeddings", None)
            format_options["max_length"] = min(limit, 4096) if limit else 1024
        return cls(fwm, idm_model, tokenizer=fwm_tok, idm_tokenizer=idm_tok, codec=codec, sources=sources,
                   device=device, **format_options)

    def save(self, path: str | Path) -> Path:
        """Write save_pretrained folders (safetensors) plus pair.json, atomically."""
        path = Path(path)
        with atomic_directory(path) as tmp:
            self.save_into(tmp)
        return path

    def save_into(self, folder: Path) -> None:
        """Write the pair into an existing (temporary) folder; trainers add their state next to it."""
        with quiet_transformers():
            for name, model in self.unique_models().items():
                model.save_pretrained(folder / name)
                self.tokenizers["fwm" if name == "shared" else name].save_pretrained(folder / name)
        codec = f"{type(self.codec).__module__}:{type(self.codec).__qualname__}" if self.codec is not None else None
        if self.codec is not None and callable(getattr(self.codec, "save", None)):
            self.codec.save(folder / CODEC_DIR)  # a fitted codec's codebook is part of the pair
        info = {"format": 1, "shared": self.shared, "max_length": self.max_length,
                "max_target_tokens": self.max_target_tokens, "sources": self.sources, "codec": codec,
                "markers": MARKERS}
        (folder / PAIR_FILE).write_text(json.dumps(info, indent=2, sort_keys=True))

    def describe(self) -> dict[str, Any]:
        models = {role: {"source": self.sources.get(role, "?"), "model_type": self.models[role].config.model_type,
                         "parameters": count_parameters(self.models[role])} for role in ROLES}
        total = sum(count_parameters(m) for m in self.unique_models().values())
        return {"shared": self.shared, **models, "total_parameters": total, "max_length": self.max_length,
                "max_target_tokens": self.max_target_tokens,
                "codec": type(self.codec).__name__ if self.codec is not None else None}

    # ------------------------------------------------------------------ serialisation and prompts

    def state_text(self, state: Any) -> str:
        """X or Y as text: strings verbatim, images through the codec."""
        if isinstance(state, str):
            return state
        if isinstance(state, Image.Image | np.ndarray):
            if self.codec is None:
                raise SwirlError("image states need an image codec (WorldModelPair(..., codec=...))")
            image = state if isinstance(state, Image.Image) else Image.fromarray(np.asarray(state, dtype=np.uint8))
            return self.codec.image_to_text(image)
        raise SwirlError(f"a state must be text or an image, got {type(state).__name__}")

    def text_to_image(self, text: str) -> Image.Image:
        if self.codec is None:
            raise SwirlError("decoding an image needs an image codec")
        return self.codec.text_to_image(text)

    def _marker(self, role: str, name: str) -> list[int]:
        key = (role, name)
        if key not in self._marker_cache:
            tok = self.tokenizers[role]
            self._marker_cache[key] = tok(MARKERS[name], add_special_tokens=False).input_ids
        return self._marker_cache[key]

    def encode(self, role: str, text: str) -> list[int]:
        return self.tokenizers[role](text, add_special_tokens=False, split_special_tokens=True).input_ids

    def target_ids(self, role: str, text: str) -> list[int]:
        """The scored/trained span: the text then eos, capped at max_target_tokens (a capped span has no eos)."""
        ids = self.encode(role, text)
        if len(ids) >= self.max_target_tokens:
            return ids[: self.max_target_tokens]
        return ids + [self.tokenizers[role].eos_token_id]

    def prompt_ids(self, role: str, state: Any, context: Any, *, reserve: int | None = None) -> list[int]:
        """Prompt tokens for FWM (context = action Z) or IDM (context = next state Y).

        `reserve` tokens are kept free for the target (default max_target_tokens); X absorbs the cut, from the left.
        """
        tok = self.tokenizers[role]
        head = ([tok.bos_token_id] if tok.bos_token_id is not None and tok.bos_token == BOS else []) \
            + self._marker(role, role) + self._marker(role, "state")
        context_text = serialize_action(context) if role == "fwm" else self.state_text(context)
        middle = self.encode(role, context_text)[: self.max_target_tokens]
        if role == "fwm":
            middle = self._marker(role, "action") + middle + self._marker(role, "next_state")
        else:
            middle = self._marker(role, "next_state") + middle + self._marker(role, "action")
        reserve = self.max_target_tokens if reserve is None else reserve
        budget = self.max_length - reserve - len(head) - len(middle)
        x = self.encode(role, self.state_text(state))
        x = x[len(x) - budget:] if 0 < budget < len(x) else (x if budget > 0 else [])
        return head + x + middle

    # ------------------------------------------------------------------ generation

    def sample(self, role: str, states: Sequence[Any], contexts: Sequence[Any], *, num_samples: int = 1,
               temperature: float = 0.0, top_p: float = 1.0, max_new_tokens: int | None = None,
               batch_size: int = 16, generator: torch.Generator | None = None) -> Generation:
        """Generate the target span for each (state, context), num_samples times each, grouped by prompt."""
        if len(states) != len(contexts):
            raise SwirlError(f"{len(states)} states but {len(contexts)} actions/next states")
        max_new = max_new_tokens or self.max_target_tokens
        prompts = [self.prompt_ids(role, s, c, reserve=max_new) for s, c in zip(states, contexts, strict=True)]
        rows = [p for p in prompts for _ in range(num_samples)]
        tok, model = self.tokenizers[role], self.models[role]
        was_training = model.training
        model.eval()
        completions: list[list[int]] = []
        # A chunk holds whole prompts with all their samples (each prompt run once) when a group fits in a batch.
        per_chunk, repeats = (max(1, batch_size // num_samples), num_samples) if num_samples <= batch_size \
            else (batch_size, 1)
        chunks = prompts if repeats > 1 else rows
        try:
            for start in range(0, len(chunks), per_chunk):
                completions += generate_ids(model, chunks[start:start + per_chunk], eos_id=tok.eos_token_id,
                                            pad_id=tok.pad_token_id, max_new_tokens=max_new,
                                            temperature=temperature, top_p=top_p, generator=generator,
                                            repeats=repeats)
        finally:
            model.train(was_training)
        texts = [tok.decode(c, skip_special_tokens=True) for c in completions]
        return Generation(texts, rows, completions)

    def predict_next_states(self, states: Sequence[Any], actions: Sequence[Any], *, num_samples: int = 1,
                            temperature: float = 0.0, top_p: float = 1.0, max_new_tokens: int | None = None,
                            batch_size: int = 16, generator: torch.Generator | None = None) -> list[str]:
        """FWM: Y ~ P(Y | X, Z). Returns len(states) * num_samples texts, samples of one state adjacent."""
        return self.sample("fwm", states, actions, num_samples=num_samples, temperature=temperature, top_p=top_p,
                           max_new_tokens=max_new_tokens, batch_size=batch_size, generator=generator).texts

    def predict_actions(self, states: Sequence[Any], next_states: Sequence[Any], *, num_samples: int = 1,
                        temperature: float = 0.0, top_p: float = 1.0, max_new_tokens: int | None = None,
                        batch_size: int = 16, generator: torch.Generator | None = None) -> list[str]:
        """IDM: Z ~ Q(Z | X, Y). Returns len(states) * num_samples texts, samples of one state adjacent."""
        return self.sample("idm", states, next_states, num_samples=num_samples, temperature=temperature,
                           top_p=top_p, max_new_tokens=max_new_tokens, batch_size=batch_size,
                           generator=generator).texts

    # ------------------------------------------------------------------ scoring

    def score(self, role: str, states: Sequence[Any], contexts: Sequence[Any], targets: Sequence[Any], *,
              normalize: bool = True, batch_size: int = 16) -> torch.Tensor:
        """log p(target | prompt) per row (sum, or mean per target token when normalize), without grad."""
        if not len(states) == len(contexts) == len(targets):
            raise SwirlError("states, contexts and targets must have the same length")
        target_text = serialize_action if role == "idm" else self.state_text
        tok, model = self.tokenizers[role], self.models[role]
        prompts = [self.prompt_ids(role, s, c) for s, c in zip(states, contexts, strict=True)]
        completions = [self.target_ids(role, target_text(t)) for t in targets]
        was_training = model.training
        model.eval()
        scores = []
        try:
            with torch.no_grad():
                for start in range(0, len(prompts), batch_size):
                    logp, mask = completion_logprobs(model, prompts[start:start + batch_size],
                                                     completions[start:start + batch_size], tok.pad_token_id)
                    scores.append(reduce_logprobs(logp, mask, normalize))
        finally:
            model.train(was_training)
        return torch.cat(scores).cpu() if scores else torch.zeros(0)

    def score_next_states(self, states: Sequence[Any], actions: Sequence[Any], next_states: Sequence[Any], *,
                          normalize: bool = True, batch_size: int = 16) -> torch.Tensor:
        """log P_theta(Y | X, Z) for each row; the mean per token when normalize."""
        return self.score("fwm", states, actions, next_states, normalize=normalize, batch_size=batch_size)

    def score_actions(self, states: Sequence[Any], next_states: Sequence[Any], actions: Sequence[Any], *,
                      normalize: bool = True, batch_size: int = 16) -> torch.Tensor:
        """log Q_phi(Z | X, Y) for each row; the mean per token when normalize."""
        return self.score("idm", states, next_states, actions, normalize=normalize, batch_size=batch_size)


@contextlib.contextmanager
def quiet_transformers():
    """No tqdm bars from save_pretrained/from_pretrained: trainers draw their own progress display."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def _load_model(path: str | Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    with quiet_transformers():
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    return model, tokenizer


def _load_codec(spec: str, folder: Path | None = None) -> Any:
    """Rebuild a codec recorded in pair.json (`module:Class`): `Class.load(folder)` when the pair saved one
    there (a fitted codebook), else constructed without arguments; None (with a warning) on failure."""
    import importlib
    import warnings

    module_name, _, name = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in name.split("."):
            obj = getattr(obj, part)
        if folder is not None and folder.is_dir() and callable(getattr(obj, "load", None)):
            return obj.load(folder)
        return obj()
    except Exception as exc:  # the pair is still usable on text; say why images will not work
        warnings.warn(f"could not rebuild image codec {spec!r} ({exc}); pass codec=... to load()", stacklevel=3)
        return None


def build_tiny_pair(texts: Iterable[str], *, shared: bool = False, seed: int = 0, codec: Any = None,
                    max_length: int = 512, max_target_tokens: int = 128, **config: Any) -> WorldModelPair:
    """A freshly initialised tiny pair whose tokenizer is trained on `texts` (states, actions, ...).

    `config` sets TinyConfig fields (hidden_size, num_hidden_layers, vocab_size, ...). Same texts and seed
    give the same tokenizer and weights; torch's global RNG is left as it was.
    """
    tiny = TinyConfig(**config)
    tiny.max_position_embeddings = max(tiny.max_position_embeddings, max_length)
    tokenizer = train_tokenizer(list(texts), vocab_size=tiny.vocab_size, min_frequency=tiny.min_frequency)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fwm = tiny_model(tokenizer, tiny)
        idm = None if shared else tiny_model(tokenizer, tiny)
    for model in (fwm, idm):
        if model is not None:
            model.config._name_or_path = "tiny"
    return WorldModelPair(fwm, idm, tokenizer=tokenizer, codec=codec, max_length=max_length,
                          max_target_tokens=max_target_tokens, sources={"fwm": "tiny", "idm": "tiny"})
