"""Hard-negative mining for the regressor's face confidence (the windows themselves:
:mod:`face3d.eval.face_free`, which the confidence benchmark shares).

The synthetic negatives of :mod:`face3d.train.regressor` (flat colours, noise, blurred
backgrounds) teach the confidence "this crop may hold a face", not "this is a face": cluttered
face-free photos (text, coins, a cat) score above 0.99, so the detection fallback of
:mod:`face3d.regress.proposals` cannot reject them. Here the fine-tune
(:func:`face3d.train.finetune.finetune`, ``FinetuneConfig.negative_batch``) also sees
windows of the AFLW train-half photos, sampled like the fallback's sliding windows, whose crop
shows at most ``max_overlap`` of the face's landmark box: clothing, hair, walls, other scenery.

Windows holding half a face or the whole face at a wrong scale are neither positives nor
negatives: the fallback refines such windows on their regressed landmarks.

A share of the negatives (``clutter``) are drawn by :func:`clutter` instead: text, discs and rings,
lines, boxes and stripes over a photo window or a flat, gradient or noisy ground, the man-made
and microscopic clutter that AFLW's portraits lack. With ``FinetuneConfig.negative_pool``
the fine-tune mines them: the most face-like of a larger pool are the ones trained on.
"""

from __future__ import annotations

import numpy as np
import torch

from face3d.eval.face_free import NegativeConfig, negative_batch
from face3d.regress.network import normalise


def mine_negatives(
    net, aflw, rng: np.random.Generator, n: int, pool: int = 0, config: NegativeConfig = NegativeConfig()
) -> np.ndarray:
    """``n`` negatives of :func:`negative_batch`; with ``pool > n``, the ``n`` of ``pool`` drawn that
    ``net`` (a :class:`face3d.regress.network.RegressorNet`, scored in eval mode without
    gradients, its mode restored) finds the most face-like: (n, S, S, 3) uint8."""
    if pool <= n:
        return negative_batch(aflw, rng, n, config)
    cand = negative_batch(aflw, rng, pool, config)
    was = net.training
    net.eval()
    try:
        with torch.no_grad():
            logit = net(normalise(torch.from_numpy(cand)))["logit"]
    finally:
        net.train(was)
    return cand[np.sort(torch.topk(logit, n).indices.numpy())]


