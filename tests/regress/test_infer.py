"""The regressor's fast inference path against its reference: BatchNorm folded into the
convolutions against the plain network, region-of-interest crops against whole-image crops."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from face3d.crop import shrink
from face3d.regress.infer import LandmarkRegressor, ReferenceLandmarkRegressor, compiled_trunk
from face3d.regress.network import RegressorNet, normalise
from tests.regress.test_network import _tiny_net  # the sibling module (pytest puts this folder on sys.path)


def _net(seed: int = 0) -> RegressorNet:
    """:func:`test_regressor._tiny_net` with non-trivial BatchNorm statistics."""
    net = _tiny_net(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.3)
                m.running_var.uniform_(0.5, 2.0)
    return net.eval()


def test_fused_features_match_the_network():
    net = _net()
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        ref = net(x)
        fast = net.decode(net.fused_features()(x))
    for key in ("landmarks", "rotation", "logit", "expression"):
        assert torch.allclose(ref[key], fast[key], atol=1e-4), key
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.fused_features().modules())


@pytest.mark.parametrize("size", [16, 24, 32, 40])  # last feature maps 2, 3, 4, 5 pixels wide
def test_inference_trunk_matches_the_network(size):
    """The trunk's plain average pool has the adaptive 2 x 2 pool's windows on even and odd maps."""
    torch.manual_seed(0)
    net = _net()
    net = RegressorNet(
        replace(net.config, size=size),
        net.lm_template,
        net.lm_identity.reshape(-1, 68, 3),
        net.lm_expression.reshape(-1, 68, 3),
    )
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    net.eval()
    x = torch.randn(3, 3, size, size)
    with torch.no_grad():
        ref, fast = net(x), net.outputs(*net.inference_trunk()(x))
    for key in ("landmarks", "rotation", "logit", "expression", "upright"):
        assert torch.allclose(ref[key], fast[key], atol=1e-4), key


def test_compiled_trunk_matches_the_trunk_or_falls_back(monkeypatch):
    net = _net()
    trunk = net.inference_trunk()
    compiled = compiled_trunk(trunk, net.config.size)
    x = torch.randn(6, 3, net.config.size, net.config.size)  # traced at batch 1: any batch runs
    with torch.no_grad():
        for a, b in zip(trunk(x), compiled(x), strict=True):
            assert torch.allclose(a, b, atol=1e-4)
    if torch.backends.mkldnn.is_available():
        assert isinstance(compiled, torch.jit.ScriptModule)
    assert compiled_trunk(trunk.to("meta"), net.config.size) is trunk  # weights off the CPU: as is

    def broken(*args, **kwargs):
        raise RuntimeError("no TorchScript here")

    monkeypatch.setattr(torch.jit, "trace", broken)
    eager = net.inference_trunk()
    assert compiled_trunk(eager, net.config.size) is eager


def test_decoded_trunk_gives_the_network_outputs_compiled_or_not():
    """One graph from crops to the decoded outputs (rotation, landmarks with the convention offset)."""
    from face3d.regress.infer import _RUN_KEYS, DecodedTrunk

    net = _net()
    with torch.no_grad():
        net.lm_offset.normal_(0, 0.5)
    x = torch.randn(4, 3, net.config.size, net.config.size)
    decoded = DecodedTrunk(net)
    with torch.no_grad():
        ref = net(x)
        for module in (decoded, compiled_trunk(decoded, net.config.size)):
            out = module(x)
            assert len(out) == len(_RUN_KEYS)
            for key, value in zip(_RUN_KEYS, out, strict=True):
                assert value.shape == ref[key].shape and torch.allclose(value, ref[key], atol=1e-4), key


def test_predictions_follow_weight_changes_after_the_first_call():
    """The compiled trunk is rebuilt when the network's weights change in place."""
    image = np.random.default_rng(1).integers(0, 256, (60, 70, 3), dtype=np.uint8)
    net = _net()
    reg = LandmarkRegressor(net)
    before = reg.predict(image, (10, 10, 50, 50)).landmarks
    with torch.no_grad():
        net.features[0][0].weight.mul_(1.5)
        net.features[0][1].running_mean.add_(0.2)
    after = reg.predict(image, (10, 10, 50, 50))
    with torch.no_grad():
        net.head.bias[-1] += 3.0  # a head weight: the face confidence goes up
    assert reg.predict(image, (10, 10, 50, 50)).confidence > after.confidence + 0.05
    after = after.landmarks
    crop = normalise(torch.from_numpy(reg.crops(image, [(10, 10, 50, 50)])[0]))
    with torch.no_grad():
        want = net(crop)["landmarks"][0].double().numpy()
    A = reg.crops(image, [(10, 10, 50, 50)])[1][0]
    want = (want - A[:, 2]) / A[0, 0]
    assert not np.allclose(before, after, atol=1e-3)
    assert np.allclose(after, want, atol=1e-3)


@pytest.mark.parametrize("scales", [(1.0,), (0.9, 1.0, 1.1)])
def test_region_crops_match_whole_image_crops(scales):
    """Large images are area-shrunk only around the face: the crops are those of a whole-image
    shrink (to a grey level of float rounding), at the image border and outside it too."""
    import cv2

    rng = np.random.default_rng(2)
    small = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    image = cv2.resize(small, (800, 600), interpolation=cv2.INTER_CUBIC)
    boxes = [(300.0, 200.0, 420.0, 330.0), (-40.0, 450.0, 100.0, 640.0), (700.0, -30.0, 860.0, 120.0)]
    reg = LandmarkRegressor(_net(), scales=scales)
    fast, _ = reg.crops(image, boxes, scales)
    ref, _ = ReferenceLandmarkRegressor(reg.net).crops(image, boxes, scales)
    diff = np.abs(fast.astype(int) - ref.astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.01, (diff.mean(), diff.max())


@pytest.mark.parametrize("shape,k", [((450, 450, 3), 0.42257712), ((301, 517, 3), 0.31), ((64, 90, 3), 0.6)])
def test_shrink_region_is_the_part_of_the_whole_shrink(shape, k):
    from face3d.crop import shrink_region

    image = np.random.default_rng(3).integers(0, 256, shape, dtype=np.uint8)
    full, fx, fy = shrink(image, k)
    for xr, yr in (((100.0, 300.0), (50.0, 200.0)), ((-50.0, 30.0), (-20.0, 10.0)), ((0.0, 1e4), (0.0, 1e4))):
        part, px, py, a, c = shrink_region(image, k, xr, yr)
        assert (px, py) == (fx, fy)
        want = full[c : c + part.shape[0], a : a + part.shape[1]]
        assert part.shape == want.shape and np.abs(part.astype(int) - want.astype(int)).max() <= 1
        # it covers the requested columns / rows (+ 2 shrunk pixels) where the image has them
        assert a <= max(0, xr[0] * fx - 2) and a + part.shape[1] >= min(full.shape[1], xr[1] * fx + 2)
        assert c <= max(0, yr[0] * fy - 2) and c + part.shape[0] >= min(full.shape[0], yr[1] * fy + 2)


def test_fast_predictions_match_the_reference():
    import cv2

    rng = np.random.default_rng(4)
    image = cv2.resize(
        rng.integers(0, 256, (50, 60, 3), dtype=np.uint8), (600, 500), interpolation=cv2.INTER_CUBIC
    )
    boxes = [(200.0, 150.0, 330.0, 300.0), (20.0, 20.0, 60.0, 70.0)]  # shrunk, and not shrunk
    net = _net()
    for flip, scales in ((False, (1.0,)), (True, (0.9, 1.0, 1.1))):
        fast = LandmarkRegressor(net, flip=flip, scales=scales).predict_batch(image, boxes)
        ref = ReferenceLandmarkRegressor(net, flip=flip, scales=scales).predict_batch(image, boxes)
        for f, r in zip(fast, ref, strict=True):
            assert np.allclose(f.landmarks, r.landmarks, atol=1e-2)
            assert abs(f.yaw - r.yaw) < 1e-2 and abs(f.confidence - r.confidence) < 1e-4


def test_eager_trunk_option_gives_the_same_predictions():
    image = np.random.default_rng(5).integers(0, 256, (80, 90, 3), dtype=np.uint8)
    net = _net()
    fast = LandmarkRegressor(net, flip=True, scales=(0.9, 1.1)).predict(image, (10, 10, 60, 70))
    eager_reg = LandmarkRegressor(net, flip=True, scales=(0.9, 1.1), compile=False)
    eager = eager_reg.predict(image, (10, 10, 60, 70))
    assert not isinstance(eager_reg._trunk[3], torch.jit.ScriptModule)
    assert np.allclose(fast.landmarks, eager.landmarks, atol=1e-3) and abs(fast.yaw - eager.yaw) < 1e-3


def test_normalised_is_normalise_bit_for_bit():
    from face3d.regress.infer import normalised

    crops = np.random.default_rng(6).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    assert torch.equal(normalised(crops), normalise(torch.from_numpy(crops)))
    both = np.concatenate([crops, crops[:, :, ::-1]])
    x = normalised(crops, mirrored=True)
    assert x.is_contiguous() and torch.equal(x, normalise(torch.from_numpy(both)))


def test_inference_changes_no_process_wide_torch_setting(monkeypatch):
    """Threads are the entry point's to set (once): prediction, the upright search, the profile
    views and the detection fallback's scoring never call torch.set_num_threads."""
    from face3d.regress.proposals import coarse_logits
    from face3d.regress.views import PROFILE_VIEWS

    def forbidden(n):
        raise AssertionError(f"inference called torch.set_num_threads({n})")

    monkeypatch.setattr(torch, "set_num_threads", forbidden)
    before = torch.get_num_threads()
    views = {"profile_views": PROFILE_VIEWS, "profile_min_yaw": 0}
    reg = LandmarkRegressor(_net(), flip=True, scales=(0.9, 1.1), **views)
    image = np.random.default_rng(0).integers(0, 255, (80, 90, 3), dtype=np.uint8)
    assert len(reg.predict_batch(image, [(20, 20, 60, 60)])) == 1
    assert coarse_logits(reg, np.zeros((3, 32, 32, 3), np.uint8), batch_size=2).shape == (3,)
    assert torch.get_num_threads() == before
