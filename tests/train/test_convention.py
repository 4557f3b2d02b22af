"""Landmark-convention calibration: the shared model-space offset is recovered from labelled
faces rendered with a known one (tiny synthetic network, no data files)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from face3d.camera import euler_to_pose_matrix
from face3d.regress.network import MIRROR_68, RegressorConfig, RegressorNet
from face3d.train.convention import calibrate_offset, symmetrise_offset

TINY = RegressorConfig(size=32, channels=(8, 8, 16), strides=(2, 2), hidden=16, n_identity=4)
FLIP_X = torch.tensor([-1.0, 1.0, 1.0])


def _symmetric(points: torch.Tensor) -> torch.Tensor:
    """(68, 3) made mirror-symmetric (x negated between iBUG partners)."""
    return 0.5 * (points + points[list(MIRROR_68)] * FLIP_X)


def _net() -> RegressorNet:
    g = torch.Generator().manual_seed(0)
    template = _symmetric(torch.randn(68, 3, generator=g) * torch.tensor([5.0, 6.0, 3.0]))
    ident = torch.randn(4, 68, 3, generator=g) * 0.1
    expr = torch.randn(53, 68, 3, generator=g) * 0.01  # small: the offset is what the fit must find
    return RegressorNet(TINY, template, ident, expr).eval()


def test_symmetrise_is_a_projection_that_commutes_with_the_mirror():
    off = torch.randn(68, 3, generator=torch.Generator().manual_seed(1))
    sym = symmetrise_offset(off)
    assert torch.allclose(symmetrise_offset(sym), sym)
    assert torch.allclose(sym[list(MIRROR_68)] * FLIP_X, sym)  # the mirror of a symmetric offset is itself
    mirrored = off[list(MIRROR_68)] * FLIP_X
    assert torch.allclose(symmetrise_offset(mirrored), sym)


def test_calibration_recovers_a_known_offset_from_posed_faces():
    net = _net()
    g = torch.Generator().manual_seed(2)
    truth = _symmetric(torch.randn(68, 3, generator=g) * 1.5)
    n = 48
    yaw = torch.linspace(-75, 75, n)
    pitch = torch.rand(n, generator=g) * 30 - 15
    R = euler_to_pose_matrix(*(torch.deg2rad(a) for a in (yaw, pitch, torch.zeros(n))))
    R = R * torch.tensor([1.0, -1.0, -1.0])[:, None]  # model (y up, z out) -> image axes (y down)
    scale = 1.5 + torch.rand(n, generator=g)
    centre = 16 + torch.randn(n, 2, generator=g)
    with torch.no_grad():
        net.lm_offset.copy_(truth)
        labels = net.landmarks(R, centre, scale, torch.zeros(n, 4), torch.zeros(n, 53))
        net.lm_offset.zero_()
    crops = np.random.default_rng(3).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    found = calibrate_offset(net, crops, labels.numpy(), iterations=1500, lr=0.05)
    assert found.shape == (68, 3)
    assert torch.equal(net.lm_offset, torch.zeros(68, 3))  # the network is left as it was
    err = (found - truth).norm(dim=-1)
    assert float(err.median()) < 0.1 * float(truth.norm(dim=-1).median()), err
    with pytest.raises(ValueError, match="68, 2"):
        calibrate_offset(net, crops, labels.numpy()[:, :5])


def test_offset_moves_landmarks_but_not_model_landmarks():
    net = _net()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before = net(x)
        net.lm_offset.copy_(torch.tensor([1.0, 0.0, 0.0]).expand(68, 3))
        after = net(x)
    assert torch.equal(before["landmarks"], before["model_landmarks"])
    assert torch.allclose(after["model_landmarks"], before["model_landmarks"])
    shift = after["landmarks"] - after["model_landmarks"]  # scale * (R @ (1, 0, 0))[:2], same for all points
    expect = after["scale"][:, None] * after["rotation"][:, :2, 0]
    assert torch.allclose(shift, expect[:, None].expand_as(shift), atol=1e-5)
    assert math.isfinite(float(shift.abs().max())) and float(shift.abs().max()) > 0
