"""Decoding the network's per-crop outputs back into the image: per face, averaged over its crops
(the test-time views), landmarks and centre in image pixels, rotation as the nearest rotation to
the mean."""

from __future__ import annotations

import numpy as np


def to_image(out: dict[str, np.ndarray], As: np.ndarray, m: int, n: int) -> dict[str, np.ndarray]:
    """Network outputs (float64 arrays, :data:`_RUN_KEYS`) of ``m * n`` crops (scale-major: ``m``
    crops of each of ``n`` faces) made with image -> crop affines ``As`` (similarities: rotation,
    scale, shift) -> per face, in image coordinates and averaged over its crops: ``landmarks``
    (n, 68, 2), ``centre`` (n, 2), ``scale`` (n,), ``rotation`` (n, 3, 3) (projected mean),
    ``confidence`` (n,), ``identity``, ``expression`` and ``upright`` (n, 4) probabilities."""
    k = np.hypot(As[:, 0, 0], As[:, 0, 1])  # crop pixels per image pixel
    Q = As[:, :, :2] / k[:, None, None]  # the crop's in-plane rotation
    L_inv = np.linalg.inv(As[:, :, :2])  # crop -> image: x = L_inv @ (u - t)
    t_inv = -np.einsum("nij,nj->ni", L_inv, As[:, :, 2])

    def mean(x: np.ndarray) -> np.ndarray:  # (m * n, ...) scale-major -> (n, ...) mean over scales
        return x.reshape(m, n, *x.shape[1:]).mean(0)

    def back(pts: np.ndarray) -> np.ndarray:  # (m * n, P, 2) crop -> image pixels
        return pts @ L_inv.transpose(0, 2, 1) + t_inv[:, None]

    R = out["rotation"]
    R_img = R.copy()
    R_img[:, :2] = np.einsum("nji,njk->nik", Q, R[:, :2])  # undo the crop's in-plane rotation
    R_mean = mean_rotation(R_img.reshape(m, n, 3, 3).transpose(1, 0, 2, 3))
    logit, up = mean(out["logit"]), mean(out["upright"])
    up = np.exp(up - up.max(-1, keepdims=True))
    return {
        "landmarks": mean(back(out["landmarks"])),
        "centre": mean(back(out["centre"][:, None])[:, 0]),
        "scale": np.exp(mean(np.log(out["scale"] / k))),
        "rotation": R_mean,
        "confidence": 1.0 / (1.0 + np.exp(-logit)),
        "identity": mean(out["identity"]),
        "expression": mean(out["expression"]),
        "upright": up / up.sum(-1, keepdims=True),
    }


def mean_rotation(R: np.ndarray) -> np.ndarray:
    """(N, M, 3, 3) rotations -> (N, 3, 3): the rotation nearest (Frobenius) to each row's mean."""
    U, _, Vh = np.linalg.svd(R.mean(1))
    D = np.ones((R.shape[0], 1, 3))
    D[:, 0, 2] = np.sign(np.linalg.det(U @ Vh))
    return (U * D) @ Vh
