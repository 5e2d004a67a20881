"""Networks that read flow latents: the DUAL-GLOW relation net and the side-information head.

References: Sun et al. 2019 (DUAL-GLOW, eq. 6 and 17, Fig. 1); Ganin & Lempitsky 2015
(gradient reversal).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as nnf
from torch import nn

from neurotrans.losses.gradient_reversal import GradientReversal
from neurotrans.networks.layers import factories as F

SIDE_KINDS = ("continuous", "binary")


class LatentMean(nn.Module):
    """Running mean of one flow latent over the training batches: the cohort's typical latent.

    A buffer of the latent's shape (C, *S), set from the first training batch and then
    updated as an exponential moving average (weight ``max(1/n, momentum)`` of the n-th
    batch, so it starts as the plain average). DUAL-GLOW's relation nets add their output to
    it: they predict a subject's deviation from the cohort instead of the whole latent from 0.
    Under data-parallel training each update averages the batch of every process, so every
    process keeps the same buffer. Its shape is fixed by the first batch; a latent of another
    size is refused (the flows model whole volumes of one padded size).

    With ``features=F`` > 0 it also keeps the running moments of side information c (B, F)
    (E[c], E[c c^T], E[z c^T], the same weights) and gives the cohort's linear regression of
    the latent on c: ``at(c) = mean + Cov(z, c) (Cov(c, c) + eps I)^-1 (c - E[c])``, at every
    latent voxel (eps = 1e-3 of the mean variance: a ridge for the first few subjects, whose
    ages span little). A moment estimate, not a learned weight: on the 3 mm fdg cohort the
    learned offsets of age moved by about 0.005 in 400 steps of batch 1 (the subject-to-subject
    spread of the latent drowns the age gradient), so the age sweep stayed flat.

    Args:
        momentum: weight of a new batch once more than 1/momentum batches were seen.
        features: F, width of the side information regressed on (0: the mean only).

    Shapes: update(z[, side]) with z (B, C, *S), side (B, F); ``mean`` (C, *S);
    at(side) (B, C, *S) (or ``mean`` when features=0).
    """

    def __init__(self, momentum: float = 0.02, features: int = 0) -> None:
        super().__init__()
        if not (0.0 < momentum <= 1.0):
            raise ValueError(f"momentum must lie in (0, 1], got {momentum!r}")
        if isinstance(features, bool) or not isinstance(features, int) or features < 0:
            raise ValueError(f"features must be an int >= 0, got {features!r}")
        self.momentum = float(momentum)
        self.features = features
        self.register_buffer("mean", torch.zeros(0))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))
        if features:
            self.register_buffer("side_mean", torch.zeros(features))
            self.register_buffer("side_square", torch.zeros(features, features))
            self.register_buffer("cross", torch.zeros(0))  # E[c z] (F, C, *S)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        for name in ("mean", "cross") if self.features else ("mean",):  # their shape came with the data
            saved, own = state_dict.get(prefix + name), getattr(self, name)
            if saved is not None and saved.shape != own.shape:
                setattr(self, name, torch.zeros_like(saved, device=own.device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def ready(self) -> bool:
        return self.mean.numel() > 0

    def check(self, shape: Sequence[int]) -> None:
        """Refuse a latent of another shape than the training one (``shape`` = (B, C, *S))."""
        if self.ready and tuple(self.mean.shape) != tuple(shape[1:]):
            raise ValueError(f"this flow's cohort mean latent is {tuple(self.mean.shape)}, got a latent "
                             f"{tuple(shape[1:])}: give volumes of the padded size it was trained on")

    def _check_side(self, side: torch.Tensor | None, batch: int) -> None:
        if self.features and (side is None or tuple(side.shape) != (batch, self.features)):
            got = None if side is None else tuple(side.shape)
            raise ValueError(f"LatentMean(features={self.features}) needs side ({batch}, {self.features}), got {got}")

    @torch.no_grad()
    def update(self, z: torch.Tensor, side: torch.Tensor | None = None) -> None:
        """Fold the batch means of ``z`` (B, C, *S) (and of the side moments) into the running ones.

        ``side`` (B, F) is needed with features and ignored without them."""
        from neurotrans.networks.layers.sync_norm import global_mean

        self.check(z.shape)
        self._check_side(side, z.shape[0])
        flat, f = z.flatten(1), self.features
        parts = {"mean": (flat, z.shape[1:])}  # buffer name: (per-sample values, buffer shape)
        if f:
            c = side.to(flat.dtype)
            parts |= {"side_mean": (c, (f,)), "side_square": ((c[:, :, None] * c[:, None, :]).flatten(1), (f, f)),
                      "cross": ((c[:, :, None] * flat[:, None, :]).flatten(1), (f, *z.shape[1:]))}
        # of every process's batch (one all-reduce), so every process keeps the same moments
        moments = global_mean(torch.cat([v for v, _ in parts.values()], 1), [0])[0]
        pieces = torch.split(moments, [v.shape[1] for v, _ in parts.values()])
        first, weight = not self.ready, max(1.0 / (int(self.count) + 1), self.momentum)
        for (name, (_, shape)), piece in zip(parts.items(), pieces, strict=True):
            if first:  # the first batch sets every moment (and the data-dependent shapes)
                setattr(self, name, piece.view(shape).clone())
            else:
                buffer = getattr(self, name)
                buffer.lerp_(piece.view(shape).to(buffer.dtype), weight)
        self.count += 1

    def slope(self) -> torch.Tensor:
        """(F, C, *S): the cohort regression's coefficients of the latent on each side feature."""
        if not self.features:
            raise ValueError("LatentMean(features=0) has no regression on side information")
        f = self.features
        cov_cc = self.side_square - torch.outer(self.side_mean, self.side_mean)
        cov_cz = (self.cross - self.side_mean.view(f, *[1] * self.mean.dim()) * self.mean).reshape(f, -1)
        ridge = 1e-3 * cov_cc.diagonal().mean().clamp_min(0) + 1e-12
        eye = torch.eye(f, dtype=cov_cc.dtype, device=cov_cc.device)
        return torch.linalg.solve(cov_cc + ridge * eye, cov_cz).view(f, *self.mean.shape)

    def at(self, side: torch.Tensor | None = None) -> torch.Tensor:
        """The cohort's latent for side information ``side`` (B, F); ``mean`` without features."""
        if not self.features:
            return self.mean
        self._check_side(side, side.shape[0] if side is not None else 0)
        shift = (side.to(self.mean.dtype) - self.side_mean).matmul(self.slope().flatten(1))
        return self.mean + shift.view(side.shape[0], *self.mean.shape)


class RelationNet(nn.Module):
    """Mean and log-scale of a diagonal Gaussian over one PET latent, from the MRI latent.

    p(z_pet | z_mri[, c]) = N(mu(z_mri, c), exp(log_scale(z_mri, c))^2) (DUAL-GLOW eq. 6/17).
    The conv net follows the authors' code: a 5x5x5 convolution, 3x3x3 convolutions,
    LeakyReLU(0.2), width 256, 4 layers; its last layer is zero-initialised, so the model
    starts from N(0, I) as Glow's priors do. Side information c (B, F) enters as a learned
    bias of the first hidden layer and, through a zero-initialised linear map, as offsets of
    mean and log-scale (the code's ``linear_zeros`` embedding). Without an MRI input
    (``cond_channels=0``) the Gaussian is a learned per-channel mean/log-scale plus the side
    offsets: the top PET prior of eq. 17.

    Args:
        spatial_dims: 1, 2 or 3.
        out_channels: C of the PET latent.
        cond_channels: C of the MRI latent (0: no MRI input).
        side_features: F, width of the side-information vector (0: none).
        hidden: width of the conv net.
        layers: convolutions in the net (>= 1).
        first_kernel: odd kernel size of the first convolution (5 in the authors' code).

    Shapes: cond (B, C_m, *S), side (B, F) -> mean, log_scale (B, C, *S).

    References: Sun et al. 2019 (DUAL-GLOW, eq. 6 and 17; code ``condFun``/``myMLP``).
    """

    def __init__(
        self, spatial_dims: int, out_channels: int, *, cond_channels: int = 0,
        side_features: int = 0, hidden: int = 256, layers: int = 4, first_kernel: int = 5,
    ) -> None:  # fmt: skip
        super().__init__()
        F.check_spatial_dims(spatial_dims)
        F.check_positive(out_channels, "out_channels")
        F.check_positive(hidden, "relation hidden")
        F.check_positive(layers, "relation layers")
        if cond_channels < 0 or side_features < 0:
            raise ValueError("cond_channels and side_features must be >= 0, got "
                             f"{cond_channels}, {side_features}")  # fmt: skip
        if first_kernel < 1 or first_kernel % 2 == 0:
            raise ValueError(f"first_kernel must be a positive odd int, got {first_kernel!r}")
        self.spatial_dims = spatial_dims
        self.out_channels = out_channels
        self.cond_channels = cond_channels
        self.side_features = side_features
        self.head: nn.Module | None = None
        self.body: nn.Sequential | None = None
        self.side_hidden: nn.Linear | None = None
        self.side_out: nn.Linear | None = None
        self.bias: nn.Parameter | None = None
        if cond_channels > 0:
            if layers == 1:
                last = F.conv(spatial_dims, cond_channels, 2 * out_channels,
                              kernel_size=first_kernel)  # fmt: skip
            else:
                self.head = F.conv(spatial_dims, cond_channels, hidden, kernel_size=first_kernel)
                body: list[nn.Module] = [F.activation("leakyrelu")]
                for _ in range(layers - 2):
                    body += [F.conv(spatial_dims, hidden, hidden), F.activation("leakyrelu")]
                last = F.conv(spatial_dims, hidden, 2 * out_channels)
                if side_features:
                    self.side_hidden = nn.Linear(side_features, hidden)
                self.body = nn.Sequential(*body)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
            self.last = last
        else:
            self.bias = nn.Parameter(torch.zeros(2 * out_channels))
        if side_features:
            self.side_out = nn.Linear(side_features, 2 * out_channels)
            nn.init.zeros_(self.side_out.weight)
            nn.init.zeros_(self.side_out.bias)

    def _broadcast(self, v: torch.Tensor) -> torch.Tensor:
        return v.reshape(*v.shape, *[1] * self.spatial_dims)

    def forward(
        self, shape: Sequence[int], cond: torch.Tensor | None = None,
        side: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """Mean and log-scale, each of ``shape`` = (B, C, *S) of the PET latent."""
        if (cond is None) != (self.cond_channels == 0):
            raise ValueError(f"RelationNet built with cond_channels={self.cond_channels}: "
                             "pass cond accordingly")  # fmt: skip
        if (side is None) != (self.side_features == 0):
            raise ValueError(f"RelationNet built with side_features={self.side_features}: "
                             "pass side accordingly")  # fmt: skip
        shape = tuple(shape)
        if cond is not None:
            if self.head is None:
                h = self.last(cond)
            else:
                h = self.head(cond)
                if self.side_hidden is not None:
                    h = h + self._broadcast(self.side_hidden(side))
                h = self.last(self.body(h))
        else:
            h = self._broadcast(self.bias.expand(shape[0], -1))
        if self.side_out is not None:
            h = h + self._broadcast(self.side_out(side))
        h = h.expand(shape[0], 2 * self.out_channels, *shape[2:])
        return h[:, : self.out_channels], h[:, self.out_channels :]


class SideHead(nn.Module):
    """Predicts side information (age, sex, diagnosis) from one flow latent.

    Two convolutions (the second with stride 2), LeakyReLU(0.2), global average pooling and a
    linear layer, so one head fits any level's size. With ``reverse_gradient`` a gradient
    reversal layer comes first: the head still learns to predict c while the flow under it is
    pushed to remove c from that latent (DUAL-GLOW's MRI levels 1..L-1). The authors' code
    uses a deeper stride-2 conv/avg-pool stack whose depth depends on the image size; ours
    is size-independent.

    Args:
        spatial_dims: 1, 2 or 3.
        in_channels: C of the latent.
        out_features: F, width of the side-information vector.
        hidden: conv width.
        reverse_gradient: put a gradient reversal layer in front.
        reversal_scale: lambda of the reversal (1 in the authors' code).

    Shapes: (B, C, *S) -> (B, F) (regression values or logits).

    References: Sun et al. 2019 (DUAL-GLOW, Sec. 3, "How to condition"); Ganin & Lempitsky 2015.
    """

    def __init__(
        self, spatial_dims: int, in_channels: int, out_features: int, *, hidden: int = 64,
        reverse_gradient: bool = False, reversal_scale: float = 1.0,
    ) -> None:  # fmt: skip
        super().__init__()
        F.check_spatial_dims(spatial_dims)
        F.check_positive(out_features, "out_features")
        F.check_positive(hidden, "side head hidden")
        self.reversal = GradientReversal(reversal_scale) if reverse_gradient else nn.Identity()
        pool = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}
        self.net = nn.Sequential(
            F.conv(spatial_dims, in_channels, hidden), F.activation("leakyrelu"),
            F.conv(spatial_dims, hidden, hidden, stride=2, padding=1), F.activation("leakyrelu"),
            pool[spatial_dims](1), nn.Flatten(), nn.Linear(hidden, out_features),
        )  # fmt: skip

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.reversal(z))


def side_loss(pred: torch.Tensor, target: torch.Tensor, kinds: Sequence[str]) -> torch.Tensor:
    """Mean over features of the per-feature losses of a side head.

    ``"continuous"`` features (age, standardised) use the L1 loss of the authors' code;
    ``"binary"`` ones (sex, AD vs CN; target 0 or 1) binary cross-entropy on logits.

    Args:
        pred: (B, F) head outputs.
        target: (B, F) side information.
        kinds: F entries of ``SIDE_KINDS``.

    Returns:
        Scalar loss.
    """
    if pred.shape != target.shape or pred.shape[1] != len(kinds):
        raise ValueError(f"side_loss: pred {tuple(pred.shape)}, target {tuple(target.shape)} and "
                         f"{len(kinds)} kinds disagree")  # fmt: skip
    losses = []
    for j, kind in enumerate(kinds):
        if kind == "continuous":
            losses.append((pred[:, j] - target[:, j]).abs().mean())
        else:
            losses.append(nnf.binary_cross_entropy_with_logits(pred[:, j], target[:, j]))
    return torch.stack(losses).mean()
