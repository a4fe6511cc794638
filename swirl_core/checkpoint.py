"""Atomic checkpoint folders and the RNG/optimizer state that makes a resumed run bit-identical.

A checkpoint folder is written under a hidden temporary name next to its destination and moved into
place with os.replace, so a reader (or a resumed run) never sees a half-written one: a kill mid-save
leaves only a `.tmp-*` folder, which the next save or resume ignores and cleans up.

Layout written by the trainers:
    <output_dir>/checkpoint-<step>/   pair folders (see WorldModelPair.save), trainer_state.json,
                                      optimizer.pt, scheduler.pt, rng.pt, and any extra files
    <output_dir>/final/               the finished pair plus trainer_state.json
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from swirl_envs.fileio import write_atomic

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
STATE_FILE = "trainer_state.json"


def write_json_atomic(path: str | Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str))


def rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def set_rng_state(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and "generator" in state:
        generator.set_state(state["generator"])


def checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete step checkpoints in `output_dir`, oldest first."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in output_dir.iterdir()
             if (m := CHECKPOINT_PATTERN.match(p.name)) and (p / STATE_FILE).is_file()]
    return [p for _, p in sorted(found)]


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    found = checkpoints(output_dir)
    return found[-1] if found else None


def prune_checkpoints(output_dir: str | Path, keep: int) -> None:
    """Keep the newest `keep` step checkpoints and remove leftovers of interrupted saves."""
    output_dir = Path(output_dir)
    found = checkpoints(output_dir)
    for old in found[: max(len(found) - keep, 0)]:
        shutil.rmtree(old, ignore_errors=True)
    for leftover in output_dir.glob(".tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)


def read_state(folder: str | Path) -> dict[str, Any]:
    return json.loads((Path(folder) / STATE_FILE).read_text())


def torch_load(path: Path) -> Any:
    # Our own files: optimizer/scheduler state and RNG states (numpy's tuple needs full unpickling).
    return torch.load(path, map_location="cpu", weights_only=False)
