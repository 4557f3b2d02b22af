import cv2
import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from face3d.filters import (
    SHARP_EDGE_SIGMA,
    blur_sigma,
    extra_blur,
    gaussian_blur,
    masked_blur,
    noise_sigma,
    unclip,
)


def test_gaussian_blur_matches_scipy_and_keeps_constants():
    rng = np.random.default_rng(0)
    x = rng.random((2, 3, 40, 33))
    got = gaussian_blur(torch.from_numpy(x), 1.7).numpy()
    # scipy's "nearest" is replicate padding; truncate at the same radius (ceil(3 sigma) = 6 px)
    ref = gaussian_filter(x, sigma=(0, 0, 1.7, 1.7), mode="nearest", truncate=6 / 1.7)
    np.testing.assert_allclose(got, ref, atol=1e-10)
    flat = torch.full((1, 1, 9, 9), 0.25, dtype=torch.float64)
    torch.testing.assert_close(gaussian_blur(flat, 2.0), flat)


def test_gaussian_blur_checks_its_input():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        gaussian_blur(torch.zeros(3, 8, 8), 1.0)


def test_noise_sigma_reads_white_noise_and_ignores_smooth_content():
    g = torch.Generator().manual_seed(0)
    y, x = torch.meshgrid(torch.linspace(0, 1, 96), torch.linspace(0, 1, 128), indexing="ij")
    smooth = (0.2 + 0.5 * x + 0.2 * y**2 + 0.1 * x * y)[..., None].expand(96, 128, 3).contiguous()
    assert noise_sigma(smooth) < 1e-6  # quadrics cancel
    for sigma in (0.01, 0.05, 0.1):
        noisy = smooth + sigma * torch.randn(96, 128, 3, generator=g)
        assert noise_sigma(noisy) == pytest.approx(sigma, rel=0.05)
        assert noise_sigma(noisy[..., 0]) == pytest.approx(sigma, rel=0.05)  # (H, W)


def test_noise_sigma_counts_only_the_mask():
    g = torch.Generator().manual_seed(1)
    image = torch.full((64, 64, 3), 0.5)
    image[:, 32:] += 0.2 * torch.randn(64, 32, 3, generator=g)  # noisy right half
    left = torch.zeros(64, 64, dtype=torch.bool)
    left[:, :32] = True
    assert noise_sigma(image, left) < 1e-6  # the 3x3 support never reaches the noisy half
    assert noise_sigma(image, ~left) == pytest.approx(0.2, rel=0.1)
    assert noise_sigma(image, torch.zeros(64, 64, dtype=torch.bool)) == 0.0  # nothing usable
    with pytest.raises(ValueError, match="does not match"):
        noise_sigma(image, left[:10])
    with pytest.raises(ValueError, match=r"\(H, W\) or \(H, W, C\)"):
        noise_sigma(image[None])


def _rectangles(seed: int = 0) -> np.ndarray:
    """(200, 200) uint8: pixel-sharp rectangles of random grey levels (step edges)."""
    rng = np.random.default_rng(seed)
    img = np.full((200, 200), 60, np.float32)
    for _ in range(25):
        (x0, y0), (w, h) = rng.integers(0, 170, 2), rng.integers(10, 60, 2)
        img[y0 : y0 + h, x0 : x0 + w] = rng.integers(0, 255)
    return img


def test_blur_sigma_reads_a_known_gaussian_blur():
    sharp = _rectangles()
    assert blur_sigma(sharp.astype(np.uint8)) == pytest.approx(SHARP_EDGE_SIGMA, abs=0.1)
    assert extra_blur(sharp.astype(np.uint8)) < 0.3
    for sigma in (1.0, 2.0, 3.0):
        blurred = cv2.GaussianBlur(sharp, (0, 0), sigma).astype(np.uint8)
        assert extra_blur(blurred) == pytest.approx(sigma, rel=0.15), sigma
        rgb = np.repeat(blurred[..., None], 3, -1)
        assert blur_sigma(rgb) == pytest.approx(blur_sigma(blurred), abs=0.05)  # colour: its grey
        assert blur_sigma(blurred / np.float32(255)) == pytest.approx(blur_sigma(blurred), abs=0.05)  # [0, 1]
    left = np.zeros((200, 200), bool)
    left[:, :100] = True
    half = np.concatenate([sharp[:, :100], cv2.GaussianBlur(sharp, (0, 0), 3.0)[:, 100:]], 1)
    assert blur_sigma(half.astype(np.uint8), left) < blur_sigma(half.astype(np.uint8), ~left) - 1.0
    assert blur_sigma(np.full((50, 50), 128, np.uint8)) == 0.0  # no edges
    with pytest.raises(ValueError, match="does not match"):
        blur_sigma(sharp, left[:10])


def test_unclip_undoes_the_bias_of_clipped_noise():
    g = torch.Generator().manual_seed(0)
    truth = torch.linspace(0, 1, 11, dtype=torch.float64)
    sigma = 0.1
    stored = (truth[:, None] + sigma * torch.randn(11, 20000, generator=g, dtype=torch.float64)).clamp(0, 1)
    mean = stored.mean(1)  # brighter than the truth in the shadows, darker in the highlights
    assert mean[0] > 0.035 and mean[-1] < 0.965
    torch.testing.assert_close(unclip(mean, sigma), truth, atol=5e-3, rtol=0)
    mid = torch.tensor([0.4, 0.5, 0.6], dtype=torch.float64)
    torch.testing.assert_close(unclip(mid, sigma), mid, atol=1e-3, rtol=0)  # far from the ends
    assert unclip(mean, 0.0) is mean
    assert unclip(torch.zeros(2, 3, 3), sigma).shape == (2, 3, 3)


def test_masked_blur_follows_the_given_sigma_and_stays_inside():
    # the drawn mouth interior's blur: the unrendered zeros around it are never pulled in
    yy, xx = np.mgrid[:60, :60]
    checker = (((yy // 2) + (xx // 2)) % 2).astype(np.float32)[..., None].repeat(3, -1)
    mask = np.zeros((60, 60), bool)
    mask[10:50, 10:50] = True
    soft, softer = masked_blur(checker, mask, 0.8)[0], masked_blur(checker, mask, 2.0)[0]
    assert softer[mask].std() < 0.5 * soft[mask].std() < 0.5 * checker[mask].std()
    # normalised inside the mask: the unrendered zeros around it are never pulled in
    assert abs(float(softer[mask].mean()) - float(checker[mask].mean())) < 0.02
    assert abs(float(softer[10, 10:50].mean()) - 0.5) < 0.1
    grey, weight = masked_blur(checker[..., 0], mask, 2.0)  # (h, w) values: the same, one channel
    np.testing.assert_array_equal(grey, softer[..., 0])
    assert weight.shape == (60, 60) and abs(float(weight[30, 30]) - 1.0) < 1e-5
    # a floor lets the result fade where the mask holds little of the kernel; a constant border
    # counts the outside of the image as unmasked
    ones = np.ones((60, 60), np.float32)
    edge = np.zeros((60, 60), bool)
    edge[:, :3] = True
    faded = masked_blur(ones, edge, 4.0, floor=0.5, border=cv2.BORDER_CONSTANT)[0]
    assert faded[30, 1] < 0.75 and faded[30, 10] < 0.2
    assert abs(float(masked_blur(ones, edge, 4.0)[0][30, 10]) - 1.0) < 1e-5  # the masked mean
