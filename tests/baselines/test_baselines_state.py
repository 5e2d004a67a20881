"""Fitted baselines survive a save/load round trip, and loading never runs code from the file."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from payload import MARKER, Payload

from neurotrans.baselines import (
    BASELINES,
    RandomForestBaseline,
    baseline_from_state,
    load_baseline,
    save_baseline,
)

SMALL = {
    "random_forest": dict(n_trees=3, n_samples=800),
    "voxel_mlp": dict(n_samples=800, hidden=(8, 8), max_iter=20),
    "modality_propagation": dict(search_radius=1, max_library=2),
}

@pytest.fixture(autouse=True)
def _clear_marker():
    MARKER.clear()
    yield
    MARKER.clear()


@pytest.fixture(scope="module")
def models(cohort):
    train = {k: v[:3] for k, v in cohort.items()}
    return {n: BASELINES[n](**SMALL[n]).fit(**train, seed=0) for n in BASELINES}


def _plain(value) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, str | int | float | bool | bytes | torch.Tensor)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_round_trip_predicts_the_same(cohort, models, name, tmp_path):
    model = models[name]
    state = model.state()
    assert state["kind"] == name and _plain(state)
    path = save_baseline(model, tmp_path / f"{name}.pt")
    raw = torch.load(path, weights_only=True)  # the file is weights-only loadable as such
    assert raw["kind"] == name
    loaded = load_baseline(path)
    assert type(loaded) is type(model) and loaded == model  # same hyper-parameters
    x, m = cohort["inputs"][7], cohort["masks"][7]
    np.testing.assert_array_equal(loaded.predict(x, m), model.predict(x, m))


def test_a_pickle_payload_in_the_file_is_refused_without_running(models, tmp_path):
    state = models["voxel_mlp"].state()
    state["x_mean"] = Payload()
    path = tmp_path / "tampered.pt"
    torch.save(state, path)
    with pytest.raises(ValueError, match="tampered.pt"):
        load_baseline(path)
    assert MARKER == []
    # the very same file would run the payload under a plain unpickler
    with open(path, "rb") as f:
        torch.load(io.BytesIO(f.read()), weights_only=False)
    assert MARKER == ["pickle"]


def test_an_untrusted_type_in_the_forest_bytes_is_refused_without_running(models):
    import skops.io as sio

    state = models["random_forest"].state()
    state["model"] = sio.dumps({"forest": models["random_forest"]._fitted["model"],
                                "extra": Payload()})  # fmt: skip
    with pytest.raises(ValueError, match="untrusted types.*Payload"):
        RandomForestBaseline.from_state(state)
    assert MARKER == []


def test_the_forest_bytes_hold_no_type_outside_the_trusted_list(models):
    import skops.io as sio

    from neurotrans.baselines.random_forest import TRUSTED_TYPES

    blob = models["random_forest"].state()["model"]
    assert set(sio.get_untrusted_types(data=blob)) <= set(TRUSTED_TYPES)
    assert blob[:2] == b"PK"  # a zip archive of JSON and arrays, not a pickle stream


@pytest.mark.parametrize(
    "state",
    [
        None,
        {"kind": "random_forrest", "version": 1, "params": {}},
        {"kind": "voxel_mlp", "version": 99, "params": {}},
        {"kind": "modality_propagation", "version": 1, "params": {}, "inputs": [1.0],
         "targets": [1.0]},
    ],
)  # fmt: skip
def test_foreign_states_raise_value_error(state):
    with pytest.raises(ValueError):
        baseline_from_state(state)


def test_unfitted_models_have_no_state():
    for cls in BASELINES.values():
        with pytest.raises(RuntimeError, match="not fitted"):
            cls().state()
