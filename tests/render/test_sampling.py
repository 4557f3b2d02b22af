"""The per-corner packing, the interpolation at covered pixels and the bilinear photo lookup the
renderer and the 3D edit share."""

from __future__ import annotations

import torch
from pytorch3d.ops import interpolate_face_attributes

from face3d.render import RenderConfig, rasterize
from face3d.render.shading import (
    barycentric_mix,
    interpolate,
    interpolate_vertices,
    packed_corners,
    surface_values,
)
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


def _two_meshes():
    """A batch of two quads (two triangles each) in front of a 24 x 20 camera, partly covering it."""
    quad = torch.tensor([[-1.0, -1, 10], [1, -1, 10], [1, 1, 11], [-1, 1, 11]])
    v = torch.stack([quad, quad * torch.tensor([0.6, 1.2, 1.0]) + torch.tensor([0.3, 0.0, 0.5])])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    K = torch.tensor([[60.0, 60.0, 12.0, 10.0]]).expand(2, 4)
    frags = rasterize(v, faces, K, (20, 24), RenderConfig())[0]
    return v, faces, frags


def test_interpolation_at_covered_pixels_is_pytorch3d_s_bit_for_bit():
    v, faces, frags = _two_meshes()
    values = torch.cat([v, torch.randn(2, 4, 2, generator=torch.Generator().manual_seed(0))], -1)  # D = 5
    packed = packed_corners(values, faces)
    reference = interpolate_face_attributes(frags.pix_to_face, frags.bary_coords, packed)[..., 0, :]
    covered = frags.pix_to_face[..., 0] >= 0
    assert covered.any() and not covered.all()  # both kinds of pixel
    assert (frags.pix_to_face[1][covered[1]] >= 2).all()  # the second mesh's faces are packed after
    assert torch.equal(interpolate(frags, packed), reference)
    assert torch.equal(interpolate_vertices(frags, values, faces), reference)
    assert not interpolate_vertices(frags, values, faces)[~covered].any()  # 0 where nothing covers


def test_interpolated_values_pass_gradients_to_the_vertices():
    v, faces, frags = _two_meshes()
    values = torch.rand(2, 4, 3, requires_grad=True)
    interpolate_vertices(frags, values, faces).sum().backward()
    covered = frags.pix_to_face[..., 0] >= 0
    # each pixel's barycentrics sum to 1: every vertex's gradient is the sum of its weights
    assert torch.isclose(values.grad.sum(), torch.tensor(3.0 * covered.sum().item()))


def test_barycentric_mix_and_surface_values_are_the_summed_form_bit_for_bit():
    gen = torch.Generator().manual_seed(1)
    per_vertex = torch.randn(2, 30, 4, generator=gen)
    tri = torch.randint(0, 30, (500, 3), generator=gen)
    bary = torch.rand(500, 3, generator=gen)
    bary = bary / bary.sum(-1, keepdim=True)
    reference = (per_vertex[:, tri] * bary[None, :, :, None]).sum(2)  # (B, N, D)
    assert torch.equal(surface_values(per_vertex, tri, bary), reference)
    assert torch.equal(barycentric_mix(bary, per_vertex[0][tri]), reference[0])
    corners = torch.eye(3)[None].expand(500, 3, 3)  # corner i holds the unit vector e_i
    assert torch.allclose(barycentric_mix(bary, corners), bary)  # so the mix gives the barycentrics
