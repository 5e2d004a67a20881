"""UNIT's objectives: the encoders' + generators' loss and the discriminators' loss.

Two pure functions of the networks and one unpaired batch ``(x_a, x_b)``; a training
method only calls them and steps its optimisers:

- ``unit_discriminator_losses(unit, d_a, d_b, x_a, x_b, weights)``: minimised over D_a, D_b;
- ``unit_generator_losses(unit, d_a, d_b, x_a, x_b, weights)``: minimised over E_a, E_b,
  G_a, G_b and the shared blocks (all of ``unit.parameters()``).

References: Liu, Breuel & Kautz 2017 (UNIT, eq. 5-9); Welander et al. 2018 and its GAN-MRI
code (the weights below); Maheshwari & Pant (papers/004: Charbonnier variant).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from neurotrans.losses.adversarial import GAN_MODES, frozen, multiscale_adversarial_loss
from neurotrans.losses.pixel import charbonnier_loss, l1_loss

PIXEL_LOSSES = ("l1", "charbonnier")

#: Optimiser of the report / GAN-MRI code: Adam(1e-4, betas (0.5, 0.999)) for both E+G and D.
#: The Keras code sets an L2 kernel regulariser of 5e-5 (``0.0001 / 2``), i.e. a penalty
#: 5e-5 * sum(w^2) whose gradient is 1e-4 * w: torch's ``Adam(weight_decay=1e-4)`` (coupled
#: L2), which is also the UNIT reference's value. (Keras applies a regulariser assigned
#: after the layers are built only when the model is rebuilt, so that code may in fact
#: have trained without it.)
UNIT_OPTIMISER: dict[str, Any] = {"lr": 1e-4, "betas": (0.5, 0.999), "weight_decay": 1e-4}


def latent_kl_loss(mu: Tensor) -> Tensor:
    """UNIT's KL term: mean of ``mu**2`` over every element.

    With the encoders' fixed unit variance, KL(N(mu, I) || N(0, I)) = |mu|^2 / 2 per
    position; the UNIT reference and the GAN-MRI code use the plain mean of the squares.

    Args:
        mu: latent means (B, F, h, w[, d]).

    References: Liu et al. 2017 (UNIT, eq. 2); ``_compute_kl`` of the UNIT code.
    """
    return mu.square().mean()


@dataclass(frozen=True)
class UNITLossWeights:
    """Weights and choices of UNIT's objective (defaults: the report's / GAN-MRI's values).

    Args:
        gan: lambda_0, the adversarial terms (10), for G's and D's losses alike.
        kl: lambda_1, the KL term of the direct encodings (0.1).
        rec: lambda_2, the within-domain reconstruction (100).
        kl_cycle: lambda_3, the KL term of the re-encoded translations (0.1).
        cycle: lambda_4, the cycle reconstruction a -> b -> a and b -> a -> b (100).
        pixel: ``"l1"`` (the paper's MAE) or ``"charbonnier"`` (the report's variant) for
            both reconstructions.
        charbonnier_eps: eps of rho(x) = sqrt(x^2 + eps^2) in image units (the report gives
            no value; 1e-3 is the usual choice, e.g. LapSRN; images in [-1, 1]).
        gan_mode: ``"bce"`` (the report: "binary cross entropy") or ``"lsgan"`` (the
            current UNIT code).
    """

    gan: float = 10.0
    kl: float = 0.1
    rec: float = 100.0
    kl_cycle: float = 0.1
    cycle: float = 100.0
    pixel: str = "l1"
    charbonnier_eps: float = 1e-3
    gan_mode: str = "bce"

    def __post_init__(self) -> None:
        for name in ("gan", "kl", "rec", "kl_cycle", "cycle"):
            if getattr(self, name) < 0:
                raise ValueError(f"UNIT loss weight {name} must be >= 0, got {getattr(self, name)}")
        if self.pixel not in PIXEL_LOSSES:
            raise ValueError(f"pixel must be one of {PIXEL_LOSSES}, got {self.pixel!r}")
        if self.gan_mode not in GAN_MODES:
            raise ValueError(f"gan_mode must be one of {GAN_MODES}, got {self.gan_mode!r}")
        if self.charbonnier_eps <= 0:
            raise ValueError(f"charbonnier_eps must be > 0, got {self.charbonnier_eps}")

    def pixel_loss(self, pred: Tensor, target: Tensor) -> Tensor:
        """The reconstruction penalty (mean over voxels) chosen by ``pixel``."""
        if self.pixel == "charbonnier":
            return charbonnier_loss(pred, target, eps=self.charbonnier_eps)
        return l1_loss(pred, target)


def unit_generator_losses(
    unit: nn.Module,
    d_a: nn.Module,
    d_b: nn.Module,
    x_a: Tensor,
    x_b: Tensor,
    weights: UNITLossWeights | None = None,
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """The loss minimised by the encoders, generators and shared blocks on one batch.

    With z_a ~ E_a(x_a), z_b ~ E_b(x_b) (noisy samples in training mode)::

        x_aa = G_a(z_a)   x_ab = G_b(z_a)   z_ab ~ E_b(x_ab)   x_aba = G_a(z_ab)
        x_bb = G_b(z_b)   x_ba = G_a(z_b)   z_ba ~ E_a(x_ba)   x_bab = G_b(z_ba)

        loss = gan * (adv(D_b(x_ab), real) + adv(D_a(x_ba), real))
             + kl * (kl(mu_a) + kl(mu_b)) + rec * (rho(x_aa - x_a) + rho(x_bb - x_b))
             + kl_cycle * (kl(mu_ab) + kl(mu_ba)) + cycle * (rho(x_aba - x_a) + rho(x_bab - x_b))

    ``adv`` is summed over the discriminators' scales. The discriminators' weights are
    frozen during the call (they get no gradient); the graph reaches every parameter of
    ``unit`` (self-attention's key/query/value only once its gamma is non-zero).

    Args:
        unit: a :class:`~neurotrans.networks.nets.unit.UNIT` (``encode``/``decode``).
        d_a: discriminator of domain a (judges x_ba), returns logits or a list of them.
        d_b: discriminator of domain b (judges x_ab).
        x_a: (B, C_a, H, W[, D]) images of domain a, in the range of G's output.
        x_b: (B', C_b, H, W[, D]) images of domain b (unpaired with x_a).
        weights: :class:`UNITLossWeights` (the paper's by default).

    Returns:
        ``(losses, images)``: ``losses["loss"]`` is the weighted total (with its graph);
        the other entries are the unweighted terms, detached, for logging: ``gan_ab``,
        ``gan_ba``, ``kl_a``, ``kl_b``, ``kl_ab``, ``kl_ba``, ``rec_a``, ``rec_b``,
        ``cycle_a`` (a -> b -> a), ``cycle_b``. ``images`` holds the detached ``fake_a``
        (x_ba) and ``fake_b`` (x_ab), which may be passed on to
        :func:`unit_discriminator_losses`.

    References: Liu et al. 2017 (UNIT, eq. 5-9, the cycle term of eq. 8); GAN-MRI code.
    """
    w = weights or UNITLossWeights()
    mu_a, z_a = unit.encode(x_a, "a")
    mu_b, z_b = unit.encode(x_b, "b")
    x_aa, x_ab = unit.decode(z_a, "a"), unit.decode(z_a, "b")
    x_bb, x_ba = unit.decode(z_b, "b"), unit.decode(z_b, "a")
    mu_ab, z_ab = unit.encode(x_ab, "b")
    mu_ba, z_ba = unit.encode(x_ba, "a")
    x_aba, x_bab = unit.decode(z_ab, "a"), unit.decode(z_ba, "b")
    with frozen(d_a, d_b):
        gan_ab = multiscale_adversarial_loss(d_b(x_ab), True, mode=w.gan_mode)
        gan_ba = multiscale_adversarial_loss(d_a(x_ba), True, mode=w.gan_mode)
    terms = {
        "gan_ab": gan_ab, "gan_ba": gan_ba,
        "kl_a": latent_kl_loss(mu_a), "kl_b": latent_kl_loss(mu_b),
        "kl_ab": latent_kl_loss(mu_ab), "kl_ba": latent_kl_loss(mu_ba),
        "rec_a": w.pixel_loss(x_aa, x_a), "rec_b": w.pixel_loss(x_bb, x_b),
        "cycle_a": w.pixel_loss(x_aba, x_a), "cycle_b": w.pixel_loss(x_bab, x_b),
    }  # fmt: skip
    total = (
        w.gan * (gan_ab + gan_ba)
        + w.kl * (terms["kl_a"] + terms["kl_b"])
        + w.rec * (terms["rec_a"] + terms["rec_b"])
        + w.kl_cycle * (terms["kl_ab"] + terms["kl_ba"])
        + w.cycle * (terms["cycle_a"] + terms["cycle_b"])
    )
    losses = {"loss": total, **{k: v.detach() for k, v in terms.items()}}
    return losses, {"fake_a": x_ba.detach(), "fake_b": x_ab.detach()}


def unit_discriminator_losses(
    unit: nn.Module,
    d_a: nn.Module,
    d_b: nn.Module,
    x_a: Tensor,
    x_b: Tensor,
    weights: UNITLossWeights | None = None,
    *,
    fake_a: Tensor | None = None,
    fake_b: Tensor | None = None,
) -> dict[str, Tensor]:
    """The loss minimised by the two discriminators on one batch.

    ``loss = gan * (adv(D_a(x_a), real) + adv(D_a(x_ba), fake) + adv(D_b(x_b), real)
    + adv(D_b(x_ab), fake))``, each ``adv`` summed over scales (the GAN-MRI code weights
    D's terms by lambda_0 too). The translations are computed here without a graph
    (``unit`` gets no gradient) unless given.

    Args:
        unit: the UNIT generators (used only when ``fake_a`` / ``fake_b`` are missing).
        d_a, d_b: the discriminators of domains a and b.
        x_a: (B, C_a, H, W[, D]) real images of domain a.
        x_b: (B', C_b, H, W[, D]) real images of domain b.
        weights: :class:`UNITLossWeights` (``gan`` and ``gan_mode`` are used).
        fake_a: translations b -> a (x_ba), e.g. ``images["fake_a"]`` of
            :func:`unit_generator_losses`; computed from ``x_b`` when None.
        fake_b: translations a -> b (x_ab); computed from ``x_a`` when None.

    Returns:
        ``loss`` (with its graph) and the detached unweighted terms ``d_a_real``,
        ``d_a_fake``, ``d_b_real``, ``d_b_fake``.

    References: Liu et al. 2017 (UNIT, eq. 3); GAN-MRI code (``discriminatorA.train_on_batch``).
    """
    w = weights or UNITLossWeights()
    if fake_a is None or fake_b is None:
        with torch.no_grad():
            if fake_b is None:
                fake_b = unit.decode(unit.encode(x_a, "a")[1], "b")
            if fake_a is None:
                fake_a = unit.decode(unit.encode(x_b, "b")[1], "a")
    terms = {
        "d_a_real": multiscale_adversarial_loss(d_a(x_a), True, mode=w.gan_mode),
        "d_a_fake": multiscale_adversarial_loss(d_a(fake_a.detach()), False, mode=w.gan_mode),
        "d_b_real": multiscale_adversarial_loss(d_b(x_b), True, mode=w.gan_mode),
        "d_b_fake": multiscale_adversarial_loss(d_b(fake_b.detach()), False, mode=w.gan_mode),
    }
    total = w.gan * (terms["d_a_real"] + terms["d_a_fake"] + terms["d_b_real"] + terms["d_b_fake"])
    return {"loss": total, **{k: v.detach() for k, v in terms.items()}}
