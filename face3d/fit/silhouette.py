"""Silhouette-aware jaw correspondences for large yaw.

The 68-point detector puts the jaw points on the *visible* outline. On the jaw side turned
away from the camera that outline is not the anatomical jaw: every few iterations each
detected jaw point of that side is matched to the nearest vertex of the current projected
outline (``|n . view| < 0.25``), drawn from the extended jawline candidates (NOTES.md) and the
cheek between chin and eyes. Vertices facing away from the camera are never candidates, so a
visible-outline detection is never matched to an occluded vertex.

A correspondence is a pair of vertices and a blend weight: ``w * V[a] + (1 - w) * V[b]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from face3d.ict import FACE_LAST

RIGHT_JAW = tuple(range(0, 8))  # iBUG jaw points on the subject's right (x < 0 in model space)
LEFT_JAW = tuple(range(9, 17))


@dataclass(frozen=True)
class Correspondences:
    """Per face and landmark: vertices ``a``, ``b`` (B, 68) int64 and blend ``w`` (B, 68)."""

    a: torch.Tensor
    b: torch.Tensor
    w: torch.Tensor

    @classmethod
    def anatomical(cls, landmark_ids: torch.Tensor, batch: int) -> Correspondences:
        ids = landmark_ids[None].expand(batch, -1).clone()
        return cls(ids, ids.clone(), torch.ones(ids.shape, dtype=torch.float32, device=ids.device))

    def points(self, vertices: torch.Tensor) -> torch.Tensor:
        """(B, V, 3) -> (B, 68, 3)."""
        b = torch.arange(vertices.shape[0], device=vertices.device)[:, None]
        w = self.w.to(vertices.dtype)[..., None]
        return w * vertices[b, self.a] + (1 - w) * vertices[b, self.b]


def outline_pools(
    template: torch.Tensor, chains: dict[str, torch.Tensor], face_last: int = FACE_LAST
) -> dict[str, torch.Tensor]:
    """Candidate outline vertices per jaw side: the extended jawline plus the face-region
    vertices of that cheek between the chin and the eyes (model space, cm)."""
    face = template[: face_last + 1]
    ids = torch.arange(face.shape[0])
    x, y, z = face.unbind(-1)
    band = (y < 2.0) & (y > -9.0) & (z > -2.0)
    pools = {}
    for side, sign in (("right", -1.0), ("left", 1.0)):
        mask = band & (x * sign > 1.5)
        pools[side] = torch.unique(torch.cat([ids[mask], chains[side]]))
    return pools


def select_outline(
    corr: Correspondences,
    vertices_cam: torch.Tensor,
    normals_cam: torch.Tensor,
    pixels: torch.Tensor,
    targets: torch.Tensor,
    landmark_ids: torch.Tensor,
    pools: dict[str, torch.Tensor],
    yaw_deg: torch.Tensor,
    min_yaw: float,
    max_abs_facing: float = 0.25,
) -> Correspondences:
    """Re-select jaw correspondences on the side turned away from the camera.

    Args:
        corr: current correspondences (B, 68).
        vertices_cam: (B, V, 3) camera-space vertices (only pool vertices are read).
        normals_cam: (B, V, 3) unit normals (idem).
        pixels: (B, V, 2) projected vertices (idem).
        targets: (B, 68, 2) detected landmarks.
        landmark_ids: (68,) anatomical ids.
        pools: ``{"right": ids, "left": ids}`` outline candidates (:func:`outline_pools`).
        yaw_deg: (B,) current yaw; positive turns the subject's left side (+x) away.
        min_yaw: below this |yaw| the anatomical ids are kept on both sides.
        max_abs_facing: a candidate is on the outline while ``|n . view_dir|`` is below this;
            vertices facing away from the camera are never used.
    """
    a, b, w = corr.a.clone(), corr.b.clone(), corr.w.clone()
    a[:, :17] = landmark_ids[:17]
    b[:, :17] = landmark_ids[:17]
    w[:, :17] = 1.0
    for i in range(targets.shape[0]):
        if abs(float(yaw_deg[i])) < min_yaw:
            continue
        side, points = ("left", LEFT_JAW) if yaw_deg[i] > 0 else ("right", RIGHT_JAW)
        pool = pools[side]
        v = vertices_cam[i, pool]
        facing = (normals_cam[i, pool] * v).sum(-1) / v.norm(dim=-1)
        on_outline = facing.abs() < max_abs_facing
        if not bool(on_outline.any()):
            continue
        cand = pool[on_outline]
        d = torch.cdist(targets[i, list(points)].to(pixels.dtype), pixels[i, cand])  # (8, N)
        pick = cand[d.argmin(1)]
        a[i, list(points)] = pick
        b[i, list(points)] = pick
        w[i, list(points)] = 1.0
    return Correspondences(a, b, w)
