"""Paste-back: feathered blending inside a dilated face mask, background byte-identical.

Every pixel outside the dilated mask is copied from the input unchanged (not blended with a
zero weight, copied), so the guarantee holds bit for bit whatever the blend does inside.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class CompositeConfig:
    """How an edited face is pasted back.

    Attributes:
        dilate_frac: dilation of the face mask, as a fraction of the face size (sqrt of the mask area).
        feather_frac: Gaussian feathering width (sigma), as a fraction of the face size.
        min_px: lower bound (pixels) of both, for tiny faces.
    """

    dilate_frac: float = 0.04
    feather_frac: float = 0.02
    min_px: int = 2


def dilation_px(mask: np.ndarray, config: CompositeConfig = CompositeConfig()) -> int:
    """The dilation radius (pixels) of :func:`edit_region` for ``mask``."""
    return max(config.min_px, int(round(config.dilate_frac * np.sqrt(float(mask.sum())))))


def mask_window(mask: np.ndarray, pad: int) -> tuple[slice, slice] | None:
    """The bounding box of ``mask`` grown by ``pad`` pixels (within the image), or None when empty:
    the work of a dilation, blur or distance of reach ``pad`` is done there, not on a whole photo."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if len(rows) == 0:
        return None
    h, w = mask.shape
    return (slice(max(0, rows[0] - pad), min(h, rows[-1] + pad + 1)),
            slice(max(0, cols[0] - pad), min(w, cols[-1] + pad + 1)))  # fmt: skip


def falloff(mask: np.ndarray, radius: int) -> np.ndarray:
    """(H, W) float32 weight: 1 on ``mask``, falling smoothly (smoothstep of the distance) to 0 at
    ``radius`` pixels from it: how far the warp's motion may reach beyond the face."""
    out = np.zeros(mask.shape, np.float32)
    win = mask_window(mask, 2 * max(radius, 1) + 8)
    if win is None:
        return out
    dist = cv2.distanceTransform((~mask[win]).astype(np.uint8), cv2.DIST_L2, 5)
    t = np.clip(1.0 - dist / max(radius, 1), 0.0, 1.0)
    out[win] = t * t * (3.0 - 2.0 * t)
    return out


def edit_region(
    mask: np.ndarray, config: CompositeConfig = CompositeConfig()
) -> tuple[np.ndarray, np.ndarray]:
    """From a hard (H, W) bool mask, the dilated region (bool) and the feathered alpha (float32,
    zero outside the region).
    """
    area = float(mask.sum())
    if area == 0:
        return np.zeros_like(mask, bool), np.zeros(mask.shape, np.float32)
    size = np.sqrt(area)
    d = dilation_px(mask, config)
    sigma = max(config.min_px / 2, config.feather_frac * size)
    win = mask_window(mask, d + int(np.ceil(4 * sigma)) + 4)  # the blur's kernel reaches 4 sigma
    m = mask[win].astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * d + 1, 2 * d + 1))
    region = np.zeros(mask.shape, bool)
    region[win] = cv2.dilate(m, kernel) > 0
    half = cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (d + 1, d + 1)))
    alpha = np.zeros(mask.shape, np.float32)
    alpha[win] = cv2.GaussianBlur(half.astype(np.float32), (0, 0), sigma)
    alpha = np.where(region, np.clip(alpha, 0, 1), 0).astype(np.float32)
    return region, alpha


def paste(image: np.ndarray, patch: np.ndarray, alpha: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Blend ``patch`` over ``image`` with ``alpha`` inside ``region``; outside, copy ``image``.

    Args:
        image, patch: (H, W, 3) uint8; alpha: (H, W) float in [0, 1]; region: (H, W) bool.
    Returns:
        (H, W, 3) uint8.
    """
    if image.shape != patch.shape or image.shape[:2] != alpha.shape or alpha.shape != region.shape:
        raise ValueError(f"shape mismatch: image {image.shape}, patch {patch.shape}, alpha {alpha.shape}")
    out = image.copy()
    a = alpha[region][:, None]
    blended = a * patch[region].astype(np.float32) + (1 - a) * image[region].astype(np.float32)
    out[region] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    return out
