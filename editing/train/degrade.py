"""Re-projection-like artefacts for the texture generator's reconstruction pairs (see :func:`degrade`)."""

from __future__ import annotations

import cv2
import numpy as np


def degrade(source: np.ndarray, edited: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Re-projection-like artefacts on the source-expression re-render, where an edit moved pixels.

    The 3D edit reuses the photo's own pixel wherever the surface stays put, so the re-render at
    the photo's own expression equals the photo to a grey level: no lesson for a clean-up network.
    Its artefacts live where the geometry moved (mouth, eyes, cheeks: texels resampled, filled by
    mirroring or inpainting, flat-shaded interior). This marks those pixels - where the edit to
    another target differs from the source - and degrades them the same ways (blur, loss of
    detail towards the region's mean colour, a colour cast), giving "degraded re-render -> real
    photo" pairs for the reconstruction loss.

    Args:
        source: (B, H, W, 3) uint8 re-renders at the source expression (about the photo).
        edited: (B, H, W, 3) uint8 re-renders of the same photos at another expression.
    Returns:
        (B, H, W, 3) uint8.
    """
    out = source.copy()
    kernel = np.ones((5, 5), np.uint8)
    for i in range(len(source)):
        diff = np.abs(edited[i].astype(np.int16) - source[i].astype(np.int16)).sum(-1) > 60
        region = cv2.dilate(diff.astype(np.uint8), kernel) > 0
        if not region.any():
            continue
        img = source[i].astype(np.float32)
        blurred = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.7, 2.0)))
        flat = img[region].mean(0)
        a = float(rng.uniform(0.0, 0.3))
        cast = rng.normal(0, 6, 3).astype(np.float32)
        bad = (1 - a) * blurred + a * flat + cast
        soft = cv2.GaussianBlur(region.astype(np.float32), (0, 0), 1.5)[..., None]
        out[i] = np.clip(soft * bad + (1 - soft) * img + 0.5, 0, 255).astype(np.uint8)
    return out
