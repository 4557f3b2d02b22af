"""Inference API of the landmark/3DMM regressor (:class:`face3d.detect.regressor.RegressorNet`):
crop a face box, run the network (BatchNorm folded into the convolutions), undo the crop.

:class:`LandmarkRegressor` returns one :class:`RegressorOutput` per box, in image coordinates,
optionally averaged over test-time augmentations (the mirrored crop, several crop scales).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from face3d.detect.regressor import MIRROR_68, RegressorNet, normalise

#: Crop-scale test-time augmentation of the default pipeline (:func:`face3d.fit.pipeline.default_regressor`):
#: on the AFLW2000-3D dev held-out half it lowers the balanced NME by about 0.25 points over flip alone.
TTA_SCALES = (0.9, 1.0, 1.1)


@dataclass(frozen=True)
class RegressorOutput:
    """The regression for one face box, in image coordinates.

    Attributes:
        landmarks: (68, 2) anatomical iBUG landmarks, image pixels (occluded ones included).
        yaw, pitch, roll: head pose, degrees (:mod:`face3d.camera` convention).
        confidence: probability that the box holds a face, [0, 1].
        identity: (K_id,) first identity weights; expression: (K_exp,) ARKit weights in [0, 1].
        rotation: (3, 3) model-to-camera rotation (OpenCV axes).
        scale: weak-perspective scale, image pixels per cm; centre: (2,) image position of the
            model origin, pixels.
        box: the 68-landmark-style box the crop was made from.
        landmark_offset: (68, 3) cm, the network's landmark convention (``lm_offset``): the
            landmarks are ICT's landmark vertices plus this model-space offset. Fitters given
            these landmarks use it (:func:`face3d.fit.landmark_fit.fit_landmarks`).
    """

    landmarks: np.ndarray
    yaw: float
    pitch: float
    roll: float
    confidence: float
    identity: np.ndarray
    expression: np.ndarray
    rotation: np.ndarray
    scale: float
    centre: np.ndarray
    box: tuple[float, float, float, float]
    landmark_offset: np.ndarray | None = None


def landmark_box_from_detector_box(box, mapping_path=None) -> tuple[float, float, float, float]:
    """Inverse of :func:`face3d.detect.dlib_box_from_landmark_box`: a dlib-style detector box ->
    the box its 68 landmarks would have (what the regressor's crops are defined on)."""
    from face3d.detect.boxes import as_box, load_mapping

    m = load_mapping(mapping_path)
    x0, y0, x1, y1 = as_box(box)
    A = np.array([m["w"], m["h"]], dtype=np.float64)  # [w', h'] = A @ [w, h]
    w, h = np.linalg.solve(A, [x1 - x0, y1 - y0])
    dc = np.array([m["dcx"], m["dcy"]], dtype=np.float64) @ [w, h]
    cx, cy = 0.5 * (x0 + x1) - dc[0], 0.5 * (y0 + y1) - dc[1]
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


class LandmarkRegressor:
    """Crop, run and map back: the inference API of :class:`RegressorNet`.

    Args:
        net: a :class:`RegressorNet` (default: :meth:`RegressorNet.from_pretrained`).
        threads: torch intra-op threads used while predicting (None: leave as is).
        flip: test-time augmentation: also run the mirrored crop and average landmarks, pose,
            scale, centre and confidence (about twice the time; identity and expression are
            the unmirrored crop's).
        scales: test-time augmentation: crop sides relative to the trained ``crop_scale``; each
            face is regressed from one crop per scale (all in one batch) and the results are
            averaged in image coordinates (landmarks, centre, scale, confidence, identity,
            expression; rotations by their projected mean). ``(1.0,)``: a single crop.
    """

    def __init__(
        self,
        net: RegressorNet | None = None,
        threads: int | None = None,
        flip: bool = False,
        scales: tuple[float, ...] = (1.0,),
    ):
        self.net = (net if net is not None else RegressorNet.from_pretrained()).eval()
        self.threads = threads
        self.flip = flip
        self.scales = tuple(float(v) for v in scales)
        if not self.scales or min(self.scales) <= 0:
            raise ValueError(f"scales must be positive crop-side factors, got {scales!r}")
        self._fused = None  # (features, their tensors, versions, BN-folded copy): first prediction

    @classmethod
    def from_pretrained(
        cls, folder=None, threads: int | None = None, flip: bool = False, scales: tuple[float, ...] = (1.0,)
    ) -> LandmarkRegressor:
        return cls(RegressorNet.from_pretrained(folder), threads, flip, scales)

    def _forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``self.net(x)`` in eval mode through BN-folded features (:meth:`RegressorNet.fused_features`),
        rebuilt whenever the feature weights change (in place, or the network is replaced)."""
        f = self._fused
        if f is None or f[0] is not self.net.features or f[2] != tuple(t._version for t in f[1]):
            feats = self.net.features
            tensors = (*feats.parameters(), *feats.buffers())
            f = self._fused = (feats, tensors, tuple(t._version for t in tensors), self.net.fused_features())
        return self.net.decode(f[3](x))

    def _run(self, crops: np.ndarray) -> dict[str, torch.Tensor]:
        """Network outputs for (N, S, S, 3) uint8 crops, mirrored-crop averaged with ``flip``."""
        x = normalise(torch.from_numpy(crops))
        if not self.flip:
            return self._forward(x)
        n = x.shape[0]
        both = self._forward(torch.cat([x, x.flip(-1)]))
        out = {k: v[:n] for k, v in both.items()}
        S = self.net.config.size
        M = torch.diag(torch.tensor([-1.0, 1.0, 1.0]))
        c_f = both["centre"][n:]
        out["rotation"] = mean_rotation(torch.stack([out["rotation"], M @ both["rotation"][n:] @ M], 1))
        for key in ("landmarks", "model_landmarks"):
            lm_f = both[key][n:][:, list(MIRROR_68)]
            lm_f = torch.stack([(S - 1) - lm_f[..., 0], lm_f[..., 1]], -1)
            out[key] = 0.5 * (out[key] + lm_f)
        out["centre"] = 0.5 * (out["centre"] + torch.stack([(S - 1) - c_f[:, 0], c_f[:, 1]], -1))
        out["scale"] = (0.5 * (out["scale"].log() + both["scale"][n:].log())).exp()
        out["logit"] = 0.5 * (out["logit"] + both["logit"][n:])
        return out

    def crops(
        self, image: np.ndarray, boxes, scales: tuple[float, ...] = (1.0,)
    ) -> tuple[np.ndarray, np.ndarray]:
        """(M * N, S, S, 3) uint8 crops and their (M * N, 2, 3) image -> crop affines, scale-major:
        for each of the M ``scales`` (crop side factors), one crop per box. A face is area-shrunk
        once, at its unscaled crop's zoom, for all its scales (as the AFLW fine-tune's crops)."""
        from face3d.detect.regressor_aflw import warp_affine
        from face3d.detect.regressor_data import crop_box, crop_transform, warp_crop

        cfg = self.net.config
        crops = np.zeros((len(scales), len(boxes), cfg.size, cfg.size, 3), np.uint8)
        As = np.zeros((len(scales), len(boxes), 2, 3))
        for j, b in enumerate(boxes):
            cx, cy, side = crop_box(b, cfg.crop_scale)
            k = cfg.size / side
            for i, sc in enumerate(scales):
                As[i, j] = crop_transform(cx, cy, side * sc, cfg.size)
            if k >= 0.7:
                for i in range(len(scales)):
                    crops[i, j] = warp_crop(image, As[i, j], cfg.size)
                continue
            # area-shrink only the part of the image the crops read, on the whole-image shrink's grid
            half = 0.5 * side * max(scales)
            part, fx, fy, a, c = shrink_region(image, k, (cx - half, cx + half), (cy - half, cy + half))
            # warp_affine maps shrunk pixels to image pixels; the part starts (a, c) shrunk pixels in
            shift = np.array([[1.0, 0.0, a / fx], [0.0, 1.0, c / fy], [0.0, 0.0, 1.0]])
            for i in range(len(scales)):
                crops[i, j] = warp_affine(image, As[i, j] @ shift, cfg.size, (part, fx, fy))
        return crops.reshape(-1, cfg.size, cfg.size, 3), As.reshape(-1, 2, 3)

    def predict_batch(self, image: np.ndarray, boxes) -> list[RegressorOutput]:
        """One :class:`RegressorOutput` per 68-landmark-style box ``(x0, y0, x1, y1)``.

        Args:
            image: (H, W, 3) uint8 RGB.
            boxes: sequence of N boxes.
        """
        from face3d.camera import euler_degrees
        from face3d.detect import check_image

        image = check_image(image)
        boxes = [tuple(float(v) for v in b) for b in boxes]
        if not boxes:
            return []
        n, m = len(boxes), len(self.scales)
        crops, As = self.crops(image, boxes, self.scales)  # scale-major order
        old = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                out = self._run(crops)
        finally:
            torch.set_num_threads(old)
        k = As[:, 0, 0]
        off = As[:, :, 2]

        def mean(x: np.ndarray) -> np.ndarray:  # (m * n, ...) scale-major -> (n, ...) mean over scales
            return x.reshape(m, n, *x.shape[1:]).mean(0)

        lm = mean((out["landmarks"].double().numpy() - off[:, None]) / k[:, None, None])
        centre = mean((out["centre"].double().numpy() - off) / k[:, None])
        scale = np.exp(mean(np.log(out["scale"].double().numpy() / k)))
        R = mean_rotation(out["rotation"].double().reshape(m, n, 3, 3).transpose(0, 1))
        ypr = euler_degrees(R).numpy()
        conf = torch.sigmoid(torch.from_numpy(mean(out["logit"].double().numpy()))).numpy()
        ident = mean(out["identity"].double().numpy())
        expr = mean(out["expression"].double().numpy())
        offset = self.net.lm_offset.double().numpy()
        return [
            RegressorOutput(
                landmarks=lm[i],
                yaw=float(ypr[i, 0]),
                pitch=float(ypr[i, 1]),
                roll=float(ypr[i, 2]),
                confidence=float(conf[i]),
                identity=ident[i],
                expression=expr[i],
                rotation=R[i].numpy(),
                scale=float(scale[i]),
                centre=centre[i],
                box=boxes[i],
                landmark_offset=offset,
            )
            for i in range(n)
        ]

    def predict(self, image: np.ndarray, box) -> RegressorOutput:
        """:meth:`predict_batch` for one box."""
        return self.predict_batch(image, [box])[0]


class ReferenceLandmarkRegressor(LandmarkRegressor):
    """:class:`LandmarkRegressor` without its speed-ups, the reference they are checked against
    (tests, ``scripts/bench_regressor_speed.py``): the network as trained (BatchNorm layers) and
    every crop warped from a whole-image area shrink (:func:`face3d.detect.regressor_aflw.shrink`)."""

    def _forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.net(x)

    def crops(self, image, boxes, scales: tuple[float, ...] = (1.0,)) -> tuple[np.ndarray, np.ndarray]:
        from face3d.detect.regressor_aflw import shrink, warp_affine
        from face3d.detect.regressor_data import crop_box, crop_transform, warp_crop

        S = self.net.config.size
        crops, As = [], []
        for sc in scales:
            for b in boxes:
                cx, cy, side = crop_box(b, self.net.config.crop_scale)
                k = S / side
                As.append(crop_transform(cx, cy, side * sc, S))
                crops.append(
                    warp_affine(image, As[-1], S, shrink(image, k))
                    if k < 0.7
                    else warp_crop(image, As[-1], S)
                )
        return np.stack(crops), np.stack(As)


def _area_taps(a: int, b: int, n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's ``INTER_AREA`` weights of an ``n`` -> ``d`` shrink, for output pixels ``[a, b)``:
    source indices and weights, each (b - a, T); output ``j`` averages source ``[j s, (j + 1) s)``,
    ``s = n / d``."""
    s = n / d
    f1 = np.arange(a, b, dtype=np.float64) * s
    f2 = np.minimum(f1 + s, n)
    idx = np.floor(f1).astype(np.int64)[:, None] + np.arange(math.ceil(s) + 1)
    w = np.clip(np.minimum(idx + 1, f2[:, None]) - np.maximum(idx, f1[:, None]), 0.0, None)
    w /= w.sum(1, keepdims=True)
    return np.minimum(idx, n - 1), w


def shrink_region(image: np.ndarray, k: float, x_range, y_range):
    """The part of :func:`face3d.detect.regressor_aflw.shrink` ``(image, k)`` (an ``INTER_AREA``
    resize) that covers image columns ``x_range`` and rows ``y_range`` (+ 2 shrunk pixels for a
    bilinear warp), computed from that part of the image only: faces in large photos take a
    fraction of the time.

    Returns ``(part, fx, fy, a, c)``: ``part`` equals ``shrink(image, k)[0][c:c + h, a:a + w]``
    (to a grey level where OpenCV's float rounding differs) and ``fx``, ``fy`` are the whole-image
    shrink's factors.
    """
    from face3d.detect.regressor_data import shrunk_size

    H, W = image.shape[:2]
    dW, dH = shrunk_size(W, H, k)

    def span(lo: float, hi: float, n: int, d: int) -> tuple[int, int]:
        a = min(d - 1, max(0, math.floor(lo * d / n) - 2))
        return a, max(a + 1, min(d, math.ceil(hi * d / n) + 3))

    (a, b), (c, e) = span(*x_range, W, dW), span(*y_range, H, dH)
    xi, xw = _area_taps(a, b, W, dW)
    yi, yw = _area_taps(c, e, H, dH)
    y0, x0 = yi.min(), xi.min()
    roi = image[y0 : yi.max() + 1, x0 : xi.max() + 1]  # what the part reads
    xi, yi, xw, yw = xi - x0, yi - y0, xw.astype(np.float32), yw.astype(np.float32)
    # rows first (numpy gathers rows much faster than columns), then columns of the smaller array
    tmp = sum(roi[yi[:, t]] * yw[:, t, None, None] for t in range(yi.shape[1]))  # (e - c, w, 3)
    part = sum(np.take(tmp, xi[:, t], axis=1) * xw[None, :, t, None] for t in range(xi.shape[1]))
    return np.clip(np.rint(part), 0, 255).astype(np.uint8), dW / W, dH / H, a, c


def mean_rotation(R: torch.Tensor) -> torch.Tensor:
    """(N, M, 3, 3) rotations -> (N, 3, 3): the rotation nearest (Frobenius) to each row's mean."""
    U, _, Vh = torch.linalg.svd(R.mean(1))
    D = torch.ones(R.shape[0], 3, dtype=R.dtype)
    D[:, 2] = torch.linalg.det(U @ Vh).sign()
    return U @ torch.diag_embed(D) @ Vh
