"""Offline metrics for world-model report cards.

Two kinds of metric:

* **mean** metrics score each sample on its own (ROUGE-L, exact match, JSON validity, key F1, token
  F1, tool-call matches); the value is the mean over samples and the standard error is analytic,
  std(ddof=1) / sqrt(n).
* **corpus** metrics (BLEU, chrF) are computed from summed per-sample sufficient statistics, as
  sacrebleu does; their standard error comes from sacrebleu's seeded bootstrap over samples (the
  half-width of its 95% interval over 1.96).

Scales: BLEU, chrF and ROUGE-L are 0-100 (as the SWIRL paper reports StableToolBench BLEU); exact
match, validity and F1 scores are fractions in [0, 1].

Names are namespaced by the model they score: `fwm/*` compares a predicted next state with the true
one, `idm/*` a predicted action with the true one. A sample whose truth does not admit a metric (a
truth that is not JSON for `fwm/json_*`, not a tool call for `idm/name_exact`) scores None and is not
counted in that metric's n.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

BOOTSTRAP_SAMPLES = 1000
Z95 = 1.959963984540054  # standard normal quantile at 0.975: a 95% interval is ±Z95 standard errors

# ------------------------------------------------------------------ text normalisation and parsing

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def tokens(text: str) -> list[str]:
    """Lower-cased word and punctuation tokens: `Get_weather(city="Oslo")` -> get_weather ( city = " oslo " )."""
    return _TOKEN.findall(text.lower())


def _f1(overlap: int, n_pred: int, n_gold: int) -> float:
    if n_pred == 0 and n_gold == 0:
        return 1.0
    if overlap == 0:
        return 0.0
    precision, recall = overlap / n_pred, overlap / n_gold
    return 2 * precision * recall / (precision + recall)


def multiset_f1(pred: Sequence[Any] | Counter, gold: Sequence[Any] | Counter) -> float:
    """F1 between two bags (both empty -> 1.0)."""
    p, g = Counter(pred), Counter(gold)
    return _f1(sum((p & g).values()), sum(p.values()), sum(g.values()))


def set_f1(pred: set, gold: set) -> float:
    """F1 between two sets (both empty -> 1.0)."""
    return _f1(len(pred & gold), len(pred), len(gold))


_FENCE = re.compile(r"^```[\w-]*\s*\n?(.*?)\n?```$", re.DOTALL)


def parse_json(text: str) -> tuple[bool, Any]:
    """(True, value) when `text` (optionally inside a ``` fence) is one JSON document, else (False, None)."""
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    try:
        return True, json.loads(body, strict=False)
    except (ValueError, RecursionError):
        return False, None


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def flatten_json(value: Any, prefix: str = "$") -> dict[str, Any]:
    """Leaf paths of a JSON value: {"a": {"b": [1, 2]}} -> {"$.a.b[0]": 1, "$.a.b[1]": 2}.

    Empty objects and arrays are leaves themselves, so `{}` and `{"a": {}}` have different paths.
    """
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten_json(item, f"{prefix}.{key}"))
        return out
    if isinstance(value, list) and value:
        out = {}
        for i, item in enumerate(value):
            out.update(flatten_json(item, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def json_key_f1(prediction: Any, truth: Any, *, with_values: bool = False) -> float:
    """F1 between the leaf key paths of two parsed JSON values; with_values compares (path, value) pairs."""
    pred, gold = flatten_json(prediction), flatten_json(truth)
    if with_values:
        return set_f1({(k, canonical(v)) for k, v in pred.items()}, {(k, canonical(v)) for k, v in gold.items()})
    return set_f1(set(pred), set(gold))


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]


_NAME_KEYS = ("name", "api_name", "tool_name", "function")
_ARG_KEYS = ("arguments", "args", "parameters", "action_input")
_REACT = re.compile(r"Action:\s*(?P<name>[^\n]+?)\s*\n\s*Action Input:\s*(?P<args>.*)\Z", re.DOTALL)


def _as_arguments(raw: Any) -> dict[str, Any]:
    """Arguments as a dict: '' or None is {}, JSON object text is parsed, anything else is kept as {"$": raw}."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    if isinstance(raw, str):
        ok, value = parse_json(raw)
        raw = value if ok else raw
    return raw if isinstance(raw, dict) else {"$": raw}


def parse_tool_call(text: str) -> ToolCall | None:
    """A tool call from text, or None.

    Accepted: a JSON object `{"name": ..., "arguments": {...}}` (arguments may also be a JSON string,
    OpenAI-style; `{"function": {"name": ..., "arguments": ...}}` is unwrapped), or ToolBench's ReAct
    lines `Action: NAME` / `Action Input: {...}`.
    """
    ok, value = parse_json(text)
    if ok and isinstance(value, dict):
        if isinstance(value.get("function"), dict):
            value = value["function"]
        name = next((value[k] for k in _NAME_KEYS if isinstance(value.get(k), str)), None)
        raw_args = next((value[k] for k in _ARG_KEYS if k in value), None)
        return ToolCall(name.strip(), _as_arguments(raw_args)) if name is not None else None
    match = _REACT.search(text.strip())
    if match:
        return ToolCall(match.group("name").strip(), _as_arguments(match.group("args").strip()))
    return None


def args_f1(prediction: ToolCall, truth: ToolCall) -> float:
    """F1 over (key, canonical JSON value) pairs of the two calls' top-level arguments."""
    pred = {(k, canonical(v)) for k, v in prediction.arguments.items()}
    gold = {(k, canonical(v)) for k, v in truth.arguments.items()}
    return set_f1(pred, gold)


# ------------------------------------------------------------------ per-sample scores

def exact_match(prediction: str, truth: str) -> float:
    return float(prediction.strip() == truth.strip())


_WORD = re.compile(r"\w+", re.UNICODE)


def content_words(text: str) -> list[str]:
    """Lower-cased words that carry content: punctuation never counts, and for a JSON object or array
    neither do its top-level keys (`name`, `arguments`, `response`: the schema, which any well-formed
    output repeats); nested keys (argument names) and every value do."""
    ok, value = parse_json(text)
    if not ok or not isinstance(value, dict | list):
        return _WORD.findall(text.lower())
    words: list[str] = []

    def walk(item: Any, depth: int) -> None:
        if isinstance(item, dict):
            for key, child in item.items():
                if depth > 0:
                    words.extend(_WORD.findall(str(key).lower()))
                walk(child, depth + 1)
        elif isinstance(item, list):
            for child in item:
                walk(child, depth + 1)
        elif item is not None:
            words.extend(_WORD.findall((item if isinstance(item, str) else json.dumps(item)).lower()))

    walk(value, 0)
    return words


def token_f1(prediction: str, truth: str) -> float:
    """F1 over `content_words`: a constant well-formed call with empty values scores 0 (both empty: 1)."""
    return multiset_f1(content_words(prediction), content_words(truth))


@lru_cache(maxsize=1)
def _rouge_scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rouge_l(prediction: str, truth: str) -> float:
    """ROUGE-L F-measure (rouge-score, no stemming) on 0-100."""
    return 100.0 * _rouge_scorer().score(truth, prediction)["rougeL"].fmeasure


@lru_cache(maxsize=1)
def _bleu():
    from sacrebleu.metrics import BLEU

    return BLEU()


@lru_cache(maxsize=1)
def _sentence_bleu():
    from sacrebleu.metrics import BLEU

    return BLEU(effective_order=True)


@lru_cache(maxsize=1)
def _chrf():
    from sacrebleu.metrics import CHRF

    return CHRF()


def sentence_bleu(prediction: str, truth: str) -> float:
    """sacrebleu sentence BLEU (effective order), 0-100: the per-sample view; the card reports corpus BLEU."""
    return float(_sentence_bleu().sentence_score(prediction, [truth]).score)


def sentence_chrf(prediction: str, truth: str) -> float:
    return float(_chrf().sentence_score(prediction, [truth]).score)


def new_lines(text: str, state: str) -> str:
    """The lines of `text` that `state` does not have (as a multiset, in order): what a next state changed.
    Most of a next state is copied from the state; metrics on the whole text mostly measure that copy.
    Lines compare without their surrounding blanks, so a model's stray space is not scored as a change;
    `swirl_core.prompts.changed_lines`, which builds training targets, compares exactly, as it must invert."""
    left = Counter(line.strip() for line in state.splitlines())
    kept = []
    for line in text.splitlines():
        if left[line.strip()] > 0:
            left[line.strip()] -= 1
        else:
            kept.append(line)
    return "\n".join(kept)


def adds_no_line(prediction_delta: str, truth_delta: str) -> float | None:
    """1.0 when a prediction adds no line to the state although the true next state does (it repeats x, which
    whole-state BLEU rewards), 0.0 when it adds some, None when the truth adds none either (deltas: `new_lines`)."""
    if not truth_delta.strip():
        return None
    return float(not prediction_delta.strip())


def state_scores(prediction: str, truth: str, state: str,
                 parse: Callable[[str], Mapping[str, str] | None]) -> dict[str, float | None]:
    """Exact state match and F1 of the changed fields, read by a simulator's own `parse` (fields -> values,
    None when the text is not a state). A changed field is (field, value) where the value differs from
    the state's, a removed field valued None; a prediction that does not parse scores 0 on both."""
    before, after = parse(state), parse(truth)
    if before is None or after is None:
        return {"fwm/state_exact": None, "fwm/changed_f1": None}
    predicted = parse(prediction)
    if predicted is None:
        return {"fwm/state_exact": 0.0, "fwm/changed_f1": 0.0}

    def changed(fields: Mapping[str, str]) -> set[tuple[str, str | None]]:
        return {(key, fields.get(key)) for key in before.keys() | fields.keys() if fields.get(key) != before.get(key)}

    return {"fwm/state_exact": float(predicted == after), "fwm/changed_f1": set_f1(changed(predicted), changed(after))}


def fwm_sample_scores(prediction: str, truth: str, state: str | None = None,
                      parse: Callable[[str], Mapping[str, str] | None] | None = None) -> dict[str, float | None]:
    """Per-sample FWM scores; corpus metrics appear as their sentence-level versions. With the text
    `state`, also the F1 of the changed lines (`new_lines` of prediction and truth, as multisets), and
    with a simulator's state `parse`, the `state_scores`."""
    scores: dict[str, float | None] = {
        "fwm/bleu": sentence_bleu(prediction, truth), "fwm/chrf": sentence_chrf(prediction, truth),
        "fwm/rougeL": rouge_l(prediction, truth), "fwm/exact_match": exact_match(prediction, truth),
        "fwm/json_valid": None, "fwm/json_key_f1": None, "fwm/json_kv_f1": None, "fwm/delta_line_f1": None}
    if state is not None:
        deltas = [new_lines(text, state) for text in (prediction, truth)]
        changed = [delta.splitlines() for delta in deltas]
        scores["fwm/delta_line_f1"] = multiset_f1([s.strip() for s in changed[0]], [s.strip() for s in changed[1]])
        scores["fwm/adds_no_line"] = adds_no_line(*deltas)
        if parse is not None:
            scores.update(state_scores(prediction, truth, state, parse))
    truth_ok, truth_value = parse_json(truth)
    if truth_ok:
        pred_ok, pred_value = parse_json(prediction)
        scores["fwm/json_valid"] = float(pred_ok)
        scores["fwm/json_key_f1"] = json_key_f1(pred_value, truth_value) if pred_ok else 0.0
        scores["fwm/json_kv_f1"] = json_key_f1(pred_value, truth_value, with_values=True) if pred_ok else 0.0
    return scores


def idm_sample_scores(prediction: str, truth: str) -> dict[str, float | None]:
    scores: dict[str, float | None] = {
        "idm/exact_match": exact_match(prediction, truth), "idm/token_f1": token_f1(prediction, truth),
        "idm/name_exact": None, "idm/args_f1": None, "idm/call_exact": None}
    gold = parse_tool_call(truth)
    if gold is not None:
        pred = parse_tool_call(prediction)
        scores["idm/name_exact"] = float(pred is not None and pred.name == gold.name)
        scores["idm/args_f1"] = args_f1(pred, gold) if pred is not None else 0.0
        scores["idm/call_exact"] = float(pred is not None and pred.name == gold.name
                                         and canonical(pred.arguments) == canonical(gold.arguments))
    return scores


# ------------------------------------------------------------------ aggregation

@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: str  # "mean" | "corpus"
    description: str
    scale: str  # "0-100" | "0-1" | "dB" | "cosine"
    higher_is_better: bool = True  # False for error metrics (fwm/l1, fwm/l2): `check` then regresses upwards
    texts: tuple[str, str] = ("prediction", "truth")  # corpus metrics: the record fields they compare


METRICS: dict[str, MetricSpec] = {m.name: m for m in [
    MetricSpec("fwm/bleu", "corpus", "corpus BLEU (sacrebleu, 13a tokenizer) of predicted vs true next state", "0-100"),
    MetricSpec("fwm/chrf", "corpus", "corpus chrF (sacrebleu) of predicted vs true next state", "0-100"),
    MetricSpec("fwm/delta_bleu", "corpus", "corpus BLEU of the changed lines only (lines of the next state not in "
               "the state), predicted vs true", "0-100", texts=("delta_prediction", "delta_truth")),
    MetricSpec("fwm/delta_line_f1", "mean", "F1 of the changed lines (lines of the next state not in the state)",
               "0-1"),
    MetricSpec("fwm/adds_no_line", "mean", "the prediction adds no line to the state although the true next state "
               "does: it repeats x, which whole-state BLEU rewards (text states)", "0-1", higher_is_better=False),
    MetricSpec("fwm/state_exact", "mean", "the predicted next state parses and equals the true one, field by field "
               "(simulators that read their own states)", "0-1"),
    MetricSpec("fwm/changed_f1", "mean", "F1 of the (field, value) pairs that changed from the state, predicted vs "
               "true (simulators that read their own states; an unreadable prediction scores 0)", "0-1"),
    MetricSpec("fwm/rougeL", "mean", "ROUGE-L F-measure (rouge-score), mean over samples", "0-100"),
    MetricSpec("fwm/exact_match", "mean", "next state equal after stripping surrounding whitespace", "0-1"),
    MetricSpec("fwm/json_valid", "mean", "prediction parses as JSON (samples whose truth is JSON)", "0-1"),
    MetricSpec("fwm/json_key_f1", "mean", "F1 of JSON leaf key paths (samples whose truth is JSON)", "0-1"),
    MetricSpec("fwm/json_kv_f1", "mean", "F1 of JSON (key path, value) pairs (samples whose truth is JSON)", "0-1"),
    MetricSpec("idm/exact_match", "mean", "action equal after stripping surrounding whitespace", "0-1"),
    MetricSpec("idm/token_f1", "mean", "word F1 of predicted vs true action (content words: no punctuation, "
               "no top-level JSON keys)", "0-1"),
    MetricSpec("idm/action_valid", "mean", "executing the predicted action from x in the simulator gives y "
               "(simulators only: several actions can be right)", "0-1"),
    MetricSpec("idm/name_exact", "mean", "tool name matches (samples whose true action is a tool call)", "0-1"),
    MetricSpec("idm/args_f1", "mean", "F1 of (argument, value) pairs (samples whose true action is a tool call)", "0-1"),
    MetricSpec("idm/call_exact", "mean", "name and all arguments match (samples whose true action is a tool call)", "0-1"),
]}


def mean_stderr(values: Sequence[float]) -> dict[str, Any]:
    """Mean with analytic standard error std(ddof=1)/sqrt(n) (None when n < 2)."""
    arr = np.asarray(values, dtype=np.float64)
    n = int(arr.size)
    if n == 0:
        return {"value": None, "stderr": None, "n": 0}
    stderr = float(arr.std(ddof=1) / math.sqrt(n)) if n > 1 else None
    return {"value": float(arr.mean()), "stderr": stderr, "n": n}


@contextmanager
def _sacrebleu_seed(seed: int) -> Iterator[None]:
    """sacrebleu's bootstrap reads its seed from SACREBLEU_SEED when it runs (its documented knob)."""
    before = os.environ.get("SACREBLEU_SEED")
    os.environ["SACREBLEU_SEED"] = str(seed)
    try:
        yield
    finally:
        if before is None:
            del os.environ["SACREBLEU_SEED"]
        else:
            os.environ["SACREBLEU_SEED"] = before


def _corpus(metric, predictions: Sequence[str], truths: Sequence[str], seed: int,
            n_boot: int = BOOTSTRAP_SAMPLES) -> dict[str, Any]:
    """The corpus score, with a standard error from sacrebleu's own bootstrap over samples. sacrebleu gives
    the half-width of the 95% percentile interval, read here as Z95 standard errors. The bootstrap runs
    through `PairedTest` with this one system: `corpus_score(n_bootstrap=...)` fails in sacrebleu 2.6 when
    some resamples score a Python 0.0 and others a numpy float32 (statistics.mean cannot mix them)."""
    from sacrebleu.significance import PairedTest

    n = len(predictions)
    if n == 0:
        return {"value": None, "stderr": None, "n": 0}
    if n < 2:
        return {"value": float(metric.corpus_score(list(predictions), [list(truths)]).score), "stderr": None, "n": n}
    with _sacrebleu_seed(seed):
        _, table = PairedTest([("system", list(predictions))], {"metric": metric}, [list(truths)], test_type="bs",
                              n_samples=n_boot)()
    result = next(column[0] for name, column in table.items() if name != "System")
    return {"value": float(result.score), "stderr": float(result.ci) / Z95, "n": n}


def corpus_bleu(predictions: Sequence[str], truths: Sequence[str], *, seed: int = 0,
                n_boot: int = BOOTSTRAP_SAMPLES) -> dict[str, Any]:
    """sacrebleu corpus BLEU (0-100) with a bootstrap standard error over samples."""
    return _corpus(_bleu(), predictions, truths, seed, n_boot)


def corpus_bleu_score(predictions: Sequence[str], truths: Sequence[str]) -> float:
    """The same corpus BLEU without the bootstrap: for figures that need no standard error."""
    return float(_bleu().corpus_score(list(predictions), [list(truths)]).score)


def corpus_chrf(predictions: Sequence[str], truths: Sequence[str], *, seed: int = 0,
                n_boot: int = BOOTSTRAP_SAMPLES) -> dict[str, Any]:
    return _corpus(_chrf(), predictions, truths, seed, n_boot)


CORPUS: dict[str, Callable[..., dict[str, Any]]] = {"fwm/bleu": corpus_bleu, "fwm/chrf": corpus_chrf,
                                                    "fwm/delta_bleu": corpus_bleu}


def aggregate(samples: Sequence[Mapping[str, Any]], *, seed: int = 0,
              n_boot: int = BOOTSTRAP_SAMPLES) -> dict[str, dict[str, Any]]:
    """Metric name -> {value, stderr, n} over sample records (see runner.sample_record).

    A record has `fwm` / `idm` parts ({prediction, truth, scores}) or None where that model was not
    evaluated. Metrics with n == 0 are left out.
    """
    out: dict[str, dict[str, Any]] = {}
    for name, spec in METRICS.items():
        role = name.split("/", 1)[0]
        parts = [s[role] for s in samples if s.get(role) is not None]
        if spec.kind == "corpus":
            pred_key, truth_key = spec.texts
            parts = [p for p in parts if pred_key in p and truth_key in p]
            result = CORPUS[name]([p[pred_key] for p in parts], [p[truth_key] for p in parts], seed=seed,
                                  n_boot=n_boot)
        else:
            result = mean_stderr([p["scores"][name] for p in parts if p["scores"].get(name) is not None])
        if result["n"]:
            out[name] = result
    return out
