"""The cycle cache: shards round trip through the index, settings are checked, skips recorded."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from editing.train.cycle_data import (
    CYCLE_VERSION,
    CycleDataConfig,
    CycleSample,
    _stack,
    load_cycle_cache,
)
from editing.train.gan_cache import ShardWriter, check_or_write_config
from face3d.errors import Face3DError, InputError

S, K = 16, 5


def _sample(i: int) -> CycleSample:
    rng = np.random.default_rng(i)
    img = lambda: rng.integers(0, 256, (S, S, 3), dtype=np.uint8)  # noqa: E731
    mask = lambda: rng.integers(0, 256, (S, S), dtype=np.uint8)  # noqa: E731
    return CycleSample(
        photo=img(), cycle=img(), synth=mask(), mouth=mask(),
        y=rng.random(K).astype(np.float32), yaw=float(i), box=np.arange(4, dtype=np.float32),
        name=f"p{i}.jpg",
    )  # fmt: skip


def _payload(config: CycleDataConfig) -> dict:
    return {"version": CYCLE_VERSION, "data": dataclasses.asdict(config), "expression_names": list("abcde")}


def test_samples_round_trip_through_the_shards(tmp_path):
    config = CycleDataConfig(size=S, shard_size=2)
    check_or_write_config(tmp_path, _payload(config), ("shard_size",))
    with pytest.raises(InputError, match="no shards yet"):
        load_cycle_cache(tmp_path)
    writer = ShardWriter(tmp_path, config.shard_size, [], _stack)
    samples = [_sample(i) for i in range(5)]
    for s in samples:
        writer.add(s)
    writer.log({"name": "closed.jpg", "status": "skipped", "reason": "mouth closed"})
    writer.close()
    cache = load_cycle_cache(tmp_path)
    assert len(cache) == 5 and cache.names == tuple(s.name for s in samples)
    assert cache.expression_names == tuple("abcde") and cache.config == config
    for k in ("photo", "cycle", "synth", "mouth", "y", "box"):
        np.testing.assert_array_equal(getattr(cache, k), np.stack([getattr(s, k) for s in samples]))
    np.testing.assert_array_equal(cache.yaw, np.arange(5, dtype=np.float32))
    (tmp_path / "shard_00001.npz").unlink()
    with pytest.raises(Face3DError, match="listed in index.jsonl but missing"):
        load_cycle_cache(tmp_path)


def test_settings_that_change_samples_are_refused(tmp_path):
    check_or_write_config(tmp_path, _payload(CycleDataConfig(size=S)), ("shard_size",))
    check_or_write_config(
        tmp_path, _payload(CycleDataConfig(size=S, shard_size=7)), ("shard_size",)
    )  # free to change
    assert json.loads((tmp_path / "config.json").read_text())["data"]["shard_size"] == 7
    with pytest.raises(InputError, match="other settings"):
        check_or_write_config(tmp_path, _payload(CycleDataConfig(size=S, via="happy")), ("shard_size",))
    with pytest.raises(InputError, match="not a cycle cache"):
        load_cycle_cache(tmp_path / "none")
    with pytest.raises(InputError, match="invalid cycle cache settings"):
        CycleDataConfig(size=2)
