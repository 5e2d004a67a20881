"""UNIT: two VAE encoders and two generators tied through a shared latent space.

Layout (paper defaults, ``base=64``, ``n_down=2``)::

    E_x : c7s1-64, LReLU | c3s2-128, LReLU | c3s2-256, LReLU | [attention] | 3 x Res256
          | shared: Res256 -> mu ; z = mu + N(0, 1) while training
    G_x : shared: Res256 | 3 x Res256 | [attention] | dc3s2-128, LReLU | dc3s2-64, LReLU
          | c1s1-C | tanh

The shared blocks are single modules held by both encoders (resp. both generators), so
domain A and domain B use the very same ``Parameter`` objects.
"""

from __future__ import annotations

import torch
from torch import nn

from neurotrans.networks.blocks.attention import SelfAttention
from neurotrans.networks.blocks.resnet import ResnetBlock
from neurotrans.networks.checks import check_input
from neurotrans.networks.layers import factories as F
from neurotrans.networks.layers.init import apply_spectral_norm, init_weights

DOMAINS = ("a", "b")
UNIT_ATTENTION = ("none", "encoder", "generator", "both")
UNIT_FINAL_ACTIVATIONS = ("tanh", "sigmoid", "none")


def _res_stack(spatial_dims: int, channels: int, n: int, *, norm: str, dropout: float) -> nn.Sequential:
    # ReLU inside the blocks, dropout after the second norm: the UNIT / GAN-MRI residual block
    return nn.Sequential(*[
        ResnetBlock(spatial_dims, channels, norm=norm, activation="relu", dropout=dropout,
                    dropout_position="end")
        for _ in range(n)
    ])  # fmt: skip


class UNITEncoder(nn.Module):
    """One domain's encoder: its own front layers, then the shared residual blocks.

    Args:
        front: domain-specific layers, (B, C, H, W[, D]) -> (B, F, H/s, W/s[, D/s]).
        shared: the shared residual blocks (the same module in both encoders).
        noise_std: standard deviation of the Gaussian noise added to ``mu`` while training.

    Shapes: (B, C, H, W[, D]) -> mu and z, each (B, F, H/s, W/s[, D/s]).
    """

    def __init__(self, front: nn.Module, shared: nn.Module, *, noise_std: float = 1.0) -> None:
        super().__init__()
        if noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std}")
        self.front = front
        self.shared = shared
        self.noise_std = float(noise_std)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu = self.shared(self.front(x))
        if self.training and self.noise_std > 0:
            # the VAE of UNIT with unit variance: z ~ N(mu, I), so the KL term reduces to |mu|^2
            return mu, mu + self.noise_std * torch.randn_like(mu)
        return mu, mu


class UNITGenerator(nn.Module):
    """One domain's generator: the shared residual blocks, then its own layers.

    Args:
        shared: the shared residual blocks (the same module in both generators).
        back: domain-specific layers, latent -> image.

    Shapes: (B, F, H/s, W/s[, D/s]) -> (B, C, H, W[, D]).
    """

    def __init__(self, shared: nn.Module, back: nn.Module) -> None:
        super().__init__()
        self.shared = shared
        self.back = back

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.back(self.shared(z))


class UNIT(nn.Module):
    """UNIT's coupled VAE-GAN generators: encoders E_a, E_b and generators G_a, G_b.

    The last residual block(s) of the two encoders and the first of the two generators
    are shared (one module each, referenced by both domains): the shared-latent-space
    constraint. ``encode`` returns the mean ``mu`` and the sample ``z = mu + N(0, noise_std^2)``
    (``z = mu`` in eval mode); ``decode`` maps a latent to a domain; ``translate`` chains them.
    The discriminators are separate modules (:class:`MultiScaleDiscriminator`).

    Variants of the T1<->T2 report, combinable: ``attention="encoder"`` / ``"generator"`` /
    ``"both"`` inserts a self-attention block (gamma from 0, so it starts as the identity)
    in each domain's own layers at the latent resolution: in E after the strided
    convolutions, in G after its residual blocks (before upsampling). The report's figure
    placing it is not in the text; this position keeps the L x L attention map at 1/16 of
    the pixels in 2D (use ``attention_pool`` in 3D). ``spectral_norm=True`` normalises
    every convolution of E and G (the shared ones once).

    Weights are drawn from N(0, 0.02) (the UNIT reference) before spectral normalisation.
    Dropout, batch norm and the latent noise follow ``train()`` / ``eval()``; the Keras
    code of Welander et al. keeps all three on at test time, the UNIT reference does not
    add noise at test time; we follow PyTorch's convention (off in eval).

    Args:
        spatial_dims: 2 (the paper) or 3.
        in_channels: channels of domain a images (1 for grey-scale T1).
        out_channels: channels of domain b images.
        base: channels of the first convolution (64); doubled by every downsampling.
        n_down: stride-2 convolutions (2); images need sizes divisible by 2**n_down.
        n_res_encoder: domain-specific residual blocks per encoder (3).
        n_res_generator: domain-specific residual blocks per generator (3).
        n_shared: shared residual blocks in the encoders and in the generators (1 each).
        norm: normalisation in the residual blocks (``"batch"`` as the report).
        dropout: dropout of the residual blocks (0.5).
        negative_slope: LeakyReLU slope of the plain convolutions (0.01).
        noise_std: standard deviation of the latent noise while training (1).
        final_activation: ``"tanh"`` (images in [-1, 1], the paper), ``"sigmoid"`` or
            ``"none"``.
        attention: ``"none"``, ``"encoder"``, ``"generator"`` or ``"both"``.
        attention_pool: pooling of the attention block (1 = SAGAN; >1 for 3D memory).
        spectral_norm: spectral normalisation of every conv of E and G.

    Shapes: ``translate``: (B, C_src, H, W[, D]) -> (B, C_dst, H, W[, D]); latents
    (B, base * 2**n_down, H / 2**n_down, W / 2**n_down[, D / 2**n_down]).

    References: Liu, Breuel & Kautz 2017 (UNIT, Table 3); Welander et al. 2018 (UNIT for
    T1<->T2, GAN-MRI code); Maheshwari & Pant, GAN based translation between medical image
    modalities (self-attention, spectral norm, Charbonnier; papers/004); Zhang et al. 2019
    (SAGAN); Miyato et al. 2018 (spectral normalisation).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int = 1,
        out_channels: int = 1,
        *,
        base: int = 64,
        n_down: int = 2,
        n_res_encoder: int = 3,
        n_res_generator: int = 3,
        n_shared: int = 1,
        norm: str = "batch",
        dropout: float = 0.5,
        negative_slope: float = 0.01,
        noise_std: float = 1.0,
        final_activation: str = "tanh",
        attention: str = "none",
        attention_pool: int = 1,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        F.check_spatial_dims(spatial_dims)
        for value, what in ((in_channels, "in_channels"), (out_channels, "out_channels"),
                            (base, "base"), (n_down, "n_down"), (n_shared, "n_shared"),
                            (attention_pool, "attention_pool")):  # fmt: skip
            F.check_positive(value, what)
        for value, what in ((n_res_encoder, "n_res_encoder"), (n_res_generator, "n_res_generator")):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{what} must be a non-negative integer, got {value!r}")
        F.check_choice(norm, F.NORMS, "norm")
        F.check_probability(dropout, "dropout")
        F.check_choice(final_activation, UNIT_FINAL_ACTIVATIONS, "final_activation")
        F.check_choice(attention, UNIT_ATTENTION, "attention")
        if negative_slope < 0:
            raise ValueError(f"negative_slope must be >= 0, got {negative_slope}")
        self.spatial_dims = spatial_dims
        self.channels = {"a": in_channels, "b": out_channels}
        self.depth = n_down  # sizes must be multiples of 2**depth (Method.size_multiple)
        self.latent_channels = base * 2**n_down
        self.attention = attention
        self.spectral_norm = spectral_norm
        res = dict(norm=norm, dropout=dropout)
        lat = self.latent_channels

        def lrelu() -> nn.Module:
            return nn.LeakyReLU(negative_slope)

        def front(c_in: int) -> nn.Sequential:
            layers = [F.conv(spatial_dims, c_in, base, kernel_size=7), lrelu()]
            for i in range(n_down):
                c = base * 2**i
                layers += [F.down_conv(spatial_dims, c, 2 * c, kernel_size=3), lrelu()]
            if attention in ("encoder", "both"):
                layers.append(SelfAttention(spatial_dims, lat, pool=attention_pool))
            layers.append(_res_stack(spatial_dims, lat, n_res_encoder, **res))
            return nn.Sequential(*layers)

        def back(c_out: int) -> nn.Sequential:
            layers: list[nn.Module] = [_res_stack(spatial_dims, lat, n_res_generator, **res)]
            if attention in ("generator", "both"):
                layers.append(SelfAttention(spatial_dims, lat, pool=attention_pool))
            for i in range(n_down):
                c = lat // 2**i
                layers += [F.up_conv(spatial_dims, c, c // 2, kernel_size=3), lrelu()]
            layers.append(F.conv(spatial_dims, base, c_out, kernel_size=1))
            if final_activation != "none":
                layers.append(F.activation(final_activation))
            return nn.Sequential(*layers)

        shared_enc = _res_stack(spatial_dims, lat, n_shared, **res)
        shared_gen = _res_stack(spatial_dims, lat, n_shared, **res)
        self.encoder_a = UNITEncoder(front(in_channels), shared_enc, noise_std=noise_std)
        self.encoder_b = UNITEncoder(front(out_channels), shared_enc, noise_std=noise_std)
        self.generator_a = UNITGenerator(shared_gen, back(in_channels))
        self.generator_b = UNITGenerator(shared_gen, back(out_channels))
        init_weights(self, scheme="normal", gain=0.02)
        if spectral_norm:
            apply_spectral_norm(self)

    @property
    def shared_encoder(self) -> nn.Module:
        """The residual blocks ending both encoders (one module)."""
        return self.encoder_a.shared

    @property
    def shared_generator(self) -> nn.Module:
        """The residual blocks starting both generators (one module)."""
        return self.generator_a.shared

    def encoder(self, domain: str) -> UNITEncoder:
        """E_a or E_b (shared blocks included)."""
        return self.encoder_a if _check_domain(domain) == "a" else self.encoder_b

    def generator(self, domain: str) -> UNITGenerator:
        """G_a or G_b (shared blocks included)."""
        return self.generator_a if _check_domain(domain) == "a" else self.generator_b

    def encode(self, x: torch.Tensor, domain: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent mean and sample of images of ``domain``.

        Args:
            x: (B, C_domain, H, W[, D]), sizes divisible by 2**n_down.
            domain: ``"a"`` or ``"b"``.

        Returns:
            ``(mu, z)``, each (B, F, H / 2**n_down, ...); ``z = mu + noise`` in training,
            ``z is mu`` in eval mode.
        """
        enc = self.encoder(domain)
        self._check_input(x, domain)
        return enc(x)

    def decode(self, z: torch.Tensor, domain: str) -> torch.Tensor:
        """Images of ``domain`` from latents ``z`` (B, F, h, w[, d]) -> (B, C_domain, H, W[, D])."""
        check_input(z, self.spatial_dims, self.latent_channels, "UNIT.decode", "latent")
        return self.generator(domain)(z)

    def translate(self, x: torch.Tensor, src: str, dst: str) -> torch.Tensor:
        """``G_dst(z)`` with ``z`` from ``E_src(x)``: translation (src != dst) or reconstruction."""
        return self.decode(self.encode(x, src)[1], dst)

    def forward(self, x: torch.Tensor, src: str = "a", dst: str = "b") -> torch.Tensor:
        """Translate ``x`` from ``src`` to ``dst`` (a -> b by default); see :meth:`translate`."""
        return self.translate(x, src, dst)

    def _check_input(self, x: torch.Tensor, domain: str) -> None:
        check_input(x, self.spatial_dims, self.channels[domain], f"UNIT (domain {domain!r})", "image")
        m = 2**self.depth
        if any(s % m for s in x.shape[2:]):
            raise ValueError(
                f"UNIT needs spatial sizes divisible by {m} (2**n_down), got "
                f"{tuple(x.shape[2:])}; pad the images (e.g. pad_to) first"
            )


def _check_domain(domain: str) -> str:
    F.check_choice(domain, DOMAINS, "domain")
    return domain
