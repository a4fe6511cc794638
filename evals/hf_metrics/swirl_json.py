"""SWIRL report-card JSON metrics of predicted vs true next states (an `evaluate` module; see __init__.py)."""

import datasets
import evaluate

from evals.hf_metrics import text_metrics

NAMES = ("fwm/json_valid", "fwm/json_key_f1", "fwm/json_kv_f1")


class SwirlJson(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Prediction parses as JSON, F1 of JSON leaf key paths and of (path, value) pairs; only "
                        "samples whose reference is JSON count.",
            citation="", inputs_description="predictions, references: next-state texts.",
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}))

    def _compute(self, predictions, references):
        return text_metrics("fwm", NAMES, predictions, references)
