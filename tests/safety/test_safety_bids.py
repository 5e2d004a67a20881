"""Standard outputs: `predict --bids` reads a BIDS dataset; predictions are a BIDS-derivatives
dataset whose sidecars point at their inputs with BIDS URIs; the bids-validator's findings
are only the ones documented in the README (when the validator is installed)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from safety_world import World, run_cli

from neurotrans.io.nifti import load_volume
from neurotrans.io.run import PredictionFolder

TOOLS = Path(__file__).resolve().parents[2] / ".tools" / "bids-validator"
DENO = TOOLS / "node_modules" / ".bin" / "deno"
VALIDATOR = TOOLS / "node_modules" / "bids-validator" / "dist" / "validator" / "bids-validator.js"
# BIDS-PET REQUIRED sidecar keys that describe an acquisition (injection, scanner, reconstruction,
# timing): a synthetic PET had none, and the validator (schema 0.11) still asks derivatives for them
PET_ACQUISITION_KEYS = {
    "AcquisitionMode", "AttenuationCorrection", "FrameDuration", "FrameTimesStart", "ImageDecayCorrected",
    "ImageDecayCorrectionTime", "InjectedMass", "InjectedMassUnits", "InjectedRadioactivity",
    "InjectedRadioactivityUnits", "InjectionStart", "Manufacturer", "ManufacturersModelName", "ModeOfAdministration",
    "ReconFilterSize", "ReconFilterType", "ReconMethodName", "ReconMethodParameterLabels", "ReconMethodParameterUnits",
    "ReconMethodParameterValues", "ScanStart", "SpecificRadioactivity", "SpecificRadioactivityUnits", "TimeZero",
}


def _bids_dataset(world: World, root: Path) -> Path:
    for i in range(6):
        anat = root / f"sub-{i:02d}" / "ses-1" / "anat"
        anat.mkdir(parents=True)
        shutil.copy(world.t1(i), anat / f"sub-{i:02d}_ses-1_T1w.nii.gz")
    (root / "dataset_description.json").write_text(json.dumps({"Name": "tiny", "BIDSVersion": "1.9.0"}))
    (root / "participants.tsv").write_text("participant_id\tage\n" + "".join(f"sub-{i:02d}\t{60 + i}\n"
                                                                           for i in range(6)))
    return root


@pytest.fixture(scope="module")
def predicted(world: World, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A BIDS dataset and the prediction folder `predict --bids` wrote from it."""
    root = tmp_path_factory.mktemp("bids")
    ds = _bids_dataset(world, root / "rawdata")
    out = root / "derivatives" / "neurotrans"
    code, err, _ = run_cli(["predict", "--checkpoint", str(world.checkpoint), "--bids", str(ds), "--out", str(out),
                            "--device", "cpu"])
    assert code == 0, err
    return ds, out


def test_predict_bids_equals_predict_manifest(world, predicted):
    _, out = predicted
    images = sorted(out.rglob("*_pet.nii.gz"))
    assert len(images) == len(list((world.run / "predictions").rglob("*_pet.nii.gz"))) > 0
    for path in images:  # the same subjects, names and voxels as from the cohort's manifest
        twin = world.run / "predictions" / path.relative_to(out)
        np.testing.assert_array_equal(load_volume(path).data, load_volume(twin).data)


def test_sidecars_point_at_their_inputs_with_bids_uris(predicted):
    ds, out = predicted
    desc = PredictionFolder(out).read_description()
    assert desc["DatasetType"] == "derivative" and desc["GeneratedBy"][0]["Name"] == "neurotrans"
    link = desc["DatasetLinks"]["inputs"]
    assert (out / link).resolve() == ds.resolve() and desc["SourceDatasets"] == [{"URL": link}]
    assert (out / "README").is_file()
    for image in sorted(out.rglob("*_pet.nii.gz")):
        sidecar = json.loads(PredictionFolder(out).sidecar(image).read_text())
        (source,) = sidecar["Sources"]
        name, rel = source.removeprefix("bids:").split(":", 1)
        subject = image.name.split("_")[0]
        assert name == "inputs" and (out / link / rel).resolve() == (ds / subject / "ses-1" / "anat" /
                                                                     f"{subject}_ses-1_T1w.nii.gz").resolve()
        assert sidecar["SpatialReference"] == source
        assert sidecar["TracerName"] == "FDG" and sidecar["TracerRadionuclide"] == "F18"
        assert sidecar["SkullStripped"] is True and "not a measured image" in sidecar["Description"]
        assert len(sidecar["neurotrans"]["checkpoint_sha256"]) == 64 and sidecar["neurotrans"]["simulated"] is False


@pytest.mark.skipif(not (DENO.is_file() and VALIDATOR.is_file()),
                    reason="bids-validator not installed: `make bids-validator` installs it (npm) under .tools/")
def test_bids_validator_finds_only_the_documented_issues(predicted):
    _, out = predicted
    env = {**os.environ, "DENO_DIR": str(TOOLS / ".deno"), "DENO_NO_UPDATE_CHECK": "1"}
    proc = subprocess.run([str(DENO), "run", "-A", str(VALIDATOR), "--json", str(out)], capture_output=True,
                          text=True, env=env, timeout=300)
    issues = json.loads(proc.stdout)["issues"]["issues"]
    errors = {(i["code"], i.get("subCode")) for i in issues if i["severity"] == "error"}
    # every error is a PET acquisition key of a synthetic image (README: "BIDS outputs")
    assert errors and {code for code, _ in errors} == {"SIDECAR_KEY_REQUIRED"}
    assert {key for _, key in errors} <= PET_ACQUISITION_KEYS
    warnings = {i["code"] for i in issues if i["severity"] == "warning"}
    assert warnings <= {"SIDECAR_KEY_RECOMMENDED", "JSON_KEY_RECOMMENDED", "NO_AUTHORS", "TOO_FEW_AUTHORS"}
    assert "README_FILE_MISSING" not in warnings and "NIFTI_UNIT" not in warnings
