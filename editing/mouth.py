"""What the photo never showed inside the head: teeth, gums, tongue and the mouth socket.

Only surface points the photo did not show are drawn (the warp moves the photo's own teeth where
it shows them). They are ICT's own interior meshes, coloured per part, lit by a soft key light,
darkened toward the throat with their depth behind the front teeth in the head's own frame (the
light reaches inside only through the opening), and toned to the photo: its exposure and a little
of its white balance, taken from the visible skin against a reference skin tone, and its grey
levels in a black-and-white photo.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from face3d.camera import project
from face3d.filters import masked_blur
from face3d.ict import INNER_LIPS
from face3d.render import RenderConfig
from face3d.render.shading import PhongShader, VertexColorShader, vertex_normals
from face3d.render.texture_fill import LUMA_601, grey_levels

THROAT_CM = 2.5
"""Light entering through the lips falls off as exp(-depth behind the front teeth / THROAT_CM)."""
THROAT_FLOOR = 0.2
"""Brightness factor deep in the mouth (the falloff tends to it, never below)."""
REFERENCE_SKIN = np.array([0.70, 0.52, 0.44])
"""A mid skin tone (linear-ish RGB, 0-1): the photo's skin colour against it gives the toning."""
WHITE_BALANCE = 0.25
"""Share of the skin's colour cast (against the reference) given to the interior: a little, since
a skin's own hue is part of its colour and teeth are not skin."""
REFERENCE_SCLERA = np.array([1.103, 0.964, 0.902])
"""The sclera's median colour cast (:func:`sclera_colour` over its Rec. 601 luminance) in the dev
train half's 411 colour photos, read on their labelled landmarks."""
SCLERA_BALANCE = 0.25
"""Share of the sclera's colour cast, against :data:`REFERENCE_SCLERA`, also given to the interior.
The sclera is near-neutral whoever the person is, so its cast is the light's. On the held-out
half's 172 colour photos whose lips are apart, the hue of the real teeth (red / green, blue /
green) is predicted with a median log error of 0.106 from the skin alone (share 0.25), 0.089
with the sclera's share 0.25 added (chosen on the train half;
``scripts/experiments/teeth_white_balance.py``, docs/history.md)."""
SMOOTH_PX = 0.8
"""Least Gaussian sigma (pixels) of the blur of the drawn interior (within the drawn area); a
blurrier photo's own blur is used instead (:func:`face3d.filters.extra_blur`)."""
INTERIOR_LIGHT = RenderConfig(albedo=1.0, ambient=0.45, diffuse=0.55, specular=0.05, shininess=24.0)


PART_COLORS = {
    "mouth_socket": (0.309, 0.146, 0.128),
    "eye_socket_left": (0.10, 0.06, 0.06),
    "eye_socket_right": (0.10, 0.06, 0.06),
    "gums_tongue": (0.628, 0.399, 0.368),
    "teeth": (1.0, 0.86, 0.79),
}
"""Colours of the interior parts (0-1 RGB, before lighting and toning): a dark socket, a pink tongue
and gums, warm off-white enamel. The enamel's hue is calibrated on the dev train half: the brightest
30 % of the inner mouth of 128 near-frontal colour photos whose labelled lips are apart read red /
green 1.16 and blue / green 0.91 (medians), the drawn teeth's brightest 30 % 1.09 and 0.87 with the
enamel (0.95, 0.88, 0.76) before: a dim yellow-grey that looked olive next to the lips
(``scripts/experiments/interior_brightness.py``, docs/history.md). The socket's and the tongue's
hue is calibrated against the skin around the mouth: in the dev train half's colour photos whose
labelled lips are wide apart, the darker 70 % of the inner mouth read red / green 1.02-1.15 and
blue / green 1.07 times the skin's; the drawn ones read 1.43 and 1.20 (a mauve tongue) with
(0.70, 0.36, 0.38) and (0.34, 0.13, 0.13), and 1.19 and 1.07 with these, of the same luminance, on
both halves (``scripts/experiments/interior_colour.py``)."""
MOUTH_GROW = 0.15
"""The mouth region is the outer lips' polygon grown by this fraction of the mouth width."""
OUTER_LIPS = slice(48, 60)
"""The 68-landmark indices of the outer lip contour."""
TONE_RING = 0.5
"""The interior is toned to the skin around the mouth: the mouth region grown by this fraction of
the mouth width, less the lips (the light that reaches the opening, not the hair's or the far
cheek's shadow)."""
MOUTH_GROW_FRAC = 0.04
"""Growth of the inner-lip polygon, as a fraction of the face size, that bounds the drawn interior."""


def _polygon_mask(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(h, w) uint8: 1 inside the polygon of (N, 2) pixel ``points`` (rounded), 0 elsewhere."""
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
    return mask


def mouth_opening(landmarks_cam: torch.Tensor, K: torch.Tensor, shape: tuple[int, int], face_size: float):
    """(h, w) bool: the target's inner-lip polygon (its 68-landmark vertices ``landmarks_cam``
    (1, 68, 3) projected with ``K``), grown by :data:`MOUTH_GROW_FRAC` of ``face_size``: the only
    place the interior may be drawn (elsewhere an interior triangle peeking past a silhouette is
    a rasterisation artefact, not an opened mouth)."""
    mask = _polygon_mask(project(landmarks_cam[:, list(INNER_LIPS)], K)[0].double().numpy(), shape)
    r = max(1, int(round(MOUTH_GROW_FRAC * face_size)))
    mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    return mask > 0


def photo_opening(landmarks: np.ndarray, origin: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """(h, w) bool: where the photo itself shows its mouth open: the polygon of its detected inner
    lips (``landmarks`` (68, 2) image pixels, e.g. :attr:`FaceFit.landmarks_detected`) in a crop of
    ``shape`` whose top-left pixel is ``origin`` (x0, y0), less a pixel of its border (the lips'
    edge). Empty when the detected lips touch. The photo showed what lies there: the warp moves
    it, nothing is drawn over it."""
    pts = np.asarray(landmarks, np.float64)[list(INNER_LIPS)] - np.asarray(origin, np.float64)
    return cv2.erode(_polygon_mask(pts, shape), np.ones((3, 3), np.uint8)) > 0


def mouth_region(landmarks: np.ndarray, shape: tuple[int, int], grow: float = MOUTH_GROW) -> np.ndarray:
    """(H, W) bool: the polygon of the outer lips (landmarks 48-59 of ``landmarks`` (68, 2), pixels)
    grown by ``grow`` of the mouth width: the mouth, its interior and the lip edges."""
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"landmarks: expected (68, 2), got {lm.shape}")
    lips = lm[OUTER_LIPS]
    width = float(np.ptp(lips[:, 0])) or 1.0
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(
        mask, [np.round(cv2.convexHull(lips.astype(np.float32))[:, 0] * 4).astype(np.int32)], 1, shift=2
    )
    r = max(1, int(round(grow * width)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.dilate(mask, kernel) > 0


def tone_pixels(landmarks: np.ndarray, face: np.ndarray) -> np.ndarray:
    """(h, w) bool: the pixels of ``face`` (h, w) bool (the visible facial skin) around the mouth
    whose outer lips ``landmarks`` (68, 2) give in those pixels' frame (:data:`TONE_RING`), or all
    of ``face`` where fewer than 20 of them are left."""
    around = mouth_region(landmarks, face.shape, TONE_RING) & ~mouth_region(landmarks, face.shape, 0.0) & face
    return around if around.sum() >= 20 else face


def sclera_colour(photo: np.ndarray, landmarks: np.ndarray) -> np.ndarray | None:
    """(3,) mean colour (0-255 RGB) of the brightest 30 % of the pixels inside the larger eye's
    polygon (landmarks 36-41 or 42-47 of ``landmarks`` (68, 2), in the pixels of ``photo`` (h, w, 3)
    uint8): the sclera, glints (luminance 250 and above) left out; None under 8 pixels (a closed
    or hidden eye)."""
    lm = np.asarray(landmarks, np.float64)
    eyes = [_polygon_mask(lm[a : a + 6], photo.shape[:2]) > 0 for a in (36, 42)]
    px = photo[max(eyes, key=lambda m: m.sum())].astype(np.float64)
    luma = px @ np.array(LUMA_601)
    px, luma = px[luma < 250], luma[luma < 250]
    if len(px) < 8:
        return None
    return px[luma >= np.percentile(luma, 70)].mean(0)


def photo_tone(photo: np.ndarray, skin: np.ndarray, sclera: np.ndarray | None = None) -> np.ndarray:
    """(3,) per-channel gain that takes the reference skin tone to the mean colour of ``photo``
    (h, w, 3) uint8 over ``skin`` (h, w) bool: exposure in full, white balance by
    :data:`WHITE_BALANCE` and, given the ``sclera``'s colour (:func:`sclera_colour`), by its cast
    (:data:`SCLERA_BALANCE`), clamped to [0.35, 1.6]."""
    if skin.sum() < 20:
        return np.ones(3)
    mean = photo[skin].astype(np.float64).mean(0) / 255.0
    luma = np.array(LUMA_601)
    exposure = (mean @ luma) / (REFERENCE_SKIN @ luma)
    balance = (mean / max(mean @ luma, 1e-6)) / (REFERENCE_SKIN / (REFERENCE_SKIN @ luma))
    tone = exposure * balance**WHITE_BALANCE
    if sclera is not None:
        cast = np.asarray(sclera, np.float64) / max(float(np.asarray(sclera) @ luma), 1e-6)
        reference = REFERENCE_SCLERA / (REFERENCE_SCLERA @ luma)
        tone = tone * np.clip(cast / reference, 0.25, 4.0) ** SCLERA_BALANCE
    return np.clip(tone, 0.35, 1.6)


LIPS_CHROMA = 31.0
"""Lip chroma (the mean of max - min of R, G, B over the lips, levels) at and above which the drawn
interior keeps its full colour: the lower quartile of the dev train half's photos (median 63). A
photo whose lips show less (a toned black-and-white, a faded print) gets an interior desaturated in
proportion, so a near-grey photo does not get a red mouth."""


def lips_saturation(photo: np.ndarray, landmarks: np.ndarray) -> float:
    """The share in [0, 1] of the interior's colour a photo supports: the chroma of its lips
    (``photo`` (h, w, 3) uint8; ``landmarks`` (68, 2) in its pixels: the outer lips' polygon less the
    inner lips') over :data:`LIPS_CHROMA`, 1 where fewer than 10 lip pixels are seen."""
    lm = np.asarray(landmarks, np.float64)
    inner = _polygon_mask(lm[list(INNER_LIPS)], photo.shape[:2]) > 0
    lips = mouth_region(lm, photo.shape[:2], 0.0) & ~inner
    if lips.sum() < 10:
        return 1.0
    px = photo[lips].astype(np.float64)
    return float(np.clip((px.max(1) - px.min(1)).mean() / LIPS_CHROMA, 0.0, 1.0))


def desaturate(rgb: np.ndarray, saturation: float) -> np.ndarray:
    """(..., 3) colours with their distance from their grey level (Rec. 601) scaled by ``saturation``."""
    luma = (rgb @ np.array(LUMA_601))[..., None]
    return luma + saturation * (rgb - luma)


def throat_falloff(model) -> torch.Tensor:
    """(V,) brightness factor of each vertex of ``model`` (the full head): 1 at and in front of the
    front teeth, falling off exponentially with the depth behind them (``THROAT_CM``) to
    ``THROAT_FLOOR``. Depth is read along the head's forward axis (+z) in the model's template,
    so it does not depend on the pose or on the person."""
    z = model.template[:, 2].float()
    a, b = model.regions["teeth"]
    behind = (z[a : b + 1].max() - z).clamp(min=0.0)
    return THROAT_FLOOR + (1.0 - THROAT_FLOOR) * torch.exp(-behind / THROAT_CM)


def part_colors(model, grey: bool) -> torch.Tensor:
    """(V, 3) per-vertex :data:`PART_COLORS` of ``model`` (the full head; 0.5 elsewhere), darkened
    toward the throat (:func:`throat_falloff`), as grey levels for a greyscale photo."""
    colors = torch.full((model.n_vertices, 3), 0.5, dtype=torch.float32)
    for region, rgb in PART_COLORS.items():
        a, b = model.regions[region]
        colors[a : b + 1] = torch.tensor(rgb)
    colors = colors * throat_falloff(model)[:, None]
    if grey:
        colors = grey_levels(colors)
    return colors


def render_interior(
    frags,
    v_target: torch.Tensor,
    faces: torch.Tensor,
    colors: torch.Tensor,
    mask: np.ndarray,
    tone: np.ndarray,
    blur_px: float = SMOOTH_PX,
    saturation: float = 1.0,
) -> np.ndarray:
    """(h, w, 3) uint8 colours of the interior at the ``mask`` pixels of a target render
    (``frags``: its fragments; ``colors``: (V, 3) per-vertex part colours in [0, 1], already grey
    for a grey photo), blurred by ``blur_px`` (at least :data:`SMOOTH_PX`: the photo's own blur
    beyond pixel-sharp, so that a soft photo gets soft teeth), toned by ``tone`` (3,) and
    desaturated to ``saturation`` (:func:`lips_saturation`); zero elsewhere."""
    out = np.zeros((*mask.shape, 3), np.uint8)
    if not mask.any():
        return out
    base = VertexColorShader()(frags, colors[None], faces)[0]
    shade = PhongShader(INTERIOR_LIGHT)(frags, v_target, faces, vertex_normals(v_target, faces))[0]
    sigma = max(SMOOTH_PX, blur_px)
    rgb = masked_blur((base * shade).numpy().astype(np.float32), mask, sigma)[0][mask].astype(np.float64)
    rgb = desaturate(rgb * tone, saturation)
    if np.allclose(colors[:, 0].numpy(), colors[:, 1].numpy()):  # grey interior: a grey photo
        rgb = rgb.mean(-1, keepdims=True).repeat(3, -1)
    out[mask] = np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out


MIN_DRAWN_PX = 10
"""Least area (pixels) of a drawn part of the interior; smaller ones are left to the warp."""
MIN_DRAWN_FRAC = 0.02
"""Least side of a drawn part as a fraction of the face's size (the square root of the pixels its
render covers): its area must be at least this side squared (and :data:`MIN_DRAWN_PX`)."""


def drawable(synth: np.ndarray, face_size: float = 0.0) -> np.ndarray:
    """The parts of the (h, w) bool ``synth`` mask worth drawing: at least 3 px wide and
    :data:`MIN_DRAWN_PX` in area, and at least ``(MIN_DRAWN_FRAC * face_size) ** 2`` (``face_size``:
    pixels). A sliver or a dot of drawn throat in the photo's own moved teeth, or a mouth corner
    opened by a few pixels in profile, reads as a crack or a speck, not as an opening; the warp's
    stretch of the photo fills it."""
    wide = opened(synth).astype(np.uint8)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(wide, connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= max(MIN_DRAWN_PX, (MIN_DRAWN_FRAC * face_size) ** 2)
    keep[0] = False
    return keep[labels]


def opened(mask: np.ndarray) -> np.ndarray:
    """Morphological opening of an (h, w) bool mask by a 3 x 3 square: drops 1-2 px wide parts."""
    kernel = np.ones((3, 3), np.uint8)
    return cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, kernel) > 0
