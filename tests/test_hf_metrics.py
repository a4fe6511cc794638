"""The `evaluate` modules in evals/hf_metrics give the report card's numbers, loaded from a local path."""

from __future__ import annotations

import numpy as np
import pytest
from test_report import CONFIG, bench, entries

from evals import hf_metrics, image_metrics
from evals.runner import evaluate, read_samples

pytest.importorskip("evaluate")


def test_text_and_action_modules_match_the_card(tmp_path):
    report = evaluate(bench(), entries(), CONFIG, tmp_path)
    states = [t.state for t in bench().transitions(CONFIG.split)]
    modules = {name: hf_metrics.load(name) for name in ("swirl_text_overlap", "swirl_json", "swirl_tool_call")}
    for method, row in report["methods"].items():
        samples = [s for s in read_samples(tmp_path / "samples.jsonl") if s["method"] == method]
        fwm = {"predictions": [s["fwm"]["prediction"] for s in samples],
               "references": [s["fwm"]["truth"] for s in samples]}
        idm = {"predictions": [s["idm"]["prediction"] for s in samples],
               "references": [s["idm"]["truth"] for s in samples]}
        found = {**modules["swirl_text_overlap"].compute(**fwm, states=states, seed=CONFIG.seed,
                                                         n_boot=CONFIG.bootstrap_samples),
                 **modules["swirl_json"].compute(**fwm), **modules["swirl_tool_call"].compute(**idm)}
        assert {"fwm/bleu", "fwm/delta_bleu", "fwm/json_kv_f1", "idm/call_exact"} <= set(found)
        assert found == {name: row["metrics"][name] for name in found}, method  # the same numbers, exactly


def test_image_module_matches_the_runner_functions():
    rng = np.random.default_rng(0)
    truths = [rng.integers(0, 256, (12, 12, 3), dtype=np.uint8) for _ in range(3)]
    predictions = [np.clip(t.astype(int) + rng.integers(-20, 21, t.shape), 0, 255).astype(np.uint8) for t in truths]
    found = hf_metrics.load("swirl_image").compute(predictions=predictions, references=truths)
    assert found["fwm/psnr"]["value"] == pytest.approx(np.mean([image_metrics.psnr(p, t) for p, t in
                                                                zip(predictions, truths, strict=True)]), rel=1e-12)
    assert found["fwm/ssim"]["value"] == pytest.approx(np.mean([image_metrics.ssim(p, t) for p, t in
                                                                zip(predictions, truths, strict=True)]), rel=1e-12)
    assert set(found) == {"fwm/psnr", "fwm/ssim", "fwm/l1", "fwm/l2"} and found["fwm/l1"]["n"] == 3


def test_unknown_module_names_are_refused():
    with pytest.raises(ValueError, match="swirl_text_overlap"):
        hf_metrics.path("bleu")
