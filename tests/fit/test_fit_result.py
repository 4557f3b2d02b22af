"""FitResult / FaceFit: the same fit for the image resized."""

from __future__ import annotations

import math

import numpy as np
import torch

from face3d.camera import camera_rotation, euler_to_pose_matrix, project, to_camera
from face3d.fit.pipeline import FaceFit
from face3d.fit.result import FitResult


def _fit(size=(300, 400)) -> tuple[FitResult, torch.Tensor]:
    """A fit of some 3D points (a stand-in mesh, cm) seen by a camera, and those points."""
    g = torch.Generator().manual_seed(0)
    pts = torch.randn(1, 68, 3, generator=g) * 5.0
    R = camera_rotation(euler_to_pose_matrix(*(torch.tensor([math.radians(a)]) for a in (30.0, 5.0, 0.0))))
    t = torch.tensor([[1.0, -2.0, 60.0]])
    K = torch.tensor([[900.0, 910.0, 210.5, 140.25]])
    lm = project(to_camera(pts, R, t), K)
    fit = FitResult(R, t, K, torch.zeros(1, 4), torch.zeros(1, 3), lm + 0.3, lm, torch.tensor([1.5]), size)
    return fit, pts


def test_resized_fit_projects_where_the_resized_image_shows():
    fit, pts = _fit()
    small = fit.resized((75, 100))  # a quarter: u' = (u + 0.5) / 4 - 0.5
    assert small.image_size == (75, 100)
    proj = project(to_camera(pts, small.rotation, small.translation), small.intrinsics)
    expect = (fit.landmarks_fitted + 0.5) * 0.25 - 0.5
    assert torch.allclose(proj, expect, atol=1e-4)
    assert torch.allclose(small.landmarks_fitted, expect, atol=1e-5)
    assert torch.allclose(small.landmarks_target, (fit.landmarks_target + 0.5) * 0.25 - 0.5, atol=1e-5)
    assert math.isclose(float(small.error_px), 1.5 * 0.25, rel_tol=1e-6)
    back = small.resized((300, 400))
    assert torch.allclose(back.intrinsics, fit.intrinsics, atol=1e-4)
    assert torch.allclose(back.landmarks_fitted, fit.landmarks_fitted, atol=1e-4)


def test_resized_face_moves_its_box_and_detected_landmarks():
    fit, _ = _fit()
    lm = fit.landmarks_fitted[0].numpy()
    face = FaceFit(0, (10.0, 20.0, 210.0, 220.0), "hog", 1.0, lm.copy(), fit, {})
    half = face.resized((150, 200))
    assert half.bbox == (5.0, 10.0, 105.0, 110.0)  # box edges scale as they are
    np.testing.assert_allclose(half.landmarks_detected, (lm + 0.5) * 0.5 - 0.5, atol=1e-6)
    assert half.fit.image_size == (150, 200) and half.detector == "hog"
