"""Renderer: projection consistency, texture extraction round trip, export."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from face3d.camera import camera_rotation, euler_to_pose_matrix, project, to_camera
from face3d.render import RenderConfig, atlas_corner_uvs, extract_texture, render, uv_layout

pytestmark = pytest.mark.integration


def _posed(model, yaw_deg=25.0, pitch_deg=-8.0, size=(200, 240)):
    H, W = size
    R = camera_rotation(
        euler_to_pose_matrix(
            torch.tensor([math.radians(yaw_deg)]),
            torch.tensor([math.radians(pitch_deg)]),
            torch.tensor([0.1]),
        )
    )
    v = to_camera(model(batch_size=1), R, torch.tensor([[0.5, 1.0, 55.0]]))
    K = torch.tensor([[700.0, 690.0, W / 2 - 3.3, H / 2 + 2.1]])
    return v, K, (H, W)


@pytest.mark.parametrize("backend", ["fast", "pytorch3d"])
def test_projection_matches_rasterizer(ict_model, backend):
    """Interpolating camera-space positions at a pixel and projecting them gives that pixel's
    centre: the renderer and :func:`project` agree to well under a pixel."""
    v, K, size = _posed(ict_model)
    out = render(v, ict_model.faces, K, size, RenderConfig(backend=backend))
    covered = out.pix_to_face[0] >= 0
    assert covered.sum() > 5000
    tri = ict_model.faces[out.pix_to_face[0][covered]]
    bary = out.bary[0][covered]
    pts = (v[0][tri] * bary[..., None]).sum(1)
    uv = project(pts[None], K)[0]
    ys, xs = torch.nonzero(covered, as_tuple=True)
    err = (uv - torch.stack([xs, ys], -1).float()).norm(dim=-1)
    assert float(err.max()) < 0.05
    # and a landmark vertex projects onto a pixel drawn by a triangle that uses it, or its neighbour
    lm_uv = project(ict_model.landmarks(v), K)[0]
    nose = lm_uv[30].round().long()
    assert int(out.pix_to_face[0, nose[1], nose[0]]) >= 0
    torch.testing.assert_close(out.depth[0][covered], pts[:, 2], atol=1e-3, rtol=0)


def test_texture_round_trip(ict_model):
    v, K, size = _posed(ict_model, yaw_deg=15.0, size=(256, 256))
    corner_uvs = atlas_corner_uvs(ict_model.uvs, ict_model.face_uvs)
    layout = uv_layout(corner_uvs, (512, 1024))
    # a smooth synthetic texture
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 512), torch.linspace(0, 1, 1024), indexing="ij")
    tex = torch.stack([0.5 + 0.4 * torch.sin(6 * xx), 0.5 + 0.4 * torch.cos(5 * yy), 0.3 + 0.5 * xx * yy], -1)
    first = render(v, ict_model.faces, K, size, texture=tex[None], corner_uvs=corner_uvs)
    sample = extract_texture(first.image, v, ict_model.faces, K, layout)
    assert sample.visible.float().mean() > 0.05
    second = render(v, ict_model.faces, K, size, texture=sample.texture, corner_uvs=corner_uvs)
    # compare inside the visible face, away from the silhouette
    seen = (first.normals[0, ..., 2] < -0.3) & (first.mask[0] > 0)
    diff = (first.image[0] - second.image[0])[seen]
    psnr = 10 * math.log10(1.0 / float(diff.square().mean()))
    assert psnr > 30, psnr
    # vertex colours agree with the texture at visible vertices
    vis = sample.vertex_visible[0]
    assert vis.sum() > 1000


def test_shaded_render_outputs(ict_model):
    v, K, size = _posed(ict_model)
    out = render(v, ict_model.faces, K, size)
    assert out.image.shape == (1, *size, 3) and out.mask.shape == (1, *size)
    assert float(out.image.min()) >= 0 and float(out.image.max()) <= 1
    inside = out.mask[0] > 0
    assert float(out.image[0][inside].mean()) > 0.3  # lit, not black
    n = out.normals[0][inside]
    torch.testing.assert_close(n.norm(dim=-1), torch.ones(len(n)), atol=1e-4, rtol=0)
    assert float((out.depth[0][inside] > 40).float().mean()) == 1.0


def test_export_obj_and_ply_reload(ict_model, tmp_path):
    import trimesh

    from face3d.export import export_obj, export_ply

    verts = ict_model(batch_size=1)[0]
    corner_uvs = atlas_corner_uvs(ict_model.uvs, ict_model.face_uvs)
    texture = np.full((64, 128, 3), 128, dtype=np.uint8)
    export_obj(tmp_path / "face.obj", verts, ict_model.faces, corner_uvs, texture)
    assert (tmp_path / "face.mtl").is_file() and (tmp_path / "face.png").is_file()
    mesh = trimesh.load(tmp_path / "face.obj", process=False, force="mesh")
    assert len(mesh.faces) == ict_model.faces.shape[0]
    # trimesh splits vertices at UV seams: compare the geometry face by face
    np.testing.assert_allclose(mesh.vertices[mesh.faces], verts[ict_model.faces].numpy(), atol=1e-5)
    colors = torch.rand(ict_model.n_vertices, 3)
    export_ply(tmp_path / "face.ply", verts, ict_model.faces, colors)
    ply = trimesh.load(tmp_path / "face.ply", process=False)
    assert len(ply.vertices) == ict_model.n_vertices
    np.testing.assert_allclose(ply.vertices, verts.numpy(), atol=1e-5)
    np.testing.assert_array_equal(
        ply.visual.vertex_colors[:, :3], (colors.numpy() * 255 + 0.5).astype(np.uint8)
    )
