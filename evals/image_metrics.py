"""Image metrics: pixel scores (L1, L2, PSNR, SSIM), ByteMorph's CLIP scores, DINO similarity, and the
candidate-choice accuracy of WorldPrediction.

Pixel scores take PIL images or HxWx3 uint8 arrays; a prediction of another size is resized to the
reference's size first. L1 and L2 are the mean absolute and mean squared error on [0, 1] intensities
(as in MagicBrush-style edit evaluations); PSNR is in dB with peak 1.0; SSIM follows Wang et al. (2004):
Gaussian window (11 taps, sigma 1.5), K1 = 0.01, K2 = 0.03, valid positions only, averaged over
channels.

The CLIP and DINO scores load a model given as a hub id or a local folder (`transformers`
CLIPModel/CLIPProcessor, AutoModel/AutoImageProcessor). ByteMorph's four CLIP scores, with E the
normalised CLIP embedding:

    clip_sim_txt = cos(E(generated), E(target caption))
    clip_sim_img = cos(E(source), E(generated))
    clip_dir_txt = cos(E(generated) - E(source), E(target caption) - E(source caption))
    clip_dir_img = cos(E(target) - E(source), E(generated) - E(source))

DINO similarity is the cosine of the generated and target images' DINO features (the CLS token).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

ImageLike = Any  # PIL.Image.Image | np.ndarray (HxWx3 uint8)


def to_uint8(image: ImageLike, like: np.ndarray | None = None) -> np.ndarray:
    """HxWx3 uint8 RGB; resized (bicubic) to `like`'s height and width when given."""
    if not isinstance(image, Image.Image):
        array = np.asarray(image)
        if array.ndim == 2:
            array = np.repeat(array[..., None], 3, axis=-1)
        image = Image.fromarray(array.astype(np.uint8))
    image = image.convert("RGB")
    if like is not None and image.size != (like.shape[1], like.shape[0]):
        image = image.resize((like.shape[1], like.shape[0]), Image.Resampling.BICUBIC)
    return np.asarray(image)


def to_float(image: ImageLike, like: np.ndarray | None = None) -> np.ndarray:
    """HxWx3 float64 in [0, 1]; resized (bicubic) to `like`'s height and width when given."""
    return to_uint8(image, like).astype(np.float64) / 255.0


def _pair(prediction: ImageLike, reference: ImageLike) -> tuple[np.ndarray, np.ndarray]:
    ref = to_float(reference)
    return to_float(prediction, like=ref), ref


def l1(prediction: ImageLike, reference: ImageLike) -> float:
    pred, ref = _pair(prediction, reference)
    return float(np.abs(pred - ref).mean())


def l2(prediction: ImageLike, reference: ImageLike) -> float:
    pred, ref = _pair(prediction, reference)
    return float(((pred - ref) ** 2).mean())


def psnr(prediction: ImageLike, reference: ImageLike, max_db: float = 100.0) -> float:
    """swirl_core's PSNR (identical images: 100 dB) of the prediction at the reference's size, capped at
    `max_db` rather than growing without bound, so means stay finite."""
    from swirl_core.image_codec import psnr as image_psnr

    ref = to_uint8(reference)
    return min(max_db, image_psnr(to_uint8(prediction, like=ref), ref))


def _gaussian(size: int, sigma: float) -> np.ndarray:
    x = np.arange(size) - (size - 1) / 2
    kernel = np.exp(-(x ** 2) / (2 * sigma ** 2))
    return kernel / kernel.sum()


def _filter_valid(channel: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation of a 2-D array with a 1-D kernel along both axes."""
    k = len(kernel)
    rows = sum(kernel[i] * channel[i:channel.shape[0] - k + 1 + i, :] for i in range(k))
    return sum(kernel[i] * rows[:, i:rows.shape[1] - k + 1 + i] for i in range(k))


def ssim(prediction: ImageLike, reference: ImageLike, *, window: int = 11, sigma: float | None = 1.5,
         k1: float = 0.01, k2: float = 0.03) -> float:
    """Mean SSIM. `sigma=None` uses a uniform window; images smaller than the window use the largest
    odd window that fits."""
    pred, ref = _pair(prediction, reference)
    size = min(window, pred.shape[0], pred.shape[1])
    size -= 1 - size % 2  # odd
    kernel = np.full(size, 1.0 / size) if sigma is None else _gaussian(size, sigma)
    c1, c2 = (k1 * 1.0) ** 2, (k2 * 1.0) ** 2
    scores = []
    for ch in range(pred.shape[2]):
        x, y = pred[..., ch], ref[..., ch]
        mx, my = _filter_valid(x, kernel), _filter_valid(y, kernel)
        sxx = _filter_valid(x * x, kernel) - mx * mx
        syy = _filter_valid(y * y, kernel) - my * my
        sxy = _filter_valid(x * y, kernel) - mx * my
        value = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
        scores.append(value.mean())
    return float(np.mean(scores))


def pixel_metrics(prediction: ImageLike, reference: ImageLike) -> dict[str, float]:
    return {"l1": l1(prediction, reference), "l2": l2(prediction, reference),
            "psnr": psnr(prediction, reference), "ssim": ssim(prediction, reference)}


# ---------------------------------------------------------------- CLIP / DINO


def _features(output: Any) -> Any:
    """transformers 4 returns the projected features as a tensor, 5 as an output object."""
    import torch

    if isinstance(output, torch.Tensor):
        return output
    return output.pooler_output


def _normalise(x: Any) -> Any:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _cos(a: Any, b: Any) -> Any:
    return (_normalise(a) * _normalise(b)).sum(-1)


@dataclass
class ClipScorer:
    """ByteMorph's CLIP scores. Build with `ClipScorer.load("openai/clip-vit-base-patch32")` (or a local
    folder), or pass a CLIPModel and its processor."""

    model: Any
    processor: Any
    device: str = "cpu"

    @classmethod
    def load(cls, name_or_path: str, device: str = "cpu") -> ClipScorer:
        from transformers import CLIPModel, CLIPProcessor

        model = CLIPModel.from_pretrained(name_or_path).to(device).eval()
        return cls(model, CLIPProcessor.from_pretrained(name_or_path), device)

    def embed_images(self, images: Sequence[ImageLike]) -> Any:
        import torch

        pixels = [to_float(i) for i in images]
        inputs = self.processor(images=[Image.fromarray((p * 255).round().astype(np.uint8)) for p in pixels],
                                return_tensors="pt")
        with torch.no_grad():
            return _normalise(_features(self.model.get_image_features(
                pixel_values=inputs["pixel_values"].to(self.device))).float())

    def embed_texts(self, texts: Sequence[str]) -> Any:
        import torch

        # Truncate to the text tower's positions (CLIP: 77), not the tokenizer's often unset model_max_length.
        limit = getattr(getattr(self.model.config, "text_config", None), "max_position_embeddings", 77)
        inputs = self.processor(text=list(texts), return_tensors="pt", padding=True, truncation=True,
                                max_length=limit)
        with torch.no_grad():
            return _normalise(_features(self.model.get_text_features(
                **{k: v.to(self.device) for k, v in inputs.items()})).float())

    def sample_scores(self, sources: Sequence[ImageLike], generated: Sequence[ImageLike],
                      targets: Sequence[ImageLike], source_captions: Sequence[str | None],
                      target_captions: Sequence[str | None]) -> list[dict[str, float | None]]:
        """Per example, the four scores keyed `fwm/clip_*`; the two caption scores are None where an
        example lacks either caption (only ByteMorph has them)."""
        n = len(generated)
        if not all(len(x) == n for x in (sources, targets, source_captions, target_captions)):
            raise ValueError("sources, generated, targets and both caption lists must have the same length")
        src, gen, tgt = self.embed_images(sources), self.embed_images(generated), self.embed_images(targets)
        out: list[dict[str, float | None]] = [
            {"fwm/clip_sim_txt": None, "fwm/clip_sim_img": float(a), "fwm/clip_dir_txt": None,
             "fwm/clip_dir_img": float(b)} for a, b in zip(_cos(src, gen).tolist(), _cos(tgt - src, gen - src).tolist(),
                                                         strict=True)]
        captioned = [i for i in range(n) if source_captions[i] and target_captions[i]]
        if captioned:
            src_txt = self.embed_texts([str(source_captions[i]) for i in captioned])
            tgt_txt = self.embed_texts([str(target_captions[i]) for i in captioned])
            sim = _cos(gen[captioned], tgt_txt).tolist()
            direction = _cos(gen[captioned] - src[captioned], tgt_txt - src_txt).tolist()
            for j, i in enumerate(captioned):
                out[i]["fwm/clip_sim_txt"], out[i]["fwm/clip_dir_txt"] = float(sim[j]), float(direction[j])
        return out

    def scores(self, sources: Sequence[ImageLike], generated: Sequence[ImageLike], targets: Sequence[ImageLike],
               source_captions: Sequence[str], target_captions: Sequence[str]) -> dict[str, list[float]]:
        """The four scores for each example (lists aligned with the inputs)."""
        n = len(generated)
        if not all(len(x) == n for x in (sources, targets, source_captions, target_captions)):
            raise ValueError("sources, generated, targets and both caption lists must have the same length")
        src, gen, tgt = self.embed_images(sources), self.embed_images(generated), self.embed_images(targets)
        src_txt, tgt_txt = self.embed_texts(source_captions), self.embed_texts(target_captions)
        return {"clip_sim_txt": _cos(gen, tgt_txt).tolist(), "clip_sim_img": _cos(src, gen).tolist(),
                "clip_dir_txt": _cos(gen - src, tgt_txt - src_txt).tolist(),
                "clip_dir_img": _cos(tgt - src, gen - src).tolist()}


@dataclass
class DinoScorer:
    """Cosine similarity of DINO (v1 ViT or v2) CLS features, e.g. `DinoScorer.load("facebook/dinov2-small")`."""

    model: Any
    processor: Any
    device: str = "cpu"

    @classmethod
    def load(cls, name_or_path: str, device: str = "cpu") -> DinoScorer:
        from transformers import AutoImageProcessor, AutoModel

        return cls(AutoModel.from_pretrained(name_or_path).to(device).eval(),
                   AutoImageProcessor.from_pretrained(name_or_path), device)

    def embed(self, images: Sequence[ImageLike]) -> Any:
        import torch

        pil = [Image.fromarray((to_float(i) * 255).round().astype(np.uint8)) for i in images]
        inputs = self.processor(images=pil, return_tensors="pt")
        with torch.no_grad():
            out = self.model(pixel_values=inputs["pixel_values"].to(self.device))
        return out.last_hidden_state[:, 0].float()

    def similarity(self, generated: Sequence[ImageLike], targets: Sequence[ImageLike]) -> list[float]:
        if len(generated) != len(targets):
            raise ValueError("generated and targets must have the same length")
        return _cos(self.embed(generated), self.embed(targets)).tolist()


# ---------------------------------------------------------------- candidate choice (WorldPrediction)

ScoreFn = Callable[[Any, Any, str], float]


def choose(state: Any, next_state: Any, candidates: Sequence[str], score: ScoreFn) -> tuple[list[int], list[float]]:
    """Indices of the best-scoring candidates (all of them when tied) and every candidate's score."""
    values = [float(score(state, next_state, c)) for c in candidates]
    if not values:
        raise ValueError("no candidates to choose from")
    finite = [v for v in values if np.isfinite(v)]
    best = max(finite) if finite else None
    return [i for i, v in enumerate(values) if best is not None and v == best], values


def candidate_accuracy(transitions: Iterable[Any], score: ScoreFn) -> dict[str, Any]:
    """WorldPrediction accuracy: for each transition, score every candidate in `meta["candidates"]` with
    `score(state, next_state, candidate)` (e.g. an IDM log-likelihood) and pick the argmax.

    A tie among k candidates counts 1/k if the right one is among them (the expected accuracy of
    breaking ties at random), so a constant scorer scores chance, not the rate of ground truth 0.
    Returns {"accuracy", "n", "chance", "predictions"}; NaN scores never win.
    """
    correct, chance, predictions = 0.0, 0.0, []
    for t in transitions:
        candidates, truth = t.meta["candidates"], int(t.meta["ground_truth"])
        best, values = choose(t.state, t.next_state, candidates, score)
        correct += (1.0 / len(best)) if truth in best else 0.0
        chance += 1.0 / len(candidates)
        predictions.append({"episode_id": t.episode_id, "scores": values, "best": best, "ground_truth": truth})
    n = len(predictions)
    return {"accuracy": correct / n if n else float("nan"), "n": n,
            "chance": chance / n if n else float("nan"), "predictions": predictions}


# ---------------------------------------------------------------- report-card metrics


def _specs() -> dict[str, Any]:
    from .metrics import MetricSpec

    specs = [
        MetricSpec("fwm/psnr", "mean", "PSNR (dB, peak 1.0, capped at 100) of the decoded predicted vs true next image", "dB"),
        MetricSpec("fwm/ssim", "mean", "SSIM (Gaussian 11-tap window, sigma 1.5) of predicted vs true next image", "0-1"),
        MetricSpec("fwm/l1", "mean", "mean absolute pixel error on [0, 1] intensities (lower is better)", "0-1",
                   higher_is_better=False),
        MetricSpec("fwm/l2", "mean", "mean squared pixel error on [0, 1] intensities (lower is better)", "0-1",
                   higher_is_better=False),
        MetricSpec("fwm/clip_sim_txt", "mean", "CLIP cosine of predicted image and target caption (ByteMorph)", "cosine"),
        MetricSpec("fwm/clip_sim_img", "mean", "CLIP cosine of source and predicted image (ByteMorph)", "cosine"),
        MetricSpec("fwm/clip_dir_txt", "mean", "CLIP cosine of image edit direction and caption direction (ByteMorph)",
                   "cosine"),
        MetricSpec("fwm/clip_dir_img", "mean", "CLIP cosine of true and predicted image edit directions (ByteMorph)",
                   "cosine"),
        MetricSpec("fwm/dino", "mean", "cosine of DINO CLS features of predicted and true next image", "cosine"),
        MetricSpec("idm/accuracy", "mean", "the IDM's most likely candidate is the true action (WorldPrediction; a "
                   "k-way tie counts 1/k)", "0-1"),
    ]
    return {s.name: s for s in specs}


METRICS = _specs()  # name -> evals.metrics.MetricSpec, for image report cards


def aggregate(samples: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Metric name -> {value, stderr, n} for the image metrics of sample records: means with the
    analytic standard error std/sqrt(n), as for every other per-sample metric; n == 0 is left out."""
    from .metrics import mean_stderr

    out: dict[str, dict[str, Any]] = {}
    for name in METRICS:
        part = name.split("/", 1)[0]
        values = [s[part]["scores"][name] for s in samples
                  if s.get(part) is not None and s[part]["scores"].get(name) is not None]
        if values:
            out[name] = mean_stderr(values)
    return out
