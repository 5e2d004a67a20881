"""Modality propagation: patch search in a library of training subjects, fusing their targets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from neurotrans.baselines import _common as C

KIND = "modality_propagation"
_EPS = 1e-6  # keeps the weight bandwidth positive when a patch matches exactly


def _crop_edge(vol: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``vol[..., lo:hi]`` over the last 3 axes; parts beyond the volume repeat the edge."""
    shape = np.array(vol.shape[-3:])
    a, b = np.maximum(lo, 0), np.minimum(hi, shape)
    core = vol[(..., *(slice(int(i), int(j)) for i, j in zip(a, b, strict=True)))]
    pad = [(0, 0)] * (vol.ndim - 3) + [
        (int(i), int(j)) for i, j in zip(a - lo, hi - b, strict=True)
    ]
    return np.pad(core, pad, mode="edge")


def _box_sum(a: np.ndarray, radius: int) -> np.ndarray:
    """Sum over every (2r+1)^3 window lying inside ``a``: shape shrinks by 2r per axis.

    Shifted-slice sums per axis: for r = 1 three times faster than a uniform filter.
    """
    w = 2 * radius + 1
    for ax in range(3):
        n = a.shape[ax] - w + 1
        take = [slice(None)] * 3
        take[ax] = slice(0, n)
        out = a[tuple(take)].copy()
        for i in range(1, w):
            take[ax] = slice(i, i + n)
            out += a[tuple(take)]
        a = out
    return a


@dataclass(frozen=True, kw_only=True)
class ModalityPropagation:
    """Synthesis by patch matching against a library of co-registered training subjects.

    For every voxel x of the new subject, its (2r+1)^3 patch of all C input channels is
    compared with the library subjects' patches centred within a (2s+1)^3 search window
    around x (the subjects share a grid: affine-registered, as the library needs). Each
    library subject contributes its best match (smallest mean squared patch difference d);
    the ``n_neighbours`` subjects with the smallest d are kept, weighted
    ``w = exp(-d / (d_min + eps))`` (the non-local-means weight with the bandwidth set by
    the best match, as in patch-based label fusion), and their *target patches* are fused:
    each voxel averages, with these weights, every matched target patch that covers it
    (27 patches for r = 1), which smooths the result as the original method's patch-wise
    reconstruction does. Ye et al.'s iterative "data-driven regularisation" (re-matching
    with the synthesised target patch) is not done: one pass.

    The search is vectorised over voxels: for every library subject and search offset,
    the squared channel differences are box-summed over the patch (a separable filter),
    and a running minimum keeps the best offset, so the cost is
    ``n_library * (2s+1)^3`` whole-volume operations.

    Args:
        patch_radius: r; patches are (2r+1)^3 (1: 3x3x3 as the thesis).
        search_radius: s; the search window is (2s+1)^3 voxels around the same location.
        n_neighbours: library subjects fused per voxel (their best matches).
        max_library: keep at most this many training subjects (drawn with ``seed``);
            ``None`` keeps all.

    References: Ye et al. 2013, "Modality propagation: coherent synthesis of
    subject-specific scans with data-driven regularization" (MICCAI); Coupé et al. 2011
    (patch-based label fusion weights); Wei 2020 PhD thesis ch. 2.2.3 (3x3x3 patches).
    """

    patch_radius: int = 1
    search_radius: int = 2
    n_neighbours: int = 5
    max_library: int | None = None
    _fitted: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        C.check_nonnegative_int(self.patch_radius, "patch_radius")
        C.check_nonnegative_int(self.search_radius, "search_radius")
        C.check_positive_int(self.n_neighbours, "n_neighbours")
        if self.max_library is not None:
            C.check_positive_int(self.max_library, "max_library")

    @property
    def n_channels(self) -> int:
        """Input channels seen by ``fit``; raises ``RuntimeError`` before it."""
        if not self._fitted:
            raise RuntimeError("ModalityPropagation is not fitted; call fit() first")
        return int(self._fitted["inputs"].shape[1])

    def fit(
        self,
        inputs: Sequence[np.ndarray],
        targets: Sequence[np.ndarray],
        masks: Sequence[np.ndarray] | None = None,
        seed: int = 0,
    ) -> ModalityPropagation:
        """Store the library: ``inputs`` per subject ``(C, X, Y, Z)``, ``targets``
        ``(X, Y, Z)``, one grid. ``masks`` are only checked (the library keeps whole
        volumes, so matches may come from just outside a library brain); ``seed`` draws the
        subset when ``max_library`` is set. Returns self."""
        xs, ys, _ = C.check_cohort(inputs, targets, masks)
        keep = np.arange(len(xs))
        if self.max_library is not None and len(xs) > self.max_library:
            keep = np.sort(
                np.random.default_rng(seed).choice(keep, self.max_library, replace=False)
            )
        self._fitted.clear()
        self._fitted.update(
            inputs=np.stack([xs[i] for i in keep]), targets=np.stack([ys[i] for i in keep])
        )
        return self

    def predict(self, inputs: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Synthesise the target: ``inputs`` ``(C, X, Y, Z)`` on the library's grid, ``mask``
        bool ``(X, Y, Z)`` or ``None``; returns float32 ``(X, Y, Z)``, 0 outside the mask."""
        lib_x, lib_y = self._fitted.get("inputs"), self._fitted.get("targets")
        x = C.check_input(inputs, mask, n_channels=self.n_channels, shape=lib_x.shape[2:])
        m = C.as_mask(mask, x.shape[1:], "input")
        r, s = self.patch_radius, self.search_radius
        # region R: the mask's box grown by r, whose patches cover every mask voxel
        nz = np.nonzero(m)
        lo = np.array([a.min() for a in nz]) - r
        hi = np.array([a.max() + 1 for a in nz]) + r
        size = hi - lo
        margin = r + s
        test = _crop_edge(x, lo - margin, hi + margin)
        offsets = C.patch_offsets(s)
        offsets = offsets[np.argsort(np.abs(offsets).sum(1), kind="stable")]  # centre wins ties
        n_lib = lib_x.shape[0]
        best_d = np.empty((n_lib, *size), dtype=np.float32)
        best_o = np.empty((n_lib, *size), dtype=np.int16)
        t = test[(slice(None), *(slice(s, s + n + 2 * r) for n in size))]
        norm = np.float32(1.0 / (x.shape[0] * (2 * r + 1) ** 3))
        for n in range(n_lib):
            atlas = _crop_edge(lib_x[n], lo - margin, hi + margin)
            bd, bo = best_d[n], best_o[n]
            bd.fill(np.inf)
            for j, (a, b, c) in enumerate(offsets):
                shifted = atlas[:, s + a : s + a + size[0] + 2 * r, s + b : s + b + size[1] + 2 * r,
                                s + c : s + c + size[2] + 2 * r]  # fmt: skip
                diff2 = np.square(t - shifted).sum(0)
                d = _box_sum(diff2, r) * norm
                better = d < bd
                np.copyto(bd, d, where=better)
                bo[better] = j
        k = min(self.n_neighbours, n_lib)
        if k < n_lib:
            sel = np.argpartition(best_d, k - 1, axis=0)[:k]
            d_sel = np.take_along_axis(best_d, sel, 0)
            o_sel = np.take_along_axis(best_o, sel, 0)
        else:
            sel = np.broadcast_to(np.arange(n_lib).reshape(-1, 1, 1, 1), best_d.shape)
            d_sel, o_sel = best_d, best_o
        w = np.exp(-d_sel / (d_sel.min(0) + _EPS)).astype(np.float32)
        # flat index (in the stacked, cropped library targets) of each match's centre
        lib_t = _crop_edge(lib_y, lo - margin, hi + margin)
        step = np.array([lib_t.shape[2] * lib_t.shape[3], lib_t.shape[3], 1], dtype=np.int64)
        grid = sum(
            (np.arange(n, dtype=np.int64) + margin).reshape(
                [-1 if i == ax else 1 for i in range(3)]
            )
            * step[ax]
            for ax, n in enumerate(size)
        )
        base = sel * np.int64(lib_t[0].size) + grid + (offsets @ step)[o_sel]
        flat_t = lib_t.reshape(-1)
        num = np.zeros(tuple(size + 2 * r), dtype=np.float32)
        den = np.zeros_like(num)
        w_sum = w.sum(0)
        for a, b, c in C.patch_offsets(r):
            vals = (w * flat_t[base + (a * step[0] + b * step[1] + c)]).sum(0)
            region = (slice(r + a, r + a + size[0]), slice(r + b, r + b + size[1]),
                      slice(r + c, r + c + size[2]))  # fmt: skip
            num[region] += vals
            den[region] += w_sum
        # back to the volume: the box [lo + r, hi - r) is the mask's box, at 2r inside num
        out = np.zeros(x.shape[1:], dtype=np.float32)
        box = tuple(slice(int(a) + r, int(b) - r) for a, b in zip(lo, hi, strict=True))
        inner = tuple(slice(2 * r, 2 * r + int(n) - 2 * r) for n in size)
        out[box] = num[inner] / den[inner]
        out[~m] = 0.0
        return out

    def state(self) -> dict[str, Any]:
        """The library as tensors and the parameters; ``torch.load(..., weights_only=True)``."""
        self.n_channels  # noqa: B018 (raises if not fitted)
        params = {k: v for k, v in asdict(self).items() if not k.startswith("_")}
        return {"kind": KIND, "version": C.STATE_VERSION, "params": params,
                "inputs": C.to_tensor(self._fitted["inputs"]),
                "targets": C.to_tensor(self._fitted["targets"])}  # fmt: skip

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ModalityPropagation:
        """Rebuild from ``state()``; raises ``ValueError`` on a foreign or inconsistent state."""
        state = C.check_state(state, KIND)
        new = cls(**state["params"])
        xs = C.to_numpy(state["inputs"], "inputs").astype(np.float32)
        ys = C.to_numpy(state["targets"], "targets").astype(np.float32)
        if xs.ndim != 5 or ys.shape != (xs.shape[0], *xs.shape[2:]):
            raise ValueError(f"modality_propagation state: library shapes {xs.shape}, {ys.shape}")
        new._fitted.update(inputs=xs, targets=ys)
        return new
