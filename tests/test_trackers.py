"""Experiment trackers (`report_to`): tensorboard and trackio offline on a short tiny SFT run, the same
numbers as metrics.jsonl, the config as hyperparameters, main process only, one-line errors."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest
from support import ball_world, runner_script

from evals import cli
from evals.leaderboard import EXIT_USAGE
from swirl_core.config import apply_overrides
from swirl_core.logging import MetricsLogger, check_trackers, hyperparameters, read_metrics, tracker_names
from swirl_core.sft import SFTConfig, SFTTrainer
from swirl_envs.errors import SwirlError

SMALL = ["progress=false", "max_length=48", "max_target_tokens=16", "tiny.vocab_size=320", "tiny.hidden_size=64",
         "tiny.intermediate_size=128", "batch_size=8", "max_steps=3"]
installed = {name: importlib.util.find_spec(name) is not None for name in ("tensorboard", "trackio", "wandb")}


def test_report_to_names_are_checked_when_the_config_is_made():
    assert tracker_names("none") == [] and tracker_names("") == []
    assert tracker_names(" tensorboard,trackio,tensorboard ") == ["tensorboard", "trackio"]
    assert apply_overrides(SFTConfig(), ["report_to=tensorboard,wandb"]).report_to == "tensorboard,wandb"
    with pytest.raises(SwirlError, match="unknown tracker mlflow"):
        apply_overrides(SFTConfig(), ["report_to=mlflow"])


def test_hyperparameters_are_the_flat_config():
    flat = hyperparameters(apply_overrides(SFTConfig(), ["report_to=tensorboard", "tiny.hidden_size=64"]))
    assert flat["report_to"] == "tensorboard" and flat["tiny.hidden_size"] == 64 and flat["lora.enabled"] is False
    assert all(v is None or isinstance(v, bool | int | float | str) for v in flat.values())


def test_a_missing_tracker_package_is_one_line_before_training(monkeypatch, tmp_path, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(SwirlError, match=r"needs wandb: pip install wandb$"):
        check_trackers("tensorboard,wandb")
    with pytest.raises(SwirlError, match="pip install wandb"):
        SFTTrainer(apply_overrides(SFTConfig(), ["report_to=wandb"]))
    out = tmp_path / "run"
    code = cli.main(["train", "--bench", "textphysics", "--method", "sft", "--limit", "4", "--output", str(out),
                     *[a for item in SMALL for a in ("--set", item)], "--set", "report_to=wandb"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_USAGE and "pip install wandb" in err[-1] and "Traceback" not in "\n".join(err)
    assert not (out / "metrics.jsonl").exists()  # nothing trained


@pytest.mark.skipif(not installed["tensorboard"], reason="pip install swirl-suite[trackers]")
def test_tensorboard_gets_the_metrics_jsonl_scalars_and_the_config(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    SFTTrainer(apply_overrides(SFTConfig(), [*SMALL, "report_to=tensorboard"])).train(ball_world(16), out)
    lines = read_metrics(out)
    assert [r["step"] for r in lines] == [1, 2, 3]
    events = EventAccumulator(str(out / "tensorboard")).Reload()
    tags = set(events.Tags()["scalars"])
    expected = {"loss", "loss/fwm", "loss/idm", "grad_norm/fwm", "lr", "epoch", "tokens/idm"}
    assert expected <= tags
    assert tags == {k for k, v in lines[0].items() if k not in ("step", "time") and isinstance(v, int | float)}
    for tag in ("loss", "loss/idm", "grad_norm/fwm"):
        logged = [(e.step, e.value) for e in events.Scalars(tag)]
        assert logged == [(r["step"], pytest.approx(r[tag], rel=1e-6)) for r in lines]
    # accelerate's TensorBoardTracker keeps the hyperparameters beside the events (hparams.yml)
    (stored,) = (out / "tensorboard").glob("*/hparams.yml")
    assert "report_to: tensorboard" in stored.read_text() and "tiny.hidden_size: 64" in stored.read_text()


@pytest.mark.skipif(not installed["tensorboard"], reason="pip install swirl-suite[trackers]")
def test_only_the_main_process_reports(tmp_path):
    config = apply_overrides(SFTConfig(), [*SMALL, "report_to=tensorboard"])
    with MetricsLogger(tmp_path, total_steps=1, progress=False, config=config, main=False) as log:  # rank 1
        assert log.trackers == []
        log.log(1, {"loss": 1.0})
    assert not tmp_path.joinpath("metrics.jsonl").exists() and not (tmp_path / "tensorboard").exists()


TRACKIO_RUN = runner_script('''
    import json, sys
    from swirl_core import apply_overrides
    from swirl_core.sft import SFTConfig, SFTTrainer
    from trackio.sqlite_storage import SQLiteStorage
    out = sys.argv[1]
    SFTTrainer(apply_overrides(SFTConfig(), json.loads(sys.argv[2]))).train(ball_world(16), out)
    (run,) = SQLiteStorage.get_runs("swirl")
    print("RESULT", json.dumps({"run": run, "logs": SQLiteStorage.get_logs("swirl", run),
                      "config": SQLiteStorage.get_run_config("swirl", run)}))
''')


@pytest.mark.skipif(not installed["trackio"], reason="pip install swirl-suite[trackers]")
def test_trackio_logs_offline_to_a_local_directory(tmp_path):
    # trackio reads TRACKIO_DIR when it is imported: a fresh process keeps the user's own trackio folder clean
    env = {**os.environ, "TRACKIO_DIR": str(tmp_path / "trackio"), "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-c", TRACKIO_RUN, str(out), json.dumps([*SMALL, "report_to=trackio"])],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (result,) = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    got = json.loads(result.removeprefix("RESULT "))
    assert got["run"] == "sft-run" and list((tmp_path / "trackio").glob("*.db"))
    lines = read_metrics(out)
    assert [log["step"] for log in got["logs"]] == [r["step"] for r in lines]
    for logged, line in zip(got["logs"], lines, strict=True):
        assert logged["loss"] == pytest.approx(line["loss"]) and logged["loss/fwm"] == pytest.approx(line["loss/fwm"])
    assert got["config"]["report_to"] == "trackio" and got["config"]["tiny.hidden_size"] == 64


def test_a_resumed_log_counts_the_time_before_the_stop_and_drops_the_lost_steps(tmp_path):
    rows = [{"step": 1, "loss": 2.0, "time": 30.0}, {"step": 2, "loss": 1.5, "time": 60.0},
            {"step": 3, "loss": 1.2, "time": 90.0}]  # step 3 came after the checkpoint the run resumes from
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with MetricsLogger(tmp_path, total_steps=4, progress=False, resume_step=2) as log:
        log.log(3, {"loss": 1.1})
    steps = read_metrics(tmp_path)
    assert [r["step"] for r in steps] == [1, 2, 3] and steps[2]["loss"] == 1.1
    assert 60.0 <= steps[2]["time"] < 90.0  # the time after step 2's checkpoint, not since this process began
    with MetricsLogger(tmp_path, total_steps=4, progress=False) as log:  # a fresh run starts at 0
        log.log(1, {"loss": 2.0})
    assert read_metrics(tmp_path)[0]["time"] < 30.0
