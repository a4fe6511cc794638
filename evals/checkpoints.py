"""Finding, identifying and loading the pairs a report card evaluates: checkpoint folders, their weights' sha256,
the default roots, and `load_method` (swirl_core is imported lazily)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from swirl_envs.errors import SwirlError

from .runner import ModelEntry
from .verify import VerifiedPredictor, verify_n

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
PAIR_FILE = "pair.json"


def checkpoint_sha256(path: str | Path) -> str | None:
    """sha256 over a checkpoint's weight files (relative path + bytes, in path order); None if it has none."""
    root = Path(path)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()
                                                   and p.name.endswith(WEIGHT_SUFFIXES)
                                                   and not any(part.startswith(".tmp-") for part in p.parts))
    files = [f for f in files if f.name not in ("optimizer.pt", "scheduler.pt", "rng.pt")]
    if not files:
        return None
    digest = hashlib.sha256()
    for file in files:
        digest.update((file.relative_to(root).as_posix() if file != root else file.name).encode() + b"\0")
        with open(file, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def resolve_checkpoint(path: str | Path) -> Path:
    """A pair folder from what the user named: the folder itself, a training run's final/, or its latest checkpoint."""
    path = Path(path)
    if (path / PAIR_FILE).is_file():
        return path
    if (path / "final" / PAIR_FILE).is_file():
        return path / "final"
    steps = sorted((p for p in path.glob("checkpoint-*") if (p / PAIR_FILE).is_file()),
                   key=lambda p: int(p.name.rsplit("-", 1)[1]) if p.name.rsplit("-", 1)[1].isdigit() else -1)
    if steps:
        return steps[-1]
    return path


def checkpoint_roots() -> list[Path]:
    """Where default checkpoints are looked for, first match per method wins; last, the embedded defaults."""
    from swirl_core.defaults import ROOT as EMBEDDED_DEFAULTS

    roots = [Path(os.environ["SWIRL_CHECKPOINTS"])] if os.environ.get("SWIRL_CHECKPOINTS") else []
    return [*roots, Path("checkpoints"), EMBEDDED_DEFAULTS]


def discover_checkpoints(bench: str, roots: list[Path] | None = None) -> dict[str, Path]:
    """Default checkpoints: <root>/<bench>/<method>/ folders holding a pair, over `checkpoint_roots()`."""
    found: dict[str, Path] = {}
    for root in roots if roots is not None else checkpoint_roots():
        folder = Path(root) / bench
        if not folder.is_dir():
            continue
        for method_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
            pair = resolve_checkpoint(method_dir)
            if method_dir.name not in found and (pair / PAIR_FILE).is_file():
                found[method_dir.name] = pair
    return found


def display_path(path: Path) -> str:
    """The path as the card records it: relative to the working directory when inside it (cards stay
    identical across clones), else absolute; the sha256 identifies the weights either way."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(resolved)


def _model_id(details: dict[str, Any]) -> str:
    """The base model(s), with "+lora" where the weights are LoRA adapters on that base."""
    def name(role: str) -> str:
        part = details.get(role, {})
        return f"{part.get('source', '?')}{'+lora' if part.get('adapters') else ''}"
    fwm, idm = name("fwm"), name("idm")
    return fwm if fwm == idm or details.get("shared") else f"fwm={fwm},idm={idm}"


def load_pair_entry(method: str, spec: str, *, tiny_texts=None, seed: int = 0, device: str = "cpu") -> ModelEntry:
    """A ModelEntry for `spec`: `tiny` (a fresh tiny pair on the benchmark's text), a pair/run folder, or a hub id."""
    from swirl_core.models import WorldModelPair, build_tiny_pair

    if spec == "tiny":
        pair = build_tiny_pair(list(tiny_texts() if callable(tiny_texts) else tiny_texts or []), seed=seed)
        details = pair.describe()
        return ModelEntry(method, pair.to(device), "tiny", None, None, dict(details, seed=seed))
    path = Path(spec)
    if path.exists():
        folder = resolve_checkpoint(path)
        if not (folder / PAIR_FILE).is_file() and not (folder / "config.json").is_file():
            raise SwirlError(f"{spec}: neither a model pair (pair.json), a training run (final/, checkpoint-N/) "
                             "nor a Hugging Face model folder (config.json)")
        pair = WorldModelPair.load(folder, device=device, merge=True)  # adapters folded in: faster decoding
        details = pair.describe()
        return ModelEntry(method, pair, _model_id(details), display_path(folder), checkpoint_sha256(folder), details)
    try:
        pair = WorldModelPair.load(spec, device=device)
    except OSError as exc:
        raise SwirlError(f"cannot load model {spec!r}: not a local path, and the hub could not provide it "
                         f"({str(exc).splitlines()[0]})") from None
    details = pair.describe()
    return ModelEntry(method, pair, spec, spec, None, details)


def load_method(method: str, spec: str, **options: Any) -> ModelEntry:
    """load_pair_entry, wrapped in best-of-N verification for `verify@N` methods."""
    entry = load_pair_entry(method, spec, **options)
    n = verify_n(method)
    if n is not None:
        entry.predictor = VerifiedPredictor(entry.predictor, n)
        entry.details = dict(entry.details, verification={"n": n, "temperature": 0.75, "top_p": 0.96})
    return entry
