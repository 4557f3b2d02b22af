"""Test-time views of the regressor: their affines, their crops, and the profile pass."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from face3d.crop import crop_transform, transform_points
from face3d.regress.infer import TTA_SCALES, LandmarkRegressor, ReferenceLandmarkRegressor
from face3d.regress.views import PROFILE_VIEWS, View, as_views
from tests.regress.test_infer import _net  # the sibling module (pytest puts this folder on sys.path)


def test_view_affines_scale_turn_and_shift_the_crop():
    cx, cy, side, S = 120.0, 80.0, 50.0, 32
    assert np.array_equal(View(0.9).affine(cx, cy, side, S), crop_transform(cx, cy, side * 0.9, S))
    c = (S - 1) / 2
    turned = View(angle=90.0).affine(cx, cy, side, S)
    # the centre stays; a point right of it in the image lands below the crop centre (y down)
    assert np.allclose(
        transform_points(turned, np.array([[cx, cy], [cx + 10.0, cy]])), [[c, c], [c, c + 6.4]]
    )
    moved = View(shift=(0.1, -0.2)).affine(cx, cy, side, S)
    assert np.allclose(transform_points(moved, np.array([[cx + 5.0, cy - 10.0]])), [[c, c]])
    assert View(1.1).reach == pytest.approx(1.1)
    assert View(angle=45.0).reach == pytest.approx(math.sqrt(2))
    assert View(shift=(0.04, -0.05)).reach == pytest.approx(1.1)


def test_as_views_takes_scales_and_views():
    assert as_views((0.9, View(angle=8.0))) == (View(0.9), View(angle=8.0))
    with pytest.raises(ValueError, match="at least one view"):
        as_views(())
    with pytest.raises(ValueError, match="positive"):
        View(0.0)


def test_turned_and_shifted_crops_match_the_reference():
    """The fast path's region shrink reads far enough for turned and moved crops."""
    rng = np.random.default_rng(2)
    image = cv2.resize(
        rng.integers(0, 256, (60, 80, 3), dtype=np.uint8), (800, 600), interpolation=cv2.INTER_CUBIC
    )
    boxes = [(300.0, 200.0, 420.0, 330.0), (-40.0, 450.0, 100.0, 640.0)]
    views = (View(1.1), *PROFILE_VIEWS, View(0.9, angle=-30.0, shift=(0.1, 0.1)))
    reg = LandmarkRegressor(_net())
    fast, A = reg.crops(image, boxes, views)
    ref, A_ref = ReferenceLandmarkRegressor(reg.net).crops(image, boxes, views)
    assert np.array_equal(A, A_ref) and fast.shape == (len(views) * 2, 32, 32, 3)
    diff = np.abs(fast.astype(int) - ref.astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.01, (diff.mean(), diff.max())


def test_profile_pass_is_one_pass_over_all_the_views():
    """Faces at |yaw| >= profile_min_yaw get the profile views averaged in: the same as a single
    pass over the scales and those views; others, and passes with profile=False, are unchanged."""
    image = cv2.resize(
        np.random.default_rng(4).integers(0, 256, (50, 60, 3), dtype=np.uint8),
        (600, 500),
        interpolation=cv2.INTER_CUBIC,
    )
    boxes = [(200.0, 150.0, 330.0, 300.0), (20.0, 20.0, 60.0, 70.0)]
    net = _net()
    plain = LandmarkRegressor(net, flip=True, scales=TTA_SCALES, upright=False).predict_batch(image, boxes)
    every = LandmarkRegressor(net, flip=True, scales=TTA_SCALES, upright=False, profile_views=PROFILE_VIEWS,
                              profile_min_yaw=0.0)  # fmt: skip
    one_pass = LandmarkRegressor(net, flip=True, scales=(*TTA_SCALES, *PROFILE_VIEWS), upright=False)
    for a, b in zip(every.predict_batch(image, boxes), one_pass.predict_batch(image, boxes), strict=True):
        assert np.allclose(a.landmarks, b.landmarks, atol=1e-6) and np.allclose(
            a.rotation, b.rotation, atol=1e-6
        )
        assert a.confidence == pytest.approx(b.confidence) and np.allclose(a.expression, b.expression)
    for a, p in zip(every.predict_batch(image, boxes, profile=False), plain, strict=True):
        assert np.array_equal(a.landmarks, p.landmarks)
    # a threshold between the two faces' yaws: only the larger one changes
    yaws = [abs(p.yaw) for p in plain]
    every.profile_min_yaw = 0.5 * sum(yaws)
    out = every.predict_batch(image, boxes)
    big = int(np.argmax(yaws))
    assert not np.allclose(out[big].landmarks, plain[big].landmarks)
    assert np.array_equal(out[1 - big].landmarks, plain[1 - big].landmarks)


@pytest.mark.integration
def test_shipped_pipeline_adds_the_views_at_large_yaw_only(aflw_dir):
    """default_tta: a near-frontal face is regressed as before; a held-out profile gets the views,
    which move its landmarks a little and keep them right."""
    from face3d.eval.aflw import load_aflw, select_split
    from face3d.eval.metrics import nme
    from face3d.regress.infer import default_tta
    from face3d.regress.network import default_weights_dir

    if not (default_weights_dir() / "config.json").is_file():
        pytest.skip("shipped regressor weights not installed")
    reg = default_tta()
    assert reg.profile_views == PROFILE_VIEWS and reg.profile_min_yaw == 30.0
    plain = LandmarkRegressor(reg.net, flip=True, scales=TTA_SCALES)
    heldout = select_split(load_aflw(aflw_dir), "heldout")
    frontal = next(s for s in heldout if s.image_path.name == "image00002.jpg")
    image = cv2.cvtColor(cv2.imread(str(frontal.image_path)), cv2.COLOR_BGR2RGB)
    a, b = reg.predict(image, frontal.box), plain.predict(image, frontal.box)
    assert abs(b.yaw) < 30 and np.array_equal(a.landmarks, b.landmarks)
    profile = next(s for s in heldout if 70 < abs(s.yaw) < 90)
    image = cv2.cvtColor(cv2.imread(str(profile.image_path)), cv2.COLOR_BGR2RGB)
    a, b = reg.predict(image, profile.box), plain.predict(image, profile.box)
    moved = np.linalg.norm(a.landmarks - b.landmarks, axis=1).mean()
    size = np.sqrt(np.prod(profile.landmarks.max(0) - profile.landmarks.min(0)))
    assert 0 < moved < 0.05 * size and nme(a.landmarks, profile.landmarks) < 12.0
