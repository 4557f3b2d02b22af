"""AFLW2000-3D for evaluation: the loader, the deterministic train / held-out split of the dev
set, and the stratified draws the benchmarks use.

``pt3d_68`` is in 1-based (MATLAB) pixels; :func:`load_aflw` returns it 0-based (OpenCV), which is
the same as adding 1 to 0-based predictions. Used by benchmarks and training, never by inference.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from face3d.eval.metrics import yaw_bin


@dataclass(frozen=True)
class AFLWSample:
    """One annotated image: ``landmarks`` (68, 2) 0-based pixels, ``yaw`` degrees (from Pose_Para);
    ``landmarks_3d`` (68, 3): ``pt3d_68`` with x, y as ``landmarks`` and z negated (AFLW2000-3D's z
    grows toward the camera; negated, the frame has the camera's axes, x right, y down, z away,
    right-handed like face3d's camera space), None when not loaded."""

    image_path: Path
    landmarks: np.ndarray
    yaw: float
    pitch: float
    roll: float
    landmarks_3d: np.ndarray | None = None

    @property
    def box(self) -> tuple[float, float, float, float]:
        """Bounding box of the 68 ground-truth points (x0, y0, x1, y1)."""
        lo, hi = self.landmarks.min(0), self.landmarks.max(0)
        return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])


def load_aflw(folder: str | os.PathLike) -> list[AFLWSample]:
    """Read every ``imageNNNNN.jpg`` + ``.mat`` pair of an AFLW2000-3D folder, sorted by name."""
    from scipy.io import loadmat

    out = []
    for mat in sorted(Path(folder).glob("*.mat")):
        img = mat.with_suffix(".jpg")
        if not img.is_file():
            continue
        m = loadmat(mat)
        pts3 = np.asarray(m["pt3d_68"], dtype=np.float64).T * np.array([1.0, 1.0, -1.0])
        pts3[:, :2] -= 1.0
        pitch, yaw, roll = np.rad2deg(np.asarray(m["Pose_Para"], dtype=np.float64).reshape(-1)[:3])
        out.append(AFLWSample(img, pts3[:, :2].copy(), float(yaw), float(pitch), float(roll), pts3))
    return out


def stratified(samples: list[AFLWSample], per_bin: int | None, seed: int = 0) -> list[AFLWSample]:
    """Up to ``per_bin`` samples of each yaw bin (deterministic), or all when None."""
    if per_bin is None:
        return samples
    rng = np.random.default_rng(seed)
    out = []
    for b in range(3):
        idx = [i for i, s in enumerate(samples) if yaw_bin(s.yaw) == b]
        take = sorted(rng.choice(idx, size=min(per_bin, len(idx)), replace=False).tolist()) if idx else []
        out.extend(samples[i] for i in take)
    return out


SPLITS = ("all", "train", "heldout")


MAX_YAW_LABEL = 100.0  # |yaw| labels beyond this (a few AFLW2000-3D poses are wrapped or broken) are not used


# ----------------------------------------------------------------------------------- split
def drawn_samples(
    samples: list[AFLWSample], split: str, per_bin: int | None, names: str = ""
) -> list[AFLWSample]:
    """What an experiment runs on: the samples named in ``names`` (comma-separated image file
    names, any split), or else :func:`stratified` ``per_bin`` of ``split``."""
    if names:
        wanted = set(names.split(","))
        return [s for s in samples if s.image_path.name in wanted]
    return stratified(select_split(samples, split), per_bin)


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
    """The ``split`` ("all", "train", "heldout") part of :func:`face3d.eval.aflw.load_aflw` samples."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if split == "all":
        return list(samples)
    is_train = split_aflw([s.image_path.name for s in samples], [s.yaw for s in samples])
    return [s for s, t in zip(samples, is_train, strict=True) if t == (split == "train")]


def face3d_yaw(aflw_yaw: float) -> float:
    """AFLW2000-3D's Pose_Para yaw (degrees) -> face3d's convention (opposite sign), in [-180, 180)."""
    return float((-aflw_yaw + 180.0) % 360.0 - 180.0)


def lips_apart(landmarks: np.ndarray, min_gap: float = 0.06) -> bool:
    """Whether (68, 2) labelled ``landmarks`` have their inner lips apart: the gap between 62 and
    66 over ``min_gap`` of the nose-to-chin length (27 to 8): an open mouth whose interior shows."""
    lm = np.asarray(landmarks, np.float64)
    return bool(np.linalg.norm(lm[66] - lm[62]) >= min_gap * max(np.linalg.norm(lm[27] - lm[8]), 1.0))
