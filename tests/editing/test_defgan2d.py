"""``--method 2d``: the DefGAN baseline is 2D-only (no 3D model, no fit) and edits inside the 2D
landmarks' face region, byte-identical outside it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from editing.expressions import ARKIT_NAMES, parse_expressions

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def edit_2d(no_3d_model):
    from editing.api import EditContext, edit_image
    from face3d.demo import example_image

    image = example_image()
    ctx = EditContext.from_dir(method="2d")
    specs = parse_expressions("happy,surprise,open_mouth", ARKIT_NAMES)
    return image, ctx, specs, edit_image(image, specs, ctx)


def test_2d_edits_without_the_3d_model(edit_2d):
    from editing.defgan2d import DefGAN2D

    image, ctx, specs, result = edit_2d
    assert ctx.fit_model is None and ctx.editor is None and ctx.regressor is None
    assert isinstance(ctx.baseline, DefGAN2D)
    face, edits = result.faces[0]
    assert not hasattr(face, "fit") and face.landmark_source == "dlib"
    _, region, _ = ctx.baseline.warp.face_region(image.shape[:2], face.landmarks_detected)
    for label, e in zip(result.labels, edits, strict=True):
        out = result.outputs[label]
        assert np.array_equal(e.region, region)  # the 2D landmarks' region, the same as 2d-warp's
        changed = (out != image).any(-1)
        assert changed.sum() > 500, label  # the shipped generators edit
        assert np.array_equal(out[~e.region], image[~e.region])
        assert not e.source.any()  # the source is taken as neutral
        assert np.allclose(e.target, specs[result.labels.index(label)].apply(e.source, ARKIT_NAMES))


def test_opened_mouth_gets_the_shared_interior(edit_2d):
    """The flow opens the lips; what the photo never showed inside them is drawn (the 2d-warp's
    fill), only inside the target's inner lips, and the photo's own teeth are kept, not painted over."""
    from editing.mouth2d import opening_polygon
    from editing.warp2d import polygon_mask

    image, ctx, specs, result = edit_2d
    face, edits = result.faces[0]
    lm = face.landmarks_detected
    e = edits[result.labels.index("open_mouth")]
    _, _, dst = ctx.baseline.warp.target_landmarks(lm, specs[2], ctx.baseline.warp.model.frame(lm))
    opening = polygon_mask(image.shape[:2], opening_polygon(dst))
    assert e.synthesized.sum() > 100 and not (e.synthesized & ~opening).any()
    luma = result.outputs["open_mouth"][opening].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    assert luma.std() > 10  # teeth and a socket, not a flat hole nor stretched lips
    assert (opening & ~e.synthesized).sum() > 50  # the photo's own teeth, moved, stay


def test_compare_runs_2d_on_its_own_landmarks(edit_2d):
    from editing.compare import run
    from editing.result import ImageEdit

    image, ctx, specs, result = edit_2d
    bundles = run.check_methods(["2d"])
    base = ImageEdit(dict(result.outputs), result.faces, result.labels)
    outputs = run.method_outputs("2d", bundles["2d"], image, base, specs)
    assert all(np.array_equal(outputs[k], result.outputs[k]) for k in result.labels)
    with pytest.raises(ValueError, match="specs"):
        run.method_outputs("2d", bundles["2d"], image, base)


def test_condition_reaches_the_flow(edit_2d):
    """A zero target (the neutral source itself) moves fewer pixels than a smile, and the two edits
    differ from each other by more than the neutral one moves the photo: the condition is not
    lost on the way (an earlier baseline's flow ignored it: its edits were alike)."""
    image, ctx, specs, _ = edit_2d
    from editing.warp2d import dlib_landmarks

    face = dlib_landmarks(image, _largest(ctx, image))
    same = parse_expressions("neutral", ARKIT_NAMES)
    smile, neutral = ctx.baseline.edit_face(image, face, specs[:1] + same)
    moved = [np.abs(e.image.astype(int) - image.astype(int)).sum() for e in (smile, neutral)]
    apart = np.abs(smile.image.astype(int) - neutral.image.astype(int)).sum()
    # measured 218,076 / 110,910 moved and 206,796 apart (the demo photo already smiles)
    assert moved[0] > 1.5 * moved[1] and apart > moved[1], (moved, apart)


def _largest(ctx, image):
    from editing.warp2d import landmark_faces
    from face3d.fit.pipeline import detect_and_landmark

    return landmark_faces(detect_and_landmark(image, ctx.detector, 1, None, None))[0]


def test_wrong_bundle_and_landmarks_raise():
    from editing.defgan2d import DefGAN2D
    from editing.gan.checkpoint import GeneratorBundle

    tex = GeneratorBundle("texture", torch.nn.Identity(), None, 128, {})
    with pytest.raises(ValueError, match="2D .deform . texture. bundle"):
        DefGAN2D(tex)
    two_d = dataclasses.replace(tex, kind="2d")
    with pytest.raises(ValueError, match=r"expected \(68, 2\)"):
        DefGAN2D(two_d).edit_face(np.zeros((8, 8, 3), np.uint8), np.zeros((5, 2)), [])


def test_2d_leaves_a_padding_band_untouched(edit_2d, padding_kept):
    from editing.api import edit_image

    image, ctx, specs, result = edit_2d
    landmarks = result.faces[0][0].landmarks_detected
    padding_kept(image, landmarks, lambda padded: edit_image(padded, specs[:1], ctx).outputs[specs[0].label])
