"""Detection, 68 landmarks and descriptors on scikit-image's bundled public-domain photos."""

from __future__ import annotations

import numpy as np
import pytest

from face3d.detect import (
    Detection,
    FaceDetector,
    descriptor_distance,
    dlib_box_from_landmark_box,
    face_chip,
    face_descriptor,
    iou,
    landmark_box,
    predict_landmarks,
)

skimage_data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skimage_data.astronaut()  # (512, 512, 3) uint8, one face


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


@pytest.fixture(scope="module")
def found(detector, astronaut) -> list[Detection]:
    return detector.detect(astronaut)


@pytest.fixture(scope="module")
def cameraman() -> np.ndarray:
    return np.stack([skimage_data.camera()] * 3, axis=-1)  # 512x512 grey: a face HOG misses


@pytest.fixture(scope="module")
def cameraman_found(detector, cameraman) -> list[Detection]:
    return detector.detect(cameraman)  # the CNN fallback (~1 s on 2 free cores)


@pytest.fixture(scope="module")
def landmarks(astronaut, found) -> np.ndarray:
    return predict_landmarks(astronaut, found[0])


def test_construction_loads_nothing():
    from face3d.detect import dlib_detector

    before = dict(dlib_detector._MODELS)
    FaceDetector()
    assert dlib_detector._MODELS == before


def test_astronaut_has_one_face_around_it(found):
    assert len(found) == 1
    det = found[0]
    assert det.source == "hog" and det.score > 0.5
    x0, y0, x1, y1 = det.box
    assert 165 <= x0 <= 195 and 250 <= x1 <= 280, det.box
    assert 60 <= y0 <= 100 and 155 <= y1 <= 185, det.box


def test_landmarks_ibug_order_inside_the_box(found, landmarks):
    assert landmarks.shape == (68, 2) and landmarks.dtype == np.float64
    x0, y0, x1, y1 = found[0].box
    pad = 0.25 * (x1 - x0)
    assert np.all(landmarks[:, 0] > x0 - pad) and np.all(landmarks[:, 0] < x1 + pad)
    assert np.all(landmarks[:, 1] > y0 - pad) and np.all(landmarks[:, 1] < y1 + pad)
    left_eye, right_eye = landmarks[36:42], landmarks[42:48]
    assert left_eye[:, 0].max() < right_eye[:, 0].min()  # 36-41 is the image-left eye
    nose_tip, eyes = landmarks[30], landmarks[36:48]
    assert left_eye[:, 0].mean() < nose_tip[0] < right_eye[:, 0].mean()
    assert nose_tip[1] > eyes[:, 1].max()
    assert landmarks[8, 1] > landmarks[57, 1] > landmarks[30, 1]  # chin below lower lip below nose
    assert landmarks[0, 0] < landmarks[16, 0]  # jaw runs image-left to image-right


def test_mapping_of_the_landmark_box_lands_on_the_hog_box(found, landmarks):
    mapped = dlib_box_from_landmark_box(landmark_box(landmarks))
    assert iou(mapped, found[0].box) > 0.7


def test_no_face_in_coffee(detector):
    assert detector.detect(skimage_data.coffee()) == []  # HOG, then the CNN: both find nothing


def test_no_face_in_noise(detector):
    noise = np.random.default_rng(0).integers(0, 256, (150, 200, 3), dtype=np.uint8)
    assert detector.detect(noise) == []  # small: HOG upsamples once, then the CNN


def test_cnn_fallback_finds_the_cameraman(cameraman_found):
    found = cameraman_found
    assert len(found) == 1 and found[0].source == "cnn"
    x0, y0, x1, y1 = found[0].box
    assert 150 < 0.5 * (x0 + x1) < 290 and 80 < 0.5 * (y0 + y1) < 220


def test_large_image_is_downscaled_and_boxes_mapped_back(detector, astronaut, found):
    import cv2

    big = cv2.resize(astronaut, (2048, 2048), interpolation=cv2.INTER_CUBIC)
    got = detector.detect(big)
    assert len(got) == 1
    expected = tuple((v + 0.5) * 4 - 0.5 for v in found[0].box)
    assert iou(got[0].box, expected) > 0.8


def test_largest_first_and_max_faces(detector, astronaut):
    import cv2

    small = cv2.resize(astronaut, None, fx=0.7, fy=0.7, interpolation=cv2.INTER_AREA)
    canvas = np.zeros((512, 1024, 3), np.uint8)
    canvas[:, :512] = astronaut
    canvas[: small.shape[0], 512 : 512 + small.shape[1]] = small
    got = detector.detect(canvas)
    assert len(got) == 2
    assert got[0].area > got[1].area and got[0].box[0] < 512 < got[1].box[0]
    assert detector.detect(canvas, max_faces=1) == got[:1]


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((64, 64), np.uint8),
        np.zeros((64, 64, 4), np.uint8),
        np.zeros((64, 64, 3), np.float32),
        [[0, 0, 0]],
    ],
    ids=["grey", "rgba", "float", "list"],
)
def test_only_rgb_uint8_is_accepted(detector, bad):
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        detector.detect(bad)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        predict_landmarks(bad, (10, 10, 50, 50))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        face_descriptor(bad, (10, 10, 50, 50))


def test_descriptor_same_flipped_and_other_face(astronaut, landmarks, detector, cameraman, cameraman_found):
    ref = face_descriptor(astronaut, landmarks)
    assert ref.shape == (128,) and ref.dtype == np.float64
    assert descriptor_distance(ref, face_descriptor(astronaut, landmarks)) == pytest.approx(0.0, abs=1e-6)
    flipped = astronaut[:, ::-1]  # not contiguous: must be handled
    det = detector.detect(flipped)[0]
    assert descriptor_distance(ref, face_descriptor(flipped, det)) < 0.6
    other = face_descriptor(cameraman, cameraman_found[0])
    assert descriptor_distance(ref, other) > 0.6


def test_face_chip_shape(astronaut, landmarks):
    chip = face_chip(astronaut, landmarks, size=96)
    assert chip.shape == (96, 96, 3) and chip.dtype == np.uint8
    with pytest.raises(ValueError, match=r"\(68, 2\)"):
        face_chip(astronaut, landmarks[:5])


def test_cnn_looks_small_first_and_larger_only_when_it_finds_nothing(
    monkeypatch, detector, cameraman, astronaut
):
    import face3d.detect.dlib_detector as dd

    sizes = []
    real = dd._model

    def counting(name):
        model = real(name)
        if name != "cnn":
            return model
        return lambda image, upsample: sizes.append(max(image.shape[:2])) or model(image, upsample)

    monkeypatch.setattr(dd, "_model", counting)
    portrait = np.ascontiguousarray(astronaut[:400, 40:440])  # the face a quarter of the frame
    assert len(detector.detect_cnn(portrait)) == 1 and sizes == [320]  # one small look suffices
    sizes.clear()
    assert len(detector.detect_cnn(cameraman)) == 1 and sizes == [320, 512]  # a small face: a second look
    small_only = FaceDetector(dd.DetectConfig(cnn_max_side=320, cnn_first_side=0))
    assert small_only.detect_cnn(cameraman) == []  # why the second look exists
    with pytest.raises(ValueError, match="cnn_first_side"):
        dd.DetectConfig(cnn_first_side=16)
