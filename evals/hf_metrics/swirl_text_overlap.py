"""SWIRL report-card text overlap of predicted vs true next states (an `evaluate` module; see __init__.py)."""

import evaluate

from evals.hf_metrics import module_info, text_metrics

NAMES = ("fwm/bleu", "fwm/chrf", "fwm/rougeL", "fwm/exact_match", "fwm/delta_bleu", "fwm/delta_line_f1")


class SwirlTextOverlap(evaluate.Metric):
    def _info(self):
        return module_info("Corpus BLEU and chrF (sacrebleu, bootstrap standard error), ROUGE-L and exact match; "
                           "with `states`, BLEU and line F1 of the lines the next state changed.",
                           "predictions, references: next-state texts; states (optional): the "
                           "states they follow; seed, n_boot: the bootstrap's.")

    def _compute(self, predictions, references, states=None, seed=0, n_boot=1000):
        return text_metrics("fwm", NAMES, predictions, references, states, seed=seed, n_boot=n_boot)
