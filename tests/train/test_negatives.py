"""Hard negatives for the face confidence: face-free windows of real photos (synthetic fixtures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from face3d.crop import crop_box
from face3d.eval.aflw import AFLWSample
from face3d.regress.network import RegressorConfig, RegressorNet, normalise
from face3d.train.aflw import AFLWCrops, AugConfig
from face3d.train.finetune import FinetuneConfig, finetune
from face3d.train.negatives import NegativeConfig, covered_fraction, face_free_window, negative_batch
from tests.train.test_aflw import _samples  # the sibling module (pytest puts this folder on sys.path)
from tests.train.test_finetune import _tiny_shards


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


def test_finetune_with_negatives_lowers_their_confidence(tmp_path):
    """A few seconds of fine-tuning a tiny network with face-free windows as negatives: their
    confidence falls below the faces'; without them it does not."""
    rng = np.random.default_rng(7)
    cfg = RegressorConfig(size=32, channels=(8, 8, 16), strides=(2, 2), hidden=16, n_identity=4)
    torch.manual_seed(0)
    RegressorNet(cfg).save_pretrained(tmp_path / "init")
    _tiny_shards(tmp_path / "shards", rng)
    samples = _samples(8, rng)
    images = []
    yy, xx = np.mgrid[:220, :240]
    stripes = np.repeat((128 + 100 * np.sin((xx + 2 * yy) / 3.0))[..., None], 3, 2).astype(np.uint8)
    for s in samples:  # noise "faces" on stripes, unlike the synthetic negatives (flat, noise, blobs)
        im = stripes.copy()
        x0, y0 = s.landmarks.min(0).astype(int)
        x1, y1 = s.landmarks.max(0).astype(int)
        im[y0:y1, x0:x1] = rng.integers(100, 256, (y1 - y0, x1 - x0, 3))
        images.append(im)
    aflw = AFLWCrops(samples, 32, 1.5, AugConfig(), images=images)
    check_neg = normalise(torch.from_numpy(negative_batch(aflw, np.random.default_rng(1), 32)))
    check_pos = normalise(torch.from_numpy(aflw.unaugmented()[0]))

    def gap(negatives: int) -> float:
        config = FinetuneConfig(
            minutes=0.1, warmup_minutes=0.0, aflw_batch=4, synthetic_batch=4, lr=3e-3, checkpoint_minutes=10,
            calibrate=False, upright_batch=0, negative_batch=negatives, seed=negatives,
        )  # fmt: skip
        net = finetune(aflw, tmp_path / "shards", tmp_path / f"run{negatives}", tmp_path / "init", config,
                       progress=False)  # fmt: skip
        with torch.no_grad():
            return float(net(check_pos)["logit"].mean() - net(check_neg)["logit"].mean())

    with_negatives, without = gap(8), gap(0)
    assert with_negatives > 3.0
    assert with_negatives > without + 2.0


def test_confidence_report_counts_and_auroc():
    from face3d.train.negatives import confidence_report

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
    from face3d.train.negatives import clutter

    ground = np.full((48, 48, 3), 77, np.uint8)
    imgs = [clutter(np.random.default_rng(s), 48, ground if s % 2 else None) for s in range(20)]
    assert (ground == 77).all()
    assert all(im.shape == (48, 48, 3) and im.dtype == np.uint8 for im in imgs)
    assert sum(im.std() > 1.0 for im in imgs[1::2]) >= 8  # marks on the flat ground (some land outside)
    assert np.array_equal(clutter(np.random.default_rng(3), 48), clutter(np.random.default_rng(3), 48))
    with pytest.raises(ValueError, match="clutter"):
        NegativeConfig(clutter=1.5)


class _Brightness(torch.nn.Module):
    """A stand-in network: the face logit is the crop's mean brightness."""

    def forward(self, x):
        return {"logit": x.mean(dim=(1, 2, 3))}


def test_mining_keeps_the_most_face_like_of_the_pool():
    from face3d.train.negatives import mine_negatives

    rng = np.random.default_rng(4)
    img = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    lm = np.stack([rng.uniform(200, 280, 68), rng.uniform(90, 170, 68)], -1)
    aflw = AFLWCrops([AFLWSample(Path("/x/a.jpg"), lm, 0.0, 0.0, 0.0)], 32, 1.5, images=[img])
    net = _Brightness().train()
    cfg = NegativeConfig(clutter=0.5)
    pool = negative_batch(aflw, np.random.default_rng(9), 24, cfg)
    mined = mine_negatives(net, aflw, np.random.default_rng(9), 6, 24, cfg)
    assert net.training  # mode restored
    brightness = pool.reshape(24, -1).mean(1)
    assert np.allclose(np.sort(mined.reshape(6, -1).mean(1)), np.sort(brightness)[-6:])
    # no pool: the plain draw
    assert np.array_equal(mine_negatives(net, aflw, np.random.default_rng(9), 6, 0, cfg),
                          negative_batch(aflw, np.random.default_rng(9), 6, cfg))  # fmt: skip


def test_cut_matches_the_network_crop_of_the_window():
    """``_cut`` (slice, then area-resize) against ``warp_affine`` of ``crop_transform`` (the
    inference crop), inside the photo and over its edges, on a smooth image."""
    import cv2

    from face3d.crop import crop_transform, warp_affine
    from face3d.train.negatives import _cut

    rng = np.random.default_rng(0)
    img = cv2.resize(
        rng.integers(0, 256, (15, 20, 3), dtype=np.uint8), (400, 300), interpolation=cv2.INTER_CUBIC
    )
    for win in [(100.3, 120.7, 200.2), (200.0, 150.0, 290.0), (20.0, 30.0, 150.6), (390.0, 280.0, 64.0)]:
        a, b = _cut(img, *win, 48).astype(float), warp_affine(img, crop_transform(*win, 48), 48).astype(float)
        assert a.shape == (48, 48, 3)
        assert np.abs(a - b).mean() < 4.0  # windows snap to whole pixels: up to half a pixel off
    with pytest.raises(ValueError, match="outside"):
        _cut(img, -500.0, 10.0, 100.0, 48)
