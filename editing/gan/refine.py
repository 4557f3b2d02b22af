"""Inference with the trained generators, at the photo's own resolution.

- :func:`refine_face_edit` (``face3d edit --refine gan``): the texture generator cleans up what a
  3D edit synthesised (the interior the photo never showed; the warp's own pixels are the photo's
  and stay as they are). It sees the aligned 128 px crop of the composited edit; its texture T and
  attention M are warped back to image pixels and applied there (``M * edit + (1 - M) * T``),
  pasted only over the synthesised pixels grown by :data:`SYNTH_GROW_PX`.
- :func:`deform_2d` and :func:`texture_2d` (``face3d edit --method 2d``, put together by
  :class:`editing.defgan2d.DefGAN2D`): the 2D-only DefGAN baseline. ``G_def``'s flow is predicted
  on the aligned crop of the 2D landmarks and scaled to image pixels (the photo is warped at full
  resolution), then its texture generator runs on the warped crop as above.

Both paste back inside a given region with a feathered alpha, so everything outside the region is
byte-identical to the input.
"""

from __future__ import annotations

import dataclasses
import time

import cv2
import numpy as np
import torch

from editing.composite import paste
from editing.gan.checkpoint import GeneratorBundle
from editing.gan.crop import aligned_box, crop_mask, crop_square, uncrop
from editing.gan.networks import apply_attention, keep_detail
from editing.result import ImageEdit
from face3d.render.texture_fill import grey_levels, is_greyscale

DEFAULT_SCALE = 1.6
"""Crop scale (box side / landmark box side) used when a checkpoint does not record its own."""


def _scale(bundle: GeneratorBundle) -> float:
    return float(bundle.meta.get("crop_scale", DEFAULT_SCALE))


def _to_tensor(image: np.ndarray, device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1)[None].float() / 255.0


def _texture_pass(
    bundle: GeneratorBundle, image: np.ndarray, box, target: np.ndarray, synthesized: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Texture generator on the aligned crop of ``image`` -> (T, M) in image pixels (H, W, 3|1).

    ``synthesized``: (H, W) bool, what the edit drew; a generator with an extra input gets its crop
    (none drawn: all zero)."""
    dev = next(bundle.texture.parameters()).device
    x = _to_tensor(crop_square(image, box, bundle.size), dev)
    y = torch.as_tensor(target, dtype=torch.float32, device=dev)[None]
    extra = None
    if bundle.texture.config.extra_inputs:
        drawn = np.zeros(image.shape[:2], bool) if synthesized is None else synthesized
        extra = torch.from_numpy(crop_mask(drawn, box, bundle.size)).to(dev)[None, None]
    with torch.no_grad():
        tex, m = bundle.texture(x, y, extra, detail=False)
    maps = torch.cat([tex, m], 1)[0].permute(1, 2, 0).cpu().numpy()
    full, inside = uncrop(maps, box, image.shape[:2])
    m_full = 1 - (1 - full[..., 3:]) * inside[..., None]  # outside the crop: keep the input
    texture = full[..., :3]
    if is_greyscale(x[0].permute(1, 2, 0)):  # trained on colour photos: its grey levels in a grey one
        texture = grey_levels(torch.from_numpy(texture)).numpy()
    sigma = bundle.texture.config.detail_sigma
    if sigma > 0:  # the detail head at the photo's resolution: its own fine structure is kept
        texture = _detail_in_box(texture, image, box, sigma * (box[2] - box[0]) / bundle.size)
    return texture, m_full


def _detail_in_box(texture: np.ndarray, image: np.ndarray, box, sigma: float) -> np.ndarray:
    """:func:`keep_detail` of (H, W, 3) float ``texture`` against the uint8 ``image``, computed in
    the crop ``box`` (grown by the blur's reach) only; ``sigma`` in image pixels."""
    H, W = image.shape[:2]
    r = int(np.ceil(3 * sigma)) + 1
    x0, y0 = max(0, int(box[0]) - r), max(0, int(box[1]) - r)
    x1, y1 = min(W, int(np.ceil(box[2])) + r), min(H, int(np.ceil(box[3])) + r)
    if x1 <= x0 or y1 <= y0:
        return texture
    win = lambda a: torch.from_numpy(np.ascontiguousarray(a[y0:y1, x0:x1])).permute(2, 0, 1)[None].float()  # noqa: E731
    kept = keep_detail(win(texture), win(image) / 255.0, sigma)[0].permute(1, 2, 0).numpy()
    out = texture.copy()
    out[y0:y1, x0:x1] = kept
    return out


def _attend(image: np.ndarray, texture: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = apply_attention(torch.from_numpy(image / 255.0), torch.from_numpy(texture), torch.from_numpy(mask))
    return (out.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)


def refine_face_edit(bundle: GeneratorBundle, face, edit) -> np.ndarray:
    """Clean up one 3D edit with the texture generator.

    Args:
        bundle: a ``kind="texture"`` :class:`GeneratorBundle`.
        face: the :class:`FaceFit` the edit was made from (its fitted landmarks place the crop).
        edit: the :class:`editing.edit3d.FaceEdit`.
    Returns:
        (H, W, 3) uint8, equal to ``edit.image`` outside ``edit.region``.
    """
    if bundle.kind != "texture":
        raise ValueError(f"refine_face_edit needs a texture generator, got kind {bundle.kind!r}")
    region, alpha = edit.region, edit.alpha
    if edit.synthesized is not None:  # a warp: only what it drew is the generator's to change
        if not edit.synthesized.any():
            return edit.image
        region, alpha = synthesized_region(edit.synthesized)
    box = aligned_box(face.fit.landmarks_fitted[0].detach().cpu().numpy(), _scale(bundle))
    texture, mask = _texture_pass(bundle, edit.image, box, edit.target, edit.synthesized)
    return paste(edit.image, _attend(edit.image, texture, mask), alpha, region)


SYNTH_GROW_PX = 2
"""The synthesised pixels are grown by this much (and feathered) for the generator's paste-back, so
the lip edge around a drawn mouth interior is its to blend too."""


def synthesized_region(synthesized: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(region (H, W) bool, alpha (H, W) float32): the synthesised pixels grown by
    :data:`SYNTH_GROW_PX`, with a feathered weight that is 1 on them."""
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * SYNTH_GROW_PX + 1,) * 2)
    region = cv2.dilate(synthesized.astype(np.uint8), k) > 0
    alpha = cv2.GaussianBlur(region.astype(np.float32), (0, 0), SYNTH_GROW_PX / 2)
    alpha = np.where(region, np.maximum(alpha, synthesized), 0.0).astype(np.float32)
    return region, alpha


def deform_2d(
    bundle: GeneratorBundle, image: np.ndarray, landmarks: np.ndarray, source: np.ndarray, target: np.ndarray
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The 2D-only DefGAN's motion of one face: no 3D model, no fit.

    Args:
        bundle: a ``kind="2d"`` :class:`GeneratorBundle`.
        image: (H, W, 3) uint8 photo; landmarks: (68, 2) its face's 2D landmarks, pixels (they
            place the aligned crop).
        source, target: (K,) the source's and the target's ARKit weights (the generators' condition).
    Returns:
        (the backward displacement (H, W, 2) float32, image pixels: the output's pixel ``p`` shows
        the photo at ``p + disp[p]``, zero outside the crop; the aligned crop box ``(x0, y0, x1, y1)``).
    """
    if bundle.kind != "2d":
        raise ValueError(f"deform_2d needs a 2D (deform + texture) bundle, got kind {bundle.kind!r}")
    box = aligned_box(landmarks, _scale(bundle))
    dev = next(bundle.deform.parameters()).device
    x = _to_tensor(crop_square(image, box, bundle.size), dev)
    y_src = torch.as_tensor(source, dtype=torch.float32, device=dev)[None]
    y_tgt = torch.as_tensor(target, dtype=torch.float32, device=dev)[None]
    with torch.no_grad():
        flow = bundle.deform(x, y_src, y_tgt)[0].permute(1, 2, 0).cpu().numpy()  # normalised units
    disp, inside = uncrop(flow * ((box[2] - box[0]) / 2), box, image.shape[:2])
    return (disp * inside[..., None]).astype(np.float32), box


def texture_2d(
    bundle: GeneratorBundle,
    image: np.ndarray,
    warped: np.ndarray,
    box,
    target: np.ndarray,
    region: np.ndarray,
    alpha: np.ndarray,
) -> np.ndarray:
    """The 2D-only DefGAN's texture generator on the ``warped`` (H, W, 3) uint8 photo (aligned crop
    ``box`` of :func:`deform_2d`), pasted over ``image`` inside ``region`` with weight ``alpha``
    ((H, W) each): (H, W, 3) uint8, equal to ``image`` outside ``region``."""
    texture, mask = _texture_pass(dataclasses.replace(bundle, kind="texture"), warped, box, target)
    return paste(image, _attend(warped, texture, mask), alpha, region)


def refine_image_edit(bundle: GeneratorBundle, image: np.ndarray, result: ImageEdit) -> ImageEdit:
    """``--refine gan`` over an :class:`editing.result.ImageEdit`: every face's every edit is cleaned
    up; returns a new ImageEdit whose ``outputs`` and ``FaceEdit.image`` are the refined images."""
    faces = []
    for face, edits in result.faces:
        new = []
        for e in edits:
            t0 = time.perf_counter()
            refined = refine_face_edit(bundle, face, e)
            timings = {**e.timings_ms, "refine": (time.perf_counter() - t0) * 1e3}
            new.append(dataclasses.replace(e, image=refined, timings_ms=timings))
        faces.append((face, new))
    return ImageEdit.from_faces(image, faces, result.labels)
