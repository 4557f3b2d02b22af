"""What ``face3d fit`` writes per face: JSON record, textured OBJ, overlay PNG."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

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
            r = render(face.fit.vertices_cam(model), model.faces, face.fit.intrinsics, (H, W), config)
        shade, mask = r.image[0].cpu().numpy(), r.mask[0].cpu().numpy()[..., None] * alpha
        out = out * (1 - mask) + shade * mask
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
    (vertex colours sampled from the photo), and ``<stem>_<i>.json``. Returns the JSON path."""
    out_dir = Path(out_dir)
    name = f"{stem}_{face.face_index}"
    photo = torch.from_numpy(np.array(image, dtype=np.float32))[None].to(model.template.device) / 255.0
    with torch.no_grad():
        verts_cam = face.fit.vertices_cam(model)
        tex = extract_texture(photo, verts_cam, model.faces, face.fit.intrinsics, layout, config)
    texture = (tex.texture[0].cpu().numpy() * 255 + 0.5).astype(np.uint8)
    verts = face.fit.vertices(model)[0]
    export_obj(out_dir / f"{name}.obj", verts, model.faces, layout.corner_uvs, texture)
    if ply:
        export_ply(out_dir / f"{name}.ply", verts, model.faces, tex.vertex_colors[0])
    return atomic_write_json(out_dir / f"{name}.json", face_record(face, model, image_name))
