"""The 2-layer CNN of Li et al. (two 7x7x7 layers of 64 maps + a 1x1x1 output), trained with L1.

A thin supervised method: :class:`~neurotrans.methods.supervised.SupervisedMethod` with the
``cnn2layer`` network, so ``model.method: cnn2layer`` names the baseline the thesis compares
with in chapters 3-4 (L1 loss there) and its hyper-parameters are explicit keys.

References: Li et al. 2014, "Deep learning based imaging data completion for improved
brain disease diagnosis" (MICCAI); Wei 2020 PhD thesis ch. 3.3.2 (64 maps, 7x7x7, L1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from neurotrans.methods.base import MethodConfig, ModelIO, build_net
from neurotrans.methods.supervised import SupervisedMethod, check_reconstruction_loss, initialise


@dataclass(frozen=True)
class CNN2LayerConfig(MethodConfig):
    """``model`` section of ``method: cnn2layer``.

    Args:
        features: maps of each hidden layer (64 in the thesis; 10 in Li et al.).
        kernel_size: odd kernel of the two hidden layers (7).
        loss: ``l1`` (the thesis), ``mse`` or ``charbonnier``.
        init: weight initialisation (``None`` = PyTorch's).
    """

    method: ClassVar[str] = "cnn2layer"
    features: int = 64
    kernel_size: int = 7
    loss: str = "l1"
    init: str | None = None

    def __post_init__(self) -> None:
        if self.features < 1:
            raise ValueError(f"model.features must be >= 1, got {self.features}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"model.kernel_size must be a positive odd number, got {self.kernel_size}")
        check_reconstruction_loss(self.loss, "model.loss")
        if self.init not in (None, "normal", "xavier", "kaiming"):
            raise ValueError(f"model.init = {self.init!r}; choose normal, xavier, kaiming or null")


class CNN2LayerMethod(SupervisedMethod):
    """Supervised regression with the 2-layer CNN ("same" padding: whole volumes in, whole volumes out)."""

    Config = CNN2LayerConfig
    summary: ClassVar[str] = "2-layer CNN (two 7x7x7 layers of 64 maps), L1 (Li et al. 2014; papers 003 ch. 3)"

    @classmethod
    def from_config(cls, config: CNN2LayerConfig, io: ModelIO) -> CNN2LayerMethod:
        net = build_net("cnn2layer", {"features": config.features, "kernel_size": config.kernel_size},
                        where="model", spatial_dims=io.spatial_dims, in_channels=io.in_channels, out_channels=1)
        return cls(initialise(net, config.init), loss=config.loss)
