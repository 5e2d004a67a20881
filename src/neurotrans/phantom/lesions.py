"""White-matter lesions of multiple sclerosis: blobby ellipsoids, biased toward the ventricles."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from neurotrans.phantom.anatomy import Template, load_template


@lru_cache(maxsize=4)
def _lesion_sites(voxel_size: float) -> tuple[np.ndarray, np.ndarray]:
    """Candidate lesion centres (core WM voxels) and their sampling probabilities."""
    tpl = load_template(voxel_size)
    core = (tpl.wm > 0.85) & (tpl.ventricle_mm > 1.0)
    sites = np.argwhere(core)
    # periventricular bias: most MS lesions touch or lie near the lateral ventricles
    weight = np.exp(-tpl.ventricle_mm[core] / 8.0) + 0.15
    return sites, (weight / weight.sum())


def draw_lesions(rng: np.random.Generator, tpl: Template, wm_fraction: float, *,
                 max_lesions: int = 80) -> np.ndarray:
    """Lesion labels in template space until they fill ``wm_fraction`` of the WM.

    Args:
        rng: the subject's generator.
        tpl: template anatomy.
        wm_fraction: target lesion load as a fraction of the WM volume (0.001-0.02).
        max_lesions: upper bound on the number of lesions.

    Returns:
        int16 labels ``(X, Y, Z)``: 0 outside lesions, lesion ``k`` labelled ``k`` (1..n).

    References:
        PHANTOM.md (lesions 0.1-2 % of WM, periventricular); thesis ch. 3-4 (lesion/NAWM masks).
    """
    sites, prob = _lesion_sites(tpl.voxel_mm)
    vs = tpl.voxel_mm
    wm = tpl.wm > 0.5
    target = max(1, int(round(wm_fraction * wm.sum())))
    labels = np.zeros(tpl.grid.shape, dtype=np.int16)
    filled = 0
    k = 0
    for _ in range(4 * max_lesions):
        if filled >= target or k >= max_lesions:
            break
        centre = sites[rng.choice(len(sites), p=prob)]
        radii = rng.uniform(2.0, 6.5, size=3)
        rot, _ = np.linalg.qr(rng.standard_normal((3, 3)))
        waves = rng.standard_normal((3, 3)) * 0.6  # wave vectors (1/mm) of the blobby surface
        phases = rng.uniform(0, 2 * np.pi, 3)
        reach = int(np.ceil(radii.max() * 1.4 / vs))
        lo = np.maximum(centre - reach, 0)
        hi = np.minimum(centre + reach + 1, tpl.grid.shape)
        box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        offset = (np.indices(hi - lo).reshape(3, -1).T + lo - centre) * vs  # mm
        q = (offset @ rot) / radii
        r = np.sqrt((q**2).sum(axis=1)) + 0.12 * np.sin(offset @ waves.T + phases).sum(axis=1)
        inside = (r < 1.0).reshape(hi - lo) & wm[box] & (labels[box] == 0)
        n = int(inside.sum())
        if n == 0:
            continue
        k += 1
        labels[box][inside] = k
        filled += n
    return labels
