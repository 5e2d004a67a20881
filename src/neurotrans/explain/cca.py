"""CCA representational similarity: how well a layer's activations encode a concept map.

The similarity of a layer to a concept is the first canonical correlation between the
layer's activations ``L`` (N voxels x c channels) and the concept ``K`` (N x k; k = 1 for a
tissue map, an image or a region mask): the largest correlation between a linear
combination of the channels and a linear combination of the concept's columns. For a
one-dimensional concept it is the multiple correlation R of the least-squares regression
of the concept on the channels (with intercept), so it is invariant to any affine map of
the concept and to any invertible linear map of the channels.

Computation (float64): both matrices are centred and whitened by a thin SVD (directions whose
singular value is below ``rtol * s_max`` are dropped, so dead or duplicated channels do not
break it); the canonical correlations are the singular values of ``Ux^T Uy``. An optional
ridge ``regularization`` adds ``regularization * mean channel variance`` to the activation
covariance (for nearly collinear activations); the reported similarity is then the actual
Pearson correlation of the two canonical projections. The sample canonical correlation is
biased upwards by about ``c / N``: keep N well above c (the drivers subsample each subject's
voxels deterministically, :func:`subsample_mask`).

References: the ESIT paper ("Demystifying T1-MRI to FDG-PET translation", Sec. 3, Eq. 1, Fig. 3);
Hotelling 1936; Raghu et al. 2017 (SVCCA); Bjorck & Golub 1973 (CCA via orthogonal bases).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

ArrayMap = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class _Whitened:
    """Centred Z = U S V^T; basis = U S / sqrt(S^2 + lam) (= U without ridge)."""

    mean: np.ndarray
    basis: np.ndarray  # (N, r)
    to_weights: np.ndarray  # (c, r): Zc @ to_weights = basis

    @property
    def rank(self) -> int:
        return int(self.basis.shape[1])


def _as_matrix(z: np.ndarray, what: str) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    if z.ndim == 1:
        z = z[:, None]
    if z.ndim != 2:
        raise ValueError(f"{what} must be (N,) or (N, k), got shape {z.shape}")
    if not np.isfinite(z).all():
        raise ValueError(f"{what} holds NaN or infinite values")
    return z


def _whiten(z: np.ndarray, regularization: float, rtol: float) -> _Whitened:
    mean = z.mean(axis=0)
    zc = z - mean
    u, s, vt = np.linalg.svd(zc, full_matrices=False)
    keep = s > rtol * s[0] if s.size and s[0] > 0 else np.zeros(s.shape, dtype=bool)
    u, s, v = u[:, keep], s[keep], vt[keep].T
    lam = regularization * float((s**2).sum()) / max(z.shape[1], 1)
    shrink = s / np.sqrt(s**2 + lam)
    return _Whitened(mean, u * shrink, v / np.sqrt(s**2 + lam))


@dataclass(frozen=True)
class CCAResult:
    """Canonical correlations and weights of ``X`` (N x c) against ``Y`` (N x k).

    Args:
        correlations: ``(K,)`` canonical correlations, descending (K = min of the ranks).
        x_weights: ``(c, K)``: ``u_k = (X - x_mean) @ x_weights[:, k]`` has unit variance.
        y_weights: ``(k, K)``: same for ``v_k`` from ``Y``; signed so that the largest-magnitude
            entry of each column is positive (u_k then rises with the concept).
        x_mean: ``(c,)`` column means of X.
        y_mean: ``(k,)`` column means of Y.
        rank_x: numerical rank of centred X kept in the computation.
        rank_y: same for Y.
        n_samples: N.
    """

    correlations: np.ndarray
    x_weights: np.ndarray
    y_weights: np.ndarray
    x_mean: np.ndarray
    y_mean: np.ndarray
    rank_x: int
    rank_y: int
    n_samples: int

    @property
    def similarity(self) -> float:
        """The first canonical correlation (the CCA similarity)."""
        return float(self.correlations[0])

    def transform_x(self, x: np.ndarray) -> np.ndarray:
        """Canonical components ``(N', K)`` of activations ``x`` ``(N', c)`` (any voxels)."""
        return (_as_matrix(x, "x") - self.x_mean) @ self.x_weights

    def transform_y(self, y: np.ndarray) -> np.ndarray:
        """Canonical components ``(N', K)`` of concept rows ``y`` ``(N', k)``."""
        return (_as_matrix(y, "y") - self.y_mean) @ self.y_weights


def cca(
    x: np.ndarray,
    y: np.ndarray,
    *,
    n_components: int | None = None,
    regularization: float = 0.0,
    rtol: float = 1e-10,
) -> CCAResult:
    """Canonical correlation analysis of ``x`` against ``y``.

    Args:
        x: ``(N, c)`` activations (N voxels, c channels).
        y: ``(N,)`` or ``(N, k)`` concept.
        n_components: keep this many pairs (default all, min of the two ranks).
        regularization: ridge on the activation covariance, as a fraction of the mean
            channel variance (0 = plain CCA).
        rtol: singular values below ``rtol * s_max`` are treated as zero (rank deficiency).

    Returns:
        a :class:`CCAResult`.

    Raises:
        ValueError: mismatched rows, NaNs, fewer than 3 rows, or a constant ``x`` or ``y``.
    """
    x, y = _as_matrix(x, "activations"), _as_matrix(y, "concept")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"activations have {x.shape[0]} rows, the concept {y.shape[0]}")
    if x.shape[0] < 3:
        raise ValueError(f"CCA needs at least 3 samples, got {x.shape[0]}")
    if regularization < 0:
        raise ValueError(f"regularization must be >= 0, got {regularization}")
    wx, wy = _whiten(x, regularization, rtol), _whiten(y, 0.0, rtol)
    if wx.rank == 0 or wy.rank == 0:
        raise ValueError(f"{'activations' if wx.rank == 0 else 'concept'} are constant over the samples")
    return _cca(wx, wy, x.shape[0], n_components)


def _cca(wx: _Whitened, wy: _Whitened, n: int, n_components: int | None) -> CCAResult:
    p, _, qt = np.linalg.svd(wx.basis.T @ wy.basis, full_matrices=False)
    k = min(wx.rank, wy.rank) if n_components is None else min(int(n_components), wx.rank, wy.rank)
    a, b = wx.to_weights @ p[:, :k], wy.to_weights @ qt[:k].T
    u, v = wx.basis @ p[:, :k], wy.basis @ qt[:k].T
    su, sv = u.std(axis=0, ddof=1), v.std(axis=0, ddof=1)
    sign = np.sign(b[np.abs(b).argmax(axis=0), np.arange(k)])
    sign[sign == 0] = 1.0
    a, b, u, v = a * sign / su, b * sign / sv, u * sign / su, v * sign / sv
    # the actual correlation of the projections (equals the singular value without ridge)
    rho = np.clip((u * v).sum(axis=0) / (n - 1), -1.0, 1.0)
    order = np.argsort(-rho, kind="stable")
    return CCAResult(rho[order], a[:, order], b[:, order], wx.mean, wy.mean, wx.rank, wy.rank, n)


def cca_similarity(x: np.ndarray, y: np.ndarray, *, regularization: float = 0.0) -> float:
    """The first canonical correlation of ``x`` ``(N, c)`` and ``y`` ``(N,)``/``(N, k)``."""
    return cca(x, y, n_components=1, regularization=regularization).similarity


def multiple_correlation(x: np.ndarray, y: np.ndarray) -> float:
    """R of the least-squares fit of ``y`` ``(N,)`` on ``x`` ``(N, c)`` with an intercept.

    The closed form CCA reduces to for a one-dimensional concept: ``sqrt(1 - SS_res / SS_tot)``.
    """
    x, y = _as_matrix(x, "x"), np.asarray(y, dtype=np.float64).ravel()
    design = np.column_stack([np.ones(len(y)), x])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    tot = float(((y - y.mean()) ** 2).sum())
    return float(np.sqrt(max(0.0, 1.0 - float(resid @ resid) / tot)))


def subsample_mask(mask: np.ndarray, max_voxels: int | None, seed: int = 0) -> np.ndarray:
    """A deterministic random subset of at most ``max_voxels`` voxels of ``mask``.

    The same ``mask``, ``max_voxels`` and ``seed`` always give the same voxels (numpy's
    PCG64 generator seeded with ``seed``, drawing without replacement); ``None`` or a count
    >= the mask size returns a copy of the mask.
    """
    mask = np.asarray(mask, dtype=bool)
    idx = np.flatnonzero(mask)
    if max_voxels is None or len(idx) <= int(max_voxels):
        return mask.copy()
    if int(max_voxels) < 1:
        raise ValueError(f"max_voxels must be positive, got {max_voxels}")
    chosen = np.random.default_rng(seed).choice(idx, size=int(max_voxels), replace=False)
    out = np.zeros(mask.size, dtype=bool)
    out[chosen] = True
    return out.reshape(mask.shape)


def _stack(parts: ArrayMap | Sequence[ArrayMap], what: str) -> dict[str, np.ndarray]:
    """One mapping, or one per subject concatenated along the voxel axis."""
    if isinstance(parts, Mapping):
        parts = [parts]
    parts = list(parts)
    if not parts:
        raise ValueError(f"no {what} given")
    keys = list(parts[0])
    for p in parts[1:]:
        if list(p) != keys:
            raise ValueError(f"every subject needs the same {what} ({keys}), got {list(p)}")
    return {k: np.concatenate([_as_matrix(p[k], f"{what} {k}") for p in parts], axis=0) for k in keys}


def layer_similarity(
    activations: ArrayMap | Sequence[ArrayMap],
    concepts: ArrayMap | Sequence[ArrayMap],
    *,
    regularization: float = 0.0,
    rtol: float = 1e-10,
) -> pd.DataFrame:
    """CCA similarity of every layer with every concept, as a tidy table.

    Args:
        activations: ``{layer: (N, c)}`` (e.g. from
            :func:`neurotrans.explain.activations.activation_matrices`), or one such mapping per
            subject: subjects are concatenated along the voxel axis, as in the paper.
        concepts: ``{concept: (N,) or (N, k)}`` on the same voxels, or one mapping per subject.
        regularization: ridge on the activation covariance (see :func:`cca`).
        rtol: rank tolerance (see :func:`cca`).

    Returns:
        columns ``layer, concept, similarity, n_voxels, n_channels, rank``; a concept that is
        constant over the voxels (a region the voxels miss) gets similarity NaN.
    """
    acts, cons = _stack(activations, "activations"), _stack(concepts, "concepts")
    n = {v.shape[0] for v in (*acts.values(), *cons.values())}
    if len(n) != 1:
        raise ValueError(f"activations and concepts must cover the same voxels; row counts {sorted(n)}")
    whitened = {k: _whiten(v, 0.0, rtol) for k, v in cons.items()}
    rows = []
    for layer, x in acts.items():
        wx = _whiten(x, regularization, rtol)
        for concept, wy in whitened.items():
            ok = wx.rank > 0 and wy.rank > 0
            sim = _cca(wx, wy, x.shape[0], 1).similarity if ok else float("nan")
            rows.append({"layer": layer, "concept": concept, "similarity": sim,
                         "n_voxels": int(x.shape[0]), "n_channels": int(x.shape[1]), "rank": wx.rank})
    return pd.DataFrame(rows)


def summarise_similarity(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Mean and SD of the similarity per layer and concept across tables (e.g. CV folds).

    Returns:
        columns ``layer, concept, mean, sd, n`` in the layers' and concepts' first-seen order
        (SD with ddof=1; NaN for a single table).
    """
    if not tables:
        raise ValueError("no similarity table given")
    table = pd.concat(list(tables), ignore_index=True)
    layers = list(dict.fromkeys(table["layer"]))
    concepts = list(dict.fromkeys(table["concept"]))
    out = (table.groupby(["layer", "concept"], sort=False)["similarity"]
           .agg(mean="mean", sd="std", n="count").reset_index())
    out["layer"] = pd.Categorical(out["layer"], layers, ordered=True)
    out["concept"] = pd.Categorical(out["concept"], concepts, ordered=True)
    out = out.sort_values(["layer", "concept"]).reset_index(drop=True)
    out["layer"], out["concept"] = out["layer"].astype(str), out["concept"].astype(str)
    return out


def component_image(result: CCAResult, activations: np.ndarray, mask: np.ndarray,
                    component: int = 0) -> np.ndarray:
    """A canonical component as an image: the activations projected on its weights.

    Args:
        result: a CCA of one layer against one concept.
        activations: ``(N, c)`` activations at the voxels of ``mask`` (all of them, not a subsample).
        mask: ``(X, Y, Z)`` bool, the voxels the rows belong to (C order).
        component: which canonical pair (0 = the leading one).

    Returns:
        float32 ``(X, Y, Z)``: the component (unit variance over the fitting voxels) in the
        mask, 0 outside.
    """
    mask = np.asarray(mask, dtype=bool)
    if activations.shape[0] != int(mask.sum()):
        raise ValueError(f"{activations.shape[0]} activation rows for {int(mask.sum())} mask voxels")
    if not 0 <= component < result.x_weights.shape[1]:
        raise ValueError(f"component {component} out of range (0..{result.x_weights.shape[1] - 1})")
    out = np.zeros(mask.shape, dtype=np.float32)
    out[mask] = result.transform_x(activations)[:, component]
    return out
