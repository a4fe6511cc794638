"""Typed trainer configs and `--set key=value` overrides.

Every trainer has a dataclass config (`Trainer.config_class`) deriving from `TrainerConfig`; a field's
trailing comment is its documentation. Everything here is generated from those declarations: one parser
(`parse_override`) turns `--set learning_rate=1e-4 --set tiny.hidden_size=256` into typed values, for
`swirl-eval train` (through `apply_overrides`) and for evals/experiments.py's method-scoped `--set`;
`describe_fields` lists every field with its default and documentation for `swirl-eval train --help`.
An unknown key names the known ones; a value of the wrong type is a one-line error naming the field.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import re
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from swirl_envs.errors import SwirlError

from .decoding import get_backend
from .logging import tracker_names
from .lora import LoraSettings
from .tiny import TinyConfig

C = TypeVar("C")


@dataclass
class TrainerConfig:
    """Fields every trainer shares: which models, prompt budget, optimiser, data, checkpoints, logging."""

    seed: int = 0  # data order, sampling, adapter and tiny-model initialisation
    model: str = "tiny"  # tiny | smollm2-135m | a Hugging Face folder | a Hub id (the FWM's, or the shared one)
    idm_model: str | None = None  # a different IDM base; None = the same base as `model`
    shared: bool = False  # one model plays both roles (the prompt says which)
    tiny: TinyConfig = field(default_factory=TinyConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    max_length: int = 512  # prompt + target tokens; long states are cut (see keep_head)
    max_target_tokens: int = 128  # cap on the generated span and on Z / Y inside a prompt
    keep_head: float = 0.0  # share of a cut state's budget kept from its start (0: keep only its end)
    changes_only: bool = False  # Y as the lines it changes or adds to X (toolsim): the FWM writes and the IDM reads
    # only those, a predicted Y is X with them applied (stored with the pair, so evaluation reads Y the same way)
    generation_backend: str = "fast"  # sampling: "fast" (this suite's KV-cache loop) | "hf" (transformers' generate)
    fold_adapters: bool = True  # sample LoRA models from temporary W + BA weights: one matmul per layer instead of
    # three (faster decoding, same weights; costs a copy of the adapted weights while sampling)
    learning_rate: float = 1e-4  # AdamW, one optimiser per distinct set of weights
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    max_grad_norm: float = 1.0  # gradient clipping (global norm)
    warmup_steps: int = 0  # linear learning-rate warm-up
    lr_scheduler: str = "constant"  # "constant" | "linear" | "cosine" (decay to 0 at the last step), after warmup
    batch_size: int = 8  # examples (SFT) or groups (SWIRL) per optimiser step
    micro_batch_size: int | None = None  # most sequences per training forward: a process's share of the batch
    # runs in chunks whose gradients add up before the step (gradient accumulation); None = all at once
    split: str = "train"  # used when train() is given a Benchmark rather than transitions
    limit: int | None = None  # transitions taken from that split (required for unbounded simulator streams)
    device: str = "cpu"  # torch device the models train on (and sample with)
    dtype: str = "float32"  # weights of loaded models: float32 | bfloat16 | float16 (on a CPU float32 is fastest)
    mixed_precision: str = "no"  # autocast of the models' forwards (accelerate): no | bf16 | fp16 (GPU only);
    # weights and optimiser state stay in `dtype`
    save_steps: int = 50  # a resumable checkpoint every this many optimiser steps (0 = only the final one)
    save_total_limit: int = 2  # step checkpoints kept (older ones are deleted)
    log_steps: int = 1  # a metrics.jsonl line every this many steps
    progress: bool = True  # rich progress display (metrics always go to metrics.jsonl)
    report_to: str = "none"  # also log to tensorboard | trackio | wandb (comma-separated) | none; main process only

    def __post_init__(self) -> None:
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise SwirlError(f"dtype must be float32, bfloat16 or float16, got {self.dtype!r}")
        if self.mixed_precision not in ("no", "bf16", "fp16") or (self.mixed_precision == "fp16" and self.device == "cpu"):
            raise SwirlError(f"mixed_precision must be no, bf16 or fp16 (fp16 needs a GPU), got {self.mixed_precision!r} "
                             f"on {self.device}")
        if self.lr_scheduler not in ("constant", "linear", "cosine"):
            raise SwirlError(f"lr_scheduler must be constant, linear or cosine, got {self.lr_scheduler!r}")
        if self.micro_batch_size is not None and self.micro_batch_size < 1:
            raise SwirlError(f"micro_batch_size must be at least 1 (or None), got {self.micro_batch_size}")
        if not 0.0 <= self.keep_head < 1.0:
            raise SwirlError(f"keep_head must be in [0, 1), got {self.keep_head}")
        get_backend(self.generation_backend)
        tracker_names(self.report_to)


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def from_dict(cls: type[C], data: dict[str, Any]) -> C:
    """Rebuild a (possibly nested) config dataclass from `to_dict` output, ignoring unknown keys."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name not in data:
            continue
        value = data[f.name]
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind) and isinstance(value, dict):
            value = from_dict(kind, value)  # type: ignore[arg-type]
        elif isinstance(value, list):
            value = tuple(value) if typing.get_origin(kind) is tuple else value
        kwargs[f.name] = value
    return cls(**kwargs)


def _convert(text: str, kind: Any, key: str) -> Any:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if text.lower() in ("none", "null") and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(text, option, key)
            except SwirlError as exc:
                errors.append(str(exc))
        raise SwirlError("; ".join(errors))
    if origin is typing.Literal:
        if text not in args:
            raise SwirlError(f"{key} must be one of {', '.join(map(str, args))}, got {text!r}")
        return text
    if origin in (tuple, list):  # a,b,c or a JSON list: ["a","b","c"]
        items = _json(text, key) if text.lstrip().startswith("[") else [s.strip() for s in text.split(",")]
        inner = args[0] if args else str
        values = [_convert(str(s), inner, key) for s in items if str(s).strip()]
        return tuple(values) if origin is tuple else values
    if kind is bool:
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise SwirlError(f"{key} must be true or false, got {text!r}")
    if kind in (int, float):
        try:
            number = float(text)
        except ValueError:
            raise SwirlError(f"{key} must be a {kind.__name__}, got {text!r}") from None
        if not math.isfinite(number):
            raise SwirlError(f"{key} must be a finite number, got {text!r}")
        if kind is int and not number.is_integer():
            raise SwirlError(f"{key} must be an int, got {text!r}")
        return int(number) if kind is int else number
    if kind is str:
        return text
    if kind in (dict, typing.Any) or origin is dict:
        return _json(text, key)
    raise SwirlError(f"{key}: cannot set a field of type {kind} from the command line")


def config_class_keys(cls: type) -> list[str]:
    """Every settable key of a config class, nested fields with dots (tiny.hidden_size)."""
    hints, keys = typing.get_type_hints(cls), []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        kind = hints[f.name]
        keys += [f"{f.name}.{k}" for k in config_class_keys(kind)] if dataclasses.is_dataclass(kind) else [f.name]
    return keys


def config_keys(config: Any) -> list[str]:
    return config_class_keys(config if isinstance(config, type) else type(config))


def field_type(cls: type, key: str) -> Any:
    """The declared type of a (dotted) key of config class `cls`; an unknown key names the known ones."""
    kind: Any = cls
    for name in key.split("."):
        hints = typing.get_type_hints(kind) if dataclasses.is_dataclass(kind) else {}
        if name not in hints:
            raise SwirlError(f"unknown config key {key!r}; known: {', '.join(config_class_keys(cls))}")
        kind = hints[name]
    return kind


def parse_value(cls: type, key: str, value: Any) -> Any:
    """`value` for field `key` of `cls`: text is converted to the field's type; other values pass as they are."""
    kind = field_type(cls, key)
    if dataclasses.is_dataclass(kind) and not isinstance(value, kind):
        raise SwirlError(f"{key} is a group of fields: set one of them, e.g. {key}.{config_class_keys(kind)[0]}")
    return _convert(value, kind, key) if isinstance(value, str) and kind is not str else value


def parse_override(cls: type, item: str) -> tuple[str, Any]:
    """"key=value" as (key, typed value) for config class `cls`: the one parser behind every `--set`."""
    key, text = _split(item)
    return key, parse_value(cls, key, text)


def format_value(value: Any) -> str:
    """A field value as `--set` text that `parse_override` reads back to the same value."""
    if value is None or isinstance(value, bool):
        return str(value).lower() if value is not None else "none"
    if isinstance(value, tuple | list):
        return ",".join(map(format_value, value))
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _json(text: str, key: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise SwirlError(f"{key}: {text!r} is not valid JSON ({exc})") from None


def apply_overrides(config: C, overrides: Iterable[str] | dict[str, Any]) -> C:
    """A copy of `config` with "key=value" (or {key: value}) overrides; nested fields use dots: tiny.hidden_size."""
    cls = type(config)
    items = (((k, parse_value(cls, k, v)) for k, v in overrides.items()) if isinstance(overrides, dict)
             else (parse_override(cls, o) for o in overrides))
    result = dataclasses.replace(config)  # type: ignore[type-var]
    for key, value in items:
        *path, name = key.split(".")
        target = result
        for head in path:  # copy each nested config on the way, so `config` itself is left as it was
            setattr(target, head, dataclasses.replace(getattr(target, head)))
            target = getattr(target, head)
        setattr(target, name, value)
    _validate(result)
    return result


def _validate(config: Any) -> None:
    """Run every (nested) config's __post_init__ checks on the values the overrides set."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            _validate(value)
    if hasattr(config, "__post_init__"):
        config.__post_init__()


def _split(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise SwirlError(f"an override looks like key=value, got {item!r}")
    return key.strip(), value.strip()


_FIELD_LINE = re.compile(r"^\s+(\w+):[^=#]+(?:=[^#]*)?#\s*(.+)$")
_COMMENT_LINE = re.compile(r"^\s+#\s*(.+)$")


def field_docs(cls: type) -> dict[str, str]:
    """Each field's trailing comment in the class source (and its bases'): the text `--help` shows. Comment
    lines right below a documented field continue its documentation."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            lines = inspect.getsource(klass).splitlines()
        except (OSError, TypeError):
            continue
        last = None  # the field whose documentation a comment line would continue
        for line in lines:
            if m := _FIELD_LINE.match(line):
                last, docs[m.group(1)] = m.group(1), m.group(2).strip()
            elif last and (m := _COMMENT_LINE.match(line)):
                docs[last] += " " + m.group(1).strip()
            else:
                last = None
    return docs


def describe_fields(config: Any, prefix: str = "", skip: set[str] = frozenset()) -> list[str]:
    """One help line per (nested) field: key=default, then its documentation."""
    docs, lines = field_docs(type(config)), []
    for f in dataclasses.fields(config):
        key, value = prefix + f.name, getattr(config, f.name)
        if key in skip:
            continue
        if dataclasses.is_dataclass(value):
            lines += describe_fields(value, f"{key}.", skip)
            continue
        lines.append(f"  {key}={format_value(value)}" + (f"  {docs[f.name]}" if f.name in docs else ""))
    return lines
