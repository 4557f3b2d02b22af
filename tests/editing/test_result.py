"""ImageEdit and combine: every face's edit to a target pasted inside its region only."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from editing.result import ImageEdit, combine


def _edit(value: int, region: np.ndarray) -> SimpleNamespace:
    return SimpleNamespace(image=np.full(region.shape + (3,), value, np.uint8), region=region)


def test_combine_pastes_each_face_inside_its_region_per_target():
    image = np.zeros((4, 6, 3), np.uint8)
    left, right = np.zeros((4, 6), bool), np.zeros((4, 6), bool)
    left[:, :2], right[:, 4:] = True, True
    faces = [("a", [_edit(10, left), _edit(20, left)]), ("b", [_edit(30, right), _edit(40, right)])]
    out = combine(image, faces, ["happy", "sad"])
    assert list(out) == ["happy", "sad"]
    assert (out["happy"][:, :2] == 10).all() and (out["happy"][:, 4:] == 30).all()
    assert (out["sad"][:, :2] == 20).all() and (out["sad"][:, 4:] == 40).all()
    assert (out["happy"][:, 2:4] == 0).all() and (image == 0).all()  # the input is not touched
    result = ImageEdit.from_faces(image, faces, ["happy", "sad"])
    assert result.faces is faces and result.labels == ["happy", "sad"]
    assert all(np.array_equal(result.outputs[k], out[k]) for k in out)
