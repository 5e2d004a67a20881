"""Weight initialisation schemes applied to a whole network."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

INIT_SCHEMES = ("normal", "xavier", "kaiming")

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
          nn.ConvTranspose3d, nn.Linear)  # fmt: skip
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@torch.no_grad()
def init_weights(
    net: nn.Module,
    *,
    scheme: str = "normal",
    gain: float = 0.02,
    generator: torch.Generator | None = None,
) -> nn.Module:
    """Initialise conv/linear weights and batch-norm scales in place; returns ``net``.

    ``"normal"`` draws N(0, gain) weights and zero biases, batch-norm scales N(1, gain)
    (the pix2pix/DCGAN scheme); ``"xavier"`` and ``"kaiming"`` are the usual ones.

    Args:
        net: the network.
        scheme: ``"normal"``, ``"xavier"`` or ``"kaiming"``.
        gain: standard deviation (normal) or gain (xavier).
        generator: a seeded ``torch.Generator`` for reproducible weights.

    A spectrally normalised layer has its raw weight (``parametrizations.weight.original``)
    initialised: ``m.weight`` is then a computed tensor and writing to it would be lost.

    References: Isola et al. 2017 (pix2pix), ``init_weights`` of the reference code.
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"scheme must be one of {INIT_SCHEMES}, got {scheme!r}")
    for m in net.modules():
        if isinstance(m, _CONVS):
            w = (m.parametrizations.weight.original if parametrize.is_parametrized(m, "weight")
                 else m.weight)  # fmt: skip
            if scheme == "normal":
                w.normal_(0.0, gain, generator=generator)
            elif scheme == "xavier":
                nn.init.xavier_normal_(w, gain=gain, generator=generator)
            else:
                nn.init.kaiming_normal_(w, a=0.0, mode="fan_in", generator=generator)
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, _NORMS) and m.weight is not None:
            m.weight.normal_(1.0, gain, generator=generator)
            m.bias.zero_()
    return net


def apply_spectral_norm(net: nn.Module) -> nn.Module:
    """Wrap every conv/linear weight of ``net`` in spectral normalisation; returns ``net``.

    Layers already parametrised are left alone (calling it twice, or on a network holding
    a module shared with one already normalised, wraps each weight once). Transposed
    convolutions are normalised along their output-channel dim (1), torch's default.

    References: Miyato et al. 2018 (spectral normalisation); the UNIT T1<->T2 report.
    """
    for m in list(net.modules()):
        if isinstance(m, _CONVS) and not parametrize.is_parametrized(m, "weight"):
            nn.utils.parametrizations.spectral_norm(m)
    return net
