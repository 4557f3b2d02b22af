"""``--method 2d``: the DefGAN baseline as a 2D-only editor (no 3D model, no fit).

Per face, from its detected 68 landmarks alone (dlib's), as :class:`editing.warp2d.Warp2D` does:

1. **Condition.** The target weights are the :class:`editing.expressions.ExpressionSpec` applied to
   a neutral source: a 2D method has no fit to read the photo's own expression from, so the source
   is taken as neutral (all zeros), for the generators' ``(y_src, y_tgt)`` condition too.
2. **Warp.** :func:`editing.gan.refine.deform_2d`: the deformation generator's flow on the aligned
   crop of the landmarks, applied to the full-resolution photo.
3. **Mouth.** The distilled flow is smooth: where it opens the lips it stretches their pixels
   across the opening. The pixels inside the target's inner lips (where the 2D expression model of
   ``2d-warp`` puts them: :meth:`Warp2D.target_landmarks`) whose source point lies outside the
   photo's own opening get the interior of :mod:`editing.mouth2d`, the fill ``2d-warp`` uses (the
   same parts, colours and depth falloff as the 3D path's): the generators learned no interior.
   Inside the opening the map is ``2d-warp``'s too (:func:`editing.warp2d.open_mouth_map`), so the
   teeth the photo shows move with their lip instead of being drawn over.
4. **Texture.** :func:`editing.gan.refine.texture_2d`, the DefGAN texture generator.
5. **Paste-back** inside the face region of the 2D landmarks (:meth:`Warp2D.face_region`, the same
   region as ``2d-warp``): every pixel outside it is the input's, byte for byte.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from editing.composite import paste
from editing.edit3d import FaceEdit
from editing.expressions import ExpressionSpec
from editing.gan.checkpoint import GeneratorBundle
from editing.gan.refine import deform_2d, texture_2d
from editing.mouth2d import fill_mouth
from editing.warp2d import Warp2D, open_mouth_map, opening_mask
from face3d.crop import photo_extent, photo_mask

MOUTH_PAD = 0.15
"""The mouth's work crop: the landmarks' mouth box grown by this fraction of the face width per side."""


class DefGAN2D:
    """The ``2d`` editor: the DefGAN generators and the 2D face region of :class:`Warp2D`.

    Args:
        bundle: a ``kind="2d"`` :class:`GeneratorBundle` (deformation + texture generators).
        warp: the :class:`Warp2D` whose landmark model and settings give the face region (default:
            the shipped landmark model).
    """

    def __init__(self, bundle: GeneratorBundle, warp: Warp2D | None = None):
        if bundle.kind != "2d":
            raise ValueError(f"DefGAN2D needs a 2D (deform + texture) bundle, got kind {bundle.kind!r}")
        self.bundle = bundle
        self.warp = warp if warp is not None else Warp2D()

    @property
    def names(self) -> tuple[str, ...]:
        """The K ARKit names, in the order of the generators' condition."""
        return self.warp.names

    def to(self, device) -> DefGAN2D:
        return DefGAN2D(self.bundle.to(device), self.warp)

    def edit_face(
        self, image: np.ndarray, landmarks: np.ndarray, specs: list[ExpressionSpec]
    ) -> list[FaceEdit]:
        """Edit the face with (68, 2) pixel ``landmarks`` of ``image`` ((H, W, 3) uint8) to each
        target; ``FaceEdit.render`` holds the warped photo before the texture generator."""
        t0 = time.perf_counter()
        src = np.asarray(landmarks, np.float64)
        if src.shape != (68, 2):
            raise ValueError(f"landmarks: expected (68, 2), got {src.shape}")
        _, region, alpha = self.warp.face_region(image.shape[:2], src)
        extent = ex0, ey0, ex1, ey1 = photo_extent(image)  # nothing moves into the padding around a photo
        inside = photo_mask(image, extent)
        region, alpha = region & inside, np.where(inside, alpha, 0).astype(alpha.dtype)
        ys, xs = np.nonzero(region)
        if len(ys) == 0:
            raise ValueError("the face lies outside the image")
        crop = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        frame = self.warp.model.frame(src)
        region_ms = (time.perf_counter() - t0) * 1e3
        source = np.zeros(len(self.names))
        edits = []
        for spec in specs:
            t1 = time.perf_counter()
            target = np.asarray(spec.apply(source, self.names), np.float64)
            disp, box = deform_2d(self.bundle, image, src, source, target)
            H, W = image.shape[:2]
            gx, gy = np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32))
            mx, my = np.clip(gx + disp[..., 0], ex0, ex1 - 1), np.clip(gy + disp[..., 1], ey0, ey1 - 1)
            warped = cv2.remap(image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            _, _, dst = self.warp.target_landmarks(src, spec, frame)
            synthesized = self._fill_mouth(image, warped, disp, frame, (src, dst))
            warped = paste(image, warped, alpha, region)
            out = texture_2d(self.bundle, image, warped, box, target, region, alpha)
            x0, y0, x1, y1 = crop
            timings = {"region": region_ms, "edit_2d": (time.perf_counter() - t1) * 1e3}
            render = warped[y0:y1, x0:x1]
            edits.append(FaceEdit(out, render, crop, region, alpha, source, target, timings, synthesized))
        return edits

    def _fill_mouth(self, image, warped, disp, frame, landmarks) -> np.ndarray:
        """Draw the interior where the flow opened the lips, in ``warped`` (H, W, 3) uint8 (in place):
        the pixels inside the target's inner lips whose source point (``disp``) lies outside the
        photo's own opening. ``landmarks``: (source, target) (68, 2) pixels; ``frame``: the face's
        :class:`editing.landmark_model.Similarity`. Returns them, (H, W) bool."""
        (src, dst), H, W = landmarks, *image.shape[:2]
        mouth = np.concatenate([src[48:68], dst[48:68]])
        pad = MOUTH_PAD * float(np.ptp(src[:, 0]))
        x0, y0 = (max(0, int(v)) for v in np.floor(mouth.min(0) - pad))
        x1, y1 = int(min(W, np.ceil(mouth[:, 0].max() + pad))), int(min(H, np.ceil(mouth[:, 1].max() + pad)))
        synthesized = np.zeros((H, W), bool)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return synthesized
        photo = np.ascontiguousarray(image[y0:y1, x0:x1])
        gx, gy = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
        maps = np.stack([gx, gy], -1) + disp[y0:y1, x0:x1]
        model = self.warp.model
        opened = opening_mask(photo.shape[:2], src - [x0, y0])
        synth, inner = open_mouth_map(maps, (x0, y0), frame, (src, dst), opened)
        if inner.any():
            win = cv2.remap(
                image, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
            )
            fill_mouth(win, synth, inner, photo, frame, src, dst, model, (x0, y0))
            warped[y0:y1, x0:x1] = win
            synthesized[y0:y1, x0:x1] = synth
        return synthesized
