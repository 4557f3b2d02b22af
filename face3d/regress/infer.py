"""Inference API of the landmark/3DMM regressor (:class:`face3d.regress.network.RegressorNet`):
crop a face box, run the network (BatchNorm folded into the convolutions), undo the crop.

:class:`LandmarkRegressor` returns one :class:`RegressorOutput` per box, in image coordinates,
optionally averaged over test-time augmentations (the mirrored crop, several crop scales).
A face the network's upright head finds lying on its side or upside down is regressed again from
its crops turned back (:mod:`face3d.regress.upright`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

import face3d.regress.upright as up
from face3d.camera import euler_degrees
from face3d.crop import compose_affine, crop_box, shrink, shrink_region, warp_affine, warp_crop
from face3d.detect import check_image
from face3d.detect.boxes import as_box, load_mapping
from face3d.regress.decode import mean_rotation, to_image
from face3d.regress.network import MIRROR_68, InferenceTrunk, RegressorNet
from face3d.regress.views import PROFILE_MIN_YAW, PROFILE_VIEWS, View, add_profile_views, as_views

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
        turns: quarter turns (``np.rot90``, 0-3) of the crops the face was regressed from: 0 for
            an upright face, else the upright search turned them.
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
    turns: int = 0


def landmark_box_from_detector_box(box, mapping_path=None) -> tuple[float, float, float, float]:
    """Inverse of :func:`face3d.detect.dlib_box_from_landmark_box`: a dlib-style detector box ->
    the box its 68 landmarks would have (what the regressor's crops are defined on)."""
    m = load_mapping(mapping_path)
    x0, y0, x1, y1 = as_box(box)
    A = np.array([m["w"], m["h"]], dtype=np.float64)  # [w', h'] = A @ [w, h]
    w, h = np.linalg.solve(A, [x1 - x0, y1 - y0])
    dc = np.array([m["dcx"], m["dcy"]], dtype=np.float64) @ [w, h]
    cx, cy = 0.5 * (x0 + x1) - dc[0], 0.5 * (y0 + y1) - dc[1]
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


def default_tta(folder=None, **kwargs) -> LandmarkRegressor:
    """:meth:`LandmarkRegressor.from_pretrained` with the default test-time augmentation, what
    ``face3d fit`` runs: mirrored crops at the crop scales :data:`TTA_SCALES`, and the
    :data:`~face3d.regress.views.PROFILE_VIEWS` for faces at |yaw| >= 30 degrees.
    ``kwargs`` go to ``from_pretrained`` (``upright``, ``compile``, ...)."""
    options = {"flip": True, "scales": TTA_SCALES, "profile_views": PROFILE_VIEWS, **kwargs}
    return LandmarkRegressor.from_pretrained(folder, **options)


class LandmarkRegressor:
    """Crop, run and map back: the inference API of :class:`RegressorNet`.

    Args:
        net: a :class:`RegressorNet` (default: :meth:`RegressorNet.from_pretrained`).
        flip: test-time augmentation: also run the mirrored crop and average landmarks, pose,
            scale, centre and confidence (about twice the time; identity and expression are
            the unmirrored crop's).
        scales: test-time augmentation: crop sides relative to the trained ``crop_scale`` (or
            :class:`face3d.regress.views.View` crops); each face is regressed from one
            crop per scale (all in one batch) and the results are averaged in image coordinates
            (landmarks, centre, scale, confidence, identity, expression; rotations by their
            projected mean). ``(1.0,)``: a single crop.
        upright: upright search: a face whose crops the network's upright head does not find
            upright (probability below :data:`face3d.regress.upright.UPRIGHT_SEARCH_BELOW`)
            is regressed again from its crops turned 1, 2 and 3 quarter turns, and the result
            the head finds most upright is kept if the head finds it upright and clearly more
            so than the first (:mod:`face3d.regress.upright`). Faces the head finds
            upright cost nothing extra.
        profile_views: extra :class:`face3d.regress.views.View` crops (e.g.
            :data:`~face3d.regress.views.PROFILE_VIEWS`) for a face the first pass puts
            at |yaw| >= ``profile_min_yaw`` degrees, averaged with the first pass's
            (:func:`~face3d.regress.views.add_profile_views`); () for none.
        compile: run the BN-folded network as a compiled TorchScript graph
            (:func:`compiled_trunk`); False runs the same folded trunk eagerly (the same outputs
            to 1e-5, slower; ``scripts/bench/bench_regressor_speed.py`` times both).
    """

    def __init__(
        self,
        net: RegressorNet | None = None,
        flip: bool = False,
        scales: tuple[float, ...] = (1.0,),
        upright: bool = True,
        compile: bool = True,
        profile_views: tuple = (),
        profile_min_yaw: float = PROFILE_MIN_YAW,
    ):
        self.net = (net if net is not None else RegressorNet.from_pretrained()).eval()
        self.flip = flip
        self.upright = upright
        self.compile = compile
        self.profile_views = as_views(profile_views) if profile_views else ()
        self.profile_min_yaw = float(profile_min_yaw)
        self.scales = tuple(v if isinstance(v, View) else float(v) for v in scales)
        if not self.scales or any(not isinstance(v, View) and v <= 0 for v in self.scales):
            raise ValueError(f"scales must be positive crop-side factors, got {scales!r}")
        self._trunk = None  # (network, its tensors, versions, compiled trunk): first prediction

    def __getstate__(self) -> dict:
        """Pickled without the compiled trunk (rebuilt on the first prediction): a Ray actor
        receives the regressor this way."""
        return {**self.__dict__, "_trunk": None}

    @classmethod
    def from_pretrained(
        cls,
        folder=None,
        flip: bool = False,
        scales: tuple[float, ...] = (1.0,),
        upright: bool = True,
        compile: bool = True,
        profile_views: tuple = (),
        profile_min_yaw: float = PROFILE_MIN_YAW,
    ) -> LandmarkRegressor:
        net = RegressorNet.from_pretrained(folder)
        return cls(net, flip, scales, upright, compile, profile_views, profile_min_yaw)

    def _forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The :data:`_RUN_KEYS` outputs of ``self.net(x)`` in eval mode, through the network's
        :class:`DecodedTrunk` (BatchNorm folded; compiled by :func:`compiled_trunk` with
        ``compile``), rebuilt whenever the weights change (in place, or the network is replaced)."""
        f = self._trunk
        if f is None or f[0] is not self.net or f[2] != tuple(t._version for t in f[1]):
            tensors = (*self.net.parameters(), *self.net.buffers())
            trunk = DecodedTrunk(self.net)
            trunk = compiled_trunk(trunk, self.net.config.size) if self.compile else trunk
            f = self._trunk = (self.net, tensors, tuple(t._version for t in tensors), trunk)
        return dict(zip(_RUN_KEYS, f[3](x), strict=True))

    def _run(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        """Network outputs (float64 arrays, the keys of :data:`_RUN_KEYS`) for (N, S, S, 3) uint8
        crops, mirrored-crop averaged with ``flip`` (identity and expression: the crop's own)."""
        n = crops.shape[0]
        res = self._forward(normalised(crops, mirrored=self.flip))
        out = {k: res[k].double().numpy() for k in _RUN_KEYS}
        if not self.flip:
            return out
        f = {k: v[n:] for k, v in out.items()}  # the mirrored crops' outputs
        out = {k: v[:n] for k, v in out.items()}
        S = self.net.config.size
        M = np.diag([-1.0, 1.0, 1.0])
        out["rotation"] = mean_rotation(np.stack([out["rotation"], M @ f["rotation"] @ M], 1))
        lm_f = f["landmarks"][:, list(MIRROR_68)]
        out["landmarks"] = 0.5 * (out["landmarks"] + np.stack([(S - 1) - lm_f[..., 0], lm_f[..., 1]], -1))
        out["centre"] = 0.5 * (out["centre"] + np.stack([(S - 1) - f["centre"][:, 0], f["centre"][:, 1]], -1))
        out["scale"] = np.sqrt(out["scale"] * f["scale"])  # the mean of the logs
        out["logit"] = 0.5 * (out["logit"] + f["logit"])
        out["upright"] = 0.5 * (out["upright"] + f["upright"][:, [0, 3, 2, 1]])  # mirror: t -> -t
        return out

    def crops(self, image: np.ndarray, boxes, scales=(1.0,)) -> tuple[np.ndarray, np.ndarray]:
        """(M * N, S, S, 3) uint8 crops and their (M * N, 2, 3) image -> crop affines, view-major:
        for each of the M ``scales`` (crop side factors, or :class:`View` crops), one crop per box.
        A face is area-shrunk once, at its unscaled crop's zoom, for all its views (as the AFLW
        fine-tune's crops)."""
        cfg = self.net.config
        views = as_views(scales)
        crops = np.zeros((len(views), len(boxes), cfg.size, cfg.size, 3), np.uint8)
        As = np.zeros((len(views), len(boxes), 2, 3))
        reach = max(v.reach for v in views)
        for j, b in enumerate(boxes):
            cx, cy, side = crop_box(b, cfg.crop_scale)
            k = cfg.size / side
            for i, v in enumerate(views):
                As[i, j] = v.affine(cx, cy, side, cfg.size)
            if k >= 0.7:
                for i in range(len(views)):
                    crops[i, j] = warp_crop(image, As[i, j], cfg.size)
                continue
            # area-shrink only the part of the image the crops read, on the whole-image shrink's grid
            half = 0.5 * side * reach
            part, fx, fy, a, c = shrink_region(image, k, (cx - half, cx + half), (cy - half, cy + half))
            # warp_affine maps shrunk pixels to image pixels; the part starts (a, c) shrunk pixels in
            shift = np.array([[1.0, 0.0, a / fx], [0.0, 1.0, c / fy], [0.0, 0.0, 1.0]])
            for i in range(len(views)):
                crops[i, j] = warp_affine(image, As[i, j] @ shift, cfg.size, (part, fx, fy))
        return crops.reshape(-1, cfg.size, cfg.size, 3), As.reshape(-1, 2, 3)

    def predict_batch(self, image: np.ndarray, boxes, profile: bool = True) -> list[RegressorOutput]:
        """One :class:`RegressorOutput` per 68-landmark-style box ``(x0, y0, x1, y1)``.

        Args:
            image: (H, W, 3) uint8 RGB.
            boxes: sequence of N boxes.
            profile: add the ``profile_views`` of large-yaw faces (False: a pass whose result
                only places the next crop, :func:`face3d.fit.pipeline.recrop_regressions`).
        """
        image = check_image(image)
        boxes = [tuple(float(v) for v in b) for b in boxes]
        if not boxes:
            return []
        n, m = len(boxes), len(self.scales)
        crops, As = self.crops(image, boxes, self.scales)  # view-major order
        with torch.inference_mode():
            raw = self._run(crops)
            res = to_image(raw, As, m, n)
            turns = np.zeros(n, np.int64)
            head = self.net.upright
            if self.upright and bool(head.weight.any() or head.bias.any()):  # a silent head: no search
                res, turns = self._upright_search(res, crops, As, m, n)
            if profile and self.profile_views:
                res = add_profile_views(self, image, boxes, raw, As, res, turns)
        ypr = euler_degrees(torch.from_numpy(res["rotation"])).numpy()
        offset = self.net.lm_offset.double().numpy()
        return [
            RegressorOutput(
                landmarks=res["landmarks"][i],
                yaw=float(ypr[i, 0]),
                pitch=float(ypr[i, 1]),
                roll=float(ypr[i, 2]),
                confidence=float(res["confidence"][i]),
                identity=res["identity"][i],
                expression=res["expression"][i],
                rotation=res["rotation"][i],
                scale=float(res["scale"][i]),
                centre=res["centre"][i],
                box=boxes[i],
                landmark_offset=offset,
                turns=int(turns[i]),
            )
            for i in range(n)
        ]

    def _upright_search(self, res: dict, crops: np.ndarray, As: np.ndarray, m: int, n: int):
        """Regress again, from their crops turned each other way (1-3 quarter turns), the faces
        the upright head does not find upright; keep for each the turn the head finds most upright
        if the head finds it upright and clearly more so than the crops as they were (the
        thresholds of :mod:`face3d.regress.upright`). Returns the results and each face's turns."""
        turns = np.zeros(n, np.int64)
        redo = np.flatnonzero(res["upright"][:, 0] < up.UPRIGHT_SEARCH_BELOW)
        if len(redo) == 0:
            return res, turns
        bar = np.maximum(res["upright"][redo, 0] + up.UPRIGHT_MARGIN, up.UPRIGHT_ACCEPT_ABOVE)
        sel = (np.arange(m)[:, None] * n + redo[None]).reshape(-1)  # their crops, scale-major
        S = self.net.config.size
        for t in (1, 2, 3):
            A2 = np.stack([compose_affine(up.quarter_turn_affine(t, S), A) for A in As[sel]])
            new = to_image(self._run(up.turn_crops(crops[sel], t)), A2, m, len(redo))
            better = new["upright"][:, 0] > bar
            for key in res:
                res[key][redo[better]] = new[key][better]
            turns[redo[better]] = t
            bar = np.where(better, new["upright"][:, 0], bar)
        return res, turns

    def predict(self, image: np.ndarray, box) -> RegressorOutput:
        """:meth:`predict_batch` for one box."""
        return self.predict_batch(image, [box])[0]


class ReferenceLandmarkRegressor(LandmarkRegressor):
    """:class:`LandmarkRegressor` without its speed-ups, the reference they are checked against
    (tests, ``scripts/bench/bench_regressor_speed.py``): the network as trained (BatchNorm layers) and
    every crop warped from a whole-image area shrink (:func:`face3d.crop.shrink`)."""

    def _forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.net(x)

    def crops(self, image, boxes, scales=(1.0,)) -> tuple[np.ndarray, np.ndarray]:

        S = self.net.config.size
        crops, As = [], []
        for v in as_views(scales):
            for b in boxes:
                cx, cy, side = crop_box(b, self.net.config.crop_scale)
                k = S / side
                As.append(v.affine(cx, cy, side, S))
                crops.append(
                    warp_affine(image, As[-1], S, shrink(image, k))
                    if k < 0.7
                    else warp_crop(image, As[-1], S)
                )
        return np.stack(crops), np.stack(As)


#: The network outputs :meth:`LandmarkRegressor._run` keeps (``model_landmarks`` is not used).
_RUN_KEYS = ("rotation", "centre", "scale", "identity", "expression", "logit", "landmarks", "upright")


class DecodedTrunk(torch.nn.Module):
    """Crops (B, 3, S, S) -> the :data:`_RUN_KEYS` outputs of :meth:`RegressorNet.forward`, in that
    order: the network's :class:`InferenceTrunk` followed by :meth:`RegressorNet.outputs`, so that
    :func:`compiled_trunk` makes the decoding (rotation, landmarks) part of the same graph. The
    landmark rows are the network's own buffers (a compiled copy freezes them)."""

    def __init__(self, net: RegressorNet):
        super().__init__()
        self.trunk = net.inference_trunk()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.net.outputs(*self.trunk(x))
        return tuple(out[k] for k in _RUN_KEYS)


def normalised(crops: np.ndarray, mirrored: bool = False) -> torch.Tensor:
    """(B, S, S, 3) uint8 crops -> contiguous (B, 3, S, S) float32, bit for bit
    :func:`face3d.regress.network.normalise` (the same float32 operations, in place on a
    channel-first copy: a third of the time). ``mirrored`` appends the B crops mirrored left-right
    (2B in all)."""
    B, S = crops.shape[0], crops.shape[1]
    x = np.empty((2 * B if mirrored else B, 3, S, crops.shape[2]), np.uint8)
    x[:B] = crops.transpose(0, 3, 1, 2)
    if mirrored:
        x[B:] = x[:B, :, :, ::-1]
    return torch.from_numpy(x).float().div_(255.0).sub_(0.5).div_(0.25)


def compiled_trunk(trunk: InferenceTrunk, size: int) -> torch.nn.Module:
    """``trunk`` as a frozen TorchScript graph optimised for CPU inference
    (:func:`torch.jit.optimize_for_inference`: oneDNN convolutions with pre-packed weights, 1.3-1.8x
    faster on the 6 crops of the default test-time augmentation on one thread; the same outputs
    to 1e-5). ``trunk`` itself where that does not apply: weights off the CPU, no oneDNN, or a
    failed trace (TorchScript is deprecated: a torch without it gets the eager trunk). Built in
    memory in about 0.2 s; nothing is written or set globally."""
    p = next(trunk.parameters(), None)
    if p is None or p.device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return trunk
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript's, in torch >= 2.10
            traced = torch.jit.trace(trunk, torch.zeros(1, 3, size, size, dtype=p.dtype), check_trace=False)
            return torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
    except Exception:  # noqa: BLE001 - any tracing failure: the eager trunk is correct, only slower
        return trunk


