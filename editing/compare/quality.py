"""How good one edit is, measured on the pixels and on a re-fit of the result.

* :func:`speckles`: isolated outlier pixels the edit created (dark dots along an outline).
* :func:`changed_outside`: the share of pixels changed outside the face's landmark box grown by
  35 % (65 % upward), where an expression moves nothing.
* :func:`changed_padding`: the pixels changed in the padding bands around the photo.
* :func:`psnr`: the round trip (an edit to the fitted expression itself) against the photo.
* :func:`expression_measures` / :func:`completeness`: how far an edit goes toward a real face of
  its class, on the class's defining measures, read from the model's landmarks at the re-fitted
  expression with a neutral identity (cm, pose-free): happy is mouth width and corner lift,
  surprise is lip gap and brow height, neutral is the lip gap.
* :func:`pooled_completeness`: the same over a set of faces (summed change over summed gap), and
  :func:`pooled_completeness_ci` with its bootstrap interval over faces.
* :func:`landmark_references` / :func:`read_measures`: the same measures read by dlib's landmarks,
  on FER2013's class medians and on a photo inside a face's landmark box (near frontal only).
* :func:`measure_closing`: how far an edit to neutral closes a photo's open mouth.
* :func:`mouth_stats`: mean and spread of the luminance inside the inner lips (an opened mouth
  must not be a hole, black or flat).
"""

from __future__ import annotations

import math
import time

import cv2
import numpy as np
import torch

from editing.api import edit_fitted
from editing.compare.flow_reader import FLOW_MEASURES, VISIBLE_MEASURES, flow_landmarks, nose_measures
from editing.mouth import photo_opening
from editing.warp import isolated_outliers
from face3d.crop import photo_mask
from face3d.detect import dlib_box_from_landmark_box, predict_landmarks
from face3d.fit import fit_image
from face3d.io import read_image
from face3d.render.texture_fill import LUMA_601

LUMA = np.array(LUMA_601)
CLASS_MEASURES: dict[str, tuple[str, ...]] = {
    "happy": ("mouth_width", "corner_lift"),
    "surprise": ("lip_gap", "brow_height"),
    "neutral": ("lip_gap",),
}
"""The defining measures of each class (what an edit toward it must change)."""


def _luma(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) @ LUMA.astype(np.float32)


SPECKLE_REACH, SPECKLE_MARGIN = 4, 10.0
"""A changed pixel is the photo's own content, moved, if its luminance lies within the photo's
range (+- SPECKLE_MARGIN levels) over the (2 SPECKLE_REACH + 1)^2 pixels around it."""


def speckles(before: np.ndarray, after: np.ndarray) -> int:
    """Isolated outlier pixels the edit created: dots of ``after``
    (:func:`editing.warp.isolated_outliers`, the edit's own definition of a dot) that
    changed and that no nearby pixel of ``before`` explains (darker or brighter than all of the
    photo around them: a dark dot on a cheek outline), so the photo's own freckles, glints and
    engraving hatches, moved by the warp, do not count."""
    k = np.ones((2 * SPECKLE_REACH + 1,) * 2, np.uint8)
    y0, y1 = _luma(before), _luma(after)
    lo, hi = cv2.erode(y0, k) - SPECKLE_MARGIN, cv2.dilate(y0, k) + SPECKLE_MARGIN
    changed = (before != after).any(-1)
    return int((isolated_outliers(after) & changed & ((y1 < lo) | (y1 > hi))).sum())


def grown_box(landmarks: np.ndarray, side: float = 0.35, up: float = 0.65) -> tuple[float, ...]:
    """The (68, 2) landmarks' box grown by ``side`` of its size left, right and down and by ``up``
    upward (the forehead): ``(x0, y0, x1, y1)``."""
    (x0, y0), (x1, y1) = landmarks.min(0), landmarks.max(0)
    w, h = x1 - x0, y1 - y0
    return x0 - side * w, y0 - up * h, x1 + side * w, y1 + side * h


def changed_outside(before: np.ndarray, after: np.ndarray, box) -> float:
    """Share (0-1) of the pixels outside ``box`` (x0, y0, x1, y1) that the edit changed."""
    H, W = before.shape[:2]
    inside = np.zeros((H, W), bool)
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    inside[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = True
    outside = ~inside
    return float(((before != after).any(-1) & outside).sum() / max(outside.sum(), 1))


def changed_padding(before: np.ndarray, after: np.ndarray) -> int:
    """Pixels the edit changed in the padding bands around the photo (outside
    :func:`face3d.crop.photo_extent` of ``before``): 0 unless it moved the face into them."""
    return int(((before != after).any(-1) & ~photo_mask(before)).sum())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) of two uint8 arrays (inf when equal)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def box_slices(landmarks: np.ndarray, shape) -> tuple[slice, slice]:
    """The (68, 2) landmarks' box as array slices, clipped to ``shape``."""
    (x0, y0), (x1, y1) = np.floor(landmarks.min(0)).astype(int), np.ceil(landmarks.max(0)).astype(int) + 1
    return slice(max(y0, 0), min(y1, shape[0])), slice(max(x0, 0), min(x1, shape[1]))


def mouth_stats(image: np.ndarray, landmarks: np.ndarray) -> tuple[float, float, int]:
    """Luminance mean and standard deviation inside the inner-lip polygon (points 60-67 of the
    (68, 2) ``landmarks``, eroded by one pixel), and its pixel count (0: closed)."""
    mask = photo_opening(landmarks, (0, 0), image.shape[:2])
    if not mask.any():
        return float("nan"), float("nan"), 0
    y = _luma(image)[mask]
    return float(y.mean()), float(y.std()), int(mask.sum())


def expression_measures(model, weights) -> dict[str, float]:
    """The defining measures (cm) of an expression, pose- and person-free: the model's 68
    landmarks at ``weights`` (K,) with the mean identity, in model space (y up).

    ``mouth_width`` corner to corner; ``corner_lift`` the corners' height above the mid-lips';
    ``lip_gap`` between the inner lips' middles; ``brow_height`` the brows' height above the eyes.
    """
    w = torch.as_tensor(np.asarray(weights), dtype=model.template.dtype)[None]
    L = model.landmarks(model(expression=w))[0].double().numpy()
    mid_lips = 0.5 * (L[51] + L[57])
    corners = 0.5 * (L[48] + L[54])
    return {
        "mouth_width": float(np.linalg.norm(L[54] - L[48])),
        "corner_lift": float(corners[1] - mid_lips[1]),
        "lip_gap": float(np.linalg.norm(L[62] - L[66])),
        "brow_height": float(L[17:27, 1].mean() - L[36:48, 1].mean()),
    }


def landmark_measures(landmarks: np.ndarray) -> dict[str, float]:
    """The :func:`expression_measures` read in the image from (68, 2) landmarks (dlib's, which
    follow the inner lips near frontal), in units of the inter-ocular distance (y down): valid near
    frontal only."""
    L = np.asarray(landmarks, dtype=np.float64)
    io = max(float(np.linalg.norm(L[36:42].mean(0) - L[42:48].mean(0))), 1e-6)
    mid_lips, corners = 0.5 * (L[51] + L[57]), 0.5 * (L[48] + L[54])
    return {
        "mouth_width": float(np.linalg.norm(L[54] - L[48])) / io,
        "corner_lift": float(mid_lips[1] - corners[1]) / io,
        "lip_gap": float(np.linalg.norm(L[62] - L[66])) / io,
        "brow_height": float(L[36:48, 1].mean() - L[17:27, 1].mean()) / io,
    }


def completeness(
    before: dict, after: dict, reference: dict, label: str, eps: float = 0.02, measures=None
) -> float:
    """How far (0: nothing, 1: all the way) an edit went from ``before`` toward ``reference`` (the
    median real face of class ``label``) on the class's :data:`CLASS_MEASURES` (or ``measures``),
    averaged over the measures whose reference differs from ``before`` by more than ``eps`` cm
    (NaN if none)."""
    parts = [
        (after[m] - before[m]) / (reference[m] - before[m])
        for m in (measures or CLASS_MEASURES[label])
        if abs(reference[m] - before[m]) > eps
    ]
    return float(np.mean(parts)) if parts else float("nan")


def _pooled_arrays(befores, afters, reference: dict, label: str, measures=None):
    """The faces with both measures (None dropped) as (N, M) changes ``after - before`` and
    (N, M) gaps ``reference - before`` on the M measures of ``label``'s :data:`CLASS_MEASURES`
    (or ``measures``)."""
    pairs = [(b, a) for b, a in zip(befores, afters, strict=True) if b is not None and a is not None]
    keys = measures or CLASS_MEASURES[label]
    change = np.array([[a[m] - b[m] for m in keys] for b, a in pairs], np.float64).reshape(-1, len(keys))
    gap = np.array([[reference[m] - b[m] for m in keys] for b, _ in pairs], np.float64).reshape(-1, len(keys))
    return change, gap


def _pooled(change: np.ndarray, gap: np.ndarray) -> np.ndarray:
    """Pooled completeness of (..., N, M) changes and gaps: per measure the summed change over the
    summed gap (measures whose summed gap is ~0 left out), averaged over the measures -> (...),
    NaN where no measure is left."""
    num, den = change.sum(-2), gap.sum(-2)
    ok = np.abs(den) > 1e-9
    ratio = np.where(ok, num / np.where(ok, den, 1.0), 0.0)
    count = ok.sum(-1)
    return np.where(count > 0, ratio.sum(-1) / np.maximum(count, 1), np.nan)


def pooled_completeness(befores: list[dict], afters: list[dict], reference: dict, label: str,
                        measures=None) -> float:  # fmt: skip
    """:func:`completeness` over a set of faces, pooled: per measure, the summed change over the
    summed distance to ``reference`` (the mean change over the mean gap), averaged over the
    class's measures (or ``measures``). A face already near the class median adds little to the
    denominator instead of dividing by almost nothing, so a few faces do not swing it (NaN for no
    faces; faces whose ``before`` or ``after`` is None are left out)."""
    change, gap = _pooled_arrays(befores, afters, reference, label, measures)
    return float(_pooled(change, gap)) if len(change) else float("nan")


def pooled_completeness_ci(
    befores: list[dict],
    afters: list[dict],
    reference: dict,
    label: str,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float, int]:
    """:func:`pooled_completeness` and its percentile-bootstrap interval over faces: ``n_boot``
    resamples of the N faces (with replacement, same size, seeded), each pooled again.

    Returns:
        (pooled, low, high, N): NaNs and N = 0 without faces; low = high = pooled for N = 1.
        Resamples whose pooled value is undefined (every gap ~0) are left out of the quantiles.
    """
    change, gap = _pooled_arrays(befores, afters, reference, label)
    n = len(change)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    value = float(_pooled(change, gap))
    if n == 1:
        return value, value, value, 1
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    boots = _pooled(change[idx], gap[idx])
    boots = boots[np.isfinite(boots)]
    if not len(boots):
        return value, math.nan, math.nan, n
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(boots, [alpha, 1.0 - alpha])
    return value, float(lo), float(hi), n


# ------------------------------------------------------------------------------ one photo
FER_CLASSES = ("happy", "surprise", "neutral")
"""The FER2013 classes whose real faces are the completeness references."""


def fit_on_box(ctx, image: np.ndarray, box):
    """The face fitted on a given landmark box with ``ctx``'s fitter (None if none)."""
    faces = fit_image(image, ctx.fit_model, ctx.fit_config, ctx.detector, box=box, regressor=ctx.regressor)
    return faces[0] if faces else None


def fer_photo(face48: np.ndarray, size: int) -> np.ndarray:
    """A (48, 48) grey FER2013 face as a (size, size, 3) uint8 photo (bicubic; the face fills it)."""
    return cv2.resize(np.repeat(face48[..., None], 3, -1), (size, size), interpolation=cv2.INTER_CUBIC)


def _medians(rows: list[dict]) -> dict[str, float]:
    return {k: float(np.median([r[k] for r in rows])) for k in rows[0]} if rows else {}


def load_fer_faces(path, classes, n: int = 100) -> dict[str, np.ndarray]:
    """The first ``n`` test faces of each of ``classes`` in the FER2013 npz at ``path`` (``x_test``,
    ``y_test``, ``classes``): class -> (<= n, 48, 48) uint8."""
    with np.load(path) as fer:
        names = [str(c) for c in fer["classes"]]
        return {c: fer["x_test"][fer["y_test"] == names.index(c)][:n] for c in classes}


def landmark_references(
    faces48: dict[str, np.ndarray], size: int = 192, measure=landmark_measures
) -> dict[str, dict[str, float]]:
    """Median dlib measures of real faces per class: each (48, 48) grey face of ``faces48`` (class ->
    (N, 48, 48) uint8, FER2013) upscaled to ``size`` px (the faces fill the frame), dlib's 68
    landmarks predicted on the fixed box 5-95 % of the frame, measured with ``measure``
    (:func:`landmark_measures`: inter-ocular units; or
    :func:`editing.compare.flow_reader.nose_measures`): class -> measure -> median ({} for no faces)."""
    return {
        label: _medians([measure(L) for L in landmarks])
        for label, landmarks in _fer_landmarks(faces48, size).items()
    }


def _fer_landmarks(faces48: dict[str, np.ndarray], size: int) -> dict[str, list[np.ndarray]]:
    """dlib's (68, 2) landmarks of each face of ``faces48`` (as for :func:`landmark_references`)."""
    box = (0.05 * size,) * 2 + (0.95 * size,) * 2
    read = {}
    for label, faces in faces48.items():
        read[label] = [predict_landmarks(fer_photo(f, size), box) for f in faces]
    return read


def class_references(ctx, faces48: dict[str, np.ndarray], size: int = 192) -> dict[str, dict[str, float]]:
    """Median measures of real faces per class (``faces48`` as for :func:`landmark_references`)
    three ways: ``out[label]`` by ``ctx``'s fitter on a fixed landmark box
    (:func:`expression_measures`), ``out["dlib:" + label]`` by :func:`landmark_references` and
    ``out["nose:" + label]`` by the same in the nose frame of the flow reader."""
    box = (0.1 * size, 0.18 * size, 0.9 * size, 0.95 * size)
    out = {}
    for label, faces in faces48.items():
        fitted = [fit_on_box(ctx, fer_photo(f, size), box) for f in faces]
        weights = [f.fit.expression[0] for f in fitted if f is not None]
        out[label] = _medians([expression_measures(ctx.fit_model, w) for w in weights])
    read = _fer_landmarks(faces48, size)  # once, for both frames
    for prefix, measure in (("dlib", landmark_measures), ("nose", nose_measures)):
        out.update({f"{prefix}:{k}": _medians([measure(L) for L in lms]) for k, lms in read.items()})
    return out


def read_measures(image: np.ndarray, landmark_box) -> dict[str, float]:
    """:func:`landmark_measures` of dlib's 68 landmarks predicted on ``image`` inside the dlib box
    of ``landmark_box`` (``(x0, y0, x1, y1)`` of a face's 68 points;
    :func:`face3d.detect.dlib_box_from_landmark_box`): valid near frontal only."""
    return landmark_measures(predict_landmarks(image, dlib_box_from_landmark_box(landmark_box)))


def _flow_reading(image, out, landmarks, yaw: float, references: dict, klass) -> dict:
    """The flow reader's completeness of one edit (:mod:`editing.compare.flow_reader`) from the
    photo's known ``landmarks`` (68, 2), and its measures before and after (None where the class
    has no flow measures or reference, or no landmarks are known)."""
    nan = float("nan")
    none = {
        "completeness_flow": nan,
        "completeness_flow_visible": nan,
        "flow_before": None,
        "flow_after": None,
    }
    if landmarks is None or klass not in FLOW_MEASURES or f"nose:{klass}" not in references:
        return none
    before = nose_measures(landmarks, yaw=yaw)
    after = nose_measures(flow_landmarks(image, out, landmarks), landmarks, yaw)
    ref = references[f"nose:{klass}"]
    value = completeness(before, after, ref, klass, 0.01, FLOW_MEASURES[klass])
    visible = VISIBLE_MEASURES.get(klass)
    seen = completeness(before, after, ref, klass, 0.01, visible) if visible else nan
    return {
        "completeness_flow": value,
        "completeness_flow_visible": seen,
        "flow_before": before,
        "flow_after": after,
    }


def measure_photo(
    image: np.ndarray, box, ctx, specs, references: dict, descriptor, landmarks=None, yaw: float = 0.0
) -> list[dict] | None:
    """Edit one photo's face (fitted on the landmark ``box``) to each target of ``specs`` with
    ``ctx`` and measure each edit: speckles, the share of pixels changed outside the grown
    landmark box and the pixels changed in the padding around the photo, identity (the distance
    of ``descriptor(image, landmarks)``), completeness toward the class median of ``references``
    (for targets named after a class of :data:`CLASS_MEASURES`; ``completeness_dlib`` reads dlib's
    landmarks instead, valid near frontal), the inner mouth's luminance (on the re-fit's
    landmarks), seconds per edit, and the round trip (the first target at intensity 0: PSNR in
    the face box); for class targets also dlib's measures before and after (``dlib_before`` /
    ``dlib_after``, for :func:`pooled_completeness`). With the photo's own 68 ``landmarks`` known
    (and its ``yaw``, degrees) also ``completeness_flow``, read at any yaw by optical flow, and
    ``completeness_flow_visible``, on the camera's side alone (:func:`_flow_reading`). None when no
    face is fitted."""
    face = fit_on_box(ctx, image, box)
    if face is None:
        return None
    lm = face.fit.landmarks_fitted[0].detach().cpu().numpy()
    before = expression_measures(ctx.fit_model, face.fit.expression[0])
    read_before = read_measures(image, box)
    identity_in = descriptor(image, face.landmarks_detected)
    t0 = time.perf_counter()
    result = edit_fitted(image, [face], specs, ctx)
    seconds = (time.perf_counter() - t0) / len(specs)
    back = edit_fitted(image, [face], [specs[0].with_intensity(0.0)], ctx).outputs[specs[0].label]
    in_box = box_slices(lm, image.shape)
    rows = []
    for spec in specs:
        out = result.outputs[spec.label]
        refit = fit_on_box(ctx, out, box)
        klass = spec.label if spec.label in references and spec.label in CLASS_MEASURES else None
        complete, mouth = float("nan"), (float("nan"), float("nan"), 0)
        complete_dlib, read_after = float("nan"), None
        if klass is not None and f"dlib:{klass}" in references:
            read_after = read_measures(out, box)
            complete_dlib = completeness(read_before, read_after, references[f"dlib:{klass}"], klass, 0.01)
        if refit is not None:
            mouth = mouth_stats(out, refit.fit.landmarks_fitted[0].numpy())
            if klass is not None:
                after = expression_measures(ctx.fit_model, refit.fit.expression[0])
                complete = completeness(before, after, references[klass], klass)
        rows.append(
            {
                "target": spec.label,
                "speckles": speckles(image, out),
                "changed_outside": changed_outside(image, out, grown_box(lm)),
                "changed_padding": changed_padding(image, out),
                "identity": float(np.linalg.norm(descriptor(out, face.landmarks_detected) - identity_in)),
                "completeness": complete,
                "completeness_dlib": complete_dlib,
                "dlib_before": read_before if read_after is not None else None,
                "dlib_after": read_after,
                "mouth_mean": mouth[0],
                "mouth_std": mouth[1],
                **_flow_reading(image, out, landmarks, yaw, references, klass),
                "seconds_per_edit": seconds,
                "round_trip_db": psnr(back[in_box], image[in_box]),
            }
        )
    return rows


def measure_closing(image: np.ndarray, ctx, spec, min_gap: float) -> dict | None:
    """Edit the largest face of a photo whose mouth is open to ``spec`` (``neutral``) and read the
    inner-lip gap with dlib's landmarks on the detector's box, before and after (inter-ocular
    units). None when no face is found, the detector is not dlib's (its box is what dlib's
    predictor expects), or the mouth is closed (gap under ``min_gap``)."""
    faces = fit_image(image, ctx.fit_model, ctx.fit_config, ctx.detector, 1, regressor=ctx.regressor)
    if not faces or faces[0].detector not in ("hog", "cnn"):
        return None
    face = faces[0]
    before = landmark_measures(predict_landmarks(image, face.bbox))["lip_gap"]
    if before < min_gap:
        return None
    out = edit_fitted(image, [face], [spec], ctx).outputs[spec.label]
    after = landmark_measures(predict_landmarks(out, face.bbox))["lip_gap"]
    return {"gap_before": before, "gap_after": after, "speckles": speckles(image, out)}


def real_mouths(samples, min_gap: float = 0.08, max_yaw: float = 30.0) -> dict[str, float]:
    """The reference for :func:`mouth_stats`: real open mouths of labelled photos (AFLW2000-3D
    samples whose ground-truth inner-lip gap exceeds ``min_gap`` of the face size, near frontal):
    the 10th / 50th / 90th percentiles of their inner-mouth luminance mean and spread."""
    means, stds = [], []
    for s in samples:
        lm = s.landmarks
        size = float(np.sqrt(np.prod(lm.max(0) - lm.min(0))))
        if abs(s.yaw) >= max_yaw or np.linalg.norm(lm[62] - lm[66]) < min_gap * size:
            continue
        mean, std, n = mouth_stats(read_image(s.image_path), lm)
        if n >= 30:
            means.append(mean)
            stds.append(std)
    if not means:
        return {"n": 0}
    pct = {f"mean_p{q}": float(np.percentile(means, q)) for q in (10, 50, 90)}
    return {"n": len(means), **pct, **{f"std_p{q}": float(np.percentile(stds, q)) for q in (10, 50, 90)}}
