"""The KL reference of LoRA runs holds adapter weights only, and scores exactly as a whole frozen copy would."""

from __future__ import annotations

import copy

import torch
from safetensors.torch import load_file
from support import ball_world

from swirl_core.config import LoraSettings
from swirl_core.logprobs import completion_logprobs
from swirl_core.models import build_tiny_pair
from swirl_core.reference import AdapterSnapshot, FrozenCopy, snapshot

torch.set_num_threads(1)


def _lora_fwm():
    texts = [t.state for t in ball_world(8)] + [t.next_state for t in ball_world(8)]
    pair = build_tiny_pair(texts, seed=0, vocab_size=320, hidden_size=64, intermediate_size=128)
    pair.add_adapters(LoraSettings(enabled=True, r=4, alpha=8, target_modules=["q_proj", "v_proj"]), seed=0)
    model = pair.models["fwm"]
    prompts = [pair.tokenizers["fwm"].encode(t.state)[:24] for t in ball_world(3)]
    completions = [pair.tokenizers["fwm"].encode(t.next_state)[:8] for t in ball_world(3)]
    return model, prompts, completions, pair.tokenizers["fwm"].pad_token_id


def _move_adapters(model, seed):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.add_(0.05 * torch.randn(p.shape, generator=generator))


def test_adapter_snapshot_scores_as_a_whole_copy_and_gives_the_policy_back(tmp_path):
    model, prompts, completions, pad = _lora_fwm()
    _move_adapters(model, 1)  # LoRA's B starts at zero: move it so the reference differs from the base
    reference, copied = snapshot(model), copy.deepcopy(model).eval()
    assert isinstance(reference, AdapterSnapshot) and reference.is_policy(model)
    held = sum(w.numel() for w in reference.weights.values())
    assert held == sum(p.numel() for n, p in model.named_parameters() if "lora_" in n) < 0.1 * sum(
        p.numel() for p in model.parameters())

    _move_adapters(model, 2)  # the policy trains on
    model.train()
    policy = {n: p.detach().clone() for n, p in model.named_parameters()}
    assert not reference.is_policy(model)
    with reference.applied(model) as frozen:
        got, _ = completion_logprobs(frozen, prompts, completions, pad)
        assert not frozen.training
    want, _ = completion_logprobs(copied, prompts, completions, pad)
    assert torch.allclose(got, want, atol=1e-6)
    assert model.training and all(torch.equal(policy[n], p) for n, p in model.named_parameters())

    # saved in the layout a whole frozen copy writes, and loaded back into a fresh snapshot
    reference.save(tmp_path / "ref.safetensors", model)
    FrozenCopy(copied).save(tmp_path / "copy.safetensors", copied)
    a, b = load_file(tmp_path / "ref.safetensors"), load_file(tmp_path / "copy.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    restored = snapshot(model)
    restored.load(tmp_path / "ref.safetensors", model)
    assert all(torch.equal(restored.weights[n], w) for n, w in reference.weights.items())
    assert all(torch.equal(policy[n], p) for n, p in model.named_parameters())

    reference.update(model)
    assert reference.is_policy(model)


def test_a_fully_trained_model_is_copied_whole():
    texts = [t.state for t in ball_world(4)]
    model = build_tiny_pair(texts, seed=0, vocab_size=320, hidden_size=64, intermediate_size=128).models["fwm"]
    reference = snapshot(model)
    assert isinstance(reference, FrozenCopy) and reference.is_policy(model)
    _move_adapters(model, 3)  # no adapters: nothing moves
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    assert not reference.is_policy(model)
    reference.update(model)
    assert reference.is_policy(model)
