"""Image filters shared by the fitter and the generators."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, C, H, W) ``images`` (``sigma`` pixels, replicate padding)."""
    if images.ndim != 4:
        raise ValueError(f"gaussian_blur needs (B, C, H, W) images, got {tuple(images.shape)}")
    r = max(1, math.ceil(3 * sigma))
    x = torch.arange(-r, r + 1, dtype=images.dtype, device=images.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = (k / k.sum())[None, None]
    C = images.shape[1]
    rows, cols = k[..., None, :].expand(C, 1, 1, -1), k[..., :, None].expand(C, 1, -1, 1)
    out = F.conv2d(F.pad(images, (r, r, 0, 0), mode="replicate"), rows, groups=C)
    return F.conv2d(F.pad(out, (0, 0, r, r), mode="replicate"), cols, groups=C)
