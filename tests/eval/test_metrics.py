"""face3d.eval.metrics: the one NME, the 3D landmark error, the per-|yaw|-bin table and its
one-line form."""

from __future__ import annotations

import numpy as np
import pytest

from face3d.eval.metrics import bin_line, bin_table, landmark_errors_3d, nme, nme_3d, similarity_align


def test_bin_table_counts_misses_and_balances_the_bins():
    t = bin_table([(10.0, 2.0), (-20.0, 4.0), (45.0, 5.0), (-50.0, None), (75.0, 9.0), (89.0, 7.0)])
    assert t["[0,30)"] == {"nme": 3.0, "median_nme": 3.0, "n": 2, "missed": 0}
    assert t["[30,60)"]["nme"] == 5.0 and t["[30,60)"]["missed"] == 1 and t["[30,60)"]["n"] == 2
    assert t["[60,90]"]["nme"] == 8.0
    assert t["balanced"] == pytest.approx((3.0 + 5.0 + 8.0) / 3, abs=1e-3)
    assert bin_line(t) == "3.00 / 5.00 / 8.00 (balanced 5.333)"


def test_bin_line_skips_empty_bins():
    t = bin_table([(5.0, 1.25), (40.0, None)])
    assert t["balanced"] is None
    assert bin_line(t) == "1.25 (balanced None)"


def test_one_nme_for_numpy_and_torch_single_and_batched():
    import torch

    from face3d.eval.metrics import nme

    rng = np.random.default_rng(0)
    gt = rng.uniform(0, 100, (4, 68, 2))
    pred = gt + rng.normal(0, 2, gt.shape)
    single = [nme(pred[i], gt[i]) for i in range(4)]
    assert all(isinstance(v, float) for v in single)
    assert np.allclose(nme(pred, gt), single)
    t = nme(torch.from_numpy(pred), torch.from_numpy(gt))
    assert isinstance(t, torch.Tensor) and t.shape == (4,) and np.allclose(t.numpy(), single)
    # a known value: every point 3 px off on a 60 x 15 box -> 3 / sqrt(900) = 10 %
    box = np.array([[0.0, 0.0], [60.0, 15.0]])
    assert nme(box + [3.0, 0.0], box) == pytest.approx(10.0)
    with pytest.raises(ValueError, match="must both be"):
        nme(pred[0], gt)


def _rotation(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def test_3d_error_ignores_pose_and_scale_but_not_shape_or_mirroring():
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(68, 3)) * [60.0, 70.0, 40.0] + [200.0, 220.0, 0.0]  # pixels
    pred = (gt - gt.mean(0)) @ _rotation(rng).T * 0.07 + [1.0, -2.0, 60.0]  # cm, another pose
    np.testing.assert_allclose(similarity_align(pred, gt), gt, atol=1e-6)
    assert nme_3d(pred, gt) == pytest.approx(0.0, abs=1e-6)
    moved = pred.copy()
    moved[30] += [0.0, 0.0, 0.5]  # one point 0.5 cm deeper: a shape change stays
    assert nme_3d(moved, gt) > 0.05
    mirrored = pred * [-1.0, 1.0, 1.0]  # no reflection is allowed
    assert nme_3d(mirrored, gt) > 5.0
    # normalised like the NME: an error in x, y only is the 2D NME of the same points
    noisy = gt.copy()
    noisy[:, :2] += rng.normal(size=(68, 2)) * 0.01
    assert nme_3d(noisy, gt) == pytest.approx(nme(noisy[:, :2], gt[:, :2]), rel=0.05)


def test_3d_error_per_landmark_points_at_the_moved_one():
    rng = np.random.default_rng(1)
    gt = rng.normal(size=(68, 3)) * [60.0, 70.0, 40.0] + [200.0, 220.0, 0.0]
    moved = gt.copy()
    moved[30] += [0.0, 0.0, 30.0]  # one point 30 px deeper
    per = landmark_errors_3d(moved, gt)
    assert per.shape == (68,) and int(per.argmax()) == 30
    assert float(per.mean()) == pytest.approx(nme_3d(moved, gt), rel=1e-12)
    span = gt[:, :2].max(0) - gt[:, :2].min(0)
    # the alignment spreads a little of the move over the others; most stays at the point
    assert per[30] == pytest.approx(30.0 / np.sqrt(span.prod()) * 100.0, rel=0.1)
    assert np.median(per) < 0.05 * per[30]
