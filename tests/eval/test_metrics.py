"""face3d.eval.metrics: the one NME, the per-|yaw|-bin table and its one-line form."""

from __future__ import annotations

import numpy as np
import pytest

from face3d.eval.metrics import bin_line, bin_table


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
