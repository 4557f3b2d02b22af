"""AFLW2000-3D face crops as the regression network sees them: for evaluation (augmentation off:
exactly the inference crop of the ground-truth landmark box) and for the fine-tune (augmentation on).

:class:`AFLWCrops` makes crops exactly as :meth:`LandmarkRegressor.crops` does from a landmark box
(``crop_scale`` x the box's longer side, ``size`` px), plus augmentation: box shift/scale jitter (a
detector's box is not the landmark box), in-plane rotation, a horizontal flip (landmarks re-indexed
by :data:`MIRROR_68`), colour jitter and occluders.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from face3d.crop import crop_affine, shrink, transform_points, warp_affine
from face3d.eval.aflw import MAX_YAW_LABEL, face3d_yaw
from face3d.eval.metrics import yaw_bin
from face3d.io import read_image
from face3d.regress.network import MIRROR_68


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
        samples: :class:`face3d.eval.aflw.AFLWSample` list (the train half).
        size / crop_scale: the network's input convention (:class:`RegressorConfig`).
        aug: :class:`AugConfig`.
        images: (optional) the (H, W, 3) uint8 images of ``samples`` (default: read from disk).
    """

    def __init__(self, samples, size=96, crop_scale=1.5, aug: AugConfig = AugConfig(), images=None):

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
