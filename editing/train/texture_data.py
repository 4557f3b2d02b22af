"""The cycle cache as tensors for the texture generator's training (:mod:`editing.train.texture`):
the held-out split, mirrored batches, the paste-back weights, sampling and mouth patches."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from editing.gan.refine import synthesized_region


def mirror_permutation(names: tuple[str, ...]) -> np.ndarray:
    """Indices that swap each left expression weight with its right twin (mirrored image)."""
    swaps = {
        "jawLeft": "jawRight",
        "jawRight": "jawLeft",
        "mouthLeft": "mouthRight",
        "mouthRight": "mouthLeft",
    }
    index = {n: i for i, n in enumerate(names)}

    def twin(n: str) -> str:
        if n in swaps:
            return swaps[n]
        if n.endswith("_L"):
            return n[:-2] + "_R"
        return n[:-2] + "_L" if n.endswith("_R") else n

    return np.array([index.get(twin(n), i) for i, n in enumerate(names)])


def holdout_mask(names: tuple[str, ...], frac: float) -> np.ndarray:
    """(N,) bool: the held-out samples, chosen by a hash of the name (stable as the cache grows)."""
    h = [int(hashlib.sha1(n.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF for n in names]
    return np.array(h) < frac


def paste_weights(synth: np.ndarray) -> np.ndarray:
    """(N, S, S) uint8 synthesised masks -> (N, S, S) float32 paste-back weights (the inference
    rule: :func:`editing.gan.refine.synthesized_region`)."""
    return np.stack([synthesized_region(s >= 128)[1] for s in synth]).astype(np.float32)


@dataclass
class CycleTensors:
    """The cache as tensors (N samples, S pixels, K weights)."""

    photo: torch.Tensor  # (N, 3, S, S) uint8
    cycle: torch.Tensor
    synth: torch.Tensor  # (N, 1, S, S) float32 in [0, 1]
    alpha: torch.Tensor
    weight: torch.Tensor  # mouth region or pasted pixels
    y: torch.Tensor  # (N, K)
    centre: np.ndarray  # (N, 2) mouth centre, crop pixels (x, y)


def prepare(cache) -> CycleTensors:
    """A :class:`editing.train.cycle_data.CycleCache` as tensors (paste weights and mouth centres
    computed once)."""
    to_img = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2)  # noqa: E731
    alpha = paste_weights(cache.synth)
    mouth = cache.mouth.astype(np.float32) / 255
    ys, xs = np.mgrid[: mouth.shape[1], : mouth.shape[2]]
    m = mouth + 1e-6
    centre = np.stack([(m * xs).sum((1, 2)) / m.sum((1, 2)), (m * ys).sum((1, 2)) / m.sum((1, 2))], 1)
    return CycleTensors(
        photo=to_img(cache.photo),
        cycle=to_img(cache.cycle),
        synth=torch.from_numpy(cache.synth.astype(np.float32) / 255)[:, None],
        alpha=torch.from_numpy(alpha)[:, None],
        weight=torch.from_numpy(np.maximum(mouth, alpha))[:, None],
        y=torch.from_numpy(cache.y.astype(np.float32)),
        centre=centre,
    )


def make_batch(data: CycleTensors, idx: np.ndarray, flip: np.ndarray, perm: np.ndarray, device) -> dict:
    """Samples ``idx`` as float tensors on ``device``, those with ``flip`` mirrored (weights
    permuted by ``perm``, :func:`mirror_permutation`); ``centre``: the mouth centres (numpy)."""
    b = {
        "photo": data.photo[idx].float() / 255,
        "cycle": data.cycle[idx].float() / 255,
        "synth": data.synth[idx],
        "alpha": data.alpha[idx],
        "weight": data.weight[idx],
        "y": data.y[idx],
    }
    centre = data.centre[idx].copy()
    if flip.any():
        f = torch.from_numpy(flip)
        for k in ("photo", "cycle", "synth", "alpha", "weight"):
            b[k] = torch.where(f[:, None, None, None], b[k].flip(-1), b[k])
        b["y"] = torch.where(f[:, None], b["y"][:, perm], b["y"])
        centre[flip, 0] = data.photo.shape[-1] - 1 - centre[flip, 0]
    b = {k: v.to(device) for k, v in b.items()}
    b["centre"] = centre
    return b


def patches(images: torch.Tensor, centre: np.ndarray, side: int) -> torch.Tensor:
    """(B, C, side, side) squares of (B, C, S, S) ``images`` centred on ``centre`` (B, 2), inside."""
    S = images.shape[-1]
    out = []
    for img, (cx, cy) in zip(images, centre, strict=True):
        x0 = int(np.clip(round(cx) - side // 2, 0, S - side))
        y0 = int(np.clip(round(cy) - side // 2, 0, S - side))
        out.append(img[:, y0 : y0 + side, x0 : x0 + side])
    return torch.stack(out)


def sampling_probabilities(data: CycleTensors, idx: np.ndarray, open_weight: float) -> np.ndarray | None:
    """Probabilities of drawing the samples ``idx`` for a batch, proportional to
    ``1 + open_weight * a / mean(a)`` where ``a`` is the number of pixels the cycle drew (a wide-open
    mouth draws many); None (uniform draws) when ``open_weight`` is 0."""
    if open_weight == 0:
        return None
    area = (data.synth[idx] >= 0.5).sum((1, 2, 3)).double().numpy()
    p = 1 + open_weight * area / max(area.mean(), 1.0)
    return p / p.sum()
