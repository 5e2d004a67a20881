"""Voxel-wise multilayer perceptron: the input intensities of one voxel -> the target voxel."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurotrans.baselines import _common as C

KIND = "voxel_mlp"


@dataclass(frozen=True, kw_only=True)
class VoxelMLPBaseline:
    """MLP with ReLU hidden layers (2 x 100 in the thesis) on the C intensities of a voxel.

    Fitted with scikit-learn's ``MLPRegressor`` (Adam, squared error, early stopping on
    10 % of the sampled voxels) on standardised inputs and target; the fitted weights are
    kept as plain arrays, so a saved model is tensors only and prediction is a numpy
    forward pass. scikit-learn rather than torch: the model is tiny, the data a matrix of
    voxels, and its solver, early stopping and seeding are standard and tested.
    Training voxels are sampled inside the masks as for the random forest (``n_samples``
    in all: about five samples per weight of the 2 x 100 MLP, whose ~10^4 weights see
    only C intensities per voxel).

    Args:
        hidden: hidden layer widths ((100, 100) in the thesis).
        n_samples: training voxels drawn inside the masks over all subjects.
        max_iter: maximum epochs.
        alpha: L2 penalty.
        learning_rate: Adam's initial step.

    References: Wei 2020 PhD thesis ch. 2.2.3 (voxel-wise MLP, 2 hidden layers of 100,
    mean squared error).
    """

    hidden: tuple[int, ...] = (100, 100)
    n_samples: int = 50_000
    max_iter: int = 200
    alpha: float = 1e-4
    learning_rate: float = 1e-3
    _fitted: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(self.hidden))
        if not self.hidden:
            raise ValueError("hidden needs at least one width")
        for h in self.hidden:
            C.check_positive_int(h, "every hidden width")
        C.check_positive_int(self.n_samples, "n_samples")
        C.check_positive_int(self.max_iter, "max_iter")
        if not float(self.alpha) >= 0.0:
            raise ValueError(f"alpha must be >= 0, got {self.alpha!r}")
        if not float(self.learning_rate) > 0.0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}")

    @property
    def n_channels(self) -> int:
        """Input channels seen by ``fit``; raises ``RuntimeError`` before it."""
        if not self._fitted:
            raise RuntimeError("VoxelMLPBaseline is not fitted; call fit() first")
        return int(self._fitted["x_mean"].size)

    def fit(
        self,
        inputs: Sequence[np.ndarray],
        targets: Sequence[np.ndarray],
        masks: Sequence[np.ndarray] | None = None,
        seed: int = 0,
    ) -> VoxelMLPBaseline:
        """Fit on training subjects (``inputs`` per subject ``(C, X, Y, Z)``, ``targets``
        ``(X, Y, Z)``, ``masks`` bool ``(X, Y, Z)`` or ``None``); ``seed`` seeds sampling,
        initialisation and shuffling. Returns self."""
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPRegressor

        xs, ys, ms = C.check_cohort(inputs, targets, masks, same_grid=False)
        rng = np.random.default_rng(seed)
        picks = C.sample_voxels(ms, self.n_samples, rng)
        feats = np.concatenate(
            [x.reshape(x.shape[0], -1)[:, idx].T for x, idx in zip(xs, picks, strict=True)]
        ).astype(np.float64)
        y = np.concatenate([t.reshape(-1)[idx] for t, idx in zip(ys, picks, strict=True)])
        x_mean, x_std = feats.mean(0), feats.std(0) + 1e-8
        y_mean, y_std = float(y.mean()), float(y.std() + 1e-8)
        mlp = MLPRegressor(
            hidden_layer_sizes=self.hidden, activation="relu", solver="adam",
            alpha=float(self.alpha), learning_rate_init=float(self.learning_rate),
            max_iter=self.max_iter, early_stopping=True, validation_fraction=0.1,
            random_state=int(rng.integers(2**31 - 1)),
        )  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            mlp.fit((feats - x_mean) / x_std, (y - y_mean) / y_std)
        self._fitted.clear()
        self._fitted.update(
            weights=[w.astype(np.float32) for w in mlp.coefs_],
            biases=[b.astype(np.float32) for b in mlp.intercepts_],
            x_mean=x_mean.astype(np.float32), x_std=x_std.astype(np.float32),
            y_mean=y_mean, y_std=y_std,
        )  # fmt: skip
        return self

    def predict(
        self, inputs: np.ndarray, mask: np.ndarray | None = None, *, chunk: int = 500_000
    ) -> np.ndarray:
        """Predict the target volume: ``inputs`` ``(C, X, Y, Z)``, ``mask`` bool ``(X, Y, Z)``
        or ``None``; returns float32 ``(X, Y, Z)``, 0 outside the mask."""
        x = C.check_input(inputs, mask, n_channels=self.n_channels)
        idx = np.flatnonzero(C.as_mask(mask, x.shape[1:], "input"))
        f = self._fitted
        flat = x.reshape(x.shape[0], -1)
        out = np.empty(idx.size, dtype=np.float32)
        for s in range(0, idx.size, chunk):
            h = (flat[:, idx[s : s + chunk]].T - f["x_mean"]) / f["x_std"]
            for i, (w, b) in enumerate(zip(f["weights"], f["biases"], strict=True)):
                h = h @ w + b
                if i < len(f["weights"]) - 1:
                    np.maximum(h, 0.0, out=h)
            out[s : s + chunk] = h[:, 0] * f["y_std"] + f["y_mean"]
        return C.fill_volume(x.shape[1:], idx, out)

    def state(self) -> dict[str, Any]:
        """Plain values and tensors; loadable by ``torch.load(..., weights_only=True)``."""
        self.n_channels  # noqa: B018 (raises if not fitted)
        f = self._fitted
        params = C.hyper_parameters(self)
        return {
            "kind": KIND, "version": C.STATE_VERSION, "params": params,
            "weights": [C.to_tensor(w) for w in f["weights"]],
            "biases": [C.to_tensor(b) for b in f["biases"]],
            "x_mean": C.to_tensor(f["x_mean"]), "x_std": C.to_tensor(f["x_std"]),
            "y_mean": f["y_mean"], "y_std": f["y_std"],
        }  # fmt: skip

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> VoxelMLPBaseline:
        """Rebuild a fitted MLP from ``state()``; raises ``ValueError`` on a foreign or
        inconsistent state."""
        state = C.check_state(state, KIND)
        new = cls(**state["params"])
        weights = [C.to_numpy(w, "weights") for w in state["weights"]]
        biases = [C.to_numpy(b, "biases") for b in state["biases"]]
        widths = [w.shape for w in weights]
        if len(weights) != len(new.hidden) + 1 or [s[1] for s in widths[:-1]] != list(new.hidden):
            raise ValueError(f"voxel_mlp state: weight shapes {widths} do not match {new.hidden}")
        new._fitted.update(
            weights=weights, biases=biases, x_mean=C.to_numpy(state["x_mean"], "x_mean"),
            x_std=C.to_numpy(state["x_std"], "x_std"), y_mean=float(state["y_mean"]),
            y_std=float(state["y_std"]),
        )  # fmt: skip
        return new
