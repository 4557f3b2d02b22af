"""face3d.eval.face_free: face-free windows, clutter and the confidence report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from face3d.crop import crop_box
from face3d.eval.aflw import AFLWSample
from face3d.eval.aflw_crops import AFLWCrops
from face3d.eval.face_free import NegativeConfig, covered_fraction, face_free_window, negative_batch


def test_covered_fraction_of_a_box():
    box = (10.0, 10.0, 30.0, 20.0)  # area 200
    assert covered_fraction((0, 0, 100, 100), box) == pytest.approx(1.0)
    assert covered_fraction((20, 0, 100, 100), box) == pytest.approx(0.5)
    assert covered_fraction((20, 15, 100, 100), box) == pytest.approx(0.25)
    assert covered_fraction((40, 0, 100, 100), box) == 0.0
    assert covered_fraction((0, 0, 10, 10), box) == 0.0  # touching corners


def test_face_free_windows_lie_in_the_photo_and_miss_the_face():
    rng = np.random.default_rng(0)
    face = (150.0, 120.0, 250.0, 230.0)
    cfg = NegativeConfig(max_overlap=0.1)
    sides = []
    for _ in range(300):
        cx, cy, side = face_free_window(rng, 400, 300, face, 1.5, cfg)
        L = side / 1.5  # the window (landmark-style box) inside the photo
        assert cx - L / 2 >= -1e-6 and cx + L / 2 <= 400 + 1e-6
        assert cy - L / 2 >= -1e-6 and cy + L / 2 <= 300 + 1e-6
        region = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
        assert covered_fraction(region, face) <= 0.1
        sides.append(L)
    assert 0.2 * 300 <= min(sides) and max(sides) <= 0.8 * 300
    assert max(sides) / min(sides) > 2  # the whole window range is drawn
    # the window is the network's crop of that box
    cx, cy, side = face_free_window(np.random.default_rng(1), 400, 300, face, 1.5, cfg)
    L = side / 1.5
    assert crop_box((cx - L / 2, cy - L / 2, cx + L / 2, cy + L / 2), 1.5) == pytest.approx((cx, cy, side))


def test_a_face_filling_the_photo_leaves_no_window():
    rng = np.random.default_rng(0)
    cfg = NegativeConfig(max_overlap=0.0, tries=5)
    assert face_free_window(rng, 200, 200, (0.0, 0.0, 200.0, 200.0), 1.5, cfg) is None
    # a crop inside a big face covers little of it: allowed at the default max_overlap 0.25
    assert face_free_window(rng, 200, 200, (0.0, 0.0, 200.0, 200.0), 1.5) is not None
    sample = AFLWSample(Path("/x/image00001.jpg"), np.array([[0.0, 0.0], [200.0, 200.0]] * 34), 0.0, 0.0, 0.0)
    aflw = AFLWCrops([sample], 32, 1.5, images=[np.full((200, 200, 3), 90, np.uint8)])
    with pytest.raises(ValueError, match="no face-free windows"):
        negative_batch(aflw, rng, 2, cfg)
    with pytest.raises(ValueError, match="max_overlap"):
        NegativeConfig(max_overlap=1.0)


def test_negative_crops_come_from_outside_the_face_and_skip_black_padding():
    """A photo whose face box is red, the rest blue, its left quarter black padding: the crops
    are blue (no red face pixels beyond the allowed overlap, no padding)."""
    rng = np.random.default_rng(2)
    img = np.zeros((240, 320, 3), np.uint8)
    img[:, 80:] = (0, 0, 200)
    img[90:170, 200:280] = (200, 0, 0)
    lm = np.stack([rng.uniform(200, 280, 68), rng.uniform(90, 170, 68)], -1)
    lm[:2] = [[200, 90], [280, 170]]
    aflw = AFLWCrops([AFLWSample(Path("/x/a.jpg"), lm, 0.0, 0.0, 0.0)], 32, 1.5, images=[img])
    crops = negative_batch(aflw, rng, 40, NegativeConfig(max_overlap=0.0, colour=False))
    assert crops.shape == (40, 32, 32, 3) and crops.dtype == np.uint8
    assert (crops.max(-1) < 8).mean(axis=(1, 2)).max() <= 0.2
    red = (crops[..., 0] > 100).mean(axis=(1, 2))
    assert red.max() < 0.1  # bilinear edges only
    assert negative_batch(aflw, rng, 0).shape == (0, 32, 32, 3)


def test_confidence_report_counts_and_auroc():
    from face3d.eval.face_free import confidence_report

    logit = lambda p: float(np.log(p / (1 - p)))  # noqa: E731
    faces = [logit(0.995), logit(0.95), logit(0.6), logit(0.3)]
    negatives = [logit(0.2), logit(0.92), logit(0.01)]
    r = confidence_report(faces, negatives)
    # face beats negative in 4*3 pairs except (0.6, 0.92), (0.3, 0.92): 10/12
    assert r["auroc"] == pytest.approx(10 / 12)
    assert r["faces_at_least_0.9"] == 0.5 and r["faces_at_least_0.99"] == 0.25
    assert r["negatives_at_least_0.5"] == pytest.approx(1 / 3) and r["negatives_at_least_0.99"] == 0.0
    assert r["median_negative_confidence"] == pytest.approx(0.2)
    assert confidence_report([1.0, 2.0], [1.0, 2.0])["auroc"] == pytest.approx(0.5)  # ties count half
    with pytest.raises(ValueError, match="at least one"):
        confidence_report([], [0.0])


def test_clutter_draws_marks_without_touching_its_ground():
    from face3d.eval.face_free import clutter

    ground = np.full((48, 48, 3), 77, np.uint8)
    imgs = [clutter(np.random.default_rng(s), 48, ground if s % 2 else None) for s in range(20)]
    assert (ground == 77).all()
    assert all(im.shape == (48, 48, 3) and im.dtype == np.uint8 for im in imgs)
    assert sum(im.std() > 1.0 for im in imgs[1::2]) >= 8  # marks on the flat ground (some land outside)
    assert np.array_equal(clutter(np.random.default_rng(3), 48), clutter(np.random.default_rng(3), 48))
    with pytest.raises(ValueError, match="clutter"):
        NegativeConfig(clutter=1.5)


def test_cut_matches_the_network_crop_of_the_window():
    """``cut_window`` (slice, then area-resize) against ``warp_affine`` of ``crop_transform`` (the
    inference crop), inside the photo and over its edges, on a smooth image."""
    import cv2

    from face3d.crop import crop_transform, warp_affine
    from face3d.eval.face_free import cut_window

    rng = np.random.default_rng(0)
    img = cv2.resize(
        rng.integers(0, 256, (15, 20, 3), dtype=np.uint8), (400, 300), interpolation=cv2.INTER_CUBIC
    )
    for win in [(100.3, 120.7, 200.2), (200.0, 150.0, 290.0), (20.0, 30.0, 150.6), (390.0, 280.0, 64.0)]:
        a = cut_window(img, *win, 48).astype(float)
        b = warp_affine(img, crop_transform(*win, 48), 48).astype(float)
        assert a.shape == (48, 48, 3)
        assert np.abs(a - b).mean() < 4.0  # windows snap to whole pixels: up to half a pixel off
    with pytest.raises(ValueError, match="outside"):
        cut_window(img, -500.0, 10.0, 100.0, 48)
