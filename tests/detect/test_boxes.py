"""Box conventions, conversions and the landmark-box mapping file (no model is loaded)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from face3d.detect import (
    BoxMappingError,
    DetectConfig,
    Detection,
    apply_mapping,
    default_mapping_path,
    dlib_box_from_landmark_box,
    from_dlib_rect,
    iou,
    landmark_box,
    load_mapping,
    to_dlib_rect,
)
from face3d.detect.boxes import MAPPING_KEYS, scale_box


def test_dlib_rect_round_trip_keeps_corner_pixels():
    import dlib

    rect = dlib.rectangle(179, 83, 266, 170)
    assert from_dlib_rect(rect) == (179.0, 83.0, 266.0, 170.0)
    back = to_dlib_rect((179.4, 82.6, 265.5, 170.49))
    assert (back.left(), back.top(), back.right(), back.bottom()) == (179, 83, 266, 170)


def test_landmark_box_and_iou():
    pts = np.array([[10.0, 20.0], [30.0, 5.0], [15.0, 40.0]])
    assert landmark_box(pts) == (10.0, 5.0, 30.0, 40.0)
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == pytest.approx(1.0)
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        landmark_box(np.zeros((68, 3)))


def test_grow_box_scales_about_the_centre():
    from face3d.detect.boxes import grow_box

    assert np.allclose(grow_box((10, 20, 30, 60), 1.5), (5, 10, 35, 70))
    assert np.allclose(grow_box((10, 20, 30, 60), 1.0), (10, 20, 30, 60))
    assert np.allclose(grow_box(grow_box((1, 2, 5, 3), 2.0), 0.5), (1, 2, 5, 3))


def test_best_match_picks_the_labelled_face_not_the_largest():
    from face3d.detect.boxes import best_match

    gt = (100, 100, 150, 150)
    boxes = [(0, 0, 400, 400), (105, 98, 152, 149), (300, 300, 320, 320)]  # largest first
    assert best_match(boxes, gt) == 1
    assert best_match(boxes[::2], gt) is None  # the big box overlaps it by 2500 / 160000 < 0.2
    assert best_match(boxes[::2], gt, min_iou=0.01) == 0
    assert best_match([], gt) is None


def test_scale_box_inverts_a_resize_of_pixel_centres():
    # pixel centre x in the original -> (x + 0.5) * f - 0.5 after resizing by f
    box = (100.0, 50.0, 200.0, 150.0)
    f = 0.25
    small = tuple((v + 0.5) * f - 0.5 for v in box)
    assert scale_box(small, f) == pytest.approx(box)


def test_bad_boxes_and_detections_are_rejected():
    with pytest.raises(ValueError, match="4 finite"):
        Detection((0, 0, 1), 1.0, "hog")
    with pytest.raises(ValueError, match="x1 < x0"):
        Detection((5, 0, 1, 1), 1.0, "hog")
    with pytest.raises(ValueError, match="source"):
        Detection((0, 0, 1, 1), 1.0, "mtcnn")
    det = Detection.given([1, 2, 3, 4])
    assert det == Detection((1.0, 2.0, 3.0, 4.0), 1.0, "given")
    with pytest.raises(AttributeError):
        det.score = 2.0  # frozen
    with pytest.raises(ValueError):
        DetectConfig(max_side=10)


def test_shipped_mapping_is_sane():
    path = default_mapping_path()
    assert path.name == "bbox_mapping.json" and path.parent.name == "assets"
    mapping = load_mapping()
    assert set(mapping) == set(MAPPING_KEYS)
    meta = json.loads(path.read_text())
    assert "scripts/rebuild/calibrate_bbox.py" in meta["command"] and meta["fit"]["n_images"] > 100
    # a frontal face's landmark box: the dlib box is about as large, shifted up (brows cut, chin kept)
    out = dlib_box_from_landmark_box((100.0, 100.0, 200.0, 200.0))
    w, h = out[2] - out[0], out[3] - out[1]
    assert 0.8 < w / 100 < 1.4 and 0.8 < h / 100 < 1.4
    assert abs(0.5 * (out[0] + out[2]) - 150) < 10
    assert 0.5 * (out[1] + out[3]) < 150


def test_apply_mapping_is_translation_and_scale_equivariant():
    m = {"dcx": (0.01, 0.0), "dcy": (0.0, -0.08), "w": (1.05, 0.0), "h": (0.0, 1.1)}
    a = np.array(apply_mapping((0, 0, 100, 120), m))
    b = np.array(apply_mapping((50, 30, 250, 270), m))
    assert b == pytest.approx(2 * a + np.array([50, 30, 50, 30]))


def test_missing_or_corrupt_mapping_names_the_file(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(BoxMappingError, match="nope.json"):
        dlib_box_from_landmark_box((0, 0, 10, 10), mapping_path=missing)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(BoxMappingError, match="bad.json"):
        load_mapping(bad)
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"coefficients": {"dcx": [0, 0]}}))
    with pytest.raises(BoxMappingError, match="partial.json"):
        load_mapping(partial)
