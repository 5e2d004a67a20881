"""ESIT: tissue maps x regional attention from the MNI spatial encoding, trained with L1.

References: "Demystifying T1-MRI to FDG-PET translation ... and the ESIT model"
(papers/000): inputs GM, WM, CSF and the 3-channel coordinate encoding; L1, AdamW.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from neurotrans.methods.base import ModelIO, build_net
from neurotrans.methods.supervised import SupervisedConfig, SupervisedMethod, initialise

ESIT_INPUTS = ("GM", "WM", "CSF", "coords")
COORD_CHANNELS = 3


@dataclass(frozen=True)
class ESITConfig(SupervisedConfig):
    """``model`` section of ``method: esit``: the supervised config with the ESIT network.

    Args:
        generator: the ESIT network key (``esit``).
        generator_args: its keyword arguments (``n_regions``, ``features``, ``tissue_features``).
        loss: reconstruction loss (L1 in the paper).
        init: weight initialisation (``None`` = PyTorch's).
    """

    method: ClassVar[str] = "esit"
    generator: str = "esit"

    def check_data(self, data: Any) -> None:
        check_esit_inputs(data.inputs)
        if data.context:
            raise ValueError("ESIT splits tissue and coordinate channels: set data.context=0")


class ESITMethod(SupervisedMethod):
    """Supervised regression whose network is an ESIT model.

    The input channels are the tissue maps followed by the 3 coordinate channels (the
    config's ``data.inputs`` must end with ``coords``); the network splits them.
    """

    Config = ESITConfig
    summary: ClassVar[str] = ("tissue maps x regional attention from MNI coordinates -> PET, L1 "
                              "(ESIT, papers/000)")

    @classmethod
    def from_config(cls, config: ESITConfig, io: ModelIO) -> ESITMethod:
        check_esit_inputs(io.inputs)
        net = build_net(config.generator, config.generator_args, where="model.generator_args",
                        spatial_dims=io.spatial_dims, tissue_channels=io.in_channels - COORD_CHANNELS,
                        coord_channels=COORD_CHANNELS)
        return cls(initialise(net, config.init), loss=config.loss)


def check_esit_inputs(inputs: tuple[str, ...] | list[str]) -> None:
    """ESIT needs tissue maps then the ``coords`` pseudo-input, last."""
    inputs = list(inputs)
    if not inputs or inputs[-1] != "coords" or len(inputs) < 2:
        raise ValueError(f"ESIT needs data.inputs = [tissue maps..., coords] (e.g. {list(ESIT_INPUTS)}), "
                         f"got {inputs}")
