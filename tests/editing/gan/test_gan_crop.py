"""Aligned face crop: box geometry, crop -> paste round trip, shape errors."""

from __future__ import annotations

import numpy as np
import pytest

from editing.gan.crop import aligned_box, crop_mask, crop_matrix, crop_square, paste_square


def _landmarks(cx=120.0, cy=100.0, w=60.0, h=70.0, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-0.5, 0.5, (68, 2)) * [w, h] + [cx, cy]
    pts[0] = [cx - w / 2, cy]
    pts[1] = [cx + w / 2, cy]
    pts[2] = [cx, cy - h / 2]
    pts[3] = [cx, cy + h / 2]
    return pts


def _smooth_image(H=240, W=260) -> np.ndarray:
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    r = 128 + 80 * np.sin(x / 23.0) * np.cos(y / 31.0)
    g = 40 + 0.6 * x
    b = 60 + 0.5 * y + 20 * np.sin((x + y) / 40.0)
    return np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("w,h", [(60.0, 70.0), (25.0, 75.0), (80.0, 40.0)])  # frontal, profile, wide
def test_box_is_square_contains_landmarks_and_is_shifted_up(w, h):
    lm = _landmarks(w=w, h=h)
    x0, y0, x1, y1 = aligned_box(lm, 1.6)
    assert x1 - x0 == pytest.approx(y1 - y0)
    assert x1 - x0 == pytest.approx(1.6 * max(w, h))
    assert (lm[:, 0] > x0).all() and (lm[:, 0] < x1).all()
    assert (lm[:, 1] > y0).all() and (lm[:, 1] < y1).all()
    cy_box = (y0 + y1) / 2
    cy_lm = (lm[:, 1].min() + lm[:, 1].max()) / 2
    assert cy_box == pytest.approx(cy_lm - 0.1 * h)
    assert (x0 + x1) / 2 == pytest.approx((lm[:, 0].min() + lm[:, 0].max()) / 2)


def test_crop_matrix_maps_box_corners_to_patch_edges():
    box = (10.0, 20.0, 74.0, 84.0)
    M = crop_matrix(box, 32)
    # the image point at the box's top-left edge maps to the patch's edge (-0.5 in centre coords)
    assert M @ np.array([10 - 0.5, 20 - 0.5, 1.0]) == pytest.approx([-0.5, -0.5])
    assert M @ np.array([74 - 0.5, 84 - 0.5, 1.0]) == pytest.approx([31.5, 31.5])


def test_crop_of_identity_box_is_the_pixels():
    image = _smooth_image()
    patch = crop_square(image, (30, 40, 94, 104), 64)
    assert patch.shape == (64, 64, 3) and patch.dtype == np.uint8
    assert np.array_equal(patch, image[40:104, 30:94])


def test_round_trip_changes_region_little_and_outside_nothing():
    image = _smooth_image()
    box = aligned_box(_landmarks(cx=130, cy=120, w=70, h=80), 1.6)
    patch = crop_square(image, box, 128)
    region = np.zeros(image.shape[:2], bool)
    region[70:190, 80:180] = True
    alpha = np.where(region, 1.0, 0.0).astype(np.float32)
    out = paste_square(image, patch, box, region, alpha)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(out[~region], image[~region])
    diff = np.abs(out.astype(int) - image.astype(int))[region]
    assert diff.mean() < 2.0 and diff.max() <= 8


def test_paste_changes_region_and_not_outside():
    image = _smooth_image()
    box = (60.0, 50.0, 188.0, 178.0)
    patch = np.full((64, 64, 3), 255, np.uint8)
    region = np.zeros(image.shape[:2], bool)
    region[40:200, 40:220] = True  # extends past the box: outside the box nothing changes
    alpha = region.astype(np.float32)
    out = paste_square(image, patch, box, region, alpha)
    assert (out[60:170, 70:180] == 255).all()
    assert np.array_equal(out[~region], image[~region])
    assert np.array_equal(out[40:48, 40:220], image[40:48, 40:220])  # in the region, above the box


def test_crop_mask_is_float_in_unit_range():
    mask = np.zeros((100, 100), bool)
    mask[25:75, 25:75] = True
    m = crop_mask(mask, (0.0, 0.0, 100.0, 100.0), 50)
    assert m.shape == (50, 50) and m.dtype == np.float32
    assert m.min() == 0.0 and m.max() == 1.0
    assert m[25, 25] == 1.0 and m[2, 2] == 0.0
    outside = crop_mask(np.ones((10, 10), np.float32), (-10.0, -10.0, 20.0, 20.0), 30)
    assert outside[0, 0] == 0.0 and outside[15, 15] == 1.0 and outside[25, 25] == 0.0


def test_shape_errors():
    image = _smooth_image()
    with pytest.raises(ValueError, match="landmarks"):
        aligned_box(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="scale"):
        aligned_box(_landmarks(), 0.0)
    with pytest.raises(ValueError, match="image"):
        crop_square(image[..., 0], (0, 0, 10, 10))
    with pytest.raises(ValueError, match="image"):
        crop_square(image.astype(np.float32), (0, 0, 10, 10))
    with pytest.raises(ValueError, match="box"):
        crop_square(image, (10, 10, 5, 20))
    with pytest.raises(ValueError, match="size"):
        crop_square(image, (0, 0, 10, 10), 0)
    with pytest.raises(ValueError, match="mask"):
        crop_mask(np.zeros((4, 4, 3)), (0, 0, 4, 4))
    region = np.zeros(image.shape[:2], bool)
    with pytest.raises(ValueError, match="patch"):
        paste_square(image, np.zeros((8, 9, 3), np.uint8), (0, 0, 10, 10), region, region.astype(np.float32))
    with pytest.raises(ValueError, match="region"):
        paste_square(image, np.zeros((8, 8, 3), np.uint8), (0, 0, 10, 10), region[1:], region[1:] * 1.0)
