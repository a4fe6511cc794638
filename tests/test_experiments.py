"""evals/experiments.py (and experiment_results.py) on a toy-sized setup: split rules, the method plan, resume, aggregation, rows, figures."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from evals import experiment_results, experiments, figures
from evals.experiment_results import aggregate, mean_se
from evals.experiments import EnvSetup, base_method, make_split
from evals.methods import CONTROLS
from swirl_envs.registry import make_benchmark
from swirl_envs.transition import Transition

TOY = EnvSetup("textphysics", {"difficulty": "easy"}, labelled=15, unlabelled=25, test=6, horizon=2,
               horizon_episodes=3, tiny={"vocab_size": 300, "hidden_size": 32, "intermediate_size": 64,
                                         "num_hidden_layers": 1, "num_attention_heads": 2},
               max_length=160, max_target_tokens=24, warmup_epochs=1, sft={"epochs": 1, "batch_size": 8},
               swirl={"iterations": 1, "steps_per_phase": 1, "batch_size": 2, "fwm_group_size": 2,
                      "idm_group_size": 2, "learning_rate": 1e-4})


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """experiments.main sets torch's thread count for the whole process (every core for smollm2-135m); the
    modules run after this one compare weights bit for bit, which needs the one thread they set."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_split_is_whole_episodes_and_hides_u_actions():
    split = make_split(TOY, seed=0)
    l_eps = {t.episode_id for t in split.labelled}
    u_eps = {t.episode_id for t in split.unlabelled}
    assert l_eps and u_eps and not l_eps & u_eps
    assert len(split.labelled) >= TOY.labelled and len(split.unlabelled) >= TOY.unlabelled
    assert all(t.action is not None for t in split.labelled)
    assert all(t.action is None for t in split.unlabelled)
    assert [t.state for t in split.oracle] == [t.state for t in split.unlabelled]
    assert all(t.action is not None for t in split.oracle)
    other = make_split(TOY, seed=1)
    assert {t.episode_id for t in other.labelled} != l_eps  # the seed picks the episodes


def test_mean_se_and_aggregate_gains():
    assert mean_se([1.0, 3.0]) == (2.0, 1.0)
    assert mean_se([5.0]) == (5.0, None)
    per_seed = {s: {"methods": {"sft": {"metrics": {"fwm/bleu": b}, "horizon": [b, b - 1]},
                                "swirl": {"metrics": {"fwm/bleu": w}, "horizon": [w, w - 2]}},
                    "train_seconds": {"sft": 1.0, "swirl": 2.0}}
                for s, (b, w) in enumerate([(10.0, 12.0), (12.0, 14.0)])}
    summary = aggregate(per_seed)
    gain = summary["methods"]["swirl"]["vs_sft"]["fwm/bleu"]
    assert gain["absolute"] == pytest.approx(2.0) and gain["relative"] == pytest.approx(2 / 11)
    assert gain["combined_se"] == pytest.approx(2 ** 0.5) and gain["beyond_se"] is True
    assert summary["methods"]["swirl"]["horizon"][1] == {"mean": 11.0, "se": 1.0}


def test_each_method_is_aggregated_over_its_own_seeds_and_compared_on_shared_ones():
    per_seed = {0: {"methods": {"sft": {"metrics": {"fwm/bleu": 10.0}}, "swirl": {"metrics": {"fwm/bleu": 15.0}}},
                    "train_seconds": {}},
                1: {"methods": {"sft": {"metrics": {"fwm/bleu": 20.0}}}, "train_seconds": {}}}
    summary = aggregate(per_seed)
    assert summary["seeds"] == [0, 1] and summary["methods"]["sft"]["seeds"] == [0, 1]
    swirl = summary["methods"]["swirl"]
    assert swirl["seeds"] == [0] and swirl["metrics"]["fwm/bleu"]["values"] == [15.0]
    gain = swirl["vs_sft"]["fwm/bleu"]  # against sft's seed 0 (10), not its two-seed mean (15)
    assert gain["seeds"] == [0] and gain["relative"] == pytest.approx(0.5) and gain["combined_se"] is None
    table = experiment_results.markdown_table("toy", {"env": "toy", **summary})
    assert "| swirl (seeds 0) |" in table and "| sft |" in table


def test_variants_name_their_base():
    assert base_method("swirl:nokl") == "swirl" and base_method("verify@8") == "verify@8"


def test_controls_train_only_when_named_with_their_data_and_dependencies(tmp_path, monkeypatch):
    toy = dataclasses.replace(TOY, warmup_epochs=0)
    split = make_split(toy, seed=0)
    trained = {}

    def fake_train(trainer, config, data, output, init):
        trained[output.name] = (trainer, config, data, init)
        return output / "final", 0.0

    monkeypatch.setattr(experiments, "_train", fake_train)
    assert not set(CONTROLS) & set(experiments.METHODS)  # not in the default method list
    folders, _ = experiments.train_methods(toy, split, 0, tmp_path, tuple(CONTROLS), {})
    assert list(trained) == ["sft", "sft-oracle", *CONTROLS] and set(CONTROLS) <= set(folders)
    assert all(trained[m][0] == "swirl" and trained[m][3] == tmp_path / "sft" / "final" for m in CONTROLS)
    shuffled, oracle, strong = (trained[m][1:3] for m in CONTROLS)
    assert shuffled[0]["reward_shuffle"] is True and shuffled[1] is split.unlabelled
    assert oracle[0]["latent_action"] == "oracle" and oracle[1] is split.oracle  # the one with U's actions
    assert strong[0]["judge_idm"] == str(tmp_path / "sft-oracle" / "final") and strong[1] is split.unlabelled
    assert all(trained[m][1]["iterations"] == toy.swirl["iterations"] for m in CONTROLS)
    trained.clear()
    experiments.train_methods(toy, split, 0, tmp_path, ("verify@8", "swirl:strong-judge"), {})
    assert list(trained) == ["sft", "sft-oracle", "swirl:strong-judge"]
    trained.clear()
    experiments.train_methods(toy, split, 0, tmp_path, ("swirl-idm2fwm:from-bootstrap",), {})
    assert list(trained) == ["sft", "bootstrap", "swirl-idm2fwm:from-bootstrap"]
    trainer, config, data, init = trained["swirl-idm2fwm:from-bootstrap"]
    assert trainer == "swirl" and config["mode"] == "idm2fwm" and data is split.unlabelled
    assert init == tmp_path / "bootstrap" / "final"  # Phase I starts from bootstrap's FWM


def test_end_to_end_resume_rows_and_figures(tmp_path, monkeypatch):
    monkeypatch.setitem(experiments.ENVS, "textphysics", TOY)
    board = tmp_path / "textphysics.json"
    shutil.copy(Path(__file__).parents[1] / "leaderboards" / "textphysics.json", board)
    argv = ["--env", "textphysics", "--seeds", "0", "1", "--methods", "sft,verify@8,swirl,swirl:nokl",
            "--set", "swirl:nokl.beta=0", "--output", str(tmp_path / "runs"), "--leaderboard", str(board)]
    assert experiments.main(argv) == 0
    root = tmp_path / "runs" / "textphysics" / "main"
    summary = json.loads((root / "summary.json").read_text())
    assert list(summary["methods"]) == ["sft", "verify@8", "swirl", "swirl:nokl"]
    for row in summary["methods"].values():
        assert len(row["metrics"]["fwm/bleu"]["values"]) == 2
    assert len(summary["methods"]["swirl"]["horizon"]) == 2
    assert "horizon" not in summary["methods"]["verify@8"]
    nokl = json.loads((root / "seed0" / "swirl:nokl" / "final" / "trainer_state.json").read_text())
    assert nokl["config"]["beta"] == 0 and nokl["config"]["mode"] == "iterative"

    rows = [r for r in json.loads(board.read_text())["rows"] if r.get("model") == experiment_results.EXPERIMENT_MODEL]
    assert [r["method"] for r in rows] == list(summary["methods"])
    assert rows[0]["metrics"]["fwm/bleu"]["n"] == 2 and rows[0]["seeds"] == [0, 1]

    def no_training(*args, **kwargs):
        raise AssertionError("a finished experiment must not train again")

    monkeypatch.setattr(experiments, "train_methods", no_training)
    assert experiments.main(argv) == 0  # every seed's results.json is complete: nothing reruns
    again = json.loads((root / "summary.json").read_text())
    assert again["methods"]["swirl"]["metrics"] == summary["methods"]["swirl"]["metrics"]
    assert argv[2:5] == ["--seeds", "0", "1"]
    assert experiments.main([*argv[:2], "--seeds", "0", *argv[5:]]) == 0
    kept = json.loads((root / "summary.json").read_text())  # a one-seed run keeps the other finished seed
    assert kept["seeds"] == [0, 1] and kept["methods"]["swirl"]["metrics"] == summary["methods"]["swirl"]["metrics"]

    assert figures.main([str(root / "summary.json"), "--output", str(tmp_path / "fig")]) == 0
    assert (tmp_path / "fig" / "gains.svg").read_text().startswith("<?xml")
    assert (tmp_path / "fig" / "horizon.png").read_bytes().startswith(b"\x89PNG")


def test_figures_draw_one_bar_per_method_and_one_line_per_curve():
    per_seed = {s: {"methods": {m: {"metrics": {"fwm/bleu": v + d}, "horizon": [v + d, v]}
                                for m, d in (("sft", 0.0), ("swirl", 2.0), ("swirl:nokl", 1.0), ("bootstrap", -1.0))},
                    "train_seconds": {}} for s, v in enumerate([10.0, 12.0])}
    summary = {"env": "toy", **aggregate(per_seed)}
    assert summary["headline"] == "fwm/bleu"
    gains = figures.gains_figure([summary])
    assert [len(bars) for ax in gains.axes for bars in ax.containers if hasattr(bars, "patches")] == [2]
    assert "+18.2±" in figures.render(gains, "svg").decode()  # swirl and bootstrap; variants are not plotted
    lines = [c.get_label() for ax in figures.horizon_figure([summary]).axes for c in ax.containers]
    assert lines == ["sft", "bootstrap", "swirl"]


def test_image_environment_fits_a_codec_and_scores_psnr(tmp_path, monkeypatch):
    toy = EnvSetup("visualphysics", {"difficulty": "easy", "image_size": 16}, labelled=10, unlabelled=10, test=4,
                   horizon=2, horizon_episodes=2, headline="fwm/psnr",
                   codec={"image_size": (16, 16), "patch": 4, "codebook_size": 16, "iters": 2},
                   tiny=TOY.tiny, max_length=96, max_target_tokens=40, warmup_epochs=1, sft=TOY.sft,
                   swirl=TOY.swirl)
    monkeypatch.setitem(experiments.ENVS, "visualphysics", toy)
    argv = ["--env", "visualphysics", "--seeds", "0", "--methods", "sft,swirl", "--output", str(tmp_path)]
    assert experiments.main(argv) == 0
    summary = json.loads((tmp_path / "visualphysics" / "main" / "summary.json").read_text())
    assert summary["headline"] == "fwm/psnr"
    sft = summary["methods"]["sft"]
    assert sft["metrics"]["fwm/psnr"]["mean"] > 0 and len(sft["horizon"]) == 2
    assert all(p["mean"] > 0 for p in sft["horizon"])  # PSNR of decoded predictions, in dB
    assert (tmp_path / "visualphysics" / "main" / "seed0" / "init-random" / "codec").is_dir()


def test_each_row_names_the_command_that_reproduces_it():
    summary = {"env": "textweb", "seeds": [0, 1, 2], "tag": "main", "overrides": {"swirl:x3": {"steps_per_phase": 48}}}
    assert experiment_results.method_command(summary, "swirl") == (
        "python -m evals.experiments --env textweb --seeds 0 1 2 --methods swirl")
    assert experiment_results.method_command(summary, "swirl:x3").endswith("--methods swirl:x3 --set swirl:x3.steps_per_phase=48")


def test_set_is_typed_and_checked_against_the_methods_trainer(capsys):
    assert experiments.method_overrides(["swirl:g4.fwm_group_size=4", "sft.tiny.hidden_size=64",
                                         "swirl:x.phase_order=idm,fwm"]) == {
        "swirl:g4": {"fwm_group_size": 4}, "sft": {"tiny.hidden_size": 64}, "swirl:x": {"phase_order": ("idm", "fwm")}}
    for bad, says in [("swirl:g4.fwm_group_size=4.5", "fwm_group_size must be an int"),
                      ("swirl.lerning_rate=1", "unknown config key 'lerning_rate'"),
                      ("verify@8.beta=0", "not a method this script trains"), ("beta=0", "METHOD.KEY=VALUE")]:
        with pytest.raises(SystemExit) as exit_info:
            experiments.main(["--env", "textphysics", "--set", bad])
        err = capsys.readouterr().err.strip().splitlines()
        assert exit_info.value.code == 2 and says in err[-1], (bad, err)


def test_copy_baseline_scores_y_equals_x_on_hand_made_transitions():
    def pair(x, y):
        return Transition(state=x, next_state=y, action="noop", episode_id="e", step=0)

    assert experiments.copy_baseline([pair("a b c d", "a b c d")], "fwm/bleu") == {"fwm/bleu": 100.0}
    assert experiments.copy_baseline([pair("a b c d", "e f g h")], "fwm/bleu") == {"fwm/bleu": 0.0}
    # x is the prediction, y the reference: every n-gram of x is in y, and the brevity penalty exp(1 - 8/4)
    # is the whole loss (the other way round the precisions would halve instead)
    assert experiments.copy_baseline([pair("a b c d", "a b c d e f g h")], "fwm/bleu")["fwm/bleu"] == pytest.approx(
        100 * math.exp(-1), abs=1e-3)
    # toolsim's headline scores the changed lines only: copying x changes none, however much of y it repeats
    tool = pair("query: weather\ncall: get_weather", "query: weather\ncall: get_weather\nresponse: 21 C, dry")
    assert experiments.copy_baseline([tool], "fwm/bleu")["fwm/bleu"] > 30
    assert experiments.copy_baseline([tool], "fwm/delta_bleu") == {"fwm/delta_bleu": 0.0}
    assert experiments.SMOLLM2_ENVS["toolsim"].headline == "fwm/delta_bleu"
    # API-Bank's results are mostly one to three words: its headline counts exact matches, as the card does
    same = [pair(' "success" ', '"success"'), pair("state", "other"), pair("a", "a"), pair("a b", "a  b")]
    assert experiments.copy_baseline(same, "fwm/exact_match") == {"fwm/exact_match": 0.5}
    assert experiments.SMOLLM2_ENVS["apibank"].headline == "fwm/exact_match"


def fake_trainer(trained: dict):
    """_train without training: records each run and writes the files run_compute reads (a swirl run logs one
    metrics line per step, alternating phases as the trainer does)."""
    def train(trainer, config, data, output, init):
        trained[output.name] = (trainer, config, data, init)
        steps = 4 if trainer == "swirl" else 3
        (output / "final").mkdir(parents=True, exist_ok=True)
        (output / "final" / "trainer_state.json").write_text(json.dumps(
            {"trainer": trainer, "step": steps, "complete": True, "config": {k: v for k, v in config.items()
                                                                             if k not in ("progress",)}}))
        phases = ["phase1-fwm", "phase1-fwm", "phase2-idm", "phase2-idm"] if trainer == "swirl" else [None] * 3
        (output / "metrics.jsonl").write_text("".join(json.dumps({"step": i + 1, "phase": p}) + "\n"
                                                      for i, p in enumerate(phases)))
        (output / "wall_time_s.json").write_text("12.5")
        (output / "load_average.json").write_text("[2.5, 2.0, 1.5]")
        return output / "final", 12.5
    return train


def no_smollm2(*args, **kwargs):
    raise AssertionError("the SmolLM2 plan must not load or build a model")


def test_smollm2_plan_sets_model_lora_and_sizes_without_loading(tmp_path, monkeypatch):
    from swirl_core import models, presets

    for module, name in [(presets, "resolve_model"), (presets, "converted_folder"), (models, "build_tiny_pair"),
                         (models.WorldModelPair, "load")]:
        monkeypatch.setattr(module, name, no_smollm2)
    setup = experiments.SMOLLM2_ENVS["textweb"]
    split = make_split(TOY, seed=0)  # the toy's data: the plan, not the sizes of L, is under test
    trained = {}
    monkeypatch.setattr(experiments, "_train", fake_trainer(trained))
    overrides = experiments.method_overrides(["sft.lora.r=8", "swirl.lora.target_modules=q_proj,v_proj"])
    methods = (*experiments.METHODS, *CONTROLS)
    folders, _ = experiments.train_methods(setup, split, 0, tmp_path, methods, overrides, "smollm2-135m")
    assert set(methods) <= set(folders) and not (tmp_path / "init-random").exists()
    for method, (trainer, config, _, init) in trained.items():
        assert config["model"] == "smollm2-135m" and config["lora"]["enabled"] is True and "tiny" not in config
        assert (config["max_length"], config["max_target_tokens"], config["keep_head"]) == (512, 160, 0.75)
        built = experiments.trainer_config(trainer, config)  # the real config, typed: nothing is loaded
        assert built.model == "smollm2-135m" and built.lora.enabled and built.lora.alpha == 32
        assert built.lora.r == (8 if method == "sft" else 16), method
        assert built.lora.target_modules == (("q_proj", "v_proj") if method == "swirl" else
                                             tuple(experiments.SMOLLM2_FIELDS["lora"]["target_modules"]))
        # SFT-like runs start from the preset itself (the trainer loads it), the rest from their SFT pair
        assert init == (None if method in ("sft", "sft-shared", "sft-oracle") else
                        tmp_path / ("sft-shared" if method == "swirl-shared" else "sft") / "final"), method
    assert trained["sft"][1]["epochs"] == 9 and trained["sft"][1]["learning_rate"] == 2e-4
    for name in ("textphysics", "textweb", "toolsim"):  # SFT trains the oracle's steps: its lead is U's actions
        sizes = experiments.SMOLLM2_ENVS[name]
        assert sizes.sft["epochs"] * sizes.labelled == sizes.oracle_epochs * (sizes.labelled + sizes.unlabelled)
    assert trained["sft-oracle"][1]["epochs"] == setup.oracle_epochs
    assert trained["bootstrap"][1]["learning_rate"] == 1e-4
    assert {trained[m][1]["steps_per_phase"] for m in ("swirl", "swirl-idm2fwm", *CONTROLS)} == {8}
    assert trained["swirl-shared"][1]["shared"] is True and trained["swirl:oracle-z"][2] is split.oracle
    assert experiments.SMOLLM2_ENVS["toolsim"].changes_only  # its budget is test_pretrained's to check
    assert all(config["changes_only"] is False for _, config, _, _ in trained.values())  # textweb writes Y whole
    assert "visualphysics" not in experiments.SMOLLM2_ENVS  # image benchmarks stay tiny codec pairs


def test_tiny_stays_the_default_and_models_never_share_a_folder(tmp_path, monkeypatch, capsys):
    assert experiments.results_root(tmp_path, "tiny", "textweb", "main") == tmp_path / "textweb" / "main"
    assert experiments.results_root(tmp_path, "smollm2-135m", "textweb", "main") == (
        tmp_path / "smollm2-135m" / "textweb" / "main")
    assert experiments.model_setups("tiny") is experiments.ENVS and experiments.model_fields("tiny") == {}
    tiny_plan = {}
    monkeypatch.setattr(experiments, "_train", fake_trainer(tiny_plan))
    experiments.train_methods(dataclasses.replace(TOY, warmup_epochs=0), make_split(TOY, seed=0), 0, tmp_path / "t",
                              ("sft",), {})
    assert tiny_plan["sft"][1]["tiny"] == TOY.tiny and "model" not in tiny_plan["sft"][1]  # as before
    assert tiny_plan["sft"][3] == tmp_path / "t" / "init-random"
    for argv, says in [(["--env", "visualphysics", "--model", "smollm2-135m"], "no visualphysics setup"),
                       (["--env", "textweb", "--model", "smollm2-135m", "--warmup-epochs", "1"], "tiny only")]:
        with pytest.raises(SystemExit) as exit_info:
            experiments.main(argv)
        assert exit_info.value.code == 2 and says in capsys.readouterr().err


def test_smollm2_run_has_its_own_folder_rows_copy_baseline_and_compute(tmp_path, monkeypatch):
    smol = dataclasses.replace(experiments.SMOLLM2_ENVS["textweb"], labelled=15, unlabelled=25, test=6)
    monkeypatch.setitem(experiments.SMOLLM2_ENVS, "textweb", smol)
    trained = {}
    monkeypatch.setattr(experiments, "_train", fake_trainer(trained))
    scores = {"sft": 70.0, "swirl": 72.0}

    def fake_evaluate(setup, method, folder, seed, work):
        return {"metrics": {"fwm/bleu": scores[method] + seed, "idm/exact_match": 0.5}, "data_hash_test": "sha256:" + "0" * 64}

    monkeypatch.setattr(experiments, "evaluate_method", fake_evaluate)
    board = tmp_path / "textweb.json"
    shutil.copy(Path(__file__).parents[1] / "leaderboards" / "textweb.json", board)
    tiny_rows = [r for r in json.loads(board.read_text())["rows"] if r["model"] == experiment_results.EXPERIMENT_MODEL]
    default_rows = [r for r in json.loads(board.read_text())["rows"] if r["model"] == "smollm2-135m+lora"]
    assert tiny_rows and default_rows
    argv = ["--env", "textweb", "--model", "smollm2-135m", "--seeds", "0", "1", "--methods", "sft,swirl",
            "--output", str(tmp_path / "runs"), "--leaderboard", str(board)]
    assert experiments.main(argv) == 0
    assert not (tmp_path / "runs" / "textweb").exists()  # the tiny tree is left alone
    root = tmp_path / "runs" / "smollm2-135m" / "textweb" / "main"
    summary = json.loads((root / "summary.json").read_text())
    assert summary["model"] == "smollm2-135m" and summary["setup"]["warmup_epochs"] == 0

    test = list(make_benchmark("textweb", labelled=True, difficulty="easy").transitions("test", limit=6))
    copy = experiments.copy_baseline(test, "fwm/bleu")["fwm/bleu"]
    assert 0 < copy < 100 and summary["copy"]["fwm/bleu"]["values"] == [copy, copy]
    seed0 = json.loads((root / "seed0" / "results.json").read_text())
    assert seed0["copy"] == {"fwm/bleu": copy} and seed0["model"] == "smollm2-135m"
    # swirl: batch 4, 2 Phase I steps of 4 rollouts + 1 sampled z per pair, 2 Phase II steps of 8 rollouts
    assert seed0["compute"]["swirl"] == {"steps": 4, "samples": 2 * 4 * (4 + 1) + 2 * 4 * 8, "train_seconds": 12.5,
                                         "load_average": [2.5, 2.0, 1.5]}
    assert summary["methods"]["sft"]["compute"] == {"steps": 3, "samples": 0, "train_seconds": 12.5, "load_1m": 2.5}

    rows = json.loads(board.read_text())["rows"]
    assert [r for r in rows if r["model"] == experiment_results.EXPERIMENT_MODEL] == tiny_rows  # untouched
    assert [r for r in rows if r["model"] == "smollm2-135m+lora"] == default_rows  # the defaults' CI rows stay
    mine = [r for r in rows if r["model"] == "smollm2-135m+lora-experiment"]
    assert [r["method"] for r in mine] == ["sft", "swirl"]
    assert mine[1]["command"] == ("python -m evals.experiments --env textweb --model smollm2-135m --seeds 0 1 "
                                  "--methods swirl")
    table = experiment_results.markdown_table("textweb", summary)
    assert f"| copy (y = x) | {copy:.2f} ± 0.00 |" in table
    assert "| swirl | 72.50 ± 0.50 | +2.8%" in table and "| 4 | 104 | 0.2 | 2.5 |" in table


def test_low_label_variant_has_its_own_tag_split_and_reproducing_command(tmp_path, monkeypatch, capsys):
    smol = dataclasses.replace(experiments.SMOLLM2_ENVS["toolsim"], labelled=15, unlabelled=25, test=6)
    monkeypatch.setitem(experiments.SMOLLM2_ENVS, "toolsim", smol)
    trained = {}
    monkeypatch.setattr(experiments, "_train", fake_trainer(trained))
    monkeypatch.setattr(experiments, "evaluate_method", lambda setup, method, folder, seed, work: {
        "metrics": {"fwm/delta_bleu": 50.0}, "data_hash_test": "sha256:" + "0" * 64})
    common = ["--model", "smollm2-135m", "--seeds", "0", "--methods", "sft", "--output", str(tmp_path)]
    argv = ["--env", "toolsim", *common]
    for bad, says in [(["--env", "toolsim", "--labelled", "5"], "name the variant with --tag"),
                      (["--env", "toolsim", "--labelled", "0", "--tag", "l0"], "at least one transition"),
                      (["--env", "stabletoolbench", "--labelled", "5", "--tag", "l5"], "applies to simulators")]:
        with pytest.raises(SystemExit) as exit_info:
            experiments.main(common + bad)
        assert exit_info.value.code == 2 and says in capsys.readouterr().err
    assert not trained  # every refusal came before any training

    assert experiments.main(argv + ["--labelled", "5", "--tag", "l5"]) == 0
    summary = json.loads((tmp_path / "smollm2-135m" / "toolsim" / "l5" / "summary.json").read_text())
    assert summary["setup"]["labelled"] == 5 and summary["setup"]["unlabelled"] == 25
    assert summary["setup_overrides"] == {"labelled": 5}
    seed0 = json.loads((tmp_path / "smollm2-135m" / "toolsim" / "l5" / "seed0" / "results.json").read_text())
    assert 5 <= seed0["split"]["labelled"]["transitions"] < 15 and seed0["split"]["unlabelled"]["transitions"] >= 25
    assert experiment_results.method_command(summary, "sft") == (
        "python -m evals.experiments --env toolsim --model smollm2-135m --seeds 0 --methods sft --tag l5 "
        "--labelled 5")
    # aggregating needs no flags: the variant's setup comes from its summary
    assert experiments.main(["--env", "toolsim", "--model", "smollm2-135m", "--seeds", "0", "--output",
                             str(tmp_path), "--tag", "l5", "--aggregate-only"]) == 0
    again = json.loads((tmp_path / "smollm2-135m" / "toolsim" / "l5" / "summary.json").read_text())
    assert again["setup"] == summary["setup"] and again["setup_overrides"] == {"labelled": 5}


def test_timed_train_counts_a_resumed_run_from_its_start(tmp_path):
    class Resumed:  # finishes in an instant, as a resumed run's last invocation may, after 300 s logged before
        def train(self, data, output, init=None):
            (output / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "time": 100.0 * s}) + "\n"
                                                          for s in (1, 2, 3)))
            return output / "final"

    final, seconds = experiments.timed_train(Resumed(), [], tmp_path, None)
    assert final == tmp_path / "final" and seconds == 300.0
    assert json.loads((tmp_path / "wall_time_s.json").read_text()) == 300.0
    assert experiments.timed_train(Resumed(), [], tmp_path, None)[1] == 300.0  # recorded once, then read


def test_two_invocations_on_one_seed_keep_each_others_methods(tmp_path, monkeypatch):
    """A second invocation may finish a method on the same seed while this one trains (hours apart on SmolLM2):
    results.json must end with both, not with whichever invocation wrote last."""
    smol = dataclasses.replace(experiments.SMOLLM2_ENVS["textweb"], labelled=15, unlabelled=25, test=6)
    monkeypatch.setitem(experiments.SMOLLM2_ENVS, "textweb", smol)
    monkeypatch.setattr(experiments, "_train", fake_trainer({}))
    result_file = tmp_path / "runs" / "smollm2-135m" / "textweb" / "main" / "seed0" / "results.json"

    def fake_evaluate(setup, method, folder, seed, work):
        if method == "swirl":  # meanwhile, another invocation finished sft-oracle on this seed
            other = json.loads(result_file.read_text())
            other["methods"]["sft-oracle"] = {"metrics": {"fwm/bleu": 90.0}}
            result_file.write_text(json.dumps(other))
        return {"metrics": {"fwm/bleu": 70.0, "idm/exact_match": 0.5}, "data_hash_test": "sha256:" + "0" * 64}

    monkeypatch.setattr(experiments, "evaluate_method", fake_evaluate)
    argv = ["--env", "textweb", "--model", "smollm2-135m", "--seeds", "0", "--output", str(tmp_path / "runs")]
    assert experiments.main([*argv, "--methods", "sft"]) == 0
    assert experiments.main([*argv, "--methods", "sft,swirl"]) == 0
    assert sorted(json.loads(result_file.read_text())["methods"]) == ["sft", "sft-oracle", "swirl"]


def test_a_tagged_runs_rows_sit_beside_the_main_runs(tmp_path):
    board = tmp_path / "toolsim.json"
    shutil.copy(Path(__file__).parents[1] / "leaderboards" / "toolsim.json", board)
    before = json.loads(board.read_text())["rows"]
    main_rows = [r for r in before if r["model"] == "smollm2-135m+lora-experiment"]
    assert main_rows
    summary = {"model": "smollm2-135m", "tag": "l30", "overrides": {}, "model_fields": {"lora": {"enabled": True}}}
    assert experiment_results.row_model(summary, "sft") == "smollm2-135m+lora-experiment-l30"
    assert experiment_results.row_model({**summary, "tag": "main"}, "sft") == "smollm2-135m+lora-experiment"
    assert experiment_results.row_model({"tag": "ablate", "overrides": {}}, "sft") == "tiny-experiment-ablate"
    variant = {**main_rows[0], "model": experiment_results.row_model(summary, "sft")}
    experiment_results.write_leaderboard(board, [variant])
    after = json.loads(board.read_text())["rows"]
    assert [r for r in after if r["model"] == "smollm2-135m+lora-experiment"] == main_rows  # untouched
    assert [r for r in after if r["model"].endswith("-l30")] == [variant]
