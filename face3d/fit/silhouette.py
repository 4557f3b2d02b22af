"""Silhouette-aware jaw correspondences for large yaw.

The 68-point detector puts the jaw points on the *visible* outline. On the jaw side turned
away from the camera that outline is not the anatomical jaw: each detected jaw point is
matched to the nearest point of the current projected outline, drawn from the extended
jawline candidates (NOTES.md), densified along the chain. Candidates facing away from the
camera are never used, so a visible-outline detection is never matched to an occluded vertex.

A correspondence is a pair of vertices and a blend weight: ``w * V[a] + (1 - w) * V[b]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

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


def chain_samples(chain: torch.Tensor, steps: int = 4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Densify a vertex chain: (N,) ids -> (a, b, w) of (N - 1) * steps + 1 points along it."""
    a, b, w = [], [], []
    for i in range(len(chain) - 1):
        for s in range(steps):
            a.append(chain[i])
            b.append(chain[i + 1])
            w.append(1.0 - s / steps)
    a.append(chain[-1])
    b.append(chain[-1])
    w.append(1.0)
    return torch.stack(a), torch.stack(b), torch.tensor(w)


def select_outline(
    corr: Correspondences,
    vertices_cam: torch.Tensor,
    normals_cam: torch.Tensor,
    pixels: torch.Tensor,
    targets: torch.Tensor,
    landmark_ids: torch.Tensor,
    chains: dict[str, torch.Tensor],
    yaw_deg: torch.Tensor,
    min_yaw: float,
    max_facing: float = 0.2,
) -> Correspondences:
    """Re-select jaw correspondences on the side turned away from the camera.

    Args:
        corr: current correspondences (B, 68).
        vertices_cam: (B, V, 3) camera-space vertices (only chain vertices are read).
        normals_cam: (B, V, 3) unit normals (idem).
        pixels: (B, V, 2) projected vertices (idem).
        targets: (B, 68, 2) detected landmarks.
        landmark_ids: (68,) anatomical ids.
        chains: ``{"right": ids, "left": ids}`` candidate chains (ear to chin).
        yaw_deg: (B,) current yaw; positive turns the subject's left side (+x) away.
        min_yaw: below this |yaw| the anatomical ids are kept on both sides.
        max_facing: a candidate is usable while ``n . view_dir <= max_facing`` (outline or facing).
    """
    a, b, w = corr.a.clone(), corr.b.clone(), corr.w.clone()
    B = targets.shape[0]
    for i in range(B):
        a[i, :17] = landmark_ids[:17]
        b[i, :17] = landmark_ids[:17]
        w[i, :17] = 1.0
        if abs(float(yaw_deg[i])) < min_yaw:
            continue
        side, points = ("left", LEFT_JAW) if yaw_deg[i] > 0 else ("right", RIGHT_JAW)
        chain = chains[side]
        # outline-capable candidates: not facing away from the camera
        view = vertices_cam[i, chain] / vertices_cam[i, chain].norm(dim=-1, keepdim=True)
        ok = (normals_cam[i, chain] * view).sum(-1) <= max_facing
        sa, sb, sw = chain_samples(chain)
        pos = {int(v): k for k, v in enumerate(chain.tolist())}
        usable = torch.tensor(
            [bool(ok[pos[int(x)]]) and bool(ok[pos[int(y)]]) for x, y in zip(sa, sb, strict=True)]
        )
        if not usable.any():
            continue
        sa, sb, sw = sa[usable], sb[usable], sw[usable].to(pixels.dtype)
        proj = sw[:, None] * pixels[i, sa] + (1 - sw[:, None]) * pixels[i, sb]  # (S, 2)
        for p in points:
            j = int(((proj - targets[i, p]) ** 2).sum(-1).argmin())
            a[i, p], b[i, p], w[i, p] = sa[j], sb[j], float(sw[j])
    return Correspondences(a, b, w)
