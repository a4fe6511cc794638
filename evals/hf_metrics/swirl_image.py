"""SWIRL report-card pixel metrics of predicted vs true next images (an `evaluate` module; see __init__.py)."""

import evaluate

from evals.hf_metrics import image_pixel_metrics, module_info


class SwirlImage(evaluate.Metric):
    def _info(self):
        return module_info("PSNR (dB, peak 1, capped at 100), SSIM (Gaussian 11-tap window, sigma 1.5), mean absolute "
                           "and mean squared error on [0, 1] intensities.",
                           "predictions, references: RGB images (PIL or HxWx3 uint8).", kind="image")

    def _compute(self, predictions, references):
        return image_pixel_metrics(predictions, references)
