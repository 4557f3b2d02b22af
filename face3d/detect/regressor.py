"""A compact CNN that regresses pose, scale, identity and expression of the 3DMM from a face crop.

The 68 landmarks follow from the parameters through the model's landmark vertices (stored in
the checkpoint, so no ICT files are needed at inference) under weak perspective in the crop:
``landmarks = scale * (R @ X(identity, expression))[:, :2] + centre``, with ``R`` the
model-to-camera rotation (OpenCV axes) and ``centre`` where the model origin projects.

Crops follow :func:`face3d.detect.regressor_data.crop_box`: a square of ``crop_scale`` times the
longer side of the 68-landmark box, centred on it. Detector boxes (dlib) are first mapped to
landmark boxes with :func:`landmark_box_from_detector_box`.

Checkpoints are folders (``save_pretrained``/``from_pretrained``): ``config.json`` (the frozen
:class:`RegressorConfig`) and ``weights.pt`` (the state dict); the folder alone rebuilds the model.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from face3d.errors import Face3DError

CONFIG_NAME, WEIGHTS_NAME = "config.json", "weights.pt"
#: iBUG 68 index of each landmark's left-right mirror partner.
# fmt: off
MIRROR_68 = (
    16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,  # jaw
    26, 25, 24, 23, 22, 21, 20, 19, 18, 17,  # brows
    27, 28, 29, 30, 35, 34, 33, 32, 31,  # nose
    45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,  # eyes
    54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55,  # outer lips
    64, 63, 62, 61, 60, 67, 66, 65,  # inner lips
)
# fmt: on
SCALE_REF = 20.0  # scale is predicted as log(scale / size * SCALE_REF)


class RegressorWeightsError(Face3DError):
    """A regressor checkpoint folder is missing a file or holds a corrupt one."""


def default_weights_dir() -> Path:
    """``<repo>/assets/regressor``: the shipped weights."""
    import face3d

    return Path(face3d.__file__).resolve().parent.parent / "assets" / "regressor"


@dataclass(frozen=True)
class RegressorConfig:
    """Architecture and input convention of :class:`RegressorNet` (saved with the weights).

    Attributes:
        size: input crop side, pixels.
        crop_scale: crop side / longer side of the 68-landmark box.
        channels: output channels of the stem and of each depthwise-separable stage.
        strides: stride of each stage (same length as ``channels[1:]``).
        hidden: width of the fully connected layer.
        n_identity: identity modes predicted (the first K of ICT's).
        n_expression: ARKit expression weights predicted (sigmoid).
    """

    size: int = 96
    crop_scale: float = 1.5
    channels: tuple[int, ...] = (16, 32, 32, 64, 64, 128, 128, 256)
    strides: tuple[int, ...] = (2, 1, 2, 1, 2, 1, 2)
    hidden: int = 256
    n_identity: int = 20
    n_expression: int = 53

    def __post_init__(self):
        if len(self.strides) != len(self.channels) - 1:
            raise ValueError("strides must have one entry per stage (len(channels) - 1)")

    @property
    def n_outputs(self) -> int:
        return 6 + 3 + self.n_identity + self.n_expression + 1


def _conv_bn(cin, cout, k, s, groups=1):
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout), nn.ReLU6(True)
    )


class _SepBlock(nn.Module):
    """Depthwise 3x3 + pointwise 1x1 (MobileNet v1), residual when shapes match."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.dw = _conv_bn(cin, cin, 3, stride, groups=cin)
        self.pw = _conv_bn(cin, cout, 1, 1)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.pw(self.dw(x))
        return x + y if self.residual else y


def rotation_6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """(B, 6) first two columns -> (B, 3, 3) rotation (Gram-Schmidt; Zhou et al. 2019)."""
    a1, a2 = d6[:, :3], d6[:, 3:]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], -1)


class RegressorNet(nn.Module):
    """The CNN plus the 68 landmark rows of the 3DMM (buffers).

    Args:
        config: :class:`RegressorConfig`.
        landmark_template: (68, 3) neutral landmark vertices, cm (zeros for a random model).
        landmark_identity: (K_id, 68, 3); landmark_expression: (K_exp, 68, 3).
    """

    def __init__(
        self,
        config: RegressorConfig,
        landmark_template=None,
        landmark_identity=None,
        landmark_expression=None,
    ):
        super().__init__()
        self.config = config
        c = config.channels
        layers = [_conv_bn(3, c[0], 3, 2)]
        layers += [_SepBlock(c[i], c[i + 1], s) for i, s in enumerate(config.strides)]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Sequential(nn.Linear(c[-1] * 4, config.hidden), nn.ReLU(True))
        self.head = nn.Linear(config.hidden, config.n_outputs)
        nn.init.zeros_(self.head.weight)
        with torch.no_grad():  # start at a frontal face filling the crop
            self.head.bias.zero_()
            self.head.bias[:6] = torch.tensor([1.0, 0, 0, 0, -1.0, 0])
            self.head.bias[8] = math.log(0.045 * SCALE_REF)
            self.head.bias[9 + config.n_identity : -1] = -3.0
        K_id, K_exp = config.n_identity, config.n_expression
        z = torch.zeros
        self.register_buffer(
            "lm_template",
            z(68, 3)
            if landmark_template is None
            else torch.as_tensor(landmark_template, dtype=torch.float32).clone(),
        )
        self.register_buffer(
            "lm_identity",
            z(K_id, 68 * 3)
            if landmark_identity is None
            else torch.as_tensor(landmark_identity, dtype=torch.float32).reshape(K_id, -1).clone(),
        )
        self.register_buffer(
            "lm_expression",
            z(K_exp, 68 * 3)
            if landmark_expression is None
            else torch.as_tensor(landmark_expression, dtype=torch.float32).reshape(K_exp, -1).clone(),
        )

    @classmethod
    def from_model(cls, config: RegressorConfig, model) -> RegressorNet:
        """A fresh network carrying ``model``'s (a :class:`MorphableModel`) landmark rows."""
        V, ids = model.n_vertices, model.landmark_ids
        idb = model.identity_basis[: config.n_identity].reshape(-1, V, 3)[:, ids]
        exb = model.expression_basis[: config.n_expression].reshape(-1, V, 3)[:, ids]
        return cls(config, model.template[ids], idb, exb)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Args: x (B, 3, S, S) normalised crops (see :func:`normalise`).

        Returns: dict with ``rotation`` (B, 3, 3) model-to-camera, ``centre`` (B, 2) and
        ``scale`` (B,) in crop pixels (pixels per cm), ``identity`` (B, K_id), ``expression``
        (B, K_exp) in [0, 1], ``logit`` (B,) face/no-face, ``landmarks`` (B, 68, 2) crop pixels.
        """
        cfg = self.config
        h = self.fc(self.pool(self.features(x)).flatten(1))
        out = self.head(h)
        S = cfg.size
        K = cfg.n_identity
        R = rotation_6d_to_matrix(out[:, :6])
        centre = out[:, 6:8] * S + (S - 1) / 2
        scale = out[:, 8].exp() * S / SCALE_REF
        ident = out[:, 9 : 9 + K]
        expr = torch.sigmoid(out[:, 9 + K : -1])
        return {
            "rotation": R,
            "centre": centre,
            "scale": scale,
            "identity": ident,
            "expression": expr,
            "logit": out[:, -1],
            "landmarks": self.landmarks(R, centre, scale, ident, expr),
        }

    def landmarks(self, R, centre, scale, identity, expression) -> torch.Tensor:
        """Weak-perspective landmarks (B, 68, 2) in crop pixels from the parameters."""
        X = self.lm_template.reshape(1, -1) + identity @ self.lm_identity + expression @ self.lm_expression
        cam = X.reshape(-1, 68, 3) @ R.transpose(1, 2)
        return scale[:, None, None] * cam[..., :2] + centre[:, None]

    # ------------------------------------------------------------------ checkpoints
    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write ``config.json`` and ``weights.pt`` into ``folder`` (atomically, each)."""
        import io

        from face3d.io import atomic_write_bytes, atomic_write_json

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in self.state_dict().items()}, buf)
        atomic_write_bytes(folder / WEIGHTS_NAME, buf.getvalue())
        atomic_write_json(folder / CONFIG_NAME, asdict(self.config))
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike | None = None) -> RegressorNet:
        """Rebuild from a :meth:`save_pretrained` folder (default: the shipped weights), eval mode.

        Raises:
            RegressorWeightsError: a file is missing or corrupt (the message names it).
        """
        folder = Path(folder) if folder is not None else default_weights_dir()
        cfg_path, w_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
        for p in (cfg_path, w_path):
            if not p.is_file():
                raise RegressorWeightsError(f"{p}: regressor checkpoint file missing")
        try:
            raw = json.loads(cfg_path.read_text())
            names = {f.name for f in fields(RegressorConfig)}
            config = RegressorConfig(
                **{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in names}
            )
        except (ValueError, TypeError) as err:
            raise RegressorWeightsError(f"{cfg_path}: corrupt regressor config ({err})") from err
        try:
            state = torch.load(w_path, map_location="cpu", weights_only=True)
            net = cls(config)
            net.load_state_dict(state)
        except Exception as err:  # noqa: BLE001 - torch raises many kinds on a bad file
            raise RegressorWeightsError(f"{w_path}: corrupt or mismatched regressor weights ({err})") from err
        return net.eval()


def normalise(crops: torch.Tensor) -> torch.Tensor:
    """(B, S, S, 3) uint8 -> (B, 3, S, S) float, roughly zero-mean unit-range."""
    return (crops.permute(0, 3, 1, 2).float() / 255.0 - 0.5) / 0.25


# ---------------------------------------------------------------------------------- inference
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
    """

    def __init__(self, net: RegressorNet | None = None, threads: int | None = None, flip: bool = False):
        self.net = (net if net is not None else RegressorNet.from_pretrained()).eval()
        self.threads = threads
        self.flip = flip

    @classmethod
    def from_pretrained(
        cls, folder=None, threads: int | None = None, flip: bool = False
    ) -> LandmarkRegressor:
        return cls(RegressorNet.from_pretrained(folder), threads, flip)

    def _run(self, crops: np.ndarray) -> dict[str, torch.Tensor]:
        """Network outputs for (N, S, S, 3) uint8 crops, mirrored-crop averaged with ``flip``."""
        x = normalise(torch.from_numpy(crops))
        if not self.flip:
            return self.net(x)
        n = x.shape[0]
        both = self.net(torch.cat([x, x.flip(-1)]))
        out = {k: v[:n] for k, v in both.items()}
        S = self.net.config.size
        M = torch.diag(torch.tensor([-1.0, 1.0, 1.0]))
        lm_f = both["landmarks"][n:][:, list(MIRROR_68)]
        lm_f = torch.stack([(S - 1) - lm_f[..., 0], lm_f[..., 1]], -1)
        c_f = both["centre"][n:]
        R = out["rotation"] + M @ both["rotation"][n:] @ M
        U, _, Vh = torch.linalg.svd(R)
        D = torch.ones(n, 3)
        D[:, 2] = torch.linalg.det(U @ Vh).sign()
        out["rotation"] = U @ torch.diag_embed(D) @ Vh
        out["landmarks"] = 0.5 * (out["landmarks"] + lm_f)
        out["centre"] = 0.5 * (out["centre"] + torch.stack([(S - 1) - c_f[:, 0], c_f[:, 1]], -1))
        out["scale"] = (0.5 * (out["scale"].log() + both["scale"][n:].log())).exp()
        out["logit"] = 0.5 * (out["logit"] + both["logit"][n:])
        return out

    def crops(self, image: np.ndarray, boxes) -> tuple[np.ndarray, np.ndarray]:
        """(N, S, S, 3) uint8 crops and their (N, 2, 3) image -> crop affines."""
        from face3d.detect.regressor_data import crop_box, crop_transform, warp_crop

        cfg = self.net.config
        As = [crop_transform(*crop_box(b, cfg.crop_scale), cfg.size) for b in boxes]
        return np.stack([warp_crop(image, A, cfg.size) for A in As]), np.stack(As)

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
        crops, As = self.crops(image, boxes)
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
        lm = (out["landmarks"].double().numpy() - off[:, None]) / k[:, None, None]
        centre = (out["centre"].double().numpy() - off) / k[:, None]
        ypr = euler_degrees(out["rotation"]).numpy()
        conf = torch.sigmoid(out["logit"]).numpy()
        return [
            RegressorOutput(
                landmarks=lm[i],
                yaw=float(ypr[i, 0]),
                pitch=float(ypr[i, 1]),
                roll=float(ypr[i, 2]),
                confidence=float(conf[i]),
                identity=out["identity"][i].numpy().astype(np.float64),
                expression=out["expression"][i].numpy().astype(np.float64),
                rotation=out["rotation"][i].numpy().astype(np.float64),
                scale=float(out["scale"][i]) / float(k[i]),
                centre=centre[i],
                box=boxes[i],
            )
            for i in range(len(boxes))
        ]

    def predict(self, image: np.ndarray, box) -> RegressorOutput:
        """:meth:`predict_batch` for one box."""
        return self.predict_batch(image, [box])[0]


def to_fit_result(outputs: list[RegressorOutput], image_size: tuple[int, int], model, fov_deg: float = 30.0):
    """Regression-only fits (the ``--fast`` path): a :class:`face3d.fit.FitResult` batch.

    The weak-perspective camera becomes a pinhole camera with ``fov_deg`` over the image's longer
    side (the fitter's default), placed so that perspective and weak perspective agree at the
    centroid ``m`` of the rotated landmarks: ``tz = f / scale - m_z``, ``t_xy = (centre - c) /
    scale``. ``landmarks_target`` holds the regressed 2D landmarks.
    """
    from face3d.camera import project, to_camera
    from face3d.fit.result import FitResult

    H, W = image_size
    dt = model.template.dtype
    f = 0.5 * max(H, W) / math.tan(math.radians(fov_deg) / 2)
    cx, cy = (W - 1) / 2, (H - 1) / 2
    R = torch.as_tensor(np.stack([o.rotation for o in outputs]), dtype=dt)
    ident = torch.zeros(len(outputs), model.n_identity, dtype=dt)
    k = min(model.n_identity, len(outputs[0].identity))
    ident[:, :k] = torch.as_tensor(np.stack([o.identity[:k] for o in outputs]), dtype=dt)
    expr = torch.as_tensor(np.stack([o.expression for o in outputs]), dtype=dt)
    verts = model(ident, expr)
    m = (model.landmarks(verts) @ R.transpose(1, 2)).mean(1)  # (B, 3) rotated landmark centroid
    s = torch.as_tensor([o.scale for o in outputs], dtype=dt)
    c = torch.as_tensor(np.stack([o.centre for o in outputs]), dtype=dt)
    t = torch.stack([(c[:, 0] - cx) / s, (c[:, 1] - cy) / s, f / s - m[:, 2]], -1)
    K = torch.tensor([[f, f, cx, cy]], dtype=dt).repeat(len(outputs), 1)
    fitted = project(model.landmarks(to_camera(verts, R, t)), K)
    target = torch.as_tensor(np.stack([o.landmarks for o in outputs]), dtype=dt)
    return FitResult(
        rotation=R,
        translation=t,
        intrinsics=K,
        identity=ident,
        expression=expr,
        landmarks_target=target,
        landmarks_fitted=fitted,
        error_px=(fitted - target).norm(dim=-1).mean(-1),
        image_size=(H, W),
    )
