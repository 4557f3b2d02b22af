"""Writing a residual fit: the per-vertex offsets and the UV displacement map (NPY, PNG), and the
mesh with the residual applied; its appearance re-rendered over the photo (evaluation)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from face3d.camera import project
from face3d.export import export_obj
from face3d.fit.appearance import sh_shading
from face3d.fit.residual import ResidualConfig, ResidualResult, mesh_operators
from face3d.fit.residual_mesh import away_from_edges, interpolate_at_pixels, normals, working_crop
from face3d.fit.result import FitResult
from face3d.io import atomic_write_bytes, write_image
from face3d.render import rasterize


def displacement_image(displacement: torch.Tensor, scale_cm: float | None = None) -> np.ndarray:
    """(C, Hd, Wd) map in cm -> (Hd, Wd, 3) uint8 visualisation: 128 + 127 * D / scale per channel;
    a 3-channel (vector) map shows x, y, z as red, green, blue, a 1-channel (normal) map as grey
    (outwards brighter). ``scale_cm`` defaults to the map's largest |value|."""
    d = displacement.detach().cpu().float().numpy().transpose(1, 2, 0)
    if d.shape[2] == 1:
        d = np.repeat(d, 3, axis=2)
    scale = float(scale_cm) if scale_cm else max(float(np.abs(d).max()), 1e-6)
    return np.clip(128 + 127 * d / scale, 0, 255).astype(np.uint8)


def save_residual(out_dir, stem: str, model, result: ResidualResult, texture=None, mesh: bool = True):
    """Write ``<stem>_residual.npy`` ((V, 3) offsets, cm), ``<stem>_displacement.npy`` ((C, Hd, Wd),
    cm; C = 1 for normal maps, 3 for vector maps) and ``<stem>_displacement.png`` (when there is a
    map) and, with ``mesh``, ``<stem>_residual.obj`` (``result.fit``'s mesh, the residual applied,
    atlas UVs; ``texture`` (Ht, Wt, 3) uint8 beside it).

    Returns:
        the paths written.
    """
    import io
    from pathlib import Path

    def npy(path, arr) -> Path:
        buf = io.BytesIO()
        np.save(buf, np.asarray(arr, dtype=np.float32))
        return atomic_write_bytes(path, buf.getvalue())

    out = Path(out_dir)
    paths = [npy(out / f"{stem}_residual.npy", result.residual[0].cpu().numpy())]
    if result.displacement is not None:
        paths.append(npy(out / f"{stem}_displacement.npy", result.displacement.cpu().numpy()))
        paths.append(write_image(out / f"{stem}_displacement.png", displacement_image(result.displacement)))
    if mesh:
        verts = result.fit.vertices(model)[0]
        corner_uvs = mesh_operators(model).corner_uvs
        paths.append(export_obj(out / f"{stem}_residual.obj", verts, model.faces, corner_uvs, texture))
    return paths


def render_appearance(
    model, fit: FitResult, result: ResidualResult, config: ResidualConfig = ResidualConfig()
):
    """Re-render a face as albedo x SH shading over its whole image (the residual is the fit's own:
    pass ``result.fit`` for the refined geometry).

    Returns:
        image (H, W, 3) float in [0, 1] (0 outside), mask (H, W) bool of the pixels the
        photometric term sees (the region minus features and grazing triangles, away from the
        linear fit's outline and depth jumps over the width of one working-crop pixel).
    """
    ops = mesh_operators(model, config)
    with torch.no_grad():
        vc = fit.vertices_cam(model).float().cpu()
        nv = normals(vc, ops)[0]
        v0 = fit.with_residual(None).vertices_cam(model).float().cpu()
        n0 = normals(v0, ops)[0]
        wv = ops.photo_weight * (-(n0 * F.normalize(v0[0], dim=-1)).sum(-1) > config.min_facing).float()
        color = result.albedo[0] * sh_shading(nv, result.lighting)[:, None]
        K = fit.intrinsics.float().cpu()
        frags0, _, _ = rasterize(v0, ops.region_faces, K, fit.image_size, config.render)
        H, W = fit.image_size
        pix0 = project(v0, K)[0][ops.region].numpy()
        _, _, scale = working_crop(pix0, H, W, config.resolution, config.margin)
        keep = away_from_edges(
            frags0.zbuf[0, ..., 0], frags0.pix_to_face[0, ..., 0] >= 0, config.depth_jump_cm,
            max(1, round(1 / min(scale))),
        )  # fmt: skip
        frags, _, _ = rasterize(vc, ops.region_faces, K, fit.image_size, config.render)
        p2f = frags.pix_to_face[0, ..., 0]
        cov = p2f >= 0
        tri, bary = ops.region_faces[p2f[cov]], frags.bary_coords[0, ..., 0, :][cov]
        image = torch.zeros(*fit.image_size, 3)
        image[cov] = interpolate_at_pixels(color, tri, bary).clamp(0, 1)
        mask = torch.zeros(fit.image_size, dtype=torch.bool)
        mask[cov] = interpolate_at_pixels(wv[:, None], tri, bary)[:, 0] > 0.5
    return image.numpy(), (mask & keep).numpy()
