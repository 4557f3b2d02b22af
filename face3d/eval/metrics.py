"""Landmark accuracy on AFLW2000-3D-style data: NME per |yaw| bin, the field's protocol.

NME = mean 2D point error over the 68 points / sqrt(w * h) of the ground-truth 68-point box, in %.
The 3D landmark error (:func:`nme_3d`) is normalised the same way, after a similarity alignment.
``pt3d_68`` is in 1-based (MATLAB) pixels; :func:`load_aflw` returns it 0-based (OpenCV), which is
the same as adding 1 to 0-based predictions.
"""

from __future__ import annotations

import numpy as np
import torch

YAW_BINS: tuple[tuple[float, float], ...] = ((0.0, 30.0), (30.0, 60.0), (60.0, 1e9))
BIN_NAMES: tuple[str, ...] = ("[0,30)", "[30,60)", "[60,90]")


def yaw_bin(yaw_deg: float) -> int:
    """Index of the |yaw| bin ([0,30), [30,60), [60,90], beyond 90 counts in the last)."""
    a = abs(yaw_deg)
    return next((i for i, (_, hi) in enumerate(YAW_BINS) if a < hi), len(YAW_BINS) - 1)


def nme(pred, gt):
    """NME in % of sqrt(w * h) of the ground-truth landmark box: the field's protocol, the one
    implementation (benchmarks, training and fine-tuning all call this).

    Args:
        pred, gt: (..., L, 2) landmarks in the same pixel convention, numpy arrays or torch tensors
            (both of one kind).

    Returns:
        (...) NME per face: a float for one (L, 2) numpy face, else an array or tensor of the
        batch shape (tensors keep their graph).
    """
    if isinstance(pred, torch.Tensor):
        span = gt.amax(-2) - gt.amin(-2)
        area = (span[..., 0] * span[..., 1]).clamp(min=1e-9)
        return (pred - gt).norm(dim=-1).mean(-1) / area.sqrt() * 100.0
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape or pred.shape[-1] != 2:
        raise ValueError(f"nme: pred {pred.shape} and gt {gt.shape} must both be (..., L, 2)")
    span = gt.max(-2) - gt.min(-2)
    area = np.maximum(span[..., 0] * span[..., 1], 1e-9)
    out = np.linalg.norm(pred - gt, axis=-1).mean(-1) / np.sqrt(area) * 100.0
    return float(out) if out.ndim == 0 else out


def similarity_align(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """``src`` (L, 3) moved onto ``dst`` (L, 3) by the least-squares similarity (scale, rotation with
    det +1, translation; Umeyama 1991): the aligned (L, 3) points. Both point sets must share their
    handedness (no reflection is allowed)."""
    src, dst = np.asarray(src, dtype=np.float64), np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 3:
        raise ValueError(f"similarity_align: src {src.shape} and dst {dst.shape} must both be (L, 3)")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    U, sig, Vt = np.linalg.svd(b.T @ a / len(src))
    d = np.ones(3)
    d[2] = np.sign(np.linalg.det(U @ Vt)) or 1.0
    R = U @ np.diag(d) @ Vt
    scale = float((sig * d).sum() / max((a**2).sum() / len(src), 1e-12))
    return scale * a @ R.T + mu_d


def landmark_errors_3d(pred, gt) -> np.ndarray:
    """(L,) 3D error of each landmark in % of sqrt(w * h) of the ground truth's 2D (x, y) landmark
    box, as :func:`nme`, after moving ``pred`` onto ``gt`` by :func:`similarity_align` (pose and
    scale do not count, the shape does); :func:`nme_3d` is their mean.

    Args:
        pred: (L, 3) predicted landmarks in any right-handed frame and unit (e.g. camera space, cm).
        gt: (L, 3) ground truth, x and y in image pixels, z in the same unit, right-handed (e.g.
            :attr:`face3d.eval.aflw.AFLWSample.landmarks_3d`).
    """
    gt = np.asarray(gt, dtype=np.float64)
    aligned = similarity_align(pred, gt)
    span = gt[:, :2].max(0) - gt[:, :2].min(0)
    return np.linalg.norm(aligned - gt, axis=-1) / np.sqrt(max(span[0] * span[1], 1e-9)) * 100.0


def nme_3d(pred, gt) -> float:
    """3D landmark error in % of sqrt(w * h) of the ground truth's 2D landmark box: the mean of
    :func:`landmark_errors_3d` (same arguments)."""
    return float(landmark_errors_3d(pred, gt).mean())


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
