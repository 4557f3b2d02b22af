"""The per-corner packing and the bilinear photo lookup the renderer and the 3D edit share."""

from __future__ import annotations

import torch

from face3d.render.shading import packed_corners
from face3d.render.texture import sample_photo


def test_packed_corners_lists_each_face_corner_per_batch():
    per_vertex = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    faces = torch.tensor([[0, 1, 2], [2, 3, 0]])
    out = packed_corners(per_vertex, faces)
    assert out.shape == (4, 3, 3)  # (B * F, 3 corners, D)
    assert torch.equal(out[0], per_vertex[0, [0, 1, 2]])
    assert torch.equal(out[3], per_vertex[1, [2, 3, 0]])


def test_sample_photo_is_exact_at_pixel_centres_and_bilinear_between():
    image = torch.arange(4 * 5, dtype=torch.float64).reshape(1, 4, 5, 1)  # value = 5 y + x
    pixels = torch.tensor([[[0.0, 0.0], [4.0, 3.0], [1.5, 2.25], [-3.0, 1.0]]], dtype=torch.float64)
    out = sample_photo(image, pixels)
    assert out.shape == (1, 4, 1)
    expected = torch.tensor([0.0, 19.0, 5 * 2.25 + 1.5, 5.0], dtype=torch.float64)  # border: x clamped
    assert torch.allclose(out[0, :, 0], expected)
