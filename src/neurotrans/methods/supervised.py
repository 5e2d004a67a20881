"""Supervised regression: one network, a reconstruction loss (L1, L2 or Charbonnier).

References: Ronneberger et al., U-Net (MICCAI 2015); the T1-MRI -> FDG-PET U-Net of
"Demystifying T1-MRI to FDG-PET translation" (L1, AdamW).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from neurotrans.methods.base import Batch, Method, OptimGroup
from neurotrans.methods.losses import reconstruction_loss


class SupervisedMethod(Method):
    """Regress the target from the inputs with ``loss(net(x), y)``.

    Args:
        net: translator, (B, C, H, W[, D]) -> (B, 1, H, W[, D]).
        loss: ``l1``, ``mse`` or ``charbonnier``.
    """

    def __init__(self, net: nn.Module, loss: str = "l1") -> None:
        super().__init__({"net": net})
        self.loss_name = loss
        self.loss_fn: Callable[[Tensor, Tensor], Tensor] = reconstruction_loss(loss)

    def optimiser_groups(self) -> dict[str, OptimGroup]:
        return {"main": OptimGroup(("net",))}

    def training_step(self, batch: Batch, group: str) -> dict[str, Tensor]:
        pred = self.networks["net"](batch["input"])
        loss = self.loss_fn(pred, batch["target"])
        return {"loss": loss, self.loss_name: loss.detach()}

    def predict(self, x: Tensor) -> Tensor:
        return self.networks["net"](x)
