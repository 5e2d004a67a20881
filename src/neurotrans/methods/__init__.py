"""Training recipes that wrap networks and return losses; the explicit registry ``METHODS``."""

from __future__ import annotations

from typing import Any

from torch import nn

from neurotrans.methods.base import Method, OptimGroup
from neurotrans.methods.esit import ESITMethod, check_esit_inputs
from neurotrans.methods.pix2pix import Pix2Pix
from neurotrans.methods.supervised import SupervisedMethod

METHODS: dict[str, type[Method]] = {"supervised": SupervisedMethod, "pix2pix": Pix2Pix, "esit": ESITMethod}

__all__ = ["METHODS", "Method", "OptimGroup", "SupervisedMethod", "Pix2Pix", "ESITMethod", "build_method"]


def _network(name: str, **kwargs: Any) -> nn.Module:
    from neurotrans.networks import build_network

    return build_network(name, **kwargs)


def build_method(model: Any, inputs: tuple[str, ...] | list[str], in_channels: int, *,
                 spatial_dims: int = 2) -> Method:
    """Build the method of a :class:`neurotrans.config.ModelConfig` and its networks.

    Args:
        model: the ``model`` section of the config.
        inputs: input names (ESIT checks for the ``coords`` pseudo-input).
        in_channels: channels of the network input (inputs x slices of 2.5D context).
        spatial_dims: 2 for slices, 3 for volumes or patches.
    """
    from neurotrans.names import check_name

    check_name(model.method, list(METHODS), "method")
    if model.method == "esit":
        check_esit_inputs(inputs)
        coord = 3  # the coords pseudo-input expands to x, y, z (no 2.5D context for ESIT)
        net = _network(model.generator, spatial_dims=spatial_dims, tissue_channels=in_channels - coord,
                       coord_channels=coord, **model.generator_args)
        return ESITMethod(net, loss=model.loss)
    gen = _network(model.generator, spatial_dims=spatial_dims, in_channels=in_channels, out_channels=1,
                   **model.generator_args)
    if model.method == "supervised":
        return SupervisedMethod(gen, loss=model.loss)
    disc = _network(model.discriminator, spatial_dims=spatial_dims, in_channels=in_channels + 1,
                    **model.discriminator_args)
    return Pix2Pix(gen, disc, lambda_rec=model.lambda_rec, loss=model.loss, d_steps=model.d_steps)
