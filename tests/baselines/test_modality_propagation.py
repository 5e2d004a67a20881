"""Modality propagation's vectorised search and fusion against a plain loop over voxels."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from neurotrans.baselines import ModalityPropagation


def _reference(lib_x, lib_y, x, mask, r, s, k):
    """Voxel-by-voxel: best match per library subject in the window, k nearest subjects,
    weights exp(-d / (d_min + 1e-6)), every matched target patch averaged where it lands."""
    pad = 2 * r + s

    def padded(v):
        return np.pad(v, [(0, 0)] * (v.ndim - 3) + [(pad, pad)] * 3, mode="edge")

    xp, lxp, lyp = padded(x), [padded(a) for a in lib_x], [padded(a) for a in lib_y]
    patch = list(itertools.product(range(-r, r + 1), repeat=3))
    window = sorted(itertools.product(range(-s, s + 1), repeat=3), key=lambda o: sum(map(abs, o)))

    def cube(v, c):
        return v[..., c[0] - r : c[0] + r + 1, c[1] - r : c[1] + r + 1, c[2] - r : c[2] + r + 1]

    matches = {}
    for v in itertools.product(*(range(-r, n + r) for n in x.shape[1:])):
        c = tuple(i + pad for i in v)
        cands = []
        for n in range(len(lib_x)):
            best = (np.inf, None)
            for o in window:
                cc = tuple(a + b for a, b in zip(c, o, strict=True))
                d = float(np.mean((cube(xp, c) - cube(lxp[n], cc)) ** 2))
                if d < best[0]:
                    best = (d, cc)
            cands.append((best[0], n, best[1]))
        cands = sorted(cands, key=lambda t: t[0])[:k]
        matches[v] = [(np.exp(-d / (cands[0][0] + 1e-6)), n, cc) for d, n, cc in cands]
    out = np.zeros(x.shape[1:], dtype=np.float64)
    for y in zip(*np.nonzero(mask), strict=True):
        num = den = 0.0
        for p in patch:
            for w, n, cc in matches[tuple(a - b for a, b in zip(y, p, strict=True))]:
                num += w * lyp[n][tuple(a + b for a, b in zip(cc, p, strict=True))]
                den += w
        out[y] = num / den
    return out


@pytest.mark.parametrize(("r", "s", "k"), [(1, 1, 2), (0, 1, 3), (1, 0, 1)])
def test_matches_the_voxel_loop(rng, r, s, k):
    shape = (6, 7, 5)
    lib_x = [rng.standard_normal((2, *shape)).astype(np.float32) for _ in range(3)]
    lib_y = [rng.standard_normal(shape).astype(np.float32) for _ in range(3)]
    x = rng.standard_normal((2, *shape)).astype(np.float32)
    mask = np.zeros(shape, bool)
    mask[0:5, 2:7, 1:4] = True  # touches the border: edge-repeat matters
    model = ModalityPropagation(patch_radius=r, search_radius=s, n_neighbours=k)
    pred = model.fit(lib_x, lib_y).predict(x, mask)
    expected = _reference(lib_x, lib_y, x, mask, r, s, k)
    np.testing.assert_allclose(pred, expected, atol=1e-5)
    assert np.all(pred[~mask] == 0)


def test_a_library_copy_of_the_subject_is_returned_exactly(rng):
    # the subject itself in the library matches with distance 0 everywhere; its weight is
    # 1 and every other subject's exp(-d / 1e-6) = 0, so its target comes back unchanged
    shape = (8, 6, 7)
    lib_x = [rng.standard_normal((3, *shape)).astype(np.float32) for _ in range(4)]
    lib_y = [rng.standard_normal(shape).astype(np.float32) for _ in range(4)]
    model = ModalityPropagation(search_radius=2, n_neighbours=4).fit(lib_x, lib_y)
    np.testing.assert_allclose(model.predict(lib_x[2]), lib_y[2], atol=1e-6)
