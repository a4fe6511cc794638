"""GRPO core: group advantages, the clipped surrogate with a k3 KL penalty, and its loss aggregations.

Both SWIRL phases are plain GRPO updates whose reward is the frozen opposite model's log-prob, so this module
knows nothing about FWM or IDM: it takes per-token log-probs that the caller computed and returns a scalar
loss plus the figures worth logging. Numerically it matches TRL's ``GRPOTrainer`` (1.16) for a single process
with no gradient accumulation (``tests/test_grpo.py`` checks this against TRL's own code); the places where
distributed TRL behaves differently are noted where they happen.

Shapes: ``B`` sequences (completions), ``T`` completion tokens (right-padded). Rewards and advantages are
``(B,)``; log-probs and masks are ``(B, T)``.
"""

from __future__ import annotations

import torch

SCALES = ("group", "batch", "none", "best")
LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")
STD_EPS = 1e-4  # added to the std, not the variance; TRL's constant (and the SWIRL paper's)


def _std(x: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Unbiased (Bessel-corrected, n-1) std, 0 where there is a single element instead of NaN.

    TRL uses the unbiased std and substitutes zeros when a group or batch has one element, which makes
    the advantage exactly 0 there rather than NaN.
    """
    n = x.numel() if dim is None else x.shape[dim]
    if n < 2:
        return torch.zeros(()) if dim is None else torch.zeros_like(x.select(dim, 0))
    return x.std(dim=dim, correction=1)


def _group_centred(x: torch.Tensor, group_size: int) -> torch.Tensor:
    """(B,) values less their group's mean (consecutive runs of `group_size`)."""
    grouped = x.view(-1, group_size)
    return (grouped - grouped.mean(dim=1, keepdim=True)).view(-1)


def length_slope(rewards: torch.Tensor, lengths: torch.Tensor, group_size: int) -> float:
    """How the rewards move with the completions' lengths inside groups: the least-squares slope of
    group-centred rewards on group-centred lengths, pooled over the batch (reward units per token; 0 when no
    group has two lengths). A negative slope is a judge that prefers the shorter completions of a prompt."""
    centred = _group_centred(lengths.float(), group_size)
    spread = (centred * centred).sum()
    if spread == 0:
        return 0.0
    return (_group_centred(rewards.float(), group_size) * centred).sum().item() / spread.item()


def without_length_trend(rewards: torch.Tensor, lengths: torch.Tensor, group_size: int, slope: float) -> torch.Tensor:
    """Rewards less `slope` times each completion's length above its group's mean: every group keeps its mean,
    and with `slope = length_slope(rewards, lengths, group_size)` the within-group rewards no longer correlate
    with length over the batch, while what they rank beyond length stays."""
    return rewards - slope * _group_centred(lengths.to(rewards), group_size)


def group_advantages(rewards: torch.Tensor, group_size: int, scale: str = "group") -> torch.Tensor:
    """Group-relative advantages: reward minus its group's mean, optionally divided by a std.

    rewards: (B,), consecutive runs of ``group_size`` completions share a prompt (B = groups * group_size).
    scale: "group" divides by each group's std, "batch" by the std of all B *raw* rewards (not of the
    centred ones, as in TRL), "none" only centres (Dr. GRPO); "best" is not centred: each group's top
    completion gets 1 and the others 0 (rejection-sampling fine-tuning through the same loss: the best of
    the group is reinforced, nothing is pushed down; ties go to the first, a flat group gets 0). Stds are
    unbiased (n-1) and ``STD_EPS`` is added to them, so a group whose rewards are all equal gets advantage
    0. Rewards must be finite (TRL additionally skips NaN rewards of unscorable completions). Pass the rewards of the whole generation
    batch: TRL gathers them from all processes before normalising, so groups and the batch std span ranks.
    Returns (B,) in the dtype of ``rewards``.
    """
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; expected one of {', '.join(map(repr, SCALES))}")
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D (sequences,), got shape {tuple(rewards.shape)}")
    if group_size < 1 or rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards cannot be split into groups of {group_size}")
    grouped = rewards.view(-1, group_size)
    if scale == "best":
        top = torch.zeros_like(grouped).scatter_(1, grouped.argmax(dim=1, keepdim=True), 1.0)
        return (top * (grouped.amax(dim=1) > grouped.amin(dim=1)).unsqueeze(1)).view(-1)
    adv = (grouped - grouped.mean(dim=1, keepdim=True)).view(-1)
    if scale == "group":
        adv = adv / (_std(grouped, dim=1).to(rewards).repeat_interleave(group_size) + STD_EPS)
    elif scale == "batch":
        adv = adv / (_std(rewards).to(rewards) + STD_EPS)
    return adv


def shuffle_within_groups(rewards: torch.Tensor, group_size: int,
                          generator: torch.Generator | None = None) -> torch.Tensor:
    """Each group's rewards in a random order: the random-reward control. Every group keeps its reward values
    (so its mean, spread and advantage scale), only the link between a completion and its reward is cut.
    The order comes from ``generator`` (on any device), so a seeded run draws the same permutations."""
    grouped = rewards.view(-1, group_size)
    device = generator.device if generator is not None else rewards.device
    order = torch.rand(grouped.shape, generator=generator, device=device).argsort(dim=1).to(rewards.device)
    return grouped.gather(1, order).view(-1)


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Token-level mean over active tokens of the whole batch (0 when no token is active)."""
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def _seq_fractions(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sequence masked mean of x, (B',), skipping sequences with no active token; [nan] if all are empty."""
    n = mask.sum(dim=1)
    keep = n > 0
    if not keep.any():
        return torch.full((1,), float("nan"), dtype=x.dtype, device=x.device)
    return (x * mask).sum(dim=1)[keep] / n[keep]


def deterministic(model: torch.nn.Module) -> bool:
    """No dropout anywhere (modules or attention config), so train- and eval-mode forwards agree."""
    config = getattr(model, "config", None)
    rates = [v for k, v in vars(config).items() if k.endswith("dropout") and isinstance(v, float)] if config else []
    return not any(rates) and not any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in model.modules())


def same_policy(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    """Whether two models give the same log-probs: equal parameters, no dropout. One comparison per
    parameter, far cheaper than a forward pass over a batch."""
    pa, pb = list(a.parameters()), list(b.parameters())
    return (len(pa) == len(pb) and all(x.shape == y.shape and torch.equal(x, y) for x, y in zip(pa, pb, strict=True))
            and deterministic(a) and deterministic(b))


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor | None,
    ref_logp: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    loss_type: str = "dapo",
    beta: float = 0.0,
    epsilon_low: float = 0.2,
    epsilon_high: float | None = None,
    max_completion_length: int | None = None,
    num_items: float | torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped GRPO surrogate plus ``beta`` times the k3 KL to a reference, aggregated by ``loss_type``.

    logp: (B, T) log-probs of the sampled tokens under the policy being trained (carries the gradient).
    old_logp: (B, T) the same under the policy that sampled them, or None for a single on-policy step, in which
        case ``logp.detach()`` is used: the ratio is exactly 1 and only its gradient remains.
    ref_logp: (B, T) under the frozen reference; may be None only when ``beta == 0``.
    advantages: (B,) one advantage per sequence, broadcast over its tokens.
    mask: (B, T) 1 for completion tokens that count (up to and including the first EOS), 0 for padding.

    Per token, with r = exp(logp - old_logp) and A the advantage:
        loss_t = -min(r A, clip(r, 1 - epsilon_low, 1 + epsilon_high) A) + beta * kl_t,
        kl_t = exp(ref - logp) - (ref - logp) - 1     (k3: unbiased, always >= 0)
    ``epsilon_high`` defaults to ``epsilon_low`` (symmetric PPO clipping); DAPO's clip-higher uses e.g. 0.28.

    Aggregation over the masked per-token losses:
        grpo     mean over sequences of each sequence's token mean (long completions weigh less per token)
        bnpo     sum / number of active tokens in this batch
        dr_grpo  sum / (B * max_completion_length); pass the *configured* generation limit to match TRL,
                 the default is the padded width T
        dapo     sum / num_items, where num_items defaults to the active tokens in this batch. In TRL the
                 count spans the whole generation batch across all processes and gradient-accumulation steps,
                 divided by the number of processes (DDP then averages gradients, giving a global token
                 mean); pass that count here to reproduce it. With one process and one micro-batch, dapo and
                 bnpo are the same number.

    Returns (loss, logs). loss is a scalar with gradient w.r.t. ``logp``. logs holds detached scalars, the
    same figures TRL logs (single process): ``clip_ratio/low_mean`` (fraction of active tokens with
    r < 1 - epsilon_low and A < 0, i.e. where the lower clip binds), ``clip_ratio/high_mean`` (r > 1 +
    epsilon_high and A > 0), ``clip_ratio/region_mean`` (either), ``clip_ratio/low_min`` and
    ``clip_ratio/high_max`` (min / max over sequences of the per-sequence low / high fraction, empty sequences
    skipped), and ``kl`` (token mean of kl_t) whenever ``ref_logp`` is given, which TRL only does for beta != 0.
    All means are over tokens, not sequences; distributed TRL sums numerators and token counts over ranks first.
    """
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"unknown loss_type {loss_type!r}; expected one of {', '.join(map(repr, LOSS_TYPES))}")
    if beta != 0.0 and ref_logp is None:
        raise ValueError("ref_logp is required when beta != 0")
    for name, t in (("old_logp", old_logp), ("ref_logp", ref_logp), ("mask", mask)):
        if t is not None and t.shape != logp.shape:
            raise ValueError(f"{name} has shape {tuple(t.shape)}, logp has {tuple(logp.shape)}")
    if advantages.shape != logp.shape[:1]:
        raise ValueError(f"advantages must have shape ({logp.shape[0]},), got {tuple(advantages.shape)}")
    epsilon_high = epsilon_low if epsilon_high is None else epsilon_high
    mask = mask.to(logp.dtype)
    adv = advantages.to(logp.dtype).unsqueeze(1)  # (B, 1)
    old_logp = logp.detach() if old_logp is None else old_logp

    ratio = torch.exp(logp - old_logp)
    clipped = torch.clamp(ratio, 1 - epsilon_low, 1 + epsilon_high)
    per_token = -torch.min(ratio * adv, clipped * adv)
    if ref_logp is not None:
        # gradient flows through logp only; the reference is frozen
        d = ref_logp.detach() - logp
        kl = torch.exp(d) - d - 1
        if beta != 0.0:
            per_token = per_token + beta * kl

    total = (per_token * mask).sum()
    if loss_type == "grpo":
        loss = ((per_token * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)).mean()
    elif loss_type == "bnpo":
        loss = total / mask.sum().clamp(min=1.0)
    elif loss_type == "dr_grpo":
        loss = total / (logp.shape[0] * (max_completion_length or logp.shape[1]))
    else:  # dapo
        n = mask.sum() if num_items is None else torch.as_tensor(num_items, dtype=logp.dtype, device=logp.device)
        loss = total / n.clamp(min=1.0)

    with torch.no_grad():
        # the clip binds (zero gradient) only on the side where it lowers the objective
        low = ((ratio < 1 - epsilon_low) & (adv < 0)).to(logp.dtype)
        high = ((ratio > 1 + epsilon_high) & (adv > 0)).to(logp.dtype)
        logs = {
            "clip_ratio/low_mean": _masked_mean(low, mask),
            "clip_ratio/high_mean": _masked_mean(high, mask),
            "clip_ratio/region_mean": _masked_mean(torch.maximum(low, high), mask),
            "clip_ratio/low_min": _seq_fractions(low, mask).min(),
            "clip_ratio/high_max": _seq_fractions(high, mask).max(),
        }
        if ref_logp is not None:
            logs["kl"] = _masked_mean(kl, mask)
    return loss, logs
