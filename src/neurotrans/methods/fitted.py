"""Fitted methods: models estimated in one pass on whole training volumes, not by gradient steps.

The classical baselines (random forest, voxel-wise MLP, modality propagation) keep the
method contract where it makes sense and replace the gradient part of it:

- ``fit(subjects, seed)``: estimate the model from the prepared training subjects (each
  with ``inputs`` (C, X, Y, Z), ``target`` (1, X, Y, Z) and ``mask`` (X, Y, Z) or ``None``,
  normalised exactly as a network's training data);
- ``predict_volume(inputs, mask)``: one whole volume, (C, X, Y, Z) -> (X, Y, Z), 0 outside
  the mask; :func:`neurotrans.inference.predict.predict_subject` calls it instead of a
  slice or sliding-window loop;
- ``state_dict()`` / ``load_state_dict(state)``: the fitted model as plain values and
  tensors (the random forest's trees as skops bytes loaded against a list of trusted
  types), so the checkpoint written by :class:`neurotrans.training.fit.Fitter` loads with
  ``torch.load(weights_only=True)`` and never runs code; ``load_trained`` needs no branch.

``predict(x)`` (a batch tensor) and ``validation_step`` work too, so generic callers of a
method do not break; ``training_step`` refuses, since nothing is optimised.

References: DESIGN.md rule 12 (a method is one file); Wei 2020 PhD thesis ch. 2.2.3 (the
baselines of the FLAIR study).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from neurotrans.methods.base import Batch, Method, MethodConfig, ModelIO, OptimGroup


@dataclass(frozen=True)
class FittedConfig(MethodConfig):
    """Base of the ``model`` sections of fitted methods: they take whole 3D volumes.

    Their hyper-parameters are the fields of the baseline model they configure
    (``neurotrans.baselines``); ``optim`` and most of ``trainer`` do not apply (a fit has
    no steps; ``trainer.seed`` seeds it, ``trainer.out`` names the run folder).
    """

    def check_data(self, data: Any) -> None:
        name = self.method
        if data.spatial_dims != 3 or data.patch_size is not None:
            raise ValueError(f"method {name} is fitted on whole 3D volumes: set data.spatial_dims=3 and leave "
                             "data.patch_size out")
        if data.augment:
            raise ValueError(f"method {name} is fitted once on the training volumes: leave data.augment out")

    def hyper_parameters(self) -> dict[str, Any]:
        """The config's fields (the baseline model's keyword arguments)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def build_checked(model_class: type, config: FittedConfig) -> Any:
    """``model_class(**config fields)``, its ``ValueError`` named as a ``model.`` key."""
    try:
        return model_class(**config.hyper_parameters())
    except ValueError as err:
        raise ValueError(f"model ({config.method}): {err}") from None


class FittedMethod(Method):
    """Base of methods fitted on whole volumes (see the module docstring for the contract).

    Args:
        in_channels: input channels the data give (checked at fit and load time).
    """

    validation_metrics: ClassVar[tuple[str, ...]] = ("mae", "mse")

    def __init__(self, in_channels: int) -> None:
        super().__init__({})
        self.in_channels = int(in_channels)

    # ------------------------------------------------------------ the fitted contract
    def fit(self, subjects: Sequence[Any], seed: int = 0) -> FittedMethod:
        """Estimate the model from prepared training subjects; returns self."""
        raise NotImplementedError

    def predict_volume(self, inputs: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """One volume: ``inputs`` (C, X, Y, Z) normalised, ``mask`` bool (X, Y, Z) -> float32 (X, Y, Z)."""
        raise NotImplementedError

    def fitted_state(self) -> dict[str, Any]:
        """The fitted model as checkpoint-safe values (raises ``RuntimeError`` before ``fit``)."""
        raise NotImplementedError

    def load_fitted_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`fitted_state` (``ValueError`` on a foreign or tampered state)."""
        raise NotImplementedError

    # ------------------------------------------------------------ the method contract
    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        return {"fitted": self.fitted_state()}

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:  # type: ignore[override]
        """Restore a fitted state; ``RuntimeError`` (what torch raises for mismatched weights) if refused."""
        if not isinstance(state_dict, dict) or not isinstance(state_dict.get("fitted"), dict):
            raise RuntimeError(f"not a fitted {type(self).__name__} state (no 'fitted' entry)")
        try:
            self.load_fitted_state(state_dict["fitted"])
        except ValueError as err:
            raise RuntimeError(f"the fitted {type(self).__name__} state is refused: {err}") from None
        return None

    def optimiser_groups(self) -> dict[str, OptimGroup]:
        return {}

    def schedule(self, step: int = 0) -> list[str]:
        return []

    def training_step(self, batch: Batch, group: str) -> dict[str, Tensor]:
        raise TypeError(f"{type(self).__name__} is fitted (neurotrans.training.fit.Fitter), "
                        "not trained by gradient steps")

    @torch.no_grad()
    def predict(self, x: Tensor, covariates: Tensor | None = None) -> Tensor:
        """A batch of whole volumes (B, C, X, Y, Z) -> (B, 1, X, Y, Z), every voxel predicted."""
        if x.dim() != 5:
            raise ValueError(f"{type(self).__name__} predicts 3D volumes (B, C, X, Y, Z), got {tuple(x.shape)}")
        out = [self.predict_volume(v.detach().float().cpu().numpy(), None) for v in x]
        return torch.from_numpy(np.stack(out)[:, None]).to(x.device)


class BaselineMethod(FittedMethod):
    """A fitted method wrapping one model of :mod:`neurotrans.baselines`.

    Subclasses set ``Config`` (a :class:`FittedConfig` whose fields are the model's
    keyword arguments) and ``model_class``.

    Args:
        model: an unfitted baseline model.
        in_channels: input channels the data give.
    """

    model_class: ClassVar[type]
    Config = FittedConfig

    def __init__(self, model: Any, in_channels: int) -> None:
        super().__init__(in_channels)
        self.model = model

    @classmethod
    def from_config(cls, config: FittedConfig, io: ModelIO) -> BaselineMethod:
        if io.spatial_dims != 3:
            raise ValueError(f"method {config.method} needs 3D volumes (data.spatial_dims=3)")
        return cls(build_checked(cls.model_class, config), io.in_channels)

    def fit(self, subjects: Sequence[Any], seed: int = 0) -> BaselineMethod:
        subjects = list(subjects)
        if not subjects:
            raise ValueError("fit needs at least one training subject")
        for s in subjects:
            if s.target is None:
                raise ValueError(f"{s.key}: a training subject needs its target image")
            if s.inputs.shape[0] != self.in_channels:
                raise ValueError(f"{s.key}: {s.inputs.shape[0]} input channels, the method was built for "
                                 f"{self.in_channels}")
        masks = None if any(s.mask is None for s in subjects) else [s.mask for s in subjects]
        self.model.fit([s.inputs for s in subjects], [s.target[0] for s in subjects], masks, seed=seed)
        return self

    def predict_volume(self, inputs: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        return self.model.predict(inputs, mask)

    def fitted_state(self) -> dict[str, Any]:
        try:
            return self.model.state()
        except RuntimeError as err:
            raise RuntimeError(f"{type(self).__name__}: {err}") from None

    def load_fitted_state(self, state: dict[str, Any]) -> None:
        model = self.model_class.from_state(state)
        if model.n_channels != self.in_channels:
            raise ValueError(f"the state was fitted on {model.n_channels} input channels, the config gives "
                             f"{self.in_channels}")
        self.model = model


__all__ = ["BaselineMethod", "FittedConfig", "FittedMethod", "build_checked"]
