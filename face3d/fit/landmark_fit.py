"""Fit identity, expression, pose and focal length to 68 2D landmarks (batched, torch).

Coarse to fine: a PnP initialisation of the template, a rigid Levenberg-Marquardt stage on
the inner 51 points, then all unknowns with robust (Huber, via IRLS) landmark residuals,
a Gaussian identity prior, a sparsity prior on the [0, 1] expression weights (projected
steps) and silhouette-aware jaw correspondences re-selected every few iterations.

Only the vertices the residuals touch (landmarks, jaw candidates and their one-ring) are
evaluated, so one iteration costs well under a millisecond per face.
"""

from __future__ import annotations

import math
import weakref

import numpy as np
import torch

from face3d.camera import (
    FLIP,
    axis_angle_to_matrix,
    camera_rotation,
    euler_degrees,
    matrix_to_axis_angle,
    project,
    to_camera,
)
from face3d.fit.adam import Adam
from face3d.fit.config import FitConfig
from face3d.fit.result import FitResult
from face3d.fit.silhouette import Correspondences, outline_pools, select_outline
from face3d.render.shading import vertex_normals

INNER = tuple(range(17, 68))


class SubModel:
    """The rows of the model needed by landmark fitting, with local vertex indices."""

    def __init__(self, model, n_identity: int, dtype=torch.float64):
        chains = {"right": model.jaw_contour_right, "left": model.jaw_contour_left}
        pools = outline_pools(model.template, chains)
        pool_ids = torch.cat(list(pools.values()))
        touches = torch.isin(model.faces, pool_ids).any(1)
        ring_faces = model.faces[touches]
        ids = torch.unique(torch.cat([model.landmark_ids, pool_ids, ring_faces.reshape(-1)]))
        local = torch.full((model.n_vertices,), -1, dtype=torch.int64)
        local[ids] = torch.arange(len(ids))
        V = model.n_vertices
        self.template = model.template[ids].to(dtype)
        idb = model.identity_basis[:n_identity].reshape(-1, V, 3)[:, ids].to(dtype)
        exb = model.expression_basis.reshape(-1, V, 3)[:, ids].to(dtype)
        self.identity = idb.reshape(n_identity, -1)
        self.expression = exb.reshape(exb.shape[0], -1)
        self.faces = local[ring_faces]
        self.landmarks = local[model.landmark_ids]
        self.pools = {k: local[v] for k, v in pools.items()}
        self.n_identity = n_identity
        self.n_expression = exb.shape[0]
        names = list(model.expression_names)
        pairs = [
            (i, names.index(n[:-2] + "_R"))
            for i, n in enumerate(names)
            if n.endswith("_L") and n[:-2] + "_R" in names
        ]
        self.symmetry = torch.zeros(len(pairs), self.n_expression, dtype=dtype)  # (pairs, K_exp): L - R
        for row, (li, ri) in enumerate(pairs):
            self.symmetry[row, li], self.symmetry[row, ri] = 1.0, -1.0

    def vertices(self, identity: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        """(..., K_id), (..., K_exp) -> (..., Vs, 3)."""
        flat = self.template.reshape(-1) + identity @ self.identity + expression @ self.expression
        return flat.reshape(*flat.shape[:-1], -1, 3)

    def normals(self, verts: torch.Tensor) -> torch.Tensor:
        """(B, Vs, 3) -> (B, Vs, 3) normals, exact at the outline candidates (full one-ring)."""
        return vertex_normals(verts, self.faces)


_SUB_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def sub_model(model, n_identity: int, dtype) -> SubModel:
    """The landmark rows of ``model``, computed once per model and setting (weakly cached)."""
    per_model = _SUB_CACHE.setdefault(model, {})
    key = (n_identity, dtype, model.template.device, model.template.data_ptr())
    if key not in per_model:
        per_model.clear()
        per_model[key] = SubModel(model, n_identity, dtype)
    return per_model[key]


def _skew(v: torch.Tensor) -> torch.Tensor:
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(*v.shape, 3)


class FitState:
    """The unknowns of a batch: rotation (as a matrix, updated multiplicatively), translation,
    log focal length, identity and expression weights."""

    def __init__(self, R_pose, t, logf, ident, expr):
        self.R_pose, self.t, self.logf, self.ident, self.expr = R_pose, t, logf, ident, expr

    def step(self, d: torch.Tensor, K: int) -> FitState:
        R = axis_angle_to_matrix(d[:, 0:3]) @ self.R_pose
        expr = (self.expr + d[:, 7 + K :]).clamp(0.0, 1.0)
        return FitState(R, self.t + d[:, 3:6], self.logf + d[:, 6], self.ident + d[:, 7 : 7 + K], expr)

    def select(self, keep: torch.Tensor, other: FitState) -> FitState:
        def pick(a, b):
            return torch.where(keep.reshape(-1, *([1] * (a.dim() - 1))), a, b)

        keys = ("R_pose", "t", "logf", "ident", "expr")
        return FitState(*(pick(getattr(self, k), getattr(other, k)) for k in keys))


def _pnp_init(template_lm: np.ndarray, targets: np.ndarray, f: float, cx: float, cy: float):
    """Rigid pose of the template from 2D points (OpenCV EPnP then iterative refinement)."""
    import cv2

    K = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1]], dtype=np.float64)
    obj = template_lm[list(INNER)].astype(np.float64)
    img = targets[list(INNER)].astype(np.float64)
    ok, rvec, tvec = cv2.solvePnP(obj, img, K, None, flags=cv2.SOLVEPNP_EPNP)
    if ok:
        ok, rvec, tvec = cv2.solvePnP(obj, img, K, None, rvec, tvec, True, flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok or tvec[2, 0] <= 0:
        size = float(np.sqrt(np.prod(img.max(0) - img.min(0))))
        rvec = np.array([[math.pi], [0.0], [0.0]])
        tvec = np.array([[0.0], [0.0], [f * 10.0 / max(size, 1.0)]])
    R_cam = cv2.Rodrigues(rvec)[0]
    return np.diag(FLIP) @ R_cam, tvec[:, 0]


class LandmarkProblem:
    """Residuals and their analytic Jacobian for a batch (float64, CPU): the weighted landmark
    residuals (in % of the face size) and the focal, identity, expression and symmetry priors."""

    def __init__(self, sub: SubModel, targets, lw, scale, cx, cy, logf0, config: FitConfig, offset=None):
        self.sub, self.tg, self.lw, self.scale = sub, targets, lw, scale
        # (B, 68, 3) landmark-convention offsets, model space
        self.offset = torch.zeros(*targets.shape[:2], 3, dtype=targets.dtype) if offset is None else offset
        self.c = torch.tensor([cx, cy], dtype=targets.dtype)
        self.logf0, self.cfg = logf0, config
        self.flip = torch.tensor(FLIP, dtype=targets.dtype)
        self.set_correspondences(Correspondences.anatomical(sub.landmarks, targets.shape[0]))

    def set_correspondences(self, corr: Correspondences) -> None:
        """Use ``corr``'s model points (the silhouette-aware jaw) as the 68 fitted points."""
        s, w = self.sub, corr.w.to(self.tg.dtype)[..., None]
        V = s.template.shape[0]
        tmpl = s.template
        idb = s.identity.reshape(-1, V, 3).permute(1, 2, 0)  # (Vs, 3, K)
        exb = s.expression.reshape(-1, V, 3).permute(1, 2, 0)
        self.corr = corr
        self.T = w * tmpl[corr.a] + (1 - w) * tmpl[corr.b] + self.offset  # (B, 68, 3)
        w4 = w[..., None]
        self.Bid = w4 * idb[corr.a] + (1 - w4) * idb[corr.b]  # (B, 68, 3, K)
        self.Bex = w4 * exb[corr.a] + (1 - w4) * exb[corr.b]  # (B, 68, 3, E)
        self.Blin = torch.cat([self.Bid, self.Bex], -1)  # (B, 68, 3, K + E)

    def points(self, st: FitState) -> torch.Tensor:
        """(B, 68, 3) model-space fitted points (with the landmark-convention offset)."""
        B = self.T.shape[0]
        lin = self.Blin.reshape(B, -1, self.Blin.shape[-1]) @ torch.cat([st.ident, st.expr], 1)[..., None]
        return self.T + lin.reshape(self.T.shape)

    def project(self, st: FitState):
        """The fitted points rotated (model axes), in the camera, and projected to pixels (B, 68, 2)."""
        Q = self.points(st) @ st.R_pose.transpose(1, 2)  # rotated, model axes
        cam = Q * self.flip + st.t[:, None]
        f = st.logf.exp()[:, None, None]
        uv = cam[..., :2] / cam[..., 2:3] * f + self.c
        return Q, cam, uv

    def residuals(self, st: FitState, robust, active, jacobian: bool):
        """(B, R) residuals, with ``robust`` (B, 68) IRLS and ``active`` landmark weights, and their
        (B, R, P) Jacobian when asked (else None)."""
        cfg = self.cfg
        B = st.t.shape[0]
        Q, cam, uv = self.project(st)
        wgt = (self.lw * robust * active / self.scale[:, None])[..., None]  # (B, 68, 1)
        r_lm = (uv - self.tg) * wgt
        sq_e = math.sqrt(cfg.expression_prior)
        r = torch.cat(
            [
                r_lm.reshape(B, -1),
                (st.logf - self.logf0)[:, None] * math.sqrt(cfg.focal_prior) * 10,
                st.ident * math.sqrt(cfg.identity_prior),
                (st.expr + 1e-4).sqrt() * sq_e,
                st.expr * math.sqrt(cfg.expression_l2),
                st.expr @ self.sub.symmetry.T * math.sqrt(cfg.symmetry_prior),
            ],
            1,
        )
        if not jacobian:
            return r, None
        f = st.logf.exp()[:, None, None]
        z = cam[..., 2:3]
        o = torch.zeros_like(z)
        duv = torch.cat([f / z, o, -f * cam[..., 0:1] / z**2, o, f / z, -f * cam[..., 1:2] / z**2], -1)
        duv = duv.reshape(*cam.shape[:2], 2, 3) * wgt[..., None]  # (B, 68, 2, 3)
        flip = self.flip[:, None]
        d_rot = -flip * _skew(Q)  # (B, 68, 3, 3)
        d_t = torch.eye(3, dtype=Q.dtype).expand_as(d_rot)
        B_, L, _, KE = self.Blin.shape
        RB = st.R_pose @ self.Blin.permute(0, 2, 1, 3).reshape(B_, 3, L * KE)
        d_lin = flip * RB.reshape(B_, 3, L, KE).permute(0, 2, 1, 3)  # (B, 68, 3, K + E)
        J_cam = torch.cat([d_rot, d_t], -1)
        J_lm = torch.cat([duv @ J_cam, ((uv - self.c) * wgt)[..., None], duv @ d_lin], -1)
        K, E = self.Bid.shape[-1], self.Bex.shape[-1]
        P = 7 + K + E
        J = torch.zeros(B, r.shape[1], P, dtype=Q.dtype)
        J[:, :136] = J_lm.reshape(B, 136, P)
        J[:, 136, 6] = math.sqrt(cfg.focal_prior) * 10
        J[:, 137 : 137 + K, 7 : 7 + K] = torch.eye(K, dtype=Q.dtype) * math.sqrt(cfg.identity_prior)
        rows = 137 + K
        J[:, rows : rows + E, 7 + K :] = torch.diag_embed(sq_e * 0.5 / (st.expr + 1e-4).sqrt())
        J[:, rows + E : rows + 2 * E, 7 + K :] = torch.eye(E, dtype=Q.dtype) * math.sqrt(cfg.expression_l2)
        J[:, rows + 2 * E :, 7 + K :] = self.sub.symmetry * math.sqrt(cfg.symmetry_prior)
        return r, J


def _lm(problem: LandmarkProblem, st: FitState, iters: int, free: torch.Tensor, active, reselect=None):
    """Levenberg-Marquardt with IRLS Huber weights; ``free`` (P,) masks the unknowns."""
    cfg = problem.cfg
    B = st.t.shape[0]
    K = st.ident.shape[1]
    lam = torch.full((B,), 1e-3, dtype=st.t.dtype)
    robust = torch.ones(B, 68, dtype=st.t.dtype)
    stable = reselect is None  # correspondences unchanged by the last re-selection
    for it in range(iters):
        if reselect is not None and it % cfg.silhouette_every == 0:
            corr = reselect(st, problem.corr)
            stable = it > 0 and bool((corr.a == problem.corr.a).all() and (corr.b == problem.corr.b).all())
            problem.set_correspondences(corr)
        _, _, uv = problem.project(st)
        e = (uv - problem.tg).norm(dim=-1) / problem.scale[:, None]
        robust = torch.where(e > cfg.huber_px, (cfg.huber_px / e.clamp(min=1e-9)).sqrt(), 1.0)
        r, J = problem.residuals(st, robust, active, True)
        J = J * free
        JtJ = J.transpose(1, 2) @ J
        g = J.transpose(1, 2) @ r[..., None]
        diag = torch.diagonal(JtJ, dim1=1, dim2=2)
        A = JtJ + torch.diag_embed(lam[:, None] * (diag + 1e-6) + (1 - free))
        d = -torch.linalg.solve(A, g)[..., 0] * free
        new = st.step(d, K)
        r_new, _ = problem.residuals(new, robust, active, False)
        cost, cost_new = (r**2).sum(1), (r_new**2).sum(1)
        better = cost_new < cost
        st = new.select(better, st)
        lam = torch.where(better, lam * 0.3, lam * 10).clamp(1e-9, 1e9)
        # converged: every face's accepted step gained less than tol (relative), and the last
        # silhouette re-selection (if any) left the correspondences as they were
        gain = torch.where(better, (cost - cost_new) / cost.clamp(min=1e-12), torch.zeros_like(cost))
        if stable and bool((gain < cfg.tolerance).all()) and bool(better.all()):
            break
    return st


def landmark_weights(config: FitConfig, batch: int, confidence: torch.Tensor | None = None) -> torch.Tensor:
    """(B, 68) float64 weights of the landmark residuals: ``confidence`` (B, 68) or ones, the 17
    jaw points times ``config.jaw_weight``."""
    if confidence is None:
        lw = torch.ones(batch, 68, dtype=torch.float64)
    else:
        lw = confidence.detach().to(torch.float64).cpu().clone()
    lw[:, :17] *= config.jaw_weight
    return lw


def fit_landmarks(
    model,
    targets: torch.Tensor,
    image_size: tuple[int, int],
    config: FitConfig = FitConfig(),
    weights: torch.Tensor | None = None,
    landmark_offset: torch.Tensor | None = None,
) -> FitResult:
    """Fit the model to 2D landmarks.

    Args:
        model: :class:`face3d.model.MorphableModel`.
        targets: (B, 68, 2) landmarks in pixels (iBUG order, OpenCV pixel convention).
        image_size: (H, W) of the image.
        config: :class:`FitConfig`.
        weights: optional (B, 68) per-landmark confidence in [0, 1].
        landmark_offset: optional (68, 3) or (B, 68, 3) model-space offset, cm, of the targets'
            landmark convention (the regressor's :attr:`RegressorOutput.landmark_offset`): the
            fitted points are the landmark vertices plus it. Anatomical landmarks only, so it
            needs ``config.silhouette`` off.
    Returns:
        :class:`FitResult`; ``landmarks_fitted`` includes the offset.
    """
    if targets.dim() != 3 or targets.shape[1:] != (68, 2):
        raise ValueError(f"targets: expected (B, 68, 2), got {tuple(targets.shape)}")
    if landmark_offset is not None and config.silhouette:
        raise ValueError("landmark_offset is for anatomical landmarks: use FitConfig(silhouette=False)")
    dtype = torch.float64
    B = targets.shape[0]
    H, W = image_size
    K = min(config.n_identity, model.n_identity)
    sub = sub_model(model, K, dtype)
    tg = targets.detach().to(dtype).cpu()
    f0 = 0.5 * max(H, W) / math.tan(math.radians(config.fov_deg) / 2)
    cx, cy = (W - 1) / 2, (H - 1) / 2
    lw = landmark_weights(config, B, weights)
    scale = (tg.amax(1) - tg.amin(1)).prod(-1).clamp(min=1.0).sqrt() / 100.0  # residuals in % of face size
    offset = torch.zeros(B, 68, 3, dtype=dtype)
    if landmark_offset is not None:
        lo = torch.as_tensor(landmark_offset, dtype=dtype).cpu()
        if lo.shape not in ((68, 3), (B, 68, 3)):
            raise ValueError(f"landmark_offset: expected (68, 3) or (B, 68, 3), got {tuple(lo.shape)}")
        offset = offset + lo

    tmpl_lm = sub.template[sub.landmarks]
    Rs, ts = [], []
    for i in range(B):
        R_pose, t = _pnp_init((tmpl_lm + offset[i]).numpy(), tg[i].numpy(), f0, cx, cy)
        Rs.append(torch.from_numpy(R_pose))
        ts.append(torch.from_numpy(t))
    st = FitState(
        torch.stack(Rs).to(dtype),
        torch.stack(ts).to(dtype),
        torch.full((B,), math.log(f0), dtype=dtype),
        torch.zeros(B, K, dtype=dtype),
        torch.zeros(B, sub.n_expression, dtype=dtype),
    )
    problem = LandmarkProblem(sub, tg, lw, scale, cx, cy, math.log(f0), config, offset)

    def reselect(st: FitState, corr: Correspondences) -> Correspondences:
        verts = sub.vertices(st.ident, st.expr)
        R = camera_rotation(st.R_pose)
        cam = to_camera(verts, R, st.t)
        f = st.logf.exp()
        intr = torch.stack([f, f, torch.full_like(f, cx), torch.full_like(f, cy)], -1)
        return select_outline(
            corr,
            cam,
            sub.normals(cam),
            project(cam, intr),
            tg,
            sub.landmarks,
            sub.pools,
            euler_degrees(R)[:, 0],
            config.silhouette_min_yaw,
        )

    P = 7 + K + sub.n_expression
    inner = torch.zeros(68, dtype=dtype)
    inner[list(INNER)] = 1.0
    rigid = torch.zeros(P, dtype=dtype)
    rigid[:6] = 1.0
    full = torch.ones(P, dtype=dtype)
    if config.fixed_fov:
        full[6] = 0.0
    st = _lm(problem, st, config.rigid_iterations, rigid, inner[None])
    if config.solver == "lm":
        st = _lm(problem, st, config.iterations, full, 1.0, reselect if config.silhouette else None)
    else:
        st = _adam(problem, st, config, full, reselect if config.silhouette else None)
    return fit_result(model, st, problem, (H, W), cx, cy, targets)


def _adam(problem: LandmarkProblem, st: FitState, config: FitConfig, free, reselect):
    """First-order alternative to LM on the same residuals, kept to measure LM against."""
    K = st.ident.shape[1]
    p = torch.cat([matrix_to_axis_angle(st.R_pose), st.t, st.logf[:, None], st.ident, st.expr], 1)
    p = p.clone().requires_grad_(True)
    opt = Adam([p], lr=0.01)
    robust = torch.ones(p.shape[0], 68, dtype=p.dtype)
    for it in range(config.adam_steps):
        cur = FitState(axis_angle_to_matrix(p[:, :3]), p[:, 3:6], p[:, 6], p[:, 7 : 7 + K], p[:, 7 + K :])
        if reselect is not None and it % (config.silhouette_every * 10) == 0:
            with torch.no_grad():
                problem.set_correspondences(reselect(cur, problem.corr))
        r, _ = problem.residuals(cur, robust, 1.0, False)
        opt.zero_grad()
        (r**2).sum().backward()
        p.grad *= free
        opt.step()
        with torch.no_grad():
            p[:, 7 + K :] = p[:, 7 + K :].clamp(0, 1)
    p = p.detach()
    return FitState(axis_angle_to_matrix(p[:, :3]), p[:, 3:6], p[:, 6], p[:, 7 : 7 + K], p[:, 7 + K :])


def fit_result(model, st: FitState, problem: LandmarkProblem, image_size, cx, cy, targets) -> FitResult:
    """The :class:`FitResult` of the state ``st`` (camera rotation, intrinsics with principal point
    ``cx, cy``, fitted landmarks and their mean error to the problem's targets) on ``targets``' device."""
    sub = problem.sub
    R = camera_rotation(st.R_pose)
    f = st.logf.exp()
    intr = torch.stack([f, f, torch.full_like(f, cx), torch.full_like(f, cy)], -1)
    lm3d = sub.vertices(st.ident, st.expr)[:, sub.landmarks] + problem.offset
    fitted = project(to_camera(lm3d, R, st.t), intr)
    _, _, matched = problem.project(st)
    err = (matched - problem.tg).norm(dim=-1).mean(-1)
    dev, dt = targets.device, model.template.dtype
    return FitResult(
        rotation=R.to(dev, dt),
        translation=st.t.to(dev, dt),
        intrinsics=intr.to(dev, dt),
        identity=st.ident.to(dev, dt),
        expression=st.expr.to(dev, dt),
        landmarks_target=targets.detach().to(dt),
        landmarks_fitted=fitted.to(dev, dt),
        error_px=err.to(dev, dt),
        image_size=tuple(image_size),
    )
