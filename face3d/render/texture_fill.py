"""Filling the texels a photo does not show: the mirrored side of the face, then inpainting.

A face seen at 70 degrees shows one cheek; the other is taken from the mirror image of the
surface (the model is left-right symmetric: vertex ``i`` mirrors to ``mirror[i]``), sampled in
the photo where that mirrored point is visible. What is still missing is inpainted from
neighbouring texels.
"""

from __future__ import annotations

import numpy as np
import torch

from face3d.camera import project
from face3d.render.shading import surface_values, vertex_normals
from face3d.render.texture import UVLayout, sample_photo, visibility

#: Flat colours (RGB in [0, 1]) of the ICT interior parts a photo never shows.
FLAT_COLORS = {
    "mouth_socket": (0.30, 0.10, 0.10),
    "eye_socket_left": (0.15, 0.10, 0.10),
    "eye_socket_right": (0.15, 0.10, 0.10),
    "gums_tongue": (0.62, 0.28, 0.30),
    "teeth": (0.86, 0.83, 0.76),
    "eyeball_left": (0.85, 0.83, 0.80),
    "eyeball_right": (0.85, 0.83, 0.80),
}


#: A photo whose colour channels differ by less than this on average (0-1 scale) is greyscale.
GREY_TOLERANCE = 2.0 / 255.0


def is_greyscale(photo) -> bool:
    """Whether a photo ((..., 3) tensor or array, 0-1) is greyscale: its colour channels differ by
    less than :data:`GREY_TOLERANCE` on average."""
    p = torch.as_tensor(photo).reshape(-1, 3).to(torch.float64)
    return len(p) > 0 and float((p.amax(1) - p.amin(1)).mean()) < GREY_TOLERANCE


LUMA_601 = (0.299, 0.587, 0.114)
"""Rec. 601 luma weights of (R, G, B): grey levels and luminance everywhere in the project."""


def grey_levels(colors: torch.Tensor) -> torch.Tensor:
    """(..., 3) colours -> their grey levels (Rec. 601 luma) in all three channels."""
    luma = colors @ torch.tensor(LUMA_601, dtype=colors.dtype, device=colors.device)
    return luma[..., None].expand_as(colors).clone()


def toned_flat_colors(colors: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
    """(..., 3) flat interior colours as a photo shows them: their grey levels in a greyscale
    ``photo`` (:func:`is_greyscale`), so a mouth opened in a black-and-white photo is not drawn
    red; unchanged in a colour photo."""
    return grey_levels(colors) if is_greyscale(photo) else colors


def mirror_vertices(template: torch.Tensor) -> torch.Tensor:
    """(V,) index of the vertex nearest each vertex mirrored through the x = 0 plane."""
    from scipy.spatial import cKDTree

    t = template.detach().cpu().numpy()
    _, idx = cKDTree(t).query(t * np.array([-1.0, 1.0, 1.0]))
    return torch.as_tensor(idx, dtype=torch.int64, device=template.device)


def fill_from_mirror(
    texture: torch.Tensor,
    visible: torch.Tensor,
    image: torch.Tensor,
    vertices_cam: torch.Tensor,
    faces: torch.Tensor,
    intrinsics: torch.Tensor,
    layout: UVLayout,
    mirror: torch.Tensor,
    depth: torch.Tensor,
    covered: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fill invisible texels from the photo at the mirrored surface point where that is visible.

    Args:
        texture: (B, Ht, Wt, 3) atlas; visible: (B, Ht, Wt) bool.
        image: (B, H, W, 3) photo; vertices_cam: (B, V, 3); intrinsics: (B, 4).
        mirror: (V,) from :func:`mirror_vertices`.
        depth, covered: (B, H, W) z-buffer of the photo's view (for visibility).
    Returns:
        (texture, filled) where ``filled`` (B, Ht, Wt) marks texels now known.
    """
    valid = layout.valid
    tri = mirror[faces[layout.pix_to_face[valid]]]  # mirrored corners, (N, 3)
    bary = layout.bary[valid].to(vertices_cam.dtype)
    normals = vertex_normals(vertices_cam, faces)
    pts, nrm = surface_values(torch.cat([vertices_cam, normals], -1), tri, bary).split(3, -1)
    seen = visibility(pts, intrinsics, depth, covered, nrm)
    colors = sample_photo(image, project(pts, intrinsics))
    need = ~visible[:, valid] & seen
    out = texture.clone()
    vals = out[:, valid]
    vals[need] = colors[need].to(out.dtype)
    out[:, valid] = vals
    filled = visible.clone()
    f = filled[:, valid]
    f[need] = True
    filled[:, valid] = f
    return out, filled


def inpaint_texture(
    texture: torch.Tensor, known: torch.Tensor, valid: torch.Tensor, scale: int = 4
) -> torch.Tensor:
    """Inpaint unknown texels inside the atlas from their neighbours (OpenCV Telea, run at
    1/``scale`` resolution for speed; known texels are kept exactly).

    Args:
        texture: (B, Ht, Wt, 3) in [0, 1]; known: (B, Ht, Wt) bool; valid: (Ht, Wt) bool atlas area.
    """
    import cv2

    out = texture.clone()
    for b in range(texture.shape[0]):
        kn = known[b].cpu().numpy()
        hole = (~kn) & valid.cpu().numpy()
        if not hole.any():
            continue
        if not kn.any():
            out[b][torch.as_tensor(hole)] = 0.5
            continue
        Ht, Wt = hole.shape
        size = (Wt // scale, Ht // scale)
        # mask-normalised downsampling: unknown (black) texels do not darken their neighbours
        tex = texture[b].detach().cpu().numpy().astype(np.float32) * kn[..., None]
        weight = cv2.resize(kn.astype(np.float32), size, interpolation=cv2.INTER_AREA)
        small = cv2.resize(tex, size, interpolation=cv2.INTER_AREA) / np.maximum(weight, 1e-6)[..., None]
        small = (np.clip(small, 0, 1) * 255).astype(np.uint8)
        filled = cv2.inpaint(small, (weight < 0.25).astype(np.uint8), 3, cv2.INPAINT_TELEA)
        big = cv2.resize(filled, (Wt, Ht), interpolation=cv2.INTER_LINEAR)
        hole_t = torch.as_tensor(hole, device=out.device)
        out[b][hole_t] = torch.as_tensor(big, device=out.device)[hole_t].to(out.dtype) / 255.0
    return out
