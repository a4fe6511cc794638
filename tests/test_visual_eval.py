"""Image benchmarks end to end: `swirl-eval train` fits an image codec, `swirl-eval run` scores decoded
predictions with pixel metrics, saves PNGs, resumes, draws the image grid; WorldPrediction by candidate
choice; CLIP scores with a tiny random CLIP; located errors for corrupt images."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from evals import cli
from evals.image_metrics import candidate_accuracy
from evals.leaderboard import EXIT_OK, EXIT_USAGE
from evals.report import load_report

pytest.importorskip("swirl_core.models")

# A pair small enough to train and run in seconds: 32x32 codec images (64 codes), a 32-wide tiny model.
TINY = ["--set", "max_steps=2", "--set", "save_steps=0", "--set", "progress=false", "--set", "tiny.hidden_size=32",
        "--set", "tiny.intermediate_size=64", "--set", "tiny.vocab_size=512"]


@pytest.fixture(scope="module")
def pair_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("train") / "sft"
    assert cli.main(["train", "--bench", "visualphysics", "--method", "sft", "--limit", "12", "--output", str(out),
                     "--codec-image-size", "32", "--codebook-size", "32", *TINY]) == EXIT_OK
    return out


def run(out: Path, pair: Path, *extra: str, bench: str = "visualphysics", methods=("sft",)) -> int:
    checkpoints = [a for m in methods for a in ("--checkpoint", f"{m}={pair}")]
    return cli.main(["run", "--bench", bench, *checkpoints, "--output", str(out), "--bootstrap", "10", "--quiet",
                     *extra])


def samples(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]


def test_train_from_scratch_fits_a_codec_that_the_saved_pair_keeps(pair_dir):
    from swirl_core.models import WorldModelPair
    from swirl_envs import make_benchmark

    info = json.loads((pair_dir / "final" / "pair.json").read_text())
    assert info["codec"] == "swirl_core.image_codec:ImageCodec" and (pair_dir / "init" / "pair.json").is_file()
    pair = WorldModelPair.load(pair_dir / "final")
    assert pair.codec.fitted and pair.codec.config.image_size == (32, 32) and pair.codec.config.codebook_size == 32
    t = next(make_benchmark("visualphysics", labelled=True).transitions("test", limit=1))
    image_tokens = len(pair.encode("fwm", pair.state_text(t.next_state))) + 1
    # the prompt budget was raised so that a whole image is a target and two fit in a prompt
    assert pair.max_target_tokens >= image_tokens and pair.max_length >= 2 * image_tokens
    assert pair.text_to_image(pair.state_text(t.next_state)).size == (32, 32)


def test_run_scores_images_saves_pngs_and_draws_the_grid(pair_dir, tmp_path):
    out = tmp_path / "run"
    assert run(out, pair_dir, "--limit", "3", "--grid-rows", "2", methods=("sft", "swirl")) == EXIT_OK
    report = load_report(out)  # validates against evals/schema/report.schema.json
    assert report["benchmark"]["modality"] == "image" and report["benchmark"]["primary_metric"] == "fwm/psnr"
    for method in ("sft", "swirl"):
        got = report["methods"][method]["metrics"]
        assert {"fwm/psnr", "fwm/ssim", "fwm/l1", "fwm/l2", "idm/exact_match", "idm/token_f1"} <= set(got)
        assert "fwm/bleu" not in got  # codec text is not scored as text
        assert got["fwm/l1"]["n"] == 3 and got["fwm/l1"]["stderr"] is not None and 0 <= got["fwm/l1"]["value"] <= 1
    assert report["metric_info"]["fwm/l1"]["higher_is_better"] is False
    assert report["metric_info"]["fwm/psnr"]["scale"] == "dB"
    records = samples(out)
    assert len(records) == 6 and all((out / r["fwm"]["image"]).is_file() for r in records)
    assert records[0]["fwm"]["image"] == "images/sft/00000.png"
    # one pair under two names decodes the same pictures
    assert (out / "images/sft/00001.png").read_bytes() == (out / "images/swirl/00001.png").read_bytes()
    grid = report["images"]["grid"]
    assert [row["index"] for row in grid] == [0, 1]
    html = (out / "report.html").read_text()
    assert len(re.findall(r"<img ", html)) == 2 * (2 + 2)  # rows x (source, truth, sft, swirl)
    assert 'src="images/' not in html and html.count('src="data:image/png;base64,') == 8
    assert "![swirl](images/swirl/00000.png)" in (out / "report.md").read_text()


def test_resume_after_a_partial_samples_file(pair_dir, tmp_path):
    out = tmp_path / "run"
    args = ("--limit", "3", "--batch-size", "1", "--max-new-tokens", "8")  # short generations: a fast test
    assert run(out, pair_dir, *args) == EXIT_OK
    first = load_report(out)
    lines = (out / "samples.jsonl").read_text().splitlines()
    (out / "samples.jsonl").write_text(lines[0] + "\n" + lines[1][:40])  # a kill mid-line
    (out / "images/sft/00000.png").write_bytes(b"not a png")  # a picture lost with the kill
    shutil.rmtree(out / "images/_truth")
    assert run(out, pair_dir, *args) == EXIT_OK
    again = load_report(out)
    assert again["provenance"]["resumed_samples"] == 1
    assert {k: v for k, v in again.items() if k != "provenance"} == {k: v for k, v in first.items() if k != "provenance"}
    assert (out / "samples.jsonl").read_text().splitlines() == lines
    from PIL import Image

    assert Image.open(out / "images/sft/00000.png").size == (32, 32)  # decoded again from the line's text
    assert len(list((out / "images/_truth").glob("*.png"))) == 3


def test_worldprediction_accuracy_by_candidate_choice(pair_dir, tmp_path):
    from swirl_core.models import WorldModelPair
    from swirl_envs import make_benchmark

    out = tmp_path / "wp"
    assert run(out, pair_dir, "--limit", "3", bench="worldprediction") == EXIT_OK
    report = load_report(out)
    accuracy = report["methods"]["sft"]["metrics"]["idm/accuracy"]
    assert accuracy["n"] == 3 and report["benchmark"]["primary_metric"] == "idm/accuracy"
    bench = make_benchmark("worldprediction", labelled=True)
    data = list(bench.transitions("test", limit=3))
    for record, t in zip(samples(out), data, strict=True):
        idm = record["idm"]
        assert len(idm["candidate_scores"]) == len(t.meta["candidates"]) and idm["ground_truth"] == t.meta["ground_truth"]
        assert idm["prediction"] == t.meta["candidates"][idm["chosen"][0]]
    # the same choice made directly with the IDM's log-likelihood
    pair = WorldModelPair.load(pair_dir / "final")
    direct = candidate_accuracy(data, lambda x, y, c: float(pair.score_actions([x], [y], [c])[0]))
    assert accuracy["value"] == pytest.approx(direct["accuracy"], abs=1e-6)


def test_clip_scores_with_a_tiny_random_clip(pair_dir, tmp_path):
    from test_image_metrics import tiny_clip

    # A randomly initialised CLIP proves the wiring only: these numbers mean nothing and are never reported.
    clip = tiny_clip(tmp_path)
    out = tmp_path / "bm"
    assert run(out, pair_dir, "--limit", "2", "--clip-model", str(clip), bench="bytemorph") == EXIT_OK
    report = load_report(out)
    got = report["methods"]["sft"]["metrics"]
    for name in ("fwm/clip_sim_txt", "fwm/clip_sim_img", "fwm/clip_dir_txt", "fwm/clip_dir_img"):
        assert got[name]["n"] == 2 and -1 - 1e-6 <= got[name]["value"] <= 1 + 1e-6
    assert report["config"]["clip_model"] == str(clip)
    # a resumed run must use the same scorers: the sample lines hold their scores
    assert run(out, pair_dir, "--limit", "2", bench="bytemorph") == EXIT_USAGE


def test_corrupt_images_give_located_errors(pair_dir, tmp_path, capsys):
    from swirl_envs.visual.aurora import FIXTURE_DIR

    pair = "data/kubric/images/further_location/2720"
    (tmp_path / "aurora").mkdir()
    (tmp_path / "aurora/test.json").write_text(json.dumps([{"input": f"{pair}/image0.jpg", "output": f"{pair}/image1.jpg",
                                                            "instruction": "move it", "task": "kubric"}]))
    shutil.copytree(FIXTURE_DIR / pair, tmp_path / "aurora" / pair)
    (tmp_path / "aurora" / pair / "image1.jpg").write_bytes(b"\xff\xd8 truncated")
    assert run(tmp_path / "a", pair_dir, "--data-dir", str(tmp_path / "aurora"), bench="aurora") == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "image1.jpg" in err and "field 'output'" in err and "corrupt" in err
    # a damaged grid picture: `swirl-eval report` names the file
    out = tmp_path / "run"
    assert run(out, pair_dir, "--limit", "1") == EXIT_OK
    (out / "images/_truth/00000.png").write_bytes(b"GIF89a")
    capsys.readouterr()
    assert cli.main(["report", str(out)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "images/_truth/00000.png" in err and "not a PNG" in err


def test_an_image_benchmark_needs_a_pair_with_a_codec(tmp_path, capsys):
    assert cli.main(["run", "--bench", "visualphysics", "--model", "tiny", "--limit", "1", "--output",
                     str(tmp_path / "r")]) == EXIT_USAGE
    assert "has no image codec" in capsys.readouterr().err


def test_check_treats_pixel_errors_as_lower_is_better(pair_dir, tmp_path):
    from evals.leaderboard import check, record

    out = tmp_path / "run"
    assert run(out, pair_dir, "--limit", "2") == EXIT_OK
    report = load_report(out)
    board = record({"benchmark": "visualphysics", "rows": []}, report)
    assert check(report, board, k=0).exit_code == 0
    l1 = report["methods"]["sft"]["metrics"]["fwm/l1"]
    worse = json.loads(json.dumps(report))
    worse["methods"]["sft"]["metrics"]["fwm/l1"] = dict(l1, value=l1["value"] + 0.1)
    bad = check(worse, board, k=0)
    assert [(c.metric, c.ok) for c in bad.regressions] == [("fwm/l1", False)]
    better = json.loads(json.dumps(report))
    better["methods"]["sft"]["metrics"]["fwm/l1"] = dict(l1, value=max(0.0, l1["value"] - 0.1))
    assert check(better, board, k=0).exit_code == 0
