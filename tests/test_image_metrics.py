"""Image metrics against hand-worked values; the CLIP/DINO code paths with tiny random models."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from evals.image_metrics import ClipScorer, DinoScorer, candidate_accuracy, l1, l2, pixel_metrics, psnr, ssim
from swirl_envs import Transition
from swirl_envs.visual.worldprediction import WorldPrediction


def grey(value: int, size: int = 4) -> np.ndarray:
    return np.full((size, size, 3), value, np.uint8)


def test_pixel_errors_hand_worked():
    a, b = grey(0), grey(51)  # 51/255 = 0.2 everywhere
    assert l1(a, b) == pytest.approx(0.2) and l2(a, b) == pytest.approx(0.04)
    assert psnr(a, b) == pytest.approx(10 * math.log10(1 / 0.04))  # 13.979 dB
    half = grey(0)
    half[:2] = 255  # half the pixels off by 1.0
    assert l1(half, grey(0)) == pytest.approx(0.5) and l2(half, grey(0)) == pytest.approx(0.5)
    assert psnr(a, a) == 100.0 and ssim(a, a) == pytest.approx(1.0)
    big = Image.fromarray(grey(51, 8))  # a prediction of another size is resized to the reference's
    assert l1(big, a) == pytest.approx(0.2)


def test_ssim_hand_worked():
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    # Window 1 (the largest odd size that fits a 2x2 image): each pixel alone, zero variances, so only
    # the luminance term (2 mx my + c1) / (mx^2 + my^2 + c1) is left; pixel pairs (0,0) (1,0) (0,1) (1,1).
    x = np.array([[0, 255], [0, 255]], np.uint8)
    y = np.array([[0, 0], [255, 255]], np.uint8)
    assert ssim(x, y, sigma=None) == pytest.approx(np.mean([1.0, c1 / (1 + c1), c1 / (1 + c1), 1.0]))
    # One 3x3 uniform window over the whole image: x has its last column at 1, y its last row.
    # mu = 1/3, var = 1/3 - 1/9 = 2/9, cov = E[xy] - mu^2 = 1/9 - 1/9 = 0.
    x3 = np.zeros((3, 3), np.uint8)
    x3[:, 2] = 255
    y3 = x3.T.copy()
    mu, var = 1 / 3, 2 / 9
    expected = ((2 * mu * mu + c1) * (0 + c2)) / ((2 * mu * mu + c1) * (2 * var + c2))
    assert ssim(x3, y3, window=3, sigma=None) == pytest.approx(expected)  # 0.0199
    assert ssim(x3, x3) == pytest.approx(1.0) and ssim(x3, 255 - x3) < 0
    assert set(pixel_metrics(x3, y3)) == {"l1", "l2", "psnr", "ssim"}


def test_ssim_matches_scikit_image():
    """Against scikit-image's reference: Gaussian weights (sigma 1.5, 11 taps), population covariance, data
    range 1, channels averaged; its border crop keeps the same valid positions as ours."""
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(0)
    for shape in ((32, 32, 3), (40, 23, 3)):
        x = rng.integers(0, 256, shape, dtype=np.uint8)
        y = np.clip(x.astype(int) + rng.integers(-40, 41, shape), 0, 255).astype(np.uint8)
        reference = metrics.structural_similarity(x / 255.0, y / 255.0, gaussian_weights=True, sigma=1.5,
                                                  use_sample_covariance=False, data_range=1.0, channel_axis=-1)
        assert ssim(y, x) == pytest.approx(reference, abs=1e-9)
        assert 0.2 < reference < 0.99  # a real, partial similarity, not a trivial 0 or 1


def tiny_clip(tmp_path):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    vocab = {c: i for i, c in enumerate("abcdefghijklmnopqrstuvwxyz")}
    vocab.update({f"{c}</w>": 26 + i for i, c in enumerate("abcdefghijklmnopqrstuvwxyz")})
    vocab.update({"<|startoftext|>": 52, "<|endoftext|>": 53})
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"))
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    config = CLIPConfig(
        text_config={"vocab_size": 54, "hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "max_position_embeddings": 40},
        vision_config={"image_size": 32, "patch_size": 8, "hidden_size": 32, "intermediate_size": 37,
                       "num_hidden_layers": 1, "num_attention_heads": 2}, projection_dim=16)
    import torch

    torch.manual_seed(0)
    folder = tmp_path / "tiny-clip"
    CLIPModel(config).save_pretrained(folder)
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def test_clip_scores_code_path_with_a_tiny_random_model(tmp_path):
    # A randomly initialised model proves the code path only; its numbers mean nothing.
    scorer = ClipScorer.load(str(tiny_clip(tmp_path)))
    rng = np.random.default_rng(0)
    src, gen, tgt = ([rng.integers(0, 256, (24, 24, 3), dtype=np.uint8) for _ in range(2)] for _ in range(3))
    scores = scorer.scores(src, gen, tgt, ["a red cube", "a blue sphere"], ["a red cube left", "a sphere"])
    assert set(scores) == {"clip_sim_txt", "clip_sim_img", "clip_dir_txt", "clip_dir_img"}
    assert all(len(v) == 2 and all(-1.0 - 1e-6 <= x <= 1.0 + 1e-6 for x in v) for v in scores.values())
    same = scorer.scores(src, src, src, ["a"] * 2, ["b"] * 2)
    assert same["clip_sim_img"] == pytest.approx([1.0, 1.0], abs=1e-5)  # cos(E(src), E(src))
    # The direction scores follow from the embeddings exactly as defined.
    e = {k: scorer.embed_images(v) for k, v in (("src", src), ("gen", gen), ("tgt", tgt))}
    d1, d2 = e["tgt"] - e["src"], e["gen"] - e["src"]
    expected = ((d1 / d1.norm(dim=-1, keepdim=True)) * (d2 / d2.norm(dim=-1, keepdim=True))).sum(-1)
    assert scores["clip_dir_img"] == pytest.approx(expected.tolist(), abs=1e-5)
    with pytest.raises(ValueError, match="same length"):
        scorer.scores(src, gen, tgt[:1], ["a"] * 2, ["b"] * 2)


def test_dino_similarity_code_path_with_a_tiny_random_model(tmp_path):
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    folder = tmp_path / "tiny-dino"
    Dinov2Model(Dinov2Config(image_size=32, patch_size=8, hidden_size=32, intermediate_size=37,
                             num_hidden_layers=1, num_attention_heads=2)).save_pretrained(folder)
    BitImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    scorer = DinoScorer.load(str(folder))
    images = [grey(10, 40), grey(200, 40)]
    values = scorer.similarity(images, images)
    assert values == pytest.approx([1.0, 1.0], abs=1e-5)
    assert -1.0 <= scorer.similarity(images[:1], images[1:])[0] <= 1.0


def test_candidate_accuracy_argmax_and_ties():
    def t(truth: int, candidates: list[str]) -> Transition:
        return Transition(grey(0), grey(1), None, f"e{truth}", 0, {"candidates": candidates, "ground_truth": truth})

    data = [t(0, ["push", "lift", "drop"]), t(2, ["push", "lift", "drop"]), t(1, ["push", "lift", "drop"])]
    oracle = candidate_accuracy(data, lambda s, n, c: 1.0 if c == "drop" else 0.0)
    assert oracle["accuracy"] == pytest.approx(1 / 3) and oracle["n"] == 3 and oracle["predictions"][1]["best"] == [2]
    constant = candidate_accuracy(data, lambda s, n, c: 0.0)  # every candidate tied: chance, not "always 0"
    assert constant["accuracy"] == pytest.approx(1 / 3) == constant["chance"]
    nan = candidate_accuracy(data[:1], lambda s, n, c: float("nan") if c == "push" else 1.0)
    assert nan["accuracy"] == 0.0


def test_candidate_accuracy_on_worldprediction_fixture():
    transitions = list(WorldPrediction(labelled=True).transitions())
    truth = {np.asarray(t.state).tobytes() + np.asarray(t.next_state).tobytes(): t.action for t in transitions}

    def oracle(state, next_state, candidate):  # knows the answer: must score 1.0
        return float(truth[np.asarray(state).tobytes() + np.asarray(next_state).tobytes()] == candidate)

    assert candidate_accuracy(transitions, oracle)["accuracy"] == 1.0
    blind = candidate_accuracy(transitions, lambda s, n, c: 0.0)
    assert blind["n"] == 12 and blind["accuracy"] == pytest.approx(0.25) == blind["chance"]
