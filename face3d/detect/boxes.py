"""Face boxes: conventions, conversions to and from dlib, and the landmark-box -> detector-box mapping.

Box convention used throughout :mod:`face3d.detect`: ``(x0, y0, x1, y1)`` floats in image pixels,
OpenCV/dlib point coordinates (x right, y down, the centre of the top-left pixel is ``(0, 0)``).
``(x0, y0)`` and ``(x1, y1)`` are the *centres* of the box's corner pixels, so a
``dlib.rectangle(l, t, r, b)`` is the box ``(l, t, r, b)`` exactly (its width here is ``r - l``,
where dlib's ``rectangle.width()`` says ``r - l + 1``). This is the frame dlib's shape predictor
itself uses: it maps its mean shape onto the rectangle's corner points, so converting a box to a
dlib rectangle only rounds (:func:`to_dlib_rect`) and never shifts by half a pixel.

The 68-point shape predictor was trained on boxes from dlib's HOG detector. A box built from 68
landmarks (the AFLW2000-3D protocol gives the bounding box of the ground-truth points) is tighter,
taller and cuts no brows, so it must be mapped before it is given to the predictor:
:func:`dlib_box_from_landmark_box` applies the linear mapping fitted by ``scripts/rebuild/calibrate_bbox.py``
and stored in ``assets/bbox_mapping.json``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from face3d.assets import asset_path
from face3d.errors import Face3DError

Box = tuple[float, float, float, float]
"""``(x0, y0, x1, y1)`` in pixels, corner-pixel centres (see the module docstring)."""

MAPPING_KEYS = ("dcx", "dcy", "w", "h")
"""Outputs of the mapping, each ``= c_w * w + c_h * h`` of the landmark box's width ``w`` and height
``h``: ``dcx``/``dcy`` the shift of the box centre, ``w``/``h`` the new width and height."""


class BoxMappingError(Face3DError):
    """``assets/bbox_mapping.json`` is missing or unreadable (run ``scripts/rebuild/calibrate_bbox.py``)."""


def default_mapping_path() -> Path:
    """Where the shipped mapping lives: ``<repo>/assets/bbox_mapping.json``."""
    return asset_path("bbox_mapping.json")


# ------------------------------------------------------------------------------ conversions
def as_box(box) -> Box:
    """Validate and convert a 4-sequence ``(x0, y0, x1, y1)`` (or a ``Detection``) to a float tuple.

    Raises:
        ValueError: not four finite numbers with ``x1 >= x0`` and ``y1 >= y0``.
    """
    box = getattr(box, "box", box)
    arr = np.asarray(box, dtype=np.float64).reshape(-1)
    if arr.shape != (4,) or not np.all(np.isfinite(arr)):
        raise ValueError(f"expected a box (x0, y0, x1, y1) of 4 finite numbers, got {box!r}")
    x0, y0, x1, y1 = (float(v) for v in arr)
    if x1 < x0 or y1 < y0:
        raise ValueError(f"box {box!r} has x1 < x0 or y1 < y0")
    return x0, y0, x1, y1


def to_dlib_rect(box):
    """Box -> ``dlib.rectangle`` with the corners rounded to the nearest pixel (same frame, no shift)."""
    import dlib

    x0, y0, x1, y1 = as_box(box)
    return dlib.rectangle(*(math.floor(v + 0.5) for v in (x0, y0, x1, y1)))


def from_dlib_rect(rect) -> Box:
    """``dlib.rectangle``/``dlib.drectangle`` -> box ``(left, top, right, bottom)`` as floats."""
    return float(rect.left()), float(rect.top()), float(rect.right()), float(rect.bottom())


def landmark_box(points: np.ndarray) -> Box:
    """Bounding box of (N, 2) points ``(x, y)``: ``(min x, min y, max x, max y)``."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) == 0:
        raise ValueError(f"expected points of shape (N, 2), got {pts.shape}")
    (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
    return float(x0), float(y0), float(x1), float(y1)


def box_area(box) -> float:
    """Area ``(x1 - x0) * (y1 - y0)`` of a box (corner-centre frame)."""
    x0, y0, x1, y1 = as_box(box)
    return (x1 - x0) * (y1 - y0)


def intersection_area(a, b) -> float:
    """Area of the overlap of two boxes (0 when they do not overlap)."""
    ax0, ay0, ax1, ay1 = as_box(a)
    bx0, by0, bx1, by1 = as_box(b)
    return max(0.0, min(ax1, bx1) - max(ax0, bx0)) * max(0.0, min(ay1, by1) - max(ay0, by0))


def iou(a, b) -> float:
    """Intersection over union of two boxes, 0 when either is empty."""
    inter = intersection_area(a, b)
    union = box_area(a) + box_area(b) - inter
    return inter / union if union > 0 else 0.0


def best_match(boxes, target, min_iou: float = 0.2) -> int | None:
    """Index of the box in ``boxes`` that overlaps ``target`` most (IoU), None when none reaches
    ``min_iou``: which of an image's detections is the labelled face (benchmarks, automatic mode)."""
    overlaps = [iou(b, target) for b in boxes]
    if not overlaps or max(overlaps) < min_iou:
        return None
    return int(np.argmax(overlaps))


def grow_box(box, factor: float) -> Box:
    """The box scaled by ``factor`` about its centre (width and height times ``factor``)."""
    x0, y0, x1, y1 = as_box(box)
    cx, cy, hw, hh = 0.5 * (x0 + x1), 0.5 * (y0 + y1), 0.5 * factor * (x1 - x0), 0.5 * factor * (y1 - y0)
    return cx - hw, cy - hh, cx + hw, cy + hh


def scale_box(box, factor: float) -> Box:
    """Map a box found in an image resized by ``factor`` (new = old * factor, e.g. by ``cv2.resize``)
    back to the original: points ``x_old = (x_new + 0.5) / factor - 0.5``."""
    return tuple((v + 0.5) / factor - 0.5 for v in as_box(box))  # type: ignore[return-value]


# ------------------------------------------------------------------------------ mapping
_CACHE: dict[tuple[str, int], dict[str, tuple[float, float]]] = {}


def load_mapping(path: str | os.PathLike | None = None) -> dict[str, tuple[float, float]]:
    """Read the mapping coefficients ``{key: (c_w, c_h)}`` for the keys in :data:`MAPPING_KEYS`.

    The file is read when called (and cached while its modification time is unchanged); there is
    no built-in fallback.

    Raises:
        BoxMappingError: the file is missing, not JSON, or lacks ``coefficients`` for every key.
    """
    path = Path(path) if path is not None else default_mapping_path()
    data = "../shared/data/aflw2000-3d-dev"
    hint = f"; make it with scripts/rebuild/calibrate_bbox.py --data {data} --out {path}"
    try:
        stat = path.stat()
    except OSError as err:
        raise BoxMappingError(f"box mapping file {path} is missing ({err.strerror}){hint}") from err
    key = (str(path), stat.st_mtime_ns)
    if key in _CACHE:
        return _CACHE[key]
    try:
        coeffs = json.loads(path.read_text(encoding="utf-8"))["coefficients"]
        mapping = {k: (float(coeffs[k][0]), float(coeffs[k][1])) for k in MAPPING_KEYS}
    except (OSError, ValueError, KeyError, IndexError, TypeError) as err:
        raise BoxMappingError(f"box mapping file {path} is unreadable or corrupt ({err!r}){hint}") from err
    if not all(math.isfinite(v) for pair in mapping.values() for v in pair):
        raise BoxMappingError(f"box mapping file {path} holds non-finite coefficients{hint}")
    _CACHE[key] = mapping
    return mapping


def apply_mapping(box, mapping: dict[str, tuple[float, float]]) -> Box:
    """Apply mapping coefficients (see :data:`MAPPING_KEYS`) to a box; returns the mapped box."""
    x0, y0, x1, y1 = as_box(box)
    w, h = x1 - x0, y1 - y0

    def lin(k: str) -> float:
        cw, ch = mapping[k]
        return cw * w + ch * h

    cx, cy = 0.5 * (x0 + x1) + lin("dcx"), 0.5 * (y0 + y1) + lin("dcy")
    nw, nh = max(lin("w"), 0.0), max(lin("h"), 0.0)
    return cx - 0.5 * nw, cy - 0.5 * nh, cx + 0.5 * nw, cy + 0.5 * nh


def dlib_box_from_landmark_box(box, mapping_path: str | os.PathLike | None = None) -> Box:
    """Map the bounding box of 68 landmarks (0-based pixels) to the box dlib's HOG detector would give.

    Args:
        box: ``(x0, y0, x1, y1)`` of the 68 points, e.g. ``landmark_box(gt_points)``.
        mapping_path: the calibration JSON; default ``<repo>/assets/bbox_mapping.json``.

    Returns:
        ``(x0, y0, x1, y1)``, ready for :func:`face3d.detect.predict_landmarks`.

    Raises:
        BoxMappingError: the mapping file is missing or corrupt.
    """
    return apply_mapping(box, load_mapping(mapping_path))
