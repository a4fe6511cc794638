"""Fetch the public StableToolBench files (GitHub at a pinned commit, the Hugging Face baselines) into an
upstream-layout folder that `loader.load_data` reads."""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import SwirlError
from ..fileio import write_atomic

STABLETOOLBENCH_COMMIT = "aa4ed9f4737ad98bd706663f01d63623c3427812"
_RAW = f"https://raw.githubusercontent.com/THUNLP-MT/StableToolBench/{STABLETOOLBENCH_COMMIT}/solvable_queries"


@dataclass(frozen=True)
class RemoteFile:
    """A file to fetch: a Hugging Face dataset file (`repo` + `path`) or a URL (`repo=None`, `path`=URL).

    `target` is where it goes below the local data folder (upstream-relative); a `.zip` is unpacked there.
    """

    repo: str | None
    path: str
    target: str
    revision: str = "main"


DEFAULT_REMOTE_FILES: tuple[RemoteFile, ...] = tuple(
    RemoteFile(None, f"{_RAW}/{kind}/{group}.json", f"solvable_queries/{kind}/{group}.json")
    for group in ("G1_instruction", "G1_category", "G1_tool", "G2_category", "G2_instruction", "G3_instruction")
    for kind in ("test_instruction", "test_query_ids")
) + (
    # StableToolBench's released inference results (CoT and DFS answers of its baselines).
    RemoteFile("stabletoolbench/baselines", "data_baselines.zip", "data_baselines"),
)


def fetch_remote(dest: str | Path, files: Sequence[RemoteFile] = DEFAULT_REMOTE_FILES) -> Path:
    """Materialise remote files as an upstream-layout folder under `dest` (skipping ones already there).

    JSON files go through `datasets.load_dataset("text", sample_by="document")`, which downloads and
    caches them with the Hub's machinery and hands back the exact text; zips come from `hf_hub_download`.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for remote in files:
        target = (dest / remote.target).resolve()
        if not target.is_relative_to(dest.resolve()):
            raise SwirlError(f"remote file target {remote.target!r} leaves {dest}")
        if target.exists():
            continue
        try:
            if remote.path.endswith(".zip"):
                _fetch_zip(remote, target)
            else:
                _fetch_text(remote, target)
        except SwirlError:
            raise
        except Exception as exc:  # network, auth, missing file: one clear line, whatever the library raised
            where = f"{remote.repo}/{remote.path}" if remote.repo else remote.path
            raise SwirlError(f"could not fetch {where}: {type(exc).__name__}: {exc}; "
                             f"use data_dir=<local upstream checkout> instead") from exc
    return dest


def _fetch_text(remote: RemoteFile, target: Path) -> None:
    import datasets

    url = f"hf://datasets/{remote.repo}@{remote.revision}/{remote.path}" if remote.repo else remote.path
    rows = datasets.load_dataset("text", data_files=url, sample_by="document", split="train")
    text = "".join(rows["text"])
    json.loads(text)  # refuse to store something that is not JSON
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, text)


def _fetch_zip(remote: RemoteFile, target: Path) -> None:
    from huggingface_hub import hf_hub_download

    archive = hf_hub_download(remote.repo, remote.path, repo_type="dataset", revision=remote.revision)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".unpack-"))
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                out = (staging / member).resolve()
                if not out.is_relative_to(staging.resolve()):
                    raise SwirlError(f"{remote.path}: member {member!r} would unpack outside its folder")
            zf.extractall(staging)
        staging.replace(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
