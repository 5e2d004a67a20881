"""neurotrans.metrics: image metrics (plain functions) and the `evaluate` command.

``from neurotrans.metrics import psnr, ssim`` gives the audited metrics of
:mod:`neurotrans.metrics.image`. :mod:`neurotrans.metrics.evaluate` compares a folder of
predictions with a manifest through small producers, each returning one table
(:mod:`~neurotrans.metrics.pairing`, :mod:`~neurotrans.metrics.scores`,
:mod:`~neurotrans.metrics.reference`, :mod:`~neurotrans.metrics.regional`,
:mod:`~neurotrans.metrics.evaluate_ms`), and one writer; :mod:`~neurotrans.metrics.tables`
names the tables for the writer and the report.
"""

from neurotrans.metrics.image import mae, ms_ssim, mse, pearson, psnr, ssim

__all__ = ["mae", "ms_ssim", "mse", "pearson", "psnr", "ssim"]
