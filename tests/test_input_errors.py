"""Bad input gets exit 2 and one line naming what is at fault, before expensive work; damaged data is shown."""

from __future__ import annotations

import json
import shutil

import pytest
from support import block_pair

from evals import cli
from evals.leaderboard import EXIT_USAGE


def one_line_error(capsys, argv: list[str], *needles: str) -> str:
    assert cli.main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "warning" not in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert all(needle in lines[0] for needle in needles), lines[0]
    return lines[0]


@pytest.mark.parametrize("argv, needles", [
    (["run", "--bench", "textphysics", "--temperature", "-1"], ("--temperature", ">= 0")),
    (["run", "--bench", "textphysics", "--temperature", "nan"], ("--temperature",)),
    (["run", "--bench", "textphysics", "--top-p", "5"], ("--top-p", "(0, 1]")),
    (["serve", "--port", "99999", "--cache-dir", "CACHE"], ("--port", "0-65535")),
    (["train", "--bench", "textphysics", "--method", "sft", "--limit", "4", "--set", "tiny.hidden_size=-5"],
     ("tiny.hidden_size", "positive")),
    (["train", "--bench", "textphysics", "--method", "sft", "--limit", "4", "--set", "learning_rate=nan"],
     ("learning_rate", "finite")),
    (["train", "--bench", "textphysics", "--method", "sft", "--limit", "4", "--set", "lora.r=0"], ("lora",)),
    (["run", "--bench", "textphysics", "--checkpoint", "sft=does/not/exist"], ("sft=does/not/exist", "no such")),
])
def test_argument_errors(capsys, tmp_path, argv, needles):
    argv = [str(tmp_path / a) if a == "CACHE" else a for a in argv]
    one_line_error(capsys, argv, *needles)
    assert not (tmp_path / "CACHE").exists()  # nothing created before the check


@pytest.fixture()
def saved_pair(tmp_path):
    return block_pair().save(tmp_path / "pair")


def test_damaged_weights_and_missing_config_name_the_file(capsys, saved_pair):
    argv = ["run", "--bench", "textphysics", "--checkpoint", f"sft={saved_pair}", "--limit", "1",
            "--output", str(saved_pair.parent / "run")]
    weights = saved_pair / "fwm" / "model.safetensors"
    original = weights.read_bytes()
    weights.write_bytes(original[:100])
    one_line_error(capsys, argv, str(saved_pair / "fwm"), "unreadable weights")
    weights.write_bytes(b"\x00" * 64)
    one_line_error(capsys, argv, "unreadable weights")
    weights.write_bytes(original)
    (saved_pair / "idm" / "config.json").unlink()
    one_line_error(capsys, argv, str(saved_pair / "idm"), "no config.json")


def test_nan_and_infinity_are_not_numbers(capsys, tmp_path):
    board = json.loads(open("leaderboards/textphysics.json").read())
    text = json.dumps(board).replace('"value": ', '"value": NaN, "was": ', 1)
    assert "NaN" in text
    (tmp_path / "board.json").write_text(text)
    report = tmp_path / "report.json"
    report.write_text('{"schema_version": "1.2", "value": Infinity}')
    one_line_error(capsys, ["check", "--leaderboard", str(tmp_path / "board.json"), "--report", str(report)],
                   "NaN is not a JSON number")
    one_line_error(capsys, ["check", "--leaderboard", "leaderboards/textphysics.json", "--report", str(report)],
                   "Infinity is not a JSON number")


def test_damaged_records_are_shown_and_strict_refuses(capsys, tmp_path):
    # The bundled StableToolBench copy carries one empty upstream file; damage one more.
    from swirl_envs.stabletoolbench.loader import bundled_data_dir

    data = tmp_path / "data"
    shutil.copytree(bundled_data_dir(), data)
    victim = sorted(data.rglob("G1_answer/*.json"))[0]
    victim.write_text(victim.read_text()[:200])
    base = ["run", "--bench", "stabletoolbench", "--data-dir", str(data), "--model", "tiny", "--methods", "base", "--limit", "2",
            "--max-new-tokens", "4", "--threads", "1"]
    line = one_line_error(capsys, [*base, "--strict"], "damaged record(s)")
    assert "(0 bytes)" in line or victim.name in line
    assert cli.main([*base, "--output", str(tmp_path / "run"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err.count("skipped 2 damaged record(s)") == 2 and victim.name in err
    found = json.loads((tmp_path / "run" / "report.json").read_text())["benchmark"]["load_problems"]
    assert found["count"] == 2 and any(victim.name in p for p in found["first"])
    assert "Data warning" in (tmp_path / "run" / "report.md").read_text()


def test_train_help_lists_every_config_field(capsys):
    from swirl_core.config import config_keys
    from swirl_core.registry import BUILTIN_TRAINERS, get_trainer

    assert cli.main(["train", "--help"]) == 0
    text = capsys.readouterr().out
    for name in BUILTIN_TRAINERS:
        for key in config_keys(get_trainer(name).config_class()):
            assert f"  {key}=" in text, (name, key)


def test_list_keeps_full_names_when_piped(capsys):
    assert cli.main(["list"]) == 0
    assert "swirl/StableToolBench-v0" in capsys.readouterr().out
