"""Appearance model of the residual fit: RGB albedo on a coarse UV grid x grey second-order
spherical-harmonics shading of the vertex normals, fitted to photo pixels by Levenberg-Marquardt.

Pixel ``p`` of a render is ``sum_b bary_pb * albedo(v_pb) * (Y(n_v_pb) . lighting)`` over the
corners ``v_pb`` of its triangle (Gouraud), with ``albedo = S @ grid`` (``S``: bilinear lookup of
the grid at each vertex's UV corners, averaged) and ``Y`` the 9 SH basis functions. The problem is
bilinear in (grid, lighting); :func:`solve_appearance` solves it jointly, :class:`Appearance`
keeps it across the residual fit's re-solves.
"""

from __future__ import annotations

import numpy as np
import torch

from face3d.fit.residual_mesh import MeshOperators, cached


def sh_shading(n: torch.Tensor, lighting: torch.Tensor) -> torch.Tensor:
    """Grey second-order SH irradiance of unit normals (..., 3) (camera axes) -> (...)."""
    x, y, z = n.unbind(-1)
    basis = torch.stack([torch.ones_like(x), x, y, z, x * y, y * z, x * z, x * x - y * y, 3 * z * z - 1], -1)
    return basis @ lighting


def albedo_operator(point_uvs, point_vertex, point_count, size: tuple[int, int], mirror=None):
    """(V, G) scipy CSR: the bilinear lookup (border padding) of an (h, w) grid at each vertex's
    UV corners, averaged per vertex (G = h * w, row-major, row 0 at the top: v = 1).

    Args:
        point_uvs: (P, 2) UV corners in [0, 1], origin bottom-left; point_vertex: (P,) their
            vertex; point_count: (V,) corners per vertex (>= 1).
        mirror: optional (V,) mirror vertex of each vertex: then each row is the mean of the
            vertex's and its mirror's (a left-right symmetric albedo).
    """
    import scipy.sparse as sp

    h, w = size
    uv = point_uvs.double().numpy()
    x = np.clip(uv[:, 0] * w - 0.5, 0, w - 1)
    y = np.clip((1 - uv[:, 1]) * h - 0.5, 0, h - 1)
    x0, y0 = np.minimum(np.floor(x).astype(int), w - 2), np.minimum(np.floor(y).astype(int), h - 2)
    fx, fy = x - x0, y - y0
    cols = np.stack([y0 * w + x0, y0 * w + x0 + 1, (y0 + 1) * w + x0, (y0 + 1) * w + x0 + 1], 1)
    vals = np.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], 1)
    pv = point_vertex.numpy()
    vals = vals / point_count.numpy()[pv][:, None]
    V = len(point_count)
    S = sp.csr_matrix((vals.ravel(), (np.repeat(pv, 4), cols.ravel())), shape=(V, h * w))
    return S if mirror is None else ((S + S[mirror.numpy()]) * 0.5).tocsr()


def grid_smoothness(size: tuple[int, int]):
    """(G, G) scipy sparse ``Dx^T Dx + Dy^T Dy`` of an (h, w) grid (4-neighbour differences)."""
    import scipy.sparse as sp

    h, w = size
    dx = sp.kron(sp.eye(h), sp.diags([-1.0, 1.0], [0, 1], shape=(w - 1, w)))
    dy = sp.kron(sp.diags([-1.0, 1.0], [0, 1], shape=(h - 1, h)), sp.eye(w))
    return (dx.T @ dx + dy.T @ dy).tocsr()


def sh_basis(n: np.ndarray) -> np.ndarray:
    """(N, 9) second-order spherical-harmonics basis (unnormalised) of (N, 3) unit normals:
    1, x, y, z, xy, yz, xz, x^2 - y^2, 3 z^2 - 1."""
    x, y, z = np.ascontiguousarray(n.T)  # built row by row: 3x faster than stacking columns
    out = np.empty((9, len(n)), np.result_type(n, np.float64))
    out[0], out[1], out[2], out[3] = 1.0, x, y, z
    out[4], out[5], out[6] = x * y, y * z, x * z
    out[7], out[8] = x**2 - y**2, 3 * z**2 - 1
    return np.ascontiguousarray(out.T)


def solve_appearance(
    photo, weight, tri, bary, vertex_normals, S, smooth, grid, lighting, iterations, smoothness
):
    """Gauss-Newton (Levenberg-Marquardt damped) on the albedo grid and the lighting jointly at
    fixed geometry (the problem is bilinear; the albedo block is eliminated by a Schur complement).

    Args:
        photo: (M, 3) photo colours of the M covered pixels; weight: (M,) photometric weights.
        tri, bary: (M, 3) covering triangle corners and barycentrics; vertex_normals: (V, 3).
        S: (V, G) from :func:`albedo_operator`; smooth: (G, G) from :func:`grid_smoothness`.
        grid: (G, 3) initial albedo cells; lighting: (9,) initial SH coefficients (both None: start
            from a constant albedo, the mean colour, and its least-squares lighting).
    Returns:
        (grid (G, 3), lighting (9,)) numpy float64.
    """
    import scipy.sparse as sp

    T = torch.from_numpy  # dense algebra in torch (its thread setting), sparse products in scipy
    y, wt = photo.double().numpy(), weight.double().numpy()
    M, (V, G) = len(y), S.shape
    B = sp.csr_matrix(
        (bary.detach().double().numpy().ravel(), (np.repeat(np.arange(M), 3), tri.numpy().ravel())),
        shape=(M, V),
    )
    Y = sh_basis(vertex_normals.detach().double().numpy())  # (V, 9)
    W = sp.diags(wt / max(wt.sum(), 1.0))
    reg = (smoothness * smooth + 1e-3 * sp.eye(G)) / G
    if lighting is None:  # start: constant albedo (the weighted mean colour), lighting by least squares
        grid = np.tile((wt @ y) / max(wt.sum(), 1e-9), (G, 1))
        L = np.concatenate([B @ (grid[0, c] * Y) for c in range(3)])
        lw = np.tile(W.diagonal(), 3)[:, None]
        lighting = torch.linalg.solve(
            T(L.T @ (L * lw)) + 1e-9 * torch.eye(9), T((L * lw).T @ y.T.ravel())
        ).numpy()
    g0 = grid.copy()

    def cost(g, l):
        r = y - B @ ((S @ g) * (Y @ l)[:, None])
        return float((W @ r * r).sum() + (g * (reg @ g)).sum() + 1e-3 / G * ((g - g0) ** 2).sum()), r

    mu, (c0, r) = 1e-3, cost(grid, lighting)
    for _ in range(iterations):
        A = B @ sp.diags(Y @ lighting) @ S  # (M, G): d pixel / d albedo cell
        Ls = [B @ ((S @ grid[:, c : c + 1]) * Y) for c in range(3)]  # (M, 9) each: d pixel / d light
        AtW = (A.T @ W).tocsr()
        P0 = T((AtW @ A + reg).toarray())
        bg = T(AtW @ r - reg @ grid - 1e-3 / G * (grid - g0))  # (G, 3)
        Hgl = T(np.concatenate([AtW @ L for L in Ls], 1))  # (G, 27)
        WL = [T(W @ L) for L in Ls]
        Hll = sum(T(L).T @ wl for L, wl in zip(Ls, WL, strict=True))
        bl = sum(wl.T @ T(r[:, c]) for c, wl in enumerate(WL))
        for _try in range(6):  # Levenberg-Marquardt: raise the damping until the cost drops
            P = P0.clone()
            P.diagonal().mul_(1.0 + mu).add_(1e-12)
            X = torch.cholesky_solve(torch.cat([Hgl, bg], 1), torch.linalg.cholesky(P))  # P^-1 [Hgl | bg]
            Sll, sl = Hll.clone(), bl.clone()
            Sll.diagonal().mul_(1.0 + mu).add_(1e-12)
            for c in range(3):
                Sll -= Hgl[:, 9 * c : 9 * c + 9].T @ X[:, 9 * c : 9 * c + 9]
                sl -= Hgl[:, 9 * c : 9 * c + 9].T @ X[:, 27 + c]
            dl = torch.linalg.solve(Sll, sl)
            dg = X[:, 27:] - torch.stack([X[:, 9 * c : 9 * c + 9] @ dl for c in range(3)], 1)
            c1, r1 = cost(grid + dg.numpy(), lighting + dl.numpy())
            if c1 < c0:
                grid, lighting, c0, r, mu = grid + dg.numpy(), lighting + dl.numpy(), c1, r1, mu / 4
                break
            mu *= 8
    return grid, lighting


class Appearance:
    """Albedo (an RGB grid over the UV atlas) and grey SH lighting of the residual fit, re-solved by
    least squares as the geometry moves, or a ``known`` (albedo (V, 3), lighting (9,)) kept fixed.
    ``config``: a :class:`face3d.fit.residual.ResidualConfig` (albedo grid, its smoothness prior
    and the annealing of that prior over the steps); ``data_weight``: the weight of the data term
    against that prior (below 1 on a noisy photo: a smoother albedo)."""

    def __init__(self, model, ops: MeshOperators, config, known=None, data_weight: float = 1.0):
        if not data_weight > 0:
            raise ValueError(f"data_weight must be > 0, got {data_weight}")
        self.config, self.known, self.V = config, known, model.n_vertices
        self.data_weight = data_weight
        self.S = cached(
            model,
            ("albedo", config.albedo_size, config.symmetric_albedo),
            lambda: albedo_operator(
                ops.point_uvs,
                ops.point_vertex,
                ops.point_count,
                config.albedo_size,
                ops.mirror if config.symmetric_albedo else None,
            ),
        )
        self.smooth = cached(
            model, ("smooth", config.albedo_size), lambda: grid_smoothness(config.albedo_size)
        )
        self.grid = self.lighting = self.albedo = None  # first solve: from the photo's mean colour

    def solve(self, y, tri, bary, wpix, nv, iterations: int, step: int) -> None:
        """Re-solve at this geometry (warm-started), the albedo prior annealed as of ``step``:
        (M, 3) photo colours, (M, 3) triangle corners and barycentrics, (M,) weights of the M
        covered pixels and (V, 3) vertex normals."""
        config = self.config
        if self.known is not None:
            self.lighting = self.known[1].detach().double().cpu().numpy()
            self.albedo = self.known[0].detach().float().cpu().reshape(self.V, 3)
            return
        a = min(1.0, step / max(config.anneal * config.steps, 1e-9))  # 0 -> 1 over the annealing
        sm = config.albedo_smoothness_start ** (1 - a) * config.albedo_smoothness**a
        args = (self.S, self.smooth, self.grid, self.lighting, iterations, sm / self.data_weight)
        self.grid, self.lighting = solve_appearance(y, wpix, tri, bary, nv, *args)
        self.albedo = torch.from_numpy(self.S @ self.grid).to(torch.float32)
