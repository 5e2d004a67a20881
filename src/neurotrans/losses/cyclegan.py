"""CycleGAN's objectives: the two generators' loss and the two discriminators' loss.

Pure functions of the networks and one unpaired batch ``(x_a, x_b)``. The reference
steps the generators first, then the discriminators on the same batch's fakes drawn
through an :class:`~neurotrans.losses.image_pool.ImagePool` of 50.

References: Zhu et al. 2017 (CycleGAN), ``cycle_gan_model.py`` of the reference code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from neurotrans.losses.adversarial import GAN_MODES, frozen, multiscale_adversarial_loss
from neurotrans.losses.pixel import l1_loss

#: The reference's optimiser for G and for D: Adam(2e-4, betas (0.5, 0.999)), no weight
#: decay; the learning rate is constant for 100 epochs, then decays linearly to 0 over 100.
CYCLEGAN_OPTIMISER: dict[str, Any] = {"lr": 2e-4, "betas": (0.5, 0.999), "weight_decay": 0.0}


@dataclass(frozen=True)
class CycleGANLossWeights:
    """Weights of CycleGAN's objective (defaults: the reference's).

    Args:
        cycle: lambda of both cycle-consistency terms (10; ``lambda_A = lambda_B``).
        identity: identity weight as a fraction of ``cycle`` (0.5, so 5 in total; 0
            disables the identity terms, which need equal channel counts).
        gan_mode: ``"lsgan"`` (the reference) or ``"bce"``.
    """

    cycle: float = 10.0
    identity: float = 0.5
    gan_mode: str = "lsgan"

    def __post_init__(self) -> None:
        if self.cycle < 0 or self.identity < 0:
            raise ValueError(f"cycle and identity must be >= 0, got {self.cycle}, {self.identity}")
        if self.gan_mode not in GAN_MODES:
            raise ValueError(f"gan_mode must be one of {GAN_MODES}, got {self.gan_mode!r}")


def cyclegan_generator_losses(
    g_ab: nn.Module,
    g_ba: nn.Module,
    d_a: nn.Module,
    d_b: nn.Module,
    x_a: Tensor,
    x_b: Tensor,
    weights: CycleGANLossWeights | None = None,
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """The loss minimised by both generators on one batch::

        loss = adv(D_b(G_ab(x_a)), real) + adv(D_a(G_ba(x_b)), real)
             + cycle * (|G_ba(G_ab(x_a)) - x_a| + |G_ab(G_ba(x_b)) - x_b|)
             + cycle * identity * (|G_ba(x_a) - x_a| + |G_ab(x_b) - x_b|)

    (L1 terms are means over voxels.) The discriminators' weights are frozen during the call.

    Args:
        g_ab: generator a -> b (the reference's G_A).
        g_ba: generator b -> a (G_B).
        d_a: discriminator of domain a (the reference's D_B, judges G_ba's output).
        d_b: discriminator of domain b (D_A, judges G_ab's output).
        x_a: (B, C_a, H, W[, D]) images of domain a.
        x_b: (B', C_b, H, W[, D]) images of domain b.
        weights: :class:`CycleGANLossWeights`.

    Returns:
        ``(losses, images)``: ``losses["loss"]`` the weighted total (with its graph) and
        the detached unweighted terms ``gan_ab``, ``gan_ba``, ``cycle_a``, ``cycle_b``,
        ``idt_a``, ``idt_b`` (the last two only with identity > 0); ``images`` the
        detached ``fake_a`` = G_ba(x_b) and ``fake_b`` = G_ab(x_a), for the image pools.
    """
    w = weights or CycleGANLossWeights()
    if w.identity > 0 and x_a.shape[1] != x_b.shape[1]:
        raise ValueError(
            f"the identity loss needs domains with equal channels, got {x_a.shape[1]} and "
            f"{x_b.shape[1]}; set identity=0"
        )
    fake_b, fake_a = g_ab(x_a), g_ba(x_b)
    rec_a, rec_b = g_ba(fake_b), g_ab(fake_a)
    with frozen(d_a, d_b):
        gan_ab = multiscale_adversarial_loss(d_b(fake_b), True, mode=w.gan_mode)
        gan_ba = multiscale_adversarial_loss(d_a(fake_a), True, mode=w.gan_mode)
    terms = {"gan_ab": gan_ab, "gan_ba": gan_ba,
             "cycle_a": l1_loss(rec_a, x_a), "cycle_b": l1_loss(rec_b, x_b)}  # fmt: skip
    total = gan_ab + gan_ba + w.cycle * (terms["cycle_a"] + terms["cycle_b"])
    if w.identity > 0:
        terms["idt_a"] = l1_loss(g_ba(x_a), x_a)
        terms["idt_b"] = l1_loss(g_ab(x_b), x_b)
        total = total + w.cycle * w.identity * (terms["idt_a"] + terms["idt_b"])
    losses = {"loss": total, **{k: v.detach() for k, v in terms.items()}}
    return losses, {"fake_a": fake_a.detach(), "fake_b": fake_b.detach()}


def cyclegan_discriminator_losses(
    d_a: nn.Module,
    d_b: nn.Module,
    x_a: Tensor,
    x_b: Tensor,
    fake_a: Tensor,
    fake_b: Tensor,
    weights: CycleGANLossWeights | None = None,
) -> dict[str, Tensor]:
    """The loss minimised by both discriminators:
    ``0.5 * (adv(D_a(x_a), real) + adv(D_a(fake_a), fake)) + 0.5 * (same for b)``.

    The halving slows D relative to G, as in the reference.

    Args:
        d_a, d_b: discriminators of domains a and b.
        x_a, x_b: real images of each domain.
        fake_a: generated domain-a images (G_ba(x_b), usually through an ImagePool); detached here.
        fake_b: generated domain-b images (G_ab(x_a)).
        weights: :class:`CycleGANLossWeights` (``gan_mode`` is used).

    Returns:
        ``loss`` (with its graph) and the detached terms ``d_a_real``, ``d_a_fake``,
        ``d_b_real``, ``d_b_fake``.
    """
    w = weights or CycleGANLossWeights()
    terms = {
        "d_a_real": multiscale_adversarial_loss(d_a(x_a), True, mode=w.gan_mode),
        "d_a_fake": multiscale_adversarial_loss(d_a(fake_a.detach()), False, mode=w.gan_mode),
        "d_b_real": multiscale_adversarial_loss(d_b(x_b), True, mode=w.gan_mode),
        "d_b_fake": multiscale_adversarial_loss(d_b(fake_b.detach()), False, mode=w.gan_mode),
    }
    total = 0.5 * (terms["d_a_real"] + terms["d_a_fake"]) + 0.5 * (terms["d_b_real"] + terms["d_b_fake"])
    return {"loss": total, **{k: v.detach() for k, v in terms.items()}}
