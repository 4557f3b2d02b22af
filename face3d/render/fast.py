"""A fast CPU drop-in for PyTorch3D's ``MeshRasterizer`` (``faces_per_pixel=1``, ``blur_radius=0``).

PyTorch3D's CPU rasteriser tests every pixel against every face (coarse-to-fine binning is not
implemented on the CPU), which costs seconds per image for the ICT head (22k faces). Here the
work is split the nvdiffrast way:

1. **Which face covers each pixel** is found without gradients by a numba z-buffer that visits
   only each triangle's bounding box. It reproduces PyTorch3D's per-pixel float32 arithmetic
   (pixel centres, barycentric formula with its ``+1e-8`` area epsilon, perspective
   correction, strict ``bary > 0`` inside test, ``pz < 0`` rejection, zero-area and
   ``z_min < 1e-8`` face rejection, back-face culling, smallest face index on depth ties), so
   the face maps agree except on pixels where two faces' depths tie within float rounding.
2. **Barycentrics, depth and distances** of the covered pixels are then recomputed in torch
   from the covering face's NDC vertices with the formulas PyTorch3D uses, so autograd gives the
   same vertex gradients as PyTorch3D's hand-written backward pass (gradients to colours and
   textures flow through PyTorch3D's shaders as usual). ``dists`` uses ``min_i e_i^2 / |edge_i|^2``
   (``e_i`` the edge functions), equal to PyTorch3D's point-to-segment distance for points inside
   the face, i.e. every covered pixel; it matches to float rounding (~2e-9 NDC^2 absolute).

Output conventions are PyTorch3D's (see :class:`pytorch3d.renderer.mesh.rasterizer.Fragments`):

* ``pix_to_face`` (B, H, W, 1) int64, the *packed* face index, -1 where empty;
* ``zbuf`` (B, H, W, 1) view-space z of the covering point, -1 where empty;
* ``bary_coords`` (B, H, W, 1, 3) (perspective-correct when ``perspective_correct``), -1 where empty;
* ``dists`` (B, H, W, 1) signed squared NDC distance to the face's nearest edge (negative:
  every covered pixel is inside its face when ``blur_radius=0``), -1 where empty.

Pixel ``(row j, column i)`` of an (H, W) image sits at NDC ``x = -(2 i + 1 - W) / S``,
``y = -(2 j + 1 - H) / S`` with ``S = min(H, W)`` (+X left, +Y up), computed in float32 exactly
as PyTorch3D's ``PixToNonSquareNdc``.

``z_clip_value`` (explicit, or ``znear / 2`` for perspective cameras that have a ``znear``) and
``cull_to_frustum`` go through PyTorch3D's own :func:`clip_faces` /
:func:`convert_clipped_rasterization_to_original_faces`, as in ``rasterize_meshes``; faces with a
vertex at ``z < 1e-8`` are otherwise skipped, as PyTorch3D does. Unsupported settings
(``faces_per_pixel > 1``, ``blur_radius > 0``) raise ``ValueError``; ``bin_size``,
``max_faces_per_bin`` and ``max_faces_opengl`` are ignored. The face map is computed on the CPU;
tensors on another device are copied there for it and the outputs come back on the input device.

The numba kernel compiles on its first call (about 1-2 s) and numba caches the machine code on disk
(its own cache: ``__pycache__`` beside this module, or the user's cache folder where that is
read-only), so later processes load it instead (:func:`_jit_cached`). It splits the image rows
between ``torch.get_num_threads()`` Python threads (it releases the GIL); on a busy 2-core
machine ``torch.set_num_threads(1)`` is faster for the whole pipeline, as torch's own parallel ops
then stop waiting for the second core.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from numba import njit
from pytorch3d.renderer import MeshRasterizer
from pytorch3d.renderer.mesh.clip import (
    ClipFrustum,
    clip_faces,
    convert_clipped_rasterization_to_original_faces,
)
from pytorch3d.renderer.mesh.rasterizer import Fragments
from pytorch3d.renderer.utils import parse_image_size

K_EPS = 1e-8  # PyTorch3D's kEpsilon (a double in its C++ code)
_BANDS = 16  # row bands per image: the units of parallel work in the z-buffer


def pixel_centres_ndc(S1: int, S2: int) -> np.ndarray:
    """NDC coordinates of the S1 pixel centres along an image axis of S1 pixels (other axis S2),
    in *output* order (left->right or top->bottom, so decreasing), float32 as PyTorch3D computes
    them: ``-offset + (range * i + offset) / S1`` for ``i = S1 - 1 - index``.

    Returns:
        (S1,) float32.
    """
    rng = np.float32(2.0)
    if S1 > S2:
        rng = np.float32(np.float32(S1) * rng) / np.float32(S2)
    off = rng / np.float32(2.0)
    i = np.arange(S1 - 1, -1, -1).astype(np.float32)
    return (-off + (rng * i + off) / np.float32(S1)).astype(np.float32)


def _jit_cached(fn):
    """``fn`` compiled by numba (no GIL, numpy's error model), its machine code cached on disk;
    compiled in memory only where numba finds no writable cache folder (it raises then)."""
    try:
        return njit(cache=True, nogil=True, error_model="numpy")(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return njit(cache=False, nogil=True, error_model="numpy")(fn)


@_jit_cached
def _zbuffer(
    fv,
    first,
    count,
    xs,
    ys,
    cull_backfaces,
    perspective_correct,
    clip_bary,
    part,
    n_parts,
    out_face,
    out_z,
    ok,
    area_b,
    box,
):  # pragma: no cover - compiled
    """Z-buffer of the row bands ``part, part + n_parts, ...`` of every image (threads split the
    bands; each redoes the cheap per-face setup).

    fv (F, 3, 3) float32 packed NDC x, y + view z; first, count (B,) int64 packed face range of
    each mesh; xs (W,), ys (H,) float32 pixel-centre NDC in output order (decreasing). Updates
    out_face (B, H, W) int64 (pre-filled -1) and out_z (B, H, W) float32 (pre-filled +inf) in
    place. ok (F,) bool, area_b (F,) float32, box (F, 4) int64 are per-thread scratch for the
    face setup. Float32 arithmetic in PyTorch3D's order; depth ties keep the smaller face index.
    Compiled lazily (no signature) for one set of argument types: keep the dtypes above.
    """
    B, H, W = out_face.shape
    F = fv.shape[0]
    zero = np.float32(0.0)
    eps5 = np.float32(1e-5)
    x_step = (xs[0] - xs[W - 1] + 0.0) / (W - 1) if W > 1 else 1.0
    y_step = (ys[0] - ys[H - 1] + 0.0) / (H - 1) if H > 1 else 1.0
    # per-face setup: validity, bary area with PyTorch3D's (double) epsilon, pixel box
    for f in range(F):
        ok[f] = False
        x0, y0, z0 = fv[f, 0, 0], fv[f, 0, 1], fv[f, 0, 2]
        x1, y1, z1 = fv[f, 1, 0], fv[f, 1, 1], fv[f, 1, 2]
        x2, y2, z2 = fv[f, 2, 0], fv[f, 2, 1], fv[f, 2, 2]
        fa = (x0 - x1) * (y2 - y1) - (y0 - y1) * (x2 - x1)
        if (cull_backfaces and fa < zero) or (fa <= K_EPS and fa >= -K_EPS):
            continue
        if z0 < K_EPS or z1 < K_EPS or z2 < K_EPS:
            continue
        xmin = x0 if x0 < x1 else x1
        xmin = xmin if xmin < x2 else x2
        xmax = x0 if x0 > x1 else x1
        xmax = xmax if xmax > x2 else x2
        ymin = y0 if y0 < y1 else y1
        ymin = ymin if ymin < y2 else y2
        ymax = y0 if y0 > y1 else y1
        ymax = ymax if ymax > y2 else y2
        if not (xmin <= xs[0] and xmax >= xs[W - 1] and ymin <= ys[0] and ymax >= ys[H - 1]):
            continue  # outside the image (or NaN)
        # column xi sits near xs[0] - xi * x_step: estimate with 1e-3 px of slack (clamped to the
        # image in float before the int conversion), then tighten to PyTorch3D's exact bbox test
        lo = (xs[0] - xmax) / x_step - 1e-3
        hi = (xs[0] - xmin) / x_step + 1e-3
        c0 = math.ceil(lo if lo > 0.0 else 0.0)
        c1 = math.floor(hi if hi < W - 1.0 else W - 1.0)
        while c0 <= c1 and xs[c0] > xmax:
            c0 += 1
        while c1 >= c0 and xs[c1] < xmin:
            c1 -= 1
        lo = (ys[0] - ymax) / y_step - 1e-3
        hi = (ys[0] - ymin) / y_step + 1e-3
        r0 = math.ceil(lo if lo > 0.0 else 0.0)
        r1 = math.floor(hi if hi < H - 1.0 else H - 1.0)
        while r0 <= r1 and ys[r0] > ymax:
            r0 += 1
        while r1 >= r0 and ys[r1] < ymin:
            r1 -= 1
        box[f, 0], box[f, 1], box[f, 2], box[f, 3] = c0, c1, r0, r1
        area_b[f] = ((x2 - x0) * (y1 - y0) - (y2 - y0) * (x1 - x0)) + K_EPS
        ok[f] = c0 <= c1 and r0 <= r1
    n_bands = _BANDS if _BANDS < H else H
    for n in range(B):
        for band in range(part, n_bands, n_parts):
            r0 = band * H // n_bands
            r1 = (band + 1) * H // n_bands - 1
            for f in range(first[n], first[n] + count[n]):
                if not ok[f]:
                    continue
                yi_lo = box[f, 2] if box[f, 2] > r0 else r0
                yi_hi = box[f, 3] if box[f, 3] < r1 else r1
                if yi_lo > yi_hi:
                    continue
                x0, y0, z0 = fv[f, 0, 0], fv[f, 0, 1], fv[f, 0, 2]
                x1, y1, z1 = fv[f, 1, 0], fv[f, 1, 1], fv[f, 1, 2]
                x2, y2, z2 = fv[f, 2, 0], fv[f, 2, 1], fv[f, 2, 2]
                dx12, dy12, dx20, dy20, dx01, dy01 = x2 - x1, y2 - y1, x0 - x2, y0 - y2, x1 - x0, y1 - y0
                area = area_b[f]
                pos = area > zero
                for yi in range(yi_lo, yi_hi + 1):
                    py = ys[yi]
                    g0, g1, g2 = (py - y1) * dx12, (py - y2) * dx20, (py - y0) * dx01
                    for xi in range(box[f, 0], box[f, 1] + 1):
                        px = xs[xi]
                        # PyTorch3D's edge functions; w_i = e_i / area > 0 needs sign(e_i) = sign(area)
                        e0 = (px - x1) * dy12 - g0
                        e1 = (px - x2) * dy20 - g1
                        e2 = (px - x0) * dy01 - g2
                        if pos:
                            if not (e0 > zero and e1 > zero and e2 > zero):
                                continue
                        elif not (e0 < zero and e1 < zero and e2 < zero):
                            continue
                        w0, w1, w2 = e0 / area, e1 / area, e2 / area
                        if perspective_correct:
                            t0 = w0 * z1 * z2
                            t1 = w1 * z0 * z2
                            t2 = w2 * z0 * z1
                            den = t0 + t1 + t2
                            w0, w1, w2 = t0 / den, t1 / den, t2 / den
                        if not (w0 > zero and w1 > zero and w2 > zero):
                            continue
                        if clip_bary:
                            s = w0 + w1 + w2
                            s = s if s > eps5 else eps5
                            w0, w1, w2 = w0 / s, w1 / s, w2 / s
                        pz = w0 * z0 + w1 * z1 + w2 * z2
                        if pz < zero:
                            continue
                        if pz < out_z[n, yi, xi]:
                            out_z[n, yi, xi] = pz
                            out_face[n, yi, xi] = f


def face_map(
    face_verts: torch.Tensor,
    first: torch.Tensor,
    count: torch.Tensor,
    image_size: tuple[int, int],
    perspective_correct: bool,
    cull_backfaces: bool = False,
    clip_barycentric_coords: bool = False,
    threads: int | None = None,
) -> torch.Tensor:
    """The packed index of the face covering each pixel centre, without gradients.

    Args:
        face_verts: (F, 3, 3) packed face vertices, NDC x, y and view z (any device).
        first, count: (B,) index of each mesh's first face in the packed faces and its face count.
        image_size: (H, W).
        threads: row-band threads (the kernels release the GIL); default ``torch.get_num_threads()``.
    Returns:
        (B, H, W) int64 on the CPU, -1 where no face covers the pixel.
    """
    H, W = image_size
    fv = np.ascontiguousarray(face_verts.detach().to("cpu", torch.float32).numpy())
    first_np = first.detach().cpu().numpy().astype(np.int64)
    count_np = count.detach().cpu().numpy().astype(np.int64)
    B = len(first_np)
    out_face = np.full((B, H, W), -1, np.int64)
    if B == 0 or fv.shape[0] == 0:
        return torch.from_numpy(out_face)
    out_z = np.full((B, H, W), np.inf, np.float32)
    xs, ys = pixel_centres_ndc(W, H), pixel_centres_ndc(H, W)
    flags = (bool(cull_backfaces), bool(perspective_correct), bool(clip_barycentric_coords))
    F = fv.shape[0]

    def run(part: int, n_parts: int) -> None:
        scratch = (np.zeros(F, np.bool_), np.ones(F, np.float32), np.zeros((F, 4), np.int64))  # per thread
        _zbuffer(fv, first_np, count_np, xs, ys, *flags, part, n_parts, out_face, out_z, *scratch)

    n_parts = max(1, min(threads or torch.get_num_threads(), _BANDS, H))
    if n_parts == 1 or B * H * W < 64 * 64:
        run(0, 1)
    else:
        list(_pool(n_parts).map(run, range(n_parts), [n_parts] * n_parts))
    return torch.from_numpy(out_face)


_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}


def _pool(n: int) -> ThreadPoolExecutor:
    """A persistent pool of n threads, per process (a forked child must not reuse its parent's)."""
    key = (os.getpid(), n)
    if key not in _POOLS:
        _POOLS[key] = ThreadPoolExecutor(n, thread_name_prefix="face3d-raster")
    return _POOLS[key]


def interpolate_fragments(
    face_verts: torch.Tensor,
    pix_to_face: torch.Tensor,
    perspective_correct: bool,
    clip_barycentric_coords: bool = False,
):
    """Differentiable barycentrics, depth and signed edge distances of the covered pixels.

    Barycentrics and depth use PyTorch3D's formulas and operation order (so autograd reproduces
    its backward pass). The squared distance to the nearest edge is ``min_i e_i^2 / |edge_i|^2``
    with ``e_i`` the edge functions: for a point inside the triangle (every covered pixel when
    ``blur_radius=0``) that equals PyTorch3D's point-to-segment distance up to rounding.

    Args:
        face_verts: (F, 3, 3) packed NDC x, y + view z face vertices (with grad).
        pix_to_face: (B, H, W) int64 covering face, -1 where empty (same device as face_verts).
    Returns:
        zbuf (B, H, W, 1), bary_coords (B, H, W, 1, 3), dists (B, H, W, 1); -1 where empty.
    """
    B, H, W = pix_to_face.shape
    dev, dt = face_verts.device, face_verts.dtype
    flat = pix_to_face.reshape(-1)
    sel = flat.ge(0).nonzero().squeeze(1)  # (M,) covered pixels
    rows = sel.div(W, rounding_mode="floor")
    px = torch.from_numpy(pixel_centres_ndc(W, H)).to(dev, dt).index_select(0, sel - rows * W)
    py = torch.from_numpy(pixel_centres_ndc(H, W)).to(dev, dt).index_select(0, rows.remainder(H))
    # (9, M) contiguous rows x0, y0, z0, x1, ... of each covered pixel's face
    x0, y0, z0, x1, y1, z1, x2, y2, z2 = face_verts.reshape(-1, 9).t().index_select(1, flat[sel])
    dx12, dy12, dx20, dy20, dx01, dy01 = x2 - x1, y2 - y1, x0 - x2, y0 - y2, x1 - x0, y1 - y0
    # (x2 - x0) (y1 - y0) - (y2 - y0) (x1 - x0), bit-identical with negated differences
    area = dy20 * dx01 - dx20 * dy01 + K_EPS
    e0 = (px - x1) * dy12 - (py - y1) * dx12
    e1 = (px - x2) * dy20 - (py - y2) * dx20
    e2 = (px - x0) * dy01 - (py - y0) * dx01
    w0, w1, w2 = e0 / area, e1 / area, e2 / area
    if perspective_correct:
        t0, t1, t2 = w0 * z1 * z2, w1 * z0 * z2, w2 * z0 * z1
        den = t0 + t1 + t2
        w0, w1, w2 = t0 / den, t1 / den, t2 / den
    if clip_barycentric_coords:
        w0, w1, w2 = w0.clamp(min=0.0), w1.clamp(min=0.0), w2.clamp(min=0.0)
        s = (w0 + w1 + w2).clamp(min=1e-5)
        w0, w1, w2 = w0 / s, w1 / s, w2 / s
    z = w0 * z0 + w1 * z1 + w2 * z2
    d = torch.minimum(
        torch.minimum(e0 * e0 / (dx12 * dx12 + dy12 * dy12), e1 * e1 / (dx20 * dx20 + dy20 * dy20)),
        e2 * e2 / (dx01 * dx01 + dy01 * dy01),
    )
    n = B * H * W
    zbuf = face_verts.new_full((n,), -1.0).index_put_((sel,), z)
    dists = face_verts.new_full((n,), -1.0).index_put_((sel,), -d)  # inside: negative
    bary = face_verts.new_full((n, 3), -1.0).index_put_((sel,), torch.stack([w0, w1, w2], -1))
    return zbuf.view(B, H, W, 1), bary.view(B, H, W, 1, 3), dists.view(B, H, W, 1)


class FastMeshRasterizer(MeshRasterizer):
    """Drop-in replacement for :class:`pytorch3d.renderer.MeshRasterizer` (same constructor,
    ``transform`` and per-call ``**kwargs`` overrides such as ``cameras=`` or
    ``raster_settings=``) for ``faces_per_pixel=1``, ``blur_radius=0``.

    ``forward(meshes_world) -> Fragments`` with ``pix_to_face`` (B, H, W, 1), ``zbuf``
    (B, H, W, 1), ``bary_coords`` (B, H, W, 1, 3), ``dists`` (B, H, W, 1), as PyTorch3D.
    """

    def forward(self, meshes_world, **kwargs) -> Fragments:
        """Rasterise a batch of B meshes (world space) into (H, W) fragments; ``kwargs`` override
        ``cameras`` / ``raster_settings`` and reach the camera transforms, as in PyTorch3D."""
        raster_settings = kwargs.get("raster_settings", self.raster_settings)
        if raster_settings.faces_per_pixel != 1:
            raise ValueError(
                f"FastMeshRasterizer supports faces_per_pixel=1 only, got "
                f"{raster_settings.faces_per_pixel}; use pytorch3d's MeshRasterizer"
            )
        if raster_settings.blur_radius != 0:
            raise ValueError(
                f"FastMeshRasterizer supports blur_radius=0 only, got "
                f"{raster_settings.blur_radius}; use pytorch3d's MeshRasterizer"
            )
        meshes_proj = self.transform(meshes_world, **kwargs)
        cameras = kwargs.get("cameras", self.cameras)
        clip_bary = bool(raster_settings.clip_barycentric_coords)  # None -> blur_radius > 0 -> False
        if raster_settings.perspective_correct is not None:
            perspective_correct = raster_settings.perspective_correct
        else:
            perspective_correct = cameras.is_perspective()
        if raster_settings.z_clip_value is not None:
            z_clip = raster_settings.z_clip_value
        else:
            znear = cameras.get_znear()
            if isinstance(znear, torch.Tensor):
                znear = znear.min().item()
            z_clip = None if not perspective_correct or znear is None else znear / 2
        H, W = parse_image_size(raster_settings.image_size)

        face_verts = meshes_proj.verts_packed()[meshes_proj.faces_packed()]  # (F, 3, 3)
        first = meshes_proj.mesh_to_faces_packed_first_idx()
        count = meshes_proj.num_faces_per_mesh()
        clipped = None
        if z_clip is not None or raster_settings.cull_to_frustum:
            frustum = ClipFrustum(
                left=-1,
                right=1,
                top=-1,
                bottom=1,
                perspective_correct=perspective_correct,
                z_clip_value=z_clip,
                cull=raster_settings.cull_to_frustum,
            )
            clipped = clip_faces(face_verts, first, count, frustum=frustum)
            face_verts, first, count = (
                clipped.face_verts,
                clipped.mesh_to_face_first_idx,
                clipped.num_faces_per_mesh,
            )

        p2f = face_map(
            face_verts, first, count, (H, W), perspective_correct, raster_settings.cull_backfaces, clip_bary
        ).to(face_verts.device)
        zbuf, bary, dists = interpolate_fragments(face_verts, p2f, perspective_correct, clip_bary)
        p2f = p2f[..., None]
        if clipped is not None:
            p2f, bary = convert_clipped_rasterization_to_original_faces(p2f, bary, clipped)
        return Fragments(pix_to_face=p2f, zbuf=zbuf, bary_coords=bary, dists=dists)
