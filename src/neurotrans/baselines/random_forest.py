"""Random-forest regression on concatenated 3x3x3 patches of every input channel (Jog et al.)."""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurotrans.baselines import _common as C

KIND = "random_forest"
# the only type of a fitted RandomForestRegressor that skops does not trust by default
TRUSTED_TYPES = ("sklearn.tree._tree.Tree",)


@dataclass(frozen=True, kw_only=True)
class RandomForestBaseline:
    """Random forest mapping the 3x3x3 neighbourhood of every input channel to the target voxel.

    Each voxel's feature vector is the concatenation of its ``(2r+1)^3`` patches of the C
    input channels (27 * C features for r = 1, patches repeating the edge at the border);
    the forest predicts the target intensity at the centre voxel.

    Training voxels are sampled uniformly inside the brain masks, ``n_samples`` in all,
    spread evenly over the subjects: neighbouring voxels are nearly duplicate samples, so
    the error levels off far below the 10^6-10^7 brain voxels of a cohort, while fitting
    time grows as n log n and the stored model (about 2 n / min_samples_leaf nodes per
    tree) linearly. On the simulated ms cohort (3 mm, 11 training subjects, 5 sequences ->
    FLAIR, z-scored) the held-out MAE was 0.467 / 0.459 / 0.455 / 0.455 for 5k / 20k /
    50k / 100k voxels (fits of 18 / 101 / 361 / 880 s on 2 busy cores): 50,000 is where
    it stops improving; the model is then about 22 MB (``benchmarks/baselines.py``).
    ``max_features=1/3`` and ``min_samples_leaf=5`` are the regression defaults of
    Breiman and Cutler's randomForest (mtry = p/3, nodesize = 5); the thesis states only
    the 60 trees and the 3x3x3 patches.

    Args:
        n_trees: trees in the forest (60 in the thesis).
        patch_radius: r; patches are (2r+1)^3 (1: 3x3x3).
        n_samples: training voxels drawn inside the masks over all subjects.
        max_features: fraction of the features tried at each split.
        min_samples_leaf: smallest leaf.
        n_jobs: worker threads for fitting and prediction (does not change the result).

    References: Jog et al. 2014, "Random forest FLAIR reconstruction from T1, T2, and
    PD-weighted MRI" (ISBI); Wei 2020 PhD thesis ch. 2.2.3 (RF with 60 trees, 3x3x3).
    """

    n_trees: int = 60
    patch_radius: int = 1
    n_samples: int = 50_000
    max_features: float = 1 / 3
    min_samples_leaf: int = 5
    n_jobs: int = 1
    _fitted: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        C.check_positive_int(self.n_trees, "n_trees")
        C.check_nonnegative_int(self.patch_radius, "patch_radius")
        C.check_positive_int(self.n_samples, "n_samples")
        C.check_positive_int(self.min_samples_leaf, "min_samples_leaf")
        C.check_positive_int(self.n_jobs, "n_jobs")
        if not 0.0 < float(self.max_features) <= 1.0:
            raise ValueError(f"max_features must be in (0, 1], got {self.max_features!r}")

    @property
    def n_channels(self) -> int:
        """Input channels seen by ``fit``; raises ``RuntimeError`` before it."""
        if not self._fitted:
            raise RuntimeError("RandomForestBaseline is not fitted; call fit() first")
        return int(self._fitted["n_channels"])

    def fit(
        self,
        inputs: Sequence[np.ndarray],
        targets: Sequence[np.ndarray],
        masks: Sequence[np.ndarray] | None = None,
        seed: int = 0,
    ) -> RandomForestBaseline:
        """Fit on training subjects.

        Args:
            inputs: per subject ``(C, X, Y, Z)``.
            targets: per subject ``(X, Y, Z)``.
            masks: per subject bool ``(X, Y, Z)`` brain masks, or ``None`` (every voxel).
            seed: seeds the voxel sampling and the forest.

        Returns:
            self.
        """
        from sklearn.ensemble import RandomForestRegressor

        xs, ys, ms = C.check_cohort(inputs, targets, masks, same_grid=False)
        rng = np.random.default_rng(seed)
        picks = C.sample_voxels(ms, self.n_samples, rng)
        feats = np.concatenate(
            [C.patch_features(x, idx, self.patch_radius) for x, idx in zip(xs, picks, strict=True)]
        )
        y = np.concatenate([t.reshape(-1)[idx] for t, idx in zip(ys, picks, strict=True)])
        forest = RandomForestRegressor(
            n_estimators=self.n_trees, max_features=float(self.max_features),
            min_samples_leaf=self.min_samples_leaf, n_jobs=self.n_jobs,
            random_state=int(rng.integers(2**31 - 1)),
        )  # fmt: skip
        forest.fit(feats, y)
        self._fitted.clear()
        self._fitted.update(model=forest, n_channels=xs[0].shape[0])
        return self

    def predict(
        self, inputs: np.ndarray, mask: np.ndarray | None = None, *, chunk: int = 100_000
    ) -> np.ndarray:
        """Predict the target volume.

        Args:
            inputs: ``(C, X, Y, Z)``, normalised like the training inputs.
            mask: bool ``(X, Y, Z)``; ``None`` predicts every voxel.
            chunk: voxels per batch (bounds the feature matrix to chunk * 27 * C floats).

        Returns:
            float32 ``(X, Y, Z)``, 0 outside the mask.
        """
        x = C.check_input(inputs, mask, n_channels=self.n_channels)
        idx = np.flatnonzero(C.as_mask(mask, x.shape[1:], "input"))
        model = self._fitted["model"]
        model.set_params(n_jobs=self.n_jobs)
        out = np.empty(idx.size, dtype=np.float32)
        for s in range(0, idx.size, chunk):
            out[s : s + chunk] = model.predict(
                C.patch_features(x, idx[s : s + chunk], self.patch_radius)
            )
        return C.fill_volume(x.shape[1:], idx, out)

    def state(self) -> dict[str, Any]:
        """Everything to predict again: plain values and the forest as skops bytes.

        Loadable by ``torch.load(..., weights_only=True)`` once saved with ``torch.save``.
        """
        import skops.io as sio

        self.n_channels  # noqa: B018 (raises if not fitted)
        blob = sio.dumps(self._fitted["model"], compression=zipfile.ZIP_DEFLATED)
        params = C.hyper_parameters(self)
        return {"kind": KIND, "version": C.STATE_VERSION, "params": params,
                "n_channels": self.n_channels, "model": blob}  # fmt: skip

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RandomForestBaseline:
        """Rebuild a fitted forest from ``state()``.

        The skops bytes are loaded with an explicit list of trusted types; any other type
        in them (a tampered file) is refused before anything is built.

        Raises:
            ValueError: not a random-forest state, or untrusted types inside.
        """
        import skops.io as sio
        from sklearn.ensemble import RandomForestRegressor

        state = C.check_state(state, KIND)
        blob = state.get("model")
        if not isinstance(blob, bytes):
            raise ValueError("random_forest state: 'model' must be skops bytes")
        untrusted = set(sio.get_untrusted_types(data=blob)) - set(TRUSTED_TYPES)
        if untrusted:
            raise ValueError(
                f"random_forest state holds untrusted types {sorted(untrusted)}; refusing to load"
            )
        model = sio.loads(blob, trusted=list(TRUSTED_TYPES))
        if type(model) is not RandomForestRegressor:
            raise ValueError(f"random_forest state holds a {type(model).__name__}, not a forest")
        new = cls(**state["params"])
        new._fitted.update(model=model, n_channels=int(state["n_channels"]))
        return new
