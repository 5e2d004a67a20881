"""Supervised regression: one network, a reconstruction loss (L1, L2, Charbonnier, WL1 or NWL1).

References: Ronneberger et al., U-Net (MICCAI 2015); the T1-MRI -> FDG-PET U-Net of
"Demystifying T1-MRI to FDG-PET translation" (papers/000: L1, AdamW); the 3D FCN of the MS
thesis (papers/003 ch. 2: MSE, SGD).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import Tensor, nn

from neurotrans.losses import build_loss
from neurotrans.methods.base import (
    Batch,
    Method,
    MethodConfig,
    ModelIO,
    build_net,
    check_network_name,
)
from neurotrans.methods.regions import REGION_LOSSES, Reconstruction, check_region_data

RECONSTRUCTION_LOSSES = ("l1", "mse", "charbonnier")


def check_reconstruction_loss(name: str, where: str, allowed: tuple[str, ...] = RECONSTRUCTION_LOSSES) -> None:
    """Refuse a reconstruction loss the methods do not offer."""
    if name not in allowed:
        raise ValueError(f"{where} = {name!r}; choose one of {', '.join(allowed)}")


def initialise(net: nn.Module, init: str | None) -> nn.Module:
    """Apply a named weight initialisation (``normal`` = N(0, 0.02), pix2pix) or keep PyTorch's."""
    if init is not None:
        from neurotrans.networks.layers.init import init_weights

        init_weights(net, scheme=init, gain=0.02)
    return net


@dataclass(frozen=True)
class SupervisedConfig(MethodConfig):
    """``model`` section of ``method: supervised``.

    Args:
        generator: key of ``neurotrans.networks.NETWORKS`` (the translator).
        generator_args: its keyword arguments besides dims and channels.
        loss: ``l1``, ``mse``, ``charbonnier``, or the MS thesis's lesion-weighted ``wl1`` /
            ``nwl1`` (the "3D U-Net+L1W" baseline; they need ``data.aux: [lesions, NAWM]``).
        init: ``None`` (PyTorch's default), ``normal`` (N(0, 0.02)), ``xavier`` or ``kaiming``.
    """

    method: ClassVar[str] = "supervised"
    generator: str = "unet"
    generator_args: dict[str, Any] = field(default_factory=dict)
    loss: str = "l1"
    init: str | None = None

    def __post_init__(self) -> None:
        check_network_name(self.generator, "model.generator")
        check_reconstruction_loss(self.loss, "model.loss", RECONSTRUCTION_LOSSES + REGION_LOSSES)
        if self.init not in (None, "normal", "xavier", "kaiming"):
            raise ValueError(f"model.init = {self.init!r}; choose normal, xavier, kaiming or null")

    def check_data(self, data: Any) -> None:
        check_region_data(self.loss, tuple(data.aux))


class SupervisedMethod(Method):
    """Regress the target from the inputs with ``loss(net(x), y)``.

    Args:
        net: translator, (B, C, H, W[, D]) -> (B, 1, H, W[, D]).
        loss: ``l1``, ``mse``, ``charbonnier``, ``wl1`` or ``nwl1``.
        aux: ``batch["aux"]`` channel names (``ModelIO.aux``), for ``wl1`` / ``nwl1``.
    """

    Config = SupervisedConfig
    summary: ClassVar[str] = "one network regressing the target with L1/L2/Charbonnier (U-Net, FCN; papers 000, 003)"

    def __init__(self, net: nn.Module, loss: str = "l1", aux: tuple[str, ...] = ()) -> None:
        super().__init__({"net": net})
        check_reconstruction_loss(loss, "loss", RECONSTRUCTION_LOSSES + REGION_LOSSES)
        self.loss_name = loss
        self.loss_fn = Reconstruction(loss, aux) if loss in REGION_LOSSES else build_loss(loss)

    @classmethod
    def from_config(cls, config: SupervisedConfig, io: ModelIO) -> SupervisedMethod:
        net = build_net(config.generator, config.generator_args, where="model.generator_args",
                        spatial_dims=io.spatial_dims, in_channels=io.in_channels, out_channels=1)
        return cls(initialise(net, config.init), loss=config.loss, aux=tuple(io.aux))

    def training_step(self, batch: Batch, group: str) -> dict[str, Tensor]:
        pred = self.networks["net"](batch["input"])
        loss = self.loss_fn(pred, batch if self.loss_name in REGION_LOSSES else batch["target"])
        return {"loss": loss, self.loss_name: loss.detach()}

    def predict(self, x: Tensor, covariates: Tensor | None = None) -> Tensor:
        return self.networks["net"](x)
