"""Fixtures shared by the editing tests."""

from __future__ import annotations

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
