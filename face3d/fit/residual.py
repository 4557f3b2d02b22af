"""Residual geometry beyond the linear model, reparametrised by a convolutional generator.

A linear 3DMM underfits; free per-vertex offsets overfit noise. Here the residual is the output
of a small convolutional generator ``D = f_theta(s)`` (the Deep Image Prior / Latent
Convolutional Models idea): ``s`` is a fixed noise tensor, ``D`` a displacement map (cm) in the
model's UV atlas (:func:`face3d.render.atlas_corner_uvs`): by default 1 channel, a displacement
along the linear fit's vertex normals (``displacement="normal"``), or 3 channels of model-space
offsets (``"vector"``). Each vertex takes the mean of the map sampled at all its UV corners
(:meth:`MeshOperators.average`). ``theta`` is optimised per image (Adam, on the CPU); pose,
identity and expression stay as the landmark fit left them. The result's ``fit`` is the final
face: its mesh carries the residual and its ``landmarks_fitted`` are that mesh's.

**Detail, not distortion** (issue #33). The residual must add what the linear model lacks without
bending the face the landmarks fixed:

* the displacement is split (:mod:`face3d.fit.residual_param`) into a smooth part (a low-pass of
  about ``smooth_cm``, at most ``smooth_scale``) and detail without local mean (at most
  ``detail_scale``): both bounded in mm, not 1 cm;
* all 68 landmarks of the mesh with the residual are held to the landmark fit's targets, with
  the landmark fit's weights (its jaw weight; :func:`residual_face`), in % of the face as the
  landmark fitter measures them: the smooth part is what can move them, and it is held there (and
  by a small magnitude prior); ``anchor`` also holds the outline's and the brows' landmark
  vertices in depth, where the landmarks cannot see and the photometric term has no say;
* the appearance gets its capacity first: albedo and lighting are solved at the linear geometry
  before the residual moves and re-solved as it moves, with the albedo's final smoothness prior
  from the start, so the residual only gets the shading the appearance cannot explain.
* the photo's noise, read in the working crop (:func:`face3d.filters.noise_sigma`), weights the
  data term down (``noise_reference``): a noisy photo leans more on the priors; the bias the
  noise's clipping adds to shadows and highlights is taken out first (``unclip``).

**Why the photometric term constrains geometry.** Re-rendering the photo's own texture reproduces
the photo whatever the geometry. Instead the image is explained as *albedo x shading*:

* shading: Lambertian, grey second-order spherical harmonics (9 coefficients, optimised) of the
  camera-space vertex normals, so it depends on the geometry's derivatives (shape from shading);
* albedo: RGB on a coarse UV grid (``albedo_size``; cells of about 2.5 cm on the face), started
  from the photo's mean colour; albedo and lighting are solved jointly by Levenberg-Marquardt
  (:mod:`face3d.fit.appearance`) every ``appearance_every`` steps (``albedo_smoothness_start``
  above ``albedo_smoothness`` anneals the prior over ``anneal`` of the steps, leaving the shading
  to the geometry first: the behaviour before issue #33, which bends the face);
* where albedo changes sharply (brows, eyes, nostrils, lips: within ``feature_radius_cm`` of
  those landmarks), at grazing angles, at depth discontinuities and the outline (pixels mixing
  surfaces) and outside the ``narrow_face`` region the photometric term is switched off.

Measured on synthetic faces (tests/fit/test_residual.py, 200 steps, relative error
||D - D_true|| / ||D_true|| over the face): a 0.3 cm cheek bump with the appearance known, conv
0.37 (0.28 without the smooth part's magnitude prior; 0.34 and 0.30 without the anchor), free
offsets about 1.1; with albedo and lighting estimated the albedo takes that bump's shading (it
moves no landmark) and the residual stays near zero; a nose 3 mm longer (mostly outside the
identity modes' span, landmarks detected on it, appearance estimated) conv 0.40, its nose
landmarks moving as the change moves them (within 14 %). On photos: docs/benchmarks.md
("Residual ablation").

``parametrisation="free"`` optimises per-vertex values instead (same losses, split and bounds)
and ``"none"`` only the appearance with the linear geometry: the ablation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F

from face3d.camera import project, to_camera
from face3d.filters import noise_sigma, unclip
from face3d.fit.adam import Adam
from face3d.fit.appearance import Appearance, sh_shading
from face3d.fit.config import FitConfig
from face3d.fit.landmark_fit import landmark_weights
from face3d.fit.residual_mesh import (  # noqa: F401 (re-exported)
    FEATURE_LANDMARKS,
    MeshOperators,
    away_from_edges,
    in_photo,
    interpolate_at_pixels,
    normals,
    sample_at_vertices,
    to_crop,
    working_crop,
)
from face3d.fit.residual_mesh import mesh_operators as _mesh_operators
from face3d.fit.residual_param import Displacement, ResidualGenerator  # noqa: F401 (re-exported)
from face3d.fit.result import FitResult
from face3d.render import RenderConfig, rasterize

PARAMETRISATIONS = ("conv", "free", "none")
DISPLACEMENTS = ("normal", "vector")
LANDMARK_SETS = {"all": tuple(range(68)), "inner": tuple(range(17, 68)), "jaw_brows": tuple(range(27))}


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
        noise_reference: the photo's noise adapts the fit (a maximum a posteriori reading: the data
            term's variance is the model's error plus the noise's): the photometric term, and the
            appearance's data term against its albedo prior, are weighted by
            ``r**2 / (r**2 + sigma**2)`` with ``r`` this reference (the model's own RMS error on
            clean photos, [0, 1] units) and ``sigma`` the noise the working crop's photometric
            pixels show (:func:`face3d.filters.noise_sigma`); 0: off (weight 1).
        unclip: undo the bias clipping adds to the photo's noise (:func:`face3d.filters.unclip`, with
            the noise read in the crop scaled to the photo's resolution): shadows and highlights
            of a noisy photo are otherwise brighter and darker than the truth. It inverts the
            clipped noise's expectation, so it holds where each crop pixel is the mean of several
            photo pixels (a face larger than the crop, the usual case) and corrects less on an
            upscaled one. No change on a clean photo.
        landmark: weight of the landmark term: the weighted mean over ``landmarks`` of the squared
            distance of each landmark of the mesh with the residual to its target, in % of the
            targets' box size sqrt(w * h) (the landmark fitter's unit); the weights are the landmark
            fit's (its jaw weight: :func:`residual_face` passes them).
        landmarks: ``"all"`` 68 landmarks (jaw included) or ``"inner"`` 51 in the landmark term.
        anchor: weight of the weighted mean squared residual (cm^2) at the vertices of the
            ``anchor_landmarks`` (the landmark term sees only the image, not depth).
        anchor_landmarks: the landmarks ``anchor`` holds (a key of :data:`LANDMARK_SETS`; their
            landmark-fit weights, normalised). The default ``"jaw_brows"`` holds the 27 of the
            outline and the brows, where the photometric term has no say of its own (the brows'
            albedo edges are masked out, the outline is seen at grazing angles) and moved them in
            depth, and leaves the nose, eyes and mouth free. Holding all 68 (``"all"``) keeps the
            3D landmark error of the linear fit, but also stops a real shape change the landmarks
            show (a longer nose) and, at 0.1 and more, takes part of the photometric gain
            (docs/history.md).
        smooth_magnitude: weight of the mean squared smooth part of the residual (cm^2) over the
            vertices: it is held close to zero (split only).
        magnitude: weight of the mean squared residual length (cm^2) over the vertices.
        laplacian: weight of the mean squared uniform-Laplacian of the residual (cm^2): smoothness.
        smooth_cm: scale of the low-pass filter splitting the displacement into a smooth part and
            detail (:mod:`face3d.fit.residual_param`), template cm; 0: no split.
        smooth_scale: bound of the smooth part, cm (split).
        detail_scale: bound of the detail, cm (split).
        resolution: longer side of the working crop around the face, pixels (the photo is resized).
        margin: crop margin around the projected face, fraction of its size.
        map_size: (Hd, Wd) of the displacement map (``"conv"``).
        latent_size: (h, w) of the fixed noise input; ``map_size`` must be it times a power of 2.
        latent_channels: channels of the fixed noise input.
        channels: conv channels per resolution, coarse to fine (one upsampling between each);
            ``len(channels) - 1`` doublings lead from ``latent_size`` to ``map_size``.
        output_scale: without the split, the map is ``tanh(.) * output_scale`` cm.
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
    steps: int = 150
    lr: float = 1e-2
    free_lr: float = 3e-3
    lr_decay: float = 0.1
    appearance_every: int = 10
    appearance_init_iterations: int = 8
    appearance_iterations: int = 2
    albedo_smoothness: float = 1e-3
    albedo_smoothness_start: float = 1e-3
    anneal: float = 0.5
    photometric: float = 1.0
    noise_reference: float = 0.05
    unclip: bool = True
    landmark: float = 1e-3
    landmarks: str = "all"
    anchor: float = 0.03
    anchor_landmarks: str = "jaw_brows"
    smooth_magnitude: float = 0.01
    magnitude: float = 1e-3
    laplacian: float = 0.3
    smooth_cm: float = 1.5
    smooth_scale: float = 0.5
    detail_scale: float = 0.5
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
        for name in ("landmarks", "anchor_landmarks"):
            if getattr(self, name) not in LANDMARK_SETS:
                raise ValueError(f"{name} must be one of {tuple(LANDMARK_SETS)}, got {getattr(self, name)!r}")
        if self.noise_reference < 0:
            raise ValueError(f"noise_reference must be >= 0, got {self.noise_reference}")
        if self.smooth_cm < 0:
            raise ValueError(f"smooth_cm must be >= 0, got {self.smooth_cm}")
        if self.displacement not in DISPLACEMENTS:
            raise ValueError(f"displacement must be one of {DISPLACEMENTS}, got {self.displacement!r}")
        k = 2 ** (len(self.channels) - 1)
        if tuple(self.map_size) != (self.latent_size[0] * k, self.latent_size[1] * k):
            raise ValueError(f"map_size {self.map_size} must be latent_size {self.latent_size} x {k}")


@dataclass(frozen=True)
class ResidualResult:
    """What :func:`fit_residual` returns (one face).

    Attributes:
        fit: the input fit with the residual applied (:meth:`FitResult.apply_residual`): its mesh,
            ``landmarks_fitted`` (the mesh's) and ``landmarks_linear`` (the linear fit's).
        residual: (1, V, 3) model-space offsets, cm (zeros for ``"none"``).
        smooth: (1, V, 3) the residual's smooth part, cm (None without the split).
        displacement: (C, Hd, Wd) the generator's UV displacement map, cm (smooth part plus
            detail), C = 1 (along the normals) or 3 (model space) per ``config.displacement``
            (None unless ``"conv"``).
        albedo: (1, V, 3) per-vertex RGB albedo in [0, 1] of the appearance model.
        lighting: (9,) grey spherical-harmonics coefficients (see :func:`sh_shading`).
        noise: the noise sigma the working crop's photometric pixels show ([0, 1] units) and
            ``data_weight`` the photometric term's weight under it (``config.noise_reference``).
        losses: per step of each of :data:`LOSS_NAMES`.
        ms: wall time of the fit, milliseconds.
    """

    fit: FitResult
    residual: torch.Tensor
    smooth: torch.Tensor | None
    displacement: torch.Tensor | None
    albedo: torch.Tensor
    lighting: torch.Tensor
    noise: float
    data_weight: float
    losses: dict[str, list[float]]
    ms: float


def mesh_operators(model, config: ResidualConfig = ResidualConfig()) -> MeshOperators:
    """The :class:`MeshOperators` of ``model`` for ``config.region`` and ``config.feature_radius_cm``."""
    return _mesh_operators(model, config.region, config.feature_radius_cm)


# ---------------------------------------------------------------------------------------- the fit
LOSS_NAMES = ("total", "photometric", "landmark", "anchor", "smooth_magnitude", "magnitude", "laplacian")


class _Scene:
    """The working crop of one face: the photo resized around the face, the camera in crop pixels,
    the linear fit's geometry, the landmarks' targets and weights and the photometric weights
    (region minus features, facing the camera at the linear fit, away from depth jumps and the
    outline), the noise those pixels show and the data term's weight under it."""

    def __init__(self, model, image: np.ndarray, fit: FitResult, config: ResidualConfig, landmark_offset,
                 weights):  # fmt: skip
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
        self.crop_map = (box, scale)
        self._landmarks(model, fit, config, landmark_offset, weights)
        self.n0 = normals(self.v0, ops)[0]
        facing = -(self.n0 * F.normalize(self.v0[0], dim=-1)).sum(-1) > config.min_facing
        self.wv = ops.photo_weight * facing.float()
        self.keep = torch.ones(h, w)
        with torch.no_grad():  # drop pixels at depth discontinuities and the outline (mixed in the
            # photo), and any padding around the photo
            _, tri, bary, wpix, cov, z = self.raster(self.v0)
            edges = away_from_edges(z, cov, config.depth_jump_cm).float()
            self.keep.copy_(edges * in_photo(image, box, (h, w)))
        wpix = wpix * self.keep[cov]
        seen = torch.zeros(h, w, dtype=torch.bool)
        seen[cov] = wpix > 0
        self._adapt_to_noise(seen)
        self.initial = (self.photo[cov], tri, bary, wpix)  # the linear mesh's raster, for the first solve

    def _adapt_to_noise(self, seen: torch.Tensor) -> None:
        """Read the noise of the working crop on its ``seen`` pixels (the photometric ones), undo
        the bias its clipping added (``config.unclip``) and weight the data term under it."""
        config = self.config
        self.noise = noise_sigma(self.photo, seen)
        if config.unclip:  # the noise was clipped at the photo's resolution, before the resize
            sx, sy = self.crop_map[1]
            self.photo = unclip(self.photo, self.noise * max(1.0, (sx * sy) ** -0.5))
        r2 = config.noise_reference**2
        self.data_weight = r2 / (r2 + self.noise**2) if r2 > 0 else 1.0

    def _landmarks(self, model, fit: FitResult, config: ResidualConfig, landmark_offset, weights) -> None:
        """The landmark term's targets (crop pixels), vertices, offsets, weights and unit."""
        f32 = torch.float32
        tg = fit.landmarks_target[0].to(f32).cpu()
        self.lm_scale = float((tg.amax(0) - tg.amin(0)).prod().clamp(min=1.0).sqrt()) / 100.0  # 1 % of face
        self.targets = to_crop(tg, *self.crop_map)
        self.lm_ids = model.landmark_ids.cpu()
        self.lm_offset = torch.zeros(68, 3)
        if landmark_offset is not None:
            self.lm_offset = torch.as_tensor(landmark_offset, dtype=f32).reshape(68, 3)
        w = torch.ones(68) if weights is None else torch.as_tensor(weights, dtype=f32).reshape(68).clone()
        self.lm_weight = _restricted(w, config.landmarks)
        self.anchor_weight = _restricted(w, config.anchor_landmarks)

    def landmark_error(self, verts: torch.Tensor) -> torch.Tensor:
        """The landmark term of (1, V, 3) model-space vertices (weighted mean squared % of the face)."""
        cam = to_camera(verts[:, self.lm_ids] + self.lm_offset, self.R, self.t)
        px = project(cam, self.K)[0]
        e2 = ((px - self.targets) ** 2).sum(-1) / (self.lm_scale * self.crop_map[1][0]) ** 2
        return (self.lm_weight * e2).sum()

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


def _restricted(weights: torch.Tensor, name: str) -> torch.Tensor:
    """(68,) ``weights`` outside the landmark set ``name`` set to 0, the rest normalised to sum 1."""
    w = weights.clone()
    w[[i for i in range(68) if i not in LANDMARK_SETS[name]]] = 0.0
    return w / w.sum().clamp(min=1e-9)


def _objective(
    scene: _Scene,
    app: Appearance,
    parts: tuple[torch.Tensor, torch.Tensor | None],
    resolve: bool,
    step: int,
    losses: dict[str, list[float]],
) -> torch.Tensor:
    """The weighted loss of the residual ``parts`` ((1, V, 3) offsets and their smooth part or
    None), each term appended to ``losses``: photometric (albedo x shading vs the photo,
    re-solving the appearance first when ``resolve``), landmarks, the residual at the landmarks,
    smooth part's magnitude, magnitude and Laplacian."""
    res, smooth = parts
    config, base, R, t = scene.config, scene.base, scene.R, scene.t
    vc = to_camera(base + res, R, t)
    y, tri, bary, wpix, *_ = scene.raster(vc)
    nv = normals(vc, scene.ops)[0]
    if resolve:
        app.solve(y, tri, bary.detach(), wpix, nv, config.appearance_iterations, step)
    bary = bary if config.raster_gradients else bary.detach()
    color = app.albedo * sh_shading(nv, torch.from_numpy(app.lighting).to(torch.float32))[:, None]
    err = ((interpolate_at_pixels(color, tri, bary) - y) ** 2).sum(-1)
    terms = (
        scene.data_weight * (err * wpix).sum() / wpix.sum().clamp(min=1.0),
        scene.landmark_error(base + res),
        (scene.anchor_weight * (res[0, scene.lm_ids] ** 2).sum(-1)).sum(),
        (smooth**2).sum(-1).mean() if smooth is not None else res.new_zeros(()),
        (res**2).sum(-1).mean(),
        (scene.ops.laplacian(res[0]) ** 2).sum(-1).mean(),
    )
    c = config
    weights = (c.photometric, c.landmark, c.anchor, c.smooth_magnitude, c.magnitude, c.laplacian)
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
    landmark_weights=None,
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
        landmark_weights: (68,) weights of the landmarks in the landmark term (the landmark
            fit's, :func:`residual_face`); None: all 1.
    Returns:
        :class:`ResidualResult`; ``result.fit`` is the refined face.
    """
    t_start = time.perf_counter()
    if fit.batch_size != 1:
        raise ValueError(f"fit_residual takes one face, got a batch of {fit.batch_size}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image: expected (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    scene = _Scene(model, image, fit, config, landmark_offset, landmark_weights)
    app = Appearance(model, scene.ops, config, appearance, scene.data_weight)
    anneal_from = 0 if config.parametrisation != "none" else config.steps  # "none": final prior only
    app.solve(*scene.initial, scene.n0, config.appearance_init_iterations, anneal_from)
    unknown = Displacement(model, scene.ops, scene.base, config)
    opt = Adam(unknown.params, lr=unknown.lr0) if unknown.params else None
    losses: dict[str, list[float]] = {k: [] for k in LOSS_NAMES}
    for step in range(config.steps if unknown.params else 0):
        resolve = step > 0 and step % config.appearance_every == 0
        total = _objective(scene, app, unknown.parts()[:2], resolve, step, losses)
        for g in opt.param_groups:
            g["lr"] = unknown.lr0 * config.lr_decay ** (step / max(config.steps - 1, 1))
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
    with torch.no_grad():  # final appearance and losses at the final geometry
        res, smooth, disp = unknown.parts()
        _objective(scene, app, (res, smooth), True, config.steps, losses)
    res = res.detach().to(fit.rotation.device)
    return ResidualResult(
        fit=fit.apply_residual(model, res, landmark_offset),
        residual=res,
        smooth=None if smooth is None else smooth.detach(),
        displacement=None if disp is None else disp[0].detach(),
        albedo=app.albedo.clamp(0, 1)[None],
        lighting=torch.from_numpy(app.lighting).to(torch.float32),
        noise=scene.noise,
        data_weight=scene.data_weight,
        losses=losses,
        ms=(time.perf_counter() - t_start) * 1e3,
    )


def face_landmark_weights(model, face, fit_config: FitConfig = FitConfig()) -> torch.Tensor:
    """(68,) the landmark fit's weights of a :class:`face3d.fit.pipeline.FaceFit`'s landmarks (its
    source's jaw weight). On dlib's points at a yaw where the landmark fit matched the jaw to the
    visible outline (silhouette), the jaw points whose anatomical vertex turns away from the
    camera (the outline is not them) weigh 0."""
    cfg = fit_config.for_source(face.landmark_source)
    w = landmark_weights(cfg, 1)[0].float()
    fit = face.fit
    if cfg.silhouette and abs(float(fit.yaw_pitch_roll[0, 0])) >= cfg.silhouette_min_yaw:
        with torch.no_grad():
            vc = fit.with_residual(None).vertices_cam(model).float().cpu()
            n = normals(vc, mesh_operators(model))[0, model.landmark_ids.cpu()]
            facing = -(n * F.normalize(vc[0, model.landmark_ids.cpu()], dim=-1)).sum(-1)
        w[:17] = torch.where(facing[:17] > 0.25, w[:17], torch.zeros(17))
    return w


def residual_face(model, image: np.ndarray, face, config: ResidualConfig = ResidualConfig(),
                  fit_config: FitConfig = FitConfig()):  # fmt: skip
    """:func:`fit_residual` of a :class:`face3d.fit.pipeline.FaceFit` (its landmark convention and
    weights, :func:`face_landmark_weights`): (the ``FaceFit`` whose fit carries the residual, its
    time under ``timings_ms["residual"]``, the :class:`ResidualResult`)."""
    weights = face_landmark_weights(model, face, fit_config)
    res = fit_residual(model, image, face.fit, config, None, face.landmark_offset, weights)
    return replace(face, fit=res.fit, timings_ms={**face.timings_ms, "residual": res.ms}), res
