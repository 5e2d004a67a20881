"""neurotrans.metrics: image metrics (plain functions) and the `evaluate` command.

``from neurotrans.metrics import psnr, ssim`` gives the audited metrics of
:mod:`neurotrans.metrics.image`; :mod:`neurotrans.metrics.evaluate` compares a folder of
predictions with a manifest, :mod:`neurotrans.metrics.evaluate_ms` adds the MS analyses.
"""

from neurotrans.metrics.image import mae, ms_ssim, mse, pearson, psnr, ssim

__all__ = ["mae", "ms_ssim", "mse", "pearson", "psnr", "ssim"]
