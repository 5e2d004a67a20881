"""GAN losses (BCE-with-logits, least squares, 2-class softmax) with reproducible label smoothing."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as nnf
from torch import nn

GAN_MODES = ("bce", "lsgan", "softmax")
REDUCTIONS = ("mean", "sum")


def _check_range(r: tuple[float, float], what: str) -> tuple[float, float]:
    lo, hi = (float(v) for v in r)
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"{what} must be (low, high) with 0 <= low <= high <= 1, got {r!r}")
    return lo, hi


def gan_targets(
    like: torch.Tensor, value_range: tuple[float, float], generator: torch.Generator | None = None
) -> torch.Tensor:
    """Targets shaped like ``like``, uniform in ``value_range`` (constant if low == high).

    Drawn on the CPU from ``generator`` then moved, so a seed gives the same targets on CPU
    and CUDA.
    """
    lo, hi = value_range
    if lo == hi:
        return torch.full_like(like, lo)
    u = torch.rand(like.shape, generator=generator, dtype=torch.float32)
    return (lo + (hi - lo) * u).to(device=like.device, dtype=like.dtype)


def _check_mode(mode: str, reduction: str) -> None:
    if mode not in GAN_MODES:
        raise ValueError(f"mode must be one of {GAN_MODES}, got {mode!r}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def adversarial_loss(
    logits: torch.Tensor,
    target_is_real: bool,
    *,
    mode: str = "bce",
    real_range: tuple[float, float] = (1.0, 1.0),
    fake_range: tuple[float, float] = (0.0, 0.0),
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """GAN loss of discriminator outputs against real or fake targets, over every patch.

    ``"bce"``: binary cross-entropy with logits (pix2pix); ``"lsgan"``: squared error of the
    raw outputs (least-squares GAN); ``"softmax"``: cross-entropy of a 2-class softmax per
    patch (the thesis's patch discriminator; channel 1 = real) against the soft label
    (t for real, 1 - t for fake). Label smoothing: the real-class probability t of every
    patch is drawn uniformly in ``real_range`` / ``fake_range`` (CF-SAGAN: (0.9, 1.0) and
    (0.0, 0.1)). ``reduction="mean"`` averages over patches and batch; ``"sum"`` sums over
    the patches of each image and averages over the batch (thesis ch. 3: "the sum of the
    cross-entropy losses from all the local patches").

    Args:
        logits: (B, 1, ...) for ``"bce"``/``"lsgan"``, (B, 2, ...) for ``"softmax"`` (no
            sigmoid / softmax applied).
        target_is_real: score against "real" targets (the generator's loss uses True).
        mode: ``"bce"``, ``"lsgan"`` or ``"softmax"``.
        real_range, fake_range: ranges of the real-class target, in [0, 1].
        generator: torch.Generator for reproducible smoothed targets (one draw per patch).
        reduction: ``"mean"`` or ``"sum"``.

    References: Goodfellow et al. 2014; Mao et al. 2017 (LSGAN); Salimans et al. 2016 (label
    smoothing); Wei et al. 2019 (thesis ch. 3, patch discriminator); Wei et al. 2020
    (CF-SAGAN, thesis ch. 4, Sec. 4.3.1).
    """
    _check_mode(mode, reduction)
    rng = _check_range(
        real_range if target_is_real else fake_range,
        "real_range" if target_is_real else "fake_range",
    )
    if mode == "softmax":
        if logits.dim() < 2 or logits.shape[1] != 2:
            raise ValueError(f"softmax mode needs (B, 2, ...) logits, got {tuple(logits.shape)}")
        t = gan_targets(logits[:, :1], rng, generator)
        logp = nnf.log_softmax(logits, dim=1)
        per_patch = -(t * logp[:, 1:] + (1 - t) * logp[:, :1])
    else:
        targets = gan_targets(logits, rng, generator)
        if mode == "bce":
            per_patch = nnf.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        else:
            per_patch = (logits - targets).square()
    if reduction == "mean":
        return per_patch.mean()
    return per_patch.sum() / logits.shape[0]


def patch_cross_entropy(
    logits: torch.Tensor,
    target_is_real: bool,
    *,
    real_range: tuple[float, float] = (1.0, 1.0),
    fake_range: tuple[float, float] = (0.0, 0.0),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Cross-entropy of a patch discriminator's 2-class logits summed over patches (batch mean).

    ``adversarial_loss(logits, target_is_real, mode="softmax", reduction="sum", ...)``.

    Args:
        logits: (B, 2, ...) from :class:`~neurotrans.networks.NonOverlappingPatchDiscriminator`.
        target_is_real: real (True) or fake (False) labels for every patch.
        real_range, fake_range: label smoothing ranges ((0.9, 1.0) and (0.0, 0.1) in CF-SAGAN).
        generator: seeded torch.Generator for reproducible smoothed labels.

    References: Wei et al. 2019 (thesis ch. 3, Sec. 3.2.4); Wei et al. 2020 (thesis ch. 4).
    """
    return adversarial_loss(logits, target_is_real, mode="softmax", real_range=real_range,
                            fake_range=fake_range, generator=generator, reduction="sum")  # fmt: skip


class AdversarialLoss(nn.Module):
    """Module form of :func:`adversarial_loss` holding the mode, ranges and a seeded generator.

    ``loss(logits, target_is_real, smooth=True)``; ``smooth=False`` uses exact 1/0 targets
    (the usual choice for the generator's own adversarial term).

    Args:
        mode: ``"bce"``, ``"lsgan"`` or ``"softmax"``.
        real_range, fake_range: label-smoothing ranges; (1, 1) and (0, 0) = none.
        seed: seed of the generator drawing smoothed targets (reproducible runs); the
            generator's state is part of ``state_dict()`` so checkpoints resume it.
        reduction: ``"mean"`` over patches, or ``"sum"`` over the patches of an image.
    """

    def __init__(
        self,
        mode: str = "bce",
        *,
        real_range: tuple[float, float] = (1.0, 1.0),
        fake_range: tuple[float, float] = (0.0, 0.0),
        seed: int = 0,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        _check_mode(mode, reduction)
        self.mode = mode
        self.reduction = reduction
        self.real_range = _check_range(real_range, "real_range")
        self.fake_range = _check_range(fake_range, "fake_range")
        self.generator = torch.Generator().manual_seed(seed)

    def get_extra_state(self) -> torch.Tensor:
        # the generator's position goes into state_dict so a resumed run draws the same targets;
        # a plain tensor, as every other state_dict value (the trainer detaches them all)
        return self.generator.get_state()

    def set_extra_state(self, state: torch.Tensor | dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["generator"] if isinstance(state, dict) else state)

    def forward(
        self, logits: torch.Tensor, target_is_real: bool, smooth: bool = True
    ) -> torch.Tensor:
        real, fake = (self.real_range, self.fake_range) if smooth else ((1.0, 1.0), (0.0, 0.0))
        return adversarial_loss(logits, target_is_real, mode=self.mode, real_range=real, fake_range=fake,
                                generator=self.generator, reduction=self.reduction)  # fmt: skip


def multiscale_adversarial_loss(
    outputs: torch.Tensor | Sequence[torch.Tensor], target_is_real: bool, *, mode: str = "bce"
) -> torch.Tensor:
    """Sum over scales of :func:`adversarial_loss` (each averaged over its positions).

    Summed, not averaged, as in UNIT and in the GAN-MRI code (one loss term per scale).

    Args:
        outputs: one logit tensor, or a list of them (a multi-scale discriminator's).
        target_is_real: score against "real" targets (the generators' loss uses True).
        mode: ``"bce"`` or ``"lsgan"``.

    References: Liu et al. 2017 (UNIT); Wang et al. 2018 (pix2pixHD).
    """
    if isinstance(outputs, torch.Tensor):
        return adversarial_loss(outputs, target_is_real, mode=mode)
    if not outputs:
        raise ValueError("multiscale_adversarial_loss needs at least one discriminator output")
    return torch.stack([adversarial_loss(o, target_is_real, mode=mode) for o in outputs]).sum()


@contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """Turn off ``requires_grad`` of the modules' parameters inside the block, then restore it.

    The generators' adversarial term backpropagates through the discriminators to the
    images without leaving gradients on the discriminators' weights.
    """
    params = [p for m in modules for p in m.parameters()]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)
