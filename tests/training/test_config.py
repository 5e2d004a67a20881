"""Config loading: YAML, packaged names, dotted overrides, unknown keys, round trip."""

from __future__ import annotations

import pytest
import yaml

from neurotrans.config import Config, config_from_dict, dump_config, load_config, packaged_configs
from neurotrans.errors import InputError


def test_overrides_are_typed_and_nested(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"model": {"method": "pix2pix"}, "optim": {"lr": 1e-3}}))
    cfg = load_config(path, ["trainer.max_steps=7", "optim.betas=[0.9, 0.99]", "data.voxel_size=null",
                             "data.normalisation.T1w=zscore", "data.inputs=[GM, WM, CSF, coords]", "optim.lr=1"])
    assert cfg.model.method == "pix2pix"
    assert cfg.trainer.max_steps == 7
    assert cfg.optim.betas == (0.9, 0.99)
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert cfg.data.voxel_size is None
    assert cfg.data.normalisation == {"T1w": "zscore"}
    assert cfg.data.inputs == ("GM", "WM", "CSF", "coords")


@pytest.mark.parametrize("values, match", [
    ({"trainer": {"max_step": 3}}, "max_steps"),
    ({"optimiser": {}}, "optim"),
    ({"data": {"batch_size": "many"}}, "integer"),
    ({"trainer": {"amp": 1}}, "true or false"),
])
def test_bad_keys_and_values_raise_with_hints(values, match):
    with pytest.raises(ValueError, match=match):
        config_from_dict(values)


def test_bad_override_syntax():
    with pytest.raises(ValueError, match="key=value"):
        load_config({}, ["trainer.max_steps"])
    with pytest.raises(ValueError, match="max_steps"):
        load_config({}, ["trainer.max_stepz=3"])


def test_round_trip_through_yaml(tmp_path):
    cfg = load_config({"data": {"inputs": ["T1w", "T2w"], "normalisation": {"T1w": "zscore"}}},
                      ["trainer.seed=3", "model.generator_args.base=8"])
    path = tmp_path / "saved.yaml"
    path.write_text(dump_config(cfg))
    assert load_config(path) == cfg
    assert config_from_dict(cfg.to_dict()) == cfg
    assert Config() == config_from_dict({})


def test_packaged_configs_load_by_name():
    names = packaged_configs()
    for required in ("unet_t1_fdg", "unet_tissue_fdg", "pix2pix_axial_fdg", "pix2pix_3plane_fdg", "esit_fdg",
                     "t1_to_t2", "t1t2_to_flair"):
        assert required in names
    for name in names:
        assert isinstance(load_config(name), Config)
    assert load_config("pix2pix_3plane_fdg").data.plane == "all"
    with pytest.raises(InputError, match="pix2pix_axial_fdg"):
        load_config("pix2pix_axial_fgd")
