"""SWIRL report-card JSON metrics of predicted vs true next states (an `evaluate` module; see __init__.py)."""

import evaluate

from evals.hf_metrics import module_info, text_metrics

NAMES = ("fwm/json_valid", "fwm/json_key_f1", "fwm/json_kv_f1")


class SwirlJson(evaluate.Metric):
    def _info(self):
        return module_info("Prediction parses as JSON, F1 of JSON leaf key paths and of (path, value) pairs; only "
                           "samples whose reference is JSON count.",
                           "predictions, references: next-state texts.")

    def _compute(self, predictions, references):
        return text_metrics("fwm", NAMES, predictions, references)
