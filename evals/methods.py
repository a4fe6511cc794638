"""The one table of methods: every place that lists, orders, colours or compares methods reads it.

Row order is display order (report cards, experiment summaries, figure legends): the untrained base model,
the SFT reference, then the published methods. A variant `swirl:nokl` is shown, coloured and compared like
its base `swirl`.
"""

from __future__ import annotations

from dataclasses import dataclass

FALLBACK_COLOUR = "#1f77b4"  # methods outside the table (plug-in trainers)


@dataclass(frozen=True)
class Method:
    name: str
    colour: str  # one colour per method in every figure
    baseline: str = "sft"  # the SFT row its gains are measured against
    experiment: bool = True  # evals.experiments can train (or, for verify@N, wrap) it
    gain: bool = True  # drawn in the gains figure (the baselines themselves are not)
    horizon: bool = False  # drawn in the rollout-horizon figure
    trainer: str | None = None  # the registered trainer evals.experiments trains it with (None: not trained)


METHODS: dict[str, Method] = {m.name: m for m in [
    Method("base", FALLBACK_COLOUR, experiment=False, gain=False),
    Method("sft", "#7f7f7f", gain=False, horizon=True, trainer="sft"),
    Method("bootstrap", "#bcbd22", horizon=True, trainer="bootstrap"),
    Method("verify@8", "#17becf"),
    Method("swirl-idm2fwm", "#ff7f0e", horizon=True, trainer="swirl"),
    Method("swirl", "#d62728", horizon=True, trainer="swirl"),
    Method("sft-shared", "#8c564b", gain=False, trainer="sft"),
    Method("swirl-shared", "#9467bd", baseline="sft-shared", trainer="swirl"),
    Method("sft-oracle", "#2ca02c", horizon=True, trainer="sft"),
]}

# Controls (issue 13) say why SWIRL wins or not: rewards shuffled within each group (what noise alone moves),
# Phase I with U's true actions as z (its ceiling given a perfect IDM), Phase I judged by the sft-oracle IDM
# (is the judge the bottleneck?). Variants of `swirl`, shown, coloured and compared like it, and trained only
# when named in --methods; evals/experiments.py holds their data and settings.
CONTROLS = ("swirl:random-reward", "swirl:oracle-z", "swirl:strong-judge")
# Variants evals/experiments.py trains from another method than their base does, only when named: Phase I
# from bootstrap's FWM (SFT's IDM judges), for bootstrap's FWM that stops heeding z where its pseudo-labels
# are wrong, which is what Phase I's reward (can the judge read z back?) punishes
STAGED = ("swirl-idm2fwm:from-bootstrap",)

METHOD_ORDER = tuple(METHODS)
EXPERIMENT_METHODS = tuple(name for name, m in METHODS.items() if m.experiment)
GAIN_METHODS = tuple(name for name, m in METHODS.items() if m.gain)
HORIZON_METHODS = tuple(name for name, m in METHODS.items() if m.horizon)


def base_method(method: str) -> str:
    """A variant `swirl:beta0` trains, shows and compares like `swirl`."""
    return method.partition(":")[0]


def trainer_of(method: str) -> str | None:
    """The trainer behind a method or its variant; None for methods that are not trained (verify@N, base)."""
    row = METHODS.get(base_method(method))
    return row.trainer if row else None


def colour(method: str) -> str:
    row = METHODS.get(base_method(method))
    return row.colour if row else FALLBACK_COLOUR


def baseline_of(method: str) -> str:
    """The SFT row a method is compared with: shared-weights SWIRL starts from (and is judged against) the
    shared-weights SFT model, everything else against `sft`."""
    row = METHODS.get(base_method(method))
    return row.baseline if row else "sft"


def order_methods(methods: list[str]) -> list[str]:
    """The table's methods first, in its order; any others after them, as given."""
    known = [m for m in METHOD_ORDER if m in methods]
    return known + [m for m in methods if m not in known]
