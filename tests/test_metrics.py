"""Each metric against values worked out by hand (derivations in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evals import metrics


def test_corpus_bleu_hand_worked():
    # hyp "a b c d e" vs ref "a b c d f": n-gram precisions 4/5, 3/4, 2/3, 1/2, equal lengths so BP = 1;
    # BLEU = 100 * (4/5 * 3/4 * 2/3 * 1/2) ** (1/4) = 100 * 0.2 ** 0.25
    result = metrics.corpus_bleu(["a b c d e"], ["a b c d f"])
    assert result["value"] == pytest.approx(100 * 0.2 ** 0.25, abs=1e-9)
    assert result["n"] == 1 and result["stderr"] is None


def test_corpus_bleu_sums_statistics_not_sentence_scores():
    # Corpus statistics: sentence 1 matches 4/4, 3/3, 2/2, 1/1; sentence 2 ("x y" vs "z w") 0/2, 0/1, -, -.
    # Totals: 4/6, 3/4, 2/2, 1/1; hyp length 6 = ref length 6 -> BLEU = 100 * (4/6 * 3/4) ** (1/4).
    result = metrics.corpus_bleu(["a b c d", "x y"], ["a b c d", "z w"])
    assert result["value"] == pytest.approx(100 * (4 / 6 * 3 / 4) ** 0.25, abs=1e-9)
    # The mean of sentence scores would be different: corpus BLEU is not an average.
    mean_sentence = (metrics.sentence_bleu("a b c d", "a b c d") + metrics.sentence_bleu("x y", "z w")) / 2
    assert abs(mean_sentence - result["value"]) > 1


def test_corpus_bleu_brevity_penalty():
    # hyp "a b c d" vs ref "a b c d e f": precisions all 1, BP = exp(1 - 6/4) = exp(-0.5)
    result = metrics.corpus_bleu(["a b c d"], ["a b c d e f"])
    assert result["value"] == pytest.approx(100 * math.exp(-0.5), abs=1e-9)


def test_chrf_hand_worked():
    # chrF (char order 6, beta 2, spaces dropped): hyp "ab" vs ref "abc".
    # order 1: P = 2/2, R = 2/3; order 2: P = 1/1, R = 1/2; orders 3-6: the hyp has no n-grams (skipped).
    # avg P = 1, avg R = 7/12; F2 = 5 P R / (4 P + R) = (35/12) / (55/12) = 7/11
    result = metrics.corpus_chrf(["ab"], ["abc"])
    assert result["value"] == pytest.approx(100 * 7 / 11, abs=1e-9)
    assert metrics.sentence_chrf("ab", "abc") == pytest.approx(100 * 7 / 11, abs=1e-9)


def test_rouge_l_hand_worked():
    # LCS("a b c d", "a c d e") = "a c d" (3): P = 3/4, R = 3/4, F = 0.75
    assert metrics.rouge_l("a b c d", "a c d e") == pytest.approx(75.0)
    # LCS("the cat", "the cat sat on the mat") = 2: P = 1, R = 2/6, F = 2 * 1/3 / (4/3) = 0.5
    assert metrics.rouge_l("the cat", "the cat sat on the mat") == pytest.approx(50.0)


def test_exact_match_and_token_f1():
    assert metrics.exact_match(" push A \n", "push A") == 1.0
    assert metrics.exact_match("push a", "push A") == 0.0
    # tokens: pred [push, block, a, left], gold [push, block, b, left, now]: overlap 3;
    # P = 3/4, R = 3/5, F1 = 2 * 0.45 / 1.35 = 2/3
    assert metrics.token_f1("push block A left", "push block B left now") == pytest.approx(2 / 3)
    assert metrics.token_f1("", "") == 1.0
    assert metrics.token_f1("x", "") == 0.0
    assert metrics.tokens('get(city="Oslo")') == ["get", "(", "city", "=", '"', "oslo", '"', ")"]


def test_json_flatten_and_key_f1():
    truth = {"a": 1, "b": {"c": 2, "d": 3}}
    pred = {"a": 1, "b": {"c": 5}}
    assert metrics.flatten_json(truth) == {"$.a": 1, "$.b.c": 2, "$.b.d": 3}
    assert metrics.flatten_json({"x": [1, {"y": None}], "e": {}}) == {"$.x[0]": 1, "$.x[1].y": None, "$.e": {}}
    # keys: pred {a, b.c} vs truth {a, b.c, b.d}: P = 1, R = 2/3, F1 = 0.8
    assert metrics.json_key_f1(pred, truth) == pytest.approx(0.8)
    # pairs: only (a, 1) matches: P = 1/2, R = 1/3, F1 = 2 * (1/6) / (5/6) = 0.4
    assert metrics.json_key_f1(pred, truth, with_values=True) == pytest.approx(0.4)


def test_fwm_sample_scores_json_parts():
    scores = metrics.fwm_sample_scores('{"a": 1, "b": {"c": 5}}', '{"a": 1, "b": {"c": 2, "d": 3}}')
    assert scores["fwm/json_valid"] == 1.0
    assert scores["fwm/json_key_f1"] == pytest.approx(0.8)
    assert scores["fwm/json_kv_f1"] == pytest.approx(0.4)
    broken = metrics.fwm_sample_scores('{"a": 1', '{"a": 1}')
    assert broken["fwm/json_valid"] == 0.0 and broken["fwm/json_key_f1"] == 0.0
    plain = metrics.fwm_sample_scores("tick 1", "tick 2")
    assert plain["fwm/json_valid"] is None  # the truth is not JSON: not counted
    assert metrics.parse_json('```json\n{"k": [1]}\n```') == (True, {"k": [1]})


def test_tool_call_parsing():
    call = metrics.parse_tool_call('{"name": "weather", "arguments": {"city": "Oslo", "days": 2}}')
    assert call == metrics.ToolCall("weather", {"city": "Oslo", "days": 2})
    # OpenAI style: arguments as a JSON string, inside "function"
    wrapped = metrics.parse_tool_call('{"function": {"name": "weather", "arguments": "{\\"city\\": \\"Oslo\\"}"}}')
    assert wrapped == metrics.ToolCall("weather", {"city": "Oslo"})
    react = metrics.parse_tool_call('Action: get_time\nAction Input: {"zone": "UTC"}')
    assert react == metrics.ToolCall("get_time", {"zone": "UTC"})
    assert metrics.parse_tool_call('{"name": "f", "arguments": ""}') == metrics.ToolCall("f", {})
    assert metrics.parse_tool_call('{"name": "f", "arguments": "not json"}') == metrics.ToolCall("f", {"$": "not json"})
    assert metrics.parse_tool_call("push block A") is None
    assert metrics.parse_tool_call('{"arguments": {}}') is None


def test_idm_tool_call_scores_hand_worked():
    truth = '{"name": "weather", "arguments": {"city": "Oslo", "days": 2, "units": "C"}}'
    pred = '{"name": "weather", "arguments": {"city": "Oslo", "days": 3}}'
    scores = metrics.idm_sample_scores(pred, truth)
    # pairs: pred {(city, Oslo), (days, 3)}, truth {(city, Oslo), (days, 2), (units, C)}: 1 match;
    # P = 1/2, R = 1/3, F1 = 0.4
    assert scores["idm/name_exact"] == 1.0
    assert scores["idm/args_f1"] == pytest.approx(0.4)
    assert scores["idm/call_exact"] == 0.0
    assert scores["idm/exact_match"] == 0.0
    same = metrics.idm_sample_scores('{"arguments": {"days": 2, "city": "Oslo", "units": "C"}, "name": "weather"}',
                                     truth)
    assert same["idm/call_exact"] == 1.0 and same["idm/args_f1"] == 1.0
    assert same["idm/exact_match"] == 0.0  # text differs (key order), the call does not
    wrong = metrics.idm_sample_scores("call the weather", truth)
    assert wrong["idm/name_exact"] == 0.0 and wrong["idm/args_f1"] == 0.0
    text = metrics.idm_sample_scores("wait", "wait")
    assert text["idm/name_exact"] is None and text["idm/exact_match"] == 1.0


def test_mean_stderr_is_analytic():
    # values 0, 1, 1, 0: mean 0.5, sample std sqrt(1/3), stderr sqrt(1/3) / 2
    result = metrics.mean_stderr([0, 1, 1, 0])
    assert result == {"value": 0.5, "stderr": pytest.approx(math.sqrt(1 / 3) / 2), "n": 4}
    assert metrics.mean_stderr([]) == {"value": None, "stderr": None, "n": 0}
    assert metrics.mean_stderr([0.3])["stderr"] is None


def test_bootstrap_stderr_is_seeded_and_sensible():
    rng = np.random.default_rng(1)
    words = "the cat sat on a mat with some hats".split()
    truths = [" ".join(rng.choice(words, 8)) for _ in range(40)]
    preds = [t if i % 3 else " ".join(rng.choice(words, 8)) for i, t in enumerate(truths)]
    a = metrics.corpus_bleu(preds, truths, seed=7, n_boot=200)
    b = metrics.corpus_bleu(preds, truths, seed=7, n_boot=200)
    c = metrics.corpus_bleu(preds, truths, seed=8, n_boot=200)
    assert a == b  # same seed, same numbers
    assert a["stderr"] != c["stderr"] and a["value"] == c["value"]
    assert 0 < a["stderr"] < 20
    perfect = metrics.corpus_bleu(truths, truths, seed=0, n_boot=50)
    assert perfect["value"] == pytest.approx(100.0) and perfect["stderr"] == pytest.approx(0.0, abs=1e-9)


def test_aggregate_counts_only_applicable_samples():
    records = [
        {"fwm": {"prediction": '{"a": 1}', "truth": '{"a": 1}', "scores": metrics.fwm_sample_scores('{"a": 1}', '{"a": 1}')},
         "idm": {"prediction": "x", "truth": "x", "scores": metrics.idm_sample_scores("x", "x")}},
        {"fwm": {"prediction": "b", "truth": "c", "scores": metrics.fwm_sample_scores("b", "c")}, "idm": None},
    ]
    out = metrics.aggregate(records, n_boot=20)
    assert out["fwm/json_valid"] == {"value": 1.0, "stderr": None, "n": 1}
    assert out["fwm/exact_match"]["value"] == 0.5 and out["fwm/exact_match"]["n"] == 2
    assert out["idm/exact_match"]["n"] == 1
    assert "idm/name_exact" not in out  # no tool-call truths: the metric is left out
    assert set(out) <= set(metrics.METRICS)


def test_changed_lines_metrics_ignore_what_is_copied_from_the_state():
    state = "tick 0\nblock A: x=1.0 v=0.0\nblock B: x=5.0 v=0.0"
    truth = "tick 1\nblock A: x=1.5 v=0.5\nblock B: x=5.0 v=0.0"
    copy = metrics.fwm_sample_scores(state, truth, state)  # predicting "nothing changes"
    assert copy["fwm/delta_line_f1"] == 0.0 and copy["fwm/bleu"] > 30  # whole-text BLEU rewards the copy
    assert copy["fwm/adds_no_line"] == 1.0
    right = metrics.fwm_sample_scores(truth, truth, state)
    assert right["fwm/delta_line_f1"] == 1.0 and right["fwm/adds_no_line"] == 0.0
    assert metrics.fwm_sample_scores(state, state, state)["fwm/adds_no_line"] is None  # nothing to add: not counted
    assert metrics.new_lines(truth, state) == "tick 1\nblock A: x=1.5 v=0.5"
    records = [{"fwm": {"prediction": p, "truth": truth, "delta_prediction": metrics.new_lines(p, state),
                        "delta_truth": metrics.new_lines(truth, state),
                        "scores": metrics.fwm_sample_scores(p, truth, state)}} for p in (state, truth)]
    found = metrics.aggregate(records, n_boot=10)
    assert found["fwm/delta_line_f1"]["value"] == 0.5 and found["fwm/delta_bleu"]["n"] == 2
    assert found["fwm/adds_no_line"]["value"] == 0.5
    assert not metrics.METRICS["fwm/adds_no_line"].higher_is_better
    assert found["fwm/delta_bleu"]["value"] < found["fwm/bleu"]["value"]
