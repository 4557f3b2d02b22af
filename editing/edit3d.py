"""3D-guided expression editing: fit -> texture from the photo -> new expression -> render ->
composite. Only the face region changes; the background is byte-identical.

The fit uses the face + head model; rendering uses the whole head with its mouth socket,
gums, tongue, teeth and eyeballs (the eye's translucent extras are left out), so a mouth
that opens shows a mouth interior: texels the photo shows are reused, the rest of the face
comes from the mirrored side of the face or is inpainted, and interior parts the photo does
not show get flat, shaded colours.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from editing.composite import CompositeConfig, edit_region, paste
from editing.expressions import ExpressionSpec
from face3d.camera import project
from face3d.fit.pipeline import FaceFit
from face3d.ict import EYE_EXTRAS_FIRST, FACE_LAST, HEAD_LAST
from face3d.render import RenderConfig, atlas_corner_uvs, extract_texture, rasterize, uv_layout
from face3d.render.shading import (
    PhongShader,
    UVTextureShader,
    VertexColorShader,
    interpolate,
    packed_corners,
    vertex_normals,
)
from face3d.render.texture import sample_photo, visibility
from face3d.render.texture_fill import (
    FLAT_COLORS,
    fill_from_mirror,
    inpaint_texture,
    mirror_vertices,
    toned_flat_colors,
)


@dataclass(frozen=True)
class EditConfig:
    """Settings of the 3D edit.

    Attributes:
        texture_size: (Ht, Wt) of the UV atlas sampled from the photo.
        margin_frac: the work crop is the face's projected box grown by this fraction per side.
        mirror_fill: fill texels hidden in the photo from the mirrored side of the face.
        render: rasteriser backend and shading of the interior parts.
        composite: dilation and feathering of the paste-back.
    """

    texture_size: tuple[int, int] = (512, 1024)
    margin_frac: float = 0.15
    mirror_fill: bool = True
    render: RenderConfig = field(default_factory=RenderConfig)
    composite: CompositeConfig = field(default_factory=CompositeConfig)


@dataclass(frozen=True)
class FaceEdit:
    """One face edited to one target expression.

    Attributes:
        image: (H, W, 3) uint8 full-resolution result (only this face edited).
        render: (h, w, 3) uint8 re-render in the work crop (black where nothing is drawn).
        crop: (x0, y0, x1, y1) the work crop in the image, pixels (exclusive ends).
        region: (H, W) bool pixels that may differ from the input (dilated face mask).
        alpha: (H, W) float32 feathered paste-back weight (zero outside ``region``).
        source: (K_exp,) fitted weights; target: (K_exp,) edited weights.
        timings_ms: texture, render and composite for this edit (the fit is timed by FaceFit).
    """

    image: np.ndarray
    render: np.ndarray
    crop: tuple[int, int, int, int]
    region: np.ndarray
    alpha: np.ndarray
    source: np.ndarray
    target: np.ndarray
    timings_ms: dict[str, float]


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
        self.layout = uv_layout(self.skin_corner_uvs, config.texture_size, config.render)
        self.mirror = mirror_vertices(render_model.template)
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

    # ------------------------------------------------------------------ helpers
    def _vertices_cam(self, face: FaceFit, expression: torch.Tensor) -> torch.Tensor:
        t = self.model.template
        return face.fit.vertices_cam(self.model, expression.to(t.device, t.dtype)[None])

    def _crop(self, verts: list[torch.Tensor], K: torch.Tensor, H: int, W: int) -> tuple[int, int, int, int]:
        pts = torch.cat([project(v[:, : FACE_LAST + 1], K)[0] for v in verts], 0)
        pts = pts[torch.isfinite(pts).all(1)]
        lo, hi = pts.amin(0), pts.amax(0)
        m = float((hi - lo).max()) * self.config.margin_frac + 4
        x0, y0 = int(max(0, np.floor(float(lo[0]) - m))), int(max(0, np.floor(float(lo[1]) - m)))
        x1, y1 = int(min(W, np.ceil(float(hi[0]) + m) + 1)), int(min(H, np.ceil(float(hi[1]) + m) + 1))
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

    def render(self, verts_cam, K, size, texture, colors, source=None):
        """Render the head; returns (h, w, 3) float colours, (h, w) covered and changeable masks.

        With ``source = (v_src, depth, covered, photo)``, each drawn surface point that was
        visible in the photo takes the photo's colour at the point's source position (one
        bilinear lookup: a 3D-guided warp, sharp, exact where nothing moves); the atlas texture
        and the flat interior colours only fill what the photo did not show.
        """
        frags, _, _ = rasterize(verts_cam, self.faces, K, size, self.config.render)
        pix = frags.pix_to_face[0, ..., 0]
        skin = UVTextureShader()(frags, texture, self.corner_uvs)[0]
        normals = vertex_normals(verts_cam, self.faces)
        shade = PhongShader(RenderConfig(albedo=1.0, specular=0.0))(frags, verts_cam, self.faces, normals)[0]
        inner = VertexColorShader()(frags, colors[None], self.faces)[0] * shade
        is_skin = (pix >= 0) & (pix < self.n_skin)
        out = torch.where(is_skin[..., None], skin, inner)
        covered = pix >= 0
        if source is not None:
            v_src, depth, src_covered, photo = source
            pts = interpolate(frags, packed_corners(v_src, self.faces))[0][covered]  # source positions
            src_n = vertex_normals(v_src, self.faces)
            nrm = interpolate(frags, packed_corners(src_n, self.faces))[0][covered]
            seen = visibility(pts[None], K, depth, src_covered, nrm[None])[0]
            warped = sample_photo(photo, project(pts[None], K))[0]
            vals = out[covered]
            vals[seen] = warped[seen].to(vals.dtype)
            out = out.clone()
            out[covered] = vals
        changeable = covered & self.face_changeable[pix.clamp(min=0)]
        return out, covered, changeable

    def _geometry(self, face: FaceFit, specs: list[ExpressionSpec], H: int, W: int):
        """Source and target weights, their camera-space vertices, the work crop and its intrinsics."""
        names = self.model.expression_names
        source = face.fit.expression[0].detach().cpu().double()
        targets = [
            torch.as_tensor(np.asarray(s.apply(source.numpy(), names)), dtype=torch.float64) for s in specs
        ]
        v_src = self._vertices_cam(face, source)
        v_tgts = [self._vertices_cam(face, t) for t in targets]
        crop = self._crop([v_src, *v_tgts], face.fit.intrinsics, H, W)
        K = face.fit.intrinsics.clone()
        K[:, 2] -= crop[0]
        K[:, 3] -= crop[1]
        return source, targets, v_src, v_tgts, crop, K

    def _changeable(self, verts_cam: torch.Tensor, K: torch.Tensor, size) -> torch.Tensor:
        frags, _, _ = rasterize(verts_cam, self.faces, K, size, self.config.render)
        pix = frags.pix_to_face[0, ..., 0]
        return (pix >= 0) & self.face_changeable[pix.clamp(min=0)]

    def regions(self, image_shape, face: FaceFit, specs: list[ExpressionSpec]):
        """Without rendering colours: per target, ``(target weights (K,), region (H, W) bool, alpha
        (H, W) float32)``, the same paste-back region as :meth:`edit_face` (for the 2D baseline)."""
        H, W = image_shape[:2]
        with torch.no_grad():
            _, targets, v_src, v_tgts, (x0, y0, x1, y1), K = self._geometry(face, specs, H, W)
            size = (y1 - y0, x1 - x0)
            src_change = self._changeable(v_src, K, size)
            out = []
            for target, v_tgt in zip(targets, v_tgts, strict=True):
                hard = np.zeros((H, W), bool)
                hard[y0:y1, x0:x1] = (self._changeable(v_tgt, K, size) | src_change).cpu().numpy()
                out.append((target.numpy(), *edit_region(hard, self.config.composite)))
        return out

    # ------------------------------------------------------------------ the edit
    def edit_face(self, image: np.ndarray, face: FaceFit, specs: list[ExpressionSpec]) -> list[FaceEdit]:
        """Edit one fitted face of ``image`` ((H, W, 3) uint8) to each target expression."""
        H, W = image.shape[:2]
        with torch.no_grad():
            t0 = time.perf_counter()
            source, targets, v_src, v_tgts, (x0, y0, x1, y1), K = self._geometry(face, specs, H, W)
            crop = torch.from_numpy(np.array(image[y0:y1, x0:x1], dtype=np.float32))[None] / 255.0
            crop = crop.to(self.model.template.device)
            texture, colors = self.sample_texture(crop, v_src, K)
            tex_ms = (time.perf_counter() - t0) * 1e3
            size = (y1 - y0, x1 - x0)
            frags, _, _ = rasterize(v_src, self.faces, K, size, self.config.render)
            src_covered = frags.pix_to_face[0, ..., 0] >= 0
            src_change = src_covered & self.face_changeable[frags.pix_to_face[0, ..., 0].clamp(min=0)]
            source_view = (v_src, frags.zbuf[..., 0], src_covered[None], crop)
            edits = []
            for target, v_tgt in zip(targets, v_tgts, strict=True):
                t1 = time.perf_counter()
                out, covered, change = self.render(v_tgt, K, size, texture, colors, source_view)
                t2 = time.perf_counter()
                patch_img = torch.where(covered[..., None], out, crop[0])
                patch = (patch_img.clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)
                hard = np.zeros((H, W), bool)
                hard[y0:y1, x0:x1] = (change | src_change).cpu().numpy()
                region, alpha = edit_region(hard, self.config.composite)
                full_patch = image.copy()
                full_patch[y0:y1, x0:x1] = patch
                result = paste(image, full_patch, alpha, region)
                t3 = time.perf_counter()
                render_img = (out * covered[..., None]).clamp(0, 1).cpu().numpy()
                edits.append(
                    FaceEdit(
                        image=result,
                        render=(render_img * 255 + 0.5).astype(np.uint8),
                        crop=(x0, y0, x1, y1),
                        region=region,
                        alpha=alpha,
                        source=source.numpy(),
                        target=target.numpy(),
                        timings_ms={
                            "texture": tex_ms,
                            "render": (t2 - t1) * 1e3,
                            "composite": (t3 - t2) * 1e3,
                        },
                    )
                )
        return edits
