"""SWIRL report-card pixel metrics of predicted vs true next images (an `evaluate` module; see __init__.py)."""

import datasets
import evaluate

from evals.hf_metrics import image_pixel_metrics


class SwirlImage(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="PSNR (dB, peak 1, capped at 100), SSIM (Gaussian 11-tap window, sigma 1.5), mean absolute "
                        "and mean squared error on [0, 1] intensities.",
            citation="", inputs_description="predictions, references: RGB images (PIL or HxWx3 uint8).",
            features=datasets.Features({"predictions": datasets.Image(), "references": datasets.Image()}))

    def _compute(self, predictions, references):
        return image_pixel_metrics(predictions, references)
