"""Evaluate FWM/IDM predictors on a benchmark split and write a report card.

The runner is model-agnostic: a predictor is anything with the two list-in/list-out calls of
`swirl_core.WorldModelPair` (`predict_next_states(states, actions, **options)` and
`predict_actions(states, next_states, **options)`). Each batch is one call per model.

Resuming: every finished batch is appended to `samples.jsonl` and flushed to disk. A rerun with the
same output folder reads the lines already there (a truncated last line from a kill is dropped),
skips those (method, index) keys and evaluates only the rest. `run.json` pins what the folder holds
(benchmark, data hash, split, limit, seed, decoding, models); a rerun that differs is refused rather
than mixed in. At the end samples.jsonl is rewritten in canonical order, so a resumed run and an
uninterrupted one leave the same files.

Image benchmarks: the FWM writes codec text, which the pair's codec decodes into a picture; it is
saved as `images/<method>/<index>.png` (atomically, before its samples.jsonl line, so a line on disk
means its picture is too; a missing or unreadable one is decoded again from the line's text on the
next run) and scored with pixel metrics (and CLIP / DINO scores when their models are given) against
the true next image. IDM predictions are instructions and get the text action metrics; where a
transition offers `meta["candidates"]` (WorldPrediction) the IDM does not generate but picks the
candidate it finds most likely (`idm/accuracy`). The card's image grid shows the first `grid_rows`
transitions: source, truth and each method's prediction (`images/_source/`, `images/_truth/`).
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from swirl_envs.benchmark import Benchmark
from swirl_envs.errors import DataError, SwirlError
from swirl_envs.fileio import dumps_json as dumps  # the project's JSON format, under its old name here
from swirl_envs.fileio import write_atomic
from swirl_envs.transition import Transition

from . import image_metrics, metrics
from .diagnostics import method_diagnostics, text_examples
from .report import build_report, write_report

SAMPLES_FILE = "samples.jsonl"
MANIFEST_FILE = "run.json"
IMAGES_DIR = "images"
PROBLEMS_SHOWN = 5  # loader problems quoted in report.json (all are counted)


class Predictor(Protocol):
    def predict_next_states(self, states: Sequence[Any], actions: Sequence[Any], **options: Any) -> list[str]: ...

    def predict_actions(self, states: Sequence[Any], next_states: Sequence[Any], **options: Any) -> list[str]: ...


@dataclass
class ModelEntry:
    """One row of the card: a method name, its predictor, and how to name the weights it ran."""

    method: str
    predictor: Predictor
    model_id: str  # what the weights are: "tiny", a hub id, a base model name
    checkpoint: str | None = None  # path as given
    sha256: str | None = None  # over the checkpoint's weight files (see checkpoint_sha256)
    details: dict[str, Any] = field(default_factory=dict)  # e.g. pair.describe()

    def identity(self) -> dict[str, Any]:
        return {"model": self.model_id, "checkpoint": self.checkpoint, "sha256": self.sha256,
                "details": self.details}


@dataclass
class RunConfig:
    """What a run evaluates and how; everything here is part of the run's identity (see run.json)."""

    benchmark: str
    split: str = "test"
    limit: int | None = None
    seed: int = 0
    batch_size: int = 16
    temperature: float = 0.0  # 0 = greedy decoding
    top_p: float = 1.0
    max_new_tokens: int | None = None
    bootstrap_samples: int = metrics.BOOTSTRAP_SAMPLES
    command: str | None = None  # the command line that reproduces the run
    clip_model: str | None = None  # image benchmarks: hub id or folder of a CLIP model -> fwm/clip_* scores
    dino_model: str | None = None  # image benchmarks: a DINO model -> fwm/dino
    strict: bool = False  # refuse to run when the loader skipped damaged data (else: reported on the card)
    grid_rows: int = 8  # image benchmarks: transitions shown in the card's image grid (not part of the identity)
    example_rows: int = 5  # text benchmarks: transitions shown with every method's predictions (not identity)

    def decoding(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "top_p": self.top_p, "max_new_tokens": self.max_new_tokens}


ProgressFn = Callable[[str, int, int], None]  # (method, done, total)


@dataclass
class ImageScorers:
    """The optional model-based image scores of a run (loaded once)."""

    clip: image_metrics.ClipScorer | None = None
    dino: image_metrics.DinoScorer | None = None

    @classmethod
    def load(cls, config: RunConfig, device: str = "cpu") -> ImageScorers:
        def load(kind: str, loader: Callable[..., Any], name: str | None) -> Any:
            if name is None:
                return None
            try:
                return loader(name, device=device)
            except OSError as exc:
                raise SwirlError(f"cannot load the {kind} model {name!r} ({str(exc).splitlines()[0]})") from None
        return cls(load("CLIP", image_metrics.ClipScorer.load, config.clip_model),
                   load("DINO", image_metrics.DinoScorer.load, config.dino_model))


def seed_everything(seed: int) -> None:
    """Seed python, numpy and (when loaded) torch's global generators: sampling decoders draw from them."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


def read_samples(path: Path) -> list[dict[str, Any]]:
    """Records of a samples.jsonl. Bytes after the last newline are a line cut short by a kill: they are
    dropped from the file (and redone); a broken line before that is an error, not something to guess at."""
    if not path.exists():
        return []
    data = path.read_bytes()
    *complete, tail = data.split(b"\n")
    records = []
    for number, line in enumerate(complete, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            raise DataError("not a JSON line; remove the file to start over", path=path, record=number) from None
    if tail:
        with open(path, "r+b") as handle:
            handle.truncate(len(data) - len(tail))
    return records


def _batches(items: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield list(items[start:start + size])


def sample_record(method: str, index: int, t: Transition, fwm_pred: str | None, idm_pred: str | None,
                  execute: Callable[[Transition, str], Any] | None = None,
                  parse: Callable[[str], Any] | None = None) -> dict[str, Any]:
    """One samples.jsonl line: ids, and per model its prediction, the truth and per-sample scores."""
    record: dict[str, Any] = {"method": method, "index": index, "episode_id": t.episode_id, "step": t.step,
                              "fwm": None, "idm": None}
    if fwm_pred is not None:
        state = t.state if isinstance(t.state, str) else None
        record["fwm"] = {"input_action": t.action, "prediction": fwm_pred, "truth": t.next_state,
                         "scores": metrics.fwm_sample_scores(fwm_pred, t.next_state, state, parse)}
        if state is not None:  # what changed, for the corpus metric on changed lines
            record["fwm"]["delta_prediction"] = metrics.new_lines(fwm_pred, state)
            record["fwm"]["delta_truth"] = metrics.new_lines(t.next_state, state)
    if idm_pred is not None:
        record["idm"] = {"prediction": idm_pred, "truth": t.action,
                         "scores": metrics.idm_sample_scores(idm_pred, t.action)}
        if execute is not None:  # several actions can lead to y: the simulator says whether this one does
            record["idm"]["scores"]["idm/action_valid"] = float(execute(t, idm_pred) == t.next_state)
    return record


def _check_texts(values: Any, expected: int, method: str, what: str) -> list[str]:
    if not isinstance(values, list) or len(values) != expected or not all(isinstance(v, str) for v in values):
        got = f"{len(values)} items" if isinstance(values, list) else type(values).__name__
        raise SwirlError(f"method {method!r}: {what} returned {got}; expected a list of {expected} strings")
    return values


def _evaluate_batch(entry: ModelEntry, batch: list[int], data: list[Transition], config: RunConfig,
                    execute: Callable[[Transition, str], Any] | None = None,
                    parse: Callable[[str], Any] | None = None) -> list[dict]:
    options = {"num_samples": 1, "temperature": config.temperature, "top_p": config.top_p,
               "max_new_tokens": config.max_new_tokens, "batch_size": config.batch_size}
    # Z is needed as FWM input and as IDM truth: transitions without an action are not scored.
    labelled = [i for i in batch if data[i].action is not None]
    fwm: dict[int, str] = {}
    idm: dict[int, str] = {}
    if labelled:
        seed_everything(config.seed * 1_000_003 + labelled[0])
        states = [data[i].state for i in labelled]
        out = entry.predictor.predict_next_states(states, [data[i].action for i in labelled], **options)
        fwm = dict(zip(labelled, _check_texts(out, len(labelled), entry.method, "predict_next_states"), strict=True))
        out = entry.predictor.predict_actions(states, [data[i].next_state for i in labelled], **options)
        idm = dict(zip(labelled, _check_texts(out, len(labelled), entry.method, "predict_actions"), strict=True))
    return [sample_record(entry.method, i, data[i], fwm.get(i), idm.get(i), execute, parse) for i in batch]


# ------------------------------------------------------------------ image benchmarks


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.@=+-]", "_", name)


def prediction_path(method: str, index: int) -> str:
    """Where a method's predicted image goes, relative to the run folder."""
    return f"{IMAGES_DIR}/{_safe(method)}/{index:05d}.png"


def input_path(kind: str, index: int) -> str:
    """The grid's copy of a transition's source or true next image ('source' | 'truth')."""
    return f"{IMAGES_DIR}/_{kind}/{index:05d}.png"


def save_png(path: Path, image: Any) -> None:
    if not isinstance(image, Image.Image):
        image = Image.fromarray(np.asarray(image, dtype=np.uint8))
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, buffer.getvalue())


def readable_png(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            image.load()
        return True
    except (OSError, ValueError):
        return False


def has_candidates(t: Transition) -> bool:
    candidates = t.meta.get("candidates")
    return isinstance(candidates, list) and len(candidates) >= 2 and "ground_truth" in t.meta


def choose_candidates(entry: ModelEntry, items: list[Transition], batch_size: int) -> list[dict[str, Any]]:
    """For each transition, the IDM's log-likelihood (mean per token) of every candidate and the choice
    `image_metrics.candidate_accuracy` makes from them; all candidates are scored in batched calls."""
    score = getattr(entry.predictor, "score_actions", None)
    if not callable(score):
        raise SwirlError(f"method {entry.method!r}: choosing among candidates needs a predictor with score_actions")
    rows = [(t, c) for t in items for c in t.meta["candidates"]]
    values = score([t.state for t, _ in rows], [t.next_state for t, _ in rows], [c for _, c in rows],
                   batch_size=batch_size)
    values = iter([float(v) for v in values])
    out = []
    for t in items:
        table = {c: next(values) for c in t.meta["candidates"]}  # equal texts have equal scores
        result = image_metrics.candidate_accuracy([t], lambda _x, _y, c, table=table: table[c])
        choice = result["predictions"][0]
        out.append({"prediction": t.meta["candidates"][choice["best"][0]] if choice["best"] else "",
                    "accuracy": result["accuracy"], "candidate_scores": choice["scores"], "chosen": choice["best"],
                    "ground_truth": choice["ground_truth"]})
    return out


def _evaluate_image_batch(entry: ModelEntry, batch: list[int], data: list[Transition], config: RunConfig,
                          out: Path, scorers: ImageScorers) -> list[dict]:
    options = {"num_samples": 1, "temperature": config.temperature, "top_p": config.top_p,
               "max_new_tokens": config.max_new_tokens, "batch_size": config.batch_size}
    labelled = [i for i in batch if data[i].action is not None]
    records = {i: {"method": entry.method, "index": i, "episode_id": data[i].episode_id, "step": data[i].step,
                   "fwm": None, "idm": None} for i in batch}
    if not labelled:
        return [records[i] for i in batch]
    seed_everything(config.seed * 1_000_003 + labelled[0])
    states, truths = [data[i].state for i in labelled], [data[i].next_state for i in labelled]
    texts = _check_texts(entry.predictor.predict_next_states(states, [data[i].action for i in labelled], **options),
                         len(labelled), entry.method, "predict_next_states")
    predicted = [entry.predictor.text_to_image(text) for text in texts]
    scores = [image_metrics.pixel_metrics(p, y) for p, y in zip(predicted, truths, strict=True)]
    scores = [{f"fwm/{k}": v for k, v in row.items()} for row in scores]
    if scorers.clip is not None:
        captions = [(data[i].meta.get("src_img_caption"), data[i].meta.get("tgt_img_caption")) for i in labelled]
        clip = scorers.clip.sample_scores(states, predicted, truths, [c[0] for c in captions], [c[1] for c in captions])
        scores = [dict(row, **extra) for row, extra in zip(scores, clip, strict=True)]
    if scorers.dino is not None:
        scores = [dict(row, **{"fwm/dino": float(v)})
                  for row, v in zip(scores, scorers.dino.similarity(predicted, truths), strict=True)]
    for i, text, image, row in zip(labelled, texts, predicted, scores, strict=True):
        save_png(out / prediction_path(entry.method, i), image)
        records[i]["fwm"] = {"input_action": data[i].action, "prediction": text,
                             "image": prediction_path(entry.method, i), "truth": None, "scores": row}
    choice = [i for i in labelled if has_candidates(data[i])]
    generate = [i for i in labelled if i not in choice]
    if choice:
        for i, picked in zip(choice, choose_candidates(entry, [data[i] for i in choice], config.batch_size),
                             strict=True):
            accuracy = picked.pop("accuracy")
            records[i]["idm"] = {**picked, "truth": data[i].action, "scores": {
                "idm/accuracy": accuracy, **metrics.idm_sample_scores(picked["prediction"], data[i].action)}}
    if generate:
        out_texts = _check_texts(entry.predictor.predict_actions([data[i].state for i in generate],
                                                                 [data[i].next_state for i in generate], **options),
                                 len(generate), entry.method, "predict_actions")
        for i, text in zip(generate, out_texts, strict=True):
            records[i]["idm"] = {"prediction": text, "truth": data[i].action,
                                 "scores": metrics.idm_sample_scores(text, data[i].action)}
    return [records[i] for i in batch]


def _repair_images(records: list[dict[str, Any]], entries: Sequence[ModelEntry], out: Path) -> None:
    """Decode again (from the line's codec text) predicted pictures that are missing or unreadable."""
    by_method = {e.method: e for e in entries}
    for r in records:
        fwm = r.get("fwm")
        if not fwm or r["method"] not in by_method or readable_png(out / fwm["image"]):
            continue
        save_png(out / fwm["image"], by_method[r["method"]].predictor.text_to_image(fwm["prediction"]))


def image_grid(data: list[Transition], records: list[dict[str, Any]], methods: Sequence[str], out: Path,
               rows: int) -> dict[str, Any]:
    """The card's `images` block: the first `rows` labelled transitions with their source, truth and
    each method's predicted image (paths relative to the run folder; source and truth are written here)."""
    by_key = {(r["method"], r["index"]): r for r in records}
    grid = []
    for i, t in enumerate(data):
        if len(grid) >= rows:
            break
        if t.action is None:
            continue
        for kind, image in (("source", t.state), ("truth", t.next_state)):
            save_png(out / input_path(kind, i), image)
        predictions = {m: (by_key[m, i]["fwm"] or {}).get("image") for m in methods}
        grid.append({"index": i, "episode_id": t.episode_id, "step": t.step, "action": t.action,
                     "source": input_path("source", i), "truth": input_path("truth", i), "predictions": predictions})
    return {"grid": grid}


def _manifest(config: RunConfig, bench: Benchmark, data_hash: str, n: int, entries: Sequence[ModelEntry]):
    return {"benchmark": bench.name, "benchmark_version": bench.version, "split": config.split,
            "limit": config.limit, "n_transitions": n, "data_hash": data_hash, "seed": config.seed,
            "decoding": config.decoding(),
            "models": {e.method: {"model": e.model_id, "sha256": e.sha256} for e in entries},
            # the scorers decide which scores the sample lines hold: part of the identity of an image run
            **({"image_scorers": {"clip": config.clip_model, "dino": config.dino_model}}
               if bench.modality == "image" else {})}


def _check_manifest(path: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Write run.json, or check it against an earlier run's and add this run's methods; returns its content."""
    if not path.exists():
        write_atomic(path, dumps(manifest))
        return manifest
    try:
        old = json.loads(path.read_text())
    except ValueError as exc:
        raise DataError(f"corrupt run manifest ({exc})", path=path) from None
    for key, value in manifest.items():
        if key == "models":
            for method, ident in value.items():
                before = old.get("models", {}).get(method)
                if before is not None and before != ident:
                    raise SwirlError(f"{path.parent} holds a run of method {method!r} with other weights "
                                     f"({before} != {ident}); choose another --output")
        elif old.get(key) != value:
            raise SwirlError(f"{path.parent} holds a different run ({key}: {old.get(key)!r} != {value!r}); "
                             "choose another --output")
    merged = dict(old, models={**old.get("models", {}), **manifest["models"]})
    if merged != old:
        write_atomic(path, dumps(merged))
    return merged


def evaluate(bench: Benchmark, entries: Sequence[ModelEntry], config: RunConfig, output_dir: str | Path, *,
             progress: ProgressFn | None = None, scorers: ImageScorers | None = None) -> dict[str, Any]:
    """Run every method over the split (resuming from `output_dir`), write the card, return report.json's data."""
    started = time.perf_counter()
    if not entries:
        raise SwirlError("no methods to evaluate")
    methods = [e.method for e in entries]
    if len(set(methods)) != len(methods):
        raise SwirlError(f"method names must be unique, got {methods}")
    if not bench.labelled:
        raise SwirlError("the report card needs the true actions: open the benchmark with labelled=True")
    image = bench.modality == "image"
    if image:
        for e in entries:
            if getattr(e.predictor, "codec", True) is None or not callable(getattr(e.predictor, "text_to_image", None)):
                raise SwirlError(f"method {e.method!r}: {bench.name!r} has image states and this model has no image "
                                 f"codec; train one with `swirl-eval train --bench {bench.name} --method sft`")
    elif bench.modality != "text":
        raise SwirlError(f"benchmark {bench.name!r} has {bench.modality} states, which report cards do not score")
    if config.batch_size < 1:
        raise SwirlError(f"--batch-size must be >= 1, got {config.batch_size}")
    data = list(bench.transitions(config.split, limit=config.limit))
    problems = bench.load_problems()
    if problems and config.strict:
        raise DataError(f"{len(problems)} damaged record(s) skipped by the loader, first: {problems[0]}")
    if not data:
        raise SwirlError(f"split {config.split!r} of {bench.name!r} has no transitions")
    if all(t.action is None for t in data):
        raise SwirlError(f"split {config.split!r} of {bench.name!r} has no actions to condition the FWM on")
    data_hash = bench.data_hash(config.split, limit=config.limit)

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    run_manifest = _check_manifest(out / MANIFEST_FILE, _manifest(config, bench, data_hash, len(data), entries))
    samples_path = out / SAMPLES_FILE
    existing = read_samples(samples_path)
    done = {(r["method"], r["index"]) for r in existing}
    resumed = sum(1 for r in existing if r["method"] in methods)
    if image and scorers is None:
        scorers = ImageScorers.load(config)

    with open(samples_path, "a", encoding="utf-8") as handle:
        for entry in entries:
            pending = [i for i in range(len(data)) if (entry.method, i) not in done]
            finished = len(data) - len(pending)
            if progress:
                progress(entry.method, finished, len(data))
            for batch in _batches(pending, config.batch_size):
                records = (_evaluate_image_batch(entry, batch, data, config, out, scorers) if image
                           else _evaluate_batch(entry, batch, data, config, getattr(bench, "execute", None),
                                                getattr(bench, "parse_state", None)))
                handle.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
                handle.flush()
                os.fsync(handle.fileno())
                finished += len(batch)
                if progress:
                    progress(entry.method, finished, len(data))

    by_key = {(r["method"], r["index"]): r for r in read_samples(samples_path)}
    ordered = [by_key[(m, i)] for m in methods for i in range(len(data))]
    for r in ordered:
        if r["episode_id"] != data[r["index"]].episode_id or r["step"] != data[r["index"]].step:
            raise DataError("sample does not match the benchmark's transition; remove the folder to start over",
                            path=samples_path, record=f"{r['method']}#{r['index']}")
    extra = [r for k, r in by_key.items() if k[0] not in methods]  # other methods run earlier into this folder
    write_atomic(samples_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ordered + extra))
    # The card covers the folder: methods evaluated here earlier (every transition done) stay on it.
    earlier = [m for m in dict.fromkeys(r["method"] for r in extra)
               if all((m, i) in by_key for i in range(len(data)))]
    ordered += [by_key[(m, i)] for m in earlier for i in range(len(data))]
    identities = {e.method: e.identity() for e in entries}
    stored = run_manifest["models"]
    identities.update({m: {"model": stored.get(m, {}).get("model", "?"), "checkpoint": None,
                           "sha256": stored.get(m, {}).get("sha256"), "details": {"evaluated_earlier": True}}
                       for m in earlier})
    methods = [*methods, *earlier]

    results = {m: _aggregate([r for r in ordered if r["method"] == m], config, image) for m in methods}
    images, examples = None, None
    if image:
        _repair_images([r for r in ordered if r["method"] not in earlier], entries, out)
        images = image_grid(data, ordered, methods, out, config.grid_rows)
    else:
        examples = text_examples(data, ordered, methods, config.example_rows)
    scorer_config = {"clip_model": config.clip_model, "dino_model": config.dino_model} if image else {}
    report = build_report(
        benchmark={"name": bench.name, "version": bench.version, "split": config.split, "limit": config.limit,
                   "n_transitions": len(data), "data_hash": data_hash, "modality": bench.modality,
                   "primary_metric": bench.primary_metric,
                   **({"load_problems": {"count": len(problems), "first": problems[:PROBLEMS_SHOWN]}}
                      if problems else {})},
        config={"batch_size": config.batch_size, **config.decoding(),
                "bootstrap_samples": config.bootstrap_samples, **scorer_config},
        seeds={"run": config.seed, "bootstrap": config.seed},
        models=identities,
        results=results, diagnostics=method_diagnostics(ordered, methods), command=config.command,
        wall_time_s=time.perf_counter() - started, resumed_samples=resumed, images=images, examples=examples)
    write_report(report, out)
    return report


def _aggregate(records: list[dict[str, Any]], config: RunConfig, image: bool) -> dict[str, dict[str, Any]]:
    if not image:
        return metrics.aggregate(records, seed=config.seed, n_boot=config.bootstrap_samples)
    # Image FWM lines hold codec text: text metrics would score token strings, so only the IDM gets them.
    text = metrics.aggregate([dict(r, fwm=None) for r in records], seed=config.seed, n_boot=config.bootstrap_samples)
    return {**image_metrics.aggregate(records), **text}
