"""fit_image: detect every face, find its 68 landmarks, fit the model (faces batched)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from face3d.fit.config import FitConfig
from face3d.fit.landmark_fit import fit_landmarks
from face3d.fit.result import FitResult


@dataclass(frozen=True)
class FaceFit:
    """One fitted face of an image.

    Attributes:
        face_index: rank of the face in the image (largest detection first).
        bbox: (x0, y0, x1, y1) detection box, pixels.
        detector: ``"hog"``, ``"cnn"`` or ``"given"``; score: its confidence.
        landmarks_detected: (68, 2) the 2D landmarks the fit used, pixels.
        fit: the fit as a batch of one.
        timings_ms: per stage (``detect`` is shared by the faces of one image).
    """

    face_index: int
    bbox: tuple[float, float, float, float]
    detector: str
    score: float
    landmarks_detected: np.ndarray
    fit: FitResult
    timings_ms: dict[str, float]


@dataclass(frozen=True)
class Landmarked:
    """Detections and their landmarks for one image (the part that can run ahead in threads)."""

    image: np.ndarray
    detections: tuple
    landmarks: tuple[np.ndarray, ...]
    detect_ms: float
    landmarks_ms: float


def detect_and_landmark(image: np.ndarray, detector, max_faces: int | None = None, box=None) -> Landmarked:
    """Run detection (or take ``box``, a ground-truth-landmark box in protocol mode) and the
    68-point predictor on every face found."""
    from face3d.detect import Detection, dlib_box_from_landmark_box, predict_landmarks

    t0 = time.perf_counter()
    if box is not None:
        detections = [Detection(dlib_box_from_landmark_box(box), 1.0, "given")]
    else:
        detections = detector.detect(image, max_faces=max_faces)
    t1 = time.perf_counter()
    landmarks = tuple(predict_landmarks(image, d.box) for d in detections)
    t2 = time.perf_counter()
    return Landmarked(image, tuple(detections), landmarks, (t1 - t0) * 1e3, (t2 - t1) * 1e3)


def fit_detections(model, marked: Landmarked, config: FitConfig = FitConfig()) -> list[FaceFit]:
    """Fit every face of a :class:`Landmarked` image (batched)."""
    if not marked.detections:
        return []
    H, W = marked.image.shape[:2]
    targets = torch.as_tensor(np.stack(marked.landmarks), dtype=torch.float64)
    t0 = time.perf_counter()
    result = fit_landmarks(model, targets, (H, W), config).to(model.template.device)
    fit_ms = (time.perf_counter() - t0) * 1e3 / len(marked.detections)
    n = len(marked.detections)
    return [
        FaceFit(
            face_index=i,
            bbox=tuple(float(x) for x in d.box),
            detector=d.source,
            score=float(d.score),
            landmarks_detected=marked.landmarks[i],
            fit=result.select(i),
            timings_ms={
                "detect": marked.detect_ms / n,
                "landmarks": marked.landmarks_ms / n,
                "fit": fit_ms,
            },
        )
        for i, d in enumerate(marked.detections)
    ]


def fit_image(
    image: np.ndarray,
    model,
    config: FitConfig = FitConfig(),
    detector=None,
    max_faces: int | None = None,
    box=None,
) -> list[FaceFit]:
    """Detect and fit every face of an image (largest first).

    Args:
        image: (H, W, 3) uint8 RGB.
        model: :class:`face3d.model.MorphableModel`.
        config: :class:`FitConfig`.
        detector: a :class:`face3d.detect.FaceDetector` (a default one if None).
        max_faces: keep at most this many faces.
        box: protocol mode: the bounding box of the ground-truth 68 points (skips detection).
    Returns:
        One :class:`FaceFit` per face; empty when no face is found.
    """
    from face3d.detect import FaceDetector

    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image: expected (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    detector = detector or FaceDetector()
    return fit_detections(model, detect_and_landmark(image, detector, max_faces, box), config)
