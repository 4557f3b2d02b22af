"""Upright search: which quarter turn a face crop shows, so the regressor can see it upright.

The regressor is trained on heads within about 30 degrees of roll. A face lying on its side or
upside down (a person in bed, a phone photo missing its EXIF turn) gets confident, wrong
landmarks at any yaw, and its face confidence does not drop. The network's ``upright`` head
(:class:`face3d.regress.network.RegressorNet`) says which of the four quarter turns
``np.rot90(upright_crop, t)``, t = 0..3, a crop shows. The AFLW fine-tune trains it
(:func:`upright_batch`: crops turned 1-3 quarter turns, next to the upright ones).
:class:`face3d.regress.infer.LandmarkRegressor` reads it from the same forward pass, at
no extra cost. Only for a face it does not find upright (probability below
:data:`UPRIGHT_SEARCH_BELOW`) does it regress again from the crops turned each other way, and it
keeps the turn that the head finds most upright if the head finds it upright (probability above
:data:`UPRIGHT_ACCEPT_ABOVE`) and clearly more upright than the crops as they were (by
:data:`UPRIGHT_MARGIN`).

The thresholds were chosen on the AFLW2000-3D dev set's held-out half, its photos as they are and
turned whole (``scripts/bench/bench_upright.py``), among 18 combinations: a lower search threshold misses
turned faces the head is unsure of; no acceptance bar and margin turns merely tilted faces and
faces no turn makes look upright. Seven of the half's 499 photos show a face on its side (roll
57-101 degrees) or upside down.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from face3d.regress.network import RegressorNet, normalise

#: The upright search runs for a face whose crops the upright head finds upright (turn 0) with a
#: probability below this ...
UPRIGHT_SEARCH_BELOW = 0.7
#: ... and keeps the most upright turn only if the head finds it upright with a probability above this
UPRIGHT_ACCEPT_ABOVE = 0.5
#: ... and this much above the probability of the crops as they were.
UPRIGHT_MARGIN = 0.3


def quarter_turn_affine(turns: int, width: int, height: int | None = None) -> np.ndarray:
    """(2, 3) affine, pixels -> pixels, of ``np.rot90(array, turns)`` on an array ``height`` rows
    (default: square) by ``width`` columns (x = column, y = row; one turn sends the top-left
    corner to the bottom-left)."""
    w, h = width, width if height is None else height
    A = np.eye(3)
    for _ in range(int(turns) % 4):
        A = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, w - 1.0], [0.0, 0.0, 1.0]]) @ A
        w, h = h, w
    return A[:2]


def turn_crops(crops: np.ndarray, turns) -> np.ndarray:
    """(N, S, S, C) crops -> the same crops each turned ``np.rot90(crop, turns[i])``.
    ``turns``: an int for all of them, or (N,) ints."""
    turns = np.broadcast_to(np.asarray(turns, dtype=np.int64), (len(crops),))
    return (
        np.stack([np.rot90(c, int(t)) for c, t in zip(crops, turns, strict=True)])
        if len(crops)
        else crops.copy()
    )


def upright_batch(
    aflw, rng: np.random.Generator, n: int, turns=(1, 2, 3), aug=None
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` augmented crops of ``aflw`` (a :class:`face3d.eval.aflw_crops.AFLWCrops`; ``aug``,
    an ``AugConfig``, default ``aflw.aug``), each turned (``np.rot90``) a random one of ``turns``
    quarter turns: (n, S, S, 3) uint8 crops and (n,) int64 turns, what the upright head learns from."""
    if n == 0:
        return np.zeros((0, aflw.size, aflw.size, 3), np.uint8), np.zeros(0, np.int64)
    t = rng.choice(np.asarray(turns, dtype=np.int64), n)
    if aug is not None:
        aflw = copy.copy(aflw)
        aflw.aug = aug
    return turn_crops(aflw.batch(rng, n)["image"], t), t


@dataclass(frozen=True)
class UprightReport:
    """How well the upright head tells the four quarter turns of upright face crops apart.

    Attributes:
        n: upright crops (each shown at all four turns).
        accuracy: (4,) fraction of the crops at turn t that the head classifies as turn t.
        found: (4,) fraction of the crops at turn t that the upright search, run on single crops,
            ends with upright (``found[0]``: upright crops it leaves alone).
    """

    n: int
    accuracy: tuple[float, float, float, float]
    found: tuple[float, float, float, float]


@torch.inference_mode()
def upright_accuracy(net: RegressorNet, crops: np.ndarray, batch: int = 256) -> UprightReport:
    """The upright head of ``net`` (eval mode, single crops) on (N, S, S, 3) uint8 upright face
    crops, each shown at all four turns."""
    S = net.config.size
    if crops.ndim != 4 or crops.shape[1:] != (S, S, 3) or len(crops) == 0:
        raise ValueError(f"crops must be (N, {S}, {S}, 3) with N > 0, got {tuple(crops.shape)}")
    was = net.training
    net.eval()
    try:
        probs = []
        for t in range(4):
            turned = turn_crops(crops, t)
            logits = [
                net(normalise(torch.from_numpy(turned[i : i + batch])))["upright"]
                for i in range(0, len(turned), batch)
            ]
            probs.append(torch.softmax(torch.cat(logits), -1))
    finally:
        net.train(was)
    acc = tuple(float((p.argmax(-1) == t).float().mean()) for t, p in enumerate(probs))
    p0 = torch.stack([p[:, 0] for p in probs])  # (4, N): how upright the upright crop turned t looks
    found = []
    for t in range(4):  # the search from the crop turned t: views t + u, u = 1..3
        cand = torch.stack([p0[(t + u) % 4] for u in range(1, 4)])
        best_u = cand.argmax(0) + 1
        bar = (p0[t] + UPRIGHT_MARGIN).clamp(min=UPRIGHT_ACCEPT_ABOVE)
        moves = (p0[t] < UPRIGHT_SEARCH_BELOW) & (cand.max(0).values > bar)
        final = torch.where(moves, (t + best_u) % 4, torch.full_like(best_u, t))
        found.append(float((final == 0).float().mean()))
    return UprightReport(len(crops), acc, tuple(found))
