"""face3d.train.aflw: the AFLW fine-tune's loss terms."""

from __future__ import annotations

import pytest
import torch

from face3d.regress.network import RegressorConfig, RegressorNet
from face3d.train.aflw import aflw_losses
from tests.eval.test_aflw_crops import S


def test_aflw_loss_is_zero_at_the_labels_and_differentiable():
    torch.manual_seed(0)
    cfg = RegressorConfig(size=S, channels=(8, 8), strides=(2,), hidden=8, n_identity=4)
    net = RegressorNet(cfg, torch.randn(68, 3), torch.randn(4, 68, 3), torch.randn(53, 68, 3))
    out = net(torch.randn(3, 3, S, S))
    from face3d.camera import euler_degrees

    batch = {
        "landmarks": out["landmarks"].detach().clone(),
        "yaw": euler_degrees(out["rotation"].detach())[:, 0] + torch.tensor([0.0, 0.0, 360.0]),
        "yaw_valid": torch.tensor([True, True, False]),
    }
    terms = aflw_losses(out, batch, S)
    assert float(terms["landmarks"].detach()) == pytest.approx(0.0, abs=1e-6)
    assert float(terms["yaw"].detach()) == pytest.approx(0.0, abs=1e-4)
    batch["landmarks"] = batch["landmarks"] + 2.0
    terms = aflw_losses(out, batch, S)
    assert float(terms["landmarks"].detach()) == pytest.approx(2.0 / S, rel=1e-5)
    sum(terms.values()).backward()
    assert net.head.weight.grad is not None and net.head.weight.grad.abs().sum() > 0
