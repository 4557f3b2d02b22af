"""The ``2d-warp`` baseline's mouth interior: what opened lips reveal, drawn without a 3D model.

The same fill as the 3D path (:mod:`editing.mouth`), laid out in 2D: its part colours (off-white
teeth, the dark mouth socket), darkened with the depth behind the front incisors by the same
falloff (``THROAT_FLOOR + (1 - THROAT_FLOOR) * exp(-depth / THROAT_CM)``) and toned to the photo
by the same :func:`editing.mouth.photo_tone` on the face's skin (grey levels in a greyscale photo,
desaturated as far as the photo's lips are: :func:`editing.mouth.lips_saturation`).
The geometry comes from the 2D landmark model (:class:`editing.landmark_model.LandmarkModel`, read
from the ICT model when it was built): the upper teeth are fixed to the skull, their edge a set
distance below the *source's* upper inner lip; the lower teeth ride with the jaw, their edge a set
distance above the *target's* lower inner lip; both span the arch's width around the mouth's
midline and recede with the arch's depth to the sides. Elsewhere the opening shows the socket,
deeper the farther a pixel lies inside the lips.
"""

from __future__ import annotations

import cv2
import numpy as np

from editing.landmark_model import LandmarkModel, Similarity
from editing.mouth import (
    PART_COLORS,
    SMOOTH_PX,
    THROAT_CM,
    THROAT_FLOOR,
    desaturate,
    lips_saturation,
    photo_tone,
    sclera_colour,
)
from face3d.filters import masked_blur
from face3d.render.texture_fill import LUMA_601, is_greyscale

SOCKET_DEPTH_CM = 1.0
"""Depth (cm behind the front incisors) of the socket wall seen right at the lips."""
SOCKET_SLOPE = 1.0
"""The socket's depth grows by this many cm per cm a pixel lies inside the lips (toward the throat)."""
UPPER_INNER = (60, 61, 62, 63, 64)
LOWER_INNER = (60, 67, 66, 65, 64)
"""Inner lip contours, each from the image-left mouth corner to the image-right one."""
CURVE_STEPS = 6
"""Samples per landmark interval of the smooth inner-lip curves."""


def catmull_rom(points: np.ndarray, steps: int = CURVE_STEPS) -> np.ndarray:
    """((n - 1) * steps + 1, 2) the uniform Catmull-Rom curve through ``points`` (n, 2) (ends
    extended by reflection): lips are curves, and the straight chords between the five landmarks
    of a contour draw an opened mouth as a diamond."""
    p = np.concatenate([2 * points[:1] - points[1:2], points, 2 * points[-1:] - points[-2:-1]])
    t = np.linspace(0.0, 1.0, steps, endpoint=False)[:, None]
    segments = []
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        segments.append(0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                               + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3))  # fmt: skip
    return np.concatenate([*segments, points[-1:]])


def inner_lips(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The smooth (upper, lower) inner-lip curves of (68, 2) ``landmarks``, each (n, 2) from the
    image-left mouth corner to the image-right one, in the landmarks' coordinates."""
    return catmull_rom(landmarks[list(UPPER_INNER)]), catmull_rom(landmarks[list(LOWER_INNER)])


def opening_polygon(landmarks: np.ndarray) -> np.ndarray:
    """(n, 2) the inner lips' closed outline (upper curve, then the lower one back)."""
    upper, lower = inner_lips(landmarks)
    return np.concatenate([upper, lower[::-1][1:-1]])


def throat(depth_cm: np.ndarray) -> np.ndarray:
    """The brightness factor of :func:`editing.mouth.throat_falloff` for a depth (cm) behind the
    front incisors."""
    behind = np.maximum(depth_cm, 0.0)
    return THROAT_FLOOR + (1.0 - THROAT_FLOOR) * np.exp(-behind / THROAT_CM)


def skin_mask(shape: tuple[int, int], landmarks: np.ndarray) -> np.ndarray:
    """(h, w) bool: the cheeks and nose of a face with (68, 2) ``landmarks`` (pixels of the same
    (h, w) image): the jaw's hull below the eyes, without the lips and the nostrils."""
    mask = np.zeros(shape, np.uint8)
    lm = np.round(landmarks).astype(np.int32)
    cv2.fillConvexPoly(mask, cv2.convexHull(lm[[*range(1, 16), 29]]), 1)
    cv2.fillPoly(mask, [cv2.convexHull(lm[48:60]), cv2.convexHull(lm[31:36])], 0)
    return mask > 0


def _contour(points: np.ndarray, u: np.ndarray) -> np.ndarray:
    """The height of a contour (its normalised points (n, 2), left to right) at abscissae ``u``."""
    order = np.argsort(points[:, 0])
    return np.interp(u, points[order, 0], points[order, 1])


def _motion(src: np.ndarray, dst: np.ndarray, u: np.ndarray) -> np.ndarray:
    """(N, 2) motion (dst - src) of a contour (normalised points (n, 2) each) at target abscissae ``u``."""
    order = np.argsort(dst[:, 0])
    d = dst - src
    return np.stack([np.interp(u, dst[order, 0], d[order, k]) for k in (0, 1)], 1)


def mouth_map(xy: np.ndarray, frame: Similarity, source: np.ndarray, target: np.ndarray):
    """Where the photo shows the target's mouth opening at pixels ``xy`` (N, 2): ``(source pixels
    (N, 2), upper (N,) bool)``. The upper half of the target opening (above the midline between its
    inner lips) moves with the upper inner lip, the lower half with the lower one, each rigidly per
    column: the teeth a photo shows keep their shape instead of stretching with the opening.
    ``source``, ``target``: (68, 2) landmarks, image pixels."""
    uv = frame.to_frame(xy)
    src, tgt = frame.to_frame(source), frame.to_frame(target)
    (su, sl), (tu, tl) = inner_lips(src), inner_lips(tgt)
    upper = uv[:, 1] < 0.5 * (_contour(tu, uv[:, 0]) + _contour(tl, uv[:, 0]))
    motion = np.where(upper[:, None], _motion(su, tu, uv[:, 0]), _motion(sl, tl, uv[:, 0]))
    return frame.to_image(uv - motion), upper


def source_half(xy: np.ndarray, frame: Similarity, source: np.ndarray) -> np.ndarray:
    """(N,) bool: source pixels ``xy`` (N, 2) lie above the midline of the source's inner lips."""
    uv, (upper, lower) = frame.to_frame(xy), inner_lips(frame.to_frame(source))
    return uv[:, 1] < 0.5 * (_contour(upper, uv[:, 0]) + _contour(lower, uv[:, 0]))


def interior_colors(
    xy: np.ndarray,
    depth_px: np.ndarray,
    frame: Similarity,
    source: np.ndarray,
    target: np.ndarray,
    model: LandmarkModel,
) -> np.ndarray:
    """(N, 3) untoned colours (0-1) of the interior at pixels ``xy`` (N, 2): teeth or socket, each
    darkened by its depth. ``depth_px`` (N,): each pixel's distance inside the target's inner lips
    (pixels); ``source``, ``target``: the face's (68, 2) landmarks before and after the edit."""
    uv = frame.to_frame(xy)
    src, tgt = frame.to_frame(source), frame.to_frame(target)
    mid = 0.5 * (src[62, 0] + src[66, 0])
    du = np.abs(uv[:, 0] - mid)
    upper_edge = _contour(inner_lips(src)[0], uv[:, 0]) + model.upper_teeth
    lower_edge = _contour(inner_lips(tgt)[1], uv[:, 0]) - model.lower_teeth
    arch = du <= model.teeth_half_width
    teeth = arch & ((uv[:, 1] <= upper_edge) | (uv[:, 1] >= lower_edge))
    arch_cm = np.interp(du * model.iod_cm, model.arch_depth[:, 0], model.arch_depth[:, 1])
    socket_cm = SOCKET_DEPTH_CM + SOCKET_SLOPE * depth_px / frame.scale * model.iod_cm
    depth = np.where(teeth, arch_cm, np.maximum(socket_cm, arch_cm))
    colors = np.where(teeth[:, None], np.array(PART_COLORS["teeth"]), np.array(PART_COLORS["mouth_socket"]))
    return colors * throat(depth)[:, None]


def fill_mouth(
    out: np.ndarray,
    synth: np.ndarray,
    inner: np.ndarray,
    photo: np.ndarray,
    frame: Similarity,
    source: np.ndarray,
    target: np.ndarray,
    model: LandmarkModel,
    origin: tuple[int, int] = (0, 0),
) -> None:
    """Draw the interior over the ``synth`` pixels of ``out`` (both in a work crop, ``out`` (h, w, 3)
    uint8 modified in place), with a one-pixel soft edge.

    Args:
        synth: (h, w) bool pixels to draw; inner: (h, w) bool the target's inner-lip opening.
        photo: (h, w, 3) uint8 the source crop (its skin tones the interior).
        frame: the face's :class:`Similarity` (image pixels); source, target: (68, 2) landmarks,
            image pixels; origin: (x0, y0) of the crop in the image.
    """
    if not synth.any():
        return
    off = np.asarray(origin, np.float64)
    tone = photo_tone(photo, skin_mask(synth.shape, source - off), sclera_colour(photo, source - off))
    grey = is_greyscale(photo.astype(np.float32) / 255.0)
    ys, xs = np.nonzero(inner | synth)
    pad = 3
    y0, x0 = max(0, ys.min() - pad), max(0, xs.min() - pad)
    y1, x1 = min(synth.shape[0], ys.max() + pad + 1), min(synth.shape[1], xs.max() + pad + 1)
    inner, synth, win = inner[y0:y1, x0:x1], synth[y0:y1, x0:x1], out[y0:y1, x0:x1]
    depth_px = cv2.distanceTransform(inner.astype(np.uint8), cv2.DIST_L2, 5)
    ys, xs = np.nonzero(inner)
    xy = np.stack([xs + x0, ys + y0], 1).astype(np.float64) + off
    rgb = interior_colors(xy, depth_px[ys, xs], frame, source, target, model) * tone
    rgb = desaturate(rgb, lips_saturation(photo, source - off))
    if grey:
        rgb = (rgb @ np.array(LUMA_601))[:, None].repeat(3, 1)
    drawn = np.zeros((*synth.shape, 3), np.float32)
    drawn[ys, xs] = rgb
    drawn = masked_blur(drawn, inner, SMOOTH_PX)[0]
    a = cv2.GaussianBlur(synth.astype(np.float32), (0, 0), 0.7)
    a = np.where(a > 0.98, 1.0, a)[..., None]
    mixed = np.clip(drawn, 0.0, 1.0) * 255.0 * a + win.astype(np.float32) * (1 - a)
    win[synth] = np.clip(mixed[synth] + 0.5, 0, 255).astype(np.uint8)
