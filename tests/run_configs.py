"""The tiny training run the trainer tests share: a small pix2pix-style U-Net on the tiny cohort."""

from __future__ import annotations

from pathlib import Path


def tiny_config(manifest: Path, method: str = "pix2pix", steps: int = 8, norm: str = "batch", **trainer: object) -> dict:
    """A config dict of ``method`` (``supervised`` or ``pix2pix``) for ``steps`` steps, checkpoints every 3,
    validation every 4, every step logged; ``trainer`` overrides the trainer section."""
    model = {"method": method, "generator": "unet_pix2pix", "generator_args": {"base": 4, "depth": 2, "norm": norm}}
    if method == "pix2pix":
        model["discriminator_args"] = {"base": 4, "n_layers": 1}
    return {"model": model,
            "data": {"manifest": str(manifest), "voxel_size": None, "normalisation": {"FDG": "zscore"},
                     "batch_size": 4},
            "split": {"kind": "fixed", "test_fraction": 0.34, "val_fraction": 0.17},
            "trainer": {"max_steps": steps, "val_every": 4, "checkpoint_every": 3, "progress": False,
                        "log_every": 1, **trainer}}
