"""Fixtures shared by the editing tests."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def no_3d_model():
    """The 3D model made unavailable: any attempt to load it fails."""
    from face3d import ict
    from face3d.errors import ModelNotFoundError
    from face3d.model import MorphableModel

    def refuse(*args, **kwargs):
        raise ModelNotFoundError("the 3D model is unavailable in this test")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(MorphableModel, "from_dir", classmethod(refuse))
        mp.setattr(ict, "load_ict_arrays", refuse)
        yield


@pytest.fixture
def padding_kept():
    """``check(image, landmarks (68, 2), edit)``: pads ``image`` with black down to 12 px above the
    brows (a crop reaching beyond its photo, as AFLW2000-3D's are), runs ``edit`` (padded image ->
    edited image) and asserts that the band keeps its bytes while the face below it changed.
    Returns ``(edited image, band rows)``."""

    def check(image: np.ndarray, landmarks: np.ndarray, edit):
        band = int(np.min(landmarks[17:27, 1])) - 12
        padded = image.copy()
        padded[:band] = 0
        out = edit(padded)
        np.testing.assert_array_equal(out[:band], padded[:band])
        assert (out[band:] != padded[band:]).any(-1).sum() > 500
        return out, band

    return check
