"""Glow building blocks, 2D and 3D: squeeze, actnorm, invertible 1x1 conv, affine coupling.

Every layer maps ``x -> (y, logdet)`` with ``logdet`` (B,) = log|det dy/dx| per sample and
has an exact ``inverse``; they are the steps of the DUAL-GLOW flows (a later issue builds the
multi-scale flows and relation networks on them).

References: Kingma & Dhariwal 2018 (Glow); Dinh et al. 2017 (Real NVP, affine coupling,
squeeze); Sun et al. 2019 (DUAL-GLOW, eq. 13-15).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as nnf
from torch import nn

from neurotrans.networks.layers import factories as F
from neurotrans.networks.layers.sync_norm import global_mean_std

# "additive": scale 1 (NICE; Glow's additive coupling, Kingma & Dhariwal 2018 Sec. 3.3): no
# division on the way back, so decoding a latent that lies off the data (a prior mean) stays bounded
COUPLING_SCALES = ("sigmoid", "exp", "additive")


def squeeze(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Space-to-channel: (B, C, H, W[, D]) -> (B, C * f**n, H/f, W/f[, D/f]), invertible."""
    b, c, *sizes = x.shape
    if any(s % factor for s in sizes):
        raise ValueError(f"squeeze needs spatial sizes divisible by {factor}, got {tuple(sizes)}")
    n = len(sizes)
    shape = [b, c]
    for s in sizes:
        shape += [s // factor, factor]
    x = x.reshape(shape)
    # (B, C, s1, f, s2, f, ...) -> (B, C, f, f, ..., s1, s2, ...)
    perm = [0, 1, *[3 + 2 * i for i in range(n)], *[2 + 2 * i for i in range(n)]]
    return x.permute(perm).reshape(b, c * factor**n, *[s // factor for s in sizes])


def unsqueeze(x: torch.Tensor, factor: int = 2, spatial_dims: int | None = None) -> torch.Tensor:
    """Inverse of :func:`squeeze`."""
    b, c, *sizes = x.shape
    n = len(sizes) if spatial_dims is None else spatial_dims
    if c % factor**n:
        raise ValueError(f"unsqueeze needs channels divisible by {factor}**{n}, got {c}")
    x = x.reshape(b, c // factor**n, *[factor] * n, *sizes)
    perm = [0, 1]
    for i in range(n):
        perm += [2 + n + i, 2 + i]
    return x.permute(perm).reshape(b, c // factor**n, *[s * factor for s in sizes])


class ActNorm(nn.Module):
    """Per-channel affine ``y = (x + bias) * exp(logs)``, initialised from the first batch.

    The first training forward sets bias/logs so that the output has zero mean and unit
    variance per channel (data-dependent init, Glow); under data-parallel training the
    statistics are those of the whole batch across processes.

    Shapes: (B, C, H, W[, D]) -> (B, C, H, W[, D]); logdet = H W [D] * sum(logs).

    References: Kingma & Dhariwal 2018 (Glow).
    """

    def __init__(self, spatial_dims: int, channels: int) -> None:
        super().__init__()
        F.check_spatial_dims(spatial_dims)
        F.check_positive(channels, "channels")
        shape = (1, channels, *[1] * spatial_dims)
        self.bias = nn.Parameter(torch.zeros(shape))
        self.logs = nn.Parameter(torch.zeros(shape))
        self.register_buffer("initialized", torch.tensor(False))
        # the buffer mirrored on the host: reading a CUDA buffer in every forward would stop the
        # CPU until the GPU catches up, once per actnorm per step
        self._known_initialized = False

    @property
    def is_initialized(self) -> bool:
        """Whether the data-dependent initialisation has run (reads the buffer once per load)."""
        if not self._known_initialized:
            self._known_initialized = bool(self.initialized)
        return self._known_initialized

    def _load_from_state_dict(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super()._load_from_state_dict(*args, **kwargs)
        self._known_initialized = False  # the loaded buffer decides again

    @torch.no_grad()
    def _init(self, x: torch.Tensor) -> None:
        # data-parallel: the statistics of the whole batch, so every process starts alike
        mean, std = global_mean_std(x, [0, *range(2, x.dim())])
        self.bias.copy_(-mean)
        self.logs.copy_(-torch.log(std + 1e-6))
        self.initialized.fill_(True)
        self._known_initialized = True

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training and not self.is_initialized:
            self._init(x)
        n_pos = math.prod(x.shape[2:])
        logdet = (n_pos * self.logs.sum()).expand(x.shape[0])
        return (x + self.bias) * torch.exp(self.logs), logdet

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y * torch.exp(-self.logs) - self.bias


class InvertibleConv(nn.Module):
    """Invertible 1x1(x1) convolution with an LU-decomposed weight (Glow).

    W = P L (U + diag(sign * exp(logs))), initialised from a random rotation; the log-det
    is H W [D] * sum(logs), no matrix determinant needed.

    Shapes: (B, C, H, W[, D]) -> (B, C, H, W[, D]).

    References: Kingma & Dhariwal 2018 (Glow, Sec. 3.2).
    """

    def __init__(self, spatial_dims: int, channels: int) -> None:
        super().__init__()
        F.check_spatial_dims(spatial_dims)
        F.check_positive(channels, "channels")
        self.spatial_dims = spatial_dims
        q, _ = torch.linalg.qr(torch.randn(channels, channels))
        p, lower, upper = torch.linalg.lu(q)
        diag = torch.diagonal(upper)
        self.register_buffer("perm", p)
        self.register_buffer("sign", torch.sign(diag))
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1))
        self.register_buffer("eye", torch.eye(channels))
        self.lower = nn.Parameter(lower)
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.logs = nn.Parameter(torch.log(diag.abs()))

    def weight(self) -> torch.Tensor:
        lower = self.lower * self.lower_mask + self.eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign * torch.exp(self.logs))
        return self.perm @ lower @ upper

    def _mix(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return torch.einsum("oc,bc...->bo...", w, x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logdet = (math.prod(x.shape[2:]) * self.logs.sum()).expand(x.shape[0])
        return self._mix(x, self.weight()), logdet

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return self._mix(y, torch.linalg.inv(self.weight()))


class AffineCoupling(nn.Module):
    """Affine coupling: the second channel half is scaled and shifted by a net of the first.

    y_a = x_a; y_b = x_b * scale(x_a) + t(x_a) (DUAL-GLOW eq. 13 with ``scale="exp"``:
    exp(s); Glow's code uses ``sigmoid(s + 2)``, bounded and more stable, the default;
    ``"additive"`` fixes the scale at 1, Glow's additive coupling: log|det| 0, and the inverse
    x_b = y_b - t(y_a) never divides, so it stays stable on latents away from the data).
    s and t come from three convolutions (3, 1, 3 kernels; the last zero-initialised so the
    layer starts as the identity). ``cond_channels`` > 0 adds a conditioning tensor to the
    net's input (conditional flows).

    Args:
        spatial_dims: 1, 2 or 3.
        channels: C (>= 2).
        hidden: width of the s/t network.
        cond_channels: channels of the optional conditioning input.
        scale: ``"sigmoid"``, ``"exp"`` or ``"additive"``.

    Shapes: (B, C, H, W[, D]) [+ cond (B, C_c, H, W[, D])] -> (B, C, H, W[, D]).

    References: Dinh et al. 2017 (Real NVP); Kingma & Dhariwal 2018; Sun et al. 2019 (eq. 13-15).
    """

    def __init__(
        self, spatial_dims: int, channels: int, *, hidden: int = 64, cond_channels: int = 0,
        scale: str = "sigmoid",
    ) -> None:  # fmt: skip
        super().__init__()
        F.check_spatial_dims(spatial_dims)
        if channels < 2:
            raise ValueError(f"AffineCoupling needs at least 2 channels, got {channels}")
        F.check_positive(hidden, "hidden")
        if cond_channels < 0:
            raise ValueError(f"cond_channels must be >= 0, got {cond_channels}")
        F.check_choice(scale, COUPLING_SCALES, "scale")
        self.n_a = channels // 2
        self.cond_channels = cond_channels
        self.scale = scale
        n_b = channels - self.n_a
        last = F.conv(spatial_dims, hidden, (1 if scale == "additive" else 2) * n_b, kernel_size=3)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(
            F.conv(spatial_dims, self.n_a + cond_channels, hidden, kernel_size=3), nn.ReLU(),
            F.conv(spatial_dims, hidden, hidden, kernel_size=1), nn.ReLU(), last,
        )  # fmt: skip

    def _scale_shift(
        self, xa: torch.Tensor, cond: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if (cond is None) != (self.cond_channels == 0):
            raise ValueError(
                f"AffineCoupling built with cond_channels={self.cond_channels}: pass cond accordingly"
            )
        h = self.net(xa if cond is None else torch.cat([xa, cond], dim=1))
        if self.scale == "additive":
            return torch.zeros_like(h), h
        s, t = h[:, 0::2], h[:, 1::2]
        log_scale = nnf.logsigmoid(s + 2.0) if self.scale == "sigmoid" else s
        return log_scale, t

    def forward(
        self, x: torch.Tensor, cond: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        xa, xb = x[:, : self.n_a], x[:, self.n_a :]
        log_scale, t = self._scale_shift(xa, cond)
        yb = xb * torch.exp(log_scale) + t
        return torch.cat([xa, yb], dim=1), log_scale.flatten(1).sum(1)

    def inverse(self, y: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        ya, yb = y[:, : self.n_a], y[:, self.n_a :]
        log_scale, t = self._scale_shift(ya, cond)
        return torch.cat([ya, (yb - t) * torch.exp(-log_scale)], dim=1)


class FlowStep(nn.Module):
    """One Glow step: ActNorm -> invertible 1x1 conv -> affine coupling.

    Shapes: (B, C, H, W[, D]) -> (B, C, H, W[, D]), logdet (B,).

    References: Kingma & Dhariwal 2018 (Glow, Fig. 2a).
    """

    def __init__(
        self, spatial_dims: int, channels: int, *, hidden: int = 64, cond_channels: int = 0,
        scale: str = "sigmoid",
    ) -> None:  # fmt: skip
        super().__init__()
        self.actnorm = ActNorm(spatial_dims, channels)
        self.invconv = InvertibleConv(spatial_dims, channels)
        self.coupling = AffineCoupling(spatial_dims, channels, hidden=hidden, cond_channels=cond_channels,
                                       scale=scale)  # fmt: skip

    def forward(
        self, x: torch.Tensor, cond: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x, ld1 = self.actnorm(x)
        x, ld2 = self.invconv(x)
        x, ld3 = self.coupling(x, cond)
        return x, ld1 + ld2 + ld3

    def inverse(self, y: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return self.actnorm.inverse(self.invconv.inverse(self.coupling.inverse(y, cond)))
