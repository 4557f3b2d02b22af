"""Regression-only fits: the ``--fast`` path turns :class:`RegressorOutput` s into a
:class:`face3d.fit.FitResult` without the optimiser."""

from __future__ import annotations

import math

import numpy as np
import torch

from face3d.detect.regressor_infer import RegressorOutput


def to_fit_result(outputs: list[RegressorOutput], image_size: tuple[int, int], model, fov_deg: float = 30.0):
    """Regression-only fits (the ``--fast`` path): a :class:`face3d.fit.FitResult` batch.

    The weak-perspective camera becomes a pinhole camera with ``fov_deg`` over the image's longer
    side (the fitter's default), placed so that perspective and weak perspective agree at the
    centroid ``m`` of the rotated landmarks: ``tz = f / scale - m_z``, ``t_xy = (centre - c) /
    scale``. ``landmarks_target`` holds the regressed 2D landmarks; ``landmarks_fitted`` are the
    landmark vertices plus the outputs' ``landmark_offset`` (their convention), projected.
    """
    from face3d.camera import project, to_camera
    from face3d.fit.result import FitResult

    H, W = image_size
    dt = model.template.dtype
    f = 0.5 * max(H, W) / math.tan(math.radians(fov_deg) / 2)
    cx, cy = (W - 1) / 2, (H - 1) / 2
    R = torch.as_tensor(np.stack([o.rotation for o in outputs]), dtype=dt)
    ident = torch.zeros(len(outputs), model.n_identity, dtype=dt)
    k = min(model.n_identity, len(outputs[0].identity))
    ident[:, :k] = torch.as_tensor(np.stack([o.identity[:k] for o in outputs]), dtype=dt)
    expr = torch.as_tensor(np.stack([o.expression for o in outputs]), dtype=dt)
    verts = model(ident, expr)
    lm3d = model.landmarks(verts) + _offsets(outputs, dt)
    m = (lm3d @ R.transpose(1, 2)).mean(1)  # (B, 3) rotated landmark centroid
    s = torch.as_tensor([o.scale for o in outputs], dtype=dt)
    c = torch.as_tensor(np.stack([o.centre for o in outputs]), dtype=dt)
    t = torch.stack([(c[:, 0] - cx) / s, (c[:, 1] - cy) / s, f / s - m[:, 2]], -1)
    K = torch.tensor([[f, f, cx, cy]], dtype=dt).repeat(len(outputs), 1)
    fitted = project(to_camera(lm3d, R, t), K)
    target = torch.as_tensor(np.stack([o.landmarks for o in outputs]), dtype=dt)
    return FitResult(
        rotation=R,
        translation=t,
        intrinsics=K,
        identity=ident,
        expression=expr,
        landmarks_target=target,
        landmarks_fitted=fitted,
        error_px=(fitted - target).norm(dim=-1).mean(-1),
        image_size=(H, W),
    )


def _offsets(outputs: list[RegressorOutput], dtype) -> torch.Tensor:
    """(B, 68, 3) landmark-convention offsets of ``outputs`` (zeros where None)."""
    return torch.stack(
        [
            torch.zeros(68, 3, dtype=dtype)
            if o.landmark_offset is None
            else torch.as_tensor(o.landmark_offset, dtype=dtype)
            for o in outputs
        ]
    )
