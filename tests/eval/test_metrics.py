"""face3d.eval.metrics: the per-|yaw|-bin table and its one-line form."""

from __future__ import annotations

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
