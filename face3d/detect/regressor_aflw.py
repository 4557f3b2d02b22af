"""Real large-pose faces for the landmark/3DMM regressor (AFLW2000-3D dev, half of it): split, crops, losses.

The synthetic "face profiling" data (:mod:`regressor_data`) leaves a domain gap at large yaw; here
the network also learns from real photos with ground-truth 68 landmarks:

* :func:`split_aflw` halves the dev images deterministically ("train" / "heldout"), per |yaw| bin,
  by a stable hash of the file name; only the train half is ever read for training.
* :class:`AFLWCrops` makes crops exactly as :meth:`LandmarkRegressor.crops` does from a landmark
  box (``crop_scale`` x the box's longer side, ``size`` px, :func:`normalise` later), plus
  augmentation: box shift/scale jitter (a detector's box is not the landmark box), in-plane
  rotation, a horizontal flip (landmarks re-indexed by :data:`MIRROR_68`) and colour jitter.
* :func:`aflw_losses` are the loss terms of such faces (no 3DMM labels) and
  :func:`evaluate_crops` scores a network on the unaugmented crops.

The training loop that mixes them with the synthetic shards is
:func:`face3d.detect.regressor_finetune.finetune`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from face3d.detect.regressor import MIRROR_68, RegressorNet, normalise
from face3d.detect.regressor_data import crop_box, crop_transform, shrunk_size
from face3d.fit.metrics import yaw_bin

SPLITS = ("all", "train", "heldout")
MAX_YAW_LABEL = 100.0  # |yaw| labels beyond this (a few AFLW2000-3D poses are wrapped or broken) are not used


# ----------------------------------------------------------------------------------- split
def split_aflw(names: Sequence[str], yaws: Sequence[float]) -> np.ndarray:
    """Deterministic half split, balanced per |yaw| bin: (N,) bool, True = train.

    Inside each bin the images are ordered by the SHA-1 of their file name and alternate
    train / held-out, so each bin's halves differ by at most one image and the split does not
    depend on the folder, the order of ``names`` or the other images of other bins.
    """
    names = [Path(n).name for n in names]
    train = np.zeros(len(names), dtype=bool)
    for b in range(3):
        idx = [i for i, y in enumerate(yaws) if yaw_bin(y) == b]
        idx.sort(key=lambda i: (hashlib.sha1(names[i].encode()).hexdigest(), names[i]))
        train[idx[0::2]] = True
    return train


def select_split(samples: list, split: str) -> list:
    """The ``split`` ("all", "train", "heldout") part of :func:`face3d.fit.metrics.load_aflw` samples."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if split == "all":
        return list(samples)
    is_train = split_aflw([s.image_path.name for s in samples], [s.yaw for s in samples])
    return [s for s, t in zip(samples, is_train, strict=True) if t == (split == "train")]


def face3d_yaw(aflw_yaw: float) -> float:
    """AFLW2000-3D's Pose_Para yaw (degrees) -> face3d's convention (opposite sign), in [-180, 180)."""
    return float((-aflw_yaw + 180.0) % 360.0 - 180.0)


# ------------------------------------------------------------------------------ geometry
def _h(A: np.ndarray) -> np.ndarray:
    """(2, 3) affine -> (3, 3) homogeneous."""
    return np.vstack([A, [0.0, 0.0, 1.0]])


def compose_affine(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """(2, 3) affines -> the (2, 3) affine of ``A`` after ``B``."""
    return (_h(A) @ _h(B))[:2]


def transform_points(A: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine to (N, 2) points."""
    return pts @ A[:, :2].T + A[:, 2]


def invert_affine(A: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) affine (crop -> image pixels for a crop transform)."""
    return np.linalg.inv(_h(A))[:2]


def flip_landmarks(lm: np.ndarray, size: int) -> np.ndarray:
    """(..., 68, 2) crop landmarks of a horizontally mirrored crop: ``x -> size - 1 - x``, and each
    point takes its mirror partner's index (iBUG 68, :data:`MIRROR_68`). An involution."""
    out = np.array(lm, dtype=np.float64, copy=True)[..., list(MIRROR_68), :]
    out[..., 0] = (size - 1) - out[..., 0]
    return out


@dataclass(frozen=True)
class AugConfig:
    """Augmentation of the AFLW crops (all off = exactly the inference crop).

    Attributes:
        shift: crop-centre shift, uniform +- this fraction of the landmark box's longer side.
        log_scale: crop-side jitter, ``exp(uniform(+-log_scale))``.
        rotation: in-plane rotation, uniform +- degrees (the box is then the rotated points' box).
        flip: probability of the horizontal mirror.
        colour: colour jitter on (contrast, brightness, grey, noise as ``regressor_data``).
        erase: probability of an occluder: one rectangle of the crop (:func:`random_erase`).
    """

    shift: float = 0.08
    log_scale: float = 0.12
    rotation: float = 15.0
    flip: float = 0.5
    colour: bool = True
    erase: float = 0.0


NO_AUG = AugConfig(0.0, 0.0, 0.0, 0.0, False)


def crop_affine(
    landmarks: np.ndarray,
    crop_scale: float,
    size: int,
    shift=(0.0, 0.0),
    log_scale: float = 0.0,
    angle_deg: float = 0.0,
    flip: bool = False,
) -> np.ndarray:
    """(2, 3) image -> crop affine for (68, 2) image ``landmarks`` (the inference crop when all
    augmentation arguments are zero: ``crop_transform(*crop_box(landmark box), size)``).

    The image is first rotated by ``angle_deg`` about the landmark box centre, the crop is then
    made from the rotated points' box with the centre moved by ``shift`` (fractions of the box's
    longer side) and its side scaled by ``exp(log_scale)``, and ``flip`` mirrors the crop.
    """
    lo, hi = landmarks.min(0), landmarks.max(0)
    c = 0.5 * (lo + hi)
    t = math.radians(angle_deg)
    co, si = math.cos(t), math.sin(t)
    Rot = np.array([[co, -si, c[0] - co * c[0] + si * c[1]], [si, co, c[1] - si * c[0] - co * c[1]]])
    if angle_deg != 0.0:
        pts = transform_points(Rot, landmarks)
        lo, hi = pts.min(0), pts.max(0)
    cx, cy, side = crop_box((lo[0], lo[1], hi[0], hi[1]), crop_scale)
    side0 = side / crop_scale
    A = crop_transform(cx + shift[0] * side0, cy + shift[1] * side0, side * math.exp(log_scale), size)
    if angle_deg != 0.0:
        A = compose_affine(A, Rot)
    if flip:
        A = compose_affine(np.array([[-1.0, 0.0, size - 1.0], [0.0, 1.0, 0.0]]), A)
    return A


def shrink(image: np.ndarray, k: float) -> tuple[np.ndarray, float, float]:
    """The pre-shrink of :func:`regressor_data.warp_crop` for crop scale ``k`` (< 0.7): the image
    area-resized to ``1.2 k`` of its size, and its x / y factors."""
    import cv2

    H, W = image.shape[:2]
    size_s = shrunk_size(W, H, k)
    return cv2.resize(image, size_s, interpolation=cv2.INTER_AREA), size_s[0] / W, size_s[1] / H


def warp_affine(image: np.ndarray, A: np.ndarray, size: int, shrunk=None) -> np.ndarray:
    """:func:`regressor_data.warp_crop` for any (2, 3) affine (rotations and mirrors included):
    (H, W, 3) uint8 -> (size, size, 3), same area pre-shrink below 0.7x, so it equals
    ``warp_crop`` on the axis-aligned affines of :func:`crop_transform`. ``shrunk``: a cached
    :func:`shrink` of ``image`` to use instead (training: one resize per image, not per crop)."""
    import cv2

    A = np.asarray(A, dtype=np.float64)
    k = math.hypot(A[0, 0], A[0, 1])
    if shrunk is not None or k < 0.7:
        image, fx, fy = shrunk if shrunk is not None else shrink(image, k)
        unshrink = np.array([[1 / fx, 0.0, 0.5 / fx - 0.5], [0.0, 1 / fy, 0.5 / fy - 0.5]])
        A = compose_affine(A, unshrink)
    return cv2.warpAffine(image, A, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def colour_jitter(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """(S, S, 3) uint8 -> uint8: contrast, brightness, per-channel gain, 15 % grey, Gaussian noise."""
    x = img.astype(np.float32)
    x = (x - 128) * rng.uniform(0.7, 1.3) + 128 + rng.uniform(-30, 30)
    x = x * rng.uniform(0.9, 1.1, 3).astype(np.float32)
    if rng.random() < 0.15:
        x = x.mean(-1, keepdims=True).repeat(3, -1)
    x = x + rng.standard_normal(x.shape, dtype=np.float32) * rng.uniform(0, 6)
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


def random_erase(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """(S, S, 3) uint8 -> a copy with one rectangle (4-25 % of the crop, aspect 1:2 to 2:1, inside
    the crop) filled with a flat random colour or noise: a hand, a microphone, hair (random erasing,
    Zhong et al. 2020). The landmarks keep their positions (the occluded ones included)."""
    S = img.shape[0]
    area = rng.uniform(0.04, 0.25) * S * S
    aspect = math.exp(rng.uniform(-math.log(2), math.log(2)))
    h = int(min(S, round(math.sqrt(area * aspect))))
    w = int(min(S, round(math.sqrt(area / aspect))))
    y, x = int(rng.integers(0, S - h + 1)), int(rng.integers(0, S - w + 1))
    out = img.copy()
    if rng.random() < 0.5:
        out[y : y + h, x : x + w] = rng.integers(0, 256, 3, dtype=np.uint8)
    else:
        out[y : y + h, x : x + w] = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return out


# ------------------------------------------------------------------------------- dataset
class AFLWCrops:
    """Augmented training crops of AFLW2000-3D samples (images held in memory).

    Args:
        samples: :class:`face3d.fit.metrics.AFLWSample` list (the train half).
        size / crop_scale: the network's input convention (:class:`RegressorConfig`).
        aug: :class:`AugConfig`.
        images: (optional) the (H, W, 3) uint8 images of ``samples`` (default: read from disk).
    """

    def __init__(self, samples, size=96, crop_scale=1.5, aug: AugConfig = AugConfig(), images=None):
        from face3d.io import read_image

        self.samples, self.size, self.crop_scale, self.aug = list(samples), size, crop_scale, aug
        self.images = list(images) if images is not None else [read_image(s.image_path) for s in self.samples]
        self.bins = np.array([yaw_bin(s.yaw) for s in self.samples])
        self.yaw = np.array([face3d_yaw(s.yaw) for s in self.samples], dtype=np.float32)
        self._shrunk: dict[int, tuple] = {}  # image index -> shrink() at its nominal crop scale

    def _cached_shrink(self, i: int):
        """:func:`shrink` of image ``i`` at its unjittered crop scale (None when that is >= 0.7)."""
        if i not in self._shrunk:
            k = crop_affine(self.samples[i].landmarks, self.crop_scale, self.size)[0, 0]
            self._shrunk[i] = shrink(self.images[i], k) if k < 0.7 else None
        return self._shrunk[i]

    def __len__(self) -> int:
        return len(self.samples)

    def item(self, i: int, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray, float]:
        """One crop: (S, S, 3) uint8, its (68, 2) crop landmarks, face3d yaw (degrees; mirrored
        with the crop). ``rng=None``: the unaugmented inference crop."""
        a, S = self.aug if rng is not None else NO_AUG, self.size
        flip = rng is not None and rng.random() < a.flip
        A = crop_affine(
            self.samples[i].landmarks,
            self.crop_scale,
            S,
            shift=tuple(rng.uniform(-a.shift, a.shift, 2)) if rng is not None else (0.0, 0.0),
            log_scale=rng.uniform(-a.log_scale, a.log_scale) if rng is not None else 0.0,
            angle_deg=rng.uniform(-a.rotation, a.rotation) if rng is not None else 0.0,
        )
        img = warp_affine(self.images[i], A, S, self._cached_shrink(i) if rng is not None else None)
        lm = transform_points(A, self.samples[i].landmarks)
        yaw = float(self.yaw[i])
        if flip:
            img, lm, yaw = np.ascontiguousarray(img[:, ::-1]), flip_landmarks(lm, S), -yaw
        if rng is not None and a.colour:
            img = colour_jitter(rng, img)
        if rng is not None and a.erase and rng.random() < a.erase:
            img = random_erase(rng, img)
        return img, lm.astype(np.float32), yaw

    def unaugmented(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every sample's inference crop: (N, S, S, 3) uint8 crops, (N, 68, 2) crop landmarks and
        (N,) face3d yaws (:meth:`item` without ``rng``)."""
        items = [self.item(i) for i in range(len(self))]
        return (
            np.stack([it[0] for it in items]),
            np.stack([it[1] for it in items]),
            np.array([it[2] for it in items], dtype=np.float32),
        )

    def batch(self, rng: np.random.Generator, n: int, balanced: bool = True) -> dict[str, np.ndarray]:
        """``n`` augmented crops: ``image`` (n, S, S, 3) uint8, ``landmarks`` (n, 68, 2), ``yaw`` (n,)
        and ``yaw_valid`` (n,) bool. ``balanced``: each |yaw| bin equally likely."""
        if balanced:
            present = np.unique(self.bins)
            b = rng.choice(present, size=n)
            idx = np.array([rng.choice(np.flatnonzero(self.bins == k)) for k in b])
        else:
            idx = rng.integers(0, len(self), n)
        items = [self.item(int(i), rng) for i in idx]
        yaw = np.array([it[2] for it in items], dtype=np.float32)
        return {
            "image": np.stack([it[0] for it in items]),
            "landmarks": np.stack([it[1] for it in items]),
            "yaw": yaw,
            "yaw_valid": np.abs(yaw) <= MAX_YAW_LABEL,
        }


# -------------------------------------------------------------------------------- losses
AFLW_WEIGHTS = {
    "landmarks": 10.0,
    "yaw": 0.5,
    "identity_prior": 0.02,
    "expression_prior": 0.05,
    "confidence": 0.5,
}


def aflw_losses(out: dict, batch: dict, size: int) -> dict[str, torch.Tensor]:
    """Loss terms of real faces without 3DMM labels.

    ``batch``: ``landmarks`` (B, 68, 2) crop pixels, ``yaw`` (B,) degrees (face3d convention),
    ``yaw_valid`` (B,) bool. Terms: landmark L1 / size (as :func:`regressor_train.losses`), yaw L1
    in radians of the rotation's Euler yaw, the identity prior ``mean(identity^2)``, an L1 pull of
    the expression weights toward 0 and the face confidence (all AFLW crops hold a face).
    """
    from face3d.camera import euler_degrees

    yaw = euler_degrees(out["rotation"])[:, 0]
    valid = batch["yaw_valid"].float()
    yaw_err = torch.deg2rad((yaw - batch["yaw"] + 180.0) % 360.0 - 180.0).abs()
    return {
        "landmarks": (out["landmarks"] - batch["landmarks"]).abs().mean() / size,
        "yaw": (yaw_err * valid).sum() / valid.sum().clamp(min=1),
        "identity_prior": out["identity"].square().mean(),
        "expression_prior": out["expression"].mean(),
        "confidence": F.binary_cross_entropy_with_logits(out["logit"], torch.ones_like(out["logit"])),
    }


@torch.no_grad()
def evaluate_crops(net: RegressorNet, data: AFLWCrops) -> dict[str, float]:
    """Unaugmented crops (no flip averaging): mean NME (%, GT box) per bin, balanced, median |yaw err|."""
    from face3d.camera import euler_degrees
    from face3d.detect.regressor_train import _nme

    was = net.training
    net.eval()
    crops, landmarks, yaws = data.unaugmented()
    out = net(normalise(torch.from_numpy(crops)))
    net.train(was)
    nme = _nme(out["landmarks"], torch.from_numpy(landmarks)).numpy()
    yaw_err = np.abs(euler_degrees(out["rotation"])[:, 0].numpy() - yaws)
    res = {f"nme_bin{b}": float(nme[data.bins == b].mean()) for b in range(3) if (data.bins == b).any()}
    res["nme_balanced"] = float(np.mean([res[k] for k in res]))
    res["yaw_err_median"] = float(np.median(yaw_err))
    return res
