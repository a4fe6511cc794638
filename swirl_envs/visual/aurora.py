"""AURORA-Bench (McGill-NLP, MIT): image edits as transitions (source image, instruction, edited image).

Sources, in order of preference:

* `data_dir=`: an AURORA checkout (or any folder in its layout): `test.json` with records
  `{input, output, instruction, task}` whose paths are relative to the folder, images under
  `data/<task>/images/...`, DiscEdit annotations under `disc_edit_data/<task>/*.json`; the `train`
  split reads `data/<task>/train.json` where present;
* `hub_id="McGill-NLP/aurora-bench"`: the Hub copy through `datasets.load_dataset` (needs network);
* neither: the bundled fixture, AURORA's own test.json with the 50 Kubric image pairs (see its NOTICE).

Records without an `output` image (clevr, emu, epic: AURORA judges those by humans) and records whose
images are not on disk are counted and skipped; `summaries[split]` and a log line say how many, per
task. A present but corrupt image, or a malformed record, is a DataError naming file, record and field.
Each transition is one single-step episode; `meta` carries the task, the record index, the image
paths and, where DiscEdit has the record, its `pos`/`neg` alternative prompts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

from PIL import Image

from ..errors import DataError
from ..transition import Transition
from ._common import PACKAGE_DATA, LoadSummary, VisualBenchmark, check_keys, load_hub_split, open_image

FIXTURE_DIR = PACKAGE_DATA / "aurora"
HUB_ID = "McGill-NLP/aurora-bench"
TASKS = ("magicbrush", "ag", "something", "clevr", "whatsup", "emu", "epic", "kubric")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError("file not found", path=path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"not valid JSON ({exc})", path=path) from None


class AuroraBench(VisualBenchmark):
    name: ClassVar[str] = "aurora"
    version: ClassVar[str] = "1"
    splits: ClassVar[tuple[str, ...]] = ("train", "test")
    default_hub_id: ClassVar[str] = HUB_ID
    # DiscEdit's alternative prompts and WhatsUp's target caption restate the edit: hidden with it.
    action_meta_keys: ClassVar[tuple[str, ...]] = ("disc_edit", "caption")

    def __init__(self, *, data_dir: str | Path | None = None, labelled: bool = False,
                 image_size: int | tuple[int, int] = 64, hub_id: str | None = None,
                 tasks: Iterable[str] | None = None, missing_images: str = "skip"):
        super().__init__(data_dir=data_dir, labelled=labelled, image_size=image_size, hub_id=hub_id)
        if missing_images not in ("skip", "error"):
            raise ValueError(f"missing_images must be 'skip' or 'error', got {missing_images!r}")
        self.tasks = tuple(tasks) if tasks is not None else None
        self.missing_images = missing_images
        self.root = self.data_dir if self.data_dir is not None else FIXTURE_DIR
        self._hub_rows: Any = None

    # ------------------------------------------------------------ local layout

    def _annotation_files(self, split: str) -> list[Path]:
        if split == "test":
            return [self.root / "test.json"]
        return sorted((self.root / "data").glob("*/train.json"))

    def disc_edit(self) -> dict[tuple[str, str], dict[str, Any]]:
        """DiscEdit records by (task, prompt), from every disc_edit_data/<task>/valid.json present."""
        table: dict[tuple[str, str], dict[str, Any]] = {}
        for path in sorted((self.root / "disc_edit_data").glob("*/valid.json")):
            records = read_json(path)
            if not isinstance(records, list):
                raise DataError("expected a JSON list of records", path=path)
            for i, record in enumerate(records):
                check_keys(record, ("prompt",), path=path, where=i)
                extra = {k: record[k] for k in ("pos", "neg") if k in record}
                table[(path.parent.name, str(record["prompt"]).strip())] = extra
        return table

    def _read(self, split: str, summary: LoadSummary) -> Iterator[Transition]:
        if self.hub_id is not None:
            yield from self._read_hub(split, summary)
            return
        files = self._annotation_files(split)
        if split == "train" and not files:
            summary.notes.append(f"no data/<task>/train.json under {self.root}")
        disc = self.disc_edit() if split == "test" else {}
        for path in files:
            records = read_json(path)
            if not isinstance(records, list):
                raise DataError("expected a JSON list of records", path=path)
            default_task = path.parent.name if split == "train" else None
            for index, record in enumerate(records):
                check_keys(record, ("input", "instruction"), path=path, where=index)
                # Paths and the instruction are text; str() of another type would name no file or the wrong edit.
                for key in ("input", "instruction", "output", "task"):
                    value = record.get(key)
                    if not isinstance(value, str) and (key in ("input", "instruction") or value is not None):
                        raise DataError(f"expected a string, got {type(value).__name__}", path=path, record=index,
                                        field=key)
                task = record["task"] if record.get("task") is not None else default_task or "unknown"
                if self.tasks is not None and task not in self.tasks:
                    continue
                summary.total += 1
                if not record.get("output"):
                    summary.skip("without an output image", task)
                    continue
                paths = {key: self.root / str(record[key]) for key in ("input", "output")}
                absent = [key for key, p in paths.items() if not p.is_file()]
                if absent:
                    if self.missing_images == "error":
                        raise DataError("image file not found", path=paths[absent[0]], record=f"{path.name}#{index}",
                                        field=absent[0])
                    summary.skip("with images not present locally", task)
                    continue
                where = f"{path.name}#{index}"
                state = open_image(paths["input"], record=where, field="input")
                next_state = open_image(paths["output"], record=where, field="output")
                meta = {"task": task, "source_file": path.relative_to(self.root).as_posix(), "record": index,
                        "input": str(record["input"]), "output": str(record["output"]),
                        **{k: v for k, v in record.items() if k not in ("input", "output", "instruction", "task")}}
                if (task, str(record["instruction"]).strip()) in disc:
                    meta["disc_edit"] = disc[(task, str(record["instruction"]).strip())]
                yield Transition(self.fit(state), self.fit(next_state), str(record["instruction"]),
                                 f"aurora-{split}-{task}-{index}", 0, meta)

    # ------------------------------------------------------------ hub

    def _read_hub(self, split: str, summary: LoadSummary) -> Iterator[Transition]:
        if split != "test":
            summary.notes.append(f"{self.hub_id} has only a test split")
            return
        rows = self._hub_rows = load_hub_split(self.hub_id or HUB_ID, "test")
        for index, row in enumerate(rows):
            task = str(row.get("task", "unknown"))
            if self.tasks is not None and task not in self.tasks:
                continue
            summary.total += 1
            if row.get("output") is None or row.get("input") is None:
                summary.skip("without an output image", task)
                continue
            where = f"{self.hub_id}#{index}"
            state = open_image(row["input"], record=where, field="input")
            next_state = open_image(row["output"], record=where, field="output")
            meta = {"task": task, "source_file": f"hf://datasets/{self.hub_id}", "record": index}
            yield Transition(self.fit(state), self.fit(next_state), str(row.get("instruction", "")),
                             f"aurora-{split}-{task}-{index}", 0, meta)

    # ------------------------------------------------------------ originals

    def original(self, transition: Transition) -> tuple[Image.Image, Image.Image]:
        meta = transition.meta
        if str(meta.get("source_file", "")).startswith("hf://"):
            if self._hub_rows is None:
                self._hub_rows = load_hub_split(self.hub_id or HUB_ID, "test")
            row = self._hub_rows[int(meta["record"])]
            return (open_image(row["input"], record=meta["record"], field="input"),
                    open_image(row["output"], record=meta["record"], field="output"))
        where = f"{meta.get('source_file')}#{meta.get('record')}"
        return (open_image(self.root / meta["input"], record=where, field="input"),
                open_image(self.root / meta["output"], record=where, field="output"))
