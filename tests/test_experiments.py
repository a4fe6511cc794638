"""evals/experiments.py (and experiment_results.py) on a toy-sized setup: split rules, the method plan, resume, aggregation, rows, figures."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from evals import experiment_results, experiments, figures
from evals.experiment_results import aggregate, mean_se
from evals.experiments import EnvSetup, base_method, make_split
from evals.methods import CONTROLS

TOY = EnvSetup("textphysics", {"difficulty": "easy"}, labelled=15, unlabelled=25, test=6, horizon=2,
               horizon_episodes=3, tiny={"vocab_size": 300, "hidden_size": 32, "intermediate_size": 64,
                                         "num_hidden_layers": 1, "num_attention_heads": 2},
               max_length=160, max_target_tokens=24, warmup_epochs=1, sft={"epochs": 1, "batch_size": 8},
               swirl={"iterations": 1, "steps_per_phase": 1, "batch_size": 2, "fwm_group_size": 2,
                      "idm_group_size": 2, "learning_rate": 1e-4})


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
