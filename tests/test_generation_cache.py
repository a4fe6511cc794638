"""generate_ids with a preallocated KV cache and attention mask gives exactly the ids of the original loop
(a DynamicCache grown by torch.cat and a mask re-concatenated every token), kept below as the reference."""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from swirl_core import build_tiny_pair, decoding, models
from swirl_core.decoding import _sample, generate_ids
from swirl_core.logprobs import last_logit, left_pad, past_kwarg

torch.set_num_threads(1)

VOCAB, PAD = 64, 0


@torch.no_grad()
def reference_generate_ids(model, prompt_ids, *, eos_id, pad_id, max_new_tokens, temperature=0.0, top_p=1.0,
                           generator=None, repeats=1):
    """generate_ids as it was before the preallocated cache (commit 0d3308e)."""
    device = next(model.parameters()).device
    ids, mask = left_pad(prompt_ids, pad_id, device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    past_name = past_kwarg(model)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, **last_logit(model))
    past = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
    logits = out.logits[:, -1]
    if repeats > 1:
        past.batch_repeat_interleave(repeats)
        logits, mask, positions = (t.repeat_interleave(repeats, 0) for t in (logits, mask, positions))
    done = torch.zeros(len(prompt_ids) * repeats, dtype=torch.bool, device=device)
    produced = []
    for _ in range(max_new_tokens):
        token = _sample(logits, temperature, top_p, generator)
        token = torch.where(done, torch.full_like(token, pad_id), token)
        produced.append(token)
        done |= token == eos_id
        if bool(done.all()):
            break
        mask = torch.cat([mask, (~done).long().unsqueeze(1)], 1)
        positions = positions[:, -1:] + 1
        out = model(input_ids=token.unsqueeze(1), attention_mask=mask, position_ids=positions,
                    use_cache=True, **{past_name: past})
        past = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
        logits = out.logits[:, -1]
    if not produced:
        return [[] for _ in range(len(prompt_ids) * repeats)]
    rows = torch.stack(produced, 1).tolist()
    return [row[:row.index(eos_id) + 1] if eos_id in row else row for row in rows]


def _llama():
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                                        pad_token_id=PAD)).eval()


def _gpt2():
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=256,
                                      pad_token_id=PAD, bos_token_id=1, eos_token_id=2,
                                      initializer_range=0.5)).eval()


PROMPTS = [[5, 9, 13, 2, 40, 41], [7, 7, 3], [11] * 17, [50, 1, 2, 3, 4, 5, 6, 7, 8, 9]]


def _both(model, eos_id, seed=None, **kw):
    gen = (lambda: torch.Generator().manual_seed(seed)) if seed is not None else (lambda: None)
    new = generate_ids(model, PROMPTS, eos_id=eos_id, pad_id=PAD, generator=gen(), **kw)
    old = reference_generate_ids(model, PROMPTS, eos_id=eos_id, pad_id=PAD, generator=gen(), **kw)
    return new, old


def _early_eos(model, **kw):
    """An eos id that row 0 first emits as its k-th token (k >= 3), so rows stop at different steps."""
    row = _both(model, eos_id=-1, **kw)[0][0]
    k = next(k for k in range(3, len(row)) if row[k] not in row[:k])
    return row[k], k + 1


@pytest.mark.parametrize("build", [_llama, _gpt2], ids=["llama", "gpt2"])
@pytest.mark.parametrize("repeats", [1, 3])
@pytest.mark.parametrize("sampling", [{}, {"temperature": 1.0, "seed": 7}, {"temperature": 0.8, "top_p": 0.9,
                                                                            "seed": 3}], ids=["greedy", "t1", "top_p"])
def test_same_ids_as_the_reference_loop(build, repeats, sampling):
    model = build()
    kw = {"max_new_tokens": 24, "repeats": repeats, **sampling}
    new, old = _both(model, eos_id=-1, **kw)  # no eos: every row runs the whole budget
    assert new == old and all(len(r) == 24 for r in new) and len(new) == len(PROMPTS) * repeats
    eos, length = _early_eos(model, **kw)
    new, old = _both(model, eos_id=eos, **kw)
    assert new == old and len(new[0]) == length and new[0][-1] == eos
    assert any(len(r) > length for r in new)  # the other rows went on after row 0 stopped


def test_budget_edges_and_the_fallback_cache(monkeypatch):
    assert all(decoding._preallocated_cache(build(), 8) is not None for build in (_llama, _gpt2))  # tested above
    model = _llama()
    assert _both(model, eos_id=-1, max_new_tokens=0) == ([[]] * 4, [[]] * 4)
    assert _both(model, eos_id=-1, max_new_tokens=1)[0] == _both(model, eos_id=-1, max_new_tokens=1)[1]
    # A model that cannot take the preallocated cache builds its own (the original path): same ids.
    monkeypatch.setattr(decoding, "_preallocated_cache", lambda *a: None)
    new, old = _both(model, eos_id=-1, max_new_tokens=12, repeats=2)
    assert new == old


@pytest.mark.parametrize("shared", [False, True])
def test_pair_sampling_matches_the_reference(monkeypatch, shared):
    texts = [f"block {b}: x={x}.0 v=0.0" for b in "ABC" for x in range(10)] + ["push block A left", "wait"] * 5
    pair = build_tiny_pair(texts, shared=shared, seed=0, vocab_size=300, hidden_size=64, intermediate_size=128,
                           max_length=64, max_target_tokens=16)
    states = ["block A: x=1.0", "block C: x=7.0 v=0.0 and a longer state", "block B"]
    actions, nexts = ["wait", "push block A left", "wait"], ["block A: x=2.0", "block C: x=6.0", "block B: x=0.0"]

    def run():
        return (pair.predict_next_states(states, actions, batch_size=2),
                pair.predict_actions(states, nexts, num_samples=3, temperature=1.0, batch_size=6,
                                     generator=torch.Generator().manual_seed(1)))
    new = run()
    monkeypatch.setattr(models, "generate_ids", reference_generate_ids)
    assert new == run()
