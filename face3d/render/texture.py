"""Texture extraction: sample a photo into the model's UV map and per-vertex colours.

ICT lays its UVs out in UDIM tiles (face in u in [0, 1], head and mouth socket in [1, 2],
gums, teeth ... further right). :func:`atlas_corner_uvs` packs the tiles a mesh uses side by
side into one [0, 1]^2 atlas, so one texture image covers them.

Visibility comes from the z-buffer of the photo's own view: a texel (or vertex) is visible
when the surface point it stands for is the nearest surface at the pixel it projects to.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from face3d.camera import project
from face3d.render.rasterize import RenderConfig, rasterize
from face3d.render.shading import surface_values, vertex_normals


@dataclass(frozen=True)
class UVLayout:
    """Where each texel of an atlas lies on the mesh (computed once per mesh topology).

    Attributes:
        corner_uvs: (F, 3, 2) atlas UVs per triangle corner, [0, 1], origin bottom-left.
        pix_to_face: (Ht, Wt) int64 triangle covering each texel centre, -1 for none.
        bary: (Ht, Wt, 3) barycentric coordinates of the texel centre in that triangle.
    """

    corner_uvs: torch.Tensor
    pix_to_face: torch.Tensor
    bary: torch.Tensor

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.pix_to_face.shape)

    @property
    def valid(self) -> torch.Tensor:
        """(Ht, Wt) bool: texels that belong to some triangle."""
        return self.pix_to_face >= 0


@dataclass(frozen=True)
class TextureSample:
    """A photo sampled onto the mesh.

    Attributes:
        texture: (B, Ht, Wt, 3) atlas colours in [0, 1] (0 where not visible).
        visible: (B, Ht, Wt) bool, texel seen in the photo.
        vertex_colors: (B, V, 3) colours per vertex.
        vertex_visible: (B, V) bool.
    """

    texture: torch.Tensor
    visible: torch.Tensor
    vertex_colors: torch.Tensor
    vertex_visible: torch.Tensor


def atlas_corner_uvs(uvs: torch.Tensor, face_uvs: torch.Tensor) -> torch.Tensor:
    """Pack the UDIM tiles used by ``face_uvs`` side by side: -> (F, 3, 2) in [0, 1]."""
    corner = uvs[face_uvs]  # (F, 3, 2)
    tiles = torch.floor(corner.mean(1)[:, 0]).long()  # tile of each triangle
    used = torch.unique(tiles)
    slot = torch.searchsorted(used, tiles).to(corner.dtype)
    u = (corner[..., 0] - tiles[:, None].to(corner.dtype) + slot[:, None]) / len(used)
    return torch.stack([u, corner[..., 1]], -1)


def uv_layout(
    corner_uvs: torch.Tensor, size: tuple[int, int], config: RenderConfig = RenderConfig()
) -> UVLayout:
    """Rasterise the atlas itself: which triangle and barycentrics cover each texel.

    Args:
        corner_uvs: (F, 3, 2) from :func:`atlas_corner_uvs`.
        size: (Ht, Wt) atlas size in texels.
    """
    Ht, Wt = size
    F_ = corner_uvs.shape[0]
    # texel pixel coordinates (centre of texel (r, c) at (c, r)), placed on the plane z = 1
    px = corner_uvs[..., 0] * Wt - 0.5
    py = (1 - corner_uvs[..., 1]) * Ht - 0.5
    pts = torch.stack([px, py, torch.ones_like(px)], -1).reshape(1, F_ * 3, 3)
    faces = torch.arange(F_ * 3, device=corner_uvs.device).reshape(F_, 3)
    ident = torch.tensor([[1.0, 1.0, 0.0, 0.0]], device=corner_uvs.device)
    flat_config = RenderConfig(backend=config.backend, cull_backfaces=False)
    frags, _, _ = rasterize(pts.float(), faces, ident, (Ht, Wt), flat_config)
    return UVLayout(
        corner_uvs=corner_uvs,
        pix_to_face=frags.pix_to_face[0, ..., 0],
        bary=frags.bary_coords[0, ..., 0, :].detach(),
    )


def sample_photo(image: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """Bilinear lookup of (B, H, W, C) at (B, N, 2) pixel positions -> (B, N, C)."""
    H, W = image.shape[1:3]
    grid = torch.stack([pixels[..., 0] / (W - 1) * 2 - 1, pixels[..., 1] / (H - 1) * 2 - 1], -1)
    out = F.grid_sample(
        image.permute(0, 3, 1, 2),
        grid[:, :, None].to(image.dtype),
        mode="bilinear",
        padding_mode="border",
        align_corners=True,
    )
    return out[..., 0].permute(0, 2, 1)


def visibility(
    points_cam: torch.Tensor,
    intrinsics: torch.Tensor,
    depth: torch.Tensor,
    covered: torch.Tensor,
    normals_cam: torch.Tensor | None = None,
    tolerance_cm: float = 0.4,
) -> torch.Tensor:
    """Whether camera-space points are the nearest surface where they project.

    Args:
        points_cam: (B, N, 3); intrinsics: (B, 4); depth, covered: (B, H, W) from a render
            of the same view; normals_cam: optional (B, N, 3), to drop back-facing points.
    Returns:
        (B, N) bool.
    """
    H, W = depth.shape[1:]
    pix = project(points_cam, intrinsics)
    inside = (pix[..., 0] > -0.5) & (pix[..., 0] < W - 0.5) & (pix[..., 1] > -0.5) & (pix[..., 1] < H - 0.5)
    ix = pix[..., 0].round().long().clamp(0, W - 1)
    iy = pix[..., 1].round().long().clamp(0, H - 1)
    b = torch.arange(points_cam.shape[0], device=points_cam.device)[:, None]
    z_seen = depth[b, iy, ix]
    ok = inside & covered[b, iy, ix].bool() & (points_cam[..., 2] - z_seen < tolerance_cm)
    if normals_cam is not None:
        ok = ok & ((normals_cam * points_cam).sum(-1) < 0)
    return ok


def extract_texture(
    image: torch.Tensor,
    vertices_cam: torch.Tensor,
    faces: torch.Tensor,
    intrinsics: torch.Tensor,
    layout: UVLayout,
    config: RenderConfig = RenderConfig(),
) -> TextureSample:
    """Sample the photo into the UV atlas and per-vertex colours, with z-buffer visibility.

    Args:
        image: (B, H, W, 3) float photo in [0, 1].
        vertices_cam: (B, V, 3) camera space (OpenCV axes), cm.
        faces: (F, 3) the triangles ``layout`` was built for.
        intrinsics: (B, 4) fx, fy, cx, cy in pixels.
        layout: from :func:`uv_layout`.
    """
    if image.dim() != 4 or image.shape[-1] != 3:
        raise ValueError(f"image: expected (B, H, W, 3), got {tuple(image.shape)}")
    B, H, W, _ = image.shape
    frags, _, _ = rasterize(vertices_cam, faces, intrinsics, (H, W), RenderConfig(backend=config.backend))
    covered = frags.pix_to_face[..., 0] >= 0
    depth = frags.zbuf[..., 0]
    normals = vertex_normals(vertices_cam, faces)

    # texels: 3D point and normal of each covered texel
    valid = layout.valid
    tri = faces[layout.pix_to_face[valid]]  # (N, 3)
    bary = layout.bary[valid].to(vertices_cam.dtype)  # (N, 3)
    pts, nrm = surface_values(torch.cat([vertices_cam, normals], -1), tri, bary).split(3, -1)  # (B, N, 3)
    seen = visibility(pts, intrinsics, depth, covered, nrm)
    colors = sample_photo(image, project(pts, intrinsics)) * seen[..., None]
    Ht, Wt = layout.size
    texture = image.new_zeros(B, Ht, Wt, 3)
    texture[:, valid] = colors.to(image.dtype)
    visible = torch.zeros(B, Ht, Wt, dtype=torch.bool, device=image.device)
    visible[:, valid] = seen

    v_seen = visibility(vertices_cam, intrinsics, depth, covered, normals)
    v_col = sample_photo(image, project(vertices_cam, intrinsics)) * v_seen[..., None]
    return TextureSample(texture=texture, visible=visible, vertex_colors=v_col, vertex_visible=v_seen)
