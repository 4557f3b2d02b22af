"""DefGAN training cache: target draws (unit) and a small real build (integration)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from editing.expressions import ARKIT_NAMES, load_presets
from editing.train.gan_cache import build_cache, sample_targets
from editing.train.gan_data import DataConfig, load_cache
from face3d.errors import InputError


def test_targets_are_deterministic_per_name_and_in_range():
    presets = load_presets()
    cfg = DataConfig(targets_per_image=40, seed=3)
    a = sample_targets("x/a.jpg", cfg, ARKIT_NAMES, presets)
    assert [s.weights for s in a] == [s.weights for s in sample_targets("x/a.jpg", cfg, ARKIT_NAMES, presets)]
    assert [s.weights for s in a] != [s.weights for s in sample_targets("x/b.jpg", cfg, ARKIT_NAMES, presets)]
    n_preset = 0
    for s in a:
        if s.label in presets:
            n_preset += 1
            assert 0.5 <= s.intensity <= 1.0 and s.mode == "replace"
        else:
            assert 2 <= len(s.weights) <= 4 and s.intensity == 1.0
            assert all(0.2 <= v <= 1.0 for v in s.weights.values())
    assert 8 < n_preset < 32  # about half presets


def test_load_cache_errors(tmp_path):
    with pytest.raises(InputError, match="not a GAN cache"):
        load_cache(tmp_path)


# ------------------------------------------------------------------ integration
TEX = (64, 128)


@pytest.fixture(scope="module")
def ctx():
    from editing.api import EditContext
    from editing.edit3d import EditConfig
    from face3d.errors import ModelNotFoundError

    try:
        return EditContext.from_dir(config=EditConfig(texture_size=TEX))
    except ModelNotFoundError as err:
        pytest.skip(str(err))


@pytest.mark.integration
def test_build_resume_and_load(ctx, tmp_path):
    import cv2
    import torch
    from skimage.data import astronaut

    from face3d.io import write_image

    torch.set_num_threads(1)
    image = np.ascontiguousarray(astronaut()[:320, 96:416])  # the face at full size, less background
    data = tmp_path / "photos"
    write_image(data / "astronaut.png", image)
    (data / "bad.jpg").write_bytes(b"not an image at all")
    cfg = DataConfig(targets_per_image=1, shard_size=1, texture_size=TEX, seed=1)
    cache = tmp_path / "cache"

    first = build_cache([str(data)], cache, cfg, ctx, progress=False)
    assert first.samples == 1 and len(first.failures) == 1 and "bad.jpg" in first.failures[0][0]
    records = [json.loads(line) for line in (cache / "index.jsonl").read_text().splitlines()]
    assert {r["name"]: r["status"] for r in records} == {"astronaut.png": "ok", "bad.jpg": "failed"}

    write_image(data / "sub" / "flipped.png", np.ascontiguousarray(image[:, ::-1]))  # resume: only this one
    second = build_cache([str(data)], cache, cfg, ctx, progress=False)
    assert second.skipped == 2 and second.samples == 1 and second.total_samples == 2
    assert not second.failures

    c = load_cache(cache)
    S, K = cfg.size, len(ARKIT_NAMES)
    assert c.names == ("astronaut.png", "sub/flipped.png")
    assert c.photo.shape == (2, S, S, 3) and c.photo.dtype == np.uint8
    assert c.render_src.shape == (2, S, S, 3) and c.render_src.dtype == np.uint8
    assert c.render_tgt.shape == (2, 1, S, S, 3) and c.render_tgt.dtype == np.uint8
    assert c.mask.shape == (2, S, S) and c.mask.dtype == np.uint8 and c.mask.max() == 255
    assert c.y_src.shape == (2, K) and c.y_tgt.shape == (2, 1, K) and c.y_src.dtype == np.float32
    assert c.yaw.shape == (2,) and c.box.shape == (2, 4) and c.landmarks.shape == (2, 68, 2)
    assert np.all((c.y_tgt >= 0) & (c.y_tgt <= 1))
    assert abs(c.yaw[0] + c.yaw[1]) < 8  # a mirrored photo has the opposite yaw
    assert (c.landmarks > 0).all() and (c.landmarks < S).all()

    inside = c.mask > 128
    assert inside.mean() > 0.2
    src_diff = np.abs(c.render_src.astype(int) - c.photo.astype(int)).mean(-1)
    assert src_diff[inside].mean() < 12
    tgt_diff = np.abs(c.render_tgt[:, 0].astype(int) - c.render_src.astype(int)).mean(-1)
    assert max(tgt_diff[i][inside[i]].mean() for i in range(2)) > 2
    far = cv2.dilate((c.mask > 0).astype(np.uint8), np.ones((7, 7), np.uint8), iterations=1)
    far = np.stack([cv2.dilate(m, np.ones((7, 7), np.uint8)) == 0 for m in far])
    assert far.mean() > 0.05
    assert np.array_equal(c.render_tgt[:, 0][far], c.render_src[far])
    assert np.array_equal(c.render_src[far], c.photo[far])

    grown = build_cache([str(data)], cache, dataclasses.replace(cfg, max_images=50), ctx, progress=False)
    assert grown.skipped == 3 and grown.samples == 0  # max_images may change: a cache can grow
    with pytest.raises(InputError, match="other settings"):
        build_cache(
            [str(data)], cache, DataConfig(targets_per_image=2, texture_size=TEX), ctx, progress=False
        )
