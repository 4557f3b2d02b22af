"""Reading an edit at any yaw without a face model: the photo's landmarks carried by optical flow.

dlib's predictor reads expressions near frontal only (beyond 30° its landmarks collapse to a
frontal-looking shape), and neither the fitter's re-fit nor the regression network reads them
(docs/benchmarks.md). Where a photo's 68 landmarks are known (AFLW2000-3D's ground truth), an edit
can still be read from its pixels alone: :func:`flow_points` moves each landmark by the dense
optical flow from the photo to the edit (OpenCV's DIS), and :func:`nose_measures` measures both in
a frame the yaw does not foreshorten: the nose line (landmark 33 to 27) is the vertical axis and
its length the unit; the mouth's width is divided by cos(yaw).

The flow follows skin and lips that move, not an opening that appears: near frontal, on the same
edits, it reads dlib's change of the mouth's width and corner lift and of the brows' height. The
inner lips border the opening, where new content has no source to track: :func:`flow_landmarks`
moves them by the flow on their lips' own tissue, and so reads the lip gap too.
:data:`FLOW_MEASURES` are the class measures it reads (``scripts/experiments/flow_completeness.py``,
docs/history.md).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

FLOW_MEASURES: dict[str, tuple[str, ...]] = {
    "happy": ("mouth_width", "corner_lift"),
    "surprise": ("lip_gap", "brow_height"),
}
"""Per class, the measures of :data:`editing.compare.quality.CLASS_MEASURES` the flow reads."""

VISIBLE_MEASURES: dict[str, tuple[str, ...]] = {"happy": ("near_corner_lift",)}
"""Per class, what the flow reads of it on the camera's side alone: beyond 30° the far mouth
corner hides behind the cheek, so happy's width and the two corners' mean lift read short; the
visible corner's lift does not (docs/history.md). A supplement to :data:`FLOW_MEASURES`, not
the class's definition."""

MIN_COS_YAW = 0.2
"""Least cos(yaw) the mouth's width is divided by (a profile shows one corner)."""


def nose_measures(landmarks: np.ndarray, frame_from: np.ndarray | None = None, yaw: float = 0.0) -> dict:
    """The class measures of (68, 2) image ``landmarks`` in the nose frame of ``frame_from`` (68, 2)
    (default: ``landmarks``): origin landmark 33, up toward 27, unit the 33-27 length.

    ``mouth_width`` corners apart across the axis, over cos(``yaw`` degrees); ``corner_lift`` the
    corners' height above the mid-lips' (51, 57); ``near_corner_lift`` the same of the corner on
    the camera's side alone (in ``frame_from``, the one farther across from the nose line: the
    corner a turned face still shows); ``lip_gap`` 62 above 66; ``brow_height`` the brows' mean
    height above the eyes'. Measuring the edit in its photo's frame keeps a moving nose tip out of
    the unit.
    """
    L = np.asarray(landmarks, np.float64)
    F = L if frame_from is None else np.asarray(frame_from, np.float64)
    if L.shape != (68, 2) or F.shape != (68, 2):
        raise ValueError(f"nose_measures: landmarks must be (68, 2), got {L.shape} and {F.shape}")
    up = F[27] - F[33]
    unit = max(float(np.linalg.norm(up)), 1e-6)
    u = up / unit
    across = np.array([-u[1], u[0]])
    v, h = (L - F[33]) @ u / unit, (L - F[33]) @ across / unit
    side = (F[[48, 54]] - F[33]) @ across
    near = 48 if abs(side[0]) > abs(side[1]) else 54
    mid = 0.5 * (v[51] + v[57])
    return {
        "mouth_width": float(abs(h[54] - h[48])) / max(math.cos(math.radians(yaw)), MIN_COS_YAW),
        "corner_lift": float(0.5 * (v[48] + v[54]) - mid),
        "near_corner_lift": float(v[near] - mid),
        "lip_gap": float(v[62] - v[66]),
        "brow_height": float(v[17:27].mean() - v[36:48].mean()),
    }


def flow_points(before: np.ndarray, after: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(L, 2) pixel ``points`` of ``before`` (H, W, 3) uint8 RGB moved to ``after`` by the dense
    DIS optical flow before -> after (medium preset, on luminance), read bilinearly."""
    if before.shape != after.shape:
        raise ValueError(f"flow_points: images differ in shape: {before.shape} and {after.shape}")
    g0, g1 = (cv2.cvtColor(np.ascontiguousarray(x), cv2.COLOR_RGB2GRAY) for x in (before, after))
    flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(g0, g1, None)
    h, w = g0.shape
    pts = np.asarray(points, np.float64)
    x = np.clip(pts[:, 0], 0, w - 1).astype(np.float32)[None]
    y = np.clip(pts[:, 1], 0, h - 1).astype(np.float32)[None]
    moved = [cv2.remap(np.ascontiguousarray(flow[..., c]), x, y, cv2.INTER_LINEAR)[0] for c in (0, 1)]
    return pts + np.stack(moved, -1)


LIP_TISSUE = {61: 50, 62: 51, 63: 52, 65: 56, 66: 57, 67: 58}
"""Inner-lip landmark -> the outer-lip landmark across the same lip (68-point convention)."""


def flow_landmarks(before: np.ndarray, after: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(68, 2) ``landmarks`` of ``before`` moved to ``after`` (:func:`flow_points`), the inner lips'
    (61-63, 65-67) by the flow halfway to the outer-lip point across their lip: on the lip's own
    tissue, which the flow tracks. The inner edge itself borders whatever appears between parting
    lips, which has no source pixel, so the flow there follows neither lip."""
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"flow_landmarks: landmarks must be (68, 2), got {lm.shape}")
    inner, outer = list(LIP_TISSUE), list(LIP_TISSUE.values())
    mid = 0.5 * (lm[inner] + lm[outer])
    moved = flow_points(before, after, np.concatenate([lm, mid]))
    out = moved[:68].copy()
    out[inner] = lm[inner] + (moved[68:] - mid)
    return out


def convention_offset(pairs) -> dict[str, float]:
    """Per measure, the median of (known landmarks' - dlib's) :func:`nose_measures` over photos
    given as ``(known (68, 2), dlib's (68, 2), yaw degrees)``: what to add to a reference read by
    dlib (FER2013's class medians) to compare it with measures of the known landmarks, whose
    convention differs (AFLW2000-3D's mouth corners sit further out than dlib's). Calibrate on
    near-frontal photos, where dlib's landmarks hold."""
    diffs = []
    for known, dlib, yaw in pairs:
        a, b = nose_measures(known, yaw=yaw), nose_measures(dlib)
        diffs.append({k: a[k] - b[k] for k in a})
    if not diffs:
        raise ValueError("convention_offset: no photos")
    return {k: float(np.median([d[k] for d in diffs])) for k in diffs[0]}
