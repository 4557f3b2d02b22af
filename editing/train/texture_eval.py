"""Held-out evaluation of the cycle-trained texture generator and the rule that picks its best
weights (:mod:`editing.train.texture`).

Every evaluation scores the generator's paste on the held-out cycles in the mouth region against
the photo (mean L1, median PSNR, mean PSNR gain over the cycle's own fill). With ``realism`` it also
measures a realism proxy of the benchmark's kind (``scripts/bench/bench_mouth_cycle.py``): KID
(x 100) of 96 px mouth crops (:func:`mouth_crops`; features: the FER classifier's early feature
maps' channel means and spreads, standardised on the real mouths) against the real photos' mouths,
over random half-splits so a crop never meets its own photo (:func:`crossed_kid`); and the same for the
cycle's fill (``kid_cycle``, the baseline).

The best weights (:func:`is_better`): ``select="l1"`` the lowest held-out mouth L1 (the first
runs' rule; it rewards a blurred mean); ``select="realism"`` the lowest held-out KID among the
evaluations whose PSNR gain over the fill is at least ``min_gain_db`` (sharp and still accurate).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from editing.compare.metrics import split_kid
from editing.train.texture_data import make_batch

CROP = 96
"""Side of the mouth crops of the realism proxy (as the benchmark's), pixels."""


def masked_psnr(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(B,) PSNR (dB) of (B, 3, H, W) images in [0, 1] over the (B, 1, H, W) weighted pixels."""
    mse = (((a - b) ** 2) * weight).sum((1, 2, 3)) / (weight.sum((1, 2, 3)) * 3).clamp(min=1e-6)
    return 10 * torch.log10(1 / mse.clamp(min=1e-10))


def mouth_crops(images: torch.Tensor, mouth: torch.Tensor, side: int = CROP) -> torch.Tensor:
    """(B, 3, S, S) images, (B, 1, S, S) mouth regions -> (B, 3, side, side) square crops of side
    twice the region's width (at least 8 px) centred on its centre of mass, bilinear, border
    padded (the benchmark's mouth crop, on the training crops)."""
    B, _, H, W = images.shape
    m = (mouth[:, 0] > 0.5).float()
    xs = torch.arange(W, dtype=images.dtype, device=images.device)
    ys = torch.arange(H, dtype=images.dtype, device=images.device)
    mass = m.sum((1, 2)).clamp(min=1)
    cx = (m.sum(1) * xs).sum(1) / mass
    cy = (m.sum(2) * ys).sum(1) / mass
    cols = m.amax(1) > 0
    first = torch.where(cols.any(1), cols.float().argmax(1), torch.zeros_like(mass, dtype=torch.long))
    last = W - 1 - cols.flip(1).float().argmax(1)
    width = torch.where(cols.any(1), (last - first + 1).to(images.dtype), torch.full_like(mass, W / 4))
    half = width.clamp(min=4)  # the crop's half-side, pixels: twice the width overall
    theta = torch.zeros(B, 2, 3, dtype=images.dtype, device=images.device)
    theta[:, 0, 0], theta[:, 1, 1] = 2 * half / W, 2 * half / H
    theta[:, 0, 2], theta[:, 1, 2] = (2 * cx + 1) / W - 1, (2 * cy + 1) / H - 1
    grid = F.affine_grid(theta, (B, 3, side, side), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def crossed_kid(fake: np.ndarray, real: np.ndarray, splits: int = 50) -> float:
    """KID x 100 of (N, d) fake features against the (N, d) real ones (row i of both from the same
    face): the median over random half-splits (:func:`editing.compare.metrics.split_kid`). NaN
    under 8 rows."""
    if len(real) < 8:
        return float("nan")
    return float(np.median(split_kid({"fake": fake}, real, splits)["fake"]))


def is_better(ev: dict, best: dict | None, select: str, min_gain_db: float) -> bool:
    """Whether held-out evaluation ``ev`` replaces ``best`` as the weights kept (module docstring)."""
    if select == "l1":
        return best is None or ev["l1"] < best["l1"]
    if ev["gain_db"] < min_gain_db or not np.isfinite(ev["kid"]):
        return False
    return best is None or ev["kid"] < best["kid"]


def evaluate(models, data, idx: np.ndarray, device, batch: int = 32, realism: bool = False) -> dict:
    """Held-out mouth-region L1 and PSNR of the generator's paste and of the cycle itself; with
    ``realism`` also ``kid`` and ``kid_cycle`` (module docstring).

    Args:
        models: :class:`editing.train.texture.TextureModels`; data: its prepared cache; idx: the
            held-out samples.
    """
    l1, psnr, base, feats = [], [], [], {"gen": [], "cycle": [], "real": []}
    with torch.no_grad():
        for s in range(0, len(idx), batch):
            part = idx[s : s + batch]
            b = make_batch(data, part, np.zeros(len(part), bool), np.arange(1), device)
            pasted, _ = models.refine(b)
            mouth = b["weight"]
            l1.append(((pasted - b["photo"]).abs() * mouth).sum((1, 2, 3)) / (mouth.sum((1, 2, 3)) * 3))
            psnr.append(masked_psnr(pasted, b["photo"], mouth))
            base.append(masked_psnr(b["cycle"], b["photo"], mouth))
            if realism:
                for k, img in (("gen", pasted), ("cycle", b["cycle"]), ("real", b["photo"])):
                    feats[k].append(models.perceptual.statistics(mouth_crops(img, mouth)).cpu())
    l1_all, p, q = torch.cat(l1), torch.cat(psnr), torch.cat(base)
    out = {
        "l1": float(l1_all.mean()),
        "psnr": float(p.median()),
        "psnr_cycle": float(q.median()),
        "gain_db": float((p - q).mean()),
    }
    if realism:
        f = {k: torch.cat(v).double().numpy() for k, v in feats.items()}
        out.update(kid=crossed_kid(f["gen"], f["real"]), kid_cycle=crossed_kid(f["cycle"], f["real"]))
    return out
