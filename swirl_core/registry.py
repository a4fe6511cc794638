"""Trainers and image codecs by name, both `swirl_envs.lazy_registry.LazyRegistry`s.

Trainers: the built-ins plus plugins from the `swirl.trainers` entry-point group. The protocol every
trainer follows (built-in or plugin):

    trainer = TrainerClass(config)                 # config: an instance of TrainerClass.config_class
    final = trainer.train(transitions_or_benchmark, output_dir, init=None)   # -> Path of the final pair

`config_class` is a dataclass, so the CLI builds a config with
`apply_overrides(TrainerClass.config_class(), ["key=value", ...])`. An entry point's name is the trainer
name and its value `module:TrainerClass`. Listing names reads package metadata only; a plugin's code is
imported when it is asked for, and one that fails to import is reported, never breaking the built-ins.

Image codecs: what a saved pair's `pair.json` records under "codec" (see `load_codec`).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from swirl_envs.errors import SwirlError
from swirl_envs.lazy_registry import LazyRegistry, PluginInfo, import_object

TRAINER_GROUP = "swirl.trainers"


@runtime_checkable
class Trainer(Protocol):
    config_class: type

    def __init__(self, config: Any = None) -> None: ...

    def train(self, data: Any, output_dir: str | Path, init: str | Path | None = None) -> Path: ...


BUILTIN_TRAINERS = {
    "sft": "swirl_core.sft:SFTTrainer",
    "swirl": "swirl_core.swirl:SwirlTrainer",
    "swirl-idm2fwm": "swirl_core.swirl:SwirlIdm2FwmTrainer",
    "bootstrap": "swirl_core.baselines:BootstrapTrainer",
}


def _check_trainer(name: str, cls: Any) -> None:
    if not hasattr(cls, "config_class") or not callable(getattr(cls, "train", None)):
        raise SwirlError(f"trainer {name!r}: {cls!r} needs a config_class attribute and a train() method")


TRAINERS: LazyRegistry[type] = LazyRegistry("trainer", group=TRAINER_GROUP, check=_check_trainer)
for _name, _target in BUILTIN_TRAINERS.items():
    TRAINERS.register(_name, _target, source="builtin")


def register_trainer(name: str, cls: type, *, override: bool = False) -> None:
    """Make `cls` available as `name` (it needs `config_class` and `train`)."""
    TRAINERS.register(name, cls, override=override)


def trainer_plugins() -> list[PluginInfo]:
    """Installed `swirl.trainers` plugins with their load status (nothing is imported here)."""
    return TRAINERS.plugins()


def trainer_names() -> list[str]:
    """Built-in, registered and installed-plugin trainer names; plugin code is not imported."""
    return TRAINERS.names()


def get_trainer(name: str) -> type:
    """The trainer class called `name`; UnknownNameError lists the known names."""
    return TRAINERS.get(name)


# ---------------------------------------------------------------- image codecs

# Keyed by the "module:Class" string a pair's save() writes; the built-in is vetted here, while a spec
# that is not registered (a user's own codec class) is imported as written, as before the registry.
CODECS: LazyRegistry[Any] = LazyRegistry("image codec")
CODECS.register("swirl_core.image_codec:ImageCodec", "swirl_core.image_codec:ImageCodec", source="builtin")


def load_codec(spec: str, folder: Path | None = None) -> Any:
    """Rebuild a codec recorded in pair.json: `Class.load(folder)` when the pair saved one there (a fitted
    codebook), else constructed without arguments; None (with a warning) on failure."""
    try:
        codec_class = CODECS.get(spec) if spec in CODECS else import_object(spec)
        if folder is not None and folder.is_dir() and callable(getattr(codec_class, "load", None)):
            return codec_class.load(folder)
        return codec_class()
    except Exception as exc:  # the pair is still usable on text; say why images will not work
        warnings.warn(f"could not rebuild image codec {spec!r} ({exc}); pass codec=... to load()", stacklevel=3)
        return None
