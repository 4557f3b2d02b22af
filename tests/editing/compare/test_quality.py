"""editing.compare.quality: the measures of one edit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from editing.compare.quality import (
    changed_outside,
    changed_padding,
    completeness,
    expression_measures,
    grown_box,
    mouth_stats,
    psnr,
    speckles,
)


def _photo(seed: int = 0) -> np.ndarray:
    y, x = np.mgrid[0:60, 0:80]
    smooth = 120 + 40 * np.sin(x / 9.0) + 30 * np.cos(y / 7.0)
    return np.clip(smooth, 0, 255).astype(np.uint8)[..., None].repeat(3, -1)


def test_a_created_dot_is_a_speckle_a_moved_line_is_not():
    before = _photo()
    before[30, 10:40] = 10  # a dark line (a lip seam, an eyelash)
    after = before.copy()
    after[20, 60] = 5  # one isolated dark dot, created
    after[30, 10:40] = before[30, 10:40]
    after[31, 10:40], after[30, 10:40] = 10, before[29, 10:40]  # the line moved down a pixel
    assert speckles(before, after) == 1
    assert speckles(before, before) == 0


def test_changes_outside_the_grown_box_are_counted():
    before = _photo()
    lm = np.array([[30.0, 20.0], [50.0, 40.0]])
    x0, y0, x1, y1 = grown_box(lm)
    assert (x0, y0, x1, y1) == pytest.approx((23.0, 7.0, 57.0, 47.0))
    after = before.copy()
    after[30, 40] += 1  # inside
    assert changed_outside(before, after, (x0, y0, x1, y1)) == 0.0
    after[2, 2] += 1  # outside
    outside = before.shape[0] * before.shape[1] - (47 - 7) * (57 - 23)
    assert changed_outside(before, after, (x0, y0, x1, y1)) == pytest.approx(1 / outside)


def test_changes_in_the_padding_are_counted():
    before = _photo()
    before[:10] = 0  # a black band along the top
    after = before.copy()
    after[30, 40] += 1  # the photo
    assert changed_padding(before, after) == 0
    after[8:10, 20:25] = 90  # the face moved into the band
    assert changed_padding(before, after) == 10


def test_psnr_and_mouth_stats():
    a = _photo()
    assert psnr(a, a) == math.inf
    b = a.copy()
    b[0, 0, 0] ^= 1
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / (1 / a.size)))
    lm = np.zeros((68, 2))
    lm[60:68] = [(20, 20), (30, 15), (40, 15), (50, 20), (50, 30), (40, 35), (30, 35), (20, 30)]
    img = np.zeros((60, 80, 3), np.uint8)
    img[:, :40] = 100
    mean, std, n = mouth_stats(img, lm)
    assert n > 300 and 30 < mean < 70 and std > 40


def test_completeness_is_the_fraction_of_the_way():
    before = {"mouth_width": 5.0, "corner_lift": 0.0, "lip_gap": 0.1, "brow_height": 2.4}
    ref = {"mouth_width": 6.0, "corner_lift": 0.4, "lip_gap": 1.1, "brow_height": 3.0}
    after = {"mouth_width": 5.5, "corner_lift": 0.4, "lip_gap": 0.1, "brow_height": 2.4}
    assert completeness(before, after, ref, "happy") == pytest.approx(0.75)
    assert completeness(before, after, ref, "surprise") == pytest.approx(0.0)
    assert math.isnan(completeness(before, after, before, "happy"))


@pytest.mark.integration
def test_measures_follow_the_expression(ict_model):
    def measures(**weights):
        return expression_measures(ict_model, ict_model.expression_vector(weights)[0])

    neutral = measures()
    smile = measures(mouthSmile_L=0.8, mouthSmile_R=0.8)
    surprise = measures(jawOpen=0.5, browInnerUp_L=0.8, browInnerUp_R=0.8)
    assert smile["mouth_width"] > neutral["mouth_width"] + 0.5
    assert smile["corner_lift"] > neutral["corner_lift"]
    assert surprise["lip_gap"] > neutral["lip_gap"] + 0.5
    assert surprise["brow_height"] > neutral["brow_height"]


@pytest.mark.integration
def test_real_open_mouths_are_found_and_ordered(aflw_dir):
    from editing.compare.quality import real_mouths
    from face3d.eval import load_aflw, select_split

    ref = real_mouths(select_split(load_aflw(aflw_dir), "train"))
    assert ref["n"] > 20
    assert ref["mean_p10"] < ref["mean_p50"] < ref["mean_p90"] and ref["std_p10"] < ref["std_p90"]


def test_landmark_measures_in_interocular_units():
    from editing.compare.quality import landmark_measures

    L = np.zeros((68, 2))
    L[36:42], L[42:48] = (30.0, 50.0), (70.0, 50.0)  # eyes 40 px apart
    L[17:27] = (50.0, 38.0)  # brows 12 px above the eyes
    L[48], L[54] = (36.0, 88.0), (64.0, 88.0)  # corners 28 px apart, 2 px above the mid-lips
    L[51], L[57] = (50.0, 85.0), (50.0, 95.0)
    L[62], L[66] = (50.0, 89.0), (50.0, 91.0)
    m = landmark_measures(L)
    assert m == pytest.approx({"mouth_width": 0.7, "corner_lift": 0.05, "lip_gap": 0.05, "brow_height": 0.3})


# ------------------------------------------------------------------------------ over a set of faces
def _faces() -> tuple[list, list, dict]:
    """Five faces' dlib measures before and after a smile edit, and the happy class median."""
    mw_b, mw_a = [0.60, 0.70, 0.65, 0.80, 0.62], [0.70, 0.72, 0.70, 0.80, 0.70]
    cl_b, cl_a = [0.00, 0.02, 0.01, 0.05, 0.00], [0.02, 0.03, 0.04, 0.05, 0.01]
    befores = [{"mouth_width": w, "corner_lift": c} for w, c in zip(mw_b, cl_b, strict=True)]
    afters = [{"mouth_width": w, "corner_lift": c} for w, c in zip(mw_a, cl_a, strict=True)]
    return befores, afters, {"mouth_width": 0.80, "corner_lift": 0.05}


def test_pooled_completeness_is_summed_change_over_summed_gap():
    from editing.compare.quality import pooled_completeness

    befores, afters, ref = _faces()
    # mouth width: (0.10 + 0.02) / (0.20 + 0.10) = 0.4; corner lift: (0.02 + 0.01) / (0.05 + 0.03) = 0.375
    assert pooled_completeness(befores[:2], afters[:2], ref, "happy") == pytest.approx(0.3875)
    # a face without a reading is left out; none at all is undefined
    assert pooled_completeness([*befores[:2], None], [*afters[:2], afters[2]], ref, "happy") == pytest.approx(
        0.3875
    )
    assert math.isnan(pooled_completeness([], [], ref, "happy"))


def test_pooled_completeness_interval_resamples_faces():
    from editing.compare.quality import pooled_completeness, pooled_completeness_ci

    befores, afters, ref = _faces()
    value, lo, hi, n = pooled_completeness_ci(befores, afters, ref, "happy", n_boot=300, seed=4)
    # by hand: mouth width 0.25 / 0.63, corner lift 0.07 / 0.17 (the last face adds nothing to either)
    assert n == 5 and value == pytest.approx((0.25 / 0.63 + 0.07 / 0.17) / 2)
    assert value == pytest.approx(pooled_completeness(befores, afters, ref, "happy"))
    # the same resamples, pooled one by one
    idx = np.random.default_rng(4).integers(0, 5, size=(300, 5))
    boots = [pooled_completeness([befores[i] for i in k], [afters[i] for i in k], ref, "happy") for k in idx]
    boots = [b for b in boots if math.isfinite(b)]
    assert (lo, hi) == pytest.approx(tuple(np.quantile(boots, [0.025, 0.975])))
    assert lo < value < hi
    assert pooled_completeness_ci(befores[:1], afters[:1], ref, "happy")[1:] == (
        pytest.approx(0.45),  # (0.1 / 0.2 + 0.02 / 0.05) / 2
        pytest.approx(0.45),
        1,
    )
    assert pooled_completeness_ci([], [], ref, "happy")[3] == 0


def test_landmark_references_are_medians_per_class(tmp_path):
    skimage_data = pytest.importorskip("skimage.data")
    import cv2

    from editing.compare.quality import landmark_references, load_fer_faces

    grey = cv2.cvtColor(skimage_data.astronaut()[20:220, 150:330], cv2.COLOR_RGB2GRAY)
    face = cv2.resize(grey, (48, 48), interpolation=cv2.INTER_AREA)
    other = np.ascontiguousarray(face[:, ::-1])  # mirrored: other measures
    np.savez(
        tmp_path / "fer.npz",
        x_test=np.stack([face, other, face, face]),
        y_test=np.array([3, 3, 3, 5]),
        classes=np.array(["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]),
    )
    faces = load_fer_faces(tmp_path / "fer.npz", ["happy", "surprise", "neutral"], n=3)
    assert [len(faces[c]) for c in ("happy", "surprise", "neutral")] == [3, 1, 0]
    refs = landmark_references(faces)
    assert refs["neutral"] == {}
    # the median of (face, other, face) is the face's own reading, measure by measure
    assert refs["happy"] == pytest.approx(refs["surprise"])
    assert set(refs["happy"]) == {"mouth_width", "corner_lift", "lip_gap", "brow_height"}
    assert landmark_references({"happy": other[None]})["happy"] != pytest.approx(refs["happy"])


@pytest.mark.integration
def test_measure_photo_reads_the_edit_by_flow_with_known_landmarks(aflw_dir):
    """With the photo's own landmarks given, a happy edit is read by the flow reader too: the
    mouth widens (positive completeness), and nothing is changed in any padding."""
    from editing.api import EditContext
    from editing.compare.quality import FER_CLASSES, class_references, load_fer_faces, measure_photo
    from editing.expressions import parse_expressions
    from face3d.detect import face_descriptor
    from face3d.eval.aflw import load_aflw
    from face3d.io import read_image

    fer = aflw_dir.parent / "fer2013" / "fer2013_48.npz"
    if not fer.exists():
        pytest.skip("FER2013 not available")
    ctx = EditContext.from_dir(refine="none")
    refs = class_references(ctx, load_fer_faces(fer, FER_CLASSES, 8))
    assert {"nose:happy", "dlib:happy", "happy"} <= set(refs)
    s = next(s for s in load_aflw(aflw_dir) if abs(s.yaw) < 20)
    specs = parse_expressions("happy", ctx.fit_model.expression_names)
    image = read_image(s.image_path)
    (row,) = measure_photo(image, s.box, ctx, specs, refs, face_descriptor, s.landmarks, s.yaw)
    assert row["completeness_flow"] > 0.05  # 0.17 on this face (8 reference faces per class)
    assert row["flow_after"]["mouth_width"] > row["flow_before"]["mouth_width"]
    assert row["changed_padding"] == 0
    no_lm = measure_photo(image, s.box, ctx, specs, refs, face_descriptor)
    assert math.isnan(no_lm[0]["completeness_flow"]) and no_lm[0]["flow_after"] is None
