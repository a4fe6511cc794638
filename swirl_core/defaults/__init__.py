"""Embedded default checkpoints: small SFT and SWIRL pairs shipped inside the package, one folder per method.

Layout: ``swirl_core/defaults/<bench>/<method>/`` is a `WorldModelPair.save` folder (``pair.json``, ``fwm/``,
``idm/``; weights as float16 safetensors, loaded back as float32) plus ``manifest.json``: the command that
produced it, seed, the train split's data hash, the labelled/unlabelled split, the trainer config, wall time,
parameter counts and the sha256 of every file. ``scripts/train_default_models.py`` writes them.

>>> from swirl_core.defaults import default_checkpoints
>>> default_checkpoints("stabletoolbench")   # {"sft": Path(...), "swirl": Path(...)}
>>> borrowed_checkpoints("aurora")            # test data only: visualphysics's image pairs
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from swirl_envs.errors import SwirlError
from swirl_envs.fileio import file_sha256

ROOT = Path(__file__).resolve().parent
MANIFEST = "manifest.json"
PAIR_FILE = "pair.json"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


# Benchmarks that ship test data only have no train split to fit a default on; they borrow the pairs of a
# benchmark with the same kind of states, a transfer baseline that lets `swirl-eval run` work out of the box.
BORROWED_FROM = {"aurora": "visualphysics", "bytemorph": "visualphysics", "worldprediction": "visualphysics"}


def default_checkpoints(bench: str) -> dict[str, Path]:
    """Method name -> shipped pair folder, for every method of `bench` that has one (empty if none)."""
    folder = ROOT / bench
    if not folder.is_dir():
        return {}
    return {p.name: p for p in sorted(folder.iterdir()) if (p / PAIR_FILE).is_file()}


def borrowed_checkpoints(bench: str) -> dict[str, Path]:
    """The pairs `bench` borrows (see BORROWED_FROM): another benchmark's defaults, or empty."""
    return default_checkpoints(BORROWED_FROM[bench]) if bench in BORROWED_FROM else {}


def default_manifest(bench: str, method: str) -> dict[str, Any]:
    """The manifest.json of a shipped checkpoint."""
    path = ROOT / bench / method / MANIFEST
    if not path.is_file():
        known = ", ".join(f"{b.name}/{m}" for b in sorted(ROOT.iterdir()) if b.is_dir()
                          for m in default_checkpoints(b.name)) or "none"
        raise SwirlError(f"no default checkpoint {bench}/{method} (shipped: {known})")
    return json.loads(path.read_text())


def checkpoint_files(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file in a checkpoint folder except the manifest itself."""
    return {p.relative_to(folder).as_posix(): file_sha256(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != MANIFEST}


def weights_sha256(folder: Path) -> str:
    """One digest over the weight files (relative path, NUL, bytes; in path order): the identity a report
    card records for a checkpoint (same rule as evals.checkpoints.checkpoint_sha256)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES)):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def verify(bench: str, method: str) -> list[str]:
    """Differences between a shipped checkpoint's files and its manifest (empty when they match)."""
    folder = ROOT / bench / method
    expected, actual = default_manifest(bench, method)["files"], checkpoint_files(folder)
    problems = [f"{name}: missing" for name in expected if name not in actual]
    problems += [f"{name}: not in the manifest" for name in actual if name not in expected]
    problems += [f"{name}: sha256 differs" for name in expected if name in actual and actual[name] != expected[name]]
    return problems
