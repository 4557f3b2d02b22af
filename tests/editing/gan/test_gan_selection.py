"""Which photos a GAN training cache draws: the even spread, and the benchmark set that holds
them out."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from editing.gan.selection import select_evenly, selected_images


def test_select_evenly_spreads_over_the_list():
    assert select_evenly(10, None).tolist() == list(range(10))
    assert select_evenly(10, 20).tolist() == list(range(10))
    idx = select_evenly(1000, 5)
    assert idx.tolist() == [0, 250, 500, 749, 999]


def test_selected_images_are_the_caches_draw_and_compare_sets_holds_them_out(tmp_path):
    """selected_images: build_cache's even draw over the sorted files, no cache needed; the LFW
    compare set then skips every person of that draw."""
    people = [f"P{i}" for i in range(6)]
    for name in people:
        (tmp_path / name).mkdir()
        for k in (1, 2):
            (tmp_path / name / f"{name}_{k:04d}.jpg").write_bytes(b"x")
    picked = selected_images([str(tmp_path)], 3)  # 12 files: indices 0, 6 (5.5 rounded), 11
    assert [p.name for p in picked] == ["P0_0001.jpg", "P3_0001.jpg", "P5_0002.jpg"]
    assert len(selected_images([str(tmp_path)], None)) == 12
    script = Path(__file__).resolve().parents[3] / "scripts" / "bench" / "compare_sets.py"
    spec = importlib.util.spec_from_file_location("compare_sets", script)
    compare_sets = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare_sets)
    chosen = compare_sets.lfw_inputs(tmp_path, 10, None, exclude_selection=3)
    assert [p.parent.name for p in chosen] == ["P1", "P2", "P4"]
    assert [p.name for p in chosen] == ["P1_0001.jpg", "P2_0001.jpg", "P4_0001.jpg"]
