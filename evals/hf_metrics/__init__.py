"""The report card's metrics as Hugging Face `evaluate` modules, loaded from this folder (no Hub):

    from evals import hf_metrics
    bleu = hf_metrics.load("swirl_text_overlap")      # = evaluate.load(str(hf_metrics.path("swirl_text_overlap")))
    bleu.compute(predictions=[...], references=[...])  # {"fwm/bleu": {"value", "stderr", "n"}, ...}

Each module is a thin wrapper: it builds the runner's sample records (`runner.sample_record`,
`image_metrics.pixel_metrics`) and aggregates them with the runner's own functions, so it gives the card's
numbers. Modules: swirl_text_overlap (BLEU, chrF, ROUGE-L, exact match; with `states`, the changed-line
metrics), swirl_json (JSON validity, key and key-value F1), swirl_tool_call (the IDM action metrics),
swirl_image (PSNR, SSIM, L1, L2).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import image_metrics, metrics
from ..runner import sample_record

MODULES = ("swirl_text_overlap", "swirl_json", "swirl_tool_call", "swirl_image")


def path(name: str) -> Path:
    if name not in MODULES:
        raise ValueError(f"no evaluate module {name!r}; the modules are {', '.join(MODULES)}")
    return Path(__file__).with_name(f"{name}.py")


def load(name: str, **kwargs: Any) -> Any:
    import evaluate

    return evaluate.load(str(path(name)), **kwargs)


def module_info(description: str, inputs: str, kind: str = "string") -> Any:
    """The MetricInfo of a module whose predictions and references are strings or ("image") images."""
    import datasets
    import evaluate

    feature = datasets.Image() if kind == "image" else datasets.Value("string")
    return evaluate.MetricInfo(description=description, citation="", inputs_description=inputs,
                               features=datasets.Features({"predictions": feature, "references": feature}))


def text_metrics(role: str, names: Sequence[str], predictions: Sequence[str], references: Sequence[str],
                 states: Sequence[str] | None = None, *, seed: int = 0,
                 n_boot: int = metrics.BOOTSTRAP_SAMPLES) -> dict[str, dict[str, Any]]:
    """The card's `names` over FWM (role "fwm": prediction/reference are next states) or IDM (role "idm":
    they are actions) samples, scored and aggregated as the runner does."""
    from swirl_envs.transition import Transition

    records = []
    for i, (prediction, reference) in enumerate(zip(predictions, references, strict=True)):
        state = states[i] if states is not None else None
        if role == "fwm":
            t = Transition(state, reference, None, "", i)
            records.append(sample_record("", i, t, prediction, None))
        else:
            records.append(sample_record("", i, Transition(state, "", reference, "", i), None, prediction))
    found = metrics.aggregate(records, seed=seed, n_boot=n_boot)
    return {name: found[name] for name in names if name in found}


def image_pixel_metrics(predictions: Sequence[Any], references: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """fwm/psnr, fwm/ssim, fwm/l1 and fwm/l2 as the image runner scores and aggregates them."""
    records = [{"fwm": {"scores": {f"fwm/{k}": v for k, v in image_metrics.pixel_metrics(p, r).items()}}}
               for p, r in zip(predictions, references, strict=True)]
    return image_metrics.aggregate(records)
