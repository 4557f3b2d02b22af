"""Editor3D.motion_field: the motion the 3D edit samples the photo through (the 2D baseline's teacher)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from editing.expressions import ExpressionSpec, parse_expressions


@pytest.fixture(scope="module")
def plain(request):
    """An editor without shading (so the warp alone changes the skin) and the astronaut's fit."""
    from editing.api import EditContext
    from editing.edit3d import Editor3D
    from face3d.demo import example_image
    from face3d.errors import ModelNotFoundError
    from face3d.fit import fit_image

    try:
        ctx = EditContext.from_dir(refine="none")
    except ModelNotFoundError as err:
        pytest.skip(str(err))
    editor = Editor3D(ctx.editor.model, dataclasses.replace(ctx.editor.config, shading=False))
    image = example_image()
    return editor, image, fit_image(image, ctx.fit_model, ctx.fit_config, ctx.detector)[0]


def test_the_own_expression_has_no_motion(plain):
    editor, image, face = plain
    (field,) = editor.motion_field(image, face, [ExpressionSpec({}, "add", 1.0, "same")])
    assert field.motion.shape == (field.crop[3] - field.crop[1], field.crop[2] - field.crop[0], 2)
    assert np.abs(field.motion).max() < 0.05


def test_the_motion_reproduces_the_edit(plain):
    """Warping the photo's work crop through the motion gives edit_face's pixels wherever the edit
    did not draw the mouth interior; nothing moves outside the region."""
    from editing.warp import warp_image

    editor, image, face = plain
    specs = parse_expressions("happy", editor.model.expression_names)
    (field,) = editor.motion_field(image, face, specs)
    (edit,) = editor.edit_face(image, face, specs)
    assert field.crop == edit.crop and np.array_equal(field.region, edit.region)
    assert np.allclose(field.target, edit.target)
    x0, y0, x1, y1 = field.crop
    assert np.abs(field.motion).max() > 1.0  # a smile moves pixels
    assert np.abs(field.motion[~field.region[y0:y1, x0:x1]]).max() == 0
    warped = warp_image(np.ascontiguousarray(image[y0:y1, x0:x1]), field.motion)
    out = edit.image[y0:y1, x0:x1].astype(int)
    keep = ~edit.synthesized[y0:y1, x0:x1]
    close = (np.abs(warped.astype(int) - out) <= 2).all(-1)
    assert close[keep].mean() > 0.995
