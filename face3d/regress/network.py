"""A compact CNN that regresses pose, scale, identity and expression of the 3DMM from a face crop.

The 68 landmarks follow from the parameters through the model's landmark vertices (stored in
the checkpoint, so no ICT files are needed at inference) under weak perspective in the crop:
``landmarks = scale * (R @ (X(identity, expression) + offset))[:, :2] + centre``, with ``R`` the
model-to-camera rotation (OpenCV axes) and ``centre`` where the model origin projects.

``offset`` (68, 3) cm, model space, is the *landmark convention*: the 68 points a dataset labels
are not exactly ICT's landmark vertices (AFLW2000-3D's are another 3DMM's vertices; its jaw points
lie up to 2.5 cm from ICT's). It is zero for a network trained on synthetic renders only and is
calibrated on real labelled faces by :func:`face3d.train.convention.calibrate_offset`; the
synthetic losses use the offset-free ``model_landmarks``.

``upright`` is a linear head on the pooled features telling which quarter turn
(``np.rot90`` of the upright crop, 0 to 3 times) a crop shows, trained by the AFLW fine-tune on
turned crops (:mod:`face3d.regress.upright`; zero, no opinion, in older checkpoints).

Crops follow :func:`face3d.crop.crop_box`: a square of ``crop_scale`` times the
longer side of the 68-landmark box, centred on it. Detector boxes (dlib) are first mapped to
landmark boxes with :func:`landmark_box_from_detector_box`.

Checkpoints are folders (``save_pretrained``/``from_pretrained``): ``config.json`` (the frozen
:class:`RegressorConfig`) and ``weights.pt`` (the state dict); the folder alone rebuilds the model.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from face3d.assets import asset_path
from face3d.pretrained import (
    PretrainedError,
    config_error,
    cpu_state,
    load_pretrained,
    load_state,
    save_pretrained,
)

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


RegressorWeightsError = PretrainedError
"""A regressor checkpoint folder is missing a file or holds a corrupt one."""


def default_weights_dir() -> Path:
    """The shipped weights (package data, :func:`face3d.assets.asset_path`)."""
    return asset_path("regressor")


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
        landmark_offset: (68, 3) landmark-convention offset, cm (default zeros; see the module doc).
    """

    def __init__(
        self,
        config: RegressorConfig,
        landmark_template=None,
        landmark_identity=None,
        landmark_expression=None,
        landmark_offset=None,
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
        self.upright = nn.Linear(c[-1] * 4, 4)  # quarter-turn logits (see the module doc)
        nn.init.zeros_(self.upright.weight)
        nn.init.zeros_(self.upright.bias)
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
        self.register_buffer(
            "lm_offset",
            z(68, 3)
            if landmark_offset is None
            else torch.as_tensor(landmark_offset, dtype=torch.float32).reshape(68, 3).clone(),
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
        (B, K_exp) in [0, 1], ``logit`` (B,) face/no-face, ``landmarks`` (B, 68, 2) crop pixels
        (with the landmark-convention offset), ``model_landmarks`` (B, 68, 2) (without: ICT's
        landmark vertices, the convention of the synthetic renders) and ``upright`` (B, 4), the
        logits of the crop showing the upright face turned 0-3 quarter turns.
        """
        return self.decode(self.features(x))

    def decode(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """The outputs of :meth:`forward` from the last feature map (B, C, h, w)."""
        pooled = self.pool(features).flatten(1)
        return self.outputs(self.head(self.fc(pooled)), self.upright(pooled))

    def outputs(self, out: torch.Tensor, upright: torch.Tensor) -> dict[str, torch.Tensor]:
        """The outputs of :meth:`forward` from the raw head outputs (B, n_outputs) and the upright
        logits (B, 4) (what :class:`InferenceTrunk` computes)."""
        cfg = self.config
        S = cfg.size
        K = cfg.n_identity
        R = rotation_6d_to_matrix(out[:, :6])
        centre = out[:, 6:8] * S + (S - 1) / 2
        scale = out[:, 8].exp() * S / SCALE_REF
        ident = out[:, 9 : 9 + K]
        expr = torch.sigmoid(out[:, 9 + K : -1])
        model_lm = self.landmarks(R, centre, scale, ident, expr, convention=False)
        return {
            "rotation": R,
            "centre": centre,
            "scale": scale,
            "identity": ident,
            "expression": expr,
            "logit": out[:, -1],
            # one projection: the offset is linear in the model-space points
            "landmarks": model_lm + scale[:, None, None] * (self.lm_offset @ R.transpose(1, 2))[..., :2],
            "model_landmarks": model_lm,
            "upright": upright,
        }

    def landmarks(self, R, centre, scale, identity, expression, convention: bool = True) -> torch.Tensor:
        """Weak-perspective landmarks (B, 68, 2) in crop pixels from the parameters; ``convention``
        adds the landmark-convention offset ``lm_offset``."""
        X = self.lm_template.reshape(1, -1) + identity @ self.lm_identity + expression @ self.lm_expression
        X = X.reshape(-1, 68, 3)
        if convention:
            X = X + self.lm_offset
        cam = X @ R.transpose(1, 2)
        return scale[:, None, None] * cam[..., :2] + centre[:, None]

    def fused_features(self) -> nn.Sequential:
        """An inference copy of :attr:`features` with every BatchNorm folded into the convolution
        before it (its running statistics; the same outputs to float rounding, about 25 % faster
        on a CPU). Use as ``net.decode(fused(x))``; it does not follow later weight changes."""
        from torch.nn.utils.fusion import fuse_conv_bn_eval

        fused = copy.deepcopy(self.features).eval()
        for m in fused.modules():
            if isinstance(m, nn.Sequential) and len(m) == 3 and isinstance(m[1], nn.BatchNorm2d):
                m[0], m[1] = fuse_conv_bn_eval(m[0], m[1]), nn.Identity()
        return fused.requires_grad_(False)

    def inference_trunk(self) -> InferenceTrunk:
        """:class:`InferenceTrunk` of this network (BN-folded; a copy, it does not follow later
        weight changes)."""
        return InferenceTrunk(self)

    # ------------------------------------------------------------------ checkpoints
    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write ``config.json`` and ``weights.pt`` into ``folder`` (:mod:`face3d.pretrained`)."""
        return save_pretrained(folder, asdict(self.config), cpu_state(self))

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike | None = None) -> RegressorNet:
        """Rebuild from a :meth:`save_pretrained` folder (default: the shipped weights), eval mode.

        Raises:
            RegressorWeightsError: a file is missing or corrupt (the message names it).
        """
        folder = Path(folder) if folder is not None else default_weights_dir()
        raw, state = load_pretrained(folder, "regressor", "train one with `face3d train regressor`")
        try:
            names = {f.name for f in fields(RegressorConfig)}
            config = RegressorConfig(
                **{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in names}
            )
            net = cls(config)
        except (ValueError, TypeError) as err:
            raise config_error(folder, "regressor", err) from None
        defaults = net.state_dict()
        for key in ("lm_offset", "upright.weight", "upright.bias"):  # older checkpoints: zeros
            state.setdefault(key, defaults[key])
        return load_state(net, state, folder, "regressor")


class InferenceTrunk(nn.Module):
    """Crops -> ``(head outputs (B, n_outputs), upright logits (B, 4))`` for
    :meth:`RegressorNet.outputs`: the network's convolutions with every BatchNorm folded in
    (:meth:`RegressorNet.fused_features`), its pooling and its linear heads, in eval mode, as one
    graph for :func:`face3d.regress.infer.compiled_trunk`. The 2 x 2 adaptive average
    pool is written as the plain average pool with the same windows (kernel ``ceil(n / 2)``,
    stride ``floor(n / 2)`` on an n x n map), which oneDNN graphs accept."""

    def __init__(self, net: RegressorNet):
        super().__init__()
        self.features = net.fused_features()
        self.fc, self.head, self.upright = (copy.deepcopy(m) for m in (net.fc, net.head, net.upright))
        n = net.config.size
        for s in (2, *net.config.strides):  # the stem, then each stage (padding k // 2)
            n = (n - 1) // s + 1
        if n < 2:
            raise ValueError(f"the last feature map is {n} x {n}: too small for the 2 x 2 pool")
        self.kernel, self.stride = (n + 1) // 2, n // 2
        self.eval().requires_grad_(False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = F.avg_pool2d(self.features(x), self.kernel, self.stride).flatten(1)
        return self.head(self.fc(pooled)), self.upright(pooled)


def normalise(crops: torch.Tensor) -> torch.Tensor:
    """(B, S, S, 3) uint8 -> (B, 3, S, S) float, roughly zero-mean unit-range."""
    return (crops.permute(0, 3, 1, 2).float() / 255.0 - 0.5) / 0.25
