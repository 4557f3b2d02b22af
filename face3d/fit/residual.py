"""Residual geometry beyond the linear model, reparametrised by a convolutional generator.

A linear 3DMM underfits; free per-vertex offsets overfit noise. Here the residual is the output
of a small convolutional generator ``D = f_theta(s)`` (the Deep Image Prior / Latent
Convolutional Models idea): ``s`` is a fixed noise tensor, ``D`` a displacement map (cm,
``tanh * output_scale``) in the model's UV atlas (:func:`face3d.render.atlas_corner_uvs`): by default
1 channel, a displacement along the linear fit's vertex normals (``displacement="normal"``: the
photometric term hardly sees tangential motion, so 3 free channels mostly add drift), or 3 channels
of model-space offsets (``"vector"``). Each vertex takes the mean of the map sampled at all its
UV corners (:meth:`MeshOperators.average`), so vertices on UV seams get one offset. ``theta`` is
optimised per image (Adam, on the CPU); pose, identity and expression stay as the landmark fit
left them.

**Why the photometric term constrains geometry.** Re-rendering the photo's own texture (sampled
at the current or the initial geometry) reproduces the photo whatever the geometry, so it says
little about shape. Instead the image is explained as *albedo x shading*:

* shading: Lambertian, grey second-order spherical harmonics (9 coefficients, optimised) of the
  camera-space vertex normals, so it depends on the geometry's derivatives: a bump brightens the
  side facing the light and darkens the other (shape from shading);
* albedo: RGB on a coarse UV grid (``albedo_size``; cells of about 2.5 cm on the face), started
  from the photo's mean colour at the landmark fit; albedo and lighting are solved jointly by
  Levenberg-Marquardt (:mod:`face3d.fit.appearance`) and re-solved every ``appearance_every``
  steps, so the residual only gets the shading the appearance cannot explain. Both the linear
  geometry with an albedo that absorbed the shading and the true geometry are near-stationary
  points, so the albedo's smoothness prior is annealed (``albedo_smoothness_start`` ->
  ``albedo_smoothness``, geometrically over the first ``anneal`` of the steps): an almost constant
  albedo first leaves the shading to the geometry, then the albedo takes back its own variation;
* where albedo changes sharply (brows, eyes, nostrils, lips: within ``feature_radius_cm`` of
  those landmarks), at grazing angles, at depth discontinuities (pixels mixing surfaces) and
  outside the ``narrow_face`` region (hair, ears, neck) the photometric term is switched off.

Moving a vertex also moves where its colour lands (barycentric gradients). The residual is further
held by the 51 inner landmarks (the landmark fit's targets) and by magnitude and uniform-Laplacian
penalties. Measured on a synthetic 0.3 cm cheek bump (smooth non-constant albedo, side light,
200 steps; relative error ||D - D_true|| / ||D_true|| over the face, tests/fit/test_residual.py):
with the appearance known (``appearance=``) conv 0.26, free offsets 1.15; with albedo and lighting
estimated conv 0.63 (gain 0.76 along the bump), free 1.12, none 1.0: the albedo still absorbs part
of the shading.

``parametrisation="free"`` optimises per-vertex offsets directly (same losses, same steps) and
``"none"`` only the appearance (albedo and lighting) with the linear geometry: the ablation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from face3d.camera import project, to_camera
from face3d.fit.appearance import albedo_operator, grid_smoothness, sh_shading, solve_appearance
from face3d.fit.residual_mesh import (  # noqa: F401 (FEATURE_LANDMARKS re-exported)
    FEATURE_LANDMARKS,
    MeshOperators,
    cached,
    interpolate_at_pixels,
    normals,
    sample_at_vertices,
    to_crop,
    working_crop,
)
from face3d.fit.residual_mesh import mesh_operators as _mesh_operators
from face3d.fit.result import FitResult
from face3d.render import RenderConfig, rasterize

PARAMETRISATIONS = ("conv", "free", "none")
DISPLACEMENTS = ("normal", "vector")
INNER = tuple(range(17, 68))


@dataclass(frozen=True)
class ResidualConfig:
    """Settings of :func:`fit_residual`.

    Attributes:
        parametrisation: ``"conv"`` (generator output, the default), ``"free"`` (per-vertex
            offsets) or ``"none"`` (no residual; albedo and lighting only, the baseline).
        displacement: ``"normal"`` (1 channel: offsets along the linear fit's vertex normals) or
            ``"vector"`` (3 channels: model-space offsets); for ``"free"`` too.
        steps: Adam steps on the residual (the appearance is re-solved in between).
        lr: Adam learning rate of the generator weights (``"conv"``).
        free_lr: Adam learning rate of the free offsets, cm per step (``"free"``).
        lr_decay: the learning rate decays exponentially to this fraction over the steps.
        appearance_every: steps between least-squares re-solves of albedo and lighting.
        appearance_init_iterations: Gauss-Newton iterations of the first appearance solve.
        appearance_iterations: Gauss-Newton iterations of each re-solve (warm-started).
        albedo_smoothness: weight of the albedo grid's squared neighbour differences (final).
        albedo_smoothness_start: that weight at the first solve (large: a nearly constant albedo).
        anneal: fraction of the steps over which the weight goes geometrically from
            ``albedo_smoothness_start`` to ``albedo_smoothness`` (``"none"`` uses the final one).
        photometric: weight of the masked mean squared RGB error between render and photo.
        landmark: weight of the mean squared distance of the 51 inner landmark vertices'
            projections to the fit's targets, in units of the working crop's size.
        magnitude: weight of the mean squared residual length (cm^2) over the vertices.
        laplacian: weight of the mean squared uniform-Laplacian of the residual (cm^2): smoothness.
        resolution: longer side of the working crop around the face, pixels (the photo is resized).
        margin: crop margin around the projected face, fraction of its size.
        map_size: (Hd, Wd) of the displacement map (``"conv"``).
        latent_size: (h, w) of the fixed noise input; ``map_size`` must be it times a power of 2.
        latent_channels: channels of the fixed noise input.
        channels: conv channels per resolution, coarse to fine (one upsampling between each);
            ``len(channels) - 1`` doublings lead from ``latent_size`` to ``map_size``.
        output_scale: the map is ``tanh(.) * output_scale`` cm.
        albedo_size: (h, w) of the coarse RGB albedo grid over the UV atlas.
        symmetric_albedo: tie the albedo of each vertex to its mirror vertex's (skin albedo is
            nearly left-right symmetric, the shading of a side light or a one-sided bump is not).
        feature_radius_cm: no photometric weight within this distance (template, cm) of the brow,
            eye, nostril and mouth landmarks.
        min_facing: no photometric weight where the initial normal is within this cosine of
            grazing (silhouettes).
        depth_jump_cm: no photometric weight on pixels whose 3x3 neighbourhood spans more depth
            than this (occlusion edges, where the photo mixes surfaces) or leaves the mesh.
        region: vertex region whose pixels enter the photometric term.
        raster_gradients: let the photometric gradient flow through where pixels land on the
            mesh (barycentrics) as well as through the shading normals.
        seed: seed of the noise input and the generator's initial weights.
        render: rasteriser settings.
    """

    parametrisation: str = "conv"
    displacement: str = "normal"
    steps: int = 100
    lr: float = 1e-2
    free_lr: float = 3e-3
    lr_decay: float = 0.1
    appearance_every: int = 10
    appearance_init_iterations: int = 8
    appearance_iterations: int = 2
    albedo_smoothness: float = 1e-3
    albedo_smoothness_start: float = 1e3
    anneal: float = 0.5
    photometric: float = 1.0
    landmark: float = 1.0
    magnitude: float = 1e-3
    laplacian: float = 0.3
    resolution: int = 128
    margin: float = 0.08
    map_size: tuple[int, int] = (64, 128)
    latent_size: tuple[int, int] = (16, 32)
    latent_channels: int = 16
    channels: tuple[int, ...] = (32, 16, 8)
    output_scale: float = 1.0
    albedo_size: tuple[int, int] = (16, 32)
    symmetric_albedo: bool = False
    feature_radius_cm: float = 1.0
    min_facing: float = 0.25
    depth_jump_cm: float = 0.5
    region: str = "narrow_face"
    raster_gradients: bool = True
    seed: int = 0
    render: RenderConfig = field(default_factory=RenderConfig)

    def __post_init__(self):
        if self.parametrisation not in PARAMETRISATIONS:
            raise ValueError(
                f"parametrisation must be one of {PARAMETRISATIONS}, got {self.parametrisation!r}"
            )
        if self.displacement not in DISPLACEMENTS:
            raise ValueError(f"displacement must be one of {DISPLACEMENTS}, got {self.displacement!r}")
        k = 2 ** (len(self.channels) - 1)
        if tuple(self.map_size) != (self.latent_size[0] * k, self.latent_size[1] * k):
            raise ValueError(f"map_size {self.map_size} must be latent_size {self.latent_size} x {k}")


@dataclass(frozen=True)
class ResidualResult:
    """What :func:`fit_residual` returns (one face).

    Attributes:
        residual: (1, V, 3) model-space offsets, cm (zeros for ``"none"``); apply with
            ``fit.with_residual(result.residual)``.
        displacement: (C, Hd, Wd) the generator's UV displacement map, cm, C = 1 (along the
            normals) or 3 (model space) per ``config.displacement`` (None unless ``"conv"``).
        albedo: (1, V, 3) per-vertex RGB albedo in [0, 1] of the appearance model.
        lighting: (9,) grey spherical-harmonics coefficients (see :func:`sh_shading`).
        losses: per step of ``total``, ``photometric``, ``landmark``,
            ``magnitude`` and ``laplacian``.
        ms: wall time of the fit, milliseconds.
    """

    residual: torch.Tensor
    displacement: torch.Tensor | None
    albedo: torch.Tensor
    lighting: torch.Tensor
    losses: dict[str, list[float]]
    ms: float


class ResidualGenerator(nn.Module):
    """``f_theta(s)``: fixed noise (1, C0, h, w) -> (1, out_channels, h * 2^k, w * 2^k) map in cm.

    conv3x3 + LeakyReLU at the latent size, then ``k`` blocks of bilinear x2 upsampling,
    conv3x3 + LeakyReLU; a final conv3x3 (zero-initialised, so the map starts at 0) and
    ``tanh * output_scale``.
    """

    def __init__(
        self,
        latent_size: tuple[int, int] = (16, 32),
        latent_channels: int = 16,
        channels: tuple[int, ...] = (32, 16, 8),
        output_scale: float = 1.0,
        seed: int = 0,
        out_channels: int = 3,
    ):
        super().__init__()
        with torch.random.fork_rng():  # deterministic, and the global generator is left alone
            torch.manual_seed(seed)
            self.register_buffer("noise", torch.rand(1, latent_channels, *latent_size) * 0.1)
            layers: list[nn.Module] = [
                nn.Conv2d(latent_channels, channels[0], 3, padding=1),
                nn.LeakyReLU(0.2),
            ]
            for cin, cout in zip(channels[:-1], channels[1:], strict=True):
                layers += [
                    nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                    nn.Conv2d(cin, cout, 3, padding=1),
                    nn.LeakyReLU(0.2),
                ]
            self.body = nn.Sequential(*layers)
            self.head = nn.Conv2d(channels[-1], out_channels, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.output_scale = float(output_scale)

    def forward(self) -> torch.Tensor:
        return torch.tanh(self.head(self.body(self.noise))) * self.output_scale


def mesh_operators(model, config: ResidualConfig = ResidualConfig()) -> MeshOperators:
    """The :class:`MeshOperators` of ``model`` for ``config.region`` and ``config.feature_radius_cm``."""
    return _mesh_operators(model, config.region, config.feature_radius_cm)


# ---------------------------------------------------------------------------------------- the fit
LOSS_NAMES = ("total", "photometric", "landmark", "magnitude", "laplacian")


class _Scene:
    """The working crop of one face: the photo resized around the face, the camera in crop pixels,
    the linear fit's geometry, the inner landmarks' targets and the photometric weights (region
    minus features, facing the camera at the linear fit, away from depth jumps and the outline)."""

    def __init__(self, model, image: np.ndarray, fit: FitResult, config: ResidualConfig, landmark_offset):
        import cv2

        self.ops = ops = mesh_operators(model, config)
        self.config = config
        f32 = torch.float32
        self.R, self.t = fit.rotation.to(f32).cpu(), fit.translation.to(f32).cpu()
        with torch.no_grad():
            self.base = fit.with_residual(None).vertices(model).to(f32).cpu()  # (1, V, 3) model space
            self.v0 = to_camera(self.base, self.R, self.t)
            pix0 = project(self.v0, fit.intrinsics.to(f32).cpu())[0]
        box, (h, w), scale = working_crop(
            pix0[ops.region].numpy(), *image.shape[:2], config.resolution, config.margin
        )
        crop = image[box[1] : box[3], box[0] : box[2]]
        self.photo = torch.from_numpy(cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA)).to(f32) / 255.0
        self.size = (h, w)
        fx, fy, cx, cy = fit.intrinsics[0].to(f32).cpu().tolist()
        cx, cy = to_crop(torch.tensor([cx, cy]), box, scale).tolist()
        self.K = torch.tensor([[fx * scale[0], fy * scale[1], cx, cy]])
        self.targets = to_crop(fit.landmarks_target[0, list(INNER)].to(f32).cpu(), box, scale)
        self.lm_ids = model.landmark_ids.cpu()[list(INNER)]
        self.lm_offset = torch.zeros(len(INNER), 3)
        if landmark_offset is not None:
            self.lm_offset = torch.as_tensor(landmark_offset, dtype=f32).reshape(68, 3)[list(INNER)]
        self.n0 = normals(self.v0, ops)[0]
        facing = -(self.n0 * F.normalize(self.v0[0], dim=-1)).sum(-1) > config.min_facing
        self.wv = ops.photo_weight * facing.float()
        self.keep = torch.ones(h, w)
        with torch.no_grad():  # drop pixels at depth discontinuities and the outline (mixed in the photo)
            *_, cov, z = self.raster(self.v0)
            z = torch.where(cov, z, torch.full_like(z, 1e6))[None]
            jump = (F.max_pool2d(z, 3, 1, 1) + F.max_pool2d(-z, 3, 1, 1))[0]
            self.keep.copy_((jump < config.depth_jump_cm).float())

    def raster(self, vc: torch.Tensor):
        """Rasterise (1, V, 3) camera-space vertices in the crop: the covered pixels' photo colours,
        triangles (M, 3), barycentrics (M, 3) and photometric weights (M,), the coverage mask and the
        depth buffer."""
        ops = self.ops
        frags, _, _ = rasterize(vc, ops.region_faces, self.K, self.size, self.config.render)
        p2f = frags.pix_to_face[0, ..., 0]
        cov = p2f >= 0
        tri, bary = ops.region_faces[p2f[cov]], frags.bary_coords[0, ..., 0, :][cov]
        wpix = interpolate_at_pixels(self.wv[:, None], tri, bary.detach())[:, 0] * self.keep[cov]
        return self.photo[cov], tri, bary, wpix, cov, frags.zbuf[0, ..., 0].detach()


class _Appearance:
    """Albedo (an RGB grid over the UV atlas) and grey SH lighting, re-solved by least squares as
    the geometry moves, or a ``known`` (albedo, lighting) kept fixed."""

    def __init__(self, model, ops: MeshOperators, config: ResidualConfig, known=None):
        self.config, self.known, self.V = config, known, model.n_vertices
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
        """Re-solve at this geometry (warm-started), the albedo prior annealed as of ``step``."""
        config = self.config
        if self.known is not None:
            self.lighting = self.known[1].detach().double().cpu().numpy()
            self.albedo = self.known[0].detach().float().cpu().reshape(self.V, 3)
            return
        a = min(1.0, step / max(config.anneal * config.steps, 1e-9))  # 0 -> 1 over the annealing
        sm = config.albedo_smoothness_start ** (1 - a) * config.albedo_smoothness**a
        args = (self.S, self.smooth, self.grid, self.lighting, iterations, sm)
        self.grid, self.lighting = solve_appearance(y, wpix, tri, bary, nv, *args)
        self.albedo = torch.from_numpy(self.S @ self.grid).to(torch.float32)


class _Residual:
    """The unknown residual: the generator's weights (``"conv"``), free per-vertex values
    (``"free"``) or none; 1 channel along the linear fit's normals or 3 in model space."""

    def __init__(self, scene: _Scene, config: ResidualConfig):
        self.ops = scene.ops
        self.along = normals(scene.base, scene.ops) if config.displacement == "normal" else None  # (1, V, 3)
        nc = 1 if self.along is not None else 3
        V = scene.base.shape[1]
        self.gen, self.free = None, torch.zeros(1, V, nc, requires_grad=config.parametrisation == "free")
        if config.parametrisation == "conv":
            c = config
            self.gen = ResidualGenerator(
                c.latent_size, c.latent_channels, c.channels, c.output_scale, c.seed, nc
            )
        gen, free = self.gen, self.free
        self.params = list(gen.parameters()) if gen is not None else [free] if free.requires_grad else []
        self.lr0 = config.lr if gen is not None else config.free_lr

    def offsets(self, x: torch.Tensor) -> torch.Tensor:
        """(1, V, C) -> (1, V, 3) model-space offsets."""
        return x if self.along is None else x * self.along

    def __call__(self) -> torch.Tensor:
        """The current (1, V, 3) offsets, differentiable in the parameters."""
        return self.offsets(sample_at_vertices(self.gen(), self.ops) if self.gen is not None else self.free)

    def final(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The final offsets (detached) and the generator's displacement map (None unless ``"conv"``)."""
        disp = self.gen() if self.gen is not None else None
        res = self.offsets(
            sample_at_vertices(disp, self.ops) if self.gen is not None else self.free.detach().clone()
        )
        return res, disp


def _objective(
    scene: _Scene,
    app: _Appearance,
    res: torch.Tensor,
    resolve: bool,
    step: int,
    losses: dict[str, list[float]],
) -> torch.Tensor:
    """The weighted loss of the (1, V, 3) residual ``res`` (appending each term to ``losses``):
    photometric (albedo x shading vs the photo, re-solving the appearance first when ``resolve``),
    inner landmarks, magnitude and Laplacian."""
    config, base, R, t = scene.config, scene.base, scene.R, scene.t
    vc = to_camera(base + res, R, t)
    y, tri, bary, wpix, *_ = scene.raster(vc)
    nv = normals(vc, scene.ops)[0]
    if resolve:
        app.solve(y, tri, bary.detach(), wpix, nv, config.appearance_iterations, step)
    bary = bary if config.raster_gradients else bary.detach()
    color = app.albedo * sh_shading(nv, torch.from_numpy(app.lighting).to(torch.float32))[:, None]
    err = ((interpolate_at_pixels(color, tri, bary) - y) ** 2).sum(-1)
    h, w = scene.size
    landmarks = project(to_camera((base + res)[:, scene.lm_ids] + scene.lm_offset, R, t), scene.K)[0]
    terms = (
        (err * wpix).sum() / wpix.sum().clamp(min=1.0),
        ((landmarks - scene.targets) ** 2).sum(-1).mean() / float(max(h, w)) ** 2,
        (res**2).sum(-1).mean(),
        (scene.ops.laplacian(res[0]) ** 2).sum(-1).mean(),
    )
    weights = (config.photometric, config.landmark, config.magnitude, config.laplacian)
    total = sum(wt * term for wt, term in zip(weights, terms, strict=True))
    for k, v in zip(LOSS_NAMES, (total, *terms), strict=True):
        losses[k].append(float(v.detach()))
    return total


def fit_residual(
    model,
    image: np.ndarray,
    fit: FitResult,
    config: ResidualConfig = ResidualConfig(),
    appearance: tuple[torch.Tensor, torch.Tensor] | None = None,
    landmark_offset=None,
) -> ResidualResult:
    """Fit a residual geometry (with an albedo x SH-shading appearance) to one face of a photo.

    Args:
        model: :class:`face3d.model.MorphableModel` the fit was made with (V vertices).
        image: (H, W, 3) uint8 RGB photo.
        fit: :class:`FitResult` of the face, batch of one (an existing residual is ignored).
        config: :class:`ResidualConfig`.
        appearance: optional known (albedo (V, 3) or (1, V, 3), lighting (9,)) kept fixed instead
            of being estimated (e.g. from an earlier frame; synthetic tests).
        landmark_offset: (68, 3) cm, the landmark convention of ``fit.landmarks_target`` (the
            regressor's); None: ICT's landmark vertices.
    Returns:
        :class:`ResidualResult`; ``fit.with_residual(result.residual)`` is the refined face.
    """
    t_start = time.perf_counter()
    if fit.batch_size != 1:
        raise ValueError(f"fit_residual takes one face, got a batch of {fit.batch_size}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image: expected (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    scene = _Scene(model, image, fit, config, landmark_offset)
    with torch.no_grad():
        y0, tri, bary, wpix, *_ = scene.raster(scene.v0)
    app = _Appearance(model, scene.ops, config, appearance)
    anneal_from = 0 if config.parametrisation != "none" else config.steps  # "none": final prior only
    app.solve(y0, tri, bary, wpix, scene.n0, config.appearance_init_iterations, anneal_from)
    unknown = _Residual(scene, config)
    opt = torch.optim.Adam(unknown.params, lr=unknown.lr0) if unknown.params else None
    losses: dict[str, list[float]] = {k: [] for k in LOSS_NAMES}
    for step in range(config.steps if unknown.params else 0):
        resolve = step > 0 and step % config.appearance_every == 0
        total = _objective(scene, app, unknown(), resolve, step, losses)
        for g in opt.param_groups:
            g["lr"] = unknown.lr0 * config.lr_decay ** (step / max(config.steps - 1, 1))
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
    with torch.no_grad():  # final appearance and losses at the final geometry
        res, disp = unknown.final()
        _objective(scene, app, res, True, config.steps, losses)
    return ResidualResult(
        residual=res,
        displacement=None if disp is None else disp[0],
        albedo=app.albedo.clamp(0, 1)[None],
        lighting=torch.from_numpy(app.lighting).to(torch.float32),
        losses=losses,
        ms=(time.perf_counter() - t_start) * 1e3,
    )


# ------------------------------------------------------------------------------ evaluation and output
def render_appearance(
    model, fit: FitResult, result: ResidualResult, config: ResidualConfig = ResidualConfig()
):
    """Re-render a face as albedo x SH shading over its whole image (the residual is the fit's own:
    pass ``fit.with_residual(result.residual)`` for the refined geometry).

    Returns:
        image (H, W, 3) float in [0, 1] (0 outside), mask (H, W) bool of the pixels the
        photometric term sees (the region, minus features and grazing triangles).
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
        frags, _, _ = rasterize(vc, ops.region_faces, K, fit.image_size, config.render)
        p2f = frags.pix_to_face[0, ..., 0]
        cov = p2f >= 0
        tri, bary = ops.region_faces[p2f[cov]], frags.bary_coords[0, ..., 0, :][cov]
        image = torch.zeros(*fit.image_size, 3)
        image[cov] = interpolate_at_pixels(color, tri, bary).clamp(0, 1)
        mask = torch.zeros(fit.image_size, dtype=torch.bool)
        mask[cov] = interpolate_at_pixels(wv[:, None], tri, bary)[:, 0] > 0.5
    return image.numpy(), mask.numpy()
