"""Regression-only fits (the ``--fast`` path): the pinhole camera built from the weak-perspective
regression reprojects the regressed landmarks, in the network's landmark convention."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from face3d.regress.infer import LandmarkRegressor
from face3d.regress.network import RegressorConfig, RegressorNet

pytestmark = pytest.mark.integration


def test_to_fit_result_matches_regressed_landmarks(ict_model):
    """The --fast path: the perspective camera built from the weak-perspective output reprojects
    the model's landmarks close to the regressed ones."""
    from face3d.fit.regressed import to_fit_result

    cfg = RegressorConfig(size=32, channels=(8, 8, 16), strides=(2, 2), hidden=16, n_identity=4)
    reg = LandmarkRegressor(RegressorNet.from_model(cfg, ict_model))  # zero head: a frontal face
    image = np.zeros((240, 320, 3), np.uint8)
    outs = reg.predict_batch(image, [(100, 60, 180, 150), (200, 100, 240, 150)])
    assert np.allclose(
        to_fit_result(outs, image.shape[:2], ict_model, refine_pose=False).yaw_pitch_roll, 0, atol=1e-3
    )
    fit = to_fit_result(outs, image.shape[:2], ict_model)
    assert fit.rotation.shape == (2, 3, 3) and fit.identity.shape == (2, ict_model.n_identity)
    # refined under perspective, a face that looks frontal off the image centre faces the camera
    # centre: it is turned by the angle of its ray (about 2 and 6 degrees here)
    f, _, cx, cy = fit.intrinsics[0].tolist()
    for (yaw, pitch, _), o in zip(fit.yaw_pitch_roll.tolist(), outs, strict=True):
        ray = np.degrees(np.arctan((np.asarray(o.centre) - (cx, cy)) / f))
        assert abs(abs(yaw) - abs(ray[0])) < 1.0 and abs(abs(pitch) - abs(ray[1])) < 1.0
    for i, o in enumerate(outs):
        size = np.sqrt(np.prod(o.landmarks.max(0) - o.landmarks.min(0)))
        assert float(fit.error_px[i]) < 0.05 * size
    # with a landmark-convention offset the reprojection follows the offset landmarks
    with torch.no_grad():
        reg.net.lm_offset.copy_(torch.tensor([0.0, -1.5, 0.5]).expand(68, 3))
    moved = reg.predict_batch(image, [(100, 60, 180, 150)])
    fit = to_fit_result(moved, image.shape[:2], ict_model)
    size = np.sqrt(np.prod(moved[0].landmarks.max(0) - moved[0].landmarks.min(0)))
    assert np.abs(moved[0].landmarks - outs[0].landmarks).max() > 0.05 * size  # the offset shows
    assert float(fit.error_px[0]) < 0.05 * size


def test_pose_refinement_recovers_a_pinhole_pose_and_lowers_the_error(ict_model):
    """refine_pose_pnp: from a perturbed start it finds the pose that projected the targets, and
    the --fast fit with it reprojects the regressed landmarks at least as well as without."""
    from face3d.camera import euler_to_pose_matrix, project, to_camera
    from face3d.fit.regressed import refine_pose_pnp, to_fit_result

    rng = np.random.default_rng(0)
    X = torch.as_tensor(rng.normal(0, 5, (2, 68, 3)))
    ang = torch.deg2rad(torch.tensor([40.0, -10.0]))
    R = euler_to_pose_matrix(ang, 0.5 * ang, -0.3 * ang).double()
    t = torch.tensor([[2.0, -1.0, 80.0], [-3.0, 2.0, 120.0]], dtype=torch.float64)
    f, cx, cy = 800.0, 320.0, 240.0
    K = torch.tensor([[f, f, cx, cy]], dtype=torch.float64).repeat(2, 1)
    uv = project(to_camera(X, R, t), K)
    start_R = euler_to_pose_matrix(ang + 0.1, 0.5 * ang, -0.3 * ang).double()
    R2, t2 = refine_pose_pnp(X, uv, start_R, t * torch.tensor([1.1, 0.9, 1.05]), (f, cx, cy))
    assert torch.allclose(R2, R, atol=1e-5) and torch.allclose(t2, t, atol=1e-3)

    cfg = RegressorConfig(size=32, channels=(8, 8, 16), strides=(2, 2), hidden=16, n_identity=4)
    reg = LandmarkRegressor(RegressorNet.from_model(cfg, ict_model), flip=True, scales=(0.8, 1.0, 1.25))
    image = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    outs = reg.predict_batch(image, [(100, 60, 180, 150)])
    outs = [replace(outs[0], landmarks=outs[0].landmarks + rng.normal(0, 2.0, (68, 2)))]  # noisy targets
    plain = to_fit_result(outs, image.shape[:2], ict_model, refine_pose=False)
    refined = to_fit_result(outs, image.shape[:2], ict_model)
    assert float(refined.error_px[0]) < float(plain.error_px[0])
