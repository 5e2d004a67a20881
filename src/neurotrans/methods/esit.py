"""ESIT: tissue maps x regional attention from the MNI spatial encoding, trained with L1.

References: "Demystifying T1-MRI to FDG-PET translation ... and the ESIT model"
(papers/000): inputs GM, WM, CSF and the 3-channel coordinate encoding; L1, AdamW.
"""

from __future__ import annotations

from torch import nn

from neurotrans.methods.supervised import SupervisedMethod

ESIT_INPUTS = ("GM", "WM", "CSF", "coords")


class ESITMethod(SupervisedMethod):
    """Supervised regression whose network is an ESIT model.

    The input channels are the tissue maps followed by the 3 coordinate channels (the
    config's ``data.inputs`` must end with ``coords``); the network splits them.

    Args:
        net: an ESIT network, (B, tissue + 3, H, W) -> (B, 1, H, W).
        loss: reconstruction loss (L1 in the paper).
    """

    def __init__(self, net: nn.Module, loss: str = "l1") -> None:
        super().__init__(net, loss=loss)


def check_esit_inputs(inputs: tuple[str, ...] | list[str]) -> None:
    """ESIT needs tissue maps then the ``coords`` pseudo-input, last."""
    inputs = list(inputs)
    if not inputs or inputs[-1] != "coords" or len(inputs) < 2:
        raise ValueError(f"ESIT needs data.inputs = [tissue maps..., coords] (e.g. {list(ESIT_INPUTS)}), "
                         f"got {inputs}")
