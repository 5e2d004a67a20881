"""Real anatomy on the output grid, and what makes each simulated subject different.

The ICBM152 2009a templates (nilearn) are resampled once per grid; every subject then gets
a smooth random deformation with a head-size scaling, atrophy (GM turned into CSF,
enlarged ventricles), a multiplicative scanner bias field and Rician noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from neurotrans.data.atlas import load_atlas, reference_mask, region_mask
from neurotrans.data.grid import Grid, mni_grid
from neurotrans.data.resample import resample_to_grid

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


@dataclass(frozen=True)
class Template:
    """Template anatomy on one output grid (all arrays have ``grid.shape``, read-only).

    Args:
        grid: the output grid.
        gm, wm, csf: tissue probabilities in [0, 1]; ``gm + wm + csf`` is the brain fraction.
        labels, names: AAL2 labels on the grid and ``{label: region name}``.
        pons: clinica's pons reference mask (FDG SUVR).
        ventricle_mm: distance (mm) from the template's ventricles (0 inside them).
        center: voxel coordinates of the brain's centroid, shape ``(3,)``.
    """

    grid: Grid
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    labels: np.ndarray
    names: dict[int, str]
    pons: np.ndarray
    ventricle_mm: np.ndarray
    center: np.ndarray

    @property
    def voxel_mm(self) -> float:
        return float(self.grid.voxel_size[0])

    def region(self, *prefixes: str) -> np.ndarray:
        """Boolean mask of the AAL2 regions whose names start with any of ``prefixes``."""
        return region_mask(self.labels, self.names, *prefixes)


def _to_grid(data: np.ndarray, affine: np.ndarray, grid: Grid) -> np.ndarray:
    """Anti-aliased trilinear resampling of a 1 mm map onto ``grid``."""
    src_mm = float(np.sqrt((affine[:3, :3] ** 2).sum(axis=0)).mean())
    sigma = np.sqrt(max(grid.voxel_size[0] ** 2 - src_mm**2, 0.0)) * FWHM_TO_SIGMA / src_mm
    smooth = ndimage.gaussian_filter(np.asarray(data, dtype=np.float32), sigma) if sigma > 0 else data
    return np.clip(resample_to_grid(smooth, affine, grid, order=1), 0.0, 1.0)


@lru_cache(maxsize=4)
def load_template(voxel_size: float = 1.5) -> Template:
    """ICBM152 2009a tissue maps, AAL2 and the pons mask on the MNI grid of ``voxel_size``.

    References:
        Fonov et al., NeuroImage 2011 (ICBM152 2009a); Rolls et al. 2015 (AAL2).
    """
    from nilearn import datasets

    grid = mni_grid(voxel_size)
    imgs = {k: f(resolution=1) for k, f in (("gm", datasets.load_mni152_gm_template),
                                            ("wm", datasets.load_mni152_wm_template),
                                            ("brain", datasets.load_mni152_brain_mask))}
    maps = {k: _to_grid(np.asarray(img.dataobj, dtype=np.float32), img.affine, grid) for k, img in imgs.items()}
    gm, wm = maps["gm"], maps["wm"]
    tissue = gm + wm
    over = tissue > 1.0
    gm[over] /= tissue[over]
    wm[over] /= tissue[over]
    csf = np.clip(maps["brain"] - gm - wm, 0.0, 1.0)
    vs = grid.voxel_size[0]
    brain = (gm + wm + csf) > 0.5
    depth = ndimage.distance_transform_edt(brain, sampling=vs)
    # the lateral and third ventricles: CSF deep inside the brain
    ventricles = (csf > 0.5) & (depth > 18.0)
    ventricle_mm = ndimage.distance_transform_edt(~ventricles, sampling=vs).astype(np.float32)
    labels, names = load_atlas("AAL2", grid)
    pons = reference_mask("pons", grid)
    center = np.array(ndimage.center_of_mass(brain), dtype=np.float32)
    arrays = (gm, wm, csf, ventricle_mm)
    for a in arrays:
        a.setflags(write=False)
    return Template(grid, gm, wm, csf, labels, names, pons, ventricle_mm, center)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], voxel_mm: float, spacing_mm: float,
                 n: int = 1) -> np.ndarray:
    """Smooth random fields with zero mean and unit standard deviation.

    White noise on a coarse lattice (``spacing_mm / 2``), smoothed and interpolated to the grid:
    much cheaper than filtering full-resolution noise, and the same on every grid.

    Returns:
        float32 array ``(n, *shape)``.
    """
    step = spacing_mm / 2.0
    coarse = tuple(int(np.ceil(s * voxel_mm / step)) + 2 for s in shape)
    out = np.empty((n, *shape), dtype=np.float32)
    for i in range(n):
        z = ndimage.gaussian_filter(rng.standard_normal(coarse), 1.0, mode="wrap")
        f = ndimage.zoom(z, [s / c for s, c in zip(shape, coarse, strict=True)], order=1).astype(np.float32)
        f -= f.mean()
        f /= max(float(f.std()), 1e-6)
        out[i] = f
    return out


def uniform_field(rng: np.random.Generator, shape: tuple[int, ...], voxel_mm: float, spacing_mm: float) -> np.ndarray:
    """A smooth field with uniform marginals on [0, 1] (spatially coherent random choices)."""
    from scipy.special import ndtr

    return ndtr(smooth_noise(rng, shape, voxel_mm, spacing_mm)[0]).astype(np.float32)


@dataclass(frozen=True)
class Warp:
    """Where each output voxel samples the (atrophied) template: a deformation and a scaling.

    Args:
        coords: source voxel coordinates, shape ``(3, X, Y, Z)``.
        scale: head-size factor (> 1: bigger head).
        rms_mm: root-mean-square displacement of the random deformation, in mm.
    """

    coords: np.ndarray
    scale: float
    rms_mm: float

    def apply(self, volume: np.ndarray, order: int = 1) -> np.ndarray:
        """Deform one template-space map (linear interpolation; 0 outside the template)."""
        out = ndimage.map_coordinates(np.asarray(volume, dtype=np.float32), self.coords, order=order,
                                      mode="constant", cval=0.0, prefilter=False)
        return out.astype(np.float32, copy=False)


def random_warp(rng: np.random.Generator, tpl: Template, *, displacement_mm: float = 1.5,
                scale_sd: float = 0.035) -> Warp:
    """Smooth random deformation (about ``displacement_mm`` RMS) and head-size scaling.

    Args:
        rng: the subject's generator.
        tpl: template anatomy.
        displacement_mm: RMS of each displacement component (mm); maxima reach a few mm.
        scale_sd: standard deviation of the global head-size factor.
    """
    shape = tpl.grid.shape
    vs = tpl.voxel_mm
    scale = float(np.clip(1.0 + scale_sd * rng.standard_normal(), 0.9, 1.1))
    disp = smooth_noise(rng, shape, vs, 24.0, n=3) * np.float32(displacement_mm / vs)
    idx = np.indices(shape, dtype=np.float32)
    c = tpl.center.reshape(3, 1, 1, 1)
    coords = c + (idx - c) / np.float32(scale) + disp
    rms = float(np.sqrt((disp**2).sum(axis=0).mean())) * vs
    return Warp(coords.astype(np.float32, copy=False), scale, rms)


def atrophy(tpl: Template, gm_factor: np.ndarray | float, ventricle_mm: float) -> tuple[np.ndarray, ...]:
    """Apply atrophy in template space: lost GM becomes CSF and the ventricles grow.

    Args:
        tpl: template anatomy.
        gm_factor: fraction of GM kept, scalar or per voxel (age, disease, regional loss).
        ventricle_mm: how far (mm) the ventricles expand into the surrounding tissue.

    Returns:
        ``(gm, wm, csf)`` float32 maps in template space.
    """
    gm = tpl.gm * np.asarray(gm_factor, dtype=np.float32)
    csf = tpl.csf + (tpl.gm - gm)
    wm = tpl.wm.copy()
    if ventricle_mm > 0:
        # a linear ramp one voxel wide keeps partial volumes at the new ventricle border
        grow = np.clip((ventricle_mm - tpl.ventricle_mm) / tpl.voxel_mm + 0.5, 0.0, 1.0).astype(np.float32)
        grow[tpl.ventricle_mm == 0] = 0.0
        moved = grow * (gm + wm)
        gm = gm * (1.0 - grow)
        wm = wm * (1.0 - grow)
        csf = csf + moved
    return gm.astype(np.float32), wm.astype(np.float32), np.clip(csf, 0.0, 1.0).astype(np.float32)


def bias_field(rng: np.random.Generator, shape: tuple[int, ...], voxel_mm: float, strength: float = 0.08) -> np.ndarray:
    """Multiplicative, very smooth scanner bias field (about ``1 +- strength``)."""
    return np.exp(np.float32(strength) * smooth_noise(rng, shape, voxel_mm, 90.0)[0])


def rician(rng: np.random.Generator, signal: np.ndarray, sigma: float) -> np.ndarray:
    """Magnitude of a complex signal with Gaussian noise in both channels (Rician noise)."""
    re = signal + np.float32(sigma) * rng.standard_normal(signal.shape, dtype=np.float32)
    im = np.float32(sigma) * rng.standard_normal(signal.shape, dtype=np.float32)
    return np.sqrt(re * re + im * im)


def smooth_region_map(tpl: Template, weights: dict[str, float], default: float = 0.0,
                      sigma_mm: float = 3.0) -> np.ndarray:
    """A per-voxel value from AAL2 regions (name prefix -> value), softly blended at borders."""
    out = np.full(tpl.grid.shape, default, dtype=np.float32)
    for prefix, value in weights.items():
        out[tpl.region(prefix)] = value
    return ndimage.gaussian_filter(out, sigma_mm / tpl.voxel_mm)
