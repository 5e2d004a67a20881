"""Training recipes that wrap networks and return losses; the explicit registry ``METHODS``.

Adding a method = one new file (its class with a ``Config`` dataclass and ``from_config``)
+ one line here + one packaged config in ``experiments/configs``.
"""

from __future__ import annotations

from neurotrans.methods.base import (
    ErrorSums,
    Method,
    MethodConfig,
    ModelIO,
    NLLSums,
    OptimGroup,
    masked_errors,
)
from neurotrans.methods.cascade import Cascade
from neurotrans.methods.cfsagan import CFSAGAN
from neurotrans.methods.cgan import ConditionalGAN
from neurotrans.methods.cnn2layer import CNN2LayerMethod
from neurotrans.methods.cyclegan import CycleGAN
from neurotrans.methods.dualglow import DualGlowMethod
from neurotrans.methods.esit import ESITMethod
from neurotrans.methods.fitted import FittedMethod
from neurotrans.methods.modality_propagation import ModalityPropagationMethod
from neurotrans.methods.pix2pix import Pix2Pix
from neurotrans.methods.random_forest import RandomForestMethod
from neurotrans.methods.supervised import SupervisedMethod
from neurotrans.methods.unit import UNITMethod
from neurotrans.methods.voxel_mlp import VoxelMLPMethod
from neurotrans.names import check_name

METHODS: dict[str, type[Method]] = {
    "supervised": SupervisedMethod,
    "pix2pix": Pix2Pix,
    "esit": ESITMethod,
    "unit": UNITMethod,
    "cyclegan": CycleGAN,
    "cgan": ConditionalGAN,
    "cascade": Cascade,
    "cfsagan": CFSAGAN,
    "cnn2layer": CNN2LayerMethod,
    "random_forest": RandomForestMethod,
    "voxel_mlp": VoxelMLPMethod,
    "modality_propagation": ModalityPropagationMethod,
    "dualglow": DualGlowMethod,
}

__all__ = ["METHODS", "CFSAGAN", "CNN2LayerMethod", "Cascade", "ConditionalGAN", "CycleGAN", "DualGlowMethod", "ESITMethod",
           "ErrorSums", "FittedMethod", "Method", "MethodConfig", "ModalityPropagationMethod", "ModelIO", "NLLSums",
           "OptimGroup", "Pix2Pix", "RandomForestMethod", "SupervisedMethod", "UNITMethod", "VoxelMLPMethod",
           "build_method", "masked_errors", "method_config_class"]


def method_class(name: str) -> type[Method]:
    """The method registered as ``name`` (``ValueError`` listing close matches otherwise)."""
    return METHODS[check_name(name, tuple(METHODS), "method")]


def method_config_class(name: str) -> type[MethodConfig]:
    """The config dataclass of method ``name`` (the ``model`` section's type)."""
    return method_class(name).Config


def build_method(config: MethodConfig, io: ModelIO) -> Method:
    """Build the method a ``model`` config describes, with networks shaped by ``io``."""
    cls = method_class(config.method)
    if not isinstance(config, cls.Config):
        raise TypeError(f"a {type(config).__name__} cannot build method {config.method!r}")
    return cls.from_config(config, io)
