"""The regressor-scored detection fallback (face3d.regress.proposals) and its pipeline hook."""

from __future__ import annotations

import numpy as np
import pytest

from face3d.regress.infer import LandmarkRegressor
from face3d.regress.network import default_weights_dir
from face3d.regress.proposals import (
    FALLBACK_SOURCE,
    ProposalConfig,
    nms,
    propose_faces,
    window_crops,
    window_sides,
)


@pytest.fixture(scope="module")
def shipped():
    if not (default_weights_dir() / "weights.pt").is_file():
        pytest.skip("shipped regressor weights (assets/regressor) not available")
    return LandmarkRegressor.from_pretrained(flip=True)


@pytest.mark.parametrize(
    "kw",
    [
        {"min_face": 0.0},
        {"min_face": 0.9, "max_face": 0.5},
        {"scale_step": 1.0},
        {"stride": 0.0},
        {"stride": 1.5},
        {"top_k": 0},
        {"refine_steps": 0},
        {"max_faces": 0},
        {"min_confidence": 1.5},
        {"nms_iou": -0.1},
    ],
)
def test_config_validation(kw):
    with pytest.raises(ValueError):
        ProposalConfig(**kw)


def test_window_sides_span_the_range():
    cfg = ProposalConfig(min_face=0.2, max_face=0.8, scale_step=1.4)
    sides = window_sides((300, 500, 3), cfg)
    assert sides[0] == pytest.approx(60.0) and sides[-1] <= 0.8 * 300 + 1e-6
    assert sides[-1] * 1.4 > 0.8 * 300 and np.allclose(np.diff(np.log(sides)), np.log(1.4))


def test_window_crops_match_the_regressor_crops():
    """Each window is what LandmarkRegressor.crops cuts for its returned box (up to resampling)."""
    from face3d.crop import crop_box, crop_transform, warp_crop

    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    import cv2

    image = cv2.resize(small, (320, 240), interpolation=cv2.INTER_CUBIC)  # smooth, so resampling agrees
    cfg = ProposalConfig(stride=0.5)
    crops, boxes = window_crops(image, 80.0, cfg, 32, 1.5)
    assert crops.shape[1:] == (32, 32, 3) and boxes.shape == (len(crops), 4)
    assert np.allclose(boxes[:, 2] - boxes[:, 0], 80.0) and np.allclose(boxes[:, 3] - boxes[:, 1], 80.0)
    for c, b in zip(crops[::5], boxes[::5], strict=True):
        ref = warp_crop(image, crop_transform(*crop_box(b, 1.5), 32), 32)
        assert np.abs(c.astype(float) - ref).mean() < 6.0
    # windows cover the image: centres from side/2 to the far edge - side/2
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    assert cx.min() < 45 and cx.max() > 320 - 45


def test_nms_keeps_best_of_overlapping():
    boxes = [(0, 0, 10, 10), (1, 1, 11, 11), (20, 20, 30, 30)]
    assert nms(boxes, [0.5, 0.9, 0.1], 0.3) == [1, 2]


def test_no_face_images_give_nothing(shipped):
    """Flat, noise and gradient images: no window scores as a face (the confidence rejects
    these; it does not reject cluttered real photos, see scripts/bench/bench_detect.py)."""
    rng = np.random.default_rng(1)
    grad = np.repeat(np.linspace(0, 255, 300)[None, :, None], 240, 0).repeat(3, 2).astype(np.uint8)
    for image in (np.full((240, 300, 3), 128, np.uint8), rng.integers(0, 256, (240, 300, 3), np.uint8), grad):
        assert propose_faces(image, shipped) == []


# yaw -35 deg, in the held-out half: dlib's HOG and CNN detectors find no face; the shipped
# confidence of the fallback's refined box is about 0.96, under the strict default (0.9999).
PROFILE = "image01323.jpg"
# in the held-out half, lying on its side: dlib finds nothing, the fallback scores it above 0.9999
ON_ITS_SIDE = "image00617.jpg"


def _aflw_image(aflw_dir, name):
    from face3d.eval.aflw import load_aflw
    from face3d.io import read_image

    sample = next((s for s in load_aflw(aflw_dir) if s.image_path.name == name), None)
    if sample is None:
        pytest.skip(f"{name} not in {aflw_dir}")
    return sample, read_image(sample.image_path)


def _on_face(box, gt) -> bool:
    """The bench's criterion (scripts/bench/bench_detect.py): the box's centre lies in the ground-truth
    68-point box or IoU > 0.3."""
    from face3d.detect import iou

    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return iou(box, gt) > 0.3 or (gt[0] <= cx <= gt[2] and gt[1] <= cy <= gt[3])


@pytest.mark.integration
def test_fallback_finds_a_face_dlib_misses(shipped, aflw_dir):
    from face3d.detect import FaceDetector
    from face3d.fit.pipeline import LandmarkConfig, detect_and_landmark

    sample, image = _aflw_image(aflw_dir, PROFILE)
    detector = FaceDetector()
    assert detector.detect(image) == []
    lenient = ProposalConfig(min_confidence=0.9)
    found = propose_faces(image, shipped, lenient)
    assert len(found) == 1 and 0.9 <= found[0].confidence < ProposalConfig().min_confidence
    assert _on_face(found[0].landmark_box, sample.box)
    # the pipeline: on by default, at the strict threshold: nothing here; at 0.9 the face, marked
    assert detect_and_landmark(image, detector, regressor=shipped).detections == ()
    marked = detect_and_landmark(image, detector, regressor=shipped, config=LandmarkConfig(proposals=lenient))
    assert [d.source for d in marked.detections] == [FALLBACK_SOURCE]
    assert np.allclose(marked.regressions[0].box, found[0].landmark_box)
    off = LandmarkConfig(fallback=False, proposals=lenient)
    assert detect_and_landmark(image, detector, regressor=shipped, config=off).detections == ()


@pytest.mark.integration
def test_default_pipeline_finds_a_face_on_its_side(shipped, aflw_dir):
    """dlib misses a face lying on its side; the default pipeline's fallback finds it (upright
    search included) and takes the network's landmarks: NME < 10 % of the ground-truth box."""
    from face3d.detect import FaceDetector
    from face3d.eval.metrics import nme
    from face3d.fit.pipeline import detect_and_landmark

    sample, image = _aflw_image(aflw_dir, ON_ITS_SIDE)
    marked = detect_and_landmark(image, FaceDetector(), regressor=shipped)
    assert [d.source for d in marked.detections] == [FALLBACK_SOURCE]
    assert marked.detections[0].score >= ProposalConfig().min_confidence
    assert _on_face(marked.regressions[0].box, sample.box)
    assert marked.regressions[0].turns != 0 and marked.sources == ("regressor",)
    assert nme(marked.landmarks[0], sample.landmarks) < 10.0
