"""Atomic file writes: a reader (or a resumed run) sees the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Temp files and folders are created private (0600 / 0700); what lands at `path` gets the modes a plain
# open() or mkdir() would give. Read once at import: os.umask is process-wide and not thread-safe.
UMASK = _read_umask()


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write to a temp file in the same folder, fsync, then os.replace over `path` (text is UTF-8)."""
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~UMASK)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder next to `path`; on success it replaces `path` in one rename (an old `path`
    is removed). A kill mid-write leaves only a hidden `.tmp-*` folder, never a half-written `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{path.name}-", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~UMASK)
        for file in tmp.rglob("*"):
            if file.is_file():
                with open(file, "rb") as handle:
                    os.fsync(handle.fileno())
        if path.exists():
            # A directory cannot be renamed over a non-empty one: move the old aside first, then drop it.
            trash = path.parent / f".old-{path.name}-{os.getpid()}"
            os.replace(path, trash)
            os.replace(tmp, path)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def dumps_json(data: Any) -> str:
    """The project's JSON files (reports, manifests, leaderboards): indented, UTF-8 as is, and no NaN or
    Infinity, which read_json refuses too."""
    return json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def read_json(path: str | Path, kind: str = "JSON") -> Any:
    """Parse a JSON file; a missing or malformed file is a DataError naming the file and what it should be."""
    from .errors import DataError

    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"), parse_constant=_no_constant)
    except FileNotFoundError:
        raise DataError(f"no such {kind} file", path=path) from None
    except ValueError as exc:
        raise DataError(f"not valid JSON ({exc})", path=path) from None


def _no_constant(name: str) -> Any:
    # Python's json reads NaN and Infinity, which JSON does not have: a NaN metric would compare false
    # with everything and pass or fail a check by accident.
    raise ValueError(f"{name} is not a JSON number")
