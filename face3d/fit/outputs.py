"""What ``face3d fit`` writes per face: JSON record, textured OBJ, overlay PNG."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch

from face3d.camera import project
from face3d.export import export_obj, export_ply
from face3d.fit.pipeline import FaceFit
from face3d.io import atomic_write_json
from face3d.render import RenderConfig, UVLayout, atlas_corner_uvs, extract_texture, render, uv_layout

TEXTURE_SIZE = (512, 1024)


def texture_layout(
    model, size: tuple[int, int] = TEXTURE_SIZE, config: RenderConfig = RenderConfig()
) -> UVLayout:
    """The UV atlas layout of a model (compute once, reuse for every face)."""
    return uv_layout(atlas_corner_uvs(model.uvs, model.face_uvs), size, config)


def face_record(face: FaceFit, model, image_name: str) -> dict:
    """The JSON record of one face (keys documented in the README). ``landmarks_fitted`` are the
    final mesh's (with a residual, the residual's); ``landmarks_linear``, only with a residual, the
    linear fit's."""
    fit = face.fit.to("cpu")
    ypr = fit.yaw_pitch_roll[0].tolist()
    fx, fy, cx, cy = fit.intrinsics[0].tolist()
    return {
        "image": image_name,
        "face_index": face.face_index,
        "bbox": [round(v, 2) for v in face.bbox],
        "detector": face.detector,
        "detector_score": round(face.score, 4),
        "landmark_source": face.landmark_source,
        "landmarks_detected": np.round(face.landmarks_detected, 3).tolist(),
        "landmarks_fitted": np.round(fit.landmarks_fitted[0].numpy(), 3).tolist(),
        **(
            {}
            if fit.landmarks_linear is None
            else {"landmarks_linear": np.round(fit.landmarks_linear[0].numpy(), 3).tolist()}
        ),
        "yaw": round(ypr[0], 3),
        "pitch": round(ypr[1], 3),
        "roll": round(ypr[2], 3),
        "rotation": np.round(fit.rotation[0].numpy(), 6).tolist(),
        "translation": np.round(fit.translation[0].numpy(), 4).tolist(),
        "camera": {
            "fx": fx,
            "fy": fy,
            "cx": cx,
            "cy": cy,
            "width": fit.image_size[1],
            "height": fit.image_size[0],
        },
        "identity": np.round(fit.identity[0].numpy(), 5).tolist(),
        "expression": {k: round(v, 5) for k, v in model.expression_dict(fit.expression[0]).items()},
        "fit_error_px": round(float(fit.error_px[0]), 3),
        "timings_ms": {k: round(v, 2) for k, v in face.timings_ms.items()},
    }


def draw_points(image: np.ndarray, points: np.ndarray, color: tuple[int, int, int], radius: int) -> None:
    import cv2

    for x, y in np.asarray(points):
        if np.isfinite(x) and np.isfinite(y):
            cv2.circle(image, (int(round(x)), int(round(y))), radius, color, -1, lineType=cv2.LINE_AA)


OVERLAY_MAX_PX = 1024
"""The overlay shades a face's mesh at most this many pixels on its box's longer side (a larger
face is shaded at that size and resized: the shading is smooth, and a 16 MP photo's face would
otherwise take seconds to shade); in a photo over this size the texture is sampled there too
(:func:`write_face`)."""


def _face_box(verts_cam: torch.Tensor, K: torch.Tensor, H: int, W: int):
    """(x0, y0, x1, y1) integer box of the mesh's projection, 2 px of margin, within the image
    (None when it misses the image)."""
    px = project(verts_cam, K)[0]
    px = px[torch.isfinite(px).all(1)]
    if len(px) == 0:
        return None
    lo, hi = px.amin(0).floor().int().tolist(), px.amax(0).ceil().int().tolist()
    x0, y0, x1, y1 = max(0, lo[0] - 2), max(0, lo[1] - 2), min(W, hi[0] + 3), min(H, hi[1] + 3)
    return None if x1 <= x0 or y1 <= y0 else (x0, y0, x1, y1)


def _face_view(verts_cam: torch.Tensor, fit, H: int, W: int, max_px: int):
    """Where a face's mesh (``verts_cam`` (1, V, 3)) shows in its (H, W) photo, seen at most
    ``max_px`` on the longer side: ``(box, size, small, K)``, the box (:func:`_face_box`), its
    (h, w), the (h', w') it is seen at and the intrinsics (1, 4) of that view; None when the mesh
    misses the photo."""
    box = _face_box(verts_cam, fit.intrinsics, H, W)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    size = (y1 - y0, x1 - x0)
    s = min(1.0, max_px / max(size))
    small = (max(1, round(size[0] * s)), max(1, round(size[1] * s)))
    K = fit.intrinsics.clone().float()
    K[:, 2:] -= K.new_tensor([x0, y0])
    return box, size, small, replace(fit, intrinsics=K, image_size=size).resized(small).intrinsics


def overlay_image(
    image: np.ndarray, faces: list[FaceFit], model, alpha: float = 0.55, config: RenderConfig = RenderConfig()
) -> np.ndarray:
    """The photo with each face's shaded mesh blended in, detected landmarks (green) and fitted
    landmarks (red) drawn on top. (H, W, 3) uint8."""
    out = image.astype(np.float32) / 255.0
    H, W = image.shape[:2]
    radius = max(1, round(max(H, W) / 300))
    for face in faces:
        with torch.no_grad():
            verts = face.fit.vertices_cam(model)
            # a large face is shaded at the cap, then resized
            view = _face_view(verts, face.fit, H, W, OVERLAY_MAX_PX)
            if view is None:
                continue
            (x0, y0, x1, y1), size, small, K = view
            r = render(verts, model.faces, K, small, config)
        shade, mask = r.image[0].cpu().numpy(), r.mask[0].cpu().numpy().astype(np.float32)
        if small != size:
            shade = cv2.resize(shade, size[::-1], interpolation=cv2.INTER_LINEAR)
            mask = cv2.resize(mask, size[::-1], interpolation=cv2.INTER_LINEAR)
        mask = mask[..., None] * alpha
        out[y0:y1, x0:x1] = out[y0:y1, x0:x1] * (1 - mask) + shade * mask
    out = (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)
    for face in faces:
        draw_points(out, face.landmarks_detected, (0, 255, 0), radius)
        draw_points(out, face.fit.landmarks_fitted[0].cpu().numpy(), (255, 40, 40), radius)
    return out


def write_face(
    out_dir: str | os.PathLike,
    stem: str,
    image: np.ndarray,
    face: FaceFit,
    model,
    layout: UVLayout,
    image_name: str,
    config: RenderConfig = RenderConfig(),
    ply: bool = False,
) -> Path:
    """Write ``<stem>_<i>.obj`` (+ .mtl, .png texture), with ``ply`` also ``<stem>_<i>.ply``
    (vertex colours sampled from the photo), and ``<stem>_<i>.json``. Returns the JSON path.

    In a photo over :data:`OVERLAY_MAX_PX` on its longer side the texture is sampled in the face's
    box, the face resized to at most that size (``cv2.INTER_AREA``): the 512 x 1024 atlas holds no
    more, and rasterising a 16 MP frame took seconds."""
    out_dir = Path(out_dir)
    name = f"{stem}_{face.face_index}"
    with torch.no_grad():
        verts_cam = face.fit.vertices_cam(model)
        view, K = image, face.fit.intrinsics
        seen = (
            _face_view(verts_cam, face.fit, *image.shape[:2], OVERLAY_MAX_PX)
            if max(image.shape[:2]) > OVERLAY_MAX_PX
            else None
        )
        if seen is not None:  # a large photo: sampled in the face's box, the face at most the cap
            (x0, y0, x1, y1), size, small, K = seen
            view = image[y0:y1, x0:x1]
            if small != size:
                view = cv2.resize(view, small[::-1], interpolation=cv2.INTER_AREA)
        photo = torch.from_numpy(np.array(view, dtype=np.float32))[None].to(model.template.device) / 255.0
        tex = extract_texture(photo, verts_cam, model.faces, K.to(photo.device), layout, config)
    texture = (tex.texture[0].cpu().numpy() * 255 + 0.5).astype(np.uint8)
    verts = face.fit.vertices(model)[0]
    export_obj(out_dir / f"{name}.obj", verts, model.faces, layout.corner_uvs, texture)
    if ply:
        export_ply(out_dir / f"{name}.ply", verts, model.faces, tex.vertex_colors[0])
    return atomic_write_json(out_dir / f"{name}.json", face_record(face, model, image_name))
