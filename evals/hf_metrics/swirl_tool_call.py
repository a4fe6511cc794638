"""SWIRL report-card IDM action metrics (an `evaluate` module; see __init__.py)."""

import evaluate

from evals.hf_metrics import module_info, text_metrics

NAMES = ("idm/exact_match", "idm/token_f1", "idm/name_exact", "idm/args_f1", "idm/call_exact")


class SwirlToolCall(evaluate.Metric):
    def _info(self):
        return module_info("Action exact match and content-word F1; for references that are tool calls (JSON or "
                           "ReAct), tool-name match, argument F1 and whole-call match.",
                           "predictions, references: action texts.")

    def _compute(self, predictions, references):
        return text_metrics("idm", NAMES, predictions, references)
