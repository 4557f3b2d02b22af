"""Face detection, 68 landmarks and 128-d identity descriptors with dlib's models.

Models come from the ``face_recognition_models`` package (dlib's HOG detector is built into dlib) and
are loaded on first use, once per process, shared by every :class:`FaceDetector`. Importing this
module or constructing a detector does no work. Each public function is one stage (detect, landmarks,
descriptor) so that callers can time them separately.

Images are ``(H, W, 3)`` uint8 RGB arrays; boxes are ``(x0, y0, x1, y1)`` in the corner-pixel-centre
frame of :mod:`face3d.detect.boxes`; landmarks are ``(68, 2)`` float64 ``(x, y)`` in the same pixel
frame (0-based: add 1 to compare with MATLAB/AFLW2000-3D annotations), in the iBUG 68-point order
(0-16 jaw, 17-26 brows, 27-35 nose, 36-41 the image-left eye, 42-47 the image-right eye, 48-67 mouth).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from face3d.detect.boxes import Box, as_box, from_dlib_rect, landmark_box, scale_box, to_dlib_rect

Landmarks = NDArray[np.float64]
"""(68, 2) float64 ``(x, y)`` pixel coordinates, iBUG order, 0-based."""

SOURCES = ("hog", "cnn", "given", "regressor-fallback")  # the last: face3d.regress.proposals


@dataclass(frozen=True)
class Detection:
    """One face found in an image.

    Attributes:
        box: ``(x0, y0, x1, y1)`` float pixels (corner-pixel centres, see :mod:`face3d.detect.boxes`).
        score: the detector's confidence: HOG SVM margin (> ``hog_threshold``), CNN mmod confidence,
            or 1.0 for a box the caller gave, or the regressor's confidence (``regressor-fallback``).
        source: ``"hog"``, ``"cnn"``, ``"given"`` or ``"regressor-fallback"`` (see
            :mod:`face3d.regress.proposals`).
    """

    box: Box
    score: float
    source: str

    def __post_init__(self):
        object.__setattr__(self, "box", as_box(self.box))
        object.__setattr__(self, "score", float(self.score))
        if self.source not in SOURCES:
            raise ValueError(f"Detection.source must be one of {SOURCES}, got {self.source!r}")

    @classmethod
    def given(cls, box) -> Detection:
        """A detection for a box supplied by the caller (score 1.0, source ``"given"``)."""
        return cls(as_box(box), 1.0, "given")

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return (x1 - x0) * (y1 - y0)


@dataclass(frozen=True)
class DetectConfig:
    """Settings of :meth:`FaceDetector.detect`. Defaults measured on the AFLW2000-3D dev half
    (450x450 images, faces ~150-300 px, all yaws); see ``assets/bbox_mapping.json`` for the numbers.

    Attributes:
        max_side: images whose longest side exceeds this are downscaled to it (``cv2.INTER_AREA``)
            before detection, and the boxes mapped back. Bounds the HOG cost (~0.1 s per megapixel
            at upsample 0); faces under ~65 * longest_side / max_side px are then missed.
        hog_upsample: times HOG upsamples the image (x2 each): HOG finds faces down to ~65-70 px
            (box width), ~35 px once upsampled, at ~4x the time (AFLW2000-3D 450x450: 25 vs 97 ms per
            image, no more faces found; LFW 250x250: 9 vs 30 ms, 99.0 vs 99.5 % found). ``None``: 1
            when the short side of the (possibly downscaled) image is below ``hog_upsample_below``
            px, else 0.
        hog_upsample_below: short side (px) under which ``hog_upsample=None`` upsamples once.
        hog_threshold: ``adjust_threshold`` of dlib's HOG ``run``: detections need an SVM score above
            it. 0 is dlib's default; lower finds more (profile) faces and more false ones (AFLW2000-3D
            dev, by |yaw| bin: 0 finds 93.5 / 58.7 / 16.6 % with 5 false boxes in 1000 images,
            -0.3 finds 96.6 / 70.1 / 28.7 % with 17).
        use_cnn: run dlib's CNN (mmod) detector when HOG finds nothing. It finds faces at every yaw
            but costs ~0.8 s per 450x450 image on 2 threads (time grows with the pixel count).
        cnn_max_side: the CNN sees the image downscaled so its longest side is at most this. Its cost
            grows with the pixel count (~0.8 s at 450x450 on 2 threads, ~1 s at 512x512, 2-3 s when
            the cores are shared) and its smallest face is ~65 px (HOG-box width) in what it sees, so
            512 bounds a fallback to ~1 s and finds faces down to ~13 % of the longest side (at 400,
            skimage's 512 px ``camera()`` face, ~80 px, is lost).
        cnn_first_side: the CNN first sees the image capped at this (0: off), and at
            ``cnn_max_side`` only where it finds nothing there: 320 px costs half as much. On the
            AFLW2000-3D dev photos HOG misses (121 held-out, 131 train), 320 finds as many faces as
            512 (115 / 114 and 128 / 128) in 0.52 s against 1.10 s (median, one thread); the second
            look keeps the faces only the larger image shows.
        cnn_upsample: times the CNN upsamples its (capped) input; each costs ~4x the time.
        cnn_min_score: keep CNN detections whose mmod confidence is above this.
    """

    max_side: int = 1000
    hog_upsample: int | None = None
    hog_upsample_below: int = 200
    hog_threshold: float = 0.0
    use_cnn: bool = True
    cnn_max_side: int = 512
    cnn_first_side: int = 320
    cnn_upsample: int = 0
    cnn_min_score: float = 0.0

    def __post_init__(self):
        if self.max_side < 32 or self.cnn_max_side < 32:
            raise ValueError("max_side and cnn_max_side must be at least 32 px")
        if self.cnn_first_side != 0 and self.cnn_first_side < 32:
            raise ValueError("cnn_first_side must be 0 (off) or at least 32 px")
        if (self.hog_upsample is not None and self.hog_upsample < 0) or self.cnn_upsample < 0:
            raise ValueError("upsample counts must be >= 0")


# ------------------------------------------------------------------------------ models
_LOCK = threading.Lock()
_MODELS: dict[str, object] = {}


def _model(name: str):
    """Load (once) and return ``"hog"``, ``"cnn"``, ``"predictor"`` or ``"recognizer"``."""
    model = _MODELS.get(name)
    if model is not None:
        return model
    with _LOCK:
        if name not in _MODELS:
            import dlib
            import face_recognition_models as frm

            if name == "hog":
                _MODELS[name] = dlib.get_frontal_face_detector()
            elif name == "cnn":
                _MODELS[name] = dlib.cnn_face_detection_model_v1(frm.cnn_face_detector_model_location())
            elif name == "predictor":
                _MODELS[name] = dlib.shape_predictor(frm.pose_predictor_model_location())
            elif name == "recognizer":
                _MODELS[name] = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
            else:
                raise KeyError(name)
        return _MODELS[name]


def check_image(image) -> np.ndarray:
    """Return ``image`` as a C-contiguous (H, W, 3) uint8 array (what dlib needs).

    Raises:
        ValueError: anything else (grey, RGBA, float...): convert with ``face3d.read_image`` first.
    """
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise ValueError(f"expected an RGB uint8 image of shape (H, W, 3), got shape {shape} dtype {dtype}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"expected an RGB uint8 image of shape (H, W, 3), got an empty one {image.shape}")
    return np.ascontiguousarray(image)


def _downscale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Resize so the longest side is at most ``max_side``; returns the image and the factor used."""
    longest = max(image.shape[:2])
    if longest <= max_side:
        return image, 1.0
    import cv2

    factor = max_side / longest
    size = (max(1, round(image.shape[1] * factor)), max(1, round(image.shape[0] * factor)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    # the exact factor per axis differs by rounding; use the horizontal one for both (< 0.5 px)
    return np.ascontiguousarray(small), size[0] / image.shape[1]


# ------------------------------------------------------------------------------ detector
class FaceDetector:
    """dlib HOG face detector with the CNN (mmod) detector as a fallback when HOG finds nothing.

    Construction only stores the settings; models load on the first :meth:`detect`.
    """

    def __init__(self, config: DetectConfig | None = None):
        self.config = config if config is not None else DetectConfig()

    def hog_upsample_for(self, shape: tuple[int, ...]) -> int:
        """HOG upsample count used for an image of ``shape`` (H, W, ...) under this config."""
        cfg = self.config
        if cfg.hog_upsample is not None:
            return cfg.hog_upsample
        factor = min(1.0, cfg.max_side / max(shape[:2]))
        return 1 if min(shape[:2]) * factor < cfg.hog_upsample_below else 0

    def detect_hog(self, image: np.ndarray) -> list[Detection]:
        """Faces found by dlib's HOG detector, in the detector's order (see :meth:`detect`)."""
        image = check_image(image)
        small, factor = _downscale(image, self.config.max_side)
        upsample = self.hog_upsample_for(image.shape)
        rects, scores, _ = _model("hog").run(small, upsample, self.config.hog_threshold)
        pairs = zip(rects, scores, strict=True)
        return [Detection(scale_box(from_dlib_rect(r), factor), s, "hog") for r, s in pairs]

    def detect_cnn(self, image: np.ndarray) -> list[Detection]:
        """Faces found by dlib's CNN (mmod) detector on the image capped at ``cnn_first_side``,
        or, where it finds none there, at ``cnn_max_side``."""
        image = check_image(image)
        cfg = self.config
        first = cfg.cnn_first_side
        sides = [first, cfg.cnn_max_side] if 0 < first < min(cfg.cnn_max_side, max(image.shape[:2])) else []
        found: list[Detection] = []
        for side in sides or [cfg.cnn_max_side]:
            small, factor = _downscale(image, side)
            found = [
                Detection(scale_box(from_dlib_rect(d.rect), factor), d.confidence, "cnn")
                for d in _model("cnn")(small, cfg.cnn_upsample)
                if d.confidence > cfg.cnn_min_score
            ]
            if found:
                break
        return found

    def detect(self, image: np.ndarray, max_faces: int | None = None) -> list[Detection]:
        """Every face in an image, largest box first.

        Args:
            image: (H, W, 3) uint8 RGB.
            max_faces: keep at most this many (the largest); ``None`` keeps all.

        Returns:
            HOG detections, or, when HOG finds none and ``config.use_cnn``, the CNN's; possibly empty.

        Raises:
            ValueError: ``image`` is not (H, W, 3) uint8.
        """
        image = check_image(image)
        found = self.detect_hog(image)
        if not found and self.config.use_cnn:
            found = self.detect_cnn(image)
        found.sort(key=lambda d: (-d.area, -d.score))
        return found if max_faces is None else found[: max(0, max_faces)]


# ------------------------------------------------------------------------------ landmarks
def predict_landmarks(image: np.ndarray, box) -> Landmarks:
    """dlib's 68-point shape predictor inside a detector-style box.

    Args:
        image: (H, W, 3) uint8 RGB.
        box: ``(x0, y0, x1, y1)`` or a :class:`Detection`, shaped like dlib's HOG boxes; map a box
            made from landmarks with :func:`face3d.detect.dlib_box_from_landmark_box` first.

    Returns:
        (68, 2) float64 ``(x, y)``, 0-based pixels, iBUG order.
    """
    image = check_image(image)
    shape = _model("predictor")(image, to_dlib_rect(box))
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def _full_object_detection(landmarks: np.ndarray):
    import dlib

    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.shape != (68, 2) or not np.all(np.isfinite(pts)):
        raise ValueError(f"expected (68, 2) finite landmarks, got shape {pts.shape}")
    parts = dlib.points([dlib.point(math.floor(x + 0.5), math.floor(y + 0.5)) for x, y in pts])
    return dlib.full_object_detection(to_dlib_rect(landmark_box(pts)), parts)


def face_chip(image: np.ndarray, landmarks: np.ndarray, size: int = 150, padding: float = 0.25) -> np.ndarray:
    """The face aligned (rotated upright, scaled) as dlib's recogniser sees it: (size, size, 3) uint8."""
    import dlib

    image = check_image(image)
    return dlib.get_face_chip(image, _full_object_detection(landmarks), size=size, padding=padding)


def face_descriptor(image: np.ndarray, face, num_jitters: int = 0) -> NDArray[np.float64]:
    """dlib's 128-d face descriptor (ResNet, LFW 99.38 %): same person when the distance is < 0.6.

    Args:
        image: (H, W, 3) uint8 RGB.
        face: (68, 2) landmarks, or a box ``(x0, y0, x1, y1)``/:class:`Detection` (detector-style,
            the landmarks are then predicted in it first).
        num_jitters: > 1 averages that many randomly jittered crops (slower, slightly more stable).

    Returns:
        (128,) float64, unit-free; compare with :func:`descriptor_distance`.
    """
    image = check_image(image)
    pts = np.asarray(getattr(face, "box", face), dtype=np.float64)
    if pts.size == 4:
        pts = predict_landmarks(image, as_box(pts))
    shape = _full_object_detection(pts)
    vec = _model("recognizer").compute_face_descriptor(image, shape, num_jitters)
    return np.array(vec, dtype=np.float64)


def descriptor_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two (128,) descriptors (dlib's same-person threshold: 0.6)."""
    return float(np.linalg.norm(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)))
