"""An independent 7-class facial-expression classifier (FER2013 classes) for judging edits.

A small VGG-style CNN on 48x48 grey faces, trained on FER2013 (``scripts/rebuild/train_fer.py``); it shares
nothing with the 3DMM editor, so "does the edited face read as the target expression?" is answered by
a model the editor never saw. Shipped weights: ``assets/fer/`` (``config.json`` + ``weights.pt``,
``metrics.json`` with the FER2013 test accuracy, ``COMMAND.txt`` with the training command).

Classes, in FER2013 order: angry, disgust, fear, happy, sad, surprise, neutral.

Inputs: either an (H, W, 3) uint8 RGB face crop or an (H, W) uint8 grey one (resized to 48x48), or a
whole image plus its 68 dlib landmarks, cropped by :func:`fer_crop` the way FER2013 faces are framed.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from face3d import crop as geometry
from face3d.assets import asset_path
from face3d.pretrained import (
    config_error,
    cpu_state,
    load_pretrained,
    load_state,
    save_pretrained,
)

FER_CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
DEFAULT_DIR = asset_path("fer")
WHAT = "FER classifier"  # what the checkpoint error messages call it


@dataclass(frozen=True)
class FerConfig:
    """Architecture and input framing of :class:`FerNet` (saved as ``config.json`` with the weights).

    Attributes:
        channels: output channels of each stage; each stage is ``convs_per_stage`` 3x3 conv + BN + ReLU
            and a 2x2 max-pool (48 -> 24 -> 12 -> 6 for three stages).
        convs_per_stage: 3x3 convolutions per stage: one count for all, or one per stage.
        feature_dim: width of the penultimate layer (:meth:`FerNet.features`, used for KID).
        dropout: dropout before the penultimate and the last layer (training only).
        size: input side in pixels (FER2013: 48).
        classes: class names, in output order.
        crop_scale: :func:`fer_crop` square side = ``crop_scale`` * the 68-landmark box's larger side.
        crop_shift: the crop centre is the landmark box centre moved up by ``crop_shift`` * that side
            (FER2013 faces show the forehead; dlib's 68 points stop at the brows).
        flip_average: :meth:`FerClassifier.predict` averages the probabilities of the crop and its
            mirror image (+~1 % accuracy); :meth:`FerClassifier.features` never does.
    """

    channels: tuple[int, ...] = (32, 64, 128)
    convs_per_stage: int | tuple[int, ...] = 2
    feature_dim: int = 128
    dropout: float = 0.3
    size: int = 48
    classes: tuple[str, ...] = FER_CLASSES
    crop_scale: float = 1.2
    crop_shift: float = 0.15
    flip_average: bool = True

    def __post_init__(self):
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        if isinstance(self.convs_per_stage, int):
            object.__setattr__(self, "convs_per_stage", int(self.convs_per_stage))
        else:
            object.__setattr__(self, "convs_per_stage", tuple(int(c) for c in self.convs_per_stage))
        if not self.channels or min(self.channels) < 1 or min(self.stage_convs) < 1:
            raise ValueError("channels must be positive and convs_per_stage >= 1")
        if self.size % (2 ** len(self.channels)) != 0:
            raise ValueError(f"size {self.size} must be divisible by 2**{len(self.channels)}")
        if len(self.classes) < 2 or self.feature_dim < 1 or not 0 <= self.dropout < 1:
            raise ValueError("need >= 2 classes, feature_dim >= 1 and 0 <= dropout < 1")

    @property
    def stage_convs(self) -> tuple[int, ...]:
        """Number of convolutions of each stage."""
        c = self.convs_per_stage
        if isinstance(c, int):
            return (c,) * len(self.channels)
        if len(c) != len(self.channels):
            raise ValueError(f"convs_per_stage {c} needs one count per stage ({len(self.channels)})")
        return c

    def to_json(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict) -> FerConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown FerConfig keys {sorted(unknown)}")
        return cls(**data)


class FerNet(nn.Module):
    """VGG-style CNN: ``len(channels)`` stages of ``convs_per_stage`` 3x3 conv-BN-ReLU + 2x2 max-pool,
    global average pool, a ``feature_dim`` ReLU layer (the features for KID), a linear layer.

    ``forward(x)``: (N, 1, S, S) float in [0, 1] -> (N, n_classes) logits.
    """

    def __init__(self, config: FerConfig):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        cin = 1
        for cout, n_convs in zip(config.channels, config.stage_convs, strict=True):
            for _ in range(n_convs):
                layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
                cin = cout
            layers.append(nn.MaxPool2d(2))
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(config.dropout),
            nn.Linear(cin, config.feature_dim),
            nn.ReLU(),
        )
        self.drop = nn.Dropout(config.dropout)
        self.fc = nn.Linear(config.feature_dim, len(config.classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, S, S) in [0, 1] -> (N, feature_dim) penultimate (post-ReLU) activations."""
        return self.head(self.body((x - 0.5) / 0.25))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(self.features(x)))


# ------------------------------------------------------------------------------ input framing
def _check_uint8(image, name: str) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        got = getattr(image, "dtype", type(image).__name__)
        raise ValueError(f"{name}: expected a uint8 array, got {got}")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)) or min(image.shape[:2]) < 2:
        raise ValueError(f"{name}: expected (H, W) grey or (H, W, 3) RGB, got shape {image.shape}")
    return image


def to_grey(image: np.ndarray, size: int = 48) -> NDArray[np.uint8]:
    """(H, W, 3) RGB or (H, W) grey uint8 -> (size, size) grey uint8 (area/linear resize)."""
    image = _check_uint8(image, "face crop")
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    if grey.shape != (size, size):
        shrink = min(grey.shape) > size
        grey = cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return np.ascontiguousarray(grey)


def crop_box(landmarks68: np.ndarray, scale: float = 1.2, shift: float = 0.15) -> tuple[float, float, float]:
    """The FER-style square for 68 landmarks: ``(cx, cy, side)`` in pixels (see :class:`FerConfig`)."""
    pts = np.asarray(landmarks68, dtype=np.float64)
    if pts.shape != (68, 2) or not np.all(np.isfinite(pts)):
        raise ValueError(f"expected (68, 2) finite landmarks, got shape {pts.shape}")
    lo, hi = pts.min(0), pts.max(0)
    cx, cy, side = geometry.crop_box((lo[0], lo[1], hi[0], hi[1]), scale)
    return cx, cy - shift * side / scale, max(side, 2.0)


def fer_crop(
    image: np.ndarray, landmarks68: np.ndarray, config: FerConfig | None = None
) -> NDArray[np.uint8]:
    """Frame a face like FER2013: square around the 68-landmark box, grey, 48x48.

    FER2013 faces are upright-ish, centred and scaled so the face fills the frame with some forehead;
    :class:`FerConfig` ``crop_scale``/``crop_shift`` were measured by running dlib's landmarks on
    FER2013 test images (see ``assets/fer/metrics.json`` ``crop_calibration``). The crop is not
    rotated (FER2013 is not roll-aligned either); pixels outside the image repeat the border.

    Args:
        image: (H, W, 3) RGB or (H, W) grey uint8.
        landmarks68: (68, 2) ``(x, y)`` 0-based pixels, iBUG order.

    Returns:
        (size, size) uint8 grey, ``size`` = ``config.size`` (48).
    """
    cfg = config or FerConfig()
    image = _check_uint8(image, "image")
    cx, cy, side = crop_box(landmarks68, cfg.crop_scale, cfg.crop_shift)
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    s = cfg.size / side
    # pixel centres at integers: output pixel u covers input cx - side/2 + (u + 0.5) / s
    m = geometry.crop_transform(cx, cy, side, cfg.size)
    # not geometry.warp_crop: a Gaussian anti-alias, not an area pre-shrink (the calibrated framing)
    if s < 0.5:  # anti-alias before shrinking (skimage's sigma for the downscale factor)
        grey = cv2.GaussianBlur(grey, (0, 0), sigmaX=(1 / s - 1) / 2)
    out = cv2.warpAffine(
        grey, m, (cfg.size, cfg.size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return np.ascontiguousarray(out)


# ------------------------------------------------------------------------------ classifier
class FerClassifier:
    """A trained :class:`FerNet` with its config, in eval mode, on the CPU (one forward ~1 ms).

    Build with :meth:`from_pretrained` (shipped weights) or ``FerClassifier(FerConfig())`` (random).
    """

    def __init__(self, config: FerConfig | None = None, net=None):
        self.config = config or FerConfig()
        self.net = net if net is not None else FerNet(self.config)
        self.net.eval()

    @property
    def classes(self) -> tuple[str, ...]:
        return self.config.classes

    # ---------------------------------------------------------------- persistence
    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``config.json`` and ``weights.pt`` (a plain state dict) atomically into
        ``directory`` (:mod:`face3d.pretrained`)."""
        return save_pretrained(directory, self.config.to_json(), cpu_state(self.net))

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike | None = None) -> FerClassifier:
        """Load ``config.json`` + ``weights.pt`` from ``directory`` (default ``assets/fer``), offline.

        Raises:
            Face3DError: a file is missing, unreadable or does not match the config (names the file).
        """
        directory = Path(directory) if directory is not None else DEFAULT_DIR
        raw, state = load_pretrained(directory, WHAT, "train it with scripts/rebuild/train_fer.py")
        try:
            config = FerConfig.from_json(raw)
        except (ValueError, TypeError) as err:
            raise config_error(directory, WHAT, err) from None
        return cls(config, load_state(FerNet(config), state, directory, WHAT))

    # ---------------------------------------------------------------- inference
    def _batch(self, faces) -> torch.Tensor:
        """One crop, a (N, S, S) uint8 stack or a list of crops -> (N, 1, S, S) float in [0, 1]."""
        size = self.config.size
        if isinstance(faces, np.ndarray) and faces.ndim == 3 and faces.shape[1:] == (size, size):
            if faces.dtype != np.uint8:
                raise ValueError(f"face stack: expected uint8, got {faces.dtype}")
            arr = faces
        elif isinstance(faces, np.ndarray):
            arr = to_grey(faces, size)[None]
        else:
            arr = [to_grey(f, size) for f in faces]
            arr = np.stack(arr) if arr else np.zeros((0, size, size), np.uint8)
        return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32) / 255.0)[:, None]

    def _run(self, faces, what: str, batch_size: int = 256) -> np.ndarray:
        x = self._batch(faces)
        outs = []
        with torch.inference_mode():
            for i in range(0, len(x), batch_size):
                xb = x[i : i + batch_size]
                if what == "features":
                    outs.append(self.net.features(xb))
                else:
                    p = torch.softmax(self.net(xb), dim=1)
                    if self.config.flip_average:
                        p = (p + torch.softmax(self.net(xb.flip(-1)), dim=1)) / 2
                    outs.append(p)
        width = self.config.feature_dim if what == "features" else len(self.classes)
        return torch.cat(outs).double().numpy() if outs else np.zeros((0, width))

    def predict(self, face) -> NDArray[np.float64]:
        """Class probabilities of one face crop.

        Args:
            face: (H, W, 3) uint8 RGB or (H, W) uint8 grey crop framed like FER2013 (make one from a
                whole image with :func:`fer_crop`); resized to 48x48.

        Returns:
            (7,) float64 probabilities summing to 1, in :attr:`classes` order.
        """
        return self._run(face, "proba")[0]

    def predict_batch(self, faces) -> NDArray[np.float64]:
        """(N, 48, 48) uint8 array or a list of crops -> (N, 7) probabilities."""
        return self._run(faces, "proba")

    def predict_image(self, image: np.ndarray, landmarks68: np.ndarray) -> NDArray[np.float64]:
        """(7,) probabilities of the face at ``landmarks68`` ((68, 2)) in a whole (H, W, 3) image."""
        return self.predict(fer_crop(image, landmarks68, self.config))

    def features(self, faces) -> NDArray[np.float64]:
        """Penultimate features for KID: one crop -> (1, D), a list/(N, 48, 48) stack -> (N, D),
        D = ``config.feature_dim`` (128)."""
        return self._run(faces, "features")

    def label(self, probs: np.ndarray) -> str:
        """The most likely class name of a (7,) probability vector."""
        return self.classes[int(np.argmax(probs))]
