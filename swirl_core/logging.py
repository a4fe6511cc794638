"""Training metrics: one JSON object per line in <output_dir>/metrics.jsonl, and a rich progress display.

A resumed run first drops the lines written after its checkpoint, so the log of a killed-and-resumed run
reads like the log of an uninterrupted one.

Experiment trackers (config `report_to`: tensorboard, trackio, wandb, comma-separated, or none) get the
numbers of every metrics.jsonl line (but its clock), with the run's config as hyperparameters. Under several
processes only the main one logs (`main=False` elsewhere: no file, no display, no trackers).
They are accelerate's tracker classes (`accelerate.tracking`), started, fed and finished as
`Accelerator.init_trackers` / `log` / `end_training` do; the logger holds them itself because `end_training`
also tears down the process group, which a trainer still needs after its last logged step.
metrics.jsonl stays the source of truth: trackers are a view of it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
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

from swirl_envs.errors import SwirlError
from swirl_envs.fileio import write_atomic

SHOWN = ("reward/mean", "reward/std", "kl", "loss", "logp_truth")
TRACKERS = ("tensorboard", "trackio", "wandb")  # report_to names; each is also its pip package
PROJECT = "swirl"  # the trackio / wandb project every run reports to (the run is named after its output folder)


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


def tracker_names(report_to: str) -> list[str]:
    """The trackers a `report_to` value names ("none" or "" name none); an unknown name raises SwirlError."""
    names = list(dict.fromkeys(n.strip() for n in report_to.split(",") if n.strip() not in ("", "none")))
    if unknown := [n for n in names if n not in TRACKERS]:
        raise SwirlError(f"report_to: unknown tracker {', '.join(unknown)}; use tensorboard, trackio, wandb "
                         "(comma-separated) or none")
    return names


def check_trackers(report_to: str) -> list[str]:
    """tracker_names, after checking each one's package is installed (so a run fails before it trains)."""
    names = tracker_names(report_to)
    if missing := [n for n in names if importlib.util.find_spec(n) is None]:
        raise SwirlError(f"report_to={report_to} needs {' and '.join(missing)}: pip install {' '.join(missing)}")
    return names


def hyperparameters(config: Any) -> dict[str, Any]:
    """A config as flat dotted keys (tiny.hidden_size) with the scalar values trackers accept."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), item)
        else:
            flat[prefix] = value if value is None or isinstance(value, bool | int | float | str) else str(value)

    walk("", dataclasses.asdict(config))
    return flat


def start_trackers(config: Any, output_dir: Path, run_name: str, resume_step: int | None) -> list[Any]:
    """accelerate trackers for `config.report_to`, started with the config as hyperparameters."""
    names = check_trackers(getattr(config, "report_to", "none"))
    if not names:
        return []
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS

    run = f"{run_name}-{output_dir.resolve().name}"
    # tensorboard: a resumed run drops the events after its checkpoint, as metrics.jsonl drops its lines
    made = {"tensorboard": lambda cls: cls("tensorboard", output_dir, purge_step=(resume_step or 0) + 1),
            "trackio": lambda cls: cls(PROJECT, name=run),
            "wandb": lambda cls: cls(PROJECT, name=run, dir=str(output_dir))}
    trackers = []
    for name in names:
        tracker = made[name](LOGGER_TYPE_TO_CLASS[name])
        tracker.start()
        tracker.store_init_configuration(hyperparameters(config))
        trackers.append(tracker)
    return trackers


def _scalars(metrics: dict[str, Any]) -> dict[str, int | float]:
    values = {k: v.item() if hasattr(v, "item") else v for k, v in metrics.items()}
    return {k: v for k, v in values.items() if isinstance(v, int | float) and not isinstance(v, bool)}


class MetricsLogger:
    """metrics.jsonl, the progress display and, for a trainer `config` whose `report_to` names them, trackers;
    with `main=False` (a process other than the main one) it writes and shows nothing."""

    def __init__(self, output_dir: str | Path, *, total_steps: int, progress: bool = True,
                 description: str = "training", resume_step: int | None = None, config: Any = None,
                 main: bool = True):
        self.path, self.main = Path(output_dir) / "metrics.jsonl", main
        kept: list[dict[str, Any]] = []
        if main:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if resume_step is not None:
                kept = self.truncate_after(resume_step)
            elif self.path.exists():
                self.path.unlink()  # a fresh run starts a fresh log
        # "time" is the run's training time: a resumed run goes on from its kept steps' last time, so that
        # the time spent before a stop counts and the time between stop and resume does not
        self.start = time.time() - (kept[-1].get("time", 0.0) if kept else 0.0)
        self.progress = progress_bar(TextColumn("{task.fields[info]}"), disable=not (progress and main))
        self.task = self.progress.add_task(description, total=total_steps, completed=resume_step or 0, info="")
        self.trackers = start_trackers(config, self.path.parent, description, resume_step) if main else []

    def truncate_after(self, step: int) -> list[dict[str, Any]]:
        """Drop the lines of steps after `step` (lost with the stop); returns the records kept."""
        if not self.path.exists():
            return []
        lines = [line for line in self.path.read_text().splitlines() if line.strip()]
        kept = [(line, record) for line in lines if (record := json.loads(line)).get("step", 0) <= step]
        write_atomic(self.path, "".join(line + "\n" for line, _ in kept))
        return [record for _, record in kept]

    def log(self, step: int, metrics: dict[str, Any], *, write: bool = True) -> None:
        record = {"step": step, **{k: _clean(v) for k, v in metrics.items()},
                  "time": round(time.time() - self.start, 3)}
        if write and self.main:
            with open(self.path, "a") as handle:
                handle.write(json.dumps(record, sort_keys=True) + "\n")
            for tracker in self.trackers:  # not "time": each tracker stamps its own (trackio reserves the name)
                tracker.log(_scalars(metrics), step=step)
        shown = "  ".join(f"{k}={record[k]:.3g}" for k in SHOWN if isinstance(record.get(k), int | float))
        self.progress.update(self.task, completed=step, info=shown)

    def describe(self, text: str) -> None:
        self.progress.update(self.task, description=text)

    def __enter__(self) -> MetricsLogger:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()
        for tracker in self.trackers:
            tracker.finish()


def read_metrics(output_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(output_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
