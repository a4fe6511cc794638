"""A small image tokenizer so that causal-LM world models can read and write pictures as text.

An image is resized to a fixed size (64x64 by default), cut into PxP patches (4x4), and every patch is
replaced by the index of its nearest codebook entry. The codebook is learned by weighted k-means
(k-means++ seeding, Lloyd iterations, in torch) on the patches of training images. Duplicate patches
are merged first: rendered scenes repeat the same flat patches thousands of times, and merging them
makes fitting fast and lets rare patches (a small object's edge) still win a code.

The tokens are rendered as plain text that any tokenizer can learn:

    <img h=16 w=16> t12 t7 t7 ... t301 </img>

`h` and `w` are the token grid; the grid is read row by row. `text_to_image` never fails on model
output: unknown or out-of-range tokens become the padding code (the most frequent patch in training,
usually background), short strings are padded and long ones truncated to the grid.

    codec = ImageCodec(CodecConfig(codebook_size=512)).fit(images)
    text = codec.image_to_text(image)
    picture = codec.text_to_image(text)
    codec.save("ckpt/codec"); codec = ImageCodec.load("ckpt/codec")
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

CONFIG_FILE, CODEBOOK_FILE = "image_codec.json", "codebook.npy"
TOKEN_RE = re.compile(r"(?<![A-Za-z0-9])t(\d+)(?![0-9])")


@dataclass(frozen=True)
class CodecConfig:
    image_size: tuple[int, int] = (64, 64)  # (height, width) every image is resized to
    patch: int = 4  # patch side in pixels: a 64x64 image becomes 16x16 = 256 tokens
    codebook_size: int = 512
    iters: int = 20  # Lloyd iterations after k-means++ seeding
    max_patches: int = 300_000  # distinct patches kept for fitting (a random subset beyond this)
    seed: int = 0
    threads: int = 1  # torch threads while fitting/encoding: the tensors are small, and thread hand-offs
    # cost more than they save (20x slower k-means++ seeding with 2 threads on a busy 2-core machine)

    def __post_init__(self):
        height, width = self.image_size
        if height % self.patch or width % self.patch:
            raise ValueError(f"image_size {self.image_size} must be a multiple of patch {self.patch}")
        if self.codebook_size < 2:
            raise ValueError("codebook_size must be >= 2")

    @property
    def grid(self) -> tuple[int, int]:
        return self.image_size[0] // self.patch, self.image_size[1] // self.patch

    @property
    def tokens_per_image(self) -> int:
        return self.grid[0] * self.grid[1]


def rgb_array(image: Any, size: tuple[int, int]) -> np.ndarray:
    """`image` as uint8 RGB at `size` (height, width): what the codec encodes, and what a decoded picture is
    compared with."""
    if not isinstance(image, Image.Image):
        image = Image.fromarray(np.asarray(image, dtype=np.uint8))
    image = image.convert("RGB")
    height, width = size
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.BOX if image.width >= width else Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.uint8)


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    if n > 0 and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


class ImageCodec:
    """Patch vector-quantiser: image <-> grid of code indices <-> text."""

    def __init__(self, config: CodecConfig | None = None, codebook: np.ndarray | None = None, pad_id: int = 0):
        self.config = config or CodecConfig()
        dim = self.config.patch ** 2 * 3
        if codebook is not None and codebook.shape != (self.config.codebook_size, dim):
            raise ValueError(f"codebook shape {codebook.shape} does not match config "
                             f"({self.config.codebook_size}, {dim})")
        self.codebook = codebook
        self.pad_id = pad_id

    # ------------------------------------------------------------ patches

    def _patches(self, image: Any) -> np.ndarray:
        p, (gh, gw) = self.config.patch, self.config.grid
        pixels = rgb_array(image, self.config.image_size)
        return pixels.reshape(gh, p, gw, p, 3).transpose(0, 2, 1, 3, 4).reshape(gh * gw, p * p * 3)

    def _unpatch(self, patches: np.ndarray) -> np.ndarray:
        p, (gh, gw) = self.config.patch, self.config.grid
        return patches.reshape(gh, gw, p, p, 3).transpose(0, 2, 1, 3, 4).reshape(gh * p, gw * p, 3)

    # ------------------------------------------------------------ fitting

    @property
    def fitted(self) -> bool:
        return self.codebook is not None

    def fit(self, images: Iterable[Any]) -> ImageCodec:
        """Learn the codebook from images (PIL or HxWx3 uint8). Returns self."""
        cfg = self.config
        stacked = [self._patches(image) for image in images]
        if not stacked:
            raise ValueError("fit() needs at least one image")
        unique, counts = np.unique(np.concatenate(stacked), axis=0, return_counts=True)
        rng = np.random.default_rng(cfg.seed)
        if len(unique) > cfg.max_patches:
            keep = rng.choice(len(unique), cfg.max_patches, replace=False, p=counts / counts.sum())
            unique, counts = unique[keep], counts[keep]
        points = torch.from_numpy(unique.astype(np.float32))
        weights = torch.from_numpy(counts.astype(np.float32))
        generator = torch.Generator().manual_seed(cfg.seed)
        with _threads(cfg.threads):
            if len(unique) <= cfg.codebook_size:  # few distinct patches: the codebook is lossless
                centres = torch.cat([points, points[:1].expand(cfg.codebook_size - len(points), -1)])
            else:
                centres = _kmeans(points, weights, cfg.codebook_size, cfg.iters, generator)
            codebook = centres.round().clamp(0, 255).numpy().astype(np.uint8)
            # The padding code stands in for missing tokens: the code used most often is the safest guess.
            assigned = _nearest(points, torch.from_numpy(codebook.astype(np.float32)))
        self.codebook = codebook
        usage = torch.zeros(cfg.codebook_size).index_add_(0, assigned, weights)
        self.pad_id = int(usage.argmax())
        return self

    # ------------------------------------------------------------ ids

    def _need_fit(self) -> np.ndarray:
        if self.codebook is None:
            raise RuntimeError("the codec has no codebook yet: call fit(images) or ImageCodec.load(path)")
        return self.codebook

    def encode(self, image: Any) -> np.ndarray:
        """The (grid_h, grid_w) array of code indices of an image."""
        codebook = self._need_fit()
        patches = torch.from_numpy(self._patches(image).astype(np.float32))
        with _threads(self.config.threads):
            ids = _nearest(patches, torch.from_numpy(codebook.astype(np.float32)))
        return ids.numpy().reshape(self.config.grid)

    def decode(self, ids: Iterable[int] | np.ndarray) -> Image.Image:
        """An image from code indices (any shape, read in order); invalid ids become padding, the
        sequence is padded or truncated to the grid."""
        codebook = self._need_fit()
        flat = np.asarray(ids if isinstance(ids, np.ndarray) else list(ids), dtype=np.int64).ravel()
        n = self.config.tokens_per_image
        flat = np.concatenate([flat[:n], np.full(max(0, n - len(flat)), self.pad_id, dtype=np.int64)])
        flat[(flat < 0) | (flat >= self.config.codebook_size)] = self.pad_id
        return Image.fromarray(self._unpatch(codebook[flat]))

    def reconstruct(self, image: Any) -> Image.Image:
        return self.decode(self.encode(image))

    # ------------------------------------------------------------ text

    def ids_to_text(self, ids: np.ndarray) -> str:
        gh, gw = self.config.grid
        body = " ".join(f"t{int(i)}" for i in np.asarray(ids).ravel())
        return f"<img h={gh} w={gw}> {body} </img>"

    def text_to_ids(self, text: str) -> np.ndarray:
        """Code indices read from text: every `t<number>` in order, padded or truncated to the grid."""
        found = [int(m) if len(m) < 9 else -1 for m in TOKEN_RE.findall(text or "")]
        n = self.config.tokens_per_image
        ids = np.array((found + [self.pad_id] * n)[:n], dtype=np.int64)
        ids[(ids < 0) | (ids >= self.config.codebook_size)] = self.pad_id
        return ids.reshape(self.config.grid)

    def image_to_text(self, image: Any) -> str:
        return self.ids_to_text(self.encode(image))

    def text_to_image(self, text: str) -> Image.Image:
        return self.decode(self.text_to_ids(text))

    def vocabulary(self) -> list[str]:
        """Every token string the codec writes (for adding to an LM tokenizer as whole tokens)."""
        gh, gw = self.config.grid
        return [f"<img h={gh} w={gw}>", "</img>"] + [f"t{i}" for i in range(self.config.codebook_size)]

    # ------------------------------------------------------------ persistence

    def save(self, path: str | Path) -> Path:
        """Write a folder with the config (JSON) and the codebook (.npy)."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        config = dataclasses.asdict(self.config)
        (folder / CONFIG_FILE).write_text(json.dumps({"config": config, "pad_id": self.pad_id}, indent=2))
        np.save(folder / CODEBOOK_FILE, self._need_fit())
        return folder

    @classmethod
    def load(cls, path: str | Path) -> ImageCodec:
        folder = Path(path)
        try:
            saved = json.loads((folder / CONFIG_FILE).read_text())
            raw = saved["config"]
            raw["image_size"] = tuple(raw["image_size"])
            codebook = np.load(folder / CODEBOOK_FILE)
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"{folder}: not a saved image codec ({type(exc).__name__}: {exc})") from None
        return cls(CodecConfig(**raw), codebook.astype(np.uint8), int(saved.get("pad_id", 0)))


# ---------------------------------------------------------------- k-means


def _nearest(points: torch.Tensor, centres: torch.Tensor, chunk: int = 16384) -> torch.Tensor:
    """Index of the nearest centre for every point (squared Euclidean), in chunks to bound memory."""
    c_sq = (centres * centres).sum(1)
    out = []
    for start in range(0, len(points), chunk):
        block = points[start:start + chunk]
        out.append((c_sq[None, :] - 2.0 * block @ centres.T).argmin(1))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def _kmeans(points: torch.Tensor, weights: torch.Tensor, k: int, iters: int, generator: torch.Generator,
            chunk: int = 16384, seed_pool: int = 8192) -> torch.Tensor:
    """Weighted k-means: k-means++ seeding on a weighted sample of at most `seed_pool` points (seeding
    over every point costs k passes), then Lloyd iterations on all points; empty clusters are
    re-seeded at the worst-fit points."""
    pool = points
    if len(points) > seed_pool:
        pool = points[torch.multinomial(weights, seed_pool, replacement=False, generator=generator)]
    pool_sq = (pool * pool).sum(1)
    index = int(torch.randint(len(pool), (1,), generator=generator))
    chosen = [index]
    closest = (pool_sq - 2 * pool @ pool[index] + pool_sq[index]).clamp_min(0)
    for _ in range(1, k):
        total = float(closest.sum())
        index = int(torch.multinomial(closest / total, 1, generator=generator)) if total > 0 else \
            int(torch.randint(len(pool), (1,), generator=generator))
        chosen.append(index)
        closest = torch.minimum(closest, (pool_sq - 2 * pool @ pool[index] + pool_sq[index]).clamp_min(0))
    centre = pool[chosen].clone()
    for _ in range(iters):
        assigned = _nearest(points, centre, chunk)
        totals = torch.bincount(assigned, weights=weights, minlength=k)
        sums = torch.zeros_like(centre).index_add_(0, assigned, points * weights[:, None])
        empty = totals == 0
        centre = torch.where(empty[:, None], centre, sums / totals.clamp_min(1e-9)[:, None])
        if bool(empty.any()):
            error = ((points - centre[assigned]) ** 2).sum(1) * weights
            worst = error.argsort(descending=True)[: int(empty.sum())]
            centre[empty.nonzero().squeeze(1)] = points[worst]
    return centre


# ---------------------------------------------------------------- quality


def psnr(a: Any, b: Any) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 RGB images of the same size (100 dB if identical)."""
    x = np.asarray(a.convert("RGB") if isinstance(a, Image.Image) else a, dtype=np.float64)
    y = np.asarray(b.convert("RGB") if isinstance(b, Image.Image) else b, dtype=np.float64)
    mse = float(((x - y) ** 2).mean())
    return 100.0 if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def reconstruction_psnr(codec: ImageCodec, images: Iterable[Any]) -> float:
    """Mean PSNR between each image (at the codec's size) and its encode-decode reconstruction."""
    scores = [psnr(rgb_array(image, codec.config.image_size), codec.reconstruct(image)) for image in images]
    if not scores:
        raise ValueError("reconstruction_psnr() needs at least one image")
    return float(np.mean(scores))


def transition_images(transitions: Iterable[Any]) -> list[Any]:
    """States and next states of image transitions, for fitting a codec on a benchmark split."""
    images: list[Any] = []
    for t in transitions:
        images.extend([t.state, t.next_state])
    return images


def main(argv: list[str] | None = None) -> None:
    """`python -m swirl_core.image_codec --bench visualphysics`: fit on one split, print the PSNR on another."""
    import argparse

    from swirl_envs import make_benchmark

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--bench", default="visualphysics")
    parser.add_argument("--fit-split", default="train")
    parser.add_argument("--eval-split", default="test")
    parser.add_argument("--fit-limit", type=int, default=300, help="transitions to fit on")
    parser.add_argument("--eval-limit", type=int, default=200, help="transitions to measure on")
    parser.add_argument("--codebook-size", type=int, default=CodecConfig.codebook_size)
    parser.add_argument("--patch", type=int, default=CodecConfig.patch)
    parser.add_argument("--save", help="folder to save the fitted codec to")
    args = parser.parse_args(argv)
    bench = make_benchmark(args.bench)
    codec = ImageCodec(CodecConfig(codebook_size=args.codebook_size, patch=args.patch))
    codec.fit(transition_images(bench.transitions(args.fit_split, limit=args.fit_limit)))
    images = transition_images(bench.transitions(args.eval_split, limit=args.eval_limit))
    print(f"{args.bench}: fit on {args.fit_split}[:{args.fit_limit}], {args.eval_split} PSNR "
          f"{reconstruction_psnr(codec, images):.2f} dB over {len(images)} images")
    if args.save:
        print("saved to", codec.save(args.save))


if __name__ == "__main__":
    main()
