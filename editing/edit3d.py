"""3D-guided expression editing: the photo's own pixels, moved by the 3D motion of the face.

The fit uses the face + head model; the edit uses the whole head with its mouth socket, gums,
tongue, teeth and eyeballs (the eye's translucent layers are never drawn). Per target expression:

1. **Warp** (:mod:`editing.warp`): the head rendered at the target gives, per pixel, the surface
   point it shows; that point on the source mesh, projected, is where the photo shows it. The
   photo is sampled through that backward map; skin just behind an occluding contour moves with
   the occluder (a fitted silhouette a few pixels off must not drag the photo's edge); motion
   around the face falls smoothly to zero and pixels moving less than 0.05 px keep their bytes.
2. **Shading** (:mod:`editing.shading`): the warped skin is multiplied by the expression ratio
   image under SH lighting fitted to the photo (1 where the shape does not change).
3. **Synthesis** (:mod:`editing.mouth`): only interior surface points the photo never showed
   (teeth, gums, tongue, the mouth socket) are drawn, toned to the photo; skin a moving lip or jaw
   reveals takes the nearby photo pixels through the extended motion. Where the backward map
   lands inside the photo's own opening (its detected inner lips apart,
   :func:`editing.mouth.photo_opening`) the photo showed the interior, even if the fitted source
   mesh did not: its teeth are moved, not drawn over; parts under 3 px wide, or under
   :data:`MIN_DRAWN_PX` or :data:`MIN_DRAWN_FRAC` of the face's size squared in area, are left to
   the warp too (a drawn sliver reads as a crack, a drawn blob of a few pixels as a speck).

Only pixels that changed differ from the input; every other pixel is byte-identical. The UV atlas
(:meth:`Editor3D.sample_texture`) is kept for exports and synthetic tests, not used by the edit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from functools import cached_property

import cv2
import numpy as np
import torch

from editing.composite import CompositeConfig, dilation_px, edit_region, falloff
from editing.edit_layers import EditLayers, compose, shaded, upscale_edit
from editing.expressions import ExpressionSpec
from editing.mouth import (
    drawable,
    lips_saturation,
    mouth_opening,
    opened,
    part_colors,
    photo_opening,
    photo_tone,
    render_interior,
    sclera_colour,
    tone_pixels,
)
from editing.shading import fit_lighting, ratio_image
from editing.warp import WarpConfig, dense_motion, hold_behind_occluders, moving, sampled_mask, surface_map
from face3d.camera import project
from face3d.crop import photo_extent
from face3d.filters import extra_blur
from face3d.fit.pipeline import FaceFit
from face3d.ict import EYE_EXTRAS_FIRST, FACE_LAST, HEAD_LAST
from face3d.render import RenderConfig, UVLayout, atlas_corner_uvs, extract_texture, rasterize, uv_layout
from face3d.render.shading import interpolate_vertices, vertex_normals
from face3d.render.texture_fill import (
    FLAT_COLORS,
    LUMA_601,
    fill_from_mirror,
    inpaint_texture,
    is_greyscale,
    mirror_vertices,
    toned_flat_colors,
)

REACH_SIDE, REACH_UP, REACH_FADE = 0.22, 0.5, 0.1
"""The warp's reach: the landmark box grown by REACH_SIDE of its size left, right and down and
REACH_UP upward, with the motion fading to zero over REACH_FADE of the box size beyond."""


@dataclass(frozen=True)
class EditConfig:
    """Settings of the 3D edit.

    Attributes:
        texture_size: (Ht, Wt) of the UV atlas sampled from the photo.
        margin_frac: the work crop is the face's projected box grown by this fraction per side.
        mirror_fill: fill texels hidden in the photo from the mirrored side of the face.
        render: rasteriser backend and shading of the interior parts.
        composite: dilation and feathering of the region handed to a clean-up (``alpha``).
        warp: how the motion is extended around the known surface points.
        shading: multiply the warped skin by the expression ratio image.
        shading_strength: the exponent of that ratio (1: the model's full change of shading, 0:
            none). The SH lighting is fitted to the photo's luminance, albedo included, so the
            full ratio tends to overstate creases. 0.5 was chosen on the dev train half: the dlib
            identity distance falls steadily with the strength (happy near frontal 0.366 at 1,
            0.332 at 0.5, 0.314 at 0) and half keeps the creases visible (docs/history.md).
        max_face_px: a face whose fitted landmarks span more pixels than this (the longer side of
            their box) is edited on the photo resized to bring it to this size, and the edit's
            layers (motion, shading, painted interior: :mod:`editing.edit_layers`) are carried back to
            the full resolution, where the photo's own pixels are warped; 0: always at full
            resolution. A phone photo's 1,500 px face then takes seconds, not minutes.
    """

    texture_size: tuple[int, int] = (512, 1024)
    margin_frac: float = 0.15
    mirror_fill: bool = True
    render: RenderConfig = field(default_factory=RenderConfig)
    composite: CompositeConfig = field(default_factory=CompositeConfig)
    warp: WarpConfig = field(default_factory=WarpConfig)
    shading: bool = True
    shading_strength: float = 0.5
    max_face_px: int = 512

    def __post_init__(self):
        if not 0.0 <= self.shading_strength <= 1.0:
            raise ValueError(f"shading_strength must be in [0, 1], got {self.shading_strength}")
        if self.max_face_px < 0 or 0 < self.max_face_px < 64:
            raise ValueError(f"max_face_px must be 0 (off) or at least 64, got {self.max_face_px}")


@dataclass(frozen=True)
class FaceEdit:
    """One face edited to one target expression.

    Attributes:
        image: (H, W, 3) uint8 full-resolution result (only this face edited).
        render: (h, w, 3) uint8 the edited head in the work crop (black where nothing is drawn).
        crop: (x0, y0, x1, y1) the work crop in the image, pixels (exclusive ends).
        region: (H, W) bool pixels that may differ from the input (the changed pixels, dilated).
        alpha: (H, W) float32 feathered weight for a clean-up's paste-back (zero outside ``region``).
        source: (K_exp,) fitted weights; target: (K_exp,) edited weights.
        timings_ms: ``texture`` (per face: source render and lighting), ``render`` (warp, shading
            and synthesis of this target) and ``composite``; the fit is timed by FaceFit.
        synthesized: (H, W) bool pixels drawn from the model (the interior the photo never showed).
    """

    image: np.ndarray
    render: np.ndarray
    crop: tuple[int, int, int, int]
    region: np.ndarray
    alpha: np.ndarray
    source: np.ndarray
    target: np.ndarray
    timings_ms: dict[str, float]
    synthesized: np.ndarray | None = None


@dataclass(frozen=True)
class MotionField:
    """The 3D warp's motion of one face to one target (:meth:`Editor3D.motion_field`).

    Attributes:
        motion: (h, w, 2) float32 backward motion in the work crop, pixels: the edit samples the
            photo at ``p + motion[p]`` (zero outside ``region``, where the edit keeps the photo).
        crop: (x0, y0, x1, y1) the work crop in the image, pixels (exclusive ends).
        region: (H, W) bool; alpha: (H, W) float32, as :class:`FaceEdit`'s.
        target: (K_exp,) edited weights.
    """

    motion: np.ndarray
    crop: tuple[int, int, int, int]
    region: np.ndarray
    alpha: np.ndarray
    target: np.ndarray


class Editor3D:
    """Reusable editing context: the render model, its UV layout and mirror map.

    Args:
        render_model: :class:`MorphableModel` with ``subset="full"``.
        config: :class:`EditConfig`.
    """

    def __init__(self, render_model, config: EditConfig = EditConfig()):
        if render_model.n_vertices <= HEAD_LAST + 1:
            raise ValueError("the render model must be the full head (subset='full')")
        self.model = render_model
        self.config = config
        faces = render_model.faces
        keep = (faces < EYE_EXTRAS_FIRST).all(1)
        self.faces = faces[keep]
        self.n_skin = int((self.faces <= HEAD_LAST).all(1).sum())  # face + head triangles come first
        skin_uvs = render_model.face_uvs[keep][: self.n_skin]
        self.skin_corner_uvs = atlas_corner_uvs(render_model.uvs, skin_uvs)
        self.corner_uvs = torch.cat(
            [self.skin_corner_uvs, self.skin_corner_uvs.new_zeros(len(self.faces) - self.n_skin, 3, 2)], 0
        )
        dev = render_model.template.device
        flat = torch.full((render_model.n_vertices, 3), 0.5, device=dev)
        for region, color in FLAT_COLORS.items():
            a, b = render_model.regions[region]
            flat[a : b + 1] = torch.tensor(color, device=dev)
        self.flat_colors = flat
        self.changeable = torch.zeros(render_model.n_vertices, dtype=torch.bool, device=dev)
        self.changeable[: FACE_LAST + 1] = True
        self.changeable[HEAD_LAST + 1 :] = True
        self.face_changeable = self.changeable[self.faces].all(1)
        a, b = render_model.regions["mouth_socket"][0], render_model.regions["teeth"][1]
        self.face_interior = ((self.faces >= a) & (self.faces <= b)).all(1).numpy()
        self.face_skin = (self.faces <= HEAD_LAST).all(1).numpy()
        self.face_tone = (self.faces <= render_model.regions["narrow_face"][1]).all(1).numpy()
        a, b = render_model.regions["eyeball_left"][0], render_model.regions["eyeball_right"][1]
        self.face_eyeball = ((self.faces >= a) & (self.faces <= b)).all(1).numpy()

    @cached_property
    def layout(self) -> UVLayout:
        """The skin's UV atlas layout, for :meth:`sample_texture` only (built on first use)."""
        return uv_layout(self.skin_corner_uvs, self.config.texture_size, self.config.render)

    @cached_property
    def mirror(self) -> torch.Tensor:
        """(V,) each vertex's mirror vertex, for :meth:`sample_texture` only (built on first use)."""
        return mirror_vertices(self.model.template)

    # ------------------------------------------------------------------ helpers
    def _vertices_cam(self, face: FaceFit, expression: torch.Tensor) -> torch.Tensor:
        t = self.model.template
        return face.fit.vertices_cam(self.model, expression.to(t.device, t.dtype)[None])

    def _crop(self, verts: list[torch.Tensor], K: torch.Tensor, extent) -> tuple[int, int, int, int]:
        """The work crop: the projected face and its margin, within ``extent`` (x0, y0, x1, y1)."""
        ex0, ey0, ex1, ey1 = extent
        pts = torch.cat([project(v[:, : FACE_LAST + 1], K)[0] for v in verts], 0)
        pts = pts[torch.isfinite(pts).all(1)]
        lo, hi = pts.amin(0), pts.amax(0)
        m = float((hi - lo).max()) * self.config.margin_frac + 4
        x0, y0 = int(max(ex0, np.floor(float(lo[0]) - m))), int(max(ey0, np.floor(float(lo[1]) - m)))
        x1, y1 = int(min(ex1, np.ceil(float(hi[0]) + m) + 1)), int(min(ey1, np.ceil(float(hi[1]) + m) + 1))
        if x1 - x0 < 2 or y1 - y0 < 2:
            raise ValueError("the face projects outside the image")
        return x0, y0, x1, y1

    def sample_texture(self, crop_img: torch.Tensor, verts_cam: torch.Tensor, K: torch.Tensor):
        """Atlas texture (filled) and per-vertex colours of the whole head from the photo crop."""
        cfg = self.config
        tex = extract_texture(crop_img, verts_cam, self.faces, K, self.layout, cfg.render)
        texture, known = tex.texture, tex.visible
        if cfg.mirror_fill:
            frags, _, _ = rasterize(
                verts_cam, self.faces, K, crop_img.shape[1:3], RenderConfig(cfg.render.backend)
            )
            texture, known = fill_from_mirror(
                texture,
                known,
                crop_img,
                verts_cam,
                self.faces,
                K,
                self.layout,
                self.mirror,
                frags.zbuf[..., 0],
                frags.pix_to_face[..., 0] >= 0,
            )
        texture = inpaint_texture(texture, known, self.layout.valid)
        flat = toned_flat_colors(self.flat_colors, crop_img)  # grey in a greyscale photo
        colors = torch.where(tex.vertex_visible[0][:, None], tex.vertex_colors[0], flat)
        colors[: HEAD_LAST + 1] = tex.vertex_colors[0][: HEAD_LAST + 1]  # unused: skin is textured
        return texture, colors

    def _geometry(self, face: FaceFit, specs: list[ExpressionSpec], extent):
        """Source and target weights, their camera-space vertices, the work crop (within the photo's
        ``extent``, :func:`face3d.crop.photo_extent`) and its intrinsics."""
        names = self.model.expression_names
        source = face.fit.expression[0].detach().cpu().double()
        targets = [
            torch.as_tensor(np.asarray(s.apply(source.numpy(), names)), dtype=torch.float64) for s in specs
        ]
        v_src = self._vertices_cam(face, source)
        v_tgts = [self._vertices_cam(face, t) for t in targets]
        crop = self._crop([v_src, *v_tgts], face.fit.intrinsics, extent)
        K = face.fit.intrinsics.clone()
        K[:, 2] -= crop[0]
        K[:, 3] -= crop[1]
        return source, targets, v_src, v_tgts, crop, K

    # ------------------------------------------------------------------ the edit
    def edit_face(self, image: np.ndarray, face: FaceFit, specs: list[ExpressionSpec]) -> list[FaceEdit]:
        """Edit one fitted face of ``image`` ((H, W, 3) uint8) to each target expression (a face
        larger than ``config.max_face_px`` at a smaller scale, its layers applied at full
        resolution)."""
        span = float(np.ptp(face.fit.landmarks_fitted[0].detach().cpu().double().numpy(), axis=0).max())
        cap = self.config.max_face_px
        if cap and span > cap:
            return self._edit_face_scaled(image, face, specs, cap / span)
        return [edit for edit, _ in self.edit_layers(image, face, specs)]

    def _edit_face_scaled(self, image: np.ndarray, face: FaceFit, specs, scale: float) -> list[FaceEdit]:
        """:meth:`edit_face` on ``image`` resized by ``scale``, carried back to full resolution."""
        t0 = time.perf_counter()
        H, W = image.shape[:2]
        size = (max(2, round(H * scale)), max(2, round(W * scale)))
        small = cv2.resize(image, size[::-1], interpolation=cv2.INTER_AREA)
        extent = photo_extent(image)
        resize_ms = (time.perf_counter() - t0) * 1e3
        edits = []
        for e, layers in self.edit_layers(small, face.resized(size), specs):
            t1 = time.perf_counter()
            placed = upscale_edit(image, extent, size, e.crop, e.region, e.alpha, layers)
            x0, y0, x1, y1 = placed.crop
            result = image.copy()
            result[y0:y1, x0:x1] = placed.out
            ms = {"texture": e.timings_ms["texture"] + resize_ms,
                  "render": e.timings_ms["render"] + (time.perf_counter() - t1) * 1e3}  # fmt: skip
            head = placed.out * placed.head[..., None]
            edits.append(replace(e, image=result, render=head, crop=placed.crop, region=placed.region,
                                 alpha=placed.alpha, timings_ms={**e.timings_ms, **ms},
                                 synthesized=placed.synthesized))  # fmt: skip
        return edits

    def edit_layers(self, image: np.ndarray, face: FaceFit, specs: list[ExpressionSpec]):
        """:meth:`edit_face` at the image's own resolution, each edit with its
        :class:`editing.edit_layers.EditLayers` (of its work crop): ``[(FaceEdit, EditLayers), ...]``."""
        H, W = image.shape[:2]
        with torch.no_grad():
            t0 = time.perf_counter()
            source, targets, v_src, v_tgts, crop, K = self._geometry(face, specs, photo_extent(image))
            x0, y0, x1, y1 = crop
            photo = np.ascontiguousarray(image[y0:y1, x0:x1])
            src = self._source_view(photo, v_src, K)
            src["opening"] = photo_opening(face.landmarks_detected, (x0, y0), photo.shape[:2])
            prep_ms = (time.perf_counter() - t0) * 1e3
            edits = []
            for target, v_tgt in zip(targets, v_tgts, strict=True):
                t1 = time.perf_counter()
                frags, region, alpha, reach = self._target_region(face, crop, (H, W), v_tgt, K, src)
                layers, warped = self._layers(photo, v_src, v_tgt, K, src, frags, reach)
                out = compose(photo, layers, warped)
                out[~region[y0:y1, x0:x1]] = photo[~region[y0:y1, x0:x1]]  # nothing moves beyond it
                t2 = time.perf_counter()
                result = image.copy()
                result[y0:y1, x0:x1] = out
                synthesized = np.zeros((H, W), bool)
                synthesized[y0:y1, x0:x1] = layers.synthesized
                t3 = time.perf_counter()
                timings = {"texture": prep_ms, "render": (t2 - t1) * 1e3, "composite": (t3 - t2) * 1e3}
                edit = FaceEdit(result, out * layers.head[..., None], crop, region, alpha, source.numpy(),
                                target.numpy(), timings, synthesized)  # fmt: skip
                edits.append((edit, layers))
        return edits

    def motion_field(
        self, image: np.ndarray, face: FaceFit, specs: list[ExpressionSpec]
    ) -> list[MotionField]:
        """The backward motion :meth:`edit_face` samples the photo through, per target (the 3D warp
        without its shading and synthesis: the teacher of the 2D baseline's deformation generator)."""
        H, W = image.shape[:2]
        with torch.no_grad():
            _, targets, v_src, v_tgts, crop, K = self._geometry(face, specs, photo_extent(image))
            x0, y0, x1, y1 = crop
            src = self._source_geometry((y1 - y0, x1 - x0), v_src, K)
            fields = []
            for target, v_tgt in zip(targets, v_tgts, strict=True):
                frags, region, alpha, reach = self._target_region(face, crop, (H, W), v_tgt, K, src)
                dense = self._motion(v_src, v_tgt, K, src, frags, reach)[1]
                dense[~region[y0:y1, x0:x1]] = 0.0  # edit_face keeps the photo's bytes there
                fields.append(MotionField(dense, crop, region, alpha, target.numpy()))
        return fields

    def _target_region(self, face: FaceFit, crop, shape, v_tgt, K, src: dict):
        """One target's render fragments, paste-back region and alpha (H, W), and the work crop's
        motion reach (h, w)."""
        x0, y0, x1, y1 = crop
        frags = rasterize(v_tgt, self.faces, K, (y1 - y0, x1 - x0), self.config.render)[0]
        hard = np.zeros(shape, bool)
        hard[y0:y1, x0:x1] = src["changeable"] | self._changeable_pixels(frags)
        region, alpha = edit_region(hard, self.config.composite)
        reach = falloff(hard, dilation_px(hard, self.config.composite))[y0:y1, x0:x1]
        return frags, region, alpha, reach * self._box_reach(face, crop)

    def _box_reach(self, face: FaceFit, crop) -> np.ndarray:
        """(h, w) weight of the work crop: 1 inside the face's landmark box grown by
        :data:`REACH_SIDE` (:data:`REACH_UP` upward), falling smoothly to 0 over
        :data:`REACH_FADE` of the box's width (height) beyond it: an expression moves the face, not the neck
        below the jaw, the hair or the collar."""
        x0, y0, x1, y1 = crop
        lm = face.fit.landmarks_fitted[0].detach().cpu().double().numpy()
        (bx0, by0), (bx1, by1) = lm.min(0), lm.max(0)
        w, h = bx1 - bx0, by1 - by0
        xs, ys = np.arange(x0, x1, dtype=np.float64), np.arange(y0, y1, dtype=np.float64)
        dx = np.maximum(np.maximum(bx0 - REACH_SIDE * w - xs, xs - bx1 - REACH_SIDE * w), 0.0)
        dy = np.maximum(np.maximum(by0 - REACH_UP * h - ys, ys - by1 - REACH_SIDE * h), 0.0)
        dx, dy = dx / max(REACH_FADE * w, 1.0), dy / max(REACH_FADE * h, 1.0)  # fade per axis
        t = np.clip(1.0 - np.hypot(dy[:, None], dx[None, :]), 0.0, 1.0)
        return (t * t * (3.0 - 2.0 * t)).astype(np.float32)

    def _changeable_pixels(self, frags) -> np.ndarray:
        pix = frags.pix_to_face[0, ..., 0]
        return ((pix >= 0) & self.face_changeable[pix.clamp(min=0)]).numpy()

    def _source_view(self, photo: np.ndarray, v_src: torch.Tensor, K: torch.Tensor) -> dict:
        """Per face, once: the source render (depth, coverage, changeable pixels), the photo's SH
        lighting over the visible face, the interior colours and their toning (to the facial skin
        around the mouth: the head's mesh also covers hair, and a turned face's far side is in
        shadow)."""
        geo = self._source_geometry(photo.shape[:2], v_src, K)
        frags = geo.pop("frags")
        pix = frags.pix_to_face[0, ..., 0]
        skin = (geo["covered"][0] & torch.from_numpy(self.face_skin)[pix.clamp(min=0)]).numpy()
        face = (geo["covered"][0] & torch.from_numpy(self.face_tone)[pix.clamp(min=0)]).numpy()
        normals = interpolate_vertices(frags, geo["normals"], self.faces)[0]
        normals = torch.nn.functional.normalize(normals, dim=-1).float().numpy()
        crop_t = torch.from_numpy(photo.astype(np.float32) / 255.0)[None]
        lips = project(self.model.landmarks(v_src), K)[0].numpy()  # the fitted 68 landmarks, crop pixels
        return {
            **geo,
            "light": fit_lighting(photo, normals, skin) if self.config.shading else None,
            "colors": part_colors(self.model, is_greyscale(crop_t)),
            "tone": photo_tone(photo, tone_pixels(lips, face), sclera_colour(photo, lips)),
            "saturation": lips_saturation(photo, lips),
            "blur": extra_blur(photo, geo["covered"][0].numpy()),
        }

    def _source_geometry(self, size, v_src, K) -> dict:
        """The source render in the work crop of ``size`` (h, w): fragments, depth, coverage,
        changeable pixels, and the source mesh's vertex normals."""
        frags, _, _ = rasterize(v_src, self.faces, K, size, self.config.render)
        return {
            "frags": frags,
            "normals": vertex_normals(v_src, self.faces),
            "depth": frags.zbuf[..., 0],
            "covered": (frags.pix_to_face[0, ..., 0] >= 0)[None],
            "changeable": self._changeable_pixels(frags),
        }

    def _motion(self, v_src, v_tgt, K, src: dict, frags, reach: np.ndarray):
        """``(surface map, dense backward motion (h, w, 2) scaled by reach, face size px)``."""
        h, w = reach.shape
        smap = surface_map(
            frags,
            v_src,
            v_tgt,
            self.faces,
            K,
            src["depth"],
            src["covered"],
            self.config.warp.tolerance_cm,
            torch.from_numpy(self.face_interior),
            src["normals"],
        )
        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        motion = smap.source_px - np.stack([gx, gy], -1)
        face_size = float(np.sqrt(max(smap.covered.sum(), 1)))
        movable = ~(self.face_interior | self.face_eyeball)[smap.face.clip(min=0)]
        motion = hold_behind_occluders(motion, smap, movable, face_size, self.config.warp)
        dense = dense_motion(motion, smap.seen, face_size, self.config.warp) * reach[..., None]
        return smap, dense, face_size

    def _layers(self, photo: np.ndarray, v_src, v_tgt, K, src: dict, frags, reach: np.ndarray):
        """One target in the work crop: ``(its EditLayers, the photo warped and shaded)``;
        ``reach`` (h, w) scales the motion and the shading change down to zero at the edit
        region's border."""
        h, w = photo.shape[:2]
        smap, dense, face_size = self._motion(v_src, v_tgt, K, src, frags, reach)
        part = smap.face.clip(min=0)
        ratio = np.ones((h, w), np.float32)
        if src["light"] is not None:
            skin = smap.seen & self.face_skin[part]
            r = ratio_image(smap.normal_target, smap.normal_source, skin, src["light"])
            r = r ** np.float32(self.config.shading_strength)  # 1 stays exactly 1
            ratio = np.where(reach > 0, 1.0 + (r - 1.0) * reach, 1.0).astype(np.float32)
        paint, paint_alpha = np.zeros((h, w, 3), np.float32), np.zeros((h, w), np.float32)
        layers = EditLayers(dense, ratio, paint, paint_alpha, np.zeros((h, w), bool), smap.covered)
        warped = shaded(photo, layers)
        revealed_eyes = smap.covered & ~smap.seen & self.face_eyeball[part]
        _paint_revealed_eyeballs(paint, paint_alpha, warped, revealed_eyes, smap, self.face_eyeball)
        interior = smap.covered & self.face_interior[part]
        # the photo shows an interior point only over an area: a crack between teeth of the source
        # mesh (a pixel wide) that the target moves is not a view of the throat
        thin = interior & smap.seen & ~opened(interior & smap.seen) & moving(dense)
        lips = self.model.landmarks(v_tgt)
        synth = interior & (~smap.seen | thin) & mouth_opening(lips, K, (h, w), face_size)
        synth &= ~sampled_mask(src["opening"], dense)  # the photo's own opening, moved: no drawing
        synth = drawable(synth, face_size)
        if synth.any():  # a soft edge (the photo's blur, at least 0.7 px): an outline reads as a cut-out
            args = (src["colors"], synth, src["tone"], src["blur"], src["saturation"])
            drawn = render_interior(frags, v_tgt, self.faces, *args)
            a = cv2.GaussianBlur(synth.astype(np.float32), (0, 0), max(0.7, src["blur"]))
            paint[synth] = drawn[synth]
            paint_alpha[synth] = np.where(a > 0.98, 1.0, a)[synth]
        return replace(layers, synthesized=synth), warped


def _paint_revealed_eyeballs(paint: np.ndarray, alpha: np.ndarray, warped: np.ndarray, revealed: np.ndarray,
                             smap, face_eyeball: np.ndarray) -> None:  # fmt: skip
    """Eyeball the photo never showed (an eye opening wider): in the photo the eyelid covers it, so
    the warp would stretch the lid (or its make-up) over it. It takes the colour of the photo's own
    visible sclera instead: the brighter half of the seen eyeball pixels of the same eye side in
    the ``warped`` photo, their median, kept in place (``paint`` and its ``alpha`` are modified)."""
    if not revealed.any():
        return
    seen = smap.seen & face_eyeball[smap.face.clip(min=0)]
    if seen.sum() < 8:
        return
    cols = np.nonzero(seen)[1]
    middle = 0.5 * (cols.min() + cols.max())
    for side in (np.arange(warped.shape[1]) < middle, np.arange(warped.shape[1]) >= middle):
        mine, fill = seen & side[None], revealed & side[None]
        if mine.sum() < 4 or not fill.any():
            continue
        px = warped[mine].astype(np.float32)
        luma = px @ np.array(LUMA_601, np.float32)
        paint[fill] = np.median(px[luma >= np.median(luma)], 0)
        alpha[fill] = 1.0
