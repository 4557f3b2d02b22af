"""The landmark fitter: synthetic round trips, silhouette handling, a real photo."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from face3d.camera import camera_rotation, euler_to_pose_matrix, project, to_camera
from face3d.fit import FitConfig, fit_landmarks
from face3d.render import render

pytestmark = pytest.mark.integration


def _synthetic(model, yaw, pitch, roll, seed=0, size=256):
    g = torch.Generator().manual_seed(seed)
    B = len(yaw)
    ident = torch.randn(B, 40, generator=g) * 0.5
    expr = torch.zeros(B, 53)
    expr[:, model.expression_index("jawOpen")] = 0.25
    expr[:, model.expression_index("mouthSmile_L")] = 0.4
    R = camera_rotation(euler_to_pose_matrix(*(torch.deg2rad(torch.tensor(a)) for a in (yaw, pitch, roll))))
    t = torch.tensor([[1.0, -1.5, 65.0]]).repeat(B, 1)
    f = 0.5 * size / math.tan(math.radians(30) / 2)
    K = torch.tensor([[f, f, (size - 1) / 2, (size - 1) / 2]]).repeat(B, 1)
    verts = to_camera(model(ident, expr), R, t)
    return verts, K, project(model.landmarks(verts), K)


def test_round_trip_recovers_pose_and_landmarks(ict_model):
    yaw, pitch, roll = [0.0, 25.0, -40.0], [5.0, -10.0, 8.0], [0.0, 6.0, -4.0]
    _, _, lm = _synthetic(ict_model, yaw, pitch, roll)
    noisy = lm + torch.randn(lm.shape, generator=torch.Generator().manual_seed(1)) * 0.5
    res = fit_landmarks(ict_model, noisy, (256, 256), FitConfig(silhouette=False))
    ypr = res.yaw_pitch_roll
    truth = torch.tensor([yaw, pitch, roll]).T
    assert float((ypr - truth).abs().max()) < 2.0, ypr
    err = (res.landmarks_fitted - lm).norm(dim=-1).mean(-1)
    assert float(err.max()) < 1.0, err
    assert float(res.expression.min()) >= 0 and float(res.expression.max()) <= 1


def _outline_targets(model, verts, K, lm, size=256):
    """What a 2D detector reports at large yaw: jaw points of the far side on the visible outline
    (moved horizontally to the edge of the rendered face)."""
    mask = render(verts, model.faces, K, (size, size)).mask[0].numpy() > 0
    out = lm.clone()
    for p in range(9, 17):  # positive yaw turns the subject's left jaw (9-16) away
        x, y = lm[0, p].tolist()
        row = mask[int(round(min(max(y, 0), size - 1)))]
        cols = np.nonzero(row)[0]
        if len(cols):
            out[0, p, 0] = float(cols.max())
    return out


def test_silhouette_reduces_error_at_70_degrees(ict_model):
    verts, K, lm = _synthetic(ict_model, [70.0], [0.0], [0.0], seed=3)
    targets = _outline_targets(ict_model, verts, K, lm)
    assert float((targets - lm).norm(dim=-1)[0, 9:17].max()) > 3.0  # the outline differs from the anatomy
    errs = {}
    for sil in (False, True):
        res = fit_landmarks(ict_model, targets, (256, 256), FitConfig(silhouette=sil))
        errs[sil] = float((res.landmarks_fitted - lm).norm(dim=-1).mean())
    assert errs[True] < 0.8 * errs[False], errs


def test_real_photo_gives_a_sane_fit(ict_model):
    from face3d.demo import example_image
    from face3d.fit import fit_image

    faces = fit_image(example_image(), ict_model)
    assert len(faces) == 1
    fit = faces[0].fit
    assert float(fit.error_px[0]) < 3.0
    assert abs(float(fit.yaw_pitch_roll[0, 0])) < 20
    x0, y0, x1, y1 = faces[0].bbox
    nose = fit.landmarks_fitted[0, 30]
    assert x0 < float(nose[0]) < x1 and y0 < float(nose[1]) < y1
