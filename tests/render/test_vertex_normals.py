"""face3d.render.shading.vertex_normals: known normals, the per-face reference, batches, gradients."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from face3d.render import vertex_normals


def _reference(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Each vertex: the normalised sum of its triangles' (area-weighted) cross products, one by one."""
    out = torch.zeros_like(vertices)
    for f in faces.tolist():
        v0, v1, v2 = vertices[:, f[0]], vertices[:, f[1]], vertices[:, f[2]]
        n = torch.cross(v1 - v0, v2 - v0, dim=-1)
        for i in f:
            out[:, i] += n
    return F.normalize(out, dim=-1, eps=1e-12)


def _tent(batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """A roof of two triangles folded along the y axis, and a third far away, batch-perturbed."""
    v = torch.tensor(
        [[0, 0, 1.0], [0, 1, 1], [-1, 0, 0], [1, 0, 0], [5, 5, 5], [6, 5, 5], [5, 6, 5]], dtype=torch.float64
    )
    faces = torch.tensor([[0, 1, 2], [0, 3, 1], [4, 5, 6]])
    gen = torch.Generator().manual_seed(0)
    return v[None] + 0.05 * torch.randn(batch, *v.shape, generator=gen, dtype=v.dtype) * torch.arange(batch)[
        :, None, None
    ], faces


def test_known_normals_of_a_roof_and_a_flat_triangle():
    v, faces = _tent()
    n = vertex_normals(v, faces)[0]
    s = 2**-0.5
    assert torch.allclose(n[2], torch.tensor([-s, 0, s], dtype=v.dtype))  # the left slope only
    assert torch.allclose(n[3], torch.tensor([s, 0, s], dtype=v.dtype))
    assert torch.allclose(n[0], torch.tensor([0, 0, 1.0], dtype=v.dtype))  # on the ridge: both slopes
    assert torch.allclose(n[4:], torch.tensor([0, 0, 1.0], dtype=v.dtype).expand(3, 3))  # counter-clockwise


def test_matches_the_per_face_reference_in_a_batch():
    v, faces = _tent(batch=3)
    got = vertex_normals(v.float(), faces)
    assert got.shape == (3, 7, 3)
    assert torch.allclose(got, _reference(v.float(), faces), atol=1e-6)
    assert not torch.allclose(got[0], got[2])  # each batch member its own


def test_gradients_reach_the_vertices():
    v, faces = _tent(batch=2)
    v = v.clone().requires_grad_(True)
    vertex_normals(v, faces)[..., 0].sum().backward()
    assert v.grad is not None and v.grad.abs().sum() > 0
    assert torch.autograd.gradcheck(lambda x: vertex_normals(x, faces), (v,))
