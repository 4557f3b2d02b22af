"""Landmark accuracy on AFLW2000-3D-style data: NME per |yaw| bin, the field's protocol.

NME = mean 2D point error over the 68 points / sqrt(w * h) of the ground-truth 68-point box, in %.
``pt3d_68`` is in 1-based (MATLAB) pixels; :func:`load_aflw` returns it 0-based (OpenCV), which is
the same as adding 1 to 0-based predictions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

YAW_BINS: tuple[tuple[float, float], ...] = ((0.0, 30.0), (30.0, 60.0), (60.0, 1e9))
BIN_NAMES: tuple[str, ...] = ("[0,30)", "[30,60)", "[60,90]")


@dataclass(frozen=True)
class AFLWSample:
    """One annotated image: ``landmarks`` (68, 2) 0-based pixels, ``yaw`` degrees (from Pose_Para)."""

    image_path: Path
    landmarks: np.ndarray
    yaw: float
    pitch: float
    roll: float

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
        pts = np.asarray(m["pt3d_68"], dtype=np.float64)[:2].T - 1.0
        pitch, yaw, roll = np.rad2deg(np.asarray(m["Pose_Para"], dtype=np.float64).reshape(-1)[:3])
        out.append(AFLWSample(img, pts, float(yaw), float(pitch), float(roll)))
    return out


def yaw_bin(yaw_deg: float) -> int:
    """Index of the |yaw| bin ([0,30), [30,60), [60,90], beyond 90 counts in the last)."""
    a = abs(yaw_deg)
    return 0 if a < 30 else (1 if a < 60 else 2)


def nme(pred: np.ndarray, gt: np.ndarray) -> float:
    """NME in % of sqrt(w * h) of the ground-truth box. (68, 2) each, same pixel convention."""
    w, h = gt.max(0) - gt.min(0)
    return float(np.linalg.norm(pred - gt, axis=1).mean() / np.sqrt(max(w * h, 1e-9)) * 100.0)


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


def bin_table(values: list[tuple[float, float | None]]) -> dict:
    """(yaw, nme or None for a miss) pairs -> per-bin mean NME, counts, misses and balanced mean."""
    table: dict = {}
    means = []
    for b, name in enumerate(BIN_NAMES):
        vals = [v for y, v in values if yaw_bin(y) == b]
        hit = [v for v in vals if v is not None]
        mean = float(np.mean(hit)) if hit else None
        table[name] = {
            "nme": None if mean is None else round(mean, 3),
            "median_nme": None if not hit else round(float(np.median(hit)), 3),
            "n": len(vals),
            "missed": len(vals) - len(hit),
        }
        if mean is not None:
            means.append(mean)
    table["balanced"] = round(float(np.mean(means)), 3) if len(means) == 3 else None
    return table


def bin_line(table: dict) -> str:
    """A :func:`bin_table` as one line, ``"a / b / c (balanced x)"``: the mean NME of each bin that
    has one, for the scripts' printouts."""
    bins = " / ".join(
        f"{c['nme']:.2f}" for c in table.values() if isinstance(c, dict) and c["nme"] is not None
    )
    return f"{bins} (balanced {table['balanced']})"
