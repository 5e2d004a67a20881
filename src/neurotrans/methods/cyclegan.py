"""CycleGAN: two generators and two PatchGANs with cycle and identity losses (unpaired).

The comparison of the UNIT papers. Domain A is the run's input modality, domain B its
target; ``predict`` translates A -> B, ``predict_reverse`` B -> A.

References: Zhu et al. 2017 (CycleGAN) and its reference code; Welander et al. 2018
(CycleGAN vs UNIT for T1 <-> T2); papers/004.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from neurotrans.losses.cyclegan import (
    CycleGANLossWeights,
    cyclegan_discriminator_losses,
    cyclegan_generator_losses,
)
from neurotrans.losses.image_pool import ImagePool
from neurotrans.methods.base import Batch, Method, MethodConfig, ModelIO, OptimGroup, build_net
from neurotrans.methods.unit import (
    BOUNDED_ACTIVATIONS,
    IntensityMap,
    _check_range,
    check_unpaired_data,
    domains,
)


class PooledFakes(nn.Module):
    """An :class:`~neurotrans.losses.image_pool.ImagePool` whose content is part of ``state_dict``.

    The stored images are the module's extra state and its generator's state a buffer, so
    a checkpoint holds the pool and a resumed run draws exactly what an uninterrupted one
    would have drawn.

    Args:
        size: capacity (50 in CycleGAN; 0 passes fakes through).
        seed: seed of the pool's draws.
    """

    def __init__(self, size: int = 50, *, seed: int = 0) -> None:
        super().__init__()
        self.pool = ImagePool(size, seed=seed)
        self.register_buffer("rng_state", self.pool.generator.get_state())

    def query(self, images: Tensor) -> Tensor:
        """Fakes for the discriminator (see :meth:`ImagePool.query`), shaped like ``images``."""
        out = self.pool.query(images)
        self.rng_state.copy_(self.pool.generator.get_state())
        return out

    def get_extra_state(self) -> Tensor:
        return torch.cat(self.pool.images) if self.pool.images else torch.zeros(0)

    def set_extra_state(self, state: Tensor) -> None:
        # buffers are loaded before the extra state, so rng_state is the saved one here
        self.pool.images = [image.clone() for image in state.split(1)] if state.numel() else []
        self.pool.generator.set_state(self.rng_state.cpu())


@dataclass(frozen=True)
class CycleGANConfig(MethodConfig):
    """``model`` section of ``method: cyclegan`` (defaults: the reference code's).

    Args:
        generator_args: keyword arguments of both ``resnet_generator`` s (``base`` 64,
            ``n_blocks`` 9, ``norm`` instance, ``final_activation`` tanh...).
        discriminator_args: keyword arguments of both ``patchgan`` s (``base`` 64,
            ``n_layers`` 3; ``norm`` instance unless given, the reference's).
        lambda_cycle: weight of both cycle terms (10).
        identity: identity weight as a fraction of ``lambda_cycle`` (0.5).
        gan_mode: ``lsgan`` (the reference) or ``bce``.
        pool_size: fakes kept for the discriminators (50; 0 = none).
        data_range: normalised intensities mapped onto the networks' [-1, 1] ((0, 1) for
            min-max scaled images); ``null`` feeds them unchanged.
    """

    method: ClassVar[str] = "cyclegan"
    generator_args: dict[str, Any] = field(default_factory=dict)
    discriminator_args: dict[str, Any] = field(default_factory=dict)
    lambda_cycle: float = 10.0
    identity: float = 0.5
    gan_mode: str = "lsgan"
    pool_size: int = 50
    data_range: tuple[float, float] | None = (0.0, 1.0)

    def __post_init__(self) -> None:
        self.loss_weights()
        if self.pool_size < 0:
            raise ValueError(f"model.pool_size must be >= 0, got {self.pool_size}")
        _check_range(self.data_range, "model.data_range")

    def loss_weights(self) -> CycleGANLossWeights:
        """The :class:`CycleGANLossWeights` this config describes."""
        return CycleGANLossWeights(cycle=self.lambda_cycle, identity=self.identity, gan_mode=self.gan_mode)

    def check_data(self, data: Any) -> None:
        bounded = str(self.generator_args.get("final_activation", "tanh")) in BOUNDED_ACTIVATIONS
        check_unpaired_data(data, method="cyclegan", bounded=bounded and self.data_range is not None)
        if self.pool_size and data.plane == "all":
            raise ValueError("cyclegan's image pool mixes batches, whose slices differ in size between planes: "
                             "train on one data.plane or set model.pool_size=0")


class CycleGAN(Method):
    """Generators G_ab, G_ba and discriminators D_a, D_b, stepped G then D on each batch.

    The G step's translations (detached) are cached for the D step of the same batch and
    pass through each domain's image pool, as in the reference implementation.

    Args:
        g_ab: generator A -> B.
        g_ba: generator B -> A.
        d_a: discriminator of domain A (judges G_ba's output).
        d_b: discriminator of domain B (judges G_ab's output).
        weights: cycle and identity weights, GAN mode.
        pool_size: capacity of each image pool.
        seed: seed of the pools' draws.
        data_range: normalised intensities mapped onto [-1, 1] for the networks (``None``: as is).
    """

    Config = CycleGANConfig
    summary: ClassVar[str] = "two ResNet generators + PatchGANs, cycle + identity losses (CycleGAN; papers/004)"

    def __init__(self, g_ab: nn.Module, g_ba: nn.Module, d_a: nn.Module, d_b: nn.Module, *,
                 weights: CycleGANLossWeights | None = None, pool_size: int = 50, seed: int = 0,
                 data_range: tuple[float, float] | None = (0.0, 1.0)) -> None:
        super().__init__({"g_ab": g_ab, "g_ba": g_ba, "d_a": d_a, "d_b": d_b})
        self.weights = weights or CycleGANLossWeights()
        self.intensity = IntensityMap(data_range)
        self.pools = nn.ModuleDict({"a": PooledFakes(pool_size, seed=seed), "b": PooledFakes(pool_size, seed=seed + 1)})
        self._cache: tuple[int, Tensor, Tensor] | None = None

    @classmethod
    def from_config(cls, config: CycleGANConfig, io: ModelIO) -> CycleGAN:
        if config.identity > 0 and io.in_channels != 1:
            raise ValueError(f"model.identity needs domains with equal channels; the input has {io.in_channels}, "
                             "the target 1: set model.identity=0")
        dims = io.spatial_dims

        def generator(c_in: int, c_out: int) -> nn.Module:
            return build_net("resnet_generator", config.generator_args, where="model.generator_args",
                             spatial_dims=dims, in_channels=c_in, out_channels=c_out)

        def discriminator(c_in: int) -> nn.Module:
            from neurotrans.methods.supervised import initialise

            d_args = {"norm": "instance", **config.discriminator_args}
            net = build_net("patchgan", d_args, where="model.discriminator_args", spatial_dims=dims, in_channels=c_in)
            return initialise(net, "normal")  # N(0, 0.02), the reference's init_type

        return cls(generator(io.in_channels, 1), generator(1, io.in_channels), discriminator(io.in_channels),
                   discriminator(1), weights=config.loss_weights(), pool_size=config.pool_size,
                   data_range=config.data_range)

    def optimiser_groups(self) -> dict[str, OptimGroup]:
        return {"G": OptimGroup(("g_ab", "g_ba")), "D": OptimGroup(("d_a", "d_b"))}

    def schedule(self, step: int = 0) -> list[str]:
        return ["G", "D"]

    def training_step(self, batch: Batch, group: str) -> dict[str, Tensor]:
        x_a, x_b = (self.intensity.to_net(x) for x in domains(batch))
        n = self.networks
        key = id(domains(batch)[0])
        if group == "G":
            losses, images = cyclegan_generator_losses(n["g_ab"], n["g_ba"], n["d_a"], n["d_b"], x_a, x_b,
                                                       self.weights)
            self._cache = (key, images["fake_a"], images["fake_b"])
            return losses
        if group == "D":
            if self._cache is not None and self._cache[0] == key:
                _, fake_a, fake_b = self._cache
            else:  # a D step without the G step before it (e.g. a test): translate here
                with torch.no_grad():
                    fake_a, fake_b = n["g_ba"](x_b), n["g_ab"](x_a)
            self._cache = None
            return cyclegan_discriminator_losses(n["d_a"], n["d_b"], x_a, x_b, self.pools["a"].query(fake_a),
                                                 self.pools["b"].query(fake_b), self.weights)
        raise ValueError(f"cyclegan has groups G and D, not {group!r}")

    def predict(self, x: Tensor, covariates: Tensor | None = None) -> Tensor:
        """Translate domain A (the input modality) -> B: (B, C_a, H, W) -> (B, 1, H, W)."""
        return self.intensity.from_net(self.networks["g_ab"](self.intensity.to_net(x)))

    def predict_reverse(self, x: Tensor, covariates: Tensor | None = None) -> Tensor:
        """Translate domain B (the target modality) -> A: (B, 1, H, W) -> (B, C_a, H, W)."""
        return self.intensity.from_net(self.networks["g_ba"](self.intensity.to_net(x)))
