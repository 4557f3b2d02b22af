"""Flat interior colours follow the photo: grey levels in a greyscale photo."""

from __future__ import annotations

import numpy as np
import torch

from face3d.render.texture_fill import FLAT_COLORS, grey_levels, is_greyscale, toned_flat_colors


def test_greyscale_photos_are_told_apart_from_colour_ones():
    grey = np.repeat(np.random.default_rng(0).random((20, 30, 1)), 3, -1)
    assert is_greyscale(grey) and is_greyscale(torch.from_numpy(grey))
    assert is_greyscale(grey + np.random.default_rng(1).normal(0, 0.001, grey.shape))  # JPEG-like noise
    colour = grey.copy()
    colour[..., 0] = np.clip(colour[..., 0] + 0.1, 0, 1)
    assert not is_greyscale(colour)
    assert not is_greyscale(np.zeros((0, 3)))


def test_flat_colours_are_grey_in_a_grey_photo_only():
    colors = torch.tensor([FLAT_COLORS["mouth_socket"], FLAT_COLORS["teeth"]], dtype=torch.float32)
    g = grey_levels(colors)
    assert torch.allclose(g[0], torch.full((3,), 0.299 * 0.30 + 0.587 * 0.10 + 0.114 * 0.10))
    assert torch.all(g.amax(-1) == g.amin(-1))
    grey_photo = torch.full((4, 4, 3), 0.4)
    assert torch.equal(toned_flat_colors(colors, grey_photo), g)
    colour_photo = torch.rand(4, 4, 3, generator=torch.Generator().manual_seed(0))
    assert toned_flat_colors(colors, colour_photo) is colors
