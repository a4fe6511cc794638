"""The `swirl-eval` command line: help, exit codes, one-line errors, and the real run/train path on a tiny model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evals import cli
from evals.leaderboard import EXIT_OK, EXIT_REFUSED, EXIT_REGRESSION, EXIT_USAGE
from evals.report import build_report
from evals.runner import dumps
from swirl_envs.errors import SwirlError

HASH = "sha256:" + "a" * 64


def write_card(path: Path, bleu: float, *, data_hash: str = HASH) -> Path:
    report = build_report(
        benchmark={"name": "toybench", "version": "1", "split": "test", "limit": None, "n_transitions": 10,
                   "data_hash": data_hash, "modality": "text", "primary_metric": "fwm/bleu"},
        config={"batch_size": 8, "temperature": 0.0, "top_p": 1.0, "max_new_tokens": None, "bootstrap_samples": 10},
        seeds={"run": 0, "bootstrap": 0},
        models={"sft": {"model": "tiny", "checkpoint": None, "sha256": None, "details": {}}},
        results={"sft": {"fwm/bleu": {"value": bleu, "stderr": 0.5, "n": 10}}},
        command="swirl-eval run --bench toybench", wall_time_s=0.1)
    path.mkdir(parents=True, exist_ok=True)
    (path / "report.json").write_text(dumps(report))
    return path / "report.json"


def write_board(path: Path) -> Path:
    board = {"benchmark": "toybench", "benchmark_version": "1", "data_hash": HASH, "primary_metric": "fwm/bleu",
             "rows": [{"method": "sft", "model": "tiny", "seeds": [0], "command": "swirl-eval run --bench toybench",
                       "metrics": {"fwm/bleu": {"value": 20.0, "stderr": 0.5, "n": 10}}},
                      {"method": "sft", "model": "Qwen", "reference": "arXiv 2602.06130",
                       "metrics": {"fwm/bleu": {"value": 90.0}}}]}
    path.write_text(json.dumps(board))
    return path


def test_help_teaches_with_examples_and_exit_codes(capsys):
    assert cli.main(["--help"]) == 0
    text = capsys.readouterr().out
    assert "examples:" in text and "swirl-eval run --bench" in text
    for code in ("0  success", "1  `check` found a regression", "2  usage or input error", "3  refused to compare"):
        assert code in text
    assert cli.main(["run", "--help"]) == 0
    assert "--checkpoint METHOD=PATH" in capsys.readouterr().out


def test_usage_errors_exit_2_with_one_line(capsys):
    assert cli.main(["run"]) == EXIT_USAGE  # argparse: --bench missing
    capsys.readouterr()
    assert cli.main(["run", "--bench", "nosuchbench"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown benchmark 'nosuchbench'" in err and "Traceback" not in err
    assert cli.main(["run", "--bench", "textphysics", "--methods", "swirl", "--limit", "2"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no checkpoint for method(s) swirl" in err
    assert cli.main(["run", "--bench", "textphysics", "--checkpoint", "sft"]) == EXIT_USAGE
    assert "expected METHOD=PATH" in capsys.readouterr().err
    assert cli.main(["report", "/nonexistent/report.json"]) == EXIT_USAGE
    assert "no such report file" in capsys.readouterr().err


def test_debug_shows_the_traceback():
    with pytest.raises(Exception, match="unknown benchmark"):
        cli.main(["run", "--bench", "nosuchbench", "--debug"])


def test_list_json_names_benchmarks_trainers_and_plugins(capsys):
    assert cli.main(["list", "--json"]) == EXIT_OK
    data = json.loads(capsys.readouterr().out)
    by_name = {b["name"]: b for b in data["benchmarks"]}
    assert by_name["textphysics"]["env_id"] == "swirl/TextPhysics-v0"
    assert {"stabletoolbench", "aurora", "toolsim"} <= set(by_name)
    assert isinstance(data["plugins"], list)
    if "trainers_error" not in data:
        assert {"sft", "swirl"} <= {t["name"] for t in data["trainers"]}


def test_check_exit_codes(tmp_path, capsys):
    board = write_board(tmp_path / "toybench.json")
    ok = write_card(tmp_path / "ok", 19.0)  # 1.0 below, allowed 2 * sqrt(0.5) = 1.41
    bad = write_card(tmp_path / "bad", 18.0)
    other = write_card(tmp_path / "other", 25.0, data_hash="sha256:" + "b" * 64)
    assert cli.main(["check", "--leaderboard", str(board), "--report", str(ok)]) == EXIT_OK
    assert "no regression" in capsys.readouterr().out
    assert cli.main(["check", "--leaderboard", str(board), "--report", str(bad)]) == EXIT_REGRESSION
    assert "REGRESSION" in capsys.readouterr().out
    assert cli.main(["check", "--leaderboard", str(board), "--report", str(bad), "--tolerance", "2.5"]) == EXIT_OK
    capsys.readouterr()
    assert cli.main(["check", "--leaderboard", str(board), "--report", str(other)]) == EXIT_REFUSED
    assert "refused" in capsys.readouterr().err
    assert cli.main(["check", "--leaderboard", str(board), "--report", str(bad), "--json"]) == EXIT_REGRESSION
    out = json.loads(capsys.readouterr().out)
    assert out["exit_code"] == 1 and out["comparisons"][0]["ok"] is False


def test_check_record_writes_rows(tmp_path, capsys):
    board = write_board(tmp_path / "toybench.json")
    better = write_card(tmp_path / "better", 21.0)
    assert cli.main(["check", "--leaderboard", str(board), "--report", str(better), "--record",
                     "--report-path", "runs/x/report.json", "--ci"]) == EXIT_OK
    rows = json.loads(board.read_text())["rows"]
    measured = [r for r in rows if "reference" not in r]
    assert len(measured) == 1 and measured[0]["metrics"]["fwm/bleu"]["value"] == 21.0 and measured[0]["ci"]
    assert any("reference" in r for r in rows)


def test_compare_and_report_commands(tmp_path, capsys):
    a = write_card(tmp_path / "a", 19.0)
    b = write_card(tmp_path / "b", 23.0)
    other = write_card(tmp_path / "c", 23.0, data_hash="sha256:" + "c" * 64)
    assert cli.main(["compare", str(a), str(b)]) == EXIT_OK
    assert "+4.000" in capsys.readouterr().out
    assert cli.main(["compare", str(a), str(other)]) == EXIT_REFUSED
    assert cli.main(["compare", str(a), str(other), "--force"]) == EXIT_OK
    assert cli.main(["report", str(tmp_path / "a")]) == EXIT_OK
    assert (tmp_path / "a" / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert "| `fwm/bleu` | 10 | 19.00 ± 0.50 |" in (tmp_path / "a" / "report.md").read_text()


def test_console_script_is_declared():
    text = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    assert 'swirl-eval = "evals.cli:main"' in text
    proc = subprocess.run([sys.executable, "-m", "evals", "compare", "/nope/a.json", "/nope/b.json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == EXIT_USAGE and proc.stderr.count("\n") == 1


def test_train_then_run_with_a_tiny_model_and_resume(tmp_path, capsys):
    pytest.importorskip("swirl_core.models")
    ckpt = tmp_path / "sft"
    assert cli.main(["train", "--bench", "textphysics", "--method", "sft", "--limit", "6", "--output", str(ckpt),
                     "--set", "max_steps=1", "--set", "save_steps=0", "--set", "progress=false",
                     "--set", "tiny.hidden_size=32", "--set", "tiny.intermediate_size=64",
                     "--set", "max_target_tokens=16", "--set", "max_length=128"]) == EXIT_OK
    assert (ckpt / "final" / "pair.json").is_file()
    out = tmp_path / "run"
    argv = ["run", "--bench", "textphysics", "--checkpoint", f"sft={ckpt}", "--checkpoint", f"verify@2={ckpt}",
            "--model", "tiny", "--limit", "3",
            "--batch-size", "2", "--max-new-tokens", "3", "--bootstrap", "20", "--output", str(out), "--quiet"]
    assert cli.main(argv) == EXIT_OK
    capsys.readouterr()
    report = json.loads((out / "report.json").read_text())
    assert list(report["methods"]) == ["base", "sft", "verify@2"]
    assert report["models"]["verify@2"]["details"]["verification"]["n"] == 2
    assert report["models"]["sft"]["checkpoint"] == str((ckpt / "final").resolve())
    assert len(report["models"]["sft"]["sha256"]) == 64
    assert report["command"].startswith("swirl-eval run --bench textphysics")
    assert report["methods"]["base"]["delta_vs_sft"] is not None
    samples = (out / "samples.jsonl").read_text().splitlines()
    assert len(samples) == 9
    # the same command again: everything is resumed, nothing recomputed, same card
    assert cli.main(argv) == EXIT_OK
    again = json.loads((out / "report.json").read_text())
    assert again["provenance"]["resumed_samples"] == 9
    assert {k: v for k, v in again.items() if k != "provenance"} == {k: v for k, v in report.items()
                                                                     if k != "provenance"}


def test_serve_wires_the_fwm_simulator(tmp_path, monkeypatch):
    server = pytest.importorskip("swirl_envs.stabletoolbench.server")
    from evals import checkpoints as models
    from evals.runner import ModelEntry

    class EchoFWM:
        def predict_next_states(self, states, actions, **options):
            return [json.dumps({"error": "", "response": f"simulated {a}"}) for a in actions]

        def predict_actions(self, states, next_states, **options):
            return ["" for _ in states]

    loaded = []
    monkeypatch.setattr(models, "load_pair_entry", lambda method, spec, **kw: loaded.append(spec) or
                        ModelEntry(method, EchoFWM(), "echo"))
    seen = {}
    monkeypatch.setattr(server, "serve", lambda cache_dir, **kw: seen.update(cache_dir=cache_dir, **kw))
    assert cli.main(["serve", "--bench", "stabletoolbench", "--port", "0", "--cache-dir", str(tmp_path)]) == EXIT_OK
    assert seen["load_simulator"] is None and seen["host"] == "127.0.0.1" and seen["port"] == 0
    assert seen["cache_dir"] == str(tmp_path) and not loaded
    assert cli.main(["serve", "--bench", "stabletoolbench", "--port", "9", "--cache-dir", str(tmp_path),
                     "--host", "0.0.0.0", "--model", "ckpt/stb"]) == EXIT_OK
    assert not loaded and seen["port"] == 9 and seen["host"] == "0.0.0.0"  # loads once the port is bound
    simulator = seen["load_simulator"]()
    assert loaded == ["ckpt/stb"]
    response = simulator({"category": "Data", "tool_name": "t", "api_name": "a", "function": "f",
                                  "tool_input": {"q": "x"}})
    assert "simulated" in json.dumps(response) and '\\"name\\": \\"f\\"' in json.dumps(response)
    assert cli.main(["serve", "--bench", "textphysics", "--port", "0", "--cache-dir", str(tmp_path)]) == EXIT_USAGE


def _fake_pair(folder: Path, weights: bytes = b"w") -> Path:
    (folder / "fwm").mkdir(parents=True)
    (folder / "pair.json").write_text("{}")
    (folder / "fwm" / "model.safetensors").write_bytes(weights)
    return folder


def test_checkpoint_resolution_hashing_and_discovery(tmp_path, monkeypatch):
    from evals import checkpoints as models

    run = tmp_path / "run"
    _fake_pair(run / "checkpoint-2")
    _fake_pair(run / "checkpoint-10")
    assert models.resolve_checkpoint(run) == run / "checkpoint-10"  # numeric, not lexical, order
    _fake_pair(run / "final")
    assert models.resolve_checkpoint(run) == run / "final"
    assert models.resolve_checkpoint(run / "checkpoint-2") == run / "checkpoint-2"

    a = models.checkpoint_sha256(_fake_pair(tmp_path / "a", b"weights"))
    (tmp_path / "a" / "optimizer.pt").write_bytes(b"optimizer state is not the model")
    assert models.checkpoint_sha256(tmp_path / "a") == a
    assert models.checkpoint_sha256(_fake_pair(tmp_path / "b", b"weights")) == a  # content, not location
    assert models.checkpoint_sha256(_fake_pair(tmp_path / "c", b"other")) != a
    assert models.checkpoint_sha256(tmp_path / "run" / "nothing") is None

    first, second = tmp_path / "first", tmp_path / "second"
    _fake_pair(first / "toy" / "sft")
    _fake_pair(second / "toy" / "sft")
    _fake_pair(second / "toy" / "swirl" / "final")
    (second / "toy" / "notes").mkdir()
    found = models.discover_checkpoints("toy", [first, second])
    assert found == {"sft": first / "toy" / "sft", "swirl": second / "toy" / "swirl" / "final"}
    monkeypatch.setenv("SWIRL_CHECKPOINTS", str(first))
    assert models.checkpoint_roots()[0] == first
    assert models.verify_n("verify@8") == 8 and models.verify_n("sft") is None
    with pytest.raises(SwirlError, match="verify@N"):
        models.verify_n("verify@x")
    from evals import methods

    assert methods.order_methods(["swirl", "mine", "sft", "base"]) == ["base", "sft", "swirl", "mine"]
