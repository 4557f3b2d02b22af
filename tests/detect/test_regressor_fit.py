"""Regression-only fits (the ``--fast`` path): the pinhole camera built from the weak-perspective
regression reprojects the regressed landmarks, in the network's landmark convention."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from face3d.detect.regressor import RegressorConfig, RegressorNet
from face3d.detect.regressor_infer import LandmarkRegressor

pytestmark = pytest.mark.integration


def test_to_fit_result_matches_regressed_landmarks(ict_model):
    """The --fast path: the perspective camera built from the weak-perspective output reprojects
    the model's landmarks close to the regressed ones."""
    from face3d.detect.regressor_fit import to_fit_result

    cfg = RegressorConfig(size=32, channels=(8, 8, 16), strides=(2, 2), hidden=16, n_identity=4)
    reg = LandmarkRegressor(RegressorNet.from_model(cfg, ict_model))  # zero head: a frontal face
    image = np.zeros((240, 320, 3), np.uint8)
    outs = reg.predict_batch(image, [(100, 60, 180, 150), (200, 100, 240, 150)])
    fit = to_fit_result(outs, image.shape[:2], ict_model)
    assert fit.rotation.shape == (2, 3, 3) and fit.identity.shape == (2, ict_model.n_identity)
    assert np.allclose(fit.yaw_pitch_roll.numpy(), 0.0, atol=1e-3)
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
