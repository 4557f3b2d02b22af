"""Per-model mesh operators of the residual fit (:mod:`face3d.fit.residual`): UV corners, vertex
averaging over UV seams, uniform Laplacian, normals, photometric vertex weights; cached per model.
Also the working crop around a face and the interpolation of vertex values at rendered pixels,
which the photometric refinement (:mod:`face3d.fit.photometric`) shares."""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from face3d.crop import photo_extent, photo_mask
from face3d.render import atlas_corner_uvs
from face3d.render.texture_fill import mirror_vertices

#: iBUG landmarks around which the albedo changes sharply: brows, nostrils, eyes, mouth.
FEATURE_LANDMARKS = tuple(range(17, 27)) + tuple(range(31, 36)) + tuple(range(36, 68))


@dataclass(frozen=True)
class MeshOperators:
    """Per-model constants (built once per model by :func:`mesh_operators`; index form, since
    ``index_add`` beats torch's sparse products on the CPU).

    Attributes:
        faces: (F, 3) the model's triangles (CPU).
        corner_uvs: (F, 3, 2) atlas UVs per triangle corner.
        point_uvs: (P, 2) atlas UVs of the distinct (vertex, UV) corners.
        point_vertex: (P,) the vertex of each corner.
        point_count: (V,) corners per vertex (>= 1; 1 for vertices in no triangle).
        edges: (E, 2) directed mesh edges, both directions.
        degree: (V,) neighbours per vertex (>= 1).
        photo_weight: (V,) photometric weight from region and features, in {0, 1}.
        region: (V,) bool vertices of ``config.region``.
        region_faces: (F_r, 3) triangles with a corner in the region (the ones rasterised).
        mirror: (V,) the vertex nearest each vertex mirrored through x = 0 (template).
    """

    faces: torch.Tensor
    corner_uvs: torch.Tensor
    point_uvs: torch.Tensor
    point_vertex: torch.Tensor
    point_count: torch.Tensor
    edges: torch.Tensor
    degree: torch.Tensor
    photo_weight: torch.Tensor
    region: torch.Tensor
    region_faces: torch.Tensor
    mirror: torch.Tensor

    def average(self, per_point: torch.Tensor) -> torch.Tensor:
        """(P, C) values per corner -> (V, C) mean per vertex."""
        out = per_point.new_zeros(len(self.point_count), per_point.shape[1])
        return out.index_add(0, self.point_vertex, per_point) / self.point_count[:, None].to(per_point)

    def laplacian(self, x: torch.Tensor) -> torch.Tensor:
        """Uniform Laplacian ``x_i - mean_j x_j`` over the neighbours: (V, C) -> (V, C)."""
        nb = x.new_zeros(x.shape).index_add(0, self.edges[:, 0], x[self.edges[:, 1]])
        return x - nb / self.degree[:, None].to(x)


_OPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def mesh_operators(model, region: str = "narrow_face", feature_radius_cm: float = 1.0) -> MeshOperators:
    """The :class:`MeshOperators` of ``model`` (cached per model, region and feature radius): the
    photometric weight is 1 on ``region`` farther than ``feature_radius_cm`` (template, cm) from the
    :data:`FEATURE_LANDMARKS`."""
    key = (region, feature_radius_cm)
    cache = _OPS.setdefault(model, {})
    if key in cache:
        return cache[key]
    V, faces = model.n_vertices, model.faces.cpu()
    corner_uvs = atlas_corner_uvs(model.uvs.cpu(), model.face_uvs.cpu()).float()
    pairs, first = np.unique(
        np.stack([faces.reshape(-1).numpy(), model.face_uvs.cpu().reshape(-1).numpy()], 1),
        axis=0,
        return_index=True,
    )
    vid = torch.as_tensor(pairs[:, 0])
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges = torch.unique(torch.cat([edges, edges.flip(1)]), dim=0)
    region = model.region_mask(region).cpu()
    tmpl = model.template.cpu()
    feats = tmpl[model.landmark_ids.cpu()[list(FEATURE_LANDMARKS)]]
    near = torch.cdist(tmpl, feats).min(1).values < feature_radius_cm
    ops = MeshOperators(
        faces=faces,
        corner_uvs=corner_uvs,
        point_uvs=corner_uvs.reshape(-1, 2)[torch.as_tensor(first)],
        point_vertex=vid,
        point_count=torch.bincount(vid, minlength=V).clamp(min=1).float(),
        edges=edges,
        degree=torch.bincount(edges[:, 0], minlength=V).clamp(min=1).float(),
        photo_weight=(region & ~near).float(),
        region=region,
        region_faces=faces[region[faces].any(1)],
        mirror=mirror_vertices(tmpl),
    )
    cache[key] = ops
    return ops


def sample_at_vertices(maps: torch.Tensor, ops: MeshOperators) -> torch.Tensor:
    """Bilinear UV lookup averaged over each vertex's corners: (1, C, H, W) -> (1, V, C)."""
    uv = ops.point_uvs.to(maps)
    grid = torch.stack([uv[:, 0] * 2 - 1, 1 - uv[:, 1] * 2], -1)[None, None]  # origin bottom-left
    pts = F.grid_sample(maps, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return ops.average(pts[0, :, 0].t())[None]


def normals(vertices: torch.Tensor, ops: MeshOperators) -> torch.Tensor:
    """Area-weighted unit vertex normals, (1, V, 3) -> (1, V, 3) (as :func:`vertex_normals`)."""
    v, f = vertices[0], ops.faces
    fn = torch.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]], dim=-1)
    acc = v.new_zeros(v.shape).index_add(0, f.t().reshape(-1), fn.repeat(3, 1))
    return F.normalize(acc, dim=-1, eps=1e-12)[None]


def cached(model, key, make):
    """Per-model cache: ``make()`` once per (model, key)."""
    cache = _OPS.setdefault(model, {})
    if key not in cache:
        cache[key] = make()
    return cache[key]


def working_crop(points: np.ndarray, H: int, W: int, resolution: int, margin: float):
    """Square-ish crop around projected points -> (x0, y0, x1, y1), (h, w) working size, (sx, sy):
    ``margin`` (fraction of the points' extent) on each side, the longer side resized to at most
    ``resolution`` pixels (never upsampled)."""
    lo, hi = points.min(0), points.max(0)
    half = 0.5 * float((hi - lo).max()) * (1 + 2 * margin)
    c = 0.5 * (lo + hi)
    x0, y0 = max(0, int(math.floor(c[0] - half))), max(0, int(math.floor(c[1] - half)))
    x1, y1 = min(W, int(math.ceil(c[0] + half)) + 1), min(H, int(math.ceil(c[1] + half)) + 1)
    s = min(1.0, resolution / max(x1 - x0, y1 - y0, 1))  # never upsample
    w, h = max(2, round((x1 - x0) * s)), max(2, round((y1 - y0) * s))
    return (x0, y0, x1, y1), (h, w), (w / (x1 - x0), h / (y1 - y0))


def in_photo(image: np.ndarray, box, size) -> torch.Tensor:
    """(h, w) float mask of a working crop (``box`` (x0, y0, x1, y1) of ``image`` (H, W, 3),
    resized to ``size`` (h, w)): 1 where the pixel lies wholly inside the photo, 0 over the
    padding a crop of the photo was given (:func:`face3d.crop.photo_extent`), which is not the face."""
    H, W = image.shape[:2]
    extent = photo_extent(image)
    if extent == (0, 0, W, H):
        return torch.ones(size)
    x0, y0, x1, y1 = box
    full = photo_mask(image, extent)[y0:y1, x0:x1].astype(np.float32)
    small = cv2.resize(full, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return torch.from_numpy((small >= 0.999).astype(np.float32))


def to_crop(pts: torch.Tensor, box, scale) -> torch.Tensor:
    """Pixel coordinates (centre convention) -> working-crop coordinates."""
    off = pts.new_tensor(box[:2])
    sc = pts.new_tensor(scale)
    return (pts - off + 0.5) * sc - 0.5


def interpolate_at_pixels(vals: torch.Tensor, tri: torch.Tensor, bary: torch.Tensor) -> torch.Tensor:
    """Interpolate (V, C) per-vertex values at pixels given (M, 3) corners and (M, 3) bary."""
    return (vals[tri] * bary[..., None]).sum(1)


def away_from_edges(zbuf: torch.Tensor, covered: torch.Tensor, depth_jump_cm: float, radius: int = 1):
    """(H, W) bool: covered pixels whose (2 radius + 1)^2 neighbourhood spans less depth than
    ``depth_jump_cm`` and stays on the mesh (occlusion edges and the outline mix surfaces in a
    photo). ``zbuf``, ``covered``: (H, W) depth buffer and coverage of a render."""
    z = torch.where(covered, zbuf, torch.full_like(zbuf, 1e6))[None]
    k = 2 * radius + 1
    jump = (F.max_pool2d(z, k, 1, radius) + F.max_pool2d(-z, k, 1, radius))[0]
    return covered & (jump < depth_jump_cm)
