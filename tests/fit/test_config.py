"""FitConfig per landmark source, and the landmark weights of the fitter."""

from __future__ import annotations

import pytest
import torch

from face3d.fit import FitConfig
from face3d.fit.landmark_fit import landmark_weights


def test_settings_per_landmark_source():
    cfg = FitConfig(jaw_weight=0.6, regressor_jaw_weight=1.5)
    assert cfg.for_source("dlib") is cfg
    blend = cfg.for_source("blend")
    assert not blend.silhouette and blend.jaw_weight == 0.6
    reg = cfg.for_source("regressor")
    assert not reg.silhouette and reg.jaw_weight == 1.5 and reg.n_identity == cfg.n_identity
    with pytest.raises(ValueError, match="landmark source must be"):
        cfg.for_source("hog")


def test_landmark_weights_scale_the_jaw():
    w = landmark_weights(FitConfig(jaw_weight=0.25), 2)
    assert w.shape == (2, 68) and w.dtype == torch.float64
    assert torch.all(w[:, :17] == 0.25) and torch.all(w[:, 17:] == 1.0)
    conf = torch.linspace(0, 1, 68).repeat(3, 1)
    w = landmark_weights(FitConfig(jaw_weight=2.0), 3, conf)
    assert torch.allclose(w[:, :17], 2 * conf[:, :17].double()) and torch.allclose(
        w[:, 17:], conf[:, 17:].double()
    )
    assert conf[0, 0] == 0  # the caller's tensor is not changed in place
