"""Generation backends: "fast" (swirl_core.decoding's loop) and "hf" (transformers' generate) give the same
greedy ids, sampling is reproducible per backend, the choice reaches `WorldModelPair.sample`, trainer configs
and `swirl-eval run`, and the fast loop falls back to "hf" with one warning when transformers' cache API
changes."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from support import BLOCK_TEXTS, block_pair
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.cache_utils import Cache

from evals import cli
from swirl_core import TrainerConfig, WorldModelPair, apply_overrides, decoding, presets
from swirl_core.decoding import generate_ids, hf_generate_ids
from swirl_core.tiny import TinyConfig, tiny_model, train_tokenizer
from swirl_envs.errors import SwirlError

torch.set_num_threads(1)

PAD = 0
PROMPTS = [[5, 9, 13, 2, 40, 41], [7, 7, 3], [11] * 17, [50, 1, 2, 3, 4, 5, 6, 7, 8, 9], [12]]
BACKENDS = {"fast": generate_ids, "hf": hf_generate_ids}


def _tiny():
    tokenizer = train_tokenizer(BLOCK_TEXTS, vocab_size=300, min_frequency=1)
    model = tiny_model(tokenizer, TinyConfig(vocab_size=300, hidden_size=64, intermediate_size=128)).eval()
    torch.manual_seed(0)
    with torch.no_grad():  # wide random weights: greedy rows wander instead of repeating their last token
        for p in model.parameters():
            p.normal_(0, 0.5)
    return model


def _gpt2():  # builds its own cache (no preallocated layers): the fast loop's other path
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=64, n_embd=32, n_layer=2, n_head=4, n_positions=256,
                                      pad_token_id=PAD, initializer_range=0.5)).eval()


def _run(backend, model, eos_id, seed=None, **kw):
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return BACKENDS[backend](model, PROMPTS, eos_id=eos_id, pad_id=PAD, generator=generator, **kw)


def test_the_installed_transformers_fits_the_fast_loop():
    assert decoding.fast_path_problem() is None  # else every "fast" run here would silently be "hf"


@pytest.mark.parametrize("build", [_tiny, _gpt2], ids=["tiny", "gpt2"])
@pytest.mark.parametrize("repeats", [1, 3])
def test_greedy_ids_agree_token_for_token(build, repeats):
    model = build()
    full = _run("fast", model, eos_id=-1, max_new_tokens=20)  # no eos: every row runs the whole budget
    assert all(len(r) == 20 for r in full)
    # an eos that row 0 first emits as its k-th token (k >= 3): rows stop at different steps
    k = next(k for k in range(3, 20) if full[0][k] not in full[0][:k])
    eos = full[0][k]
    fast, hf = (_run(b, model, eos_id=eos, max_new_tokens=20, repeats=repeats) for b in BACKENDS)
    assert fast == hf and len(fast) == len(PROMPTS) * repeats
    assert fast[0] == full[0][:k + 1] and any(len(r) > k + 1 for r in fast)
    assert _run("hf", model, eos_id=eos, max_new_tokens=0, repeats=repeats) == [[]] * len(fast)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_seeded_sampling_is_reproducible_and_leaves_the_global_rng(backend):
    model = _tiny()
    kw = {"eos_id": -1, "max_new_tokens": 12, "temperature": 0.9, "top_p": 0.95, "repeats": 2}
    state = torch.get_rng_state()
    first, again, other = (_run(backend, model, seed=s, **kw) for s in (7, 7, 8))
    assert torch.equal(torch.get_rng_state(), state)
    assert first == again and first != other
    assert first[0] != first[1]  # the samples of one prompt are drawn independently


def test_pair_sampling_follows_its_backend(monkeypatch):
    pair = block_pair()
    states = ["block A: x=1.0", "block C: x=7.0 v=0.0 and a longer state", "block B"]
    actions = ["wait", "push block A left", "wait"]
    calls = []
    monkeypatch.setitem(decoding.BACKENDS, "hf", lambda *a, **kw: calls.append(1) or hf_generate_ids(*a, **kw))

    def run():
        return pair.sample("fwm", states, actions, num_samples=2, batch_size=4).completion_ids
    fast = run()
    pair.generation_backend = "hf"
    assert run() == fast and calls
    with pytest.raises(SwirlError, match="unknown generation backend 'vllm'; known: fast, hf"):
        WorldModelPair(pair.fwm, tokenizer=pair.tokenizers["fwm"], generation_backend="vllm")


def test_trainer_configs_take_a_backend():
    assert TrainerConfig().generation_backend == "fast"
    assert apply_overrides(TrainerConfig(), ["generation_backend=hf"]).generation_backend == "hf"
    with pytest.raises(SwirlError, match="unknown generation backend"):
        apply_overrides(TrainerConfig(), ["generation_backend=vllm"])


def test_trainers_sample_with_their_configs_backend_and_resume_runs_saved_before_it():
    from swirl_core.sft import SFTConfig, SFTTrainer

    config = SFTConfig(tiny=TinyConfig(vocab_size=300, hidden_size=64, intermediate_size=128), max_length=64,
                       max_target_tokens=16)
    assert SFTTrainer(apply_overrides(config, ["generation_backend=hf"])).build_pair(
        None, BLOCK_TEXTS).generation_backend == "hf"
    # At its default the field is not part of the fingerprint, so checkpoints written before it existed
    # still match; any other backend samples differently and must match.
    assert "generation_backend" not in SFTTrainer(config).config_fingerprint()
    hf = SFTTrainer(apply_overrides(config, ["generation_backend=hf"])).config_fingerprint()
    assert hf["generation_backend"] == "hf"


def test_swirl_eval_run_takes_a_backend(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setitem(decoding.BACKENDS, "hf", lambda *a, **kw: calls.append(1) or hf_generate_ids(*a, **kw))
    predictions = {}
    for backend in BACKENDS:
        out = tmp_path / backend
        assert cli.main(["run", "--bench", "textphysics", "--model", "tiny", "--limit", "2", "--max-new-tokens", "4",
                         "--bootstrap", "10", "--output", str(out), "--quiet", "--generation-backend", backend]) == 0
        predictions[backend] = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
        assert bool(calls) == (backend == "hf")
    assert predictions["fast"] == predictions["hf"]
    assert cli.main(["run", "--bench", "textphysics", "--model", "tiny", "--generation-backend", "vllm"]) == 2
    assert "unknown generation backend 'vllm'" in capsys.readouterr().err


def test_fast_loop_falls_back_to_hf_with_one_warning(monkeypatch, request):
    request.addfinalizer(decoding.fast_path_problem.cache_clear)
    model = _tiny()
    expected = _run("fast", model, eos_id=-1, max_new_tokens=8, repeats=2)
    # a release without the per-layer batch operations the loop uses
    monkeypatch.delattr(Cache, "batch_select_indices")
    decoding.fast_path_problem.cache_clear()
    with pytest.warns(RuntimeWarning, match="batch_select_indices.*generating with the 'hf' backend"):
        assert _run("fast", model, eos_id=-1, max_new_tokens=8, repeats=2) == expected
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once is enough
        assert _run("fast", model, eos_id=-1, max_new_tokens=8, repeats=2) == expected


SMOL = presets.PRESETS["smollm2-135m"]


@pytest.mark.skipif(not presets.installed(SMOL), reason=f"preset not installed ({SMOL.install})")
def test_greedy_ids_agree_on_smollm2():
    pair = WorldModelPair.load(SMOL.name, shared=True, max_length=256)
    states = ["The kettle is cold and full.", "A red ball rests on a table.", "Door: closed", "x=3"]
    actions = ["switch the kettle on", "push the ball to the left edge", "open the door", "add 4"]
    fast = pair.sample("fwm", states, actions, max_new_tokens=16, batch_size=4).completion_ids
    pair.generation_backend = "hf"
    assert pair.sample("fwm", states, actions, max_new_tokens=16, batch_size=4).completion_ids == fast
    assert all(fast) and any(len(r) == 16 for r in fast)
