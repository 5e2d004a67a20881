"""Atlas and reference-mask files read from the installed clinica wheel.

neurotrans needs only data files from clinica (AAL2, AICHA, pons and cerebellum+pons
masks), so clinica is installed with ``pip install --no-deps clinica==0.12.0`` and its
files are located through package metadata, without importing clinica (whose import
would need its ~100 dependencies).
"""

from __future__ import annotations

from functools import cache
from importlib import metadata
from pathlib import Path

from neurotrans.errors import InputError

CLINICA_FILES = {
    "AAL2": "clinica/resources/atlases/atlas-AAL2_dseg.nii.gz",
    "AAL2_labels": "clinica/resources/atlases/atlas-AAL2_dseg.tsv",
    "AICHA": "clinica/resources/atlases/atlas-AICHA_dseg.nii.gz",
    "AICHA_labels": "clinica/resources/atlases/atlas-AICHA_dseg.tsv",
    "pons": "clinica/resources/masks/region-pons_eroded-6mm_mask.nii.gz",
    "cerebellumPons": "clinica/resources/masks/region-cerebellumPons_eroded-6mm_mask.nii.gz",
}


@cache
def clinica_file(name: str) -> Path:
    """Path of one of clinica's shipped data files (see ``CLINICA_FILES``)."""
    from neurotrans.names import check_name

    check_name(name, tuple(CLINICA_FILES), "clinica resource")
    try:
        dist = metadata.distribution("clinica")
    except metadata.PackageNotFoundError:
        raise InputError(
            "clinica", "the clinica wheel (atlases and reference masks) is not installed",
            "run `pip install --no-deps clinica==0.12.0` (or `make setup`)",
        ) from None
    path = Path(str(dist.locate_file(CLINICA_FILES[name])))
    if not path.is_file():
        raise InputError(path, "file missing from the clinica installation",
                         "reinstall with `pip install --force-reinstall --no-deps clinica==0.12.0`")
    return path
