"""The benchmark API: named splits of transitions, as iterables and as `datasets.Dataset`."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from .errors import SwirlError, UnknownNameError
from .transition import Transition


class Benchmark(ABC):
    """A source of state-only transitions.

    Subclasses set `name`, `version`, `modality`, `splits` and implement `_load(split)`, which yields
    labelled transitions in a fixed order. Actions are hidden unless the benchmark is opened with
    `labelled=True`: training code that should never see them simply cannot.
    `unbounded_splits` names splits that are infinite streams (a simulator's train split).
    """

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    modality: ClassVar[str] = "text"  # "text" | "image"
    splits: ClassVar[tuple[str, ...]] = ("train", "validation", "test")
    unbounded_splits: ClassVar[tuple[str, ...]] = ()
    primary_metric: ClassVar[str] = "fwm/bleu"
    image_shape: ClassVar[tuple[int, int] | None] = None  # (height, width) of image envs
    action_meta_keys: ClassVar[tuple[str, ...]] = ()  # meta fields that reveal the action: hidden with it

    def __init__(self, *, data_dir: str | Path | None = None, labelled: bool = False):
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.labelled = labelled

    @abstractmethod
    def _load(self, split: str) -> Iterable[Transition]:
        """Yield the split's transitions with their actions, in a deterministic order."""

    def load_problems(self) -> list[str]:
        """Damaged source data the loader skipped, one located line each (file, record, field); [] when
        everything read cleanly or the benchmark generates its data."""
        return []

    def check_split(self, split: str) -> str:
        if split not in self.splits:
            raise UnknownNameError(f"split of benchmark {self.name!r}", split, self.splits)
        return split

    def _stream(self, split: str, limit: int | None, unit: str) -> Iterator[Transition]:
        self.check_split(split)
        if limit is None and split in self.unbounded_splits:
            raise SwirlError(f"split {split!r} of {self.name!r} is an unbounded stream; pass limit=N {unit}")
        if limit is not None and limit < 0:
            raise SwirlError(f"limit must be >= 0, got {limit}")
        return iter(self._load(split))

    def transitions(self, split: str = "test", *, limit: int | None = None) -> Iterator[Transition]:
        stream = itertools.islice(self._stream(split, limit, "transitions"), limit)
        return stream if self.labelled else self._hide(stream)

    def _hide(self, stream: Iterable[Transition]) -> Iterator[Transition]:
        hidden = self.action_meta_keys
        return (t.without_action(hidden) for t in stream)

    def __iter__(self) -> Iterator[Transition]:
        return self.transitions("test")

    def episodes(self, split: str = "test", *, limit: int | None = None) -> Iterator[list[Transition]]:
        """Consecutive transitions grouped by `episode_id`; `limit` counts episodes."""
        stream = self._stream(split, limit, "episodes")
        if not self.labelled:
            stream = self._hide(stream)
        grouped = (list(group) for _, group in itertools.groupby(stream, key=lambda t: t.episode_id))
        return itertools.islice(grouped, limit)

    def make_env(self, *, split: str = "test", reveal_actions: bool = False):
        """A Gymnasium env over the split's episodes (simulators override this to generate from the seed)."""
        from .env import episodes_env

        return episodes_env(list(self.episodes(split)), modality=self.modality, image_shape=self.image_shape,
                            reveal_actions=reveal_actions, hidden_meta=self.action_meta_keys)

    def to_dataset(self, split: str = "test", *, limit: int | None = None):
        """The split as a `datasets.Dataset` (images become `datasets.Image` features, meta a JSON string)."""
        import datasets

        rows = [transition_to_row(t) for t in self.transitions(split, limit=limit)]
        features = dataset_features(self.modality)
        if not rows:
            return datasets.Dataset.from_dict({k: [] for k in features}, features=features)
        return datasets.Dataset.from_list(rows, features=features)

    def data_hash(self, split: str = "test", *, limit: int | None = None) -> str:
        """sha256 over the labelled records of a split: identical data <=> identical hash."""
        digest = hashlib.sha256()
        for t in itertools.islice(self._stream(split, limit, "transitions"), limit):
            for value in (t.state, t.next_state, t.action, t.episode_id, t.step):
                digest.update(state_bytes(value))
                digest.update(b"\x1f")
            digest.update(json.dumps(dict(t.meta), sort_keys=True, default=str).encode())
            digest.update(b"\x1e")
        return "sha256:" + digest.hexdigest()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "modality": self.modality,
                "splits": list(self.splits), "primary_metric": self.primary_metric,
                "data_dir": str(self.data_dir) if self.data_dir else None}



class RecordedBenchmark(Benchmark):
    """A benchmark read from recorded files: the whole folder is parsed once, on first use, into `data`
    (transitions per split plus a report of what was read and skipped), so constructing one costs nothing.

    Subclasses implement `bundled_data_dir()` (the files shipped with the package) and `read_data()`.
    """

    def __init__(self, *, data_dir: str | Path | None = None, labelled: bool = False, strict: bool = False):
        super().__init__(data_dir=data_dir, labelled=labelled)
        self.strict = strict  # raise on the first damaged record instead of skipping it with a report line
        self._data: Any = None

    @abstractmethod
    def bundled_data_dir(self) -> Path:
        """Where the package's own copy of the data lives (used when no data_dir is given)."""

    @abstractmethod
    def read_data(self) -> Any:
        """Parse `self.root`: an object with `transitions` (split -> list) and `report` (`problems`, `as_dict()`)."""

    @property
    def root(self) -> Path:
        return self.data_dir if self.data_dir is not None else self.bundled_data_dir()

    @property
    def data(self) -> Any:
        if self._data is None:
            self._data = self.read_data()
        return self._data

    def _load(self, split: str) -> Iterable[Transition]:
        return iter(self.data.transitions[split])

    def report(self) -> dict[str, Any]:
        """What was read, skipped (with locations) and yielded per split."""
        return self.data.report.as_dict()

    def load_problems(self) -> list[str]:
        return list(self.data.report.problems)


def salted_split(salt: str, identity: str) -> str:
    """A whole unit's split (a query, a dialogue) from a salted sha256 of its whitespace-normalised text:
    10% validation, 20% test, 70% train, stable across machines and data order."""
    digest = hashlib.sha256((salt + " ".join(identity.split())).encode("utf-8")).digest()
    bucket = int.from_bytes(digest[:8], "big") % 100
    return "validation" if bucket < 10 else "test" if bucket < 30 else "train"


def transition_key(t: Transition) -> bytes:
    """What makes two text transitions the same record: loaders keep the first and count the rest as duplicates."""
    return hashlib.sha256("\x1f".join((t.state, t.action or "", t.next_state)).encode("utf-8")).digest()


def state_bytes(value: Any) -> bytes:
    """A state, action or next state as bytes that identify it (text as UTF-8, pictures as shape + pixels)."""
    if value is None:
        return b"\x00none"
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, Image.Image):
        value = np.asarray(value.convert("RGB"))
    if isinstance(value, np.ndarray):
        return str(value.shape).encode() + np.ascontiguousarray(value).tobytes()
    return repr(value).encode()


def _image_to_png(value: Any) -> dict[str, Any]:
    image = value if isinstance(value, Image.Image) else Image.fromarray(np.asarray(value, dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


def transition_to_row(t: Transition) -> dict[str, Any]:
    convert = (lambda s: s) if isinstance(t.state, str) else _image_to_png
    return {"state": convert(t.state), "next_state": convert(t.next_state), "action": t.action,
            "episode_id": t.episode_id, "step": t.step,
            "meta": json.dumps(dict(t.meta), sort_keys=True, default=str)}


def dataset_features(modality: str):
    import datasets

    state = datasets.Value("string") if modality == "text" else datasets.Image()
    return datasets.Features({"state": state, "next_state": state, "action": datasets.Value("string"),
                              "episode_id": datasets.Value("string"), "step": datasets.Value("int64"),
                              "meta": datasets.Value("string")})
