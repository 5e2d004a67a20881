"""DUAL-GLOW: two Glow flows (MRI, PET) linked by relation networks on their latents.

x_mri -f_m-> z_mri -(mu, sigma)-> z_pet -f_p^-1-> x_pet (paper eq. 7). Training minimises
eq. 12 (with side information eq. 16 plus the side-head losses); generation decodes PET
latents drawn from p(z_pet | z_mri[, c]) at a temperature.

References: Sun et al. 2019, "DUAL-GLOW: Conditional Flow-Based Generative Model for Modality
Transfer" (ICCV); Kingma & Dhariwal 2018 (Glow).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from neurotrans.losses.flow import bits_per_voxel, dequantize, gaussian_log_prob
from neurotrans.networks.blocks.latent_heads import (
    SIDE_KINDS,
    LatentMean,
    RelationNet,
    SideHead,
    side_loss,
)
from neurotrans.networks.layers import factories as F
from neurotrans.networks.nets.glow import Glow

Latents = list[torch.Tensor]


class DualGlow(nn.Module):
    """Conditional flow model of p(x_pet | x_mri[, side]) with an MRI likelihood regulariser.

    Two :class:`Glow` flows of ``levels`` x ``steps`` map MRI and PET to per-level latents
    (split-off parts z_1..z_{L-1} and the top z_L). For every level a :class:`RelationNet`
    gives the mean and log-scale of the PET latent from the MRI latent of the same level; the
    MRI latents have a standard normal prior. The loss (``forward``) is paper eq. 12 in bits
    per voxel::

        bpv_pet + mri_weight * bpv_mri [+ side_weight * (side_pet + mean_l side_mri_l)]

    with bpv_pet = -(log p(z_pet | z_mri) + log|det dz_pet/dx_pet|) and bpv_mri =
    -(log N(z_mri; 0, I) + log|det dz_mri/dx_mri|), each as bits per voxel of the image
    quantised at ``quant_step`` after uniform dequantisation (:mod:`neurotrans.losses.flow`).

    Side information c (``side_kinds`` not empty; age, optionally sex and diagnosis): heads
    on the MRI latents of levels 1..L-1 behind gradient reversal (pushing c out of them), on
    the top MRI and top PET latents without it (keeping c there), loss weight 0.01; the top
    PET relation is conditioned on c. Following eq. 17 the top PET prior then depends on c
    only, not on the top MRI latent (which carries c); ``top_uses_mri_with_side=True`` feeds it
    both.

    Differences from the paper, each an option or stated: the relation nets also predict the
    log-scale (the paper's eq. 6 has sigma_theta; the authors' code fixes it at 1); the side
    heads are small size-independent conv nets; the side loss is 0.01 * (PET head + mean of
    the L MRI heads) as in the authors' code (L1 for continuous features, without the code's
    division by ln 2; BCE for binary ones); intensities are dequantised with the step the
    caller gives instead of 8-bit binning.

    Settings: the defaults are the paper's (4 levels x 16 steps, width 512, relation nets
    256 x 4): 544 M parameters, 365 M of them in the two level-4 blocks (512 channels), a
    GPU model. On a CPU at 3 mm (61 x 73 x 61 padded to 64 x 80 x 64, ``glow.padded_size``)
    ``levels=3, steps=4, hidden=32, relation_hidden=32, relation_layers=2`` has 2.9 M
    parameters and one forward + backward of one volume costs about 1.5 s of CPU time
    (``steps=8``: 5.0 M, 2.7 s); see ``benchmarks/dualglow.py``.

    Args:
        spatial_dims: 1, 2 or 3.
        mri_channels: C of the MRI input.
        pet_channels: C of the PET.
        levels: L (paper 4).
        steps: K flow steps per level (paper 16).
        hidden: coupling-network width (paper/code 512).
        scale: coupling scale, ``"exp"`` (paper eq. 13), ``"sigmoid"`` (bounded; see Glow) or
            ``"additive"`` (scale 1).
        relation_hidden: relation-net width (code 256).
        relation_layers: relation-net convolutions (code 4).
        relation_kernel: first relation-net kernel (code 5).
        side_kinds: one of ``"continuous"``/``"binary"`` per side feature; () for none.
        side_weight: weight of the side-head losses (paper 0.01).
        side_hidden: side-head width.
        top_uses_mri_with_side: with side information, also feed the top MRI latent to the
            top PET relation (eq. 17 does not).
        mri_weight: lambda of eq. 12 (paper 1e-3).
        checkpointing: gradient checkpointing over flow steps.
        cohort_prior: the PET prior's mean is the training cohort's running mean latent
            (:class:`LatentMean`) plus the relation net's output, instead of the output alone
            (the paper). Measured reason (3 mm fdg cohort, 400 steps): the zero-started relation
            nets had not learnt even the cohort's typical top latent, so the temperature-0
            decode was darker than any subject (MAE 0.59 SUVR, worse than the mean of the
            other subjects); decoding the training subjects' mean latents gave 0.20 (0.10 with
            additive couplings). With side information the top level's cohort latent is the
            running linear regression of the latent on c (``LatentMean(features=F)``), so c
            moves the whole top prior along the cohort's own effect of c. Measured (3 mm fdg
            cohort, ``dualglow_age_fdg``, 400 steps, 8 test subjects, age swept 60 -> 90): with
            the learned per-channel offsets alone the cingulate SUVR moved -0.0015 per decade
            (the cohort's real PET: -0.056 to -0.059); a learned spatial map of age on an 8^3
            grid gave -0.006; the regression gives -0.022 to -0.024, falling for 8/8 subjects,
            temperature-0 test MAE 0.121 (0.129 without), validation NLL 3.30 against 2.97
            bits/voxel: the moving regression costs likelihood.

    Shapes: x_mri (B, C_m, *S), x_pet (B, C_p, *S), every size in S divisible by 2**L;
    side (B, len(side_kinds)).

    References: Sun et al. 2019 (DUAL-GLOW, eq. 6-17, Sec. 4.1 "Framework details").
    """

    def __init__(
        self, spatial_dims: int = 3, mri_channels: int = 1, pet_channels: int = 1, *,
        levels: int = 4, steps: int = 16, hidden: int = 512, scale: str = "exp",
        relation_hidden: int = 256, relation_layers: int = 4, relation_kernel: int = 5,
        side_kinds: Sequence[str] = (), side_weight: float = 0.01, side_hidden: int = 64,
        top_uses_mri_with_side: bool = False, mri_weight: float = 1e-3,
        checkpointing: bool = False, cohort_prior: bool = False,
    ) -> None:  # fmt: skip
        super().__init__()
        side_kinds = tuple(side_kinds)
        for kind in side_kinds:
            F.check_choice(kind, SIDE_KINDS, "every side kind")
        for value, what in [(side_weight, "side_weight"), (mri_weight, "mri_weight")]:
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{what} must be a finite number >= 0, got {value!r}")
        self.mri_flow = Glow(spatial_dims, mri_channels, levels=levels, steps=steps, hidden=hidden,
                             scale=scale, checkpointing=checkpointing)  # fmt: skip
        self.pet_flow = Glow(spatial_dims, pet_channels, levels=levels, steps=steps, hidden=hidden,
                             scale=scale, checkpointing=checkpointing)  # fmt: skip
        self.spatial_dims = spatial_dims
        self.n_levels = levels
        self.side_kinds = side_kinds
        self.side_weight = float(side_weight)
        self.mri_weight = float(mri_weight)
        self.top_uses_mri = not side_kinds or bool(top_uses_mri_with_side)
        unit = [2**levels] * spatial_dims
        c_mri = [s[0] for s in self.mri_flow.latent_shapes(unit)]
        c_pet = [s[0] for s in self.pet_flow.latent_shapes(unit)]
        n_side = len(side_kinds)
        self.relations = nn.ModuleList()
        for i in range(levels):
            top = i == levels - 1
            cond = c_mri[i] if (not top or self.top_uses_mri) else 0
            self.relations.append(RelationNet(
                spatial_dims, c_pet[i], cond_channels=cond, side_features=n_side if top else 0,
                hidden=relation_hidden, layers=relation_layers, first_kernel=relation_kernel,
            ))  # fmt: skip
        # the top one also regresses the latent on the side information (the cohort's age effect)
        self.pet_means = nn.ModuleList(
            [LatentMean(features=n_side if i == levels - 1 else 0) for i in range(levels)] if cohort_prior else []
        )
        self.mri_heads = nn.ModuleList()
        self.pet_head: SideHead | None = None
        if side_kinds:
            for i in range(levels):
                self.mri_heads.append(SideHead(spatial_dims, c_mri[i], n_side, hidden=side_hidden,
                                               reverse_gradient=i < levels - 1))  # fmt: skip
            self.pet_head = SideHead(spatial_dims, c_pet[-1], n_side, hidden=side_hidden)

    @property
    def size_multiple(self) -> int:
        """Every spatial size must be a multiple of this (2**levels); see ``glow.padded_size``."""
        return 2**self.n_levels

    @property
    def cohort_prior(self) -> bool:
        """Whether the PET prior means start from the cohort's running mean latents."""
        return len(self.pet_means) > 0

    @property
    def initialized(self) -> bool:
        """Whether both flows' actnorms (and the cohort mean latents) have had their data-dependent initialisation."""
        means = all(m.ready for m in self.pet_means)
        return self.mri_flow.initialized and self.pet_flow.initialized and means

    @property
    def checkpointing(self) -> bool:
        """Gradient checkpointing over the flow steps of both flows (settable)."""
        return self.mri_flow.checkpointing

    @checkpointing.setter
    def checkpointing(self, flag: bool) -> None:
        self.mri_flow.checkpointing = self.pet_flow.checkpointing = bool(flag)

    # -- checks -------------------------------------------------------------------------
    def _check_side(self, side: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        if not self.side_kinds:
            if side is not None:
                raise ValueError("this DualGlow has no side information (side_kinds=()): pass "
                                 "side=None")  # fmt: skip
            return None
        n = len(self.side_kinds)
        if side is None or side.dim() != 2 or tuple(side.shape) != (batch, n):
            got = None if side is None else tuple(side.shape)
            raise ValueError(f"side must be a ({batch}, {n}) tensor {self.side_kinds}, got {got}")
        return side

    def _check_pair(self, x_mri: torch.Tensor, x_pet: torch.Tensor) -> None:
        if x_mri.shape[0] != x_pet.shape[0] or x_mri.shape[2:] != x_pet.shape[2:]:
            raise ValueError(f"MRI {tuple(x_mri.shape)} and PET {tuple(x_pet.shape)} need the "
                             "same batch and spatial sizes")  # fmt: skip

    def _require_initialized(self) -> None:
        if not self.initialized:
            raise RuntimeError("DualGlow's actnorms (and cohort mean latents) are not initialised: run one training-mode "
                               "forward (the loss) on a data batch first")  # fmt: skip

    # -- densities ------------------------------------------------------------------------
    def pet_prior(
        self, z_mri: Latents, shapes: Sequence[Sequence[int]], side: torch.Tensor | None
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(mean, log_scale) of every PET latent given the MRI latents (and side).

        Args:
            z_mri: the MRI flow's latents.
            shapes: full shapes (B, C, *S) of the PET latents.
            side: (B, F) or None.
        """
        out = []
        for i, relation in enumerate(self.relations):
            top = i == self.n_levels - 1
            cond = z_mri[i] if (not top or self.top_uses_mri) else None
            mean, logs = relation(shapes[i], cond, side if top else None)
            if self.pet_means:
                self.pet_means[i].check(shapes[i])
                mean = mean + self.pet_means[i].at(side)
            out.append((mean, logs))
        return out

    def _encode(
        self, x_mri: torch.Tensor, x_pet: torch.Tensor, side: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, Latents, Latents]:
        z_mri, ld_mri = self.mri_flow(x_mri)
        z_pet, ld_pet = self.pet_flow(x_pet)
        logp_mri = ld_mri + sum(gaussian_log_prob(z) for z in z_mri)
        # cohort means: the first training batch starts them (data-dependent, as actnorm); later
        # batches are folded in after the prior has used the mean from before them
        pending = []  # (cohort mean, latent) pairs to fold in after the prior; none in eval mode
        for m, z in zip(self.pet_means, z_pet, strict=False) if self.training else ():
            if m.ready:
                pending.append((m, z))
            else:
                m.update(z, side)
        prior = self.pet_prior(z_mri, [z.shape for z in z_pet], side)
        for m, z in pending:
            m.update(z, side)
        logp_pet = ld_pet + sum(
            gaussian_log_prob(z, mean, logs) for z, (mean, logs) in zip(z_pet, prior, strict=True)
        )
        return logp_mri, logp_pet, z_mri, z_pet

    def log_prob(
        self, x_mri: torch.Tensor, x_pet: torch.Tensor, side: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Log-densities in nats (no dequantisation): ``"pet"`` = log p(x_pet | x_mri[, c])
        and ``"mri"`` = log p(x_mri), each (B,)."""
        self._check_pair(x_mri, x_pet)
        side = self._check_side(side, x_mri.shape[0])
        logp_mri, logp_pet, _, _ = self._encode(x_mri, x_pet, side)
        return {"pet": logp_pet, "mri": logp_mri}

    def forward(
        self, x_mri: torch.Tensor, x_pet: torch.Tensor, side: torch.Tensor | None = None, *,
        quant_step: float | tuple[float, float], noise: bool = True,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:  # fmt: skip
        """Training loss (paper eq. 12/16) and its terms, batch means, in bits per voxel.

        Args:
            x_mri: (B, C_m, *S) normalised MRI.
            x_pet: (B, C_p, *S) normalised PET.
            side: (B, F) side information (standardised continuous values, 0/1 binaries) or
                None when the model has none.
            quant_step: quantisation step(s) delta of the intensities, one for both or
                (MRI, PET), in the units passed.
            noise: add the uniform dequantisation noise (keep it on for validation too, with
                a seeded ``generator``, so that the numbers stay a bound).
            generator: for the dequantisation noise.

        Returns:
            ``"loss"`` (minimised), ``"bpv_pet"`` (the conditional NLL, the validation
            number), ``"bpv_mri"``, and with side information ``"side_pet"``, ``"side_mri"``.
        """
        self._check_pair(x_mri, x_pet)
        side = self._check_side(side, x_mri.shape[0])
        step_mri, step_pet = (quant_step, quant_step) if isinstance(quant_step, (int, float)) \
            else tuple(quant_step)  # fmt: skip
        if noise:
            x_mri = dequantize(x_mri, step_mri, generator)
            x_pet = dequantize(x_pet, step_pet, generator)
        logp_mri, logp_pet, z_mri, z_pet = self._encode(x_mri, x_pet, side)
        bpv_mri = bits_per_voxel(logp_mri, x_mri[0].numel(), step_mri).mean()
        bpv_pet = bits_per_voxel(logp_pet, x_pet[0].numel(), step_pet).mean()
        out = {"loss": bpv_pet + self.mri_weight * bpv_mri, "bpv_pet": bpv_pet, "bpv_mri": bpv_mri}
        if side is not None:
            out["side_mri"] = torch.stack([
                side_loss(head(z), side, self.side_kinds)
                for head, z in zip(self.mri_heads, z_mri, strict=True)
            ]).mean()  # fmt: skip
            out["side_pet"] = side_loss(self.pet_head(z_pet[-1]), side, self.side_kinds)
            out["loss"] = out["loss"] + self.side_weight * (out["side_pet"] + out["side_mri"])
        return out

    # -- generation -----------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self, x_mri: torch.Tensor, temperature: float, side: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """Generate PET for ``x_mri``: z_pet = mean + temperature * sigma * eps, decoded.

        Temperature 0 gives the point prediction (every PET latent at its conditional mean),
        deterministic. Call in eval mode after training.

        Args:
            x_mri: (B, C_m, *S) normalised MRI.
            temperature: >= 0 (1: the model's distribution; the authors' code uses 0.4).
            side: (B, F) side information (e.g. an age sweep: the same MRI with several ages).
            generator: for eps.

        Returns:
            (B, C_p, *S) PET in the normalised units of training.
        """
        if not (math.isfinite(temperature) and temperature >= 0):
            raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
        self._require_initialized()
        side = self._check_side(side, x_mri.shape[0])
        z_mri, _ = self.mri_flow(x_mri)
        shapes = [(x_mri.shape[0], *s) for s in self.pet_flow.latent_shapes(x_mri.shape[2:])]
        z_pet = []
        for mean, logs in self.pet_prior(z_mri, shapes, side):
            if temperature > 0:
                eps = torch.randn(mean.shape, generator=generator, device=mean.device,
                                  dtype=mean.dtype)  # fmt: skip
                mean = mean + temperature * torch.exp(logs) * eps
            z_pet.append(mean)
        return self.pet_flow.inverse(z_pet)

    @torch.no_grad()
    def sample_stats(
        self, x_mri: torch.Tensor, n_samples: int, temperature: float,
        side: torch.Tensor | None = None, generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """Voxel-wise mean and standard deviation (ddof 1) of ``n_samples`` samples.

        The uncertainty maps of the method: SD grows where the PET is less determined by the
        MRI. Accumulated in float64 (Welford) so memory does not grow with ``n_samples``.

        Returns:
            mean, sd: (B, C_p, *S) each, in the dtype of ``x_mri``.
        """
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 2:
            raise ValueError(f"n_samples must be an int >= 2, got {n_samples!r}")
        mean = m2 = None
        for k in range(1, n_samples + 1):
            x = self.sample(x_mri, temperature, side, generator).double()
            if mean is None:
                mean, m2 = x.clone(), torch.zeros_like(x)
                continue
            delta = x - mean
            mean += delta / k
            m2 += delta * (x - mean)
        sd = torch.sqrt(m2 / (n_samples - 1))
        return mean.to(x_mri.dtype), sd.to(x_mri.dtype)

