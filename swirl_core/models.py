"""The model layer: a forward world model P(Y | X, Z) and an inverse dynamics model Q(Z | X, Y) as one pair.

Both are ordinary causal LMs (`AutoModelForCausalLM`), optionally with LoRA adapters (peft); the role lives
entirely in the prompt (`swirl_core.prompts`: the chat template of an instruction-tuned model, or role
markers). Serialisation: text states and actions are used verbatim (a JSON tool call is its text; a dict
is dumped as compact JSON with sorted keys); images go through the optional codec's `image_to_text`.

Where most of a next state repeats its state line for line (toolsim: the facts and the log of tool responses),
`changes_only=True` makes Y's part in a prompt or target the lines it changes or adds
(`prompts.changed_lines`): the FWM writes them, the IDM reads them, and a predicted next state is X with them
applied (`prompts.apply_changed_lines`). The copy of X then costs neither training nor generation tokens, and
the models learn only what the action changed.

Two published setups: separate weights (`fwm` and `idm` are two models) and shared weights (one model,
the prompt tells it which job to do; `pair.shared` is True and `pair.fwm is pair.idm`).

A saved pair is a folder: `pair.json` (prompt layout and budget, base models, codec) and one
`save_pretrained` folder per distinct model (`fwm/` and `idm/`, or `shared/`). With adapters each of those
is peft's adapter folder (adapter_config.json + adapter_model.safetensors): `PeftModel.from_pretrained(base,
folder / "fwm")` loads one role on its own, and the base is named in pair.json (`bases`: a preset such as
`smollm2-135m`, a local folder or a Hub id).
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors import SafetensorError
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from swirl_envs.errors import DataError, SwirlError
from swirl_envs.fileio import atomic_directory

from .decoding import generate_ids, get_backend
from .logprobs import completion_logprobs, reduce_logprobs
from .lora import LoraSettings, add_adapters, describe_adapters, folded_adapters, is_adapter, load_adapters
from .presets import PRESETS, quiet_transformers, resolve_model
from .prompts import ROLES, PromptFormat, apply_changed_lines, changed_lines, serialize_action
from .registry import load_codec
from .tiny import TinyConfig, tiny_model, train_tokenizer

PAIR_FILE = "pair.json"
CODEC_DIR = "codec"  # where save() puts the pair's image codec (when it has one)
ADAPTER_FILE = "adapter_config.json"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
BASE_PREFIX = "base-"  # base-fwm/, base-idm/, base-shared/: a tiny base kept beside its adapters


@dataclass
class Generation:
    """Sampled completions, grouped by prompt: row i*num_samples + k is sample k of prompt i."""

    texts: list[str]
    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]  # ends with eos when the model stopped by itself


def repeat_each(items: Sequence[Any], n: int) -> list[Any]:
    """Each item n times in a row: the row layout of `num_samples=n` sampling (rows i*n .. i*n+n-1), so
    that the sampled completions line up with their states and contexts for scoring."""
    return [v for v in items for _ in range(n)]


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class WorldModelPair:
    """An FWM and an IDM (two models, or one shared model) with their tokenizers and prompt format."""

    def __init__(self, fwm: PreTrainedModel, idm: PreTrainedModel | None = None, *,
                 tokenizer: PreTrainedTokenizerBase, idm_tokenizer: PreTrainedTokenizerBase | None = None,
                 codec: Any = None, max_length: int = 1024, max_target_tokens: int = 256, keep_head: float = 0.0,
                 layout: str | None = None, changes_only: bool = False, sources: dict[str, str] | None = None,
                 bases: dict[str, str] | None = None, device: str | torch.device | None = None,
                 generation_backend: str = "fast"):
        self.shared = idm is None or idm is fwm
        self.models: dict[str, PreTrainedModel] = {"fwm": fwm, "idm": fwm if self.shared else idm}
        idm_tok = tokenizer if self.shared or idm_tokenizer is None else idm_tokenizer
        self.tokenizers: dict[str, PreTrainedTokenizerBase] = {"fwm": tokenizer, "idm": idm_tok}
        for tok in {id(t): t for t in self.tokenizers.values()}.values():
            if tok.eos_token_id is None:
                raise SwirlError(f"tokenizer {tok.name_or_path!r} has no eos token; the target span needs one")
            if tok.pad_token_id is None:
                tok.pad_token = tok.eos_token  # padding is always masked, so reusing eos is safe
        if layout not in (None, "chat", "markers"):
            raise SwirlError(f"prompt layout must be 'chat' or 'markers', got {layout!r}")
        self.codec = codec
        self.max_length, self.max_target_tokens, self.keep_head = max_length, max_target_tokens, keep_head
        self.layout = layout  # None: chat where the tokenizer has a template (fixed at the first prompt)
        self.changes_only = changes_only  # Y in prompts and targets is the lines it changes (module docstring)
        self.sources = sources or {r: getattr(self.models[r].config, "_name_or_path", "") or "?" for r in ROLES}
        self.bases = dict(bases or self.sources)  # what adapters (if any) sit on: a preset, folder or Hub id
        self._formats: dict[tuple, PromptFormat] = {}
        get_backend(generation_backend)
        self.generation_backend = generation_backend  # how `sample` decodes: a name in decoding.BACKENDS
        self.fold_adapters = True  # `sample` runs LoRA models through lora.folded_adapters (same weights, faster)
        self.merged_adapters: dict[str, dict[str, Any] | None] = {}
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

    @property
    def has_adapters(self) -> bool:
        return any(is_adapter(m) for m in self.unique_models().values())

    def to(self, device: str | torch.device) -> WorldModelPair:
        for model in self.unique_models().values():
            model.to(device)
        return self

    def unique_models(self) -> dict[str, PreTrainedModel]:
        """{"shared": model} or {"fwm": ..., "idm": ...}: each distinct set of weights once."""
        return {"shared": self.fwm} if self.shared else dict(self.models)

    def _replace_models(self, change) -> None:
        new = {key: change(model) for key, model in self.unique_models().items()}
        self.models = {"fwm": new["shared"], "idm": new["shared"]} if self.shared else new

    def add_adapters(self, settings: LoraSettings, seed: int = 0) -> WorldModelPair:
        """Fresh LoRA adapters on every model (bases frozen); models that already have adapters keep them.
        Their initialisation depends on `seed` only; torch's global RNG is left as it was."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self._replace_models(lambda model: add_adapters(model, settings))
        return self

    def merge_adapters(self) -> WorldModelPair:
        """Fold the adapters into the weights (plain models again): faster inference, or a merged export.
        `describe()` still reports the adapters the weights came from."""
        self.merged_adapters = {role: describe_adapters(m) for role, m in self.models.items() if is_adapter(m)}
        self._replace_models(lambda model: model.merge_and_unload() if is_adapter(model) else model)
        return self

    @classmethod
    def load(cls, path_or_fwm: str | Path, idm: str | Path | None = None, *, shared: bool = False,
             device: str | torch.device | None = None, codec: Any = None, merge: bool = False,
             dtype: str = "float32", **format_options: Any) -> WorldModelPair:
        """A pair from a folder written by `save`, or from model specs (a preset, a local folder, a Hub id).

        With one model spec and shared=False the FWM and IDM start as two independent copies of it.
        `format_options` (max_length, max_target_tokens, keep_head, layout, changes_only) override the stored
        or default prompt format. `merge` folds stored adapters into the weights (for inference). Weights are
        loaded in `dtype` (float32, bfloat16 or float16; adapters stay float32 for the optimiser).
        """
        folder = Path(path_or_fwm)
        if idm is None and (folder / PAIR_FILE).is_file():
            info = json.loads((folder / PAIR_FILE).read_text())
            prompt = info.get("prompt", {})
            options = {"max_length": info["max_length"], "max_target_tokens": info["max_target_tokens"],
                       "keep_head": prompt.get("keep_head", 0.0), "layout": prompt.get("layout"),
                       "changes_only": prompt.get("changes_only", False)}
            options.update(format_options)
            sources, bases = info.get("sources"), info.get("bases") or {}
            if codec is None and info.get("codec"):
                codec = load_codec(info["codec"], folder / CODEC_DIR)
            names = ["shared"] if info["shared"] else ["fwm", "idm"]
            loaded = {}
            for name in names:
                base = bases.get("fwm" if name == "shared" else name)
                if base == "tiny":  # built from training text, so the pair carries it (see save_into)
                    base = str(folder / f"{BASE_PREFIX}{name}")
                loaded[name] = _load_role(folder / name, base, not merge, dtype)
            if info["shared"]:
                model, tok = loaded["shared"]
                pair = cls(model, None, tokenizer=tok, codec=codec, sources=sources, bases=bases, device=device,
                           **options)
            else:
                (fwm, fwm_tok), (idm_model, idm_tok) = loaded["fwm"], loaded["idm"]
                pair = cls(fwm, idm_model, tokenizer=fwm_tok, idm_tokenizer=idm_tok, codec=codec, sources=sources,
                           bases=bases, device=device, **options)
            return pair.merge_adapters() if merge else pair
        fwm, fwm_tok = _load_model(path_or_fwm, dtype)
        if idm is not None:
            idm_model, idm_tok = _load_model(idm, dtype)
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

    def save(self, path: str | Path, *, merged: bool = False) -> Path:
        """Write the pair atomically (see the module docstring); `merged` folds adapters into full weights."""
        path = Path(path)
        pair = self
        if merged and self.has_adapters:
            pair = copy.copy(self)
            pair.models = {role: model for role, model in self.models.items()}
            pair._replace_models(lambda model: copy.deepcopy(model).merge_and_unload() if is_adapter(model) else model)
        with atomic_directory(path) as tmp:
            pair.save_into(tmp)
        return path

    def save_into(self, folder: Path) -> None:
        """Write the pair into an existing (temporary) folder; trainers add their state next to it."""
        with quiet_transformers():
            for name, model in self.unique_models().items():
                role = "fwm" if name == "shared" else name
                # adapters never resize the embeddings: peft need not ask the Hub whether the vocabulary changed
                options = {"save_embedding_layers": False} if is_adapter(model) else {}
                model.save_pretrained(folder / name, **options)
                if not is_adapter(model):  # an adapter folder takes its tokenizer from the base
                    self.tokenizers[role].save_pretrained(folder / name)
                elif self.bases.get(role) == "tiny":  # no preset or Hub id rebuilds it: keep the base here
                    copy.deepcopy(model).unload().save_pretrained(folder / f"{BASE_PREFIX}{name}")
                    self.tokenizers[role].save_pretrained(folder / f"{BASE_PREFIX}{name}")
        codec = f"{type(self.codec).__module__}:{type(self.codec).__qualname__}" if self.codec is not None else None
        if self.codec is not None and callable(getattr(self.codec, "save", None)):
            self.codec.save(folder / CODEC_DIR)  # a fitted codec's codebook is part of the pair
        info = {"format": 2, "shared": self.shared, "max_length": self.max_length,
                "max_target_tokens": self.max_target_tokens, "sources": self.sources, "codec": codec,
                "bases": self.bases if self.has_adapters else None,
                "prompt": {"layout": self.prompt_format("fwm").layout, "keep_head": self.keep_head,
                           **self._changes_only_flag()}}
        (folder / PAIR_FILE).write_text(json.dumps(info, indent=2, sort_keys=True))

    def _changes_only_flag(self) -> dict[str, bool]:
        return {"changes_only": True} if self.changes_only else {}  # pairs written before it stay byte-identical

    def describe(self) -> dict[str, Any]:
        models = {}
        for role in ROLES:
            model = self.models[role]
            adapters = describe_adapters(model) if is_adapter(model) else self.merged_adapters.get(role)
            models[role] = {"source": self.sources.get(role, "?"), "model_type": model.config.model_type,
                            "parameters": count_parameters(model),
                            **({"base": self.bases.get(role), "adapters": adapters,
                                "merged": role in self.merged_adapters} if adapters else {})}
        total = sum(count_parameters(m) for m in self.unique_models().values())
        return {"shared": self.shared, **models, "total_parameters": total, "max_length": self.max_length,
                "max_target_tokens": self.max_target_tokens,
                "prompt": {**self.prompt_format("fwm").describe(), **self._changes_only_flag()},
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

    def prompt_format(self, role: str) -> PromptFormat:
        tokenizer = self.tokenizers[role]
        key = (role, id(tokenizer), self.max_length, self.max_target_tokens, self.keep_head, self.layout,
               self.changes_only)
        if key not in self._formats:
            chat = None if self.layout is None else self.layout == "chat"
            self._formats[key] = PromptFormat(tokenizer, role, self.max_length, self.max_target_tokens,
                                              keep_head=self.keep_head, chat=chat, changes_only=self.changes_only)
            self.layout = self._formats[key].layout  # one layout for the pair's whole life (and its saves)
        return self._formats[key]

    def encode(self, role: str, text: str) -> list[int]:
        return self.prompt_format(role).encode(text)

    def next_state_text(self, state: Any, next_state: Any) -> str:
        """Y as the FWM writes it and the IDM reads it: the whole next state, or with `changes_only` the lines
        it changes or adds to `state`."""
        y = self.state_text(next_state)
        return changed_lines(self.state_text(state), y) if self.changes_only else y

    def target_ids(self, role: str, text: str) -> list[int]:
        """The scored/trained span: the text then eos, capped at max_target_tokens (a capped span has no eos)."""
        return self.prompt_format(role).target_ids(text)

    def prompt_ids(self, role: str, state: Any, context: Any) -> list[int]:
        """Prompt tokens for FWM (context = action Z) or IDM (context = next state Y): one prompt per
        (state, context) whatever the target, in training, sampling, scoring and evaluation alike."""
        context_text = serialize_action(context) if role == "fwm" else self.next_state_text(state, context)
        return self.prompt_format(role).prompt_ids(self.state_text(state), context_text)

    # ------------------------------------------------------------------ generation

    def sample(self, role: str, states: Sequence[Any], contexts: Sequence[Any], *, num_samples: int = 1,
               temperature: float = 0.0, top_p: float = 1.0, max_new_tokens: int | None = None,
               batch_size: int = 16, generator: torch.Generator | None = None) -> Generation:
        """Generate the target span for each (state, context), num_samples times each, grouped by prompt. FWM
        texts are whole next states (with `changes_only`, the state with the generated lines applied)."""
        if len(states) != len(contexts):
            raise SwirlError(f"{len(states)} states but {len(contexts)} actions/next states")
        max_new = max_new_tokens or self.max_target_tokens
        prompts = [self.prompt_ids(role, s, c) for s, c in zip(states, contexts, strict=True)]
        rows = [p for p in prompts for _ in range(num_samples)]
        tok, model = self.tokenizers[role], self.models[role]
        was_training = model.training
        model.eval()
        completions: list[list[int]] = []
        # A chunk holds whole prompts with all their samples (each prompt run once) when a group fits in a batch.
        per_chunk, repeats = (max(1, batch_size // num_samples), num_samples) if num_samples <= batch_size \
            else (batch_size, 1)
        chunks = prompts if repeats > 1 else rows
        # `generate_ids` is looked up here, not in the registry, so that patching `models.generate_ids` (as
        # benchmarks/grpo_vs_trl.py does to time it) still reaches every fast-path call.
        generate = generate_ids if self.generation_backend == "fast" else get_backend(self.generation_backend)
        try:
            with folded_adapters(model) if self.fold_adapters else contextlib.nullcontext(model) as sampler:
                for start in range(0, len(chunks), per_chunk):
                    completions += generate(sampler, chunks[start:start + per_chunk], eos_id=tok.eos_token_id,
                                            pad_id=tok.pad_token_id, max_new_tokens=max_new,
                                            temperature=temperature, top_p=top_p, generator=generator,
                                            repeats=repeats)
        finally:
            model.train(was_training)
        texts = [tok.decode(c, skip_special_tokens=True) for c in completions]
        if role == "fwm" and self.changes_only:
            texts = [apply_changed_lines(self.state_text(x), text)
                     for x, text in zip(repeat_each(states, num_samples), texts, strict=True)]
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
        tok, model = self.tokenizers[role], self.models[role]
        prompts = [self.prompt_ids(role, s, c) for s, c in zip(states, contexts, strict=True)]
        completions = [self.target_ids(role, serialize_action(t) if role == "idm" else self.next_state_text(s, t))
                       for s, t in zip(states, targets, strict=True)]
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


def _load_model(spec: str | Path, dtype: str = "float32") -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A model and its tokenizer from a preset name, a local folder or a Hub id, weights in `dtype`."""
    if dtype not in DTYPES:
        raise SwirlError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    path = resolve_model(str(spec))
    folder = Path(path)
    if folder.is_dir() and not (folder / "config.json").is_file():
        raise DataError("no config.json: not a Hugging Face model folder (was it deleted?)", path=folder)
    try:
        with quiet_transformers():
            model = AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[dtype])
            tokenizer = _load_tokenizer(path)
    except SafetensorError as exc:
        raise DataError(f"unreadable weights, truncated or not safetensors ({exc})", path=folder) from None
    if str(spec) in PRESETS:  # where the weights come from anywhere (peft writes it into adapter_config.json)
        model.name_or_path = model.config._name_or_path = PRESETS[str(spec)].hub_id
    return model, tokenizer


def _load_tokenizer(path: str) -> PreTrainedTokenizerBase:
    try:
        return AutoTokenizer.from_pretrained(path)
    except (ValueError, AttributeError):
        folder = Path(path)
        config_file = folder / "tokenizer_config.json"
        config = json.loads(config_file.read_text()) if config_file.is_file() else {}
        if config.get("tokenizer_class") != "TokenizersBackend" or not (folder / "tokenizer.json").is_file():
            raise
    # A folder saved by transformers 5 (this cache, the shipped tiny pairs) under a release before it, down to
    # this project's floor: the fast tokenizer's file is the same, its config names a class they lack
    # (TokenizersBackend) and lists extra special tokens where they expect a mapping.
    special = {k: config[k] for k in ("bos_token", "eos_token", "pad_token", "unk_token") if isinstance(config.get(k), str)}
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"),
                                        additional_special_tokens=list(config.get("extra_special_tokens") or []),
                                        padding_side=config.get("padding_side", "right"), **special)
    template = folder / "chat_template.jinja"
    if template.is_file():
        tokenizer.chat_template = template.read_text()
    return tokenizer


def _load_role(folder: Path, base: str | None, trainable: bool,
               dtype: str = "float32") -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """One saved model of a pair: a full save_pretrained folder, or peft adapters over their base."""
    if not (folder / ADAPTER_FILE).is_file():
        return _load_model(folder, dtype)
    if base is None:
        base = json.loads((folder / ADAPTER_FILE).read_text()).get("base_model_name_or_path")
    if not base:
        raise SwirlError(f"{folder}: adapters without a base model (pair.json 'bases' or adapter_config.json)")
    model, tokenizer = _load_model(base, dtype)
    try:
        with quiet_transformers():
            return load_adapters(model, str(folder), trainable=trainable), tokenizer
    except SafetensorError as exc:
        raise DataError(f"unreadable adapter weights, truncated or not safetensors ({exc})", path=folder) from None


def build_tiny_pair(texts: Iterable[str], *, shared: bool = False, seed: int = 0, codec: Any = None,
                    max_length: int = 512, max_target_tokens: int = 128, keep_head: float = 0.0,
                    changes_only: bool = False, **config: Any) -> WorldModelPair:
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
                          max_target_tokens=max_target_tokens, keep_head=keep_head, changes_only=changes_only,
                          sources={"fwm": "tiny", "idm": "tiny"})
