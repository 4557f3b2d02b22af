"""Inference with the trained generators, at the photo's own resolution.

- :func:`refine_face_edit` (``face3d edit --refine gan``): the texture generator cleans up what a
  3D edit synthesised (the interior the photo never showed; the warp's own pixels are the photo's
  and stay as they are). It sees the aligned 128 px crop of the composited edit; its texture T and
  attention M are warped back to image pixels and applied there (``M * edit + (1 - M) * T``),
  pasted only over the synthesised pixels grown by :data:`SYNTH_GROW_PX`.
- :func:`edit_face_2d` (``face3d edit --method 2d``): the 2D-only DefGAN baseline. ``G_def``'s flow
  is predicted on the same aligned crop, scaled to image pixels and applied to the full-resolution
  photo, then its texture generator runs on the warped crop as above.

Both paste back with the 3D edit's dilated face region and feathered alpha
(:meth:`editing.edit3d.Editor3D.regions`), so every method changes the same pixels and everything
outside the region is byte-identical to the input.
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
from editing.gan.networks import apply_attention
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
        tex, m = bundle.texture(x, y, extra)
    maps = torch.cat([tex, m], 1)[0].permute(1, 2, 0).cpu().numpy()
    full, inside = uncrop(maps, box, image.shape[:2])
    m_full = 1 - (1 - full[..., 3:]) * inside[..., None]  # outside the crop: keep the input
    texture = full[..., :3]
    if is_greyscale(x[0].permute(1, 2, 0)):  # trained on colour photos: its grey levels in a grey one
        texture = grey_levels(torch.from_numpy(texture)).numpy()
    return texture, m_full


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


def edit_face_2d(
    bundle: GeneratorBundle,
    image: np.ndarray,
    face,
    target: np.ndarray,
    region: np.ndarray,
    alpha: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The 2D-only DefGAN edit of one face.

    Args:
        bundle: a ``kind="2d"`` :class:`GeneratorBundle`.
        image: (H, W, 3) uint8 photo; face: its :class:`FaceFit` (crop placement, source weights).
        target: (K,) target ARKit weights; region, alpha: the paste-back region and weight (H, W).
    Returns:
        (the edited (H, W, 3) uint8 image, the warped photo before the texture generator), both
        equal to ``image`` outside ``region``.
    """
    if bundle.kind != "2d":
        raise ValueError(f"edit_face_2d needs a 2D (deform + texture) bundle, got kind {bundle.kind!r}")
    H, W = image.shape[:2]
    box = aligned_box(face.fit.landmarks_fitted[0].detach().cpu().numpy(), _scale(bundle))
    dev = next(bundle.deform.parameters()).device
    x = _to_tensor(crop_square(image, box, bundle.size), dev)
    y_src = face.fit.expression.detach().to(dev, torch.float32)
    y_tgt = torch.as_tensor(target, dtype=torch.float32, device=dev)[None]
    with torch.no_grad():
        flow = bundle.deform(x, y_src, y_tgt)[0].permute(1, 2, 0).cpu().numpy()  # normalised units
    side = box[2] - box[0]
    disp, inside = uncrop(flow * (side / 2), box, (H, W))  # image pixels
    disp = disp * inside[..., None]
    gx, gy = np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32))
    warped = cv2.remap(
        image, gx + disp[..., 0], gy + disp[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    warped = paste(image, warped, alpha, region)
    texture, mask = _texture_pass(dataclasses.replace(bundle, kind="texture"), warped, box, target)
    return paste(image, _attend(warped, texture, mask), alpha, region), warped


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
