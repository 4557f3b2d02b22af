"""fit_image: detect every face, find its 68 landmarks, fit the model (faces batched)."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from face3d.crop import resized_points
from face3d.detect import Detection, FaceDetector, dlib_box_from_landmark_box, predict_landmarks
from face3d.detect.boxes import grow_box, landmark_box
from face3d.fit.config import FitConfig
from face3d.fit.landmark_fit import fit_landmarks
from face3d.fit.photometric import refine_face
from face3d.fit.regressed import to_fit_result
from face3d.fit.residual import residual_face
from face3d.fit.result import FitResult
from face3d.ict import INNER_LIPS
from face3d.regress.infer import default_tta, landmark_box_from_detector_box
from face3d.regress.network import default_weights_dir
from face3d.regress.proposals import FALLBACK_SOURCE, ProposalConfig, propose_faces


@dataclass(frozen=True)
class FaceFit:
    """One fitted face of an image.

    Attributes:
        face_index: rank of the face in the image (largest detection first).
        bbox: (x0, y0, x1, y1) detection box, pixels.
        detector: ``"hog"``, ``"cnn"``, ``"given"`` or ``"regressor-fallback"`` (found by
            :func:`face3d.regress.proposals.propose_faces`); score: its confidence.
        landmarks_detected: (68, 2) the 2D landmarks the fit used, pixels.
        fit: the fit as a batch of one.
        timings_ms: per stage (``detect`` is shared by the faces of one image).
        landmark_source: ``"dlib"``, ``"regressor"`` or ``"blend"`` (see :class:`LandmarkConfig`).
        landmark_offset: (68, 3) cm, the landmark convention the fit used when the landmarks come
            from the regressor or a blend (:attr:`RegressorOutput.landmark_offset`), else None.
    """

    face_index: int
    bbox: tuple[float, float, float, float]
    detector: str
    score: float
    landmarks_detected: np.ndarray
    fit: FitResult
    timings_ms: dict[str, float]
    landmark_source: str = "dlib"
    landmark_offset: np.ndarray | None = None

    def resized(self, size: tuple[int, int]) -> FaceFit:
        """The same face for its image resized to ``size`` (H', W') (:meth:`FitResult.resized`)."""
        (H, W), (h, w) = self.fit.image_size, size
        s = np.array([w / W, h / H])
        box = np.asarray(self.bbox, np.float64).reshape(2, 2) * s  # box edges, not pixel centres
        pts = resized_points(np.asarray(self.landmarks_detected, np.float64), s)
        return replace(self, bbox=tuple(float(v) for v in box.ravel()), landmarks_detected=pts,
                       fit=self.fit.resized(size))  # fmt: skip


@dataclass(frozen=True)
class LandmarkConfig:
    """Where the 68 landmarks of each face come from.

    Attributes:
        use_regressor: run the regression network on every face when a regressor is given.
        regressor_min_yaw: use the regressor's anatomical landmarks instead of dlib's when the
            regressed |yaw| is at least this (degrees): dlib's predictor is reliable only near
            frontal. 0 always uses the regressor. A face the regressor's upright search turned
            (lying on its side or upside down) always takes the regressor's landmarks.
        blend: on a detector's box, a face below ``regressor_min_yaw`` takes ``(1 - blend)`` times
            dlib's landmarks plus ``blend`` times the regressor's (source ``"blend"``), fitted as
            the regressor's are (its landmark convention, no silhouette re-selection): two
            predictors with different errors. 0 keeps dlib's alone. The default 0.5 was chosen on
            the AFLW2000-3D dev set's train half (README).
        blend_inner_lips: the weight of the regressor's inner-lip points (60-67) in a blend. dlib's
            follow an open mouth; the network, trained on AFLW2000-3D's mostly closed inner-lip
            labels, reads a third less of the gap, and an edit can only move what the fit saw.
            The default 0 takes dlib's inner lips alone (``scripts/bench/bench_closing.py``).
        given_box_min_yaw: ``regressor_min_yaw`` for a box the caller gave (protocol mode,
            ``face3d fit --bbox-file``). dlib's predictor was trained on its own detector's boxes
            and is poor on others even near frontal; the default 0 always takes the regressor's
            landmarks there (chosen on the AFLW2000-3D dev set's train half; README).
        fast: regression only (``face3d fit --fast``): no dlib predictor, no optimiser.
        regressor_min_confidence: faces the regressor scores below this are dropped (only for
            detector boxes, never for a box the caller gave).
        fallback: when dlib finds no face (or the regressor rejects all it found), look for one
            with the regressor alone (:func:`face3d.regress.proposals.propose_faces`, at its strict
            default ``min_confidence``: see ``scripts/bench/bench_detect.py`` and the README). Only with a
            regressor; such faces are marked ``"regressor-fallback"``.
        proposals: :class:`face3d.regress.proposals.ProposalConfig` of the fallback.
        regressor_recrop: how many times the regressor re-runs on the box of its own landmarks
            when the box came from a detector (a detector box mapped to a landmark box fits the
            network's crop convention only roughly; never for a box the caller gave). Measured
            by ``scripts/bench/bench_fit.py --recrop N`` (README, automatic mode).
        regressor_recrop_scale: each re-crop box is the box of the regressed landmarks grown by
            this factor about its centre (:func:`face3d.detect.boxes.grow_box`). The network's
            landmarks span 2-6 % less than the ground truth's (it pulls uncertain points inward,
            most at large yaw), so re-crops on their bare box shrink step after step. The default
            (with 3 re-crops) was chosen on the AFLW2000-3D dev set's train half
            (``scripts/experiments/recrop_scale.py``, README).
    """

    use_regressor: bool = True
    regressor_min_yaw: float = 30.0
    given_box_min_yaw: float = 0.0
    blend: float = 0.5
    blend_inner_lips: float = 0.0
    fast: bool = False
    regressor_min_confidence: float = 0.2
    fallback: bool = True
    proposals: ProposalConfig = ProposalConfig()
    regressor_recrop: int = 3
    regressor_recrop_scale: float = 1.07

    def __post_init__(self):
        for name in ("blend", "blend_inner_lips"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.regressor_recrop < 0:
            raise ValueError(f"regressor_recrop must be >= 0, got {self.regressor_recrop}")
        if not self.regressor_recrop_scale > 0:
            raise ValueError(f"regressor_recrop_scale must be > 0, got {self.regressor_recrop_scale}")


@dataclass(frozen=True)
class Landmarked:
    """Detections and their landmarks for one image (the part that can run ahead in threads).

    ``sources[i]`` is ``"dlib"``, ``"regressor"`` or ``"blend"``; ``regressions[i]`` the regressor's output
    for face i (None without a regressor).
    """

    image: np.ndarray
    detections: tuple
    landmarks: tuple[np.ndarray, ...]
    detect_ms: float
    landmarks_ms: float
    sources: tuple[str, ...] = ()
    regressions: tuple = ()
    regress_ms: float = 0.0

    def select(self, i: int) -> Landmarked:
        """The same image with face ``i`` alone (the times stay the whole image's)."""
        if not 0 <= i < len(self.detections):
            raise IndexError(f"face {i} of {len(self.detections)}")

        def pick(items: tuple) -> tuple:
            return (items[i],) if items else ()

        return replace(
            self,
            detections=(self.detections[i],),
            landmarks=(self.landmarks[i],),
            sources=pick(self.sources),
            regressions=pick(self.regressions),
        )


def prefers_regressor(regression, config: LandmarkConfig = LandmarkConfig(), given_box: bool = False) -> bool:
    """Whether a face takes the regressor's landmarks rather than dlib's (``config.fast`` aside):
    its regressed |yaw| is at least ``config.regressor_min_yaw`` (``config.given_box_min_yaw``
    for a box the caller gave), or the upright search turned it.
    ``regression``: a :class:`face3d.regress.infer.RegressorOutput`."""
    min_yaw = config.given_box_min_yaw if given_box else config.regressor_min_yaw
    return abs(regression.yaw) >= min_yaw or regression.turns != 0


def choose_landmark_source(
    regression, config: LandmarkConfig = LandmarkConfig(), given_box: bool = False
) -> str:
    """Where a face's landmarks come from: ``"regressor"`` (``config.fast``, or
    :func:`prefers_regressor`), ``"blend"`` (on a detector's box with ``config.blend`` > 0) or
    ``"dlib"`` (also for a face without a regression, ``regression`` None)."""
    if regression is None:
        return "dlib"
    if config.fast or prefers_regressor(regression, config, given_box):
        return "regressor"
    return "blend" if not given_box and config.blend > 0 else "dlib"


def blend_landmarks(
    dlib_points: np.ndarray, regressor_points: np.ndarray, weight: float, inner_lips: float | None = None
) -> np.ndarray:
    """(68, 2) ``(1 - weight) * dlib_points + weight * regressor_points`` (pixels); the inner lips
    (60-67) take ``inner_lips`` as their weight instead when it is given."""
    w = np.full((68, 1), weight, np.float64)
    if inner_lips is not None:
        w[list(INNER_LIPS)] = inner_lips
    if not ((w >= 0.0) & (w <= 1.0)).all():
        raise ValueError(f"blend weights must be in [0, 1], got {weight} and {inner_lips}")
    return (1.0 - w) * np.asarray(dlib_points, np.float64) + w * np.asarray(regressor_points, np.float64)


def recrop_regressions(image: np.ndarray, regressor, regressions, steps: int, scale: float) -> list:
    """Re-run ``regressor`` ``steps`` times on each face's box of its own regressed landmarks,
    grown by ``scale`` about its centre (``LandmarkConfig.regressor_recrop`` /
    ``regressor_recrop_scale``); only the last pass adds the regressor's profile views.
    ``regressions``: :class:`RegressorOutput` per face."""
    regressions = list(regressions)
    for step in range(steps):
        boxes = [grow_box(landmark_box(r.landmarks), scale) for r in regressions]
        # only the last pass's landmarks are kept: the earlier ones skip the profile views
        regressions = regressor.predict_batch(image, boxes, profile=step == steps - 1)
    return regressions


def detect_and_landmark(
    image: np.ndarray,
    detector,
    max_faces: int | None = None,
    box=None,
    regressor=None,
    config: LandmarkConfig = LandmarkConfig(),
) -> Landmarked:
    """Run detection (or take ``box``, the box of the ground-truth 68 points in protocol mode),
    then dlib's 68-point predictor and, with a ``regressor``, the regression network on every
    face (re-run ``config.regressor_recrop`` times on the box of its own landmarks when the box
    came from the detector); pick each face's landmark source by ``config``. With ``config.fallback`` and a
    regressor, an image where no detection survives is searched by the regressor alone
    (detections of source ``"regressor-fallback"``, timed as detection)."""
    t0 = time.perf_counter()
    if box is not None:
        detections = [Detection(dlib_box_from_landmark_box(box), 1.0, "given")]
    else:
        detections = detector.detect(image, max_faces=max_faces)
    t1 = time.perf_counter()
    regressions: list = [None] * len(detections)
    if regressor is not None and (config.use_regressor or config.fast) and detections:

        boxes = [box if box is not None else landmark_box_from_detector_box(d.box) for d in detections]
        recrops = box is None and config.regressor_recrop > 0  # then only the last pass has the profile views
        regressions = regressor.predict_batch(image, boxes, profile=not recrops)
        keep = [
            i
            for i, r in enumerate(regressions)
            if box is not None or r.confidence >= config.regressor_min_confidence
        ]
        detections = [detections[i] for i in keep]
        regressions = [regressions[i] for i in keep]
        if box is None and regressions:
            regressions = recrop_regressions(
                image, regressor, regressions, config.regressor_recrop, config.regressor_recrop_scale
            )
    fallback_s = 0.0
    if regressor is not None and config.fallback and box is None and not detections:

        t_fb = time.perf_counter()
        pcfg = config.proposals
        if max_faces is not None:
            pcfg = replace(pcfg, max_faces=max(1, min(pcfg.max_faces, max_faces)))
        found = propose_faces(image, regressor, pcfg)
        detections = [Detection(p.detector_box, p.confidence, FALLBACK_SOURCE) for p in found]
        regressions = [p.regression for p in found]
        fallback_s = time.perf_counter() - t_fb
    t2 = time.perf_counter()
    landmarks, sources = [], []
    for d, r in zip(detections, regressions, strict=True):
        source = choose_landmark_source(r, config, given_box=box is not None)
        if source == "regressor":
            landmarks.append(r.landmarks)
        elif source == "blend":
            dlib_points = predict_landmarks(image, d.box)
            landmarks.append(blend_landmarks(dlib_points, r.landmarks, config.blend, config.blend_inner_lips))
        else:
            landmarks.append(predict_landmarks(image, d.box))
        sources.append(source)
    t3 = time.perf_counter()
    return Landmarked(
        image,
        tuple(detections),
        tuple(landmarks),
        (t1 - t0 + fallback_s) * 1e3,
        (t3 - t2) * 1e3,
        tuple(sources),
        tuple(regressions),
        (t2 - t1 - fallback_s) * 1e3,
    )


def fit_detections(
    model, marked: Landmarked, config: FitConfig = FitConfig(), fast: bool = False
) -> list[FaceFit]:
    """Fit every face of a :class:`Landmarked` image (batched per landmark source).

    dlib's landmarks follow the visible outline (silhouette handling as configured); the
    regressor's are anatomical (silhouette handling off) in the network's landmark convention
    (:attr:`RegressorOutput.landmark_offset`), and so are fitted blends of the two. ``fast`` keeps
    the regression as is.
    """
    if not marked.detections:
        return []
    H, W = marked.image.shape[:2]
    n = len(marked.detections)
    sources = marked.sources or ("dlib",) * n
    t0 = time.perf_counter()
    results: list = [None] * n
    if fast:

        if any(r is None for r in marked.regressions) or len(marked.regressions) != n:
            raise ValueError("fast fitting needs the regressor's output for every face")
        res = to_fit_result(list(marked.regressions), (H, W), model, config.fov_deg)
        results = [res.select(i) for i in range(n)]
    else:
        for source in ("dlib", "regressor", "blend"):
            idx = [i for i in range(n) if sources[i] == source]
            if not idx:
                continue
            cfg = config.for_source(source)
            targets = torch.as_tensor(np.stack([marked.landmarks[i] for i in idx]), dtype=torch.float64)
            offset = None
            if source != "dlib" and marked.regressions[idx[0]].landmark_offset is not None:
                offset = torch.as_tensor(np.stack([marked.regressions[i].landmark_offset for i in idx]))
            res = fit_landmarks(model, targets, (H, W), cfg, landmark_offset=offset).to(model.template.device)
            for j, i in enumerate(idx):
                results[i] = res.select(j)
    fit_ms = (time.perf_counter() - t0) * 1e3 / n
    out = []
    for i, d in enumerate(marked.detections):
        timings = {"detect": marked.detect_ms / n, "landmarks": marked.landmarks_ms / n, "fit": fit_ms}
        if marked.regressions and marked.regressions[i] is not None:
            timings["regress"] = marked.regress_ms / n
        out.append(
            FaceFit(
                face_index=i,
                bbox=tuple(float(x) for x in d.box),
                detector=d.source,
                score=float(d.score),
                landmarks_detected=np.asarray(marked.landmarks[i]),
                fit=results[i],
                timings_ms=timings,
                landmark_source=sources[i],
                landmark_offset=(
                    marked.regressions[i].landmark_offset
                    if sources[i] != "dlib" and marked.regressions
                    else None
                ),
            )
        )
    return out


def default_regressor(profile_views: bool = True):
    """The shipped regression network (``assets/regressor``) with the default test-time augmentation
    (:func:`face3d.regress.infer.default_tta`; ``profile_views=False`` leaves out the
    extra views of large-yaw faces, ``face3d fit --no-profile-views``), loaded once; None if not
    installed."""
    if profile_views not in _REGRESSORS:

        folder = default_weights_dir()
        installed = (folder / "config.json").is_file()
        options = {} if profile_views else {"profile_views": ()}
        _REGRESSORS[profile_views] = default_tta(folder, **options) if installed else None
    return _REGRESSORS[profile_views]


_REGRESSORS: dict[bool, object] = {}


def fit_image(
    image: np.ndarray,
    model,
    config: FitConfig = FitConfig(),
    detector=None,
    max_faces: int | None = None,
    box=None,
    regressor="auto",
    landmarks: LandmarkConfig = LandmarkConfig(),
    photometric=None,
    residual=None,
) -> list[FaceFit]:
    """Detect and fit every face of an image (largest first).

    Args:
        image: (H, W, 3) uint8 RGB.
        model: :class:`face3d.model.MorphableModel`.
        config: :class:`FitConfig`.
        detector: a :class:`face3d.detect.FaceDetector` (a default one if None).
        max_faces: keep at most this many faces.
        box: protocol mode: the bounding box of the ground-truth 68 points (skips detection).
        regressor: a :class:`face3d.regress.infer.LandmarkRegressor`, ``"auto"`` (the shipped
            one when installed) or None (dlib landmarks only).
        landmarks: :class:`LandmarkConfig` (landmark source per face, ``fast``).
        photometric: a :class:`face3d.fit.photometric.PhotometricConfig` to refine every fit on
            the photo (timed under ``"photometric"``), None for the landmark fit only.
        residual: a :class:`face3d.fit.residual.ResidualConfig` to add a residual displacement to
            every fit (after any photometric refinement; timed under ``"residual"``): each
            ``FaceFit.fit`` is then the final mesh, its ``landmarks_fitted`` the mesh's and
            ``landmarks_linear`` the linear fit's. None: the linear model only.
    Returns:
        One :class:`FaceFit` per face; empty when no face is found.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image: expected (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    detector = detector or FaceDetector()
    if regressor == "auto":
        regressor = default_regressor()
    marked = detect_and_landmark(image, detector, max_faces, box, regressor, landmarks)
    faces = fit_detections(model, marked, config, fast=landmarks.fast)
    if photometric is not None:

        faces = [refine_face(model, image, f, photometric, config) for f in faces]
    if residual is not None:
        faces = [residual_face(model, image, f, residual, config)[0] for f in faces]
    return faces
