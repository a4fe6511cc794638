"""Finding, identifying and loading the models a report card evaluates (swirl_core is imported lazily)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from swirl_envs.errors import SwirlError

from .runner import ModelEntry

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


class VerifiedPredictor:
    """Test-time verification (`verify@N`): the FWM's best of N samples under the IDM; the IDM as it is."""

    def __init__(self, pair: Any, n: int):
        self.pair, self.n = pair, n

    def predict_next_states(self, states, actions, *, max_new_tokens=None, batch_size=32, **_options) -> list[str]:
        from swirl_core.baselines import verify_next_states

        # sampling settings are the paper's FWM ones (verify_next_states' defaults); the seed is set per batch
        return verify_next_states(self.pair, states, actions, n=self.n, max_new_tokens=max_new_tokens,
                                  batch_size=batch_size)

    def predict_actions(self, states, next_states, **options) -> list[str]:
        return self.pair.predict_actions(states, next_states, **options)

    # image benchmarks decode with the pair's codec; candidate choice scores with its IDM
    @property
    def codec(self) -> Any:
        return self.pair.codec

    def text_to_image(self, text: str) -> Any:
        return self.pair.text_to_image(text)

    def score_actions(self, *args, **options) -> Any:
        return self.pair.score_actions(*args, **options)


def verify_n(method: str) -> int | None:
    """N of a `verify@N` method name, else None."""
    head, sep, tail = method.partition("@")
    if head != "verify" or not sep:
        return None
    if not tail.isdigit() or int(tail) < 1:
        raise SwirlError(f"method {method!r}: verification is named verify@N with N >= 1, e.g. verify@8")
    return int(tail)


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


# ------------------------------------------------------------------ image benchmarks: a codec for a fresh pair

INIT_PAIR_DIR = "init"  # inside a `train` output: the codec-equipped pair a from-scratch image run starts from
CODEC_FIT_TRANSITIONS = 300  # transitions (x2 images) the codebook and the tokenizer are fitted on


def image_init_pair(transitions: list, config: Any, output: Path, *, codec_path: str | None = None,
                    codebook_size: int = 256, image_size: int = 64, user_keys: set[str] = frozenset(),
                    log=print) -> tuple[Path, Any]:
    """A fresh pair that reads and writes images as codec text, saved under `output/init/` (reused when
    present, so a resumed run starts from the same codebook and tokenizer). Returns (folder, config), the
    config with the prompt budget raised to hold two images (unless the user set it: then it must fit).

    The codec is loaded from `codec_path` or fitted on the training images (patch 4, k-means); the tiny
    tokenizer is trained on the images' codec text and the actions, so that every code is about one token.
    """
    from swirl_core.models import WorldModelPair, build_tiny_pair

    folder = output / INIT_PAIR_DIR
    if (folder / PAIR_FILE).is_file():
        pair = WorldModelPair.load(folder)
        if pair.codec is None or not getattr(pair.codec, "fitted", True):
            raise SwirlError(f"{folder}: the saved initial pair has no fitted image codec; remove the folder")
        return folder, _fit_budget(pair, transitions, config, user_keys)
    from swirl_core.image_codec import CodecConfig, ImageCodec, transition_images

    sample = transitions[:CODEC_FIT_TRANSITIONS]
    if codec_path is not None:
        codec = ImageCodec.load(codec_path)
    else:
        codec = ImageCodec(CodecConfig(image_size=(image_size, image_size), codebook_size=codebook_size, iters=10,
                                       seed=config.seed))
        log(f"fitting a {codebook_size}-code image codec ({image_size}x{image_size}, patch {codec.config.patch}) "
            f"on {2 * len(sample)} training images")
        codec.fit(transition_images(sample))
    texts = [codec.image_to_text(image) for image in transition_images(sample)]
    texts += [t.action for t in transitions if isinstance(t.action, str)]
    options = {"max_length": config.max_length, "max_target_tokens": config.max_target_tokens}
    if config.model == "tiny":
        # Byte-level BPE splits "t123" into letter and digit pieces: a code is 2-3 tokens. Room for two
        # images at 3 tokens per code gives the tiny model enough positions (_fit_budget sets the real budget).
        options["max_length"] = max(config.max_length, 2 * (3 * codec.config.tokens_per_image + 16) + 64)
        tiny = {k: getattr(config.tiny, k) for k in config.tiny.__dataclass_fields__}
        pair = build_tiny_pair(texts, shared=config.shared, seed=config.seed, codec=codec, **options, **tiny)
    else:
        pair = WorldModelPair.load(config.model, config.idm_model, shared=config.shared, codec=codec, **options)
    config = _fit_budget(pair, transitions, config, user_keys)
    pair.max_length, pair.max_target_tokens = config.max_length, config.max_target_tokens
    pair.save(folder)
    return folder, config


def _fit_budget(pair: Any, transitions: list, config: Any, user_keys: set[str]) -> Any:
    """The trainer config with max_target_tokens >= one image's tokens and max_length >= two images plus an
    action: a cut image would teach the FWM truncated pictures and hide part of X from the IDM."""
    from swirl_core.config import apply_overrides

    sample = transitions[:20]
    image_tokens = max(len(pair.encode("fwm", pair.state_text(t.next_state))) + 1 for t in sample)  # + eos
    action_tokens = max((len(pair.encode("idm", t.action)) for t in sample if isinstance(t.action, str)), default=32)
    need = {"max_target_tokens": image_tokens + 8,
            "max_length": 2 * (image_tokens + 8) + max(action_tokens + 16, 48)}
    limit = getattr(pair.fwm.config, "max_position_embeddings", None)
    if limit is not None and need["max_length"] > limit:
        raise SwirlError(f"two images take {need['max_length']} tokens, more than the model's {limit} positions; "
                         "use a smaller --codec-image-size")
    changes = {}
    for key, value in need.items():
        if getattr(config, key) >= value:
            continue
        if key in user_keys:
            raise SwirlError(f"--set {key}={getattr(config, key)} is too small for image states: "
                             f"needs at least {value} (one image is {image_tokens} tokens)")
        changes[key] = value
    return apply_overrides(config, changes) if changes else config
