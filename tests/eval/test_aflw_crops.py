"""face3d.eval.aflw_crops: the AFLW crops and their landmarks, the flip, the augmentation (tiny
synthetic fixtures only; no data files, runs in a second or two)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from face3d.crop import (
    crop_affine,
    crop_box,
    crop_transform,
    invert_affine,
    transform_points,
    warp_affine,
    warp_crop,
)
from face3d.eval.aflw import AFLWSample, face3d_yaw
from face3d.eval.aflw_crops import AFLWCrops, AugConfig, flip_landmarks, random_erase
from face3d.eval.metrics import yaw_bin
from face3d.regress.infer import LandmarkRegressor
from face3d.regress.network import MIRROR_68, RegressorConfig, RegressorNet

S = 96


def _face(rng, cx=120.0, cy=110.0, w=80.0, h=90.0) -> np.ndarray:
    """(68, 2) random points filling a w x h box around (cx, cy)."""
    return np.stack([rng.uniform(cx - w / 2, cx + w / 2, 68), rng.uniform(cy - h / 2, cy + h / 2, 68)], -1)


def _symmetric_face(rng) -> np.ndarray:
    """(68, 2) crop landmarks symmetric about x = (S - 1) / 2 under the iBUG pairing."""
    lm = np.zeros((68, 2))
    c = (S - 1) / 2
    for i, j in enumerate(MIRROR_68):
        if i < j:
            x, y = rng.uniform(0, c), rng.uniform(0, S - 1)
            lm[i], lm[j] = (x, y), (S - 1 - x, y)
        elif i == j:
            lm[i] = (c, rng.uniform(0, S - 1))
    return lm


def _samples(n: int, rng) -> list[AFLWSample]:
    yaws = rng.uniform(-95, 95, n)
    return [
        AFLWSample(Path(f"/x/image{i:05d}.jpg"), _face(rng), float(y), 0.0, 0.0) for i, y in enumerate(yaws)
    ]


# ------------------------------------------------------------------------------------ flip
def test_flip_is_an_involution_and_keeps_a_symmetric_face():
    rng = np.random.default_rng(1)
    lm = rng.uniform(0, S - 1, (68, 2))
    np.testing.assert_allclose(flip_landmarks(flip_landmarks(lm, S), S), lm, atol=1e-12)
    assert sorted(MIRROR_68) == list(range(68))
    sym = _symmetric_face(rng)
    np.testing.assert_allclose(flip_landmarks(sym, S), sym, atol=1e-12)
    # batched arrays flip point by point the same way
    np.testing.assert_allclose(flip_landmarks(np.stack([lm, sym]), S)[1], sym, atol=1e-12)


def test_flipped_crop_moves_the_image_with_its_landmarks():
    """A blob at landmark 36 (subject's right eye corner) lies at index 45 of the flipped crop's points."""
    rng = np.random.default_rng(2)
    lm = _face(rng)
    yy, xx = np.mgrid[:240, :240]
    blob = np.exp(-((xx - lm[36, 0]) ** 2 + (yy - lm[36, 1]) ** 2) / (2 * 3.0**2))
    image = np.repeat((blob * 255).astype(np.uint8)[..., None], 3, -1)
    sample = AFLWSample(Path("image00001.jpg"), lm, 40.0, 0.0, 0.0)
    crops = AFLWCrops([sample], S, 1.5, AugConfig(0.05, 0.1, 10.0, flip=1.0, colour=False), images=[image])
    img, lm_c, yaw = crops.item(0, np.random.default_rng(3))
    assert yaw == pytest.approx(-face3d_yaw(40.0))
    peak = np.unravel_index(np.argmax(img[..., 0]), img.shape[:2])[::-1]
    assert np.linalg.norm(np.array(peak) - lm_c[45]) < 1.5


# ---------------------------------------------------------------------------------- crops
def test_unaugmented_crop_is_the_inference_crop_and_round_trips():
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (300, 280, 3), dtype=np.uint8)
    for side in (60.0, 200.0):  # crop scale above and below warp_crop's pre-shrink threshold
        lm = _face(rng, 140, 150, side, side * 1.1)
        box = (*lm.min(0), *lm.max(0))
        A = crop_affine(lm, 1.5, S)
        np.testing.assert_allclose(A, crop_transform(*crop_box(box, 1.5), S), atol=1e-12)
        net = RegressorNet(RegressorConfig(size=S, channels=(8, 8), strides=(2,), hidden=8, n_identity=4))
        crops, As = LandmarkRegressor(net).crops(image, [box])
        np.testing.assert_array_equal(warp_affine(image, A, S), crops[0])
        np.testing.assert_array_equal(warp_affine(image, A, S), warp_crop(image, A, S))
        lm_c = transform_points(A, lm)
        k, off = As[0, 0, 0], As[0, :, 2]  # LandmarkRegressor.predict_batch's way back to the image
        np.testing.assert_allclose((lm_c - off) / k, lm, atol=1e-9)
        assert lm_c.min() > 0 and lm_c.max() < S - 1


def test_augmented_crop_affine_round_trips_and_boxes_the_face():
    rng = np.random.default_rng(5)
    lm = _face(rng)
    for flip in (False, True):
        A = crop_affine(lm, 1.5, S, shift=(0.05, -0.03), log_scale=0.1, angle_deg=12.0, flip=flip)
        lm_c = transform_points(A, lm)
        np.testing.assert_allclose(transform_points(invert_affine(A), lm_c), lm, atol=1e-9)
        assert abs(np.linalg.det(A[:, :2])) == pytest.approx((S / (1.5 * 90.0 * np.exp(0.1))) ** 2, rel=0.3)
        assert lm_c.min() > 0 and lm_c.max() < S - 1


def test_batch_shapes_and_balanced_bins():
    rng = np.random.default_rng(6)
    samples = _samples(12, rng)
    images = [rng.integers(0, 256, (240, 240, 3), dtype=np.uint8) for _ in samples]
    data = AFLWCrops(samples, S, 1.5, images=images)
    b = data.batch(np.random.default_rng(0), 7)
    assert b["image"].shape == (7, S, S, 3) and b["image"].dtype == np.uint8
    assert b["landmarks"].shape == (7, 68, 2) and b["yaw"].shape == (7,) and b["yaw_valid"].dtype == bool
    a, c = data.batch(np.random.default_rng(0), 7), data.batch(np.random.default_rng(0), 7)
    assert all(np.array_equal(a[k], c[k]) for k in a)  # seeded
    bins = {yaw_bin(-y) for y in data.batch(np.random.default_rng(1), 60)["yaw"]}
    assert bins == {yaw_bin(s.yaw) for s in samples}


def test_random_erase_covers_one_rectangle_and_the_erase_option_uses_it():
    """One axis-aligned rectangle of 4-25 % of the crop changes, the rest is the input (not
    overwritten); ``AugConfig.erase`` 1 occludes every crop, 0 leaves the random stream as it was."""
    rng = np.random.default_rng(3)
    img = np.full((S, S, 3), 7, np.uint8)
    for _ in range(50):
        out = random_erase(rng, img)
        ys, xs = np.nonzero((out != img).any(-1))
        if len(ys) == 0:  # a flat fill may draw the input's own colour (1 in 2**24)
            continue
        h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
        assert 0.03 * S * S <= h * w <= 0.26 * S * S and 0.45 <= h / w <= 2.2
        assert len(ys) >= 0.9 * h * w  # a filled rectangle (noise may repeat the input's value)
    assert (img == 7).all()
    samples = _samples(6, rng)
    images = [rng.integers(0, 256, (240, 240, 3), dtype=np.uint8) for _ in samples]
    plain = AFLWCrops(samples, S, 1.5, AugConfig(colour=False), images=images)
    erased = AFLWCrops(samples, S, 1.5, AugConfig(colour=False, erase=1.0), images=images)
    off = AFLWCrops(samples, S, 1.5, AugConfig(colour=False, erase=0.0), images=images)
    a, b, c = (d.batch(np.random.default_rng(0), 8) for d in (plain, erased, off))
    assert np.array_equal(a["image"], c["image"])
    assert np.array_equal(a["landmarks"][0], b["landmarks"][0])  # the first crop is drawn the same way
    changed = (a["image"] != b["image"]).any(-1).mean((1, 2))
    assert changed[0] >= 0.03 and (changed > 0.03).mean() >= 0.5


# ------------------------------------------------------------------------------ fine-tune
