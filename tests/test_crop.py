"""The photo's extent inside a padded canvas (face3d.crop.photo_extent)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from face3d.crop import PAD_MIN_PX, photo_extent, photo_mask, resized_points


def _photo(h=120, w=160, seed=0) -> np.ndarray:
    """A textured photo: smooth colour ramps plus noise (no constant row or column)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([60 + x, 80 + y, 120 + 0.3 * (x + y)], -1)
    return np.clip(base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)


def test_unpadded_photo_is_whole():
    img = _photo()
    assert photo_extent(img) == (0, 0, 160, 120)


def test_bands_on_every_side_are_found_exactly():
    img = _photo()
    canvas = np.zeros((120 + 30 + 7, 160 + 21 + 12, 3), np.uint8)
    canvas[:, :21] = 255  # a white band at the left, black elsewhere
    canvas[30 : 30 + 120, 21 : 21 + 160] = img
    assert photo_extent(canvas) == (21, 30, 21 + 160, 30 + 120)
    mask = photo_mask(canvas)
    assert mask.shape == canvas.shape[:2] and mask.sum() == 160 * 120
    assert mask[30:150, 21:181].all()
    np.testing.assert_array_equal(photo_mask(canvas, (0, 0, 2, 3)).nonzero(), np.nonzero(np.ones((3, 2))))


def test_thin_or_partial_bands_are_not_padding():
    img = _photo()
    img[: PAD_MIN_PX - 1] = 0  # too thin
    img[:, :40][:60] = 255  # a flat region that does not run the full height
    assert photo_extent(img) == (0, 0, 160, 120)


def test_jpeg_ringing_at_the_band_edge_counts_as_padding():
    img = _photo(seed=1)
    canvas = np.zeros((40 + 120, 160, 3), np.uint8)
    canvas[40:] = img
    ok, buf = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    jpg = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    assert not (jpg[32:40] == 0).all()  # the block at the edge rings: not exactly black
    x0, y0, x1, y1 = photo_extent(jpg)
    assert (x0, x1, y1) == (0, 160, 160)
    assert 39 <= y0 <= 41, y0  # the band's edge, to a row of the ringing


def test_flat_image_and_bad_shape():
    assert photo_extent(np.zeros((50, 60, 3), np.uint8)) == (0, 0, 60, 50)
    with pytest.raises(ValueError, match="photo_extent"):
        photo_extent(np.zeros((50, 60), np.uint8))


def test_resized_points_keep_pixel_centres_like_cv2_resize():
    import cv2
    import torch

    img = np.zeros((8, 12), np.float32)
    img[3, 5] = 1.0  # one pixel; a 4x upscale puts its centre at resized_points((5, 3), 4)
    big = cv2.resize(img, (48, 32), interpolation=cv2.INTER_LINEAR)
    ys, xs = np.nonzero(big == big.max())
    expect = resized_points(np.array([5.0, 3.0]), np.array([4.0, 4.0]))
    assert np.allclose([xs.mean(), ys.mean()], expect)
    t = resized_points(torch.tensor([[5.0, 3.0]]), torch.tensor([4.0, 4.0]))
    assert np.allclose(t.numpy()[0], expect)
