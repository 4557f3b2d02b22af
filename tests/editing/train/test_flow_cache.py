"""The flow cache: cropping the 3D warp's motion to the aligned crop, and the shard round trip."""

from __future__ import annotations

import numpy as np
import pytest

from editing.train.flow_cache import (
    FlowDataConfig,
    FlowSample,
    _stack,
    crop_motion,
    load_flow_cache,
)
from editing.train.gan_cache import ShardWriter, check_or_write_config
from face3d.errors import InputError

K = 53


def test_crop_motion_is_in_normalised_units_of_the_box():
    """d image pixels in a box of side s become 2 d / s; outside the work crop the motion is zero."""
    motion = np.zeros((60, 80, 2), np.float32)
    motion[..., 0], motion[..., 1] = 3.0, -1.5
    crop = (20, 30, 100, 90)  # x0, y0, x1, y1 in a 120 x 200 image
    box = (40.0, 40.0, 80.0, 80.0)  # side 40, inside the work crop
    flow = crop_motion(motion, crop, (120, 200), box, 16)
    assert flow.shape == (16, 16, 2)
    assert np.allclose(flow[..., 0], 2 * 3.0 / 40) and np.allclose(flow[..., 1], 2 * -1.5 / 40)
    far = crop_motion(motion, crop, (120, 200), (150.0, 0.0, 190.0, 40.0), 16)
    assert np.abs(far).max() == 0


def _sample(i: int, cfg: FlowDataConfig) -> FlowSample:
    rng = np.random.default_rng(i)
    S, Fs, T = cfg.size, cfg.flow_size, cfg.targets_per_image
    return FlowSample(
        photo=rng.integers(0, 256, (S, S, 3), dtype=np.uint8),
        y_src=rng.random(K).astype(np.float32),
        y_tgt=rng.random((T, K)).astype(np.float32),
        flow=rng.normal(0, 0.05, (T, Fs, Fs, 2)).astype(np.float16),
        mask=rng.integers(0, 256, (S, S), dtype=np.uint8),
        yaw=float(i),
        box=np.array([0, 0, 10, 10], np.float32),
        name=f"p{i}.jpg",
    )


def test_cache_round_trip_and_resume_numbering(tmp_path):
    cfg = FlowDataConfig(size=16, flow_size=8, targets_per_image=2, shard_size=3)
    check_or_write_config(tmp_path, {"version": 1, "data": cfg.__dict__, "expression_names": ["a"]})
    samples = [_sample(i, cfg) for i in range(5)]
    w = ShardWriter(tmp_path, cfg.shard_size, [], _stack)
    for s in samples[:4]:
        w.add(s)
    w.failed("bad.jpg", "no face found")
    w.close()
    from editing.train.gan_data import read_index

    w = ShardWriter(tmp_path, cfg.shard_size, read_index(tmp_path), _stack)  # a resumed build
    w.add(samples[4])
    w.close()
    c = load_flow_cache(tmp_path)
    assert len(c) == 5 and c.names == tuple(s.name for s in samples)
    assert c.config == cfg
    for i, s in enumerate(samples):
        assert np.array_equal(c.photo[i], s.photo) and np.array_equal(c.flow[i], s.flow)
        assert np.array_equal(c.y_tgt[i], s.y_tgt) and c.yaw[i] == s.yaw
    assert c.flow.dtype == np.float16 and c.mask.shape == (5, 16, 16)


def test_cache_built_with_other_settings_is_refused(tmp_path):
    cfg = FlowDataConfig()
    payload = {"version": 1, "data": cfg.__dict__, "expression_names": ["a"]}
    check_or_write_config(tmp_path, payload)
    check_or_write_config(tmp_path, {**payload, "data": {**cfg.__dict__, "shard_size": 7}})  # free
    with pytest.raises(InputError):
        check_or_write_config(tmp_path, {**payload, "data": {**cfg.__dict__, "flow_size": 32}})
    with pytest.raises(InputError):
        load_flow_cache(tmp_path)  # no shards yet
