"""Report cards end to end with a small in-test benchmark and deterministic fake predictors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

from evals import report as report_mod
from evals.runner import ModelEntry, RunConfig, evaluate, read_samples
from swirl_envs.benchmark import Benchmark
from swirl_envs.errors import SwirlError
from swirl_envs.transition import Transition

CITIES = ["Oslo", "Lima", "Pune", "Kyiv", "Nuuk", "Baku", "Doha"]


class WeatherBench(Benchmark):
    """Tool-call transitions: X a conversation, Z a JSON call, Y a JSON API response."""

    name = "weather-test"
    version = "3"
    splits = ("train", "test")

    def _load(self, split):
        for i, city in enumerate(CITIES):
            call = json.dumps({"name": "forecast", "arguments": {"city": city, "days": i % 3 + 1}})
            response = json.dumps({"city": city, "temp": 10 + i, "sky": "clear" if i % 2 else "rain"})
            yield Transition(f"user asks about {city}", response, call, f"{split}-{i // 3}", i % 3, {"i": i})


class FakePair:
    """Deterministic stand-in for WorldModelPair: right for some inputs, wrong in known ways for others."""

    def __init__(self, skill: int, fail_after: int | None = None):
        self.skill, self.fail_after, self.calls = skill, fail_after, []

    def _tick(self, kind, n):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise KeyboardInterrupt  # a kill between batches
        self.calls.append((kind, n))

    def predict_next_states(self, states, actions, **options):
        self._tick("fwm", len(states))
        out = []
        for _state, action in zip(states, actions, strict=True):
            args = json.loads(action)["arguments"]
            i = CITIES.index(args["city"])
            sky = "clear" if i % 2 else "rain"
            if i % self.skill == 0:
                out.append(json.dumps({"city": args["city"], "temp": 10 + i, "sky": sky}))
            else:
                out.append(json.dumps({"city": args["city"], "temp": 0}) if i % 2 else "no idea")
        return out

    def predict_actions(self, states, next_states, **options):
        self._tick("idm", len(states))
        out = []
        for _state, y in zip(states, next_states, strict=True):
            city = json.loads(y)["city"]
            i = CITIES.index(city)
            days = i % 3 + 1 if i % self.skill == 0 else 9
            out.append(json.dumps({"name": "forecast", "arguments": {"city": city, "days": days}}))
        return out


def entries(sft_fail_after=None):
    return [ModelEntry("sft", FakePair(2, sft_fail_after), "fake-sft", "ckpt/sft", "ab" * 32),
            ModelEntry("swirl", FakePair(1), "fake-swirl", "ckpt/swirl", "cd" * 32)]


def bench():
    return WeatherBench(labelled=True)


CONFIG = RunConfig("weather-test", seed=3, batch_size=3, bootstrap_samples=50, command="swirl-eval run --bench x")


def strip_volatile(report):
    return {k: v for k, v in report.items() if k != "provenance"}


def test_report_json_follows_schema_and_has_the_contract_fields(tmp_path):
    report = evaluate(bench(), entries(), CONFIG, tmp_path)
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk == report
    jsonschema.Draft202012Validator(report_mod.schema()).validate(on_disk)
    assert report["schema_version"] == report_mod.SCHEMA_VERSION
    assert report["benchmark"]["name"] == "weather-test" and report["benchmark"]["version"] == "3"
    assert report["benchmark"]["data_hash"] == bench().data_hash("test")
    assert report["seeds"] == {"run": 3, "bootstrap": 3}
    assert report["models"]["sft"]["sha256"] == "ab" * 32
    prov = report["provenance"]
    assert prov["wall_time_s"] >= 0 and prov["versions"]["sacrebleu"] and "commit" in prov["git"]
    for method in ("sft", "swirl"):
        for name, metric in report["methods"][method]["metrics"].items():
            assert set(metric) == {"value", "stderr", "n"}, name
    # swirl gets every sample right; sft (skill 2) the even-indexed cities 0, 2, 4, 6 of 7
    swirl, sft = report["methods"]["swirl"]["metrics"], report["methods"]["sft"]["metrics"]
    assert swirl["fwm/exact_match"] == {"value": 1.0, "stderr": 0.0, "n": 7}
    assert sft["fwm/exact_match"]["value"] == pytest.approx(4 / 7)
    assert swirl["fwm/bleu"]["value"] == pytest.approx(100.0)
    # odd cities: sft predicts JSON {"city", "temp"} for 1, 3, 5 -> valid; the rest are right -> valid
    assert sft["fwm/json_valid"]["value"] == pytest.approx(1.0)
    assert sft["idm/name_exact"]["value"] == 1.0
    assert sft["idm/call_exact"]["value"] == pytest.approx(4 / 7)
    # delta against sft: value/sft - 1 and the difference
    delta = report["methods"]["swirl"]["delta_vs_sft"]["fwm/exact_match"]
    assert delta["relative"] == pytest.approx(1 / (4 / 7) - 1) and delta["absolute"] == pytest.approx(3 / 7)
    assert report["methods"]["sft"]["delta_vs_sft"]["fwm/bleu"] == {"absolute": 0.0, "relative": 0.0}


def test_samples_jsonl_has_one_line_per_transition_and_method(tmp_path):
    evaluate(bench(), entries(), CONFIG, tmp_path)
    lines = read_samples(tmp_path / "samples.jsonl")
    assert [(r["method"], r["index"]) for r in lines] == [(m, i) for m in ("sft", "swirl") for i in range(7)]
    first = lines[0]
    assert first["episode_id"] == "test-0" and first["step"] == 0
    assert first["fwm"]["truth"] == json.dumps({"city": "Oslo", "temp": 10, "sky": "rain"})
    assert first["fwm"]["scores"]["fwm/exact_match"] == 1.0
    assert first["idm"]["scores"]["idm/args_f1"] == 1.0
    assert lines[1]["fwm"]["prediction"] == json.dumps({"city": "Lima", "temp": 0})


def test_runner_batches_forward_passes(tmp_path):
    es = entries()
    evaluate(bench(), es, CONFIG, tmp_path)
    # 7 transitions in batches of 3: one list call per model per batch
    assert es[0].predictor.calls == [("fwm", 3), ("idm", 3), ("fwm", 3), ("idm", 3), ("fwm", 1), ("idm", 1)]


def test_same_command_same_seed_gives_identical_report(tmp_path):
    a = evaluate(bench(), entries(), CONFIG, tmp_path / "a")
    b = evaluate(bench(), entries(), CONFIG, tmp_path / "b")
    assert json.dumps(strip_volatile(a)) == json.dumps(strip_volatile(b))
    text_a = (tmp_path / "a" / "report.json").read_text()
    text_b = (tmp_path / "b" / "report.json").read_text()
    volatile = re.compile(r'"provenance": \{.*\}\n\}\n$', re.DOTALL)  # provenance is the last key
    assert volatile.sub("", text_a) == volatile.sub("", text_b)
    assert (tmp_path / "a" / "samples.jsonl").read_bytes() == (tmp_path / "b" / "samples.jsonl").read_bytes()


def test_interrupted_run_resumes_without_redoing_samples(tmp_path):
    fresh = evaluate(bench(), entries(), CONFIG, tmp_path / "fresh")
    out = tmp_path / "resumed"
    # sft dies after its first batch (2 calls: fwm + idm)
    with pytest.raises(KeyboardInterrupt):
        evaluate(bench(), entries(sft_fail_after=2), CONFIG, out)
    assert len(read_samples(out / "samples.jsonl")) == 3
    # and a kill mid-write leaves half a line behind
    with open(out / "samples.jsonl", "a") as handle:
        handle.write('{"method": "sft", "index": 3, "episode_id": "te')
    again = entries()
    report = evaluate(bench(), again, CONFIG, out)
    # indices 3-6 only, in batches of 3 and 1; swirl has nothing done yet and runs all 7
    assert again[0].predictor.calls == [("fwm", 3), ("idm", 3), ("fwm", 1), ("idm", 1)]
    assert report["provenance"]["resumed_samples"] == 3
    assert strip_volatile(report) == strip_volatile(fresh)
    assert (out / "samples.jsonl").read_bytes() == (tmp_path / "fresh" / "samples.jsonl").read_bytes()
    # a third run has nothing left to do
    idle = entries()
    evaluate(bench(), idle, CONFIG, out)
    assert idle[0].predictor.calls == [] and idle[1].predictor.calls == []


def test_resume_refuses_a_different_run(tmp_path):
    evaluate(bench(), entries(), CONFIG, tmp_path)
    other = RunConfig("weather-test", seed=4, batch_size=3, bootstrap_samples=50)
    with pytest.raises(SwirlError, match="holds a different run .*seed"):
        evaluate(bench(), entries(), other, tmp_path)
    changed = entries()
    changed[0].sha256 = "ef" * 32
    with pytest.raises(SwirlError, match="other weights"):
        evaluate(bench(), changed, CONFIG, tmp_path)


def test_corrupt_line_in_the_middle_is_an_error(tmp_path):
    path = tmp_path / "samples.jsonl"
    path.write_text('{"a": 1}\nnot json\n{"b": 2}\n')
    with pytest.raises(SwirlError, match="record 2"):
        read_samples(path)


def test_markdown_and_html_cards(tmp_path):
    evaluate(bench(), entries(), CONFIG, tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "| metric | n | sft | swirl | swirl vs sft |" in md
    # exact match: sft 4/7, swirl 1 -> relative 1/(4/7) - 1 = +75%, absolute +3/7
    assert "| `fwm/exact_match` | 7 | 0.571 ± 0.202 | 1.000 ± 0.000 | +75.0% (+0.429) |" in md
    page = (tmp_path / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") == len(json.loads((tmp_path / "report.json").read_text())["metric_info"])
    assert "<path d=" in page  # error bars for metrics with a standard error
    assert not re.search(r'(src|href)=["\']?(https?:|//)', page)  # self-contained
    assert "<script" not in page


def test_report_rerender_and_schema_errors(tmp_path):
    report = evaluate(bench(), entries(), CONFIG, tmp_path)
    (tmp_path / "report.md").unlink()
    loaded = report_mod.load_report(tmp_path)
    assert loaded == report
    bad = dict(report, methods={"sft": {"metrics": {"fwm/bleu": {"value": 1.0}}, "delta_vs_sft": None}})
    with pytest.raises(SwirlError, match="schema"):
        report_mod.validate_report(bad)
    with pytest.raises(SwirlError, match="not readable"):
        report_mod.validate_report(dict(report, schema_version="2.0"))


def test_runner_refuses_unlabelled_or_image_benchmarks(tmp_path):
    with pytest.raises(SwirlError, match="labelled=True"):
        evaluate(WeatherBench(), entries(), CONFIG, tmp_path)

    class Pictures(WeatherBench):
        modality = "image"

    with pytest.raises(SwirlError, match="image states|text metrics"):
        evaluate(Pictures(labelled=True), entries(), CONFIG, tmp_path)


def test_predictor_returning_wrong_shape_is_reported(tmp_path):
    class Short(FakePair):
        def predict_next_states(self, states, actions, **options):
            return super().predict_next_states(states, actions)[:-1]

    with pytest.raises(SwirlError, match="predict_next_states returned 2 items; expected a list of 3"):
        evaluate(bench(), [ModelEntry("sft", Short(1), "short")], CONFIG, tmp_path)


def test_bar_chart_svg_is_inline_escaped_and_byte_stable():
    rows = [("sft", 10.0, 1.0), ("swirl<x>", 12.0, None), ("cost$", 3.0, 0.5)]
    svg = report_mod.bar_chart_svg("fwm/bleu", rows, "0-100")
    assert svg.startswith('<svg role="img" aria-label="fwm/bleu"') and svg.endswith("</svg>")
    assert "swirl&lt;x&gt;" in svg and "10.00 ± 1.00" in svg and "12.00" in svg and "cost$" in svg
    assert svg == report_mod.bar_chart_svg("fwm/bleu", rows, "0-100")  # fixed hash salt, no date


def test_schema_file_is_a_valid_schema():
    jsonschema.Draft202012Validator.check_schema(report_mod.schema())
    assert Path(report_mod.SCHEMA_PATH).name == "report.schema.json"


def test_a_rerun_with_fewer_methods_keeps_the_others_on_the_card(tmp_path):
    both = evaluate(bench(), entries(), CONFIG, tmp_path)
    only_sft = [e for e in entries() if e.method == "sft"]
    again = evaluate(bench(), only_sft, CONFIG, tmp_path)
    assert list(again["methods"]) == ["sft", "swirl"]  # swirl was evaluated here before: it stays
    assert again["methods"]["swirl"]["metrics"] == both["methods"]["swirl"]["metrics"]
    assert again["models"]["swirl"]["sha256"] == both["models"]["swirl"]["sha256"]
    assert again["models"]["swirl"]["details"] == {"evaluated_earlier": True}
    assert only_sft[0].predictor.calls == []  # nothing was recomputed
