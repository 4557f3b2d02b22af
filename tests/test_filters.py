import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from face3d.filters import gaussian_blur


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
