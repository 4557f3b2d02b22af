"""Crop geometry, the one implementation: square crops of a landmark box, their (2, 3) affines,
and the warps (with an area pre-shrink, so small crops do not alias) that make them.

A crop of a box is ``crop_box`` (centre and side, ``crop_scale`` x the box's longer side) turned
into an image -> crop affine by ``crop_transform``; ``warp_crop`` / ``warp_affine`` cut it.
Affines are (2, 3) arrays mapping image pixels to crop pixels (OpenCV pixel centres).
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def crop_box(box, crop_scale: float) -> tuple[float, float, float]:
    """Square crop of a 68-landmark box: ``(centre_x, centre_y, side)`` in image pixels."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return 0.5 * (x0 + x1), 0.5 * (y0 + y1), max(x1 - x0, y1 - y0, 1.0) * crop_scale


def crop_transform(cx: float, cy: float, side: float, size: int) -> np.ndarray:
    """(2, 3) affine image pixels -> crop pixels: the crop centre goes to ``(size - 1) / 2``."""
    k = size / side
    c = (size - 1) / 2
    return np.array([[k, 0.0, c - k * cx], [0.0, k, c - k * cy]])


def box_transform(box, size: int) -> np.ndarray:
    """(2, 3) affine image pixels -> crop pixels for a box ``(x0, y0, x1, y1)`` given by its
    pixel-area edges: image point ``(x0 - 0.5, y0 - 0.5)`` goes to the crop's corner ``(-0.5, -0.5)``
    and ``(x1 - 0.5, y1 - 0.5)`` to ``(size - 0.5, size - 0.5)``. For a square box this is
    :func:`crop_transform` of the box centre less half a pixel (to rounding)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    sx, sy = size / (x1 - x0), size / (y1 - y0)
    return np.array([[sx, 0.0, (0.5 - x0) * sx - 0.5], [0.0, sy, (0.5 - y0) * sy - 0.5]])


def shrunk_size(width: int, height: int, k: float) -> tuple[int, int]:
    """(width, height) of the area pre-shrink for crop scale ``k`` (< 0.7): ``1.2 k`` of the image."""
    return max(2, round(width * k * 1.2)), max(2, round(height * k * 1.2))


def warp_crop(image: np.ndarray, A: np.ndarray, size: int) -> np.ndarray:
    """Crop ``image`` (H, W, 3) uint8 with affine ``A`` (2, 3) to (size, size, 3) (edges replicated)."""
    A = np.asarray(A, dtype=np.float64)
    k = A[0, 0]
    if k < 0.7:  # pre-shrink with area averaging so the bilinear warp does not alias
        image, fx, fy = shrink(image, k)
        # small pixel u_s = (u + 0.5) * f - 0.5  =>  u = (u_s + 0.5) / f - 0.5
        A = np.array(
            [
                [A[0, 0] / fx, 0.0, A[0, 2] + A[0, 0] * (0.5 / fx - 0.5)],
                [0.0, A[1, 1] / fy, A[1, 2] + A[1, 1] * (0.5 / fy - 0.5)],
            ]
        )
    return cv2.warpAffine(image, A, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


# ------------------------------------------------------------------------------ geometry
def resized_points(points, scale):
    """Pixel positions (..., 2) (numpy or torch) in an image resized by ``scale`` (sx, sy: new
    pixels per old pixel, an array or tensor broadcasting against ``points``), pixel centres kept:
    ``u' = (u + 0.5) s - 0.5`` (OpenCV's :func:`cv2.resize` convention)."""
    return (points + 0.5) * scale - 0.5


def _h(A: np.ndarray) -> np.ndarray:
    """(2, 3) affine -> (3, 3) homogeneous."""
    return np.vstack([A, [0.0, 0.0, 1.0]])


def compose_affine(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """(2, 3) affines -> the (2, 3) affine of ``A`` after ``B``."""
    return (_h(A) @ _h(B))[:2]


def transform_points(A: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine to (N, 2) points."""
    return pts @ A[:, :2].T + A[:, 2]


def invert_affine(A: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) affine (crop -> image pixels for a crop transform)."""
    return np.linalg.inv(_h(A))[:2]


def crop_affine(
    landmarks: np.ndarray,
    crop_scale: float,
    size: int,
    shift=(0.0, 0.0),
    log_scale: float = 0.0,
    angle_deg: float = 0.0,
    flip: bool = False,
) -> np.ndarray:
    """(2, 3) image -> crop affine for (68, 2) image ``landmarks`` (the inference crop when all
    augmentation arguments are zero: ``crop_transform(*crop_box(landmark box), size)``).

    The image is first rotated by ``angle_deg`` about the landmark box centre, the crop is then
    made from the rotated points' box with the centre moved by ``shift`` (fractions of the box's
    longer side) and its side scaled by ``exp(log_scale)``, and ``flip`` mirrors the crop.
    """
    lo, hi = landmarks.min(0), landmarks.max(0)
    c = 0.5 * (lo + hi)
    t = math.radians(angle_deg)
    co, si = math.cos(t), math.sin(t)
    Rot = np.array([[co, -si, c[0] - co * c[0] + si * c[1]], [si, co, c[1] - si * c[0] - co * c[1]]])
    if angle_deg != 0.0:
        pts = transform_points(Rot, landmarks)
        lo, hi = pts.min(0), pts.max(0)
    cx, cy, side = crop_box((lo[0], lo[1], hi[0], hi[1]), crop_scale)
    side0 = side / crop_scale
    A = crop_transform(cx + shift[0] * side0, cy + shift[1] * side0, side * math.exp(log_scale), size)
    if angle_deg != 0.0:
        A = compose_affine(A, Rot)
    if flip:
        A = compose_affine(np.array([[-1.0, 0.0, size - 1.0], [0.0, 1.0, 0.0]]), A)
    return A


def shrink(image: np.ndarray, k: float) -> tuple[np.ndarray, float, float]:
    """The pre-shrink of :func:`warp_crop` for crop scale ``k`` (< 0.7): the image
    area-resized to ``1.2 k`` of its size, and its x / y factors."""
    H, W = image.shape[:2]
    size_s = shrunk_size(W, H, k)
    return cv2.resize(image, size_s, interpolation=cv2.INTER_AREA), size_s[0] / W, size_s[1] / H


def warp_affine(image: np.ndarray, A: np.ndarray, size: int, shrunk=None) -> np.ndarray:
    """:func:`warp_crop` for any (2, 3) affine (rotations and mirrors included):
    (H, W, 3) uint8 -> (size, size, 3), same area pre-shrink below 0.7x, so it equals
    ``warp_crop`` on the axis-aligned affines of :func:`crop_transform`. ``shrunk``: a cached
    :func:`shrink` of ``image`` to use instead (training: one resize per image, not per crop)."""
    A = np.asarray(A, dtype=np.float64)
    k = math.hypot(A[0, 0], A[0, 1])
    if shrunk is not None or k < 0.7:
        image, fx, fy = shrunk if shrunk is not None else shrink(image, k)
        unshrink = np.array([[1 / fx, 0.0, 0.5 / fx - 0.5], [0.0, 1 / fy, 0.5 / fy - 0.5]])
        A = compose_affine(A, unshrink)
    return cv2.warpAffine(image, A, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _area_taps(a: int, b: int, n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's ``INTER_AREA`` weights of an ``n`` -> ``d`` shrink, for output pixels ``[a, b)``:
    source indices and weights, each (b - a, T); output ``j`` averages source ``[j s, (j + 1) s)``,
    ``s = n / d``."""
    s = n / d
    f1 = np.arange(a, b, dtype=np.float64) * s
    f2 = np.minimum(f1 + s, n)
    idx = np.floor(f1).astype(np.int64)[:, None] + np.arange(math.ceil(s) + 1)
    w = np.clip(np.minimum(idx + 1, f2[:, None]) - np.maximum(idx, f1[:, None]), 0.0, None)
    w /= w.sum(1, keepdims=True)
    return np.minimum(idx, n - 1), w


def shrink_region(image: np.ndarray, k: float, x_range, y_range):
    """The part of :func:`face3d.crop.shrink` ``(image, k)`` (an ``INTER_AREA``
    resize) that covers image columns ``x_range`` and rows ``y_range`` (+ 2 shrunk pixels for a
    bilinear warp), computed from that part of the image only: faces in large photos take a
    fraction of the time.

    Returns ``(part, fx, fy, a, c)``: ``part`` equals ``shrink(image, k)[0][c:c + h, a:a + w]``
    (to a grey level where OpenCV's float rounding differs) and ``fx``, ``fy`` are the whole-image
    shrink's factors.
    """
    H, W = image.shape[:2]
    dW, dH = shrunk_size(W, H, k)

    def span(lo: float, hi: float, n: int, d: int) -> tuple[int, int]:
        a = min(d - 1, max(0, math.floor(lo * d / n) - 2))
        return a, max(a + 1, min(d, math.ceil(hi * d / n) + 3))

    (a, b), (c, e) = span(*x_range, W, dW), span(*y_range, H, dH)
    xi, xw = _area_taps(a, b, W, dW)
    yi, yw = _area_taps(c, e, H, dH)
    y0, x0 = yi.min(), xi.min()
    roi = image[y0 : yi.max() + 1, x0 : xi.max() + 1]  # what the part reads
    xi, yi, xw, yw = xi - x0, yi - y0, xw.astype(np.float32), yw.astype(np.float32)
    # rows first (numpy gathers rows much faster than columns): each output row is a (1, T) x
    # (T, w_roi * 3) product; then the columns, gathered as rows of the transposed, smaller array
    # (OpenCV transposes 3-channel images several times faster than a numpy copy)
    h, w = yi.shape[0], xi.shape[0]
    rows = roi[yi].reshape(h, yi.shape[1], -1).astype(np.float32)
    tmp = cv2.transpose(np.matmul(yw[:, None], rows).reshape(h, roi.shape[1], 3))  # (w_roi, h, 3)
    part = np.matmul(xw[:, None], tmp[xi].reshape(w, xi.shape[1], -1)).reshape(w, h, 3)
    # rounded to nearest (even) and saturated to uint8 (the weights are >= 0), then C-ordered rows
    # again: OpenCV reads the part three times, and copies a non-C-ordered one each time
    part = cv2.transpose(cv2.convertScaleAbs(part))
    return part, dW / W, dH / H, a, c


PAD_MIN_PX = 4
"""Least depth (pixels) of an exactly constant band along an image border for it to count as padding."""
PAD_RING_PX = 16
"""Most rows (columns) beyond the exact band that still count as padding when nearly constant: the
JPEG blocks straddling the band's edge ring around its colour."""
PAD_RING_LEVELS = 24
"""Greatest deviation (grey levels) from the band's colour, at the 95th percentile of a row, of a
ringing row."""


def photo_extent(image: np.ndarray) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)``: the part of ``image`` (H, W, 3) that holds the photo, less the
    constant-colour bands a crop reaching beyond its photo was padded with (AFLW2000-3D pads more
    than half of its images with black).

    A band runs the image's full width (height) from a border, every pixel of its first
    :data:`PAD_MIN_PX` rows exactly one colour, and goes on over the nearly constant rows after it
    (at most :data:`PAD_RING_PX`: the JPEG ringing at its edge). Only whole rows and columns count:
    a flat background the face, hair or body reaches into is not padding (a clipped studio
    background above a head is, which only stops the edit from moving the head into it). Returns
    the whole image where there is none.
    """
    if image.ndim != 3:
        raise ValueError(f"photo_extent: image must be (H, W, C), got {image.shape}")
    H, W = image.shape[:2]
    x0, y0, x1, y1 = 0, 0, W, H
    found = True
    while found:  # again after a band is cut: bands of two colours meet at a corner
        found = False
        for side in range(4):
            part = image[y0:y1, x0:x1]
            lines = (part, part[::-1], part.transpose(1, 0, 2), part.transpose(1, 0, 2)[::-1])[side]
            d = _band_depth(lines)
            if d == 0 or d >= lines.shape[0] - 1:
                continue
            found = True
            if side == 0:
                y0 += d
            elif side == 1:
                y1 -= d
            elif side == 2:
                x0 += d
            else:
                x1 -= d
    return x0, y0, x1, y1


def photo_mask(image: np.ndarray, extent=None) -> np.ndarray:
    """(H, W) bool: True inside ``extent`` (x0, y0, x1, y1; default :func:`photo_extent` of
    ``image`` (H, W, C)), False over the padding around the photo."""
    x0, y0, x1, y1 = photo_extent(image) if extent is None else extent
    mask = np.zeros(image.shape[:2], bool)
    mask[y0:y1, x0:x1] = True
    return mask


def _band_depth(lines: np.ndarray) -> int:
    """Rows of padding at the start of ``lines`` (n, m, C): 0, or the exactly constant run (at
    least :data:`PAD_MIN_PX`) and the ringing rows after it."""
    if not (lines[:PAD_MIN_PX] == lines[0, 0]).all():
        return 0
    k = _constant_run(lines)
    near = lines[k : k + PAD_RING_PX].astype(np.int16) - lines[0, 0].astype(np.int16)
    if len(near) == 0:
        return k
    ring = np.percentile(np.abs(near).max(-1), 95, axis=1) <= PAD_RING_LEVELS
    return k + (len(ring) if ring.all() else int(np.argmin(ring)))


def _constant_run(lines: np.ndarray, chunk: int = 32) -> int:
    """How many leading rows of ``lines`` (n, m, C) are exactly the colour of its first pixel
    (scanned a chunk at a time: a band is rarely more than a third of the image)."""
    for i in range(0, lines.shape[0], chunk):
        same = (lines[i : i + chunk] == lines[0, 0]).all(axis=(1, 2))
        if not same.all():
            return i + int(np.argmin(same))
    return lines.shape[0]
