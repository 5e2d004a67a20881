"""UNIT: unpaired translation through a shared latent space, with the report's variants.

Two VAE encoders and two generators tied by shared residual blocks, one multi-scale
discriminator per domain; GAN (lambda 10), KL (0.1), reconstruction (100), cycle KL (0.1)
and cycle reconstruction (100) terms. The T1 <-> T2 report's switches combine freely as
config fields: ``attention`` (self-attention, gamma from 0, in the encoders and/or the
generators), ``spectral_norm`` (on E, G and D) and ``charbonnier`` (rho(x) = sqrt(x^2 + eps^2)
instead of L1 for both reconstructions).

Domain A is the run's input modality (``data.inputs``), domain B its target; trained on
unpaired batches (``data.pairing: unpaired``: ``a`` and ``b`` from disjoint subjects) or
on paired ones used as two unpaired domains. ``predict`` translates A -> B,
``predict_reverse`` B -> A.

References: Liu, Breuel & Kautz 2017 (UNIT); Welander et al. 2018 and its GAN-MRI code
(settings for T1 <-> T2); Maheshwari & Pant, GAN based translation between medical image
modalities (papers/004: self-attention, spectral norm, Charbonnier).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import Tensor, nn

from neurotrans.losses.unit import UNITLossWeights, unit_discriminator_losses, unit_generator_losses
from neurotrans.methods.base import Batch, Method, MethodConfig, ModelIO, OptimGroup, build_net

UNIT_SWITCHES = ("attention", "spectral_norm")  # config fields, never generator_args
BOUNDED_ACTIVATIONS = ("tanh", "sigmoid")
BOUNDED_NORMALISATIONS = ("minmax",)


def check_unpaired_data(data: Any, *, method: str, bounded: bool) -> None:
    """Data settings a two-domain translator cannot train on (``ValueError``).

    Args:
        data: the run's ``DataConfig``.
        method: the method's name, for the messages.
        bounded: the networks end in tanh/sigmoid, so every image must be min-max scaled.
    """
    images = [c for c in data.inputs if c != "coords"]
    if len(images) != len(data.inputs) or len(images) != 1:
        raise ValueError(f"{method} translates one image modality into another: give one data.inputs column "
                         f"(got {list(data.inputs)})")
    if data.pairing == "unpaired" and data.context:
        raise ValueError(f"{method} on unpaired slices needs data.context=0 (both domains are single slices)")
    if bounded:
        from neurotrans.data.normalize import default_normalisation

        for column in (*images, data.target):
            spec = str(data.normalisation.get(column, default_normalisation(column)))
            if spec.partition(":")[0] not in BOUNDED_NORMALISATIONS:
                raise ValueError(f"{method} ends in a bounded activation but data.normalisation.{column} is "
                                 f"{spec!r}: use minmax (images in [0, 1]) or set model.final_activation=none")


class IntensityMap:
    """The linear map of normalised intensities onto the networks' range, and back.

    A ``data_range`` (lo, hi) is mapped onto [-1, 1] (tanh's range, as the reference
    implementations scale 8-bit images); ``None`` keeps intensities as they are.
    """

    def __init__(self, data_range: tuple[float, float] | None) -> None:
        if data_range is not None and not data_range[1] > data_range[0]:
            raise ValueError(f"data_range must be (lo, hi) with hi > lo, got {data_range}")
        self.data_range = data_range

    def to_net(self, x: Tensor) -> Tensor:
        if self.data_range is None:
            return x
        lo, hi = self.data_range
        return (x - lo) * (2.0 / (hi - lo)) - 1.0

    def from_net(self, y: Tensor) -> Tensor:
        if self.data_range is None:
            return y
        lo, hi = self.data_range
        return (y + 1.0) * (0.5 * (hi - lo)) + lo


def domains(batch: Batch) -> tuple[Tensor, Tensor]:
    """``(x_a, x_b)`` of an unpaired batch (``a``, ``b``) or of a paired one (``input``, ``target``)."""
    if "a" in batch:
        return batch["a"], batch["b"]
    return batch["input"], batch["target"]


def _check_range(data_range: tuple[float, float] | None, where: str) -> None:
    if data_range is not None and (len(data_range) != 2 or not data_range[1] > data_range[0]):
        raise ValueError(f"{where} must be [lo, hi] with hi > lo (or null), got {list(data_range)}")


@dataclass(frozen=True)
class UNITConfig(MethodConfig):
    """``model`` section of ``method: unit`` (defaults: the report's / GAN-MRI's).

    Args:
        generator_args: keyword arguments of the ``unit`` network besides dims, channels and
            the switches (``base`` 64, ``n_down`` 2, ``n_res_encoder`` 3, ``n_res_generator`` 3,
            ``n_shared`` 1, ``norm`` batch, ``dropout`` 0.5, ``noise_std`` 1, ``final_activation``
            tanh, ``attention_pool`` 1).
        discriminator_args: keyword arguments of the ``multiscale_discriminator`` (``base`` 64,
            ``n_layers`` 4, ``n_scales`` 3).
        attention: self-attention in the ``encoder``, the ``generator``, ``both`` or ``none``.
        spectral_norm: spectral normalisation of every convolution of E, G and D.
        charbonnier: Charbonnier instead of L1 for the reconstruction and cycle terms.
        charbonnier_eps: its eps, in the networks' [-1, 1] units.
        lambda_gan, lambda_kl, lambda_rec, lambda_kl_cycle, lambda_cycle: the loss weights
            lambda_0..lambda_4 (10, 0.1, 100, 0.1, 100).
        gan_mode: ``bce`` (the report) or ``lsgan``.
        data_range: normalised intensities mapped onto the networks' [-1, 1] ((0, 1) for
            min-max scaled images); ``null`` feeds them unchanged (with
            ``final_activation: none``).
    """

    method: ClassVar[str] = "unit"
    generator_args: dict[str, Any] = field(default_factory=dict)
    discriminator_args: dict[str, Any] = field(default_factory=dict)
    attention: str = "none"
    spectral_norm: bool = False
    charbonnier: bool = False
    charbonnier_eps: float = 1e-3
    lambda_gan: float = 10.0
    lambda_kl: float = 0.1
    lambda_rec: float = 100.0
    lambda_kl_cycle: float = 0.1
    lambda_cycle: float = 100.0
    gan_mode: str = "bce"
    data_range: tuple[float, float] | None = (0.0, 1.0)

    def __post_init__(self) -> None:
        from neurotrans.networks.nets.unit import UNIT_ATTENTION

        clash = sorted(set(self.generator_args) & set(UNIT_SWITCHES))
        if clash:
            raise ValueError(f"model.generator_args sets {', '.join(clash)}: use model.{clash[0]} instead")
        if "spectral_norm" in self.discriminator_args:
            raise ValueError("model.discriminator_args sets spectral_norm: use model.spectral_norm instead")
        if self.attention not in UNIT_ATTENTION:
            raise ValueError(f"model.attention = {self.attention!r}; choose one of {', '.join(UNIT_ATTENTION)}")
        _check_range(self.data_range, "model.data_range")
        self.loss_weights()  # checks weights, eps and gan_mode

    @property
    def final_activation(self) -> str:
        return str(self.generator_args.get("final_activation", "tanh"))

    def loss_weights(self) -> UNITLossWeights:
        """The :class:`UNITLossWeights` this config describes."""
        return UNITLossWeights(gan=self.lambda_gan, kl=self.lambda_kl, rec=self.lambda_rec,
                               kl_cycle=self.lambda_kl_cycle, cycle=self.lambda_cycle,
                               pixel="charbonnier" if self.charbonnier else "l1",
                               charbonnier_eps=self.charbonnier_eps, gan_mode=self.gan_mode)

    def check_data(self, data: Any) -> None:
        check_unpaired_data(data, method="unit",
                            bounded=self.final_activation in BOUNDED_ACTIVATIONS and self.data_range is not None)


class UNITMethod(Method):
    """UNIT trained by alternating discriminator and encoder/generator steps.

    Groups: ``D`` = both discriminators, ``G`` = the UNIT module (encoders, generators and
    their shared blocks); each batch steps ``D`` then ``G`` (the GAN-MRI order). The D
    step translates the batch without a graph; the G step runs the full VAE-GAN forward.

    Args:
        unit: the :class:`~neurotrans.networks.nets.unit.UNIT` networks (domain a = input).
        d_a: discriminator of domain a (judges B -> A translations).
        d_b: discriminator of domain b (judges A -> B translations).
        weights: the loss weights and pixel loss.
        data_range: normalised intensities mapped onto [-1, 1] for the networks (``None``: as is).
    """

    Config = UNITConfig
    summary: ClassVar[str] = ("unpaired VAE-GAN with a shared latent space; attention / spectral norm / "
                              "Charbonnier switches (UNIT; papers/004)")

    def __init__(self, unit: nn.Module, d_a: nn.Module, d_b: nn.Module, *, weights: UNITLossWeights | None = None,
                 data_range: tuple[float, float] | None = (0.0, 1.0)) -> None:
        super().__init__({"unit": unit, "d_a": d_a, "d_b": d_b})
        self.weights = weights or UNITLossWeights()
        self.intensity = IntensityMap(data_range)

    @classmethod
    def from_config(cls, config: UNITConfig, io: ModelIO) -> UNITMethod:
        unit = build_net("unit", {**config.generator_args, "attention": config.attention,
                                  "spectral_norm": config.spectral_norm},
                         where="model.generator_args", spatial_dims=io.spatial_dims, in_channels=io.in_channels,
                         out_channels=1)
        d_args = {**config.discriminator_args, "spectral_norm": config.spectral_norm}
        d_a = build_net("multiscale_discriminator", d_args, where="model.discriminator_args",
                        spatial_dims=io.spatial_dims, in_channels=io.in_channels)
        d_b = build_net("multiscale_discriminator", d_args, where="model.discriminator_args",
                        spatial_dims=io.spatial_dims, in_channels=1)
        return cls(unit, d_a, d_b, weights=config.loss_weights(), data_range=config.data_range)

    def optimiser_groups(self) -> dict[str, OptimGroup]:
        return {"D": OptimGroup(("d_a", "d_b")), "G": OptimGroup(("unit",))}

    def schedule(self, step: int = 0) -> list[str]:
        return ["D", "G"]

    def training_step(self, batch: Batch, group: str) -> dict[str, Tensor]:
        x_a, x_b = (self.intensity.to_net(x) for x in domains(batch))
        n = self.networks
        if group == "D":
            return unit_discriminator_losses(n["unit"], n["d_a"], n["d_b"], x_a, x_b, self.weights)
        if group == "G":
            losses, _ = unit_generator_losses(n["unit"], n["d_a"], n["d_b"], x_a, x_b, self.weights)
            return losses
        raise ValueError(f"unit has groups D and G, not {group!r}")

    def predict(self, x: Tensor, covariates: Tensor | None = None) -> Tensor:
        """Translate domain A (the input modality) -> B: (B, C_a, H, W) -> (B, 1, H, W)."""
        return self.intensity.from_net(self.networks["unit"].translate(self.intensity.to_net(x), "a", "b"))

    def predict_reverse(self, x: Tensor, covariates: Tensor | None = None) -> Tensor:
        """Translate domain B (the target modality) -> A: (B, 1, H, W) -> (B, C_a, H, W)."""
        return self.intensity.from_net(self.networks["unit"].translate(self.intensity.to_net(x), "b", "a"))
