"""A fresh pair for an image benchmark: an image codec (fitted or loaded), a tiny tokenizer that knows its
codes, and a prompt budget that holds two pictures; what `swirl-eval train` and the defaults script start
image runs from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from swirl_envs.errors import SwirlError

from .checkpoints import PAIR_FILE

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
