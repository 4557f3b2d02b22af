import dataclasses

import pytest
import torch

from editing.gan.networks import GeneratorConfig, TextureGenerator
from face3d.filters import gaussian_blur

TINY = GeneratorConfig(n_expr=5, base=4, n_down=2, n_res=1, cond=4, extra_inputs=1)


def test_detail_head_keeps_the_inputs_fine_structure():
    torch.manual_seed(0)
    plain = TextureGenerator(TINY).eval()
    detail = TextureGenerator(dataclasses.replace(TINY, detail_sigma=1.5)).eval()
    detail.load_state_dict(plain.state_dict())  # the head has no weights of its own
    image = 0.25 + 0.5 * torch.rand(2, 3, 32, 32)
    y, s = torch.rand(2, 5), torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        t0, m0 = plain(image, y, s)
        t1, m1 = detail(image, y, s)
    torch.testing.assert_close(m1, m0)
    expected = gaussian_blur(t0, 1.5) + image - gaussian_blur(image, 1.5)
    inside = (expected > 0) & (expected < 1)
    assert inside.float().mean() > 0.99
    torch.testing.assert_close(t1[inside], expected[inside])
    # the texture's coarse layer is the network's, its fine layer the input's
    hi = lambda t: t - gaussian_blur(t, 1.5)  # noqa: E731
    assert (hi(t1) - hi(image)).abs().mean() < 0.2 * (hi(t0) - hi(image)).abs().mean()


def test_detail_sigma_is_checked():
    with pytest.raises(ValueError, match="detail_sigma"):
        GeneratorConfig(detail_sigma=-1.0)
