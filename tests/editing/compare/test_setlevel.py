"""editing.compare.setlevel: KID per |yaw| bin, completeness pooled per method, bin and target."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from editing.compare.metrics import kid

YAWS = {"a": 5.0, "b": -20.0, "c": 10.0, "d": 45.0, "e": -50.0, "f": 40.0}
METHODS = ["3d", "2d"]


def _write_records(out, rng) -> list[dict]:
    """Six inputs (three per bin), two methods, two targets: records/<stem>.json and .npz."""
    from face3d.io import atomic_write_json, atomic_write_npz

    records = []
    for stem, yaw in YAWS.items():
        recs = [
            {
                "input": f"inputs/{stem}.png",
                "target": t,
                "method": m,
                "yaw": yaw,
                "output": f"{m}/{stem}_{t}.png",
            }
            for m in METHODS
            for t in ("happy", "sad")
        ]
        feats = {"input__fer": rng.normal(size=(1, 8)), "input__dlib": rng.normal(size=(1, 8))}
        for m in METHODS:
            shift = 0.5 if m == "2d" else 0.0
            feats |= {f"{m}__{k}": rng.normal(size=(2, 8)) + shift for k in ("fer", "dlib")}
        atomic_write_json(out / "records" / f"{stem}.json", recs)
        atomic_write_npz(out / "records" / f"{stem}.npz", **feats)
        records += recs
    return records


def test_kid_per_bin_is_kid_on_the_bins_rows(tmp_path):
    from editing.compare.setlevel import kid_by_bin, set_level, stem_bins

    rng = np.random.default_rng(0)
    records = _write_records(tmp_path, rng)
    bins = stem_bins(records)
    assert bins == {
        "a": "[0,30)",
        "b": "[0,30)",
        "c": "[0,30)",
        "d": "[30,60)",
        "e": "[30,60)",
        "f": "[30,60)",
    }
    table = kid_by_bin(tmp_path, bins, METHODS, None, seed=0)
    assert list(table) == ["[0,30)", "[30,60)"] and set(table["[0,30)"]) == set(METHODS)

    def rows(stems, name, kind):
        arrays = [np.load(tmp_path / "records" / f"{s}.npz")[f"{name}__{kind}"] for s in stems]
        return np.concatenate(arrays)

    for b, stems in (("[0,30)", "abc"), ("[30,60)", "def")):
        for m in METHODS:
            row = table[b][m]
            assert row["n"] == 6
            for kind in ("fer", "dlib"):
                mean, std = kid(rows(stems, m, kind), rows(stems, "input", kind), seed=0)
                assert row[f"kid_{kind}"] == pytest.approx(mean) and row[f"kid_{kind}_std"] == pytest.approx(
                    std
                )
    # with real photos given, every bin is measured against them
    real = {"fer": rng.normal(size=(5, 8)), "dlib": rng.normal(size=(5, 8))}
    with_real = kid_by_bin(tmp_path, bins, METHODS, real, seed=0)
    assert with_real["[30,60)"]["2d"]["kid_fer"] == pytest.approx(
        kid(rows("def", "2d", "fer"), real["fer"])[0]
    )
    sets = set_level(tmp_path, list(YAWS), records, METHODS, None, None, {}, seed=0)
    assert sets["kid_by_bin"] == table and sets["n_real"] == 6 and "completeness_pooled" not in sets
    assert sets["kid"]["3d"]["kid_dlib"] == pytest.approx(
        kid(rows(YAWS, "3d", "dlib"), rows(YAWS, "input", "dlib"))[0]
    )


def _completeness_records() -> list[dict]:
    """3d rows of three frontal faces (happy and sad), one 45-degree face; 2d rows of one face."""
    recs = []
    for i, (yaw, mw_b, mw_a) in enumerate(
        ((5.0, 0.6, 0.7), (10.0, 0.7, 0.72), (20.0, 0.65, 0.7), (45.0, 0.6, 0.8))
    ):
        before, after = {"mouth_width": mw_b, "corner_lift": 0.0}, {"mouth_width": mw_a, "corner_lift": 0.01}
        for method in ("3d", "2d") if i == 0 else ("3d",):
            base = {"input": f"inputs/{i}.png", "method": method, "yaw": yaw}
            recs.append(
                {
                    **base,
                    "target": "happy",
                    "completeness": 0.1 * (i + 1),
                    "lm_before": before,
                    "lm_after": after,
                }
            )
            recs.append({**base, "target": "sad", "completeness": None})
    return recs


def test_completeness_table_pools_per_method_bin_and_target():
    from editing.compare.quality import pooled_completeness_ci
    from editing.compare.setlevel import completeness_table

    ref = {"mouth_width": 0.8, "corner_lift": 0.05}
    recs = _completeness_records()
    table = completeness_table(recs, {"happy": "happy"}, {"happy": ref}, seed=1)
    assert list(table) == ["3d", "2d"] and list(table["3d"]) == ["all", "[0,30)", "[30,60)"]
    front = table["3d"]["[0,30)"]["happy"]
    # by hand: mouth width (0.1 + 0.02 + 0.05) / (0.2 + 0.1 + 0.15), corner lift 0.03 / 0.15
    assert front["n"] == 3 and front["class"] == "happy"
    assert front["pooled"] == pytest.approx((0.17 / 0.45 + 0.2) / 2)
    assert front["median"] == pytest.approx(0.2)
    rows = [r for r in recs if r["method"] == "3d" and r["yaw"] < 30 and r["target"] == "happy"]
    expect = pooled_completeness_ci(
        [r["lm_before"] for r in rows], [r["lm_after"] for r in rows], ref, "happy", seed=1
    )
    assert (front["pooled"], front["low"], front["high"], front["n"]) == pytest.approx(expect)
    assert table["3d"]["all"]["happy"]["n"] == 4 and table["2d"]["all"]["happy"]["n"] == 1
    assert table["3d"]["[30,60)"]["happy"]["pooled"] == pytest.approx((0.2 / 0.2 + 0.01 / 0.05) / 2)
    assert "sad" not in table["3d"]["all"]  # no class measures, no row


def test_summary_json_round_trips_the_tables(tmp_path):
    from editing.compare.setlevel import completeness_table

    table = completeness_table(
        _completeness_records(), {"happy": "happy"}, {"happy": {"mouth_width": 0.8, "corner_lift": 0.05}}
    )
    back = json.loads(json.dumps(table))
    assert back["3d"]["[0,30)"]["happy"]["pooled"] == pytest.approx(table["3d"]["[0,30)"]["happy"]["pooled"])
    assert not math.isnan(back["2d"]["all"]["happy"]["pooled"])
