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


def noise_sigma(image: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Robust estimate of additive white Gaussian noise's sigma in an (H, W) or (H, W, C) image.

    Immerkaer's fast estimator ("Fast noise variance estimation", CVIU 1996) made robust: the
    image is filtered with the difference of two Laplacians ``[[1, -2, 1], [-2, 4, -2], [1, -2, 1]]``,
    which cancels planes and quadrics, so a smooth image gives about 0 and white noise of sigma
    gives a Gaussian of standard deviation ``6 sigma`` (the kernel's L2 norm); the median absolute
    response over the ``mask`` pixels whose 3x3 support lies inside it (all if None), divided by
    ``6 * 0.6745``, is sigma. The median ignores edges and texture on a minority of the pixels.

    Returns sigma in the image's unit (of one channel: the mean over the channels' estimates), 0
    where fewer than 16 pixels are usable.
    """
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3:
        raise ValueError(f"noise_sigma needs an (H, W) or (H, W, C) image, got {tuple(image.shape)}")
    H, W, C = image.shape
    k = torch.tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]], dtype=image.dtype)
    chans = image.permute(2, 0, 1)[:, None]  # (C, 1, H, W)
    response = F.conv2d(chans, k[None, None])[:, 0].abs()  # (C, H - 2, W - 2): the interior
    inner = torch.ones(H - 2, W - 2, dtype=torch.bool)
    if mask is not None:
        if tuple(mask.shape) != (H, W):
            raise ValueError(f"mask {tuple(mask.shape)} does not match the image {(H, W)}")
        m = mask.bool()
        for dy in (0, 1, 2):  # every pixel of the 3x3 support inside the mask
            for dx in (0, 1, 2):
                inner = inner & m[dy : H - 2 + dy, dx : W - 2 + dx]
    if int(inner.sum()) < 16:
        return 0.0
    return float(response[:, inner].median(dim=1).values.mean()) / (6.0 * 0.6745)
