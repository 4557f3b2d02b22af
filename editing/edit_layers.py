"""A 3D edit as layers over the photo, and their transfer to another resolution.

The edit of one face to one target (:mod:`editing.edit3d`) is, in its work crop, a backward motion
the photo is sampled through, a shading ratio the warped photo is multiplied by, and colours painted
over it where the photo never showed the surface (the drawn mouth interior, revealed eyeball).
:func:`compose` applies them to a photo. None of them depends on the photo's resolution beyond its
scale, so a face larger than :attr:`EditConfig.max_face_px` is edited at a smaller scale and its
layers are carried to the full-resolution crop (:func:`resample_layers`): the photo's own pixels are
then warped at full resolution, and only the motion, the shading and the painted parts come from
the smaller scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from editing.composite import mask_window
from editing.shading import apply_ratio
from editing.warp import despeckle, warp_image
from face3d.crop import resized_points


@dataclass(frozen=True)
class EditLayers:
    """What one target's edit does to its work crop of (h, w) pixels.

    Attributes:
        motion: (h, w, 2) float32 backward motion, pixels: the edit samples the photo at
            ``p + motion[p]``.
        ratio: (h, w) float32 factor on the warped photo (exactly 1 where the shading is unchanged).
        paint: (h, w, 3) float32 colours (0-255) painted over the warped photo.
        paint_alpha: (h, w) float32 their weight in [0, 1] (0: the warped photo).
        synthesized: (h, w) bool the drawn interior (the photo never showed it).
        head: (h, w) bool pixels the target render covers.
    """

    motion: np.ndarray
    ratio: np.ndarray
    paint: np.ndarray
    paint_alpha: np.ndarray
    synthesized: np.ndarray
    head: np.ndarray

    def __post_init__(self):
        h, w = self.ratio.shape
        for name, shape in (("motion", (h, w, 2)), ("paint", (h, w, 3)), ("paint_alpha", (h, w)),
                            ("synthesized", (h, w)), ("head", (h, w))):  # fmt: skip
            if getattr(self, name).shape != shape:
                raise ValueError(f"EditLayers.{name}: expected {shape}, got {getattr(self, name).shape}")


def shaded(photo: np.ndarray, layers: EditLayers) -> np.ndarray:
    """(h, w, 3) uint8: ``photo`` warped through the layers' motion and multiplied by their ratio."""
    return apply_ratio(warp_image(photo, layers.motion), layers.ratio)


def compose(photo: np.ndarray, layers: EditLayers, warped: np.ndarray | None = None) -> np.ndarray:
    """The edited work crop (h, w, 3) uint8 of ``photo`` (h, w, 3) uint8: warped, shaded, painted,
    and the dots the edit made removed (:func:`editing.warp.despeckle`). ``warped``: the
    :func:`shaded` photo when already computed."""
    out = shaded(photo, layers) if warped is None else warped.copy()
    painted = layers.paint_alpha > 0
    if painted.any():
        a = layers.paint_alpha[..., None]
        mixed = layers.paint * a + out.astype(np.float32) * (1 - a)
        out[painted] = np.clip(mixed[painted] + 0.5, 0, 255).astype(np.uint8)
    return despeckle(out, photo, layers.motion, layers.synthesized)


def resample_layers(layers: EditLayers, map_x: np.ndarray, map_y: np.ndarray, scale: tuple[float, float]):
    """The layers read at other pixels (:func:`remap`): ``map_x``, ``map_y`` (h', w') float32 give
    each new pixel's position in the layers' pixels, ``scale`` (sx, sy) the layers' pixels per new
    pixel (the motion is rescaled to new pixels). Returns the (h', w') :class:`EditLayers`."""

    def read(x: np.ndarray) -> np.ndarray:
        return remap(x, map_x, map_y)

    sx, sy = scale
    motion = read(layers.motion) / np.array([sx, sy], np.float32)
    ratio = read(layers.ratio)
    ratio[np.abs(ratio - 1.0) < 1e-6] = 1.0  # interpolated ones stay exactly 1: the photo's bytes
    # the paint premultiplied by its weight (no dark fringe), its edge softened by half a pixel of
    # the layers (an edge read bilinearly steps along their pixel rows)
    sigma = 0.5 / min(sx, sy)
    h, w = map_x.shape
    paint, alpha = np.zeros((h, w, 3), np.float32), np.zeros((h, w), np.float32)
    near = read(cv2.dilate((layers.paint_alpha > 0).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0)
    win = mask_window(near, int(np.ceil(4 * sigma)) + 2)
    if win is not None:  # only where something is painted: most of a large crop is the photo's
        mx, my = map_x[win], map_y[win]
        alpha[win] = cv2.GaussianBlur(remap(layers.paint_alpha, mx, my), (0, 0), sigma)
        premultiplied = remap(layers.paint * layers.paint_alpha[..., None], mx, my)
        paint[win] = cv2.GaussianBlur(premultiplied, (0, 0), sigma) / np.maximum(alpha[win], 1e-6)[..., None]
    return EditLayers(
        motion=motion.astype(np.float32),
        ratio=ratio,
        paint=paint,
        paint_alpha=np.clip(alpha, 0.0, 1.0),
        synthesized=read(layers.synthesized),
        head=read(layers.head),
    )


def remap(x: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    """``x`` (h, w[, C]) read at (``map_x``, ``map_y``): bilinear, or the nearest pixel for a bool
    mask (bool out); beyond ``x``, its edge (a full-resolution crop reaches half a pixel of the
    small one beyond it)."""
    if x.dtype == bool:
        out = cv2.remap(x.astype(np.uint8), map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
        return out > 0
    return cv2.remap(x, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def pixel_map(shape: tuple[int, int], origin: tuple[int, int], scale: tuple[float, float],
              origin_small: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(map_x, map_y) (h, w) float32 for :func:`resample_layers`: the pixels of a full-resolution
    crop of ``shape`` (h, w) at ``origin`` (x0, y0) in the image, read in a crop at ``origin_small``
    of the image resized by ``scale`` (sx, sy): ``u_s = (u + 0.5) s - 0.5``, pixel centres kept."""
    h, w = shape
    sx, sy = scale
    xs = resized_points(np.arange(origin[0], origin[0] + w, dtype=np.float64), sx) - origin_small[0]
    ys = resized_points(np.arange(origin[1], origin[1] + h, dtype=np.float64), sy) - origin_small[1]
    return np.broadcast_to(xs[None].astype(np.float32), (h, w)).copy(), np.broadcast_to(
        ys[:, None].astype(np.float32), (h, w)
    ).copy()


@dataclass(frozen=True)
class PlacedEdit:
    """One target's edit carried to the full-resolution image (:func:`upscale_edit`).

    Attributes:
        crop: (x0, y0, x1, y1) its crop in the image, pixels (exclusive ends).
        out: (h, w, 3) uint8 the edited crop (the photo's bytes outside ``region``).
        head: (h, w) bool pixels the target render covers.
        region, alpha: (H, W) bool and float32 as :class:`editing.edit3d.FaceEdit`'s.
        synthesized: (H, W) bool the drawn interior.
    """

    crop: tuple[int, int, int, int]
    out: np.ndarray
    head: np.ndarray
    region: np.ndarray
    alpha: np.ndarray
    synthesized: np.ndarray


def upscale_edit(image: np.ndarray, extent, small_size: tuple[int, int], crop, region: np.ndarray,
                 alpha: np.ndarray, layers: EditLayers) -> PlacedEdit:  # fmt: skip
    """An edit made on ``image`` resized to ``small_size`` (h, w), applied to ``image`` (H, W, 3)
    uint8 itself: its work ``crop`` (x0, y0, x1, y1), ``region`` and ``alpha`` (h, w) and
    ``layers`` (of the crop) are read at the full resolution's pixels, within ``extent`` (x0, y0,
    x1, y1: :func:`face3d.crop.photo_extent` of ``image``), and the photo is warped, shaded and
    painted there (:func:`compose`)."""
    H, W = image.shape[:2]
    sx, sy = small_size[1] / W, small_size[0] / H
    x0, y0, x1, y1 = crop
    X0, Y0 = max(extent[0], int(np.floor(x0 / sx))), max(extent[1], int(np.floor(y0 / sy)))
    X1, Y1 = min(extent[2], int(np.ceil(x1 / sx))), min(extent[3], int(np.ceil(y1 / sy)))
    mx, my = pixel_map((Y1 - Y0, X1 - X0), (X0, Y0), (sx, sy), (x0, y0))
    full = resample_layers(layers, mx, my, (sx, sy))
    photo = np.ascontiguousarray(image[Y0:Y1, X0:X1])
    inside = remap(region[y0:y1, x0:x1], mx, my)
    out = compose(photo, full)
    out[~inside] = photo[~inside]  # outside the region: the photo's bytes
    big_region, synth = np.zeros((H, W), bool), np.zeros((H, W), bool)
    big_alpha = np.zeros((H, W), np.float32)
    big_region[Y0:Y1, X0:X1] = inside
    big_alpha[Y0:Y1, X0:X1] = np.where(inside, remap(np.ascontiguousarray(alpha[y0:y1, x0:x1]), mx, my), 0.0)
    synth[Y0:Y1, X0:X1] = full.synthesized
    return PlacedEdit((X0, Y0, X1, Y1), out, full.head, big_region, big_alpha, synth)
