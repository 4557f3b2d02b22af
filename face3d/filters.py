"""Image filters shared by the fitter and the generators."""

from __future__ import annotations

import math

import numpy as np
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


def masked_blur(
    values: np.ndarray, mask: np.ndarray, sigma: float, floor: float = 1e-6, border: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Normalised convolution: (h, w) or (h, w, C) float32 ``values`` blurred by a Gaussian of
    ``sigma`` pixels using only the pixels of the (h, w) ``mask`` (bool or weights in [0, 1]), so
    what lies outside it (unrendered black, unknown motion) is not pulled in.

    Args:
        floor: least denominator (the blurred mask): 1e-6 gives the masked mean wherever the mask
            reaches; a larger one (e.g. 0.5) lets the result fade toward 0 where the mask covers
            little of the kernel.
        border: OpenCV border type of both blurs (None: OpenCV's default, reflect-101).
    Returns:
        (blurred values (same shape), the blurred mask (h, w): the share of the kernel it holds).
    """
    import cv2

    kw = {} if border is None else {"borderType": border}
    m = mask.astype(np.float32)
    num = cv2.GaussianBlur(values * (m[..., None] if values.ndim == 3 else m), (0, 0), sigma, **kw)
    den = cv2.GaussianBlur(m, (0, 0), sigma, **kw)
    d = np.maximum(den, floor)
    return num / (d[..., None] if values.ndim == 3 else d), den


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


SHARP_EDGE_SIGMA = 0.83
"""What :func:`blur_sigma` reads on a pixel-sharp step edge (the pixel grid and the Sobel kernel's
own blur): a photo's blur beyond pixel-sharp is ``sqrt(blur_sigma**2 - SHARP_EDGE_SIGMA**2)``."""


def extra_blur(image: np.ndarray, mask: np.ndarray | None = None) -> float:
    """The blur (sigma, pixels) an image's edges carry beyond pixel-sharp: what a pixel-sharp
    drawing must be blurred by to look like it (0 for a sharp photo); see :func:`blur_sigma`."""
    sigma = blur_sigma(image, mask)
    return math.sqrt(max(sigma**2 - SHARP_EDGE_SIGMA**2, 0.0))


def blur_sigma(image: np.ndarray, mask: np.ndarray | None = None, reblur: float = 1.0) -> float:
    """The Gaussian blur (sigma, pixels) of the edges of an (H, W) or (H, W, 3) image (uint8, or
    float in [0, 1]).

    The re-blur gradient ratio (Zhuo and Sim, "Defocus map estimation from a single image", 2011):
    at a step edge blurred by sigma the gradient falls by ``R = sqrt(sigma**2 + s**2) / sigma`` when
    the image is blurred again by ``s`` (``reblur``), so ``sigma = s / sqrt(R**2 - 1)``. Read at the
    Canny edges inside ``mask`` (all if None) whose gradient is in the strongest quarter, the median.
    A pixel-sharp step reads :data:`SHARP_EDGE_SIGMA` (the pixel grid's and the Sobel kernel's own
    blur). Returns 0 where fewer than 16 edge pixels are found.
    """
    import cv2

    a = np.asarray(image)
    if a.ndim not in (2, 3):
        raise ValueError(f"blur_sigma needs an (H, W) or (H, W, 3) image, got {a.shape}")
    g = a.astype(np.float32) * (255.0 if a.dtype.kind == "f" else 1.0)  # floats: [0, 1]
    g = g.mean(-1) if g.ndim == 3 else g
    if mask is not None and mask.shape != g.shape:
        raise ValueError(f"mask {mask.shape} does not match the image {g.shape}")

    def grad(x):
        return np.hypot(cv2.Sobel(x, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(x, cv2.CV_32F, 0, 1, ksize=3))

    g0, g1 = grad(g), grad(cv2.GaussianBlur(g, (0, 0), reblur))
    edges = cv2.Canny(np.clip(g, 0, 255).astype(np.uint8), 30, 90) > 0
    if mask is not None:
        edges &= mask.astype(bool)
    if edges.sum() < 16:
        return 0.0
    strong = edges & (g0 >= np.percentile(g0[edges], 75))
    ratio = g0[strong] / np.maximum(g1[strong], 1e-6)
    sigma = reblur / np.sqrt(np.maximum(ratio**2 - 1.0, 1e-6))
    return float(np.median(np.minimum(sigma, 20.0)))


def unclip(image: torch.Tensor, sigma: float, samples: int = 1024) -> torch.Tensor:
    """Undo the bias that clipping adds to noise: the latent values x in [0, 1] of an image whose
    values are ``E[clip(x + n, 0, 1)]`` with ``n ~ N(0, sigma**2)`` (a noisy photo stored in [0, 1]
    is brighter than the truth in its shadows and darker in its highlights, by up to 0.4 sigma).

    ``E[clip(x + n)] = x (Phi(b) - Phi(a)) + sigma (phi(a) - phi(b)) + 1 - Phi(b)`` with
    ``a = -x / sigma`` and ``b = (1 - x) / sigma`` rises monotonically with x; it is inverted by
    interpolation on ``samples`` values of x. Values farther than about 3 sigma from 0 and 1 do not
    change; sigma 0 returns the image.
    """
    if sigma <= 0:
        return image
    x = torch.linspace(0.0, 1.0, samples, dtype=torch.float64)
    normal = torch.distributions.Normal(0.0, 1.0)
    a, b = -x / sigma, (1.0 - x) / sigma
    pdf_a, pdf_b = normal.log_prob(a).exp(), normal.log_prob(b).exp()
    f = x * (normal.cdf(b) - normal.cdf(a)) + sigma * (pdf_a - pdf_b) + 1.0 - normal.cdf(b)
    y = image.detach().double().clamp(float(f[0]), float(f[-1])).flatten().numpy()
    out = np.interp(y, f.numpy(), x.numpy())
    return torch.from_numpy(out).reshape(image.shape).to(image.dtype)
