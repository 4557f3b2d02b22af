"""An edit as layers over the photo: composing them, and reading them at another resolution."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from editing.edit_layers import EditLayers, compose, pixel_map, remap, resample_layers, upscale_edit


def _photo(h=40, w=50, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = cv2.GaussianBlur(rng.uniform(0, 255, (h, w, 3)).astype(np.float32), (0, 0), 2.0)
    return np.clip(smooth, 0, 255).astype(np.uint8)


def _layers(h, w, motion=(0.0, 0.0), ratio=1.0) -> EditLayers:
    return EditLayers(
        motion=np.broadcast_to(np.float32(motion), (h, w, 2)).copy(),
        ratio=np.full((h, w), ratio, np.float32),
        paint=np.zeros((h, w, 3), np.float32),
        paint_alpha=np.zeros((h, w), np.float32),
        synthesized=np.zeros((h, w), bool),
        head=np.ones((h, w), bool),
    )


def test_no_motion_no_shading_no_paint_keeps_every_byte():
    photo = _photo()
    assert np.array_equal(compose(photo, _layers(*photo.shape[:2])), photo)


def test_paint_and_shift_and_ratio():
    photo = _photo()
    h, w = photo.shape[:2]
    layers = _layers(h, w, motion=(3.0, 0.0))  # every pixel reads the photo 3 px to its right
    out = compose(photo, layers)
    assert np.abs(out[:, 5:40].astype(int) - photo[:, 8:43]).max() <= 1
    darker = compose(photo, _layers(h, w, ratio=0.5))
    assert np.abs(darker.astype(int) - np.round(photo * 0.5)).max() <= 1
    painted = _layers(h, w)
    painted.paint[10:20, 10:20] = (200.0, 10.0, 10.0)
    painted.paint_alpha[10:20, 10:20] = 1.0
    out = compose(photo, painted)
    assert (out[11:19, 11:19] == (200, 10, 10)).all()  # its corners are dots the despeckle takes
    assert np.array_equal(out[25:], photo[25:])


def test_layers_check_their_shapes():
    good = _layers(8, 8)
    with pytest.raises(ValueError, match="motion"):
        EditLayers(np.zeros((8, 7, 2), np.float32), *(getattr(good, k) for k in ("ratio", "paint",
                   "paint_alpha", "synthesized", "head")))  # fmt: skip


def test_pixel_map_keeps_pixel_centres():
    # a linear ramp area-resized by 1/4 and read back at the full resolution's pixels is the ramp
    w = 64
    ramp = np.tile(np.arange(w, dtype=np.float32), (16, 1))
    small = cv2.resize(ramp, (w // 4, 4), interpolation=cv2.INTER_AREA)
    mx, my = pixel_map((16, w), (0, 0), (0.25, 0.25), (0, 0))
    back = remap(small, mx, my)
    assert np.abs(back[:, 4:-4] - ramp[:, 4:-4]).max() < 1e-3
    # with crop origins: the same pixels
    mx2, my2 = pixel_map((8, 20), (12, 4), (0.25, 0.25), (2, 1))
    assert np.allclose(mx2 + 2, mx[4:12, 12:32]) and np.allclose(my2 + 1, my[4:12, 12:32])


def test_resampled_motion_is_in_new_pixels_and_ones_stay_exact():
    small = _layers(10, 10, motion=(1.0, -2.0), ratio=1.0)
    small.ratio[:, 5:] = 0.8
    small.synthesized[4:6, 4:6] = True
    mx, my = pixel_map((20, 20), (0, 0), (0.5, 0.5), (0, 0))
    big = resample_layers(small, mx, my, (0.5, 0.5))
    assert big.motion.shape == (20, 20, 2)
    assert np.allclose(big.motion, (2.0, -4.0))  # 1 small px = 2 full px, edges included
    assert (big.ratio[:, :9] == 1.0).all() and np.allclose(big.ratio[:, 11:], 0.8)  # exact ones
    assert big.synthesized[8:12, 8:12].all() and big.synthesized.sum() == 16


def test_an_edit_made_small_applies_at_full_resolution():
    # a 2x downscaled image's edit: a shift by 1 small pixel inside a region becomes 2 full pixels,
    # and pixels outside the region keep their bytes
    image = _photo(80, 100, seed=3)
    small_size = (40, 50)
    crop = (5, 5, 45, 35)
    region = np.zeros(small_size, bool)
    region[10:30, 10:40] = True
    alpha = region.astype(np.float32)
    layers = _layers(30, 40, motion=(1.0, 0.0))
    placed = upscale_edit(image, (0, 0, 100, 80), small_size, crop, region, alpha, layers)
    assert placed.crop == (10, 10, 90, 70)
    X0, Y0 = placed.crop[:2]
    out = placed.out
    inside = placed.region[Y0:Y0 + out.shape[0], X0:X0 + out.shape[1]]  # fmt: skip
    photo = image[Y0:Y0 + out.shape[0], X0:X0 + out.shape[1]]  # fmt: skip
    assert np.array_equal(out[~inside], photo[~inside])
    ys, xs = np.nonzero(inside)
    ys, xs = ys[(xs < xs.max() - 3)], xs[(xs < xs.max() - 3)]
    assert np.abs(out[ys, xs].astype(int) - photo[ys, xs + 2]).max() <= 1
    assert placed.region.sum() == 4 * region.sum() and placed.alpha.max() == 1.0
