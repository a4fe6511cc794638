"""Shared-prompt forwards: a group's prompt run once, its completions against the prompt's keys/values.

`completion_logprobs` (share_prefix=True, the default) must give the same log-probs and the same
parameter gradients as one plain forward per padded sequence (share_prefix=False): with groups whose
prompts differ in length (left padding of the prefixes), completions of different lengths (right padding),
prompts that share only a prefix (scoring rows: same state, different y_hat or z_hat), rows that share
nothing, and under gradient checkpointing.
"""

from __future__ import annotations

import copy

import pytest
import torch
from support import block_pair

from swirl_core.logprobs import _can_share_prefix, _prefix_groups, completion_logprobs

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def pair():
    return block_pair(max_length=96)


def _rows(pair):
    """Three groups: two of three identical prompts (different lengths), then three prompts with a shared
    state and different actions, then a lone row; completions of unequal lengths, one empty."""
    long_state = " ".join(f"block {b}: x={x}.0" for b in "AB" for x in range(4))
    p1, p2 = pair.prompt_ids("fwm", long_state, "push block A left"), pair.prompt_ids("fwm", "block C: x=2.0", "wait")
    scoring = [pair.prompt_ids("fwm", long_state, a) for a in ("wait", "push block A left", "push block B")]
    lone = pair.prompt_ids("fwm", "block B: x=9.0", "wait")
    targets = ["block A: x=3.0", "block B", "", "block C: x=2.0 v=0.0", "C", "block A: x=1.0",
               "block A", "block B: x=1.0 v=0.0", "wait", "block C"]
    completions = [pair.target_ids("fwm", t) for t in targets]
    completions[2] = []  # an empty completion: all padding
    return [p1] * 3 + [p2] * 3 + scoring + [lone], completions


def _logp_and_grads(model, prompts, completions, pad, share):
    model.zero_grad()
    logp, mask = completion_logprobs(model, prompts, completions, pad, share_prefix=share)
    weights = torch.linspace(-1, 1, logp.numel()).view_as(logp)  # every position gets its own gradient weight
    (logp * weights).sum().backward()
    return logp.detach(), mask, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_groups_follow_shared_prefixes(pair):
    prompts, _ = _rows(pair)
    groups = _prefix_groups(prompts)
    assert [size for size, _ in groups] == [3, 3, 3, 1]
    assert groups[0][1] == len(prompts[0]) - 1 and groups[1][1] == len(prompts[3]) - 1  # identical: all but one
    assert 0 < groups[2][1] < min(len(p) for p in prompts[6:9]) - 1  # the state, not the actions
    assert _prefix_groups([[1, 2, 3], [4, 5, 6]]) is None  # nothing shared: the plain forward
    assert _prefix_groups([[7], [7]]) is None  # a one-token prompt leaves nothing to share


@pytest.mark.parametrize("checkpointing", [False, True])
def test_shared_prefix_matches_plain_forward_with_gradients(pair, checkpointing):
    model = copy.deepcopy(pair.fwm).train()
    if checkpointing:
        model.gradient_checkpointing_enable({"use_reentrant": False})
    assert _can_share_prefix(model)  # the shared path really runs
    prompts, completions = _rows(pair)
    pad = pair.tokenizers["fwm"].pad_token_id
    plain, mask, plain_grads = _logp_and_grads(model, prompts, completions, pad, share=False)
    shared, shared_mask, shared_grads = _logp_and_grads(model, prompts, completions, pad, share=True)
    assert torch.equal(mask, shared_mask) and plain.abs().sum() > 0
    torch.testing.assert_close(shared, plain, atol=1e-5, rtol=1e-5)
    assert plain_grads.keys() == shared_grads.keys() and len(plain_grads) == len(list(model.parameters()))
    for name, grad in plain_grads.items():
        scale = grad.abs().max().clamp(min=1e-12)
        assert (shared_grads[name] - grad).abs().max() / scale < 1e-4, name


def test_shared_prefix_matches_without_grad_and_when_checkpointing_is_reentrant(pair):
    model = copy.deepcopy(pair.fwm).eval()
    prompts, completions = _rows(pair)
    pad = pair.tokenizers["fwm"].pad_token_id
    with torch.no_grad():
        plain, _ = completion_logprobs(model, prompts, completions, pad, share_prefix=False)
        shared, _ = completion_logprobs(model, prompts, completions, pad)
    torch.testing.assert_close(shared, plain, atol=1e-5, rtol=1e-5)
    # A reentrant checkpoint would cut the gradient through the cached prefix: the plain forward is used.
    model.train().gradient_checkpointing_enable({"use_reentrant": True})
    assert not _can_share_prefix(model)
    plain, _, plain_grads = _logp_and_grads(model, prompts, completions, pad, share=False)
    shared, _, shared_grads = _logp_and_grads(model, prompts, completions, pad, share=True)
    torch.testing.assert_close(shared, plain)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(shared_grads[name], grad)


@pytest.mark.parametrize("updates", [1, 2])
def test_update_reuses_the_first_forward_for_a_fresh_reference_and_old_logprobs(monkeypatch, updates):
    """Right after the KL snapshot the reference equals the policy (and before the first update the policy is
    the sampler): `_update` takes those log-probs from its training forward instead of extra forwards, and
    the gradients, weights and logged figures are those of the explicit forwards."""
    from swirl_core import SwirlConfig, SwirlTrainer
    from swirl_core import grpo as grpo_module
    from swirl_core import reference as reference_module
    from swirl_core import swirl as swirl_module

    xs, ys = ["block A: x=1.0", "block B: x=2.0 v=0.0"], ["block A: x=2.0", "block B: x=2.0"]
    runs = []
    for reuse in (True, False):
        pair = block_pair()
        gen = pair.sample("idm", xs, ys, num_samples=3, temperature=1.0, max_new_tokens=6,
                          generator=torch.Generator().manual_seed(0))
        rewards = torch.linspace(-3, -1, len(gen.texts))
        trainer = SwirlTrainer(SwirlConfig(beta=0.1, updates_per_batch=updates, learning_rate=1e-3,
                                           gradient_checkpointing=True, progress=False))
        trainer.make_optimizers(pair, ("fwm", "idm"), 4)
        trainer.prepare_models(pair)
        trainer._start_iteration(pair)
        forwards = []
        monkeypatch.setattr(swirl_module, "completion_logprobs",
                            lambda *a, seen=forwards, **k: seen.append(torch.is_grad_enabled()) or
                            completion_logprobs(*a, **k))
        if not reuse:  # the reference never counts as the policy: its own forward every time
            monkeypatch.setattr(reference_module.FrozenCopy, "is_policy", lambda self, model: False)
        monkeypatch.setattr(swirl_module, "deterministic", grpo_module.deterministic if reuse else lambda m: False)
        metrics = [trainer._update(pair, "idm", gen.prompt_ids, gen.completion_ids, rewards, 3) for _ in range(2)]
        runs.append((forwards, metrics, {k: v.clone() for k, v in pair.idm.state_dict().items()}))
    (reused, m_reused, w_reused), (explicit, m_explicit, w_explicit) = runs
    # first call: only the training forward(s); second call (the policy moved): the reference forward again
    assert reused == [True] * updates + [False] + [True] * updates
    assert explicit == ([False] * (1 + (updates > 1)) + [True] * updates) * 2
    for a, b in zip(m_reused, m_explicit, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-6), k
    for k, w in w_explicit.items():
        torch.testing.assert_close(w_reused[k], w, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("checkpointing", [False, True])
def test_other_architecture_or_a_model_that_drops_the_cache(checkpointing):
    """GPT-2 (absolute positions) uses the shared path; under checkpointing its blocks drop any cache, which
    is detected after the prefix pass and answered with the plain forward."""
    from transformers import AutoModelForCausalLM, GPT2Config

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=2, n_positions=64,
                                                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)).train()
    if checkpointing:
        model.gradient_checkpointing_enable({"use_reentrant": False})
    prompts = [[5, 6, 7, 8, 9, 10, 11, 12]] * 3 + [[5, 6, 7, 20, 21]] * 2 + [[30, 31, 32, 33, 34, 35]]
    completions = [[1, 2, 3], [4], [], [7, 8], [9, 9, 9, 9], [3]]
    plain, _, plain_grads = _logp_and_grads(model, prompts, completions, 0, share=False)
    shared, _, shared_grads = _logp_and_grads(model, prompts, completions, 0, share=True)
    torch.testing.assert_close(shared, plain, atol=1e-5, rtol=1e-5)
    for name, grad in plain_grads.items():
        assert (shared_grads[name] - grad).abs().max() / grad.abs().max().clamp(min=1e-12) < 1e-4, name
