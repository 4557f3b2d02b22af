"""FastMeshRasterizer against PyTorch3D's own (CPU) MeshRasterizer.

PyTorch3D's CPU rasteriser is naive (every pixel against every face): ~1 s per 64x64 ICT frame,
seconds at 256, ~10 s or more at 512. References are cached per session (``p3d_reference``) and
the 256/512 comparisons are marked ``slow``.
"""

from __future__ import annotations

import pytest
import torch
from pytorch3d.renderer import (
    FoVOrthographicCameras,
    FoVPerspectiveCameras,
    MeshRasterizer,
    PerspectiveCameras,
    RasterizationSettings,
)
from pytorch3d.structures import Meshes

from face3d.render.fast import FastMeshRasterizer, face_map, interpolate_fragments, pixel_centres_ndc


def assert_fragments_match(fast, ref, min_agree=0.995, atol=1e-4):
    """Same shapes/dtypes; pix_to_face equal on >= min_agree of the covered pixels; bary and zbuf
    within atol and dists within rounding where the faces agree; -1 everywhere else."""
    assert fast.pix_to_face.shape == ref.pix_to_face.shape and fast.pix_to_face.dtype == torch.int64
    assert fast.zbuf.shape == ref.zbuf.shape and fast.dists.shape == ref.dists.shape
    assert fast.bary_coords.shape == ref.bary_coords.shape and fast.zbuf.dtype == ref.zbuf.dtype
    covered = (ref.pix_to_face >= 0) | (fast.pix_to_face >= 0)
    agree = (ref.pix_to_face == fast.pix_to_face) & covered
    n_cov = int(covered.sum())
    assert n_cov > 0
    frac = float(agree.sum()) / n_cov
    assert frac >= min_agree, f"pix_to_face agrees on {frac:.4%} of {n_cov} covered pixels"
    a3 = agree[..., 0]
    torch.testing.assert_close(fast.bary_coords[a3], ref.bary_coords[a3], rtol=0, atol=atol)
    torch.testing.assert_close(fast.zbuf[agree], ref.zbuf[agree], rtol=0, atol=atol)
    torch.testing.assert_close(fast.dists[agree], ref.dists[agree], rtol=1e-3, atol=1e-8)
    empty = ~covered
    for t in (fast, ref):
        assert (t.zbuf[empty] == -1).all() and (t.dists[empty] == -1).all()
        assert (t.bary_coords[empty[..., 0]] == -1).all()
    return frac


def _settings(size, **kw):
    return RasterizationSettings(image_size=size, blur_radius=0.0, faces_per_pixel=1, bin_size=0, **kw)


def test_pixel_centres_follow_pytorch3d_convention():
    for H, W in [(4, 4), (3, 5), (6, 2)]:
        S = min(H, W)
        xs, ys = pixel_centres_ndc(W, H), pixel_centres_ndc(H, W)
        for i in range(W):
            assert xs[i] == pytest.approx(-(2 * i + 1 - W) / S, abs=1e-6)
        for j in range(H):
            assert ys[j] == pytest.approx(-(2 * j + 1 - H) / S, abs=1e-6)


@pytest.mark.integration
@pytest.mark.parametrize(
    "yaw,size",
    [
        (0, 64),
        (45, 64),
        (80, 64),
        pytest.param(0, 256, marks=pytest.mark.slow),
        pytest.param(45, 256, marks=pytest.mark.slow),
        pytest.param(80, 256, marks=pytest.mark.slow),
        pytest.param(0, 512, marks=pytest.mark.slow),
    ],
)
def test_matches_pytorch3d_on_ict(ict_scene, p3d_reference, yaw, size):
    meshes, cams = ict_scene([yaw], size)
    settings = _settings(size)
    ref = p3d_reference(("ict", yaw, size), meshes, cams, settings)
    fast = FastMeshRasterizer(cams, settings)(meshes)
    assert_fragments_match(fast, ref)


@pytest.mark.integration
@pytest.mark.parametrize("size", [(48, 80), (80, 48)])
def test_non_square_image(ict_scene, p3d_reference, size):
    meshes, cams = ict_scene([20], size)
    settings = _settings(size)
    ref = p3d_reference(("ict-nonsquare", size), meshes, cams, settings)
    fast = FastMeshRasterizer(cams, settings)(meshes)
    assert fast.pix_to_face.shape == (1, *size, 1)
    assert_fragments_match(fast, ref)


@pytest.mark.integration
def test_batch_of_two_poses_uses_packed_face_indices(ict_scene, ict_model):
    meshes, cams = ict_scene([-30, 60], 64, distances=[60.0, 75.0])
    settings = _settings(64)
    with torch.no_grad():
        ref = MeshRasterizer(cams, settings)(meshes)
    fast = FastMeshRasterizer(cams, settings)(meshes)
    assert_fragments_match(fast, ref)
    F = ict_model.faces.shape[0]
    p2f = fast.pix_to_face
    assert ((p2f[0] == -1) | (p2f[0] < F)).all() and (p2f[1][p2f[1] >= 0] >= F).all()
    assert (p2f[1] >= 0).any()
    # each image equals the single-mesh rasterisation (different poses -> different maps)
    single, cams1 = ict_scene([60], 64, distances=[75.0])
    one = FastMeshRasterizer(cams1, settings)(single)
    assert torch.equal(torch.where(one.pix_to_face >= 0, one.pix_to_face + F, -1), p2f[1:])
    assert not torch.equal(p2f[0] >= 0, p2f[1] >= 0)


@pytest.mark.integration
def test_options_match_pytorch3d(ict_scene):
    meshes, cams = ict_scene([80], 64)
    for kw in (
        dict(cull_backfaces=True),
        dict(perspective_correct=False),
        dict(perspective_correct=False, clip_barycentric_coords=True),
        dict(cull_to_frustum=True),
    ):
        settings = _settings(64, **kw)
        with torch.no_grad():
            ref = MeshRasterizer(cams, settings)(meshes)
        assert_fragments_match(FastMeshRasterizer(cams, settings)(meshes), ref)


@pytest.mark.integration
def test_cull_backfaces_keeps_front_faces_only(ict_scene):
    meshes, cams = ict_scene([80], 64)
    rast = FastMeshRasterizer(cams, _settings(64, cull_backfaces=True))
    frags = rast(meshes)
    fv = rast.transform(meshes).verts_packed()[meshes.faces_packed()]
    (x0, y0), (x1, y1), (x2, y2) = fv[:, 0, :2].T, fv[:, 1, :2].T, fv[:, 2, :2].T
    area = (x0 - x1) * (y2 - y1) - (y0 - y1) * (x2 - x1)  # PyTorch3D's face_area: < 0 is a back face
    hit = frags.pix_to_face[frags.pix_to_face >= 0]
    assert (area[hit] > 0).all()
    assert (area[FastMeshRasterizer(cams, _settings(64))(meshes).pix_to_face.clamp(min=0)] < 0).any()


def _triangles(verts, faces, requires_grad=False):
    v = torch.tensor(verts, dtype=torch.float32).requires_grad_(requires_grad)
    return v, Meshes([v], [torch.tensor(faces)])


def test_single_triangle_cull_backfaces():
    # PyTorch3D view space (+X left, +Y up, +Z forward); counter-clockwise as seen from the camera
    v, front = _triangles([[0.5, -0.5, 3.0], [-0.5, -0.5, 3.0], [0.0, 0.5, 3.0]], [[0, 1, 2]])
    _, back = _triangles([[0.5, -0.5, 3.0], [-0.5, -0.5, 3.0], [0.0, 0.5, 3.0]], [[0, 2, 1]])
    cams = PerspectiveCameras(focal_length=((2.0, 2.0),))
    for meshes in (front, back):
        for cull in (False, True):
            settings = _settings(16, cull_backfaces=cull)
            ref = MeshRasterizer(cams, settings)(meshes)
            fast = FastMeshRasterizer(cams, settings)(meshes)
            assert torch.equal(fast.pix_to_face, ref.pix_to_face)
            if (ref.pix_to_face >= 0).any():
                assert_fragments_match(fast, ref)
    assert (FastMeshRasterizer(cams, _settings(16, cull_backfaces=True))(back).pix_to_face == -1).all()
    assert (FastMeshRasterizer(cams, _settings(16, cull_backfaces=False))(back).pix_to_face >= 0).any()


@pytest.mark.integration
def test_mesh_behind_camera_gives_empty_image(ict_scene):
    meshes, cams = ict_scene([0, 0], 32, distances=[-60.0, 60.0])
    settings = _settings(32)
    fast = FastMeshRasterizer(cams, settings)(meshes)
    ref = MeshRasterizer(cams, settings)(meshes)
    assert (fast.pix_to_face[0] == -1).all() and (fast.zbuf[0] == -1).all()
    assert (fast.bary_coords[0] == -1).all() and (fast.dists[0] == -1).all()
    assert torch.equal(fast.pix_to_face, ref.pix_to_face)
    assert (fast.pix_to_face[1] >= 0).any()
    # nothing covered anywhere in the batch: still no error, all -1, and gradients are zeros
    behind, cams1 = ict_scene([0], 32, distances=[-60.0])
    verts = behind.verts_padded()[0].detach().requires_grad_()
    frags = FastMeshRasterizer(cams1, settings)(Meshes([verts], [behind.faces_padded()[0]]))
    assert (frags.pix_to_face == -1).all() and (frags.zbuf == -1).all()
    frags.zbuf.sum().backward()
    assert verts.grad is not None and (verts.grad == 0).all()


def test_near_plane_clipping_matches_pytorch3d():
    # FoV cameras have a znear, so PyTorch3D clips at znear / 2; one face crosses that plane
    _, meshes = _triangles(
        [[1.0, -1.0, 0.2], [-1.0, -1.0, 3.0], [0.0, 1.0, 3.0], [1.0, 1.0, 2.0]], [[0, 1, 2], [0, 2, 3]]
    )
    cams = FoVPerspectiveCameras(znear=1.0, fov=90.0)
    settings = _settings(24)
    ref = MeshRasterizer(cams, settings)(meshes)
    fast = FastMeshRasterizer(cams, settings)(meshes)
    assert (ref.pix_to_face >= 0).any()
    assert_fragments_match(fast, ref, min_agree=0.99)


def test_orthographic_camera_matches_pytorch3d():
    _, meshes = _triangles(
        [[0.8, -0.7, 2.0], [-0.6, -0.8, 3.0], [0.1, 0.9, 2.5], [-0.9, 0.6, 1.0]], [[0, 1, 2], [1, 3, 2]]
    )
    cams = FoVOrthographicCameras()
    settings = _settings((20, 28))
    ref = MeshRasterizer(cams, settings)(meshes)
    assert_fragments_match(FastMeshRasterizer(cams, settings)(meshes), ref)


def test_unsupported_settings_raise():
    _, meshes = _triangles([[0.5, -0.5, 3.0], [-0.5, -0.5, 3.0], [0.0, 0.5, 3.0]], [[0, 1, 2]])
    cams = PerspectiveCameras()
    with pytest.raises(ValueError, match="faces_per_pixel"):
        FastMeshRasterizer(cams, RasterizationSettings(image_size=8, faces_per_pixel=2))(meshes)
    with pytest.raises(ValueError, match="blur_radius"):
        FastMeshRasterizer(cams, RasterizationSettings(image_size=8, blur_radius=1e-4))(meshes)
    # per-call overrides, as MeshRasterizer: raster_settings= and cameras=
    rast = FastMeshRasterizer(None, RasterizationSettings(image_size=8, faces_per_pixel=2))
    frags = rast(meshes, cameras=cams, raster_settings=_settings(8))
    assert frags.pix_to_face.shape == (1, 8, 8, 1)


def test_face_map_threads_agree():
    g = torch.Generator().manual_seed(0)
    fv = torch.rand(300, 3, 3, generator=g) * 2 - 1
    fv[..., 2] = fv[..., 2] + 2.0
    first, count = torch.tensor([0, 100]), torch.tensor([100, 200])
    one = face_map(fv, first, count, (70, 50), True, threads=1)
    two = face_map(fv, first, count, (70, 50), True, threads=2)
    assert torch.equal(one, two) and (one >= 0).any()
    assert (one[0][one[0] >= 0] < 100).all() and (one[1][one[1] >= 0] >= 100).all()


def test_interpolation_gradcheck_float64():
    """The differentiable part (fixed face map) against finite differences in float64."""
    fv = torch.tensor(
        [
            [[0.6, -0.5, 2.0], [-0.7, -0.4, 3.0], [0.1, 0.8, 2.5]],
            [[-0.7, -0.4, 3.0], [-0.8, 0.9, 1.5], [0.1, 0.8, 2.5]],
        ],
        dtype=torch.float64,
    )
    p2f = face_map(fv, torch.tensor([0]), torch.tensor([2]), (12, 10), True)
    assert (p2f == 0).any() and (p2f == 1).any()
    for persp in (True, False):

        def fn(x, persp=persp):
            z, b, d = interpolate_fragments(x, p2f, persp)
            return z, b, d

        assert torch.autograd.gradcheck(fn, (fv.clone().requires_grad_(),), eps=1e-6, atol=1e-5)


def test_vertex_gradients_match_finite_differences():
    """Whole rasteriser (camera transform included, float32): autograd vs central differences of
    a smooth loss over the pixels whose covering face does not change under the perturbation."""
    verts = [[0.6, -0.5, 2.0], [-0.7, -0.4, 3.0], [0.1, 0.8, 2.5], [-0.8, 0.9, 1.5]]
    faces = [[0, 1, 2], [1, 3, 2]]
    cams = PerspectiveCameras(focal_length=((1.5, 1.5),))
    rast = FastMeshRasterizer(cams, _settings(24))
    g = torch.Generator().manual_seed(1)
    wz, wb = torch.rand(1, 24, 24, 1, generator=g), torch.rand(1, 24, 24, 1, 3, generator=g)

    def run(v):
        return rast(Meshes([v], [torch.tensor(faces)]))

    base = torch.tensor(verts)
    eps = 2e-3
    probes = [(i, k) for i in range(4) for k in range(3)]
    maps = [run(base).pix_to_face]
    for i, k in probes:
        for s in (1, -1):
            v = base.clone()
            v[i, k] += s * eps
            maps.append(run(v).pix_to_face)
    stable = torch.stack(maps).eq(maps[0]).all(0) & (maps[0] >= 0)  # (1, H, W, 1)

    def loss(fr):
        return (fr.zbuf * wz * stable).sum() + (fr.bary_coords * wb * stable[..., None]).sum()

    v = base.clone().requires_grad_()
    loss(run(v)).backward()
    fd = torch.zeros(4, 3)
    with torch.no_grad():
        for i, k in probes:
            vp, vm = base.clone(), base.clone()
            vp[i, k] += eps
            vm[i, k] -= eps
            fd[i, k] = (loss(run(vp)) - loss(run(vm))) / (2 * eps)
    torch.testing.assert_close(v.grad, fd, rtol=2e-2, atol=2e-2 * fd.abs().max().item())


def _photometric_grad(rasterizer_cls, meshes_fn, cams, settings, colours, target):
    from pytorch3d.ops import interpolate_face_attributes

    verts, meshes = meshes_fn()
    frags = rasterizer_cls(cams, settings)(meshes)
    face_colours = colours[meshes.faces_packed()]
    img = interpolate_face_attributes(frags.pix_to_face, frags.bary_coords, face_colours)[..., 0, :]
    mask = (frags.pix_to_face[..., 0] >= 0)[..., None]
    depth = torch.where(mask[..., 0], frags.zbuf[..., 0], torch.zeros(()))
    loss = ((img - target) ** 2 * mask).sum() + 1e-2 * depth.sum()
    loss.backward()
    return verts.grad.clone()


@pytest.mark.integration
def test_photometric_gradients_match_pytorch3d(ict_scene, ict_model):
    size = 96
    meshes0, cams = ict_scene([30], size)

    def meshes_fn():
        v = meshes0.verts_padded()[0].detach().clone().requires_grad_()
        return v, Meshes([v], [ict_model.faces])

    t = ict_model.template
    colours = torch.stack([torch.sin(t[:, 0] * 0.5), torch.cos(t[:, 1] * 0.4), torch.sin(t[:, 2] * 0.3)], -1)
    target = torch.full((1, size, size, 3), 0.2)
    settings = _settings(size)
    g_fast = _photometric_grad(FastMeshRasterizer, meshes_fn, cams, settings, colours, target)
    g_ref = _photometric_grad(MeshRasterizer, meshes_fn, cams, settings, colours, target)
    cos = torch.nn.functional.cosine_similarity(g_fast.flatten(), g_ref.flatten(), dim=0)
    # same formulas and (here) the same face map: the gradients agree to float rounding
    assert cos > 0.999, f"cosine similarity {cos:.5f}"
    assert g_fast.norm() == pytest.approx(g_ref.norm().item(), rel=1e-3)


@pytest.mark.integration
def test_shader_images_and_texture_gradients_match(ict_scene, ict_model):
    from pytorch3d.renderer import HardPhongShader, MeshRenderer, PointLights, TexturesVertex

    size = 64
    meshes, cams = ict_scene([-20], size)
    t = ict_model.template
    base = torch.stack(
        [0.5 + 0.4 * torch.sin(t[:, 0] * 0.3), 0.5 + 0.4 * torch.cos(t[:, 1] * 0.2), 0.5 + 0.0 * t[:, 2]], -1
    )
    lights = PointLights(location=((0.0, 0.0, -10.0),))
    out = []
    for cls in (FastMeshRasterizer, MeshRasterizer):
        colours = base[None].clone().requires_grad_()
        m = meshes.clone()
        m.textures = TexturesVertex(colours)
        renderer = MeshRenderer(cls(cams, _settings(size)), HardPhongShader(cameras=cams, lights=lights))
        img = renderer(m)
        img[..., :3].square().sum().backward()
        out.append((img.detach(), colours.grad))
    (img_f, g_f), (img_r, g_r) = out
    close = (img_f - img_r).abs().amax(-1) < 1e-4
    assert close.float().mean() > 0.995
    assert g_f.abs().sum() > 0
    cos = torch.nn.functional.cosine_similarity(g_f.flatten(), g_r.flatten(), dim=0)
    assert cos > 0.99


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_tensors_round_trip():
    v, meshes = _triangles([[0.5, -0.5, 3.0], [-0.5, -0.5, 3.0], [0.0, 0.5, 3.0]], [[0, 1, 2]])
    cams = PerspectiveCameras(device="cuda")
    frags = FastMeshRasterizer(cams, _settings(16))(meshes.to("cuda"))
    assert frags.pix_to_face.device.type == "cuda" and frags.zbuf.device.type == "cuda"
    ref = FastMeshRasterizer(PerspectiveCameras(), _settings(16))(meshes)
    assert torch.equal(frags.pix_to_face.cpu(), ref.pix_to_face)
