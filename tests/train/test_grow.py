"""Growing a regressor (wider, deeper) without changing its outputs: tiny networks, no files."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from face3d.regress.network import RegressorConfig, RegressorNet
from face3d.train import grow as regressor_grow
from face3d.train.grow import grow, grown_config, parameter_count

CFG = RegressorConfig(size=32, channels=(8, 8, 16, 16), strides=(1, 2, 1), hidden=16, n_identity=4)


def _trained_looking(seed: int = 0) -> RegressorNet:
    torch.manual_seed(seed)
    net = RegressorNet(CFG, torch.randn(68, 3), torch.randn(4, 68, 3), torch.randn(53, 68, 3) * 0.1)
    with torch.no_grad():  # non-zero heads, moved BatchNorm statistics, a landmark offset
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        for name, b in net.named_buffers():
            if name.endswith("running_mean"):
                b.normal_()
            elif name.endswith("running_var"):
                b.uniform_(0.5, 2.0)
        net.lm_offset.normal_()
    return net.eval()


def test_grown_config_widths_depth_and_where():
    cfg, where = grown_config(CFG, width=1.5, extra_after=(1, 2, 2))
    assert cfg.channels == (16, 16, 24, 24, 24, 24, 24)  # 8*1.5=12 -> 16 (multiple of 8), 16*1.5=24
    assert cfg.strides == (1, 2, 1, 1, 1, 1)
    assert where == [0, 1, 2, 4]  # the stem, then each old stage's new index
    assert cfg.hidden == 24 and cfg.size == CFG.size and cfg.n_identity == CFG.n_identity
    assert grown_config(CFG)[0] == CFG  # nothing asked: the same network
    assert grown_config(CFG, size=48)[0] == replace(CFG, size=48)
    with pytest.raises(ValueError, match="width must be >= 1"):
        grown_config(CFG, width=0.5)
    with pytest.raises(ValueError, match=r"stage indices are 0\.\.2, got \[3\]"):
        grown_config(CFG, extra_after=(3,))
    with pytest.raises(ValueError, match="hidden must be >= 16"):
        grown_config(CFG, hidden=8)
    with pytest.raises(ValueError, match="size must be >= 32"):
        grown_config(CFG, size=24)


def test_larger_input_keeps_every_weight_and_takes_the_larger_crops():
    net = _trained_looking()
    big = grow(net, 1.0, size=48)
    assert big.config.size == 48
    for (k, a), (_, b) in zip(net.state_dict().items(), big.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    out = big(torch.randn(2, 3, 48, 48))
    assert out["landmarks"].shape == (2, 68, 2)


def _max_rel_change(a: RegressorNet, b: RegressorNet, x: torch.Tensor) -> float:
    with torch.no_grad():
        oa, ob = a(x), b(x)
    return max(float((ob[k] - oa[k]).abs().max() / oa[k].abs().max().clamp_min(1e-6)) for k in oa)


@pytest.mark.parametrize("width,hidden", [(1.5, None), (2.0, 48), (3.0, 16)])
def test_widened_network_computes_the_same_outputs(width, hidden):
    net = _trained_looking()
    big = grow(net, width, hidden, seed=3)
    assert parameter_count(big) > parameter_count(net)
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        a, b = net(x), big(x)
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=2e-5, rtol=1e-5)
    assert torch.equal(big.lm_offset, net.lm_offset) and torch.equal(big.lm_identity, net.lm_identity)
    assert not big.training


@pytest.mark.parametrize("width,extra", [(1.0, (0, 2)), (1.5, (1, 1, 2))])
def test_inserted_blocks_move_the_outputs_by_about_their_scale(width, extra, monkeypatch):
    net, x = _trained_looking(), torch.randn(5, 3, 32, 32)
    change = _max_rel_change(net, grow(net, width, None, extra, seed=3), x)
    assert 0 < change < 20 * regressor_grow.INSERTED_SCALE
    monkeypatch.setattr(regressor_grow, "INSERTED_SCALE", regressor_grow.INSERTED_SCALE / 10)
    smaller = _max_rel_change(net, grow(net, width, None, extra, seed=3), x)
    assert 0 < smaller < change / 5  # the change is the inserted blocks', proportional to their scale


def test_new_weights_get_gradients_and_the_source_is_untouched():
    net = _trained_looking()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    big = grow(net, 2.0, 32, (1,), seed=0).train()
    out = big(torch.randn(4, 3, 32, 32))
    (out["landmarks"].square().mean() + out["logit"].square().mean()).backward()
    fc_in = CFG.channels[-1] * 4
    assert big.fc[0].weight.grad[: CFG.hidden, fc_in:].abs().sum() > 0  # reads of new channels
    assert big.head.weight.grad[:, CFG.hidden :].abs().sum() > 0  # reads of new hidden units
    inserted = big.features[3]  # after old stage 1 (the stem is layer 0)
    assert inserted.residual and inserted.pw[1].weight.grad.abs().sum() > 0  # identity blocks learn
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k])


def test_grow_seed_decides_the_new_weights_only():
    net = _trained_looking()
    a, b, c = grow(net, 2.0, seed=0), grow(net, 2.0, seed=0), grow(net, 2.0, seed=1)
    assert torch.equal(a.fc[0].weight, b.fc[0].weight)
    assert not torch.equal(a.fc[0].weight, c.fc[0].weight)
    torch.testing.assert_close(a.fc[0].weight[: CFG.hidden, : 16 * 4], c.fc[0].weight[: CFG.hidden, : 16 * 4])


@pytest.mark.integration
def test_widened_shipped_weights_predict_the_same_landmarks_on_the_fast_path():
    """The shipped network widened 2x (and its compiled inference trunk): the same landmarks on a
    real photo, to float rounding."""
    from face3d.regress.infer import LandmarkRegressor
    from face3d.regress.network import default_weights_dir

    if not (default_weights_dir() / "weights.pt").exists():
        pytest.skip("shipped regressor weights absent")
    from skimage import data

    net = RegressorNet.from_pretrained(default_weights_dir())
    big = grow(net, 2.0, 512)
    assert parameter_count(big) > 3 * parameter_count(net)
    image, box = data.astronaut(), (150.0, 40.0, 240.0, 150.0)
    a = LandmarkRegressor(net, flip=True).predict(image, box)
    b = LandmarkRegressor(big, flip=True).predict(image, box)
    assert np.abs(a.landmarks - b.landmarks).max() < 1e-2  # pixels
    assert abs(a.yaw - b.yaw) < 1e-2 and abs(a.confidence - b.confidence) < 1e-4
