"""GRPO core: hand-worked numbers, and agreement with TRL's own GRPOTrainer loss on identical inputs."""

import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from swirl_core.grpo import group_advantages, grpo_loss, length_slope, without_length_trend

EPS = 1e-4
CLIP_KEYS = ("clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean",
             "clip_ratio/low_min", "clip_ratio/high_max")


# ---------------------------------------------------------------- group advantages


def test_group_advantages_group_scale_by_hand():
    # group 1: mean 2, unbiased std 1; group 2: all equal, std 0 -> advantage exactly 0
    adv = group_advantages(torch.tensor([1.0, 2.0, 3.0, 5.0, 5.0, 5.0]), 3, "group")
    expected = torch.tensor([-1 / (1 + EPS), 0.0, 1 / (1 + EPS), 0.0, 0.0, 0.0])
    torch.testing.assert_close(adv, expected, rtol=0, atol=1e-7)


def test_group_advantages_batch_scale_uses_std_of_raw_rewards():
    # centred per group: [-1, 1, -1, 1]; batch std is of [1, 3, 5, 7] (unbiased): sqrt(20 / 3)
    adv = group_advantages(torch.tensor([1.0, 3.0, 5.0, 7.0]), 2, "batch")
    torch.testing.assert_close(adv, torch.tensor([-1.0, 1.0, -1.0, 1.0]) / (math.sqrt(20 / 3) + EPS))


def test_group_advantages_none_only_centres():
    adv = group_advantages(torch.tensor([1.0, 3.0, 10.0, 20.0]), 2, "none")
    torch.testing.assert_close(adv, torch.tensor([-1.0, 1.0, -5.0, 5.0]))


def test_group_advantages_best_reinforces_each_groups_top_sample_only():
    # group 1: top is the third; group 2: a tie goes to the first; group 3: flat, no signal
    adv = group_advantages(torch.tensor([1.0, 2.0, 3.0, 4.0, 4.0, 0.0, 5.0, 5.0, 5.0]), 3, "best")
    assert torch.equal(adv, torch.tensor([0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]))


@pytest.mark.parametrize("scale", ["group", "batch", "none", "best"])
def test_group_advantages_singleton_groups_are_zero_not_nan(scale):
    assert torch.equal(group_advantages(torch.tensor([0.3, -2.0]), 1, scale), torch.zeros(2))
    assert torch.equal(group_advantages(torch.tensor([0.3]), 1, scale), torch.zeros(1))


def test_group_advantages_validation():
    with pytest.raises(ValueError, match="'group', 'batch', 'none', 'best'"):
        group_advantages(torch.zeros(4), 2, "std")
    with pytest.raises(ValueError, match="groups of 3"):
        group_advantages(torch.zeros(4), 3)
    with pytest.raises(ValueError, match="1-D"):
        group_advantages(torch.zeros(2, 2), 2)


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_group_advantages_match_trl_formula(scale):
    # TRL's sum_then_normalize path, restated with TRL's own nanstd (unbiased) on random rewards. nanstd
    # computes its Bessel factor n / (n - 1) in float32 even for float64 input, hence 1e-7 rather than 1e-12.
    nanstd = pytest.importorskip("trl.trainer.utils").nanstd
    g = 4
    rewards = torch.randn(5 * g, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mean = rewards.view(-1, g).mean(dim=1).repeat_interleave(g)
    std = {"group": nanstd(rewards.view(-1, g), dim=1).repeat_interleave(g), "batch": nanstd(rewards)}.get(scale)
    expected = rewards - mean if std is None else (rewards - mean) / (std + EPS)
    torch.testing.assert_close(group_advantages(rewards, g, scale), expected, rtol=0, atol=1e-7)


# ---------------------------------------------------------------- surrogate, clipping, KL by hand


def _one_token(log_ratio, adv, eps_low=0.2, eps_high=0.2):
    """Single-token loss: returns (d loss / d logp, logs)."""
    logp = torch.tensor([[-1.0]], dtype=torch.float64, requires_grad=True)
    old = logp.detach() - log_ratio
    loss, logs = grpo_loss(logp, old, None, torch.tensor([adv]), torch.ones(1, 1),
                           loss_type="dapo", beta=0.0, epsilon_low=eps_low, epsilon_high=eps_high)
    loss.backward()
    return logp.grad.item(), logs


@pytest.mark.parametrize("ratio, adv, eps_high, grad, low, high", [
    (1.5, 1.0, 0.2, 0.0, 0, 1),      # above 1 + eps_high with A > 0: clipped, no gradient
    (1.5, -1.0, 0.2, 1.5, 0, 0),     # same ratio, A < 0: min picks the unclipped term, gradient -A r
    (0.5, -1.0, 0.2, 0.0, 1, 0),     # below 1 - eps_low with A < 0: clipped
    (0.5, 1.0, 0.2, -0.5, 0, 0),     # below 1 - eps_low with A > 0: unclipped
    (1.1, 1.0, 0.2, -1.1, 0, 0),     # inside the trust region
    (1.25, 1.0, 0.2, 0.0, 0, 1),     # clipped with symmetric eps...
    (1.25, 1.0, 0.28, -1.25, 0, 0),  # ...but not with DAPO's clip-higher
    (1.5, 0.0, 0.2, 0.0, 0, 0),      # A = 0: no gradient, yet not counted as clipped
])
def test_clipping_gradient_and_clip_ratios(ratio, adv, eps_high, grad, low, high):
    g, logs = _one_token(math.log(ratio), adv, eps_high=eps_high)
    assert g == pytest.approx(grad, abs=1e-12)
    assert logs["clip_ratio/low_mean"].item() == low
    assert logs["clip_ratio/high_mean"].item() == high
    assert logs["clip_ratio/region_mean"].item() == max(low, high)


def test_on_policy_ratio_is_one_and_gradient_is_minus_advantage():
    logp = torch.full((1, 1), -2.0, requires_grad=True)
    loss, logs = grpo_loss(logp, None, None, torch.tensor([3.0]), torch.ones(1, 1), loss_type="grpo")
    loss.backward()
    assert loss.item() == pytest.approx(-3.0)
    assert logp.grad.item() == pytest.approx(-3.0)
    assert "kl" not in logs and logs["clip_ratio/region_mean"].item() == 0


def test_k3_kl_value_and_gradient():
    # ref - logp = -log 2: kl = 1/2 + log 2 - 1; d kl / d logp = 1 - exp(ref - logp) = 1/2
    logp = torch.tensor([[math.log(2)]], dtype=torch.float64, requires_grad=True)
    ref = torch.zeros(1, 1, dtype=torch.float64)
    loss, logs = grpo_loss(logp, None, ref, torch.zeros(1), torch.ones(1, 1), loss_type="bnpo", beta=0.1)
    loss.backward()
    assert logs["kl"].item() == pytest.approx(math.log(2) - 0.5)
    assert loss.item() == pytest.approx(0.1 * (math.log(2) - 0.5))
    assert logp.grad.item() == pytest.approx(0.05)


@pytest.mark.parametrize("loss_type, kwargs, expected", [
    ("grpo", {}, -1.5),                      # mean of per-sequence means: (-1 + -2) / 2
    ("bnpo", {}, -4 / 3),                    # (-1 - 1 - 2) / 3 active tokens
    ("dr_grpo", {}, -4 / 6),                 # / (2 sequences * width 3)
    ("dr_grpo", {"max_completion_length": 4}, -4 / 8),
    ("dapo", {}, -4 / 3),
    ("dapo", {"num_items": 8}, -4 / 8),      # e.g. the token count of a whole accumulation window
])
def test_aggregations_by_hand(loss_type, kwargs, expected):
    # on-policy, so every active token's loss is -A
    logp = torch.zeros(2, 3)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    loss, _ = grpo_loss(logp, None, None, torch.tensor([1.0, 2.0]), mask, loss_type=loss_type, **kwargs)
    assert loss.item() == pytest.approx(expected)


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo"])
def test_padding_is_ignored(loss_type):
    g = torch.Generator().manual_seed(1)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    old, ref = -torch.rand(2, 4, generator=g), -torch.rand(2, 4, generator=g)
    base = -torch.rand(2, 4, generator=g)
    results = []
    for junk in (0.0, 5.0):
        logp = torch.where(mask.bool(), base, base - junk).requires_grad_()
        loss, logs = grpo_loss(logp, old, ref, torch.tensor([0.7, -1.2]), mask, loss_type=loss_type, beta=0.05)
        loss.backward()
        results.append((loss.item(), logs["kl"].item(), logp.grad))
    assert results[0][:2] == pytest.approx(results[1][:2], abs=1e-7)
    torch.testing.assert_close(results[0][2], results[1][2])
    assert torch.all(results[0][2][~mask.bool()] == 0)


def test_grpo_loss_validation():
    x, a, m = torch.zeros(2, 3), torch.zeros(2), torch.ones(2, 3)
    with pytest.raises(ValueError, match="'grpo', 'bnpo', 'dr_grpo', 'dapo'"):
        grpo_loss(x, None, None, a, m, loss_type="ppo")
    with pytest.raises(ValueError, match="ref_logp is required"):
        grpo_loss(x, None, None, a, m, beta=0.1)
    with pytest.raises(ValueError, match="mask has shape"):
        grpo_loss(x, None, None, a, torch.ones(2, 4))
    with pytest.raises(ValueError, match="advantages"):
        grpo_loss(x, None, None, torch.zeros(2, 3), m)


# ---------------------------------------------------------------- against TRL's GRPOTrainer._compute_loss


class _SingleProcess:
    """The accelerator surface _compute_loss touches, for one process: gather and reduce are identities."""

    num_processes = 1

    def gather(self, x):
        return x

    gather_for_metrics = gather

    def reduce(self, x, reduction="sum"):
        return x


def _trl_loss(logp, old_logp, ref_logp, advantages, mask, *, loss_type, beta, eps_low, eps_high, max_len):
    """Run TRL's own GRPOTrainer._compute_loss on a stand-in trainer whose model 'returns' logp."""
    trainer_cls = pytest.importorskip("trl.trainer.grpo_trainer").GRPOTrainer
    B, T = logp.shape
    fake = SimpleNamespace(
        _get_per_token_logps_and_entropies=lambda *a, **k: (logp, torch.zeros_like(logp), None),
        top_entropy_quantile=1.0, off_policy_mask_threshold=None, importance_sampling_level="token",
        loss_type=loss_type, beta=beta, epsilon_low=eps_low, epsilon_high=eps_high, max_completion_length=max_len,
        args=SimpleNamespace(use_bias_correction_kl=False, delta=None, steps_per_generation=1),
        use_vllm=False, vllm_importance_sampling_correction=False, aux_loss_enabled=False,
        _entropy_bonus_enabled=False, model=SimpleNamespace(training=True), current_gradient_accumulation_steps=1,
        accelerator=_SingleProcess(), _metrics={"train": defaultdict(list)},
    )
    inputs = {
        "prompt_ids": torch.zeros(B, 1, dtype=torch.long), "prompt_mask": torch.ones(B, 1, dtype=torch.long),
        "completion_ids": torch.zeros(B, T, dtype=torch.long), "completion_mask": mask,
        "advantages": advantages, "old_per_token_logps": old_logp, "ref_per_token_logps": ref_logp,
        "num_items_in_batch": mask.sum(),
    }
    loss = trainer_cls._compute_loss(fake, None, inputs)
    return loss, {k: v[-1] for k, v in fake._metrics["train"].items()}


# (beta, epsilon_low, epsilon_high, off_policy, pass ref_logp, lengths, dr_grpo max_completion_length)
SETTINGS = {
    "beta0-sym": (0.0, 0.2, 0.2, True, False, [7, 5, 1, 3, 7, 6], None),
    "beta0-ref-given": (0.0, 0.2, 0.28, True, True, [7, 5, 1, 3, 7, 6], None),
    "beta0.04-asym": (0.04, 0.2, 0.28, True, True, [7, 2, 4, 3, 6, 1], 10),
    "beta0.1-onpolicy": (0.1, 0.1, 0.3, False, True, [4, 5, 7, 3, 2, 6], None),
    "beta0.02-empty-row": (0.02, 0.3, 0.25, True, True, [7, 0, 3, 3, 5, 2], 12),
}


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo"])
def test_matches_trl(loss_type, setting):
    beta, eps_low, eps_high, off_policy, with_ref, lengths, max_len = SETTINGS[setting]
    g = torch.Generator().manual_seed(len(setting))
    B, T = len(lengths), max(lengths) or 1
    # completions of these lengths (EOS included), right-padded; a length of 0 is an empty completion
    mask = (torch.arange(T) < torch.tensor(lengths).unsqueeze(1)).long()

    base = -3 * torch.rand(B, T, generator=g, dtype=torch.float64)
    # spread of 0.3 in log-ratio puts a good share of tokens outside both clip edges
    old = base + 0.3 * torch.randn(B, T, generator=g, dtype=torch.float64) if off_policy else None
    ref = base + 0.2 * torch.randn(B, T, generator=g, dtype=torch.float64) if with_ref else None
    rewards = torch.randn(B, generator=g, dtype=torch.float64)
    rewards[3:] = 0.5  # a group with tied rewards: zero advantages, which must not count as clipped
    adv = group_advantages(rewards, 3, "group")

    ours_logp, trl_logp = base.clone().requires_grad_(), base.clone().requires_grad_()
    loss, logs = grpo_loss(ours_logp, old, ref, adv, mask, loss_type=loss_type, beta=beta,
                           epsilon_low=eps_low, epsilon_high=eps_high, max_completion_length=max_len)
    trl_loss, trl_logs = _trl_loss(trl_logp, old, ref, adv, mask, loss_type=loss_type, beta=beta,
                                   eps_low=eps_low, eps_high=eps_high, max_len=max_len or T)
    loss.backward()
    trl_loss.backward()

    assert loss.item() == pytest.approx(trl_loss.item(), abs=1e-5)
    torch.testing.assert_close(ours_logp.grad, trl_logp.grad, rtol=0, atol=1e-5)
    assert ours_logp.grad.abs().sum() > 0
    # TRL logs kl only for beta != 0; we log it whenever a reference is given
    assert ("kl" in trl_logs) == (beta != 0) and ("kl" in logs) == with_ref
    for key in CLIP_KEYS + (("kl",) if beta else ()):
        assert logs[key].item() == pytest.approx(trl_logs[key], abs=1e-5), key
    if off_policy:  # the settings must exercise clipping, or the clip figures prove nothing
        assert trl_logs["clip_ratio/region_mean"] > 0


def test_matches_trl_float32():
    g = torch.Generator().manual_seed(3)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]])  # EOS at 1, none (truncated), EOS at 0
    base = -2 * torch.rand(3, 4, generator=g)
    old, ref = base + 0.3 * torch.randn(3, 4, generator=g), base + 0.2 * torch.randn(3, 4, generator=g)
    adv = torch.tensor([1.3, -0.4, -0.9])
    ours, theirs = base.clone().requires_grad_(), base.clone().requires_grad_()
    loss, logs = grpo_loss(ours, old, ref, adv, mask, loss_type="dapo", beta=0.04, epsilon_high=0.28)
    trl_loss, trl_logs = _trl_loss(theirs, old, ref, adv, mask, loss_type="dapo", beta=0.04,
                                   eps_low=0.2, eps_high=0.28, max_len=4)
    loss.backward()
    trl_loss.backward()
    assert loss.item() == pytest.approx(trl_loss.item(), abs=1e-5)
    torch.testing.assert_close(ours.grad, theirs.grad, rtol=0, atol=1e-5)
    assert logs["kl"].item() == pytest.approx(trl_logs["kl"], abs=1e-5)


def test_length_slope_is_the_pooled_within_group_trend_and_removing_it_keeps_each_groups_mean():
    # group 1 rewards fall 0.1 per token; group 2 is flat in length (one length), so it adds nothing
    rewards = torch.tensor([1.0, 0.0, -1.0, 0.3, 0.7, 0.5])
    lengths = torch.tensor([10.0, 20.0, 30.0, 5.0, 5.0, 5.0])
    assert length_slope(rewards, lengths, 3) == pytest.approx(-0.1)
    neutral = without_length_trend(rewards, lengths, 3, -0.1)
    assert neutral.tolist() == pytest.approx([0.0, 0.0, 0.0, 0.3, 0.7, 0.5])
    assert length_slope(neutral, lengths, 3) == pytest.approx(0.0, abs=1e-7)
    assert neutral.view(2, 3).mean(1).tolist() == pytest.approx(rewards.view(2, 3).mean(1).tolist())
    assert length_slope(rewards, torch.full((6,), 7.0), 3) == 0.0  # no length varies: no trend


def test_removing_the_length_trend_keeps_what_the_rewards_rank_beyond_length():
    torch.manual_seed(0)
    lengths = torch.randint(5, 60, (64,)).float()
    quality = torch.randn(64)
    rewards = quality - 0.05 * lengths  # a judge that ranks by quality and also prefers short completions
    neutral = without_length_trend(rewards, lengths, 8, length_slope(rewards, lengths, 8))
    centred = lambda t: (t.view(-1, 8) - t.view(-1, 8).mean(1, keepdim=True)).view(-1)  # noqa: E731
    corr = lambda a, b: torch.corrcoef(torch.stack([centred(a), centred(b)]))[0, 1].item()  # noqa: E731
    assert corr(rewards, lengths) < -0.5 and corr(neutral, lengths) == pytest.approx(0.0, abs=1e-5)
    assert corr(neutral, quality) > corr(rewards, quality)
