"""What the photo never showed inside the head: teeth, gums, tongue and the mouth socket.

Only surface points the photo did not show are drawn (the warp moves the photo's own teeth where
it shows them). They are ICT's own interior meshes, coloured per part, lit by a soft key light,
darkened toward the throat with their depth behind the frontmost interior point, and toned to the
photo: its exposure and white balance, taken from the visible skin against a reference skin tone,
and its grey levels in a black-and-white photo.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from face3d.camera import project
from face3d.render import RenderConfig
from face3d.render.shading import PhongShader, VertexColorShader, vertex_normals
from face3d.render.texture_fill import LUMA_601, grey_levels

THROAT_CM = 3.5
"""Depth behind the frontmost drawn point over which the interior darkens to its floor."""
THROAT_FLOOR = 0.4
"""Brightness factor at (and beyond) ``THROAT_CM`` behind the front."""
REFERENCE_SKIN = np.array([0.70, 0.52, 0.44])
"""A mid skin tone (linear-ish RGB, 0-1): the photo's skin colour against it gives the toning."""
INTERIOR_LIGHT = RenderConfig(albedo=1.0, ambient=0.45, diffuse=0.55, specular=0.12, shininess=24.0)


PART_COLORS = {
    "mouth_socket": (0.34, 0.13, 0.13),
    "eye_socket_left": (0.10, 0.06, 0.06),
    "eye_socket_right": (0.10, 0.06, 0.06),
    "gums_tongue": (0.70, 0.36, 0.38),
    "teeth": (0.93, 0.90, 0.83),
}
"""Colours of the interior parts (0-1 RGB, before lighting and toning): a dark socket, a pink tongue
and gums, off-white enamel."""
INNER_LIPS = tuple(range(60, 68))
"""iBUG 68 indices of the inner lip contour."""
MOUTH_GROW_FRAC = 0.04
"""Growth of the inner-lip polygon, as a fraction of the face size, that bounds the drawn interior."""


def mouth_opening(landmarks_cam: torch.Tensor, K: torch.Tensor, shape: tuple[int, int], face_size: float):
    """(h, w) bool: the target's inner-lip polygon (its 68-landmark vertices ``landmarks_cam``
    (1, 68, 3) projected with ``K``), grown by :data:`MOUTH_GROW_FRAC` of ``face_size``: the only
    place the interior may be drawn (elsewhere an interior triangle peeking past a silhouette is
    a rasterisation artefact, not an opened mouth)."""
    pts = project(landmarks_cam[:, list(INNER_LIPS)], K)[0].double().numpy()
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    r = max(1, int(round(MOUTH_GROW_FRAC * face_size)))
    mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    return mask > 0


def photo_tone(photo: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """(3,) per-channel gain that takes the reference skin tone to the mean colour of ``photo``
    (h, w, 3) uint8 over ``skin`` (h, w) bool: exposure in full, white balance by half (a skin's
    own hue is part of its colour), clamped to [0.35, 1.6]."""
    if skin.sum() < 20:
        return np.ones(3)
    mean = photo[skin].astype(np.float64).mean(0) / 255.0
    luma = np.array(LUMA_601)
    exposure = (mean @ luma) / (REFERENCE_SKIN @ luma)
    balance = (mean / max(mean @ luma, 1e-6)) / (REFERENCE_SKIN / (REFERENCE_SKIN @ luma))
    return np.clip(exposure * np.sqrt(balance), 0.35, 1.6)


def part_colors(model, grey: bool) -> torch.Tensor:
    """(V, 3) per-vertex :data:`PART_COLORS` of ``model`` (the full head; 0.5 elsewhere), as grey
    levels for a greyscale photo."""
    colors = torch.full((model.n_vertices, 3), 0.5, dtype=torch.float32)
    for region, rgb in PART_COLORS.items():
        a, b = model.regions[region]
        colors[a : b + 1] = torch.tensor(rgb)
    if grey:
        colors = grey_levels(colors)
    return colors


def render_interior(
    frags,
    v_target: torch.Tensor,
    faces: torch.Tensor,
    colors: torch.Tensor,
    mask: np.ndarray,
    tone: np.ndarray,
) -> np.ndarray:
    """(h, w, 3) uint8 colours of the interior at the ``mask`` pixels of a target render
    (``frags``: its fragments; ``colors``: (V, 3) per-vertex part colours in [0, 1], already grey
    for a grey photo); zero elsewhere."""
    out = np.zeros((*mask.shape, 3), np.uint8)
    if not mask.any():
        return out
    base = VertexColorShader()(frags, colors[None], faces)[0]
    shade = PhongShader(INTERIOR_LIGHT)(frags, v_target, faces, vertex_normals(v_target, faces))[0]
    rgb = (base * shade)[torch.from_numpy(mask)].double().numpy()
    depth = frags.zbuf[0, ..., 0].double().numpy()[mask]
    front = np.percentile(depth, 2)
    throat = np.clip(1.0 - (depth - front) / THROAT_CM * (1.0 - THROAT_FLOOR), THROAT_FLOOR, 1.0)
    rgb = rgb * throat[:, None] * tone
    if np.allclose(colors[:, 0].numpy(), colors[:, 1].numpy()):  # grey interior: a grey photo
        rgb = rgb.mean(-1, keepdims=True).repeat(3, -1)
    out[mask] = np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out
