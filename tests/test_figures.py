"""Figures (matplotlib) and the method table they colour by: byte-stable SVG and PNG, one table for every list."""

from __future__ import annotations

import re

from evals import checkpoints, experiments, figures, methods
from evals.experiment_results import aggregate


def toy_summary() -> dict:
    per_seed = {s: {"methods": {m: {"metrics": {"fwm/bleu": v + d}, "horizon": [v + d, v, v - 1]}
                                for m, d in (("sft", 0.0), ("swirl", 2.0), ("sft-oracle", 3.0),
                                             ("sft-shared", 0.5), ("swirl-shared", 1.0))},
                    "train_seconds": {}} for s, v in enumerate([10.0, 12.0])}
    return {"env": "toy", **aggregate(per_seed)}


def test_svg_and_png_are_the_same_bytes_on_every_render(tmp_path):
    summaries = [toy_summary()]
    for build in (figures.gains_figure, figures.horizon_figure):
        svg = figures.render(build(summaries), "svg")
        assert svg == figures.render(build(summaries), "svg")  # a fresh figure, the same bytes
        assert figures.render(build(summaries), "png") == figures.render(build(summaries), "png")
        text = svg.decode()
        assert "<dc:date>" not in text and "Matplotlib v" not in text  # no date, no version stamp
        assert re.search(r'clip-path="url\(#p[0-9a-f]+\)"', text)  # ids from the fixed hash salt
        assert "<text" in text and "swirl" in text  # text stays text: restylable, diffable
    paths = figures.save(figures.gains_figure(summaries), tmp_path / "gains")
    assert [p.name for p in paths] == ["gains.svg", "gains.png"]
    assert paths[1].read_bytes().startswith(b"\x89PNG")


def test_gains_compare_shared_swirl_with_shared_sft_and_skip_the_baselines():
    fig = figures.gains_figure([toy_summary()])
    labels = [t.get_text() for ax in fig.axes for t in ax.get_yticklabels()]
    assert labels == ["swirl", "swirl-shared vs sft-shared", "sft-oracle"]
    empty = figures.render(figures.gains_figure([]), "svg").decode()
    assert "no gains over SFT to show" in empty


def test_one_method_table_feeds_every_list():
    assert checkpoints.__dict__.get("METHOD_ORDER") is None  # the card order lives in evals/methods.py only
    assert experiments.METHODS == tuple(m for m in methods.METHOD_ORDER if m != "base")
    assert set(methods.GAIN_METHODS) == {"bootstrap", "verify@8", "swirl-idm2fwm", "swirl", "swirl-shared",
                                         "sft-oracle"}
    assert methods.colour("swirl:nokl") == methods.colour("swirl") != methods.colour("sft")
    assert methods.colour("my-trainer") == methods.FALLBACK_COLOUR
    assert methods.baseline_of("swirl-shared:beta0") == "sft-shared" and methods.baseline_of("swirl") == "sft"
    assert len({m.colour for m in methods.METHODS.values()}) == len(methods.METHODS)


def test_cli_writes_svg_png_and_table_and_takes_a_style(tmp_path):
    import json

    (tmp_path / "summary.json").write_text(json.dumps(toy_summary()))
    for out in ("a", "b"):
        assert figures.main([str(tmp_path / "summary.json"), "--output", str(tmp_path / out), "--style", "ggplot"]) == 0
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["gains.png", "gains.svg", "horizon.png",
                                                                  "horizon.svg", "summary.md"]
    for name in ("gains.svg", "horizon.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert figures.main([str(tmp_path / "summary.json"), "--output", str(tmp_path / "plain")]) == 0
    assert (tmp_path / "plain" / "gains.svg").read_bytes() != (tmp_path / "a" / "gains.svg").read_bytes()
