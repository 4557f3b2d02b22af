"""The edit-and-back cycle: targets, untouched pixels, what it draws, the mouth region."""

from __future__ import annotations

import numpy as np
import pytest

from editing.cycle import edit_and_back, mouth_region, with_expression
from editing.expressions import parse_expressions


def _lips(cx=50.0, cy=60.0, w=20.0, h=8.0) -> np.ndarray:
    lm = np.zeros((68, 2))
    t = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    lm[48:60] = np.stack([cx + w / 2 * np.cos(t), cy + h / 2 * np.sin(t)], 1)
    return lm


def test_mouth_region_is_the_lips_grown_by_a_fraction_of_the_width():
    tight = mouth_region(_lips(), (100, 100), grow=0.0)
    ys, xs = np.nonzero(tight)
    assert 38 <= xs.min() <= 41 and 59 <= xs.max() <= 61 and 55 <= ys.min() <= 57
    assert np.pi * 10 * 4 < tight.sum() < 1.6 * np.pi * 10 * 4  # the ellipse, its edge pixels included
    grown = mouth_region(_lips(), (100, 100))  # 0.15 of 20 px: 3 px more on every side
    assert grown[tight].all() and np.nonzero(grown)[1].min() <= xs.min() - 2
    with pytest.raises(ValueError, match="68, 2"):
        mouth_region(np.zeros((5, 2)), (10, 10))


@pytest.mark.integration
def test_open_mouth_cycle_draws_the_interior_and_touches_nothing_else():
    from editing.api import EditContext
    from face3d.demo import example_image
    from face3d.errors import ModelNotFoundError
    from face3d.fit import fit_image

    try:
        ctx = EditContext.from_dir(refine="none")
    except ModelNotFoundError as err:
        pytest.skip(str(err))
    names = ctx.fit_model.expression_names
    image = example_image()
    face = fit_image(image, ctx.fit_model, ctx.fit_config, ctx.detector)[0]
    opened = ctx.editor.edit_face(image, face, parse_expressions("open_mouth", names))[0]
    face_open = with_expression(face, opened.target, ctx.editor.model)  # the opened photo, its exact fit
    cyc = edit_and_back(ctx.editor, opened.image, face_open, parse_expressions("neutral", names)[0])
    np.testing.assert_allclose(cyc.back.target, opened.target, atol=1e-6)  # back to its own weights
    np.testing.assert_allclose(cyc.back.source, cyc.there.target, atol=1e-6)
    assert cyc.there.synthesized.sum() < 0.2 * cyc.back.synthesized.sum()  # closed: little drawn
    assert cyc.back.synthesized.sum() > 100 and cyc.region[cyc.back.synthesized].all()
    assert np.array_equal(cyc.back.image[~cyc.region], opened.image[~cyc.region])
    # the closed photo's landmarks are its mesh's: the back edit does not take its (closed) mouth
    # for the opened photo's opening and draws the interior again
    from editing.mouth import photo_opening

    closed = with_expression(face_open, cyc.there.target, ctx.editor.model)
    shown = [photo_opening(f.landmarks_detected, (0, 0), image.shape[:2]).sum() for f in (face_open, closed)]
    assert shown[0] > 100 and shown[1] < 0.2 * shown[0], shown
    with pytest.raises(ValueError, match="expression: expected"):
        with_expression(face, np.zeros(3))
