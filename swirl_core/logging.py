"""Training metrics: one JSON object per line in <output_dir>/metrics.jsonl, and a rich progress display.

A resumed run first drops the lines written after its checkpoint, so the log of a killed-and-resumed run
reads like the log of an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from swirl_envs.fileio import write_atomic

SHOWN = ("reward/mean", "reward/std", "kl", "loss", "logp_truth")


def _clean(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf; keep them visible rather than crash the run
    return value


def progress_bar(*extra: ProgressColumn, **options: Any) -> Progress:
    """The project's one rich progress layout (training and `swirl-eval run`): what runs, a bar, done of
    total and elapsed time, then the caller's `extra` columns; `options` go to rich's Progress."""
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    *extra, **options)


class MetricsLogger:
    def __init__(self, output_dir: str | Path, *, total_steps: int, progress: bool = True,
                 description: str = "training", resume_step: int | None = None):
        self.path = Path(output_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None:
            self.truncate_after(resume_step)
        elif self.path.exists():
            self.path.unlink()  # a fresh run starts a fresh log
        self.start = time.time()
        self.progress = progress_bar(TextColumn("{task.fields[info]}"), disable=not progress)
        self.task = self.progress.add_task(description, total=total_steps, completed=resume_step or 0, info="")

    def truncate_after(self, step: int) -> None:
        if not self.path.exists():
            return
        kept = [line for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step]
        write_atomic(self.path, "".join(line + "\n" for line in kept))

    def log(self, step: int, metrics: dict[str, Any], *, write: bool = True) -> None:
        record = {"step": step, **{k: _clean(v) for k, v in metrics.items()},
                  "time": round(time.time() - self.start, 3)}
        if write:
            with open(self.path, "a") as handle:
                handle.write(json.dumps(record, sort_keys=True) + "\n")
        shown = "  ".join(f"{k}={record[k]:.3g}" for k in SHOWN if isinstance(record.get(k), int | float))
        self.progress.update(self.task, completed=step, info=shown)

    def describe(self, text: str) -> None:
        self.progress.update(self.task, description=text)

    def __enter__(self) -> MetricsLogger:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()


def read_metrics(output_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(output_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
