"""The landmark-source switch of the default pipeline (face3d.fit.pipeline)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from face3d.fit.pipeline import LandmarkConfig, prefers_regressor


def test_switch_by_yaw_turns_and_box_origin():
    """Detector boxes switch to the regressor at 30 degrees; a box the caller gave always takes
    it (dlib's predictor is poor on boxes not its own); a turned face always does."""
    near, far = SimpleNamespace(yaw=-12.0, turns=0), SimpleNamespace(yaw=31.0, turns=0)
    turned = SimpleNamespace(yaw=5.0, turns=1)
    assert not prefers_regressor(near) and prefers_regressor(far) and prefers_regressor(turned)
    assert prefers_regressor(near, given_box=True)
    strict = LandmarkConfig(given_box_min_yaw=15.0)
    assert not prefers_regressor(near, strict, given_box=True) and prefers_regressor(
        far, strict, given_box=True
    )
    assert prefers_regressor(turned, LandmarkConfig(given_box_min_yaw=1e9), given_box=True)


def test_landmark_source_per_face():
    """Detector boxes: the network beyond the switch, the blend below it (dlib's points alone with
    blend 0 or without a regression); given boxes: the network; --fast: always the network."""
    from face3d.fit.pipeline import choose_landmark_source as choose

    near, far = SimpleNamespace(yaw=10.0, turns=0), SimpleNamespace(yaw=-45.0, turns=0)
    assert choose(far) == "regressor" and choose(near) == "blend" and choose(None) == "dlib"
    assert choose(near, LandmarkConfig(blend=0.0)) == "dlib"
    assert choose(near, given_box=True) == "regressor"
    assert choose(near, LandmarkConfig(given_box_min_yaw=30.0), given_box=True) == "dlib"
    assert choose(near, LandmarkConfig(fast=True)) == "regressor"


def test_recrops_run_on_the_grown_box_of_the_landmarks():
    """Each re-crop regresses from the previous landmarks' box grown about its centre; a detector
    box is re-cropped ``regressor_recrop`` times, a given box never."""
    import numpy as np

    from face3d.detect import Detection
    from face3d.fit.pipeline import detect_and_landmark, recrop_regressions

    class Fake:  # landmarks spanning 80 % of the box it is given, centred on it
        def __init__(self):
            self.boxes, self.profile = [], []

        def predict_batch(self, image, boxes, profile=True):
            self.boxes.append([tuple(b) for b in boxes])
            self.profile.append(profile)
            out = []
            for x0, y0, x1, y1 in boxes:
                c, h = np.array([(x0 + x1) / 2, (y0 + y1) / 2]), 0.4 * np.array([x1 - x0, y1 - y0])
                pts = c + h * np.array([[-1, -1], [1, 1], [0, 0]])
                out.append(SimpleNamespace(landmarks=pts, confidence=1.0, yaw=50.0, turns=0))
            return out

    fake = Fake()
    first = fake.predict_batch(None, [(0.0, 0.0, 100.0, 50.0)])
    final = recrop_regressions(None, fake, first, 2, 1.25)  # 0.8 x 1.25: a fixed point
    assert np.allclose(fake.boxes[1][0], (0, 0, 100, 50)) and np.allclose(fake.boxes[2][0], (0, 0, 100, 50))
    assert np.allclose(final[0].landmarks[:2], [[10, 5], [90, 45]])
    recrop_regressions(None, fake, first, 1, 1.0)  # bare landmark boxes shrink
    assert np.allclose(fake.boxes[-1][0], (10, 5, 90, 45))

    class Detector:
        def detect(self, image, max_faces=None):
            return [Detection((100.0, 100.0, 200.0, 200.0), 1.0, "hog")]

    image = np.zeros((300, 300, 3), np.uint8)
    fake = Fake()
    marked = detect_and_landmark(image, Detector(), 1, None, fake, LandmarkConfig(regressor_recrop=3))
    assert len(fake.boxes) == 1 + 3 and marked.sources == ("regressor",)
    assert fake.profile == [False, False, False, True]  # the profile views on the kept pass only
    fake = Fake()
    detect_and_landmark(image, Detector(), 1, None, fake, LandmarkConfig(regressor_recrop=0))
    assert fake.profile == [True]
    fake = Fake()
    detect_and_landmark(image, Detector(), 1, (100.0, 100.0, 200.0, 200.0), fake, LandmarkConfig())
    assert len(fake.boxes) == 1 and fake.profile == [True]


def test_recrop_settings_are_checked():
    with pytest.raises(ValueError, match="regressor_recrop_scale"):
        LandmarkConfig(regressor_recrop_scale=0.0)
    with pytest.raises(ValueError, match="regressor_recrop must"):
        LandmarkConfig(regressor_recrop=-1)


@pytest.mark.integration
def test_given_box_takes_the_regressors_landmarks(aflw_dir):
    """A near-frontal face: dlib's points on a detector-style run, the network's on a given box
    (unless the config says otherwise)."""
    from face3d.eval.aflw import load_aflw
    from face3d.fit.pipeline import default_regressor, detect_and_landmark
    from face3d.io import read_image

    regressor = default_regressor()
    if regressor is None:
        pytest.skip("shipped regressor weights (assets/regressor) not available")
    sample = next(s for s in load_aflw(aflw_dir) if s.image_path.name == "image00002.jpg")
    image = read_image(sample.image_path)
    marked = detect_and_landmark(image, None, 1, sample.box, regressor)
    assert abs(marked.regressions[0].yaw) < 30 and marked.sources == ("regressor",)
    old = detect_and_landmark(image, None, 1, sample.box, regressor, LandmarkConfig(given_box_min_yaw=30.0))
    assert old.sources == ("dlib",)


def test_blend_landmarks_and_its_weight():
    import numpy as np

    from face3d.fit.pipeline import blend_landmarks

    a, b = np.zeros((68, 2)), np.full((68, 2), 4.0)
    assert np.allclose(blend_landmarks(a, b, 0.25), 1.0) and np.allclose(blend_landmarks(a, b, 0.0), a)
    with pytest.raises(ValueError, match="blend"):
        blend_landmarks(a, b, 1.5)
    with pytest.raises(ValueError, match="blend"):
        LandmarkConfig(blend=-0.1)
    with pytest.raises(ValueError, match="blend_inner_lips"):
        LandmarkConfig(blend_inner_lips=2.0)
    lips = blend_landmarks(a, b, 0.5, inner_lips=0.0)  # the inner lips (60-67) take their own weight
    assert np.allclose(lips[60:68], 0.0) and np.allclose(lips[:60], 2.0)


@pytest.mark.integration
def test_detector_box_blends_dlib_and_the_network_near_frontal(aflw_dir, ict_model):
    """On a detector's box a near-frontal face takes the blend of dlib's and the network's points
    and is fitted in the network's convention; blend 0 gives dlib's points alone."""
    import numpy as np

    from face3d.detect import FaceDetector, predict_landmarks
    from face3d.eval.aflw import load_aflw
    from face3d.eval.metrics import nme
    from face3d.fit.pipeline import default_regressor, detect_and_landmark, fit_detections
    from face3d.io import read_image

    regressor = default_regressor()
    if regressor is None:
        pytest.skip("shipped regressor weights (assets/regressor) not available")
    sample = next(s for s in load_aflw(aflw_dir) if s.image_path.name == "image00002.jpg")
    image = read_image(sample.image_path)
    marked = detect_and_landmark(image, FaceDetector(), 1, None, regressor)
    assert marked.sources == ("blend",)
    dlib_points = predict_landmarks(image, marked.detections[0].box)
    want = 0.5 * (dlib_points + marked.regressions[0].landmarks)
    want[60:68] = dlib_points[60:68]  # dlib's inner lips alone: they follow an open mouth
    assert np.allclose(marked.landmarks[0], want)
    face = fit_detections(ict_model, marked)[0]
    assert face.landmark_source == "blend" and face.landmark_offset is not None
    assert nme(face.fit.landmarks_fitted[0].numpy(), sample.landmarks) < 5.0
    plain = detect_and_landmark(image, FaceDetector(), 1, None, regressor, LandmarkConfig(blend=0.0))
    assert plain.sources == ("dlib",) and np.allclose(plain.landmarks[0], dlib_points)


def test_landmarked_select_keeps_one_face():
    """Landmarked.select(i): that face's detection, points, source and regression, the image's times."""
    import numpy as np

    from face3d.fit.pipeline import Landmarked

    image = np.zeros((8, 8, 3), np.uint8)
    pts = (np.zeros((68, 2)), np.ones((68, 2)))
    marked = Landmarked(image, ("d0", "d1"), pts, 5.0, 2.0, ("dlib", "blend"), ("r0", "r1"), 3.0)
    one = marked.select(1)
    assert one.detections == ("d1",) and one.sources == ("blend",) and one.regressions == ("r1",)
    assert one.landmarks[0] is pts[1] and one.image is image
    assert (one.detect_ms, one.landmarks_ms, one.regress_ms) == (5.0, 2.0, 3.0)
    bare = Landmarked(image, ("d0",), pts[:1], 1.0, 1.0).select(0)  # no sources, no regressions
    assert bare.sources == () and bare.regressions == ()
    with pytest.raises(IndexError, match="face 2 of 2"):
        marked.select(2)
