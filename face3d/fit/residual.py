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

import math
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
    normals,
    sample_at_vertices,
)
from face3d.fit.residual_mesh import mesh_operators as _mesh_operators
from face3d.fit.result import FitResult
from face3d.render import RenderConfig, rasterize

_cached = cached  # the old private name (face3d.fit.photometric imports it)
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


def _crop(points: np.ndarray, H: int, W: int, config: ResidualConfig):
    """Square-ish crop around projected points -> (x0, y0, x1, y1), (h, w) working size, (sx, sy)."""
    lo, hi = points.min(0), points.max(0)
    half = 0.5 * float((hi - lo).max()) * (1 + 2 * config.margin)
    c = 0.5 * (lo + hi)
    x0, y0 = max(0, int(math.floor(c[0] - half))), max(0, int(math.floor(c[1] - half)))
    x1, y1 = min(W, int(math.ceil(c[0] + half)) + 1), min(H, int(math.ceil(c[1] + half)) + 1)
    s = min(1.0, config.resolution / max(x1 - x0, y1 - y0, 1))  # never upsample
    w, h = max(2, round((x1 - x0) * s)), max(2, round((y1 - y0) * s))
    return (x0, y0, x1, y1), (h, w), (w / (x1 - x0), h / (y1 - y0))


def _to_crop(pts: torch.Tensor, box, scale) -> torch.Tensor:
    """Pixel coordinates (centre convention) -> working-crop coordinates."""
    off = pts.new_tensor(box[:2])
    sc = pts.new_tensor(scale)
    return (pts - off + 0.5) * sc - 0.5


def _gather(vals: torch.Tensor, tri: torch.Tensor, bary: torch.Tensor) -> torch.Tensor:
    """Interpolate (V, C) per-vertex values at pixels given (M, 3) corners and (M, 3) bary."""
    return (vals[tri] * bary[..., None]).sum(1)


# ---------------------------------------------------------------------------------------- the fit
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
    import cv2

    t_start = time.perf_counter()
    if fit.batch_size != 1:
        raise ValueError(f"fit_residual takes one face, got a batch of {fit.batch_size}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image: expected (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    ops = mesh_operators(model, config)
    f32, V = torch.float32, model.n_vertices
    R, t = fit.rotation.to(f32).cpu(), fit.translation.to(f32).cpu()
    with torch.no_grad():
        base = fit.with_residual(None).vertices(model).to(f32).cpu()  # (1, V, 3) model space
        v0 = to_camera(base, R, t)
        pix0 = project(v0, fit.intrinsics.to(f32).cpu())[0]
    box, (h, w), scale = _crop(pix0[ops.region].numpy(), *image.shape[:2], config)
    crop = image[box[1] : box[3], box[0] : box[2]]
    photo = torch.from_numpy(cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA)).to(f32) / 255.0
    fx, fy, cx, cy = fit.intrinsics[0].to(f32).cpu().tolist()
    cx, cy = _to_crop(torch.tensor([cx, cy]), box, scale).tolist()
    K = torch.tensor([[fx * scale[0], fy * scale[1], cx, cy]])
    targets = _to_crop(fit.landmarks_target[0, list(INNER)].to(f32).cpu(), box, scale)
    lm_ids = model.landmark_ids.cpu()[list(INNER)]
    lm_offset = torch.zeros(len(INNER), 3)
    if landmark_offset is not None:
        lm_offset = torch.as_tensor(landmark_offset, dtype=f32).reshape(68, 3)[list(INNER)]

    # photometric weights: region minus features, facing the camera at the initial fit
    n0 = normals(v0, ops)[0]
    wv = ops.photo_weight * (-(n0 * F.normalize(v0[0], dim=-1)).sum(-1) > config.min_facing).float()
    keep = torch.ones(h, w)

    def raster(vc: torch.Tensor):
        frags, _, _ = rasterize(vc, ops.region_faces, K, (h, w), config.render)
        p2f = frags.pix_to_face[0, ..., 0]
        cov = p2f >= 0
        tri, bary = ops.region_faces[p2f[cov]], frags.bary_coords[0, ..., 0, :][cov]
        wpix = _gather(wv[:, None], tri, bary.detach())[:, 0] * keep[cov]
        return photo[cov], tri, bary, wpix, cov, frags.zbuf[0, ..., 0].detach()

    with torch.no_grad():  # drop pixels at depth discontinuities and the outline (mixed in the photo)
        *_, cov, z = raster(v0)
        z = torch.where(cov, z, torch.full_like(z, 1e6))[None]
        keep.copy_(((F.max_pool2d(z, 3, 1, 1) + F.max_pool2d(-z, 3, 1, 1))[0] < config.depth_jump_cm).float())
        y0, tri, bary, wpix, *_ = raster(v0)
    S = cached(
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
    smooth = cached(model, ("smooth", config.albedo_size), lambda: grid_smoothness(config.albedo_size))
    state = {"grid": None, "lighting": None}  # first solve: from the photo's mean colour at the fit

    def solve(y, tri, bary, wpix, nv, iterations=config.appearance_iterations, step=0) -> None:
        if appearance is not None:  # known appearance
            state["lighting"] = appearance[1].detach().double().cpu().numpy()
            state["albedo"] = appearance[0].detach().float().cpu().reshape(V, 3)
            return
        a = min(1.0, step / max(config.anneal * config.steps, 1e-9))  # 0 -> 1 over the annealing
        sm = config.albedo_smoothness_start ** (1 - a) * config.albedo_smoothness**a
        args = (S, smooth, state["grid"], state["lighting"], iterations, sm)
        state["grid"], state["lighting"] = solve_appearance(y, wpix, tri, bary, nv, *args)
        state["albedo"] = torch.from_numpy(S @ state["grid"]).to(f32)

    anneal_from = 0 if config.parametrisation != "none" else config.steps  # "none": final prior only
    solve(y0, tri, bary, wpix, n0, config.appearance_init_iterations, anneal_from)
    along = normals(base, ops) if config.displacement == "normal" else None  # (1, V, 3) or None
    nc = 1 if along is not None else 3
    gen, free = None, torch.zeros(1, V, nc, requires_grad=config.parametrisation == "free")
    if config.parametrisation == "conv":
        gen = ResidualGenerator(
            config.latent_size, config.latent_channels, config.channels, config.output_scale, config.seed, nc
        )

    def offsets(x: torch.Tensor) -> torch.Tensor:  # (1, V, nc) -> (1, V, 3) model-space offsets
        return x if along is None else x * along

    params = list(gen.parameters()) if gen is not None else [free] if free.requires_grad else []
    lr0 = config.lr if gen is not None else config.free_lr
    opt = torch.optim.Adam(params, lr=lr0) if params else None
    names = ("total", "photometric", "landmark", "magnitude", "laplacian")
    weights = (config.photometric, config.landmark, config.magnitude, config.laplacian)
    losses: dict[str, list[float]] = {k: [] for k in names}

    def objective(res: torch.Tensor, resolve: bool, step: int) -> torch.Tensor:
        vc = to_camera(base + res, R, t)
        y, tri, bary, wpix, *_ = raster(vc)
        nv = normals(vc, ops)[0]
        if resolve:
            solve(y, tri, bary.detach(), wpix, nv, step=step)
        bary = bary if config.raster_gradients else bary.detach()
        color = state["albedo"] * sh_shading(nv, torch.from_numpy(state["lighting"]).to(f32))[:, None]
        err = ((_gather(color, tri, bary) - y) ** 2).sum(-1)
        terms = (
            (err * wpix).sum() / wpix.sum().clamp(min=1.0),
            ((project(to_camera((base + res)[:, lm_ids] + lm_offset, R, t), K)[0] - targets) ** 2)
            .sum(-1)
            .mean()
            / float(max(h, w)) ** 2,
            (res**2).sum(-1).mean(),
            (ops.laplacian(res[0]) ** 2).sum(-1).mean(),
        )
        total = sum(wt * term for wt, term in zip(weights, terms, strict=True))
        for k, v in zip(names, (total, *terms), strict=True):
            losses[k].append(float(v.detach()))
        return total

    for step in range(config.steps if params else 0):
        res = offsets(sample_at_vertices(gen(), ops) if gen is not None else free)
        total = objective(res, step > 0 and step % config.appearance_every == 0, step)
        for g in opt.param_groups:
            g["lr"] = lr0 * config.lr_decay ** (step / max(config.steps - 1, 1))
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
    with torch.no_grad():  # final appearance and losses at the final geometry
        disp = gen() if gen is not None else None
        res = offsets(sample_at_vertices(disp, ops) if gen is not None else free.detach().clone())
        objective(res, True, config.steps)
    return ResidualResult(
        residual=res,
        displacement=None if disp is None else disp[0],
        albedo=state["albedo"].clamp(0, 1)[None],
        lighting=torch.from_numpy(state["lighting"]).to(f32),
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
        image[cov] = _gather(color, tri, bary).clamp(0, 1)
        mask = torch.zeros(fit.image_size, dtype=torch.bool)
        mask[cov] = _gather(wv[:, None], tri, bary)[:, 0] > 0.5
    return image.numpy(), mask.numpy()
