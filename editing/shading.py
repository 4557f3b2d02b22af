"""The expression ratio image: the shading the new shape casts, under the photo's own lighting.

The warp moves the photo's pixels, and their shading with them; a mouth that opens or a cheek that
bulges also turns the surface toward or away from the light. :func:`fit_lighting` fits
second-order spherical-harmonics lighting to the photo's luminance over the visible face (constant
albedo, least squares with a small ridge), and :func:`ratio_image` is the model's shading at the
target normal over its shading at the source normal of the same surface point: exactly 1 where the
shape does not change, so only creases, bulges and opened cavities change the skin's brightness,
never its colour.
"""

from __future__ import annotations

import numpy as np

from face3d.filters import masked_blur
from face3d.fit.appearance import sh_basis
from face3d.render.texture_fill import LUMA_601

RATIO_RANGE = (0.75, 1.15)
"""Clamp of the ratio image: darkening (creases, an opened cavity) may go further than brightening,
which saturates an already bright photo to white and is where a 2nd-order SH fit is least sure."""
MIN_FACING = 0.25
"""Pixels whose normal faces the camera less than this (|n_z|) keep ratio 1: at a silhouette the
shading of a grazing normal is noise, and a line of it reads as an outline."""
SMOOTH_PX = 1.0
"""Gaussian smoothing (sigma, pixels) of the ratio image: shading varies smoothly."""


def fit_lighting(photo: np.ndarray, normals: np.ndarray, mask: np.ndarray, ridge: float = 1e-2) -> np.ndarray:
    """(9,) grey SH lighting of the photo (its luminance in [0, 1]) under a constant albedo.

    Args:
        photo: (h, w, 3) uint8 crop; normals: (h, w, 3) unit camera-space normals of the fitted
            face; mask: (h, w) bool pixels to fit (the visible face).
    """
    if mask.sum() < 20:
        return np.array([1.0, 0, 0, 0, 0, 0, 0, 0, 0])
    luma = (photo[mask].astype(np.float64) @ np.array(LUMA_601)) / 255.0
    B = sh_basis(normals[mask].astype(np.float64))
    A = B.T @ B + ridge * len(B) * np.diag([0.0] + [1.0] * 8)
    light = np.linalg.solve(A, B.T @ luma)
    if light[0] <= 1e-3:  # a degenerate fit: no shading change at all
        return np.array([1.0, 0, 0, 0, 0, 0, 0, 0, 0])
    return light


def ratio_image(normal_target: np.ndarray, normal_source: np.ndarray, mask: np.ndarray, light: np.ndarray):
    """(h, w) float32: SH shading at the target normal / at the source normal inside ``mask``,
    clamped to :data:`RATIO_RANGE`; exactly 1 outside ``mask`` and where the normals are equal."""
    out = np.ones(mask.shape, np.float32)
    if not mask.any():
        return out
    nt, ns = normal_target[mask], normal_source[mask]
    st = sh_basis(nt.astype(np.float64)) @ light
    ss = sh_basis(ns.astype(np.float64)) @ light
    floor = 0.15 * max(float(light[0]), 1e-3)
    r = np.maximum(st, floor) / np.maximum(ss, floor)
    facing = np.minimum(np.abs(nt[:, 2]), np.abs(ns[:, 2])) >= MIN_FACING
    r[~facing | np.all(nt == ns, -1)] = 1.0
    out[mask] = np.clip(r, *RATIO_RANGE)
    if SMOOTH_PX > 0:  # smooth the log-ratio inside the mask; 1 stays exactly 1 where nothing changes
        smooth = np.exp(masked_blur(np.log(out), mask, SMOOTH_PX)[0]).astype(np.float32)  # exp(0) = 1
        out = np.where(mask, smooth, np.float32(1.0))
    return out


def apply_ratio(image: np.ndarray, ratio: np.ndarray) -> np.ndarray:
    """(h, w, 3) uint8 times (h, w) ratio (the same factor on every channel: grey stays grey);
    pixels whose ratio is exactly 1 keep their bytes."""
    out = image.copy()
    change = ratio != 1.0
    if change.any():
        out[change] = np.clip(image[change].astype(np.float32) * ratio[change][:, None] + 0.5, 0, 255).astype(
            np.uint8
        )
    return out
