"""Checkpoints load with weights_only=True and restore RNG states exactly."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from neurotrans.errors import InputError
from neurotrans.training.checkpoint import (
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)


def test_round_trip_weights_only(tmp_path):
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), betas=(0.5, 0.999))
    net(torch.randn(4, 3)).sum().backward()
    opt.step()
    payload = {"meta": {"inputs": ["T1w"], "grid": None, "stats": [{"kind": "zscore", "mean": 1.5}]},
               "method_state": net.state_dict(), "optimisers": {"main": opt.state_dict()}, "rng": rng_state()}
    path = save_checkpoint(tmp_path / "c.pt", payload)
    # what torch itself accepts with weights_only=True (no pickled classes)
    raw = torch.load(path, weights_only=True)
    ckpt = load_checkpoint(path)
    assert raw.keys() == ckpt.keys()
    assert ckpt["meta"] == payload["meta"]
    for k, v in net.state_dict().items():
        assert torch.equal(ckpt["method_state"][k], v)
    opt2 = torch.optim.Adam(torch.nn.Linear(3, 2).parameters())
    opt2.load_state_dict(ckpt["optimisers"]["main"])
    assert opt2.param_groups[0]["betas"] == (0.5, 0.999)


def test_rng_states_restore(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    save_checkpoint(tmp_path / "r.pt", {"rng": rng_state()})
    expected = (random.random(), np.random.rand(), torch.rand(1).item(), np.random.randn())
    set_rng_state(load_checkpoint(tmp_path / "r.pt")["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item(), np.random.randn()) == expected


def test_bad_checkpoints(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="readable"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"a": 1}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="format"):
        load_checkpoint(tmp_path / "other.pt")
