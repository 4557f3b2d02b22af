"""``--method 2d-warp``: the classical landmark-driven warp, a 2D-only baseline (no 3D model).

Per face, from its detected 68 landmarks alone (dlib's):

1. **Offsets.** The target weights (:class:`editing.expressions.ExpressionSpec` applied to a
   neutral source: a 2D method has no fit to read the photo's own expression from, so it assumes a
   neutral face) go through the 2D expression model (:class:`editing.landmark_model.LandmarkModel`)
   to landmark offsets in the normalised frame, which the face's similarity frame (eye corners and
   nose) rotates and scales into the image; target landmarks = detected + offsets.
2. **Warp.** Anchors on a ring around the face (the hull of the landmarks and a forehead band,
   pushed outward) stay still. A Delaunay triangulation of landmarks and anchors (made on the source
   with the lips parted a little, so the mouth's inside is its own triangles) maps every target
   triangle affinely back to its source triangle; the photo is sampled through that backward map
   (``cv2.remap``); pixels moving under :attr:`Warp2DConfig.still_px` keep their bytes.
3. **Mouth.** Inside the target's inner lips, pixels the photo never showed opened (their source
   point is not inside the source's own opening) get the interior of :mod:`editing.mouth2d`.
4. **Paste-back.** The anchor ring's polygon is the face region; :func:`editing.composite.edit_region`
   dilates and feathers it and :func:`editing.composite.paste` blends the warp in: every pixel
   outside the region is the input's, byte for byte.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.spatial import Delaunay

from editing.composite import CompositeConfig, edit_region, paste
from editing.edit3d import FaceEdit
from editing.expressions import ExpressionSpec
from editing.landmark_model import LandmarkModel, Similarity
from editing.mouth2d import fill_mouth, mouth_map, opening_polygon, source_half
from face3d.crop import photo_extent


@dataclass(frozen=True)
class Warp2DConfig:
    """Settings of the 2D warp.

    Attributes:
        forehead: the brows, raised by this many inter-ocular distances (IOD) along the face's up
            axis, bound the forehead the warp may move.
        margin: the anchor ring is the outline (landmarks and forehead) pushed out from its
            centroid by this fraction: motion falls to zero over that band.
        n_anchors: points on the anchor ring.
        part_lips: for the triangulation only, the lower inner lip is moved down by this many IOD so
            that closed lips still give the mouth's inside its own triangles.
        still_px: pixels whose backward map moves them less than this keep their bytes.
        composite: dilation and feathering of the paste-back region.
    """

    forehead: float = 0.6
    margin: float = 0.3
    n_anchors: int = 28
    part_lips: float = 0.04
    still_px: float = 0.05
    composite: CompositeConfig = field(default_factory=CompositeConfig)


@dataclass(frozen=True)
class FaceLandmarks:
    """One face found by the detector, with its 2D landmarks (no 3D fit): what the 2D-only path
    edits, in :class:`editing.result.ImageEdit` where the 3D path has a ``FaceFit``.

    Attributes:
        face_index: rank in the image (largest first); bbox: (x0, y0, x1, y1) detection box.
        detector: ``"hog"``, ``"cnn"``, ...; score: its confidence.
        landmarks_detected: (68, 2) dlib's landmarks, pixels.
        timings_ms: ``detect`` and ``landmarks``.
        landmark_source: always ``"dlib"``.
    """

    face_index: int
    bbox: tuple[float, float, float, float]
    detector: str
    score: float
    landmarks_detected: np.ndarray
    timings_ms: dict[str, float]
    landmark_source: str = "dlib"


def landmark_faces(marked) -> list[FaceLandmarks]:
    """The faces of a :class:`face3d.fit.pipeline.Landmarked` image (detected, dlib's landmarks)."""
    return [
        FaceLandmarks(
            i,
            tuple(d.box),
            d.source,
            d.score,
            lm,
            {"detect": marked.detect_ms, "landmarks": marked.landmarks_ms},
        )  # fmt: skip
        for i, (d, lm) in enumerate(zip(marked.detections, marked.landmarks, strict=True))
    ]


def dlib_landmarks(image: np.ndarray, face) -> np.ndarray:
    """(68, 2) dlib's landmarks of ``face`` (a :class:`FaceLandmarks` or a ``FaceFit``): its own
    when they are dlib's, else dlib's predictor in its detection box (a fit may have used the
    landmark regressor's, which a 2D-only method does not get)."""
    if getattr(face, "landmark_source", "dlib") == "dlib":
        return np.asarray(face.landmarks_detected, np.float64)
    from face3d.detect import predict_landmarks

    return predict_landmarks(image, face.bbox)


def anchor_ring(landmarks: np.ndarray, frame: Similarity, config: Warp2DConfig) -> np.ndarray:
    """(n_anchors, 2) still points around the face: the convex hull of the landmarks and the brows
    raised by ``config.forehead`` IOD, resampled evenly along its perimeter and pushed out from
    its centroid by ``config.margin``."""
    up = frame.vectors_to_image(np.array([0.0, -config.forehead]))
    hull = cv2.convexHull(np.concatenate([landmarks, landmarks[17:27] + up]).astype(np.float32))[:, 0]
    closed = np.concatenate([hull, hull[:1]]).astype(np.float64)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(closed, axis=0), axis=1))])
    s = np.linspace(0.0, arc[-1], config.n_anchors, endpoint=False)
    ring = np.stack([np.interp(s, arc, closed[:, 0]), np.interp(s, arc, closed[:, 1])], 1)
    centre = ring.mean(0)
    return centre + (ring - centre) * (1.0 + config.margin)


def triangulate(points: np.ndarray, frame: Similarity, config: Warp2DConfig) -> np.ndarray:
    """(T, 3) Delaunay triangles of ``points`` (68 landmarks, then anchors), made with the lower
    inner lip (65-67) moved down by ``config.part_lips`` IOD."""
    layout = points.copy()
    layout[65:68] += frame.vectors_to_image(np.array([0.0, config.part_lips]))
    return Delaunay(layout).simplices.astype(np.int64)


def backward_map(src: np.ndarray, dst: np.ndarray, tris: np.ndarray, crop: tuple[int, int, int, int]):
    """The piecewise-affine backward map over the work ``crop`` (x0, y0, x1, y1): ``(map (h, w, 2)
    float32 source pixel of each target pixel, inside (h, w) bool)``; identity outside the
    triangles. ``src``, ``dst``: (P, 2) points; ``tris``: (T, 3) indices."""
    x0, y0, x1, y1 = crop
    h, w = y1 - y0, x1 - x0
    ids = np.full((h, w), -1, np.int32)
    off = np.array([x0, y0], np.float64)
    for t, tri in enumerate(tris):
        pts = np.round((dst[tri] - off) * 16).astype(np.int32)
        cv2.fillConvexPoly(ids, pts, int(t), lineType=cv2.LINE_8, shift=4)
    d = np.concatenate([dst[tris], np.ones((len(tris), 3, 1))], 2)  # (T, 3, 3) rows (x, y, 1)
    s = src[tris]  # (T, 3, 2)
    ok = np.abs(np.linalg.det(d)) > 1e-9
    A = np.zeros((len(tris), 3, 2))
    A[:, 0, 0] = A[:, 1, 1] = 1.0  # a degenerate target triangle covers no pixel: identity
    A[ok] = np.linalg.solve(d[ok], s[ok])  # (x, y, 1) @ A = source point
    A = A.reshape(-1, 6).astype(np.float32)
    out = np.empty((h, w, 2), np.float32)
    out[..., 0] = np.arange(x0, x1, dtype=np.float32)[None]
    out[..., 1] = np.arange(y0, y1, dtype=np.float32)[:, None]
    inside = ids >= 0
    yy, xx = np.nonzero(inside)
    a = A[ids[yy, xx]]
    px, py = out[yy, xx, 0], out[yy, xx, 1]
    out[yy, xx, 0] = px * a[:, 0] + py * a[:, 2] + a[:, 4]
    out[yy, xx, 1] = px * a[:, 1] + py * a[:, 3] + a[:, 5]
    return out, inside


def _paste_changed(image, photo, out, alpha, region, crop) -> np.ndarray:
    """:func:`editing.composite.paste` of the warped work crop ``out`` over ``image``, run on the
    box of the pixels that changed (elsewhere ``out`` is the photo, which the paste leaves as is)."""
    result = image.copy()
    ys, xs = np.nonzero((out != photo).any(-1))
    if len(ys) == 0:
        return result
    x0, y0 = crop[:2]
    a, b, c, d = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    win = (slice(y0 + a, y0 + b), slice(x0 + c, x0 + d))
    result[win] = paste(photo[a:b, c:d], out[a:b, c:d], alpha[win], region[win])
    return result


def _face_region(shape: tuple[int, int], ring: np.ndarray, config: CompositeConfig):
    """(hard, region, alpha), each (H, W): the anchor ``ring``'s polygon and its
    :func:`editing.composite.edit_region`, computed in a window around the polygon wide enough for
    the dilation and the feathering (the same values as over the whole image, in a fraction of the
    time)."""
    H, W = shape
    lo, hi = np.floor(ring.min(0)).astype(int), np.ceil(ring.max(0)).astype(int)
    size = float(np.sqrt(max(np.prod(hi - lo), 1)))
    pad = int(np.ceil((config.dilate_frac + 4 * config.feather_frac) * size)) + 4 * config.min_px + 4
    x0, y0 = max(0, int(lo[0]) - pad), max(0, int(lo[1]) - pad)
    x1, y1 = min(W, int(hi[0]) + pad + 1), min(H, int(hi[1]) + pad + 1)
    hard, region, alpha = np.zeros(shape, bool), np.zeros(shape, bool), np.zeros(shape, np.float32)
    if x1 <= x0 or y1 <= y0:
        return hard, region, alpha
    win = (slice(y0, y1), slice(x0, x1))
    hard[win] = polygon_mask((y1 - y0, x1 - x0), ring - [x0, y0])
    region[win], alpha[win] = edit_region(hard[win], config)
    return hard, region, alpha


def open_mouth_map(maps, origin, frame: Similarity, landmarks, opened, within=None):
    """Inside the target's inner lips, the backward map of a work crop becomes
    :func:`editing.mouth2d.mouth_map`'s (each half of the opening moves with its inner lip, so the
    teeth a photo shows keep their shape); what it takes from outside the source's own opening, or
    from its other half, is to be synthesised.

    Args:
        maps: (h, w, 2) float32 the crop's backward map (image pixels), modified in place.
        origin: (x0, y0) of the crop in the image; frame: the face's :class:`Similarity`.
        landmarks: (source, target) (68, 2) pixel landmarks; opened: (h, w) bool the source's
            opening (:func:`opening_mask`) in the crop; within: (h, w) bool, where the map is defined.
    Returns:
        (pixels to synthesise (h, w) bool, the target's opening (h, w) bool).
    """
    (x0, y0), (src, dst) = origin, landmarks
    h, w = maps.shape[:2]
    inner = polygon_mask((h, w), opening_polygon(dst) - [x0, y0])
    if within is not None:
        inner &= within
    ys, xs = np.nonzero(inner)
    xy = np.stack([xs + x0, ys + y0], 1).astype(np.float64)
    from_xy, upper = mouth_map(xy, frame, src, dst)
    maps[ys, xs] = from_xy
    ix = np.clip(np.round(from_xy - [x0, y0]).astype(int), 0, [w - 1, h - 1])
    seen = opened[ix[:, 1], ix[:, 0]] & (source_half(from_xy, frame, src) == upper)
    synth = np.zeros_like(inner)
    synth[ys[~seen], xs[~seen]] = True
    return synth, inner


def opening_mask(shape: tuple[int, int], landmarks: np.ndarray) -> np.ndarray:
    """(h, w) bool: the inner lips' opening of (68, 2) ``landmarks`` (pixels) filled, without
    specks thinner than 3 px (closed lips leave none)."""
    opened = polygon_mask(shape, opening_polygon(landmarks)).astype(np.uint8)
    return cv2.morphologyEx(opened, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0


def polygon_mask(shape: tuple[int, int], points: np.ndarray) -> np.ndarray:
    """(h, w) bool: the polygon ``points`` (n, 2) (pixels, sub-pixel precise) filled."""
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(points * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    return mask > 0


class Warp2D:
    """The ``2d-warp`` editor: a :class:`LandmarkModel` and a :class:`Warp2DConfig`.

    Args:
        model: the 2D expression model (default: the shipped one).
        config: :class:`Warp2DConfig`.
    """

    def __init__(self, model: LandmarkModel | None = None, config: Warp2DConfig = Warp2DConfig()):
        self.model = model if model is not None else LandmarkModel.load()
        self.config = config

    @property
    def names(self) -> tuple[str, ...]:
        return self.model.names

    def target_landmarks(self, landmarks: np.ndarray, spec: ExpressionSpec, frame: Similarity):
        """(source weights (K,), target weights (K,), target landmarks (68, 2)) for one target:
        the source is taken as neutral (all zeros)."""
        source = np.zeros(len(self.names))
        target = np.asarray(spec.apply(source, self.names), np.float64)
        offsets = frame.vectors_to_image(self.model.offsets(target - source))
        return source, target, landmarks + offsets

    def face_region(self, shape: tuple[int, int], landmarks: np.ndarray):
        """(hard, region, alpha), each (H, W) for an image of ``shape``: the region a 2D method edits
        for the face with (68, 2) pixel ``landmarks``: the anchor ring's polygon, and its dilation
        and feathered paste-back weight (:func:`editing.composite.edit_region`)."""
        src = np.asarray(landmarks, np.float64)
        anchors = anchor_ring(src, self.model.frame(src), self.config)
        return _face_region(shape, anchors, self.config.composite)

    def edit_face(
        self, image: np.ndarray, landmarks: np.ndarray, specs: list[ExpressionSpec]
    ) -> list[FaceEdit]:
        """Edit the face with (68, 2) pixel ``landmarks`` of ``image`` ((H, W, 3) uint8) to each target."""
        H, W = image.shape[:2]
        t0 = time.perf_counter()
        src = np.asarray(landmarks, np.float64)
        frame = self.model.frame(src)
        anchors = anchor_ring(src, frame, self.config)
        tris = triangulate(np.concatenate([src, anchors]), frame, self.config)
        lo = np.floor(anchors.min(0)).astype(int)
        hi = np.ceil(anchors.max(0)).astype(int) + 1
        ex0, ey0, ex1, ey1 = photo_extent(image)  # not the padding around a crop's photo
        crop = (max(ex0, int(lo[0])), max(ey0, int(lo[1])), min(ex1, int(hi[0])), min(ey1, int(hi[1])))
        x0, y0, x1, y1 = crop
        if x1 - x0 < 2 or y1 - y0 < 2:
            raise ValueError("the face lies outside the image")
        hard, region, alpha = _face_region((H, W), anchors, self.config.composite)
        photo = np.ascontiguousarray(image[y0:y1, x0:x1])
        opened = opening_mask(photo.shape[:2], src - [x0, y0])
        prep_ms = (time.perf_counter() - t0) * 1e3
        edits = []
        for spec in specs:
            t1 = time.perf_counter()
            source, target, dst = self.target_landmarks(src, spec, frame)
            points = (src, np.concatenate([dst, anchors]))
            out, synth, inner = self._warp(image, photo, crop, frame, points, tris, opened)
            if synth.any():
                fill_mouth(out, synth, inner, photo, frame, src, dst, self.model, (x0, y0))
            t2 = time.perf_counter()
            result = _paste_changed(image, photo, out, alpha, region, crop)
            synthesized = np.zeros((H, W), bool)
            synthesized[y0:y1, x0:x1] = synth
            timings = {"warp_prep": prep_ms, "warp_2d": (t2 - t1) * 1e3,
                       "composite": (time.perf_counter() - t2) * 1e3}  # fmt: skip
            render = result[y0:y1, x0:x1] * hard[y0:y1, x0:x1, None]
            edits.append(FaceEdit(result, render, crop, region, alpha, source, target, timings, synthesized))
        return edits

    def _warp(self, image, photo, crop, frame, points, tris, opened):
        """One target in the work crop: (warped crop (h, w, 3) uint8, pixels to synthesise (h, w)
        bool, the target's opening (h, w) bool). Inside the target's inner lips the map is
        :func:`editing.mouth2d.mouth_map`'s; what it takes from outside the source's own opening
        (or from its other half) is synthesised."""
        x0, y0, x1, y1 = crop
        src, dst_points = points  # (68, 2) source landmarks; (68 + anchors, 2) target points
        dst = dst_points[:68]
        maps, inside = backward_map(np.concatenate([src, dst_points[68:]]), dst_points, tris, crop)
        synth, inner = open_mouth_map(maps, (x0, y0), frame, (src, dst), opened, inside)
        out = cv2.remap(image, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        gx, gy = np.arange(x0, x1, dtype=np.float32)[None], np.arange(y0, y1, dtype=np.float32)[:, None]
        still = (maps[..., 0] - gx) ** 2 + (maps[..., 1] - gy) ** 2 < self.config.still_px**2
        out[still] = photo[still]
        return out, synth, inner
