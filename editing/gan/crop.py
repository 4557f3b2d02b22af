"""The aligned square face crop shared by training and inference.

The box comes from the fitted 68 landmarks (so it is stable at any yaw); one affine maps the box
onto a ``size`` x ``size`` patch and its inverse maps a (generated) patch back, where it is
blended with :func:`editing.composite.paste` so pixels outside the edit region stay byte-identical.

Coordinates: pixel centres at integers; the box edges are pixel-area edges, so the patch's pixel
``j`` covers ``[x0 + j * side / size, x0 + (j + 1) * side / size)`` of the image.
"""

from __future__ import annotations

import cv2
import numpy as np

from editing.composite import paste
from face3d.crop import box_transform, crop_box

Box = tuple[float, float, float, float]

#: Upward shift of the box centre, as a fraction of the landmarks' box height (brows, forehead).
CENTER_SHIFT = 0.1


def aligned_box(landmarks: np.ndarray, scale: float = 1.6) -> Box:
    """Square crop box around a face.

    Args:
        landmarks: (68, 2) image pixels (the fitted anatomical landmarks work at any yaw).
        scale: box side as a multiple of the larger side of the landmarks' bounding box.
    Returns:
        (x0, y0, x1, y1) floats, ``x1 - x0 == y1 - y0``; centred on the landmarks' box shifted up
        by :data:`CENTER_SHIFT` of its height. With ``scale >= 1.2`` every landmark lies inside.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"landmarks: expected (68, 2), got {lm.shape}")
    if not np.isfinite(lm).all():
        raise ValueError("landmarks: not finite")
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    lo, hi = lm.min(0), lm.max(0)
    cx, cy, side = crop_box((lo[0], lo[1], hi[0], hi[1]), scale)
    cy -= CENTER_SHIFT * (hi[1] - lo[1])
    return (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


def _check_box(box) -> Box:
    b = tuple(float(v) for v in np.asarray(box, dtype=np.float64).reshape(-1))
    if len(b) != 4 or not np.isfinite(b).all() or b[2] <= b[0] or b[3] <= b[1]:
        raise ValueError(f"box: expected finite (x0, y0, x1, y1) with x1 > x0 and y1 > y0, got {box}")
    return b  # type: ignore[return-value]


def _check_size(size) -> int:
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    return int(size)


def crop_matrix(box, size: int = 128) -> np.ndarray:
    """(2, 3) float64 affine from image pixels to patch pixels (``cv2.warpAffine`` convention):
    :func:`face3d.crop.box_transform`, the box's edges being pixel-area edges."""
    return box_transform(_check_box(box), _check_size(size))


def crop_square(image: np.ndarray, box, size: int = 128) -> np.ndarray:
    """Aligned crop: (H, W, 3) uint8 -> (size, size, 3) uint8 (bilinear, borders replicated).

    Plain bilinear, without :func:`face3d.crop.warp_affine`'s area pre-shrink of large faces: the
    generators were trained on these crops."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image: expected (H, W, 3) uint8, got {image.shape} {image.dtype}")
    size = _check_size(size)
    return cv2.warpAffine(
        image, crop_matrix(box, size), (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def crop_mask(mask: np.ndarray, box, size: int = 128) -> np.ndarray:
    """Aligned crop of a mask: (H, W) bool or float in [0, 1] -> (size, size) float32 in [0, 1]
    (bilinear, zero outside the image)."""
    if mask.ndim != 2:
        raise ValueError(f"mask: expected (H, W), got {mask.shape}")
    size = _check_size(size)
    out = cv2.warpAffine(
        np.ascontiguousarray(mask, dtype=np.float32),
        crop_matrix(box, size),
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0.0,
    )
    return np.clip(out, 0.0, 1.0)


def crop_mask_uint8(mask: np.ndarray, box, size: int = 128) -> np.ndarray:
    """:func:`crop_mask` as (size, size) uint8 0..255 (rounded): how the training caches store masks."""
    return (crop_mask(mask, box, size) * 255 + 0.5).astype(np.uint8)


def uncrop(maps: np.ndarray, box, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Warp (size, size, C) maps of the aligned crop ``box`` back to (H, W, C) image pixels
    (bilinear, borders replicated; uint8 maps stay uint8, any other dtype becomes float32).

    Returns:
        (the maps in image pixels (H, W, C), (H, W) float32 coverage: 1 inside the box, 0 outside).
    """
    maps = np.ascontiguousarray(maps, None if maps.dtype == np.uint8 else np.float32)
    size = maps.shape[0]
    H, W = shape
    M = crop_matrix(box, size)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    out = cv2.warpAffine(maps, M, (W, H), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    if out.ndim == 2:  # OpenCV drops a single channel
        out = out[..., None]
    inside = cv2.warpAffine(
        np.ones((size, size), np.float32), M, (W, H), flags=flags, borderMode=cv2.BORDER_CONSTANT
    )
    return out, inside


def paste_square(
    image: np.ndarray, patch: np.ndarray, box, region: np.ndarray, alpha: np.ndarray
) -> np.ndarray:
    """Warp an aligned patch back into the image and blend it in.

    Args:
        image: (H, W, 3) uint8.
        patch: (size, size, 3) uint8 in the crop of ``box``.
        box: the crop box (x0, y0, x1, y1).
        region: (H, W) bool pixels that may change.
        alpha: (H, W) float32 blend weight in [0, 1] (zero outside the box whatever it says).
    Returns:
        (H, W, 3) uint8; pixels outside ``region`` are byte-identical to ``image``.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image: expected (H, W, 3) uint8, got {image.shape} {image.dtype}")
    if patch.ndim != 3 or patch.shape[2] != 3 or patch.shape[0] != patch.shape[1] or patch.dtype != np.uint8:
        raise ValueError(f"patch: expected (size, size, 3) uint8, got {patch.shape} {patch.dtype}")
    H, W = image.shape[:2]
    if region.shape != (H, W) or alpha.shape != (H, W):
        raise ValueError(f"region {region.shape} and alpha {alpha.shape} must be (H, W) = {(H, W)}")
    back, inside = uncrop(patch, box, (H, W))
    weight = (np.clip(alpha, 0.0, 1.0) * inside).astype(np.float32)
    return paste(image, back, weight, region.astype(bool))
