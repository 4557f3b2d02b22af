"""Photometric refinement of a landmark fit (``face3d fit --photometric``).

The fitted mesh is rendered in a crop around the face as *albedo x shading* (the appearance
model of :mod:`face3d.fit.appearance`: RGB albedo on a coarse UV grid, grey second-order SH
lighting of the vertex normals, solved by Levenberg-Marquardt and re-solved every few steps), and
pose, expression and identity are refined by Adam on

    E = landmark * E_lm + photometric * E_ph

* ``E_lm`` is the landmark fitter's own objective (:mod:`face3d.fit.landmark_fit`): Huber (IRLS)
  weighted 68-point residuals in % of the face size with its silhouette-aware jaw
  correspondences (selected once at the input fit), plus its identity, expression and symmetry
  priors;
* ``E_ph`` is the mean Huber RGB error between render and photo over the face region's pixels
  that face the camera at the input fit, away from the render's outline and depth jumps (mask
  eroded by ``erode_px``). Its geometry gradient flows through where pixels land on the mesh
  (barycentrics of the differentiable rasteriser) and through the shading normals.

Re-rendering the photo's own texture would reproduce the photo at any geometry (no signal), so
the texture is the low-frequency appearance model. The result is never catastrophically worse
than the input: the best iterate is kept, and the input fit is returned unless its combined loss
(both evaluated with the appearance re-solved at that geometry) went down.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from face3d.camera import axis_angle_to_matrix, camera_to_pose, euler_degrees, project, to_camera
from face3d.fit.adam import Adam
from face3d.fit.appearance import albedo_operator, grid_smoothness, sh_shading, solve_appearance
from face3d.fit.config import FitConfig
from face3d.fit.landmark_fit import FitState, LandmarkProblem, fit_result, landmark_weights, sub_model
from face3d.fit.residual import ResidualConfig, mesh_operators
from face3d.fit.residual_mesh import cached, in_photo, interpolate_at_pixels, to_crop, working_crop
from face3d.fit.result import FitResult
from face3d.fit.silhouette import Correspondences, select_outline
from face3d.render import RenderConfig, rasterize, vertex_normals

REFINABLE = ("pose", "expression", "identity")


@dataclass(frozen=True)
class PhotometricConfig:
    """Settings of :func:`refine_photometric`.

    Attributes:
        steps: Adam steps.
        refine: which unknowns move: any of ``"pose"`` (rotation and translation), ``"expression"``
            and ``"identity"``; the focal length stays.
        lr_rotation: Adam learning rate of the rotation increment, radians per step.
        lr_translation: of the translation, cm per step.
        lr_expression: of the [0, 1] expression weights (projected back into [0, 1]).
        lr_identity: of the identity weights (prior ~ N(0, 1)).
        lr_decay: the learning rates decay exponentially to this fraction over the steps.
        photometric: weight of ``E_ph``, the mean Huber RGB error (colours in [0, 1]) per pixel.
        landmark: weight of ``E_lm``, the landmark fitter's objective (residuals in % of the
            face size, squared and summed, plus its priors).
        huber: Huber threshold of the per-pixel RGB error (colour units).
        appearance_every: steps between re-solves of albedo and lighting.
        appearance_init_iterations: Levenberg-Marquardt iterations of the first appearance solve.
        appearance_iterations: iterations of each warm-started re-solve.
        albedo_size: (h, w) of the RGB albedo grid over the UV atlas.
        albedo_smoothness: weight of the albedo grid's squared neighbour differences.
        symmetric_albedo: tie each vertex's albedo to its mirror vertex's.
        region: vertex region whose pixels enter ``E_ph``.
        feature_radius_cm: no photometric weight within this distance of the brow, eye, nostril
            and mouth landmarks (0 keeps them: they carry most of the expression signal).
        min_facing: no photometric weight where the input fit's normal is within this cosine of
            grazing.
        depth_jump_cm: no photometric weight on pixels whose 3x3 neighbourhood spans more depth.
        erode_px: the covered mask is eroded by this many pixels of the working crop (the render's
            outline mixes face and background in the photo).
        resolution: longer side of the working crop, pixels (the photo is resized, never upsampled).
        margin: crop margin around the projected region, fraction of its size.
        render: rasteriser settings.
    """

    steps: int = 20
    refine: tuple[str, ...] = REFINABLE
    lr_rotation: float = 2e-3
    lr_translation: float = 0.05
    lr_expression: float = 0.01
    lr_identity: float = 0.02
    lr_decay: float = 0.2
    photometric: float = 3e4
    landmark: float = 1.0
    huber: float = 0.1
    appearance_every: int = 10
    appearance_init_iterations: int = 8
    appearance_iterations: int = 2
    albedo_size: tuple[int, int] = (16, 32)
    albedo_smoothness: float = 1e-3
    symmetric_albedo: bool = False
    region: str = "narrow_face"
    feature_radius_cm: float = 0.0
    min_facing: float = 0.25
    depth_jump_cm: float = 0.5
    erode_px: int = 1
    resolution: int = 128
    margin: float = 0.08
    render: RenderConfig = RenderConfig()

    def __post_init__(self):
        bad = [r for r in self.refine if r not in REFINABLE]
        if bad or not self.refine:
            raise ValueError(f"refine must be a non-empty subset of {REFINABLE}, got {self.refine!r}")
        if self.steps < 0 or self.appearance_every < 1 or self.erode_px < 0:
            raise ValueError("steps, erode_px must be >= 0 and appearance_every >= 1")

    def residual_config(self) -> ResidualConfig:
        """The :class:`ResidualConfig` whose mesh operators and crop this refinement shares."""
        return ResidualConfig(
            region=self.region,
            feature_radius_cm=self.feature_radius_cm,
            resolution=self.resolution,
            margin=self.margin,
            albedo_size=self.albedo_size,
            symmetric_albedo=self.symmetric_albedo,
        )


@dataclass(frozen=True)
class PhotometricResult:
    """What :func:`refine_photometric` returns (one face).

    Attributes:
        fit: the refined :class:`FitResult` (batch of one; the input fit when not ``accepted``).
        accepted: the refinement lowered the combined loss and was kept.
        loss: (initial, final) combined loss ``E``, each with the appearance re-solved at its geometry.
        photometric: (initial, final) masked mean Huber RGB error ``E_ph``.
        landmark: (initial, final) landmark objective ``E_lm``.
        ms: wall time, milliseconds.
    """

    fit: FitResult
    accepted: bool
    loss: tuple[float, float]
    photometric: tuple[float, float]
    landmark: tuple[float, float]
    ms: float


class _Scene:
    """The working crop of one face: photo, camera, pixel mask and appearance state."""

    def __init__(self, model, image: np.ndarray, fit: FitResult, config: PhotometricConfig):
        import cv2

        self.cfg = config
        self.rc = rc = config.residual_config()
        ops = mesh_operators(model, rc)
        K = fit.identity.shape[1]
        self.ids, self.faces, self.basis = cached(
            model, ("photometric", config.region, K), lambda: _rows(model, ops, K)
        )
        f32 = torch.float32
        with torch.no_grad():
            v0 = to_camera(self.vertices(fit.identity, fit.expression), fit.rotation.float().cpu(),
                           fit.translation.float().cpu())  # fmt: skip
            pix = project(v0, fit.intrinsics.to(f32).cpu())[0]
        points = pix[ops.region[self.ids]].numpy()
        self.box, (h, w), self.scale = working_crop(points, *image.shape[:2], rc.resolution, rc.margin)
        x0, y0, x1, y1 = self.box
        crop = cv2.resize(image[y0:y1, x0:x1], (w, h), interpolation=cv2.INTER_AREA)
        self.photo = torch.from_numpy(crop).to(f32) / 255.0
        self.size = (h, w)
        fx, fy, cx, cy = fit.intrinsics[0].to(f32).cpu().tolist()
        cx, cy = to_crop(torch.tensor([cx, cy]), self.box, self.scale).tolist()
        self.K = torch.tensor([[fx * self.scale[0], fy * self.scale[1], cx, cy]])
        n0 = vertex_normals(v0, self.faces)[0]
        facing = -(n0 * F.normalize(v0[0], dim=-1)).sum(-1) > config.min_facing
        self.wv = (ops.photo_weight[self.ids] * facing.float())[:, None]  # (Vr, 1)
        self.keep = torch.ones(h, w)
        with torch.no_grad():  # drop the outline (eroded) and depth jumps of the input fit's render
            p2f, _, z = self._raster(v0)
            cov = p2f >= 0
            z = torch.where(cov, z, torch.full_like(z, 1e6))[None]
            jump = (F.max_pool2d(z, 3, 1, 1) + F.max_pool2d(-z, 3, 1, 1))[0] >= config.depth_jump_cm
            e = config.erode_px
            outline = F.max_pool2d((~cov).float()[None], 2 * e + 1, 1, e)[0] > 0 if e else ~cov
            self.keep = (~jump & ~outline).float() * in_photo(image, self.box, (h, w))
        self.S = cached(
            model,
            ("albedo", rc.albedo_size, rc.symmetric_albedo),
            lambda: albedo_operator(
                ops.point_uvs,
                ops.point_vertex,
                ops.point_count,
                rc.albedo_size,
                ops.mirror if rc.symmetric_albedo else None,
            ),
        )[self.ids.numpy()]
        self.smooth = cached(model, ("smooth", rc.albedo_size), lambda: grid_smoothness(rc.albedo_size))
        self.grid = self.lighting = None

    def vertices(self, identity: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        """(1, K), (1, K_exp) -> (1, Vr, 3) model-space vertices of the rendered rows (float32)."""
        template, basis = self.basis
        w = torch.cat([identity, expression], 1).to(basis)
        return (template + (w @ basis)[0].reshape(-1, 3))[None]

    def _raster(self, vc: torch.Tensor):
        frags, _, _ = rasterize(vc, self.faces, self.K, self.size, self.cfg.render)
        return frags.pix_to_face[0, ..., 0], frags.bary_coords[0, ..., 0, :], frags.zbuf[0, ..., 0].detach()

    def error(self, vc: torch.Tensor, solve: int = 0) -> torch.Tensor:
        """Masked mean Huber RGB error of the render of (1, Vr, 3) camera-space vertices (float32);
        ``solve`` > 0 first re-solves albedo and lighting at this geometry with that many iterations."""
        p2f, bary, _ = self._raster(vc)
        cov = p2f >= 0
        tri, bary = self.faces[p2f[cov]], bary[cov]
        wpix = interpolate_at_pixels(self.wv, tri, bary.detach())[:, 0] * self.keep[cov]
        y, nv = self.photo[cov], vertex_normals(vc, self.faces)[0]
        if solve:
            self.grid, self.lighting = solve_appearance(
                y, wpix, tri, bary.detach(), nv.detach(), self.S, self.smooth, self.grid, self.lighting,
                solve, self.rc.albedo_smoothness,
            )  # fmt: skip
        albedo = torch.from_numpy(self.S @ self.grid).to(vc.dtype)
        color = albedo * sh_shading(nv, torch.from_numpy(self.lighting).to(vc.dtype))[:, None]
        rendered = interpolate_at_pixels(color, tri, bary)
        err = F.huber_loss(rendered, y, reduction="none", delta=self.cfg.huber).sum(-1)
        return (err * wpix).sum() / wpix.sum().clamp(min=1.0)


def _rows(model, ops, n_identity: int):
    """The vertices of the region's triangles: (Vr,) ids, (F_r, 3) local faces and their float32
    basis rows (template (Vr, 3), identity then expression modes (K + K_exp, 3 Vr))."""
    ids = torch.unique(ops.region_faces)
    local = torch.full((model.n_vertices,), -1, dtype=torch.int64)
    local[ids] = torch.arange(len(ids))
    V, dev = model.n_vertices, model.template.device
    rows = ids.to(dev)
    idb = model.identity_basis[:n_identity].reshape(-1, V, 3)[:, rows].reshape(n_identity, -1)
    exb = model.expression_basis.reshape(-1, V, 3)[:, rows].reshape(model.n_expression, -1)
    basis = (model.template[rows].detach().float().cpu(), torch.cat([idb, exb]).detach().float().cpu())
    return ids, local[ops.region_faces], basis


def _landmark_problem(model, fit: FitResult, fit_config: FitConfig, silhouette: bool, landmark_offset=None):
    """The landmark fitter's objective at ``fit`` (its :class:`LandmarkProblem` and the input state)."""
    dt = torch.float64
    K = fit.identity.shape[1]
    sub = sub_model(model, K, dt)
    tg = fit.landmarks_target.detach().to(dt).cpu()
    H, W = fit.image_size
    f, _, cx, cy = fit.intrinsics[0].detach().to(dt).cpu().tolist()
    f0 = 0.5 * max(H, W) / math.tan(math.radians(fit_config.fov_deg) / 2)
    lw = landmark_weights(fit_config, 1)
    scale = (tg.amax(1) - tg.amin(1)).prod(-1).clamp(min=1.0).sqrt() / 100.0
    offset = None if landmark_offset is None else torch.as_tensor(landmark_offset, dtype=dt).reshape(1, 68, 3)
    problem = LandmarkProblem(sub, tg, lw, scale, cx, cy, math.log(f0), fit_config, offset)
    R_cam = fit.rotation.detach().to(dt).cpu()
    st = FitState(
        camera_to_pose(R_cam),
        fit.translation.detach().to(dt).cpu(),
        torch.full((1,), math.log(f), dtype=dt),
        fit.identity.detach().to(dt).cpu(),
        fit.expression.detach().to(dt).cpu(),
    )
    if silhouette and fit_config.silhouette:  # the jaw correspondences the landmark fit ended on
        cam = to_camera(sub.vertices(st.ident, st.expr), R_cam, st.t)
        intr = torch.tensor([[f, f, cx, cy]], dtype=dt)
        corr = Correspondences.anatomical(sub.landmarks, 1)
        args = (tg, sub.landmarks, sub.pools, euler_degrees(R_cam)[:, 0], fit_config.silhouette_min_yaw)
        problem.set_correspondences(select_outline(corr, cam, sub.normals(cam), project(cam, intr), *args))
    return problem, st, (cx, cy)


def _landmark_cost(problem: LandmarkProblem, st: FitState) -> torch.Tensor:
    """``E_lm``: the landmark fitter's robust (IRLS Huber weights, held) cost with its priors."""
    cfg = problem.cfg
    with torch.no_grad():
        _, _, uv = problem.project(st)
        e = (uv - problem.tg).norm(dim=-1) / problem.scale[:, None]
        robust = torch.where(e > cfg.huber_px, (cfg.huber_px / e.clamp(min=1e-9)).sqrt(), 1.0)
    r, _ = problem.residuals(st, robust, 1.0, False)
    return (r**2).sum()


def refine_photometric(
    model,
    image: np.ndarray,
    fit: FitResult,
    config: PhotometricConfig = PhotometricConfig(),
    fit_config: FitConfig = FitConfig(),
    silhouette: bool = True,
    landmark_offset=None,
) -> PhotometricResult:
    """Refine pose, expression and identity of one fitted face on the photo (see the module doc).

    Args:
        model: :class:`face3d.model.MorphableModel` the fit was made with.
        image: (H, W, 3) uint8 RGB photo the fit refers to.
        fit: :class:`FitResult`, batch of one (an existing residual is kept but not rendered).
        config: :class:`PhotometricConfig`.
        fit_config: the :class:`FitConfig` of the landmark fit (its priors and robust weights).
        silhouette: the targets follow the visible outline (dlib): re-select the jaw
            correspondences as the landmark fit did (with ``fit_config.silhouette``).
        landmark_offset: (68, 3) cm, the targets' landmark convention (the regressor's, as given
            to :func:`face3d.fit.landmark_fit.fit_landmarks`); None: ICT's landmark vertices.
    Returns:
        :class:`PhotometricResult`.
    """
    t_start = time.perf_counter()
    if fit.batch_size != 1:
        raise ValueError(f"refine_photometric takes one face, got a batch of {fit.batch_size}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image: expected (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    if tuple(image.shape[:2]) != tuple(fit.image_size):
        raise ValueError(f"image is {image.shape[:2]} but the fit refers to {fit.image_size}")
    cfg = config
    scene = _Scene(model, image, fit, cfg)
    problem, st0, (cx, cy) = _landmark_problem(model, fit, fit_config, silhouette, landmark_offset)
    dt = torch.float64
    params = {
        "rotation": torch.zeros(1, 3, dtype=dt),
        "translation": torch.zeros(1, 3, dtype=dt),
        "expression": st0.expr.clone(),
        "identity": st0.ident.clone(),
    }
    lrs = {
        "rotation": cfg.lr_rotation,
        "translation": cfg.lr_translation,
        "expression": cfg.lr_expression,
        "identity": cfg.lr_identity,
    }
    moving = {"rotation": "pose", "translation": "pose", "expression": "expression", "identity": "identity"}
    free = [k for k in params if moving[k] in cfg.refine]
    for k in free:
        params[k].requires_grad_(True)

    def state(p) -> FitState:
        R = axis_angle_to_matrix(p["rotation"]) @ st0.R_pose
        return FitState(R, st0.t + p["translation"], st0.logf, p["identity"], p["expression"])

    def losses(p, solve: int = 0):
        st = state(p)
        vc = to_camera(scene.vertices(st.ident, st.expr), camera_to_pose(st.R_pose).float(), st.t.float())
        e_ph, e_lm = scene.error(vc, solve), _landmark_cost(problem, st)
        return cfg.photometric * e_ph.double() + cfg.landmark * e_lm, e_ph, e_lm

    opt = Adam([{"params": [params[k]], "lr": lrs[k]} for k in free]) if free else None
    with torch.no_grad():
        losses(params, cfg.appearance_init_iterations)
    best, best_loss = {k: v.detach().clone() for k, v in params.items()}, math.inf
    for step in range(cfg.steps if opt else 0):
        solve = cfg.appearance_iterations if step > 0 and step % cfg.appearance_every == 0 else 0
        total, _, _ = losses(params, solve)
        if float(total.detach()) < best_loss:  # the iterate this loss belongs to (before the step)
            best_loss, best = float(total.detach()), {k: v.detach().clone() for k, v in params.items()}
        decay = cfg.lr_decay ** (step / max(cfg.steps - 1, 1))
        for g, k in zip(opt.param_groups, free, strict=True):
            g["lr"] = lrs[k] * decay
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        with torch.no_grad():
            params["expression"].clamp_(0.0, 1.0)
    with torch.no_grad():  # both ends with the appearance re-solved (warm) at their own geometry
        final = [float(x) for x in losses(best, cfg.appearance_iterations)]
        initial = [float(x) for x in losses(_start(st0), cfg.appearance_iterations)]
    accepted = final[0] < initial[0]
    out = fit
    if accepted:
        refined = fit_result(model, state(best), problem, fit.image_size, cx, cy, fit.landmarks_target)
        out = replace(refined.to(fit.rotation.device), residual=fit.residual)
    if not accepted:
        final = initial
    ms = (time.perf_counter() - t_start) * 1e3
    pairs = [(a, b) for a, b in zip(initial, final, strict=True)]
    return PhotometricResult(out, accepted, *pairs, ms)


def _start(st0: FitState) -> dict[str, torch.Tensor]:
    """The parameters of the input fit."""
    z = torch.zeros(1, 3, dtype=st0.t.dtype)
    return {"rotation": z, "translation": z, "expression": st0.expr, "identity": st0.ident}


def refine_face(model, image: np.ndarray, face, config: PhotometricConfig = PhotometricConfig(),
                fit_config: FitConfig = FitConfig()):  # fmt: skip
    """:func:`refine_photometric` of a :class:`face3d.fit.pipeline.FaceFit`; its time is recorded
    under ``timings_ms["photometric"]``. Returns the updated ``FaceFit``."""
    fit_config = fit_config.for_source(face.landmark_source)  # the settings of its landmark fit
    res = refine_photometric(
        model, image, face.fit, config, fit_config, face.landmark_source == "dlib", face.landmark_offset
    )
    return replace(face, fit=res.fit, timings_ms={**face.timings_ms, "photometric": res.ms})
