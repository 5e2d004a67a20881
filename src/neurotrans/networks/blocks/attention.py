"""Self-attention over voxels (SAGAN) and the thesis's flexible variant with pooling."""

from __future__ import annotations

import torch
import torch.nn.functional as nnf
from torch import nn

from neurotrans.networks.checks import check_input
from neurotrans.networks.layers import factories as F


class SelfAttention(nn.Module):
    """Flexible self-attention: ``y = gamma * o + x`` with attention over (pooled) positions.

    Key f(x), query g(x) and value h(x) are 1x1 convolutions to C' = ``channels //
    reduction`` channels (thesis: "each key, value and query is reduced ... to C/8"); a
    1x1 output convolution maps the attended values back to C, since o has C channels in
    eq. 4.2-4.3 (SAGAN's reference code does the same). With ``pool > 1`` the attention
    runs on max-pooled features and o is up-pooled back (nearest), as in Fig. 4.1. Pooling
    both queries and keys divides the L x L attention map by ``pool**(2 * spatial_dims)``
    (the thesis says "by the cubic of p": that is the factor on the number of positions
    and on the pooled feature maps). gamma starts at 0: the block is the identity at
    initialisation and learns how much long-range context to mix in (so f, g, h and the
    output projection get no gradient until gamma moves). The key projection has no bias:
    a bias b adds q_j . b to every logit of query j, which the softmax over i removes, so
    its gradient is exactly zero (on a GPU bit for bit; a CPU showed only rounding noise).

    Args:
        spatial_dims: 1, 2 or 3.
        channels: C.
        reduction: C / C' for key, query and value (8 in SAGAN and the thesis).
        pool: pooling size p (1 = SAGAN's self-attention).

    Shapes: (B, C, H, W[, D]) -> (B, C, H, W[, D]); every spatial size must be >= p.
    ``last_attention`` (B, L, L) with L = (H/p)(W/p)[(D/p)] is kept after each forward
    for inspection.

    References: Zhang et al. 2019 (SAGAN); Wei et al. 2020 (CF-SAGAN, thesis ch. 4, eq.
    4.1-4.3, Fig. 4.1).
    """

    def __init__(
        self, spatial_dims: int, channels: int, *, reduction: int = 8, pool: int = 1
    ) -> None:
        super().__init__()
        F.check_spatial_dims(spatial_dims)
        F.check_positive(channels, "channels")
        F.check_positive(reduction, "reduction")
        F.check_positive(pool, "pool")
        inner = max(channels // reduction, 1)
        self.spatial_dims = spatial_dims
        self.channels = channels
        self.inner = inner
        self.pool = pool
        self.key = F.conv(spatial_dims, channels, inner, kernel_size=1, bias=False)  # a bias cancels in the softmax
        self.query = F.conv(spatial_dims, channels, inner, kernel_size=1)
        self.value = F.conv(spatial_dims, channels, inner, kernel_size=1)
        self.out = F.conv(spatial_dims, inner, channels, kernel_size=1)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.last_attention: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mix attended context into ``x``.

        Args:
            x: (B, C, H, W[, D]) features.

        Returns:
            (B, C, H, W[, D]): ``gamma * o + x``.
        """
        check_input(x, self.spatial_dims, self.channels, "SelfAttention")
        h = x
        if self.pool > 1:
            if any(s < self.pool for s in x.shape[2:]):
                raise ValueError(
                    f"SelfAttention: spatial size {tuple(x.shape[2:])} smaller than pool={self.pool}"
                )
            h = F.pool("max", self.spatial_dims, kernel_size=self.pool)(x)
        b = h.shape[0]
        k = self.key(h).flatten(2)  # (B, C', L)
        q = self.query(h).flatten(2)
        v = self.value(h).flatten(2)
        # beta[j, i]: how much output position j attends to input position i (softmax over i)
        beta = torch.softmax(torch.bmm(q.transpose(1, 2), k), dim=-1)  # (B, L, L)
        o = self.out(torch.bmm(v, beta.transpose(1, 2)).view(b, self.inner, *h.shape[2:]))
        if self.pool > 1:
            o = nnf.interpolate(o, size=x.shape[2:], mode="nearest")
        self.last_attention = beta.detach()
        return self.gamma * o + x
