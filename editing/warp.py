"""The 3D-guided warp: the photo's own pixels, moved by the 3D motion of the surface they show.

The fitted head is rendered at the target expression; each target pixel's surface point (its
triangle and barycentrics) is placed on the *source* mesh and projected into the photo: a dense
backward map, target pixel -> the photo pixel that shows the same surface point. Where that point
was hidden in the photo (skin a moving lip reveals, the space beside a jaw that closed) and around
the face, the motion is extended from the nearby known motion and falls smoothly to zero away from
the face (:func:`dense_motion`), so the map has no seam and the background stays put.
:func:`warp_image` samples the photo through the map; a pixel that moves by less than
:data:`STILL_PX` keeps its bytes.

Shapes: ``(h, w)`` is the work crop; motion fields are ``(h, w, 2)`` float32 pixel offsets ``(dx,
dy)``: the target pixel ``(x, y)`` shows the photo at ``(x + dx, y + dy)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from face3d.camera import project
from face3d.filters import masked_blur
from face3d.render.shading import interpolate_vertices, vertex_normals
from face3d.render.texture import visibility
from face3d.render.texture_fill import LUMA_601

STILL_PX = 0.05
"""Motion (pixels) under which a pixel keeps the photo's bytes exactly."""


@dataclass(frozen=True)
class WarpConfig:
    """How the motion around the known surface points is extended.

    Attributes:
        reach_frac: Gaussian radius (sigma) of the extension, as a fraction of the face size (the
            square root of the covered area); motion decays to zero a few radii from the face.
        smooth_px: Gaussian smoothing (sigma, pixels) of the known motion itself, which removes
            the rasteriser's per-pixel steps at silhouettes (0: none).
        fill_px: Gaussian radius (pixels) of the local fill: an unknown pixel among known ones (a
            nostril or lip edge the photo hid) takes its immediate neighbours' motion, not the
            wide average, which would mix in the motion of other parts.
        tolerance_cm: depth tolerance of the photo visibility test.
        occluder_band_frac: width, as a fraction of the face size, of the band behind an occluding
            contour (a 45° nose in front of the far cheek, a jaw in front of the neck) whose
            motion follows the occluder's (:func:`hold_behind_occluders`; 0: off).
        occluder_jump_cm: least depth step (cm) between two neighbouring pixels that makes the
            nearer one an occluding contour. 2: a frontal nose tip stands 1.1-1.8 cm in front of
            the upper lip below it (10th-90th percentile on an LFW face), which must keep its own
            motion (held, an opened mouth closed less: docs/history.md); a 45° nose stands a
            median 2.6 cm in front of the far cheek beside it.
    """

    reach_frac: float = 0.06
    smooth_px: float = 0.8
    fill_px: float = 1.5
    tolerance_cm: float = 0.4
    occluder_band_frac: float = 0.06
    occluder_jump_cm: float = 2.0


@dataclass(frozen=True)
class SurfaceMap:
    """Where each target pixel's surface point lies in the photo.

    Attributes:
        source_px: (h, w, 2) float32 photo pixel of each covered target pixel (0 elsewhere).
        covered: (h, w) bool: the target render covers the pixel.
        seen: (h, w) bool: covered, and the surface point was visible in the photo.
        face: (h, w) int64 covering triangle (-1 where uncovered).
        normal_source / normal_target: (h, w, 3) float32 camera-space unit normals of the surface
            point on the source and the target mesh (0 where uncovered).
        depth: (h, w) float32 target depth, cm (0 where uncovered).
    """

    source_px: np.ndarray
    covered: np.ndarray
    seen: np.ndarray
    face: np.ndarray
    normal_source: np.ndarray
    normal_target: np.ndarray
    depth: np.ndarray


def surface_map(
    frags_target,
    v_source: torch.Tensor,
    v_target: torch.Tensor,
    faces: torch.Tensor,
    K: torch.Tensor,
    source_depth: torch.Tensor,
    source_covered: torch.Tensor,
    tolerance_cm: float = 0.4,
    faces_two_sided: torch.Tensor | None = None,
    source_normals: torch.Tensor | None = None,
) -> SurfaceMap:
    """The backward map of one target render.

    Args:
        frags_target: PyTorch3D ``Fragments`` of the target mesh ((1, h, w, 1) maps).
        v_source, v_target: (1, V, 3) camera-space vertices at the source and target expression, cm.
        faces: (F, 3) the rendered triangles; K: (1, 4) intrinsics of the crop.
        source_depth, source_covered: (1, h, w) depth and coverage of the source render.
        faces_two_sided: optional (F,) bool triangles seen from either side (inner surfaces):
            they pass the visibility test on depth alone; others must also face the camera.
        source_normals: optional (1, V, 3) :func:`vertex_normals` of ``v_source`` (computed when
            not given; a source edited to several targets computes them once).
    """
    pix = frags_target.pix_to_face[0, ..., 0]
    covered = pix >= 0
    if source_normals is None:
        source_normals = vertex_normals(v_source, faces)
    per_vertex = torch.cat([v_source, source_normals, vertex_normals(v_target, faces)], -1)
    # the source surface points and both normals, interpolated in one pass
    pts, n_src, n_tgt = interpolate_vertices(frags_target, per_vertex, faces)[0].split(3, -1)
    p, n = pts[covered][None], torch.nn.functional.normalize(n_src[covered], dim=-1)[None]
    seen = torch.zeros_like(covered)
    in_view = visibility(p, K, source_depth, source_covered, None, tolerance_cm)[0]
    facing = (n * p).sum(-1)[0] < 0
    if faces_two_sided is not None:  # inner surfaces (a mouth socket) are seen from inside
        facing |= faces_two_sided[pix[covered]]
    seen[covered] = in_view & facing
    src_px = torch.zeros(*covered.shape, 2, dtype=torch.float32)
    src_px[covered] = project(p, K)[0].float()
    depth = frags_target.zbuf[0, ..., 0].clamp(min=0)

    def unit(x: torch.Tensor) -> np.ndarray:
        return (torch.nn.functional.normalize(x, dim=-1) * covered[..., None]).float().numpy()

    return SurfaceMap(
        source_px=src_px.numpy(),
        covered=covered.numpy(),
        seen=seen.numpy(),
        face=pix.numpy(),
        normal_source=unit(n_src),
        normal_target=unit(n_tgt),
        depth=depth.float().numpy(),
    )


def dense_motion(
    motion: np.ndarray, known: np.ndarray, face_size: float, config: WarpConfig = WarpConfig()
) -> np.ndarray:
    """(h, w, 2) motion known where ``known`` (h, w) -> a dense field: the known motion (lightly
    smoothed) where known; elsewhere the Gaussian-weighted mean of the known motion, at two
    scales blended by how much is known nearby: the immediate neighbours' (``fill_px``) inside and
    at the edge of the known surface, a wide mean (``reach_frac`` of the face size) beyond it,
    which decays to zero where little is known (normalised convolution, divided by at least half
    the weight of a half-plane), so the field is continuous and vanishes away from the face."""
    m = known.astype(np.float32)
    d = motion.astype(np.float32) * m[..., None]
    if config.smooth_px > 0:  # smooth the known motion among known pixels only
        d = np.where(known[..., None], masked_blur(d, m, config.smooth_px)[0], 0.0).astype(np.float32)
    sigma = max(1.0, config.reach_frac * face_size)
    extended = masked_blur(d, m, sigma, floor=0.5, border=cv2.BORDER_CONSTANT)[0]
    local, den = masked_blur(d, m, config.fill_px, border=cv2.BORDER_CONSTANT)
    a = np.clip(den / 0.3, 0.0, 1.0)[..., None]  # 1 among known pixels, 0 a few fill_px away
    return np.where(known[..., None], d, a * local + (1 - a) * extended).astype(np.float32)


def nearest_pixel(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel of an (h, w) image, the nearest pixel of the non-empty ``mask`` (h, w) bool:
    ``(distance (h, w) float32 pixels, its row (h, w), its column (h, w))``."""
    dist, labels = cv2.distanceTransformWithLabels(
        (~mask).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    ys, xs = np.nonzero(mask)
    order = np.zeros(labels.max() + 1, np.int64)
    order[labels[ys, xs]] = np.arange(len(ys))
    idx = order[labels]
    return dist, ys[idx], xs[idx]


def hold_behind_occluders(
    motion: np.ndarray,
    smap: SurfaceMap,
    movable: np.ndarray,
    face_size: float,
    config: WarpConfig = WarpConfig(),
) -> np.ndarray:
    """(h, w, 2) ``motion`` whose pixels just behind an occluding contour take the occluder's motion.

    Where the fitted mesh's silhouette misses the photo's by a few pixels, the surface behind it
    shows the photo's occluder: beside a 45° nose the fitted far cheek covers the nose's edge and
    the background. Moved with the cheek's raise, it drags the nose's dark rim out as a blob. So
    covered pixels of ``movable`` (h, w) bool (skin, not the mouth's interior or the eyeballs,
    whose motion the lips' and lids' must not replace) within ``occluder_band_frac`` of the face
    size of a nearer contour (a seen, movable neighbour more than ``occluder_jump_cm`` in front)
    take that contour's motion: fully over the band's first half, fading out over the second.
    The motion stays continuous; the surface behind slides under the occluder's edge, as it does
    in a real view."""
    if config.occluder_band_frac <= 0:
        return motion
    covered, depth = smap.covered & movable, smap.depth
    deeper = cv2.dilate(np.where(covered, depth, -1e6).astype(np.float32), np.ones((3, 3), np.uint8))
    contour = covered & smap.seen & (deeper - depth > config.occluder_jump_cm)
    if not contour.any():
        return motion
    band_px = max(1.0, config.occluder_band_frac * face_size)
    dist, ys, xs = nearest_pixel(contour)
    behind = covered & (dist <= band_px) & (depth - depth[ys, xs] > config.occluder_jump_cm)
    t = np.clip(2.0 - 2.0 * dist / band_px, 0.0, 1.0)
    weight = (t * t * (3.0 - 2.0 * t) * behind)[..., None]
    return (motion + (motion[ys, xs] - motion) * weight).astype(np.float32)


MINIFY_SIGMA = 0.8
"""Prefilter (Gaussian sigma, pixels) of the photo where the warp compresses it to half its size."""


def warp_image(image: np.ndarray, motion: np.ndarray) -> np.ndarray:
    """Sample ``image`` (h, w, 3) uint8 through ``motion`` (h, w, 2) (bicubic: a bilinear lookup
    blurs 1-pixel detail such as freckles; edges replicated). Where the map compresses the photo
    (the area under a chin that moves down), the lookup blends toward a prefiltered copy, in
    proportion to the compression, so hair and edges there do not alias into dots. Pixels moving
    by less than :data:`STILL_PX` keep their bytes (the work is done in the box of the others)."""
    out = image.copy()
    move = moving(motion)
    if not move.any():
        return out
    # the moving pixels' box, grown by a pixel: the central differences below see the same
    # neighbours there as in the whole image
    ys, xs = np.nonzero(move)
    y0, y1 = max(ys.min() - 1, 0), min(ys.max() + 2, image.shape[0])
    x0, x1 = max(xs.min() - 1, 0), min(xs.max() + 2, image.shape[1])
    gx, gy = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
    mx, my = gx + motion[y0:y1, x0:x1, 0], gy + motion[y0:y1, x0:x1, 1]
    box = cv2.remap(image, mx, my, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    # the map's local scale: |det J| of (x, y) -> (mx, my); above 1 the photo is compressed
    scale = np.abs(
        np.gradient(mx, axis=1) * np.gradient(my, axis=0) - np.gradient(mx, axis=0) * np.gradient(my, axis=1)
    )
    blend = np.clip(scale - 1.0, 0.0, 1.0)
    if (blend > 0.05).any():
        blurred = cv2.GaussianBlur(image, (0, 0), MINIFY_SIGMA)
        soft = cv2.remap(blurred, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        mix = blend > 0  # elsewhere the blend gives the bicubic lookup back
        b = blend[mix][:, None]
        box[mix] = np.clip(box[mix] * (1.0 - b) + soft[mix] * b + 0.5, 0, 255).astype(np.uint8)
    box_move = move[y0:y1, x0:x1]
    out[y0:y1, x0:x1][box_move] = box[box_move]
    return out


def moving(motion: np.ndarray) -> np.ndarray:
    """(h, w) bool: the pixels a :func:`warp_image` of ``motion`` changes."""
    return np.hypot(motion[..., 0], motion[..., 1]) >= STILL_PX


SPECKLE_LEVELS = 40.0
"""A pixel whose luminance is this far from its 3 x 3 median is an outlier."""
DESPECKLE_PASSES = 3
"""Passes of :func:`despeckle`."""
_LUMA = np.array(LUMA_601, np.float32)
_RING = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], np.uint8)


def isolated_outliers(image: np.ndarray) -> np.ndarray:
    """(h, w) bool dots of an (h, w, 3) uint8 image: pixels whose luminance is more than
    :data:`SPECKLE_LEVELS` from its 3 x 3 median and none of whose 8 neighbours is such an outlier
    (a dot, not a line: a moved eyelash or lip line is a line of outliers)."""
    y = image.astype(np.float32) @ _LUMA
    y_med = cv2.medianBlur(np.clip(y + 0.5, 0, 255).astype(np.uint8), 3).astype(np.float32)
    outlier = np.abs(y - y_med) > SPECKLE_LEVELS
    neighbours = cv2.filter2D(outlier.astype(np.uint8), -1, _RING)
    return outlier & (neighbours == 0)


def despeckle(out: np.ndarray, photo: np.ndarray, motion: np.ndarray, drawn: np.ndarray) -> np.ndarray:
    """``out`` (h, w, 3) uint8 with the dots the edit made replaced by their 3 x 3 median.

    A dot (:func:`isolated_outliers`) that changed is the edit's own unless the photo pixel it was
    sampled from, at ``(x, y) + motion`` (rounded), is a dot of the photo as well: the photo's
    freckles and glints, moved, stay; a resampled outline that broke into dots, or a drawn
    (``drawn`` (h, w) bool) pixel, does not. Unchanged pixels keep their bytes.
    """
    photo_dots = None
    for _ in range(DESPECKLE_PASSES):  # a replaced dot can leave its neighbour isolated
        changed = (out != photo).any(-1)
        dots = isolated_outliers(out) & changed
        if not dots.any():
            break
        if photo_dots is None:
            near = np.ones((3, 3), np.uint8)
            photo_dots = cv2.dilate(isolated_outliers(photo).astype(np.uint8), near) > 0
        ys, xs = np.nonzero(dots)
        h, w = dots.shape
        sx = np.clip(np.round(xs + motion[ys, xs, 0]).astype(int), 0, w - 1)
        sy = np.clip(np.round(ys + motion[ys, xs, 1]).astype(int), 0, h - 1)
        made = drawn[ys, xs] | ~photo_dots[sy, sx]
        if not made.any():
            break
        med = cv2.medianBlur(out, 3)  # per channel: the replacement colour
        out = out.copy()
        out[ys[made], xs[made]] = med[ys[made], xs[made]]
    return out


def sampled_mask(mask: np.ndarray, motion: np.ndarray) -> np.ndarray:
    """(h, w) bool ``mask`` read through the backward ``motion`` (h, w, 2) at the nearest pixel:
    the target pixels whose photo pixel lies in the mask."""
    h, w = mask.shape
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    x = np.clip(np.rint(gx + motion[..., 0]), 0, w - 1).astype(np.intp)
    y = np.clip(np.rint(gy + motion[..., 1]), 0, h - 1).astype(np.intp)
    return mask[y, x]
