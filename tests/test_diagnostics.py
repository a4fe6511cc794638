"""What the card shows besides metrics: degenerate-output flags, example predictions, content-word token F1."""

from __future__ import annotations

import json

from evals import cli
from evals.diagnostics import method_diagnostics, text_examples
from evals.metrics import content_words, token_f1
from evals.report import render_html, render_markdown, validate_report
from swirl_envs import Transition

CALL = '{"name": "transfermarkt_search_for_theclique", "arguments": {"name": "Lionel Messi"}}'


def test_a_constant_well_formed_call_earns_nothing():
    assert token_f1('{"name": "", "arguments": {"": ""}}', CALL) == 0.0
    assert token_f1(CALL, CALL) == 1.0
    assert content_words(CALL) == ["transfermarkt_search_for_theclique", "name", "lionel", "messi"]
    assert content_words('{"error": "", "response": "ok, 3 items"}') == ["ok", "3", "items"]
    assert content_words("push block A left!") == ["push", "block", "a", "left"]
    assert token_f1("", "") == 1.0


def _records(method, fwm, idm):
    return [{"method": method, "index": i, "fwm": {"prediction": f}, "idm": {"prediction": z}}
            for i, (f, z) in enumerate(zip(fwm, idm, strict=True))]


def test_flags_for_one_text_and_for_copies_of_another_method():
    records = (_records("sft", ["a", "b", "c", "d"], ["x", "y", "z", "w"])
               + _records("swirl", ["a", "b", "c", "e"], ["k", "k", "k", "q"])
               + _records("base", ["same"] * 4, ["x", "y", "u", "v"]))
    found = method_diagnostics(records, ["sft", "swirl", "base"])
    assert found["sft"]["fwm"] == {"n": 4, "distinct": 4, "most_common": 1, "same_as": {"swirl": 3, "base": 0}}
    assert found["sft"]["flags"] == ["fwm: 3/4 predictions identical to swirl's", "idm: 2/4 predictions identical to base's"]
    assert "idm: 3/4 predictions are the same text ('k')" in found["swirl"]["flags"]
    assert found["base"]["flags"][0] == "fwm: 4/4 predictions are the same text ('same')"
    assert method_diagnostics(_records("sft", ["a", "b"], ["x", "y"]), ["sft"])["sft"]["flags"] == []


def test_examples_show_the_last_lines_truth_and_predictions():
    data = [Transition("\n".join(f"line {i}" for i in range(10)), "next", "act", "e0", 0),
            Transition("unlabelled", "n", None, "e0", 1), Transition("x", "y " * 400, "z", "e1", 0)]
    records = _records("sft", ["p0", "p1", "p2"], ["q0", "q1", "q2"])
    examples = text_examples(data, records, ["sft"], rows=5)
    assert [e["index"] for e in examples] == [0, 2]  # transitions without an action are not scored
    assert examples[0]["context"] == "\n".join(f"line {i}" for i in range(4, 10))
    assert examples[0]["predictions"] == {"sft": {"fwm": "p0", "idm": "q0"}}
    assert len(examples[1]["next_state"]) == 600 and examples[1]["next_state"].endswith("…")


def test_the_card_shows_flags_and_examples(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["run", "--bench", "textphysics", "--model", "tiny", "--methods", "base", "--limit", "6", "--output", str(out),
            "--max-new-tokens", "8", "--threads", "1"]
    assert cli.main(args) == 0
    report = json.loads((out / "report.json").read_text())
    validate_report(report)
    diagnostics = report["methods"]["base"]["diagnostics"]
    assert diagnostics["fwm"]["n"] == 6 and set(diagnostics) == {"flags", "fwm", "idm"}
    assert len(report["examples"]) == 5 and set(report["examples"][0]["predictions"]) == {"base"}
    markdown, page = render_markdown(report), render_html(report)
    assert "## Output checks" in markdown and "## Examples" in markdown and "<h2>Examples</h2>" in page
    console = capsys.readouterr().out
    for flag in diagnostics["flags"]:  # whatever an untrained model's outputs raise, console and card both say
        assert flag in markdown and flag[:40] in console
