"""3D-guided editing: own-expression round trip, smile direction, background, profile faces."""

from __future__ import annotations

import numpy as np
import pytest

from editing.compare.quality import box_slices, psnr
from editing.expressions import ExpressionSpec, parse_expressions

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ctx():
    from editing.api import EditContext
    from face3d.errors import ModelNotFoundError

    try:
        return EditContext.from_dir(refine="none")  # the plain 3D path
    except ModelNotFoundError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def astronaut_fit(ctx):
    from face3d.demo import example_image
    from face3d.fit import fit_image

    image = example_image()
    faces = fit_image(image, ctx.fit_model, ctx.fit_config, ctx.detector)
    assert len(faces) == 1
    return image, faces


def test_own_expression_round_trip_is_near_lossless(ctx, astronaut_fit):
    """Editing to the fitted expression itself moves nothing: the photo comes back (>= 45 dB in
    the face box; nearly every pixel byte-identical)."""
    from editing.api import edit_fitted

    image, faces = astronaut_fit
    for spec in (
        ExpressionSpec(weights={}, mode="add", intensity=1.0, label="same"),
        parse_expressions("happy", ctx.fit_model.expression_names)[0].with_intensity(0.0),
    ):
        res = edit_fitted(image, faces, [spec], ctx)
        out = res.outputs[spec.label]
        box = box_slices(faces[0].fit.landmarks_fitted[0].numpy(), image.shape)
        assert psnr(out[box], image[box]) >= 45, spec.label
        assert (out != image).any(-1).mean() < 0.002, spec.label


def test_happy_moves_mouth_corners_out_and_up(ctx, astronaut_fit):
    from editing.api import edit_fitted
    from face3d.fit import fit_image
    from face3d.fit.pipeline import LandmarkConfig

    image, faces = astronaut_fit
    specs = parse_expressions("neutral,smile", ctx.fit_model.expression_names)
    res = edit_fitted(image, faces, specs, ctx)
    lm = {}
    dlib_points = LandmarkConfig(blend=0.0)  # measured by dlib's predictor, which follows the pixels
    for label in ("neutral", "smile"):
        refit = fit_image(
            res.outputs[label], ctx.fit_model, ctx.fit_config, ctx.detector, landmarks=dlib_points
        )
        assert refit, label
        lm[label] = refit[0].landmarks_detected
    n, s = lm["neutral"], lm["smile"]
    # the mouth widens (corners 48 and 54 move apart; how the widening splits between them
    # follows the fitted head pose) and both corners move up
    assert np.linalg.norm(s[54] - s[48]) > np.linalg.norm(n[54] - n[48]) + 2
    assert s[48, 0] <= n[48, 0] and s[54, 0] >= n[54, 0]
    assert s[48, 1] < n[48, 1] and s[54, 1] < n[54, 1]


def test_pixels_outside_the_face_are_byte_identical(ctx, astronaut_fit):
    from editing.api import edit_fitted

    image, faces = astronaut_fit
    specs = parse_expressions("surprise,open_mouth", ctx.fit_model.expression_names)
    res = edit_fitted(image, faces, specs, ctx)
    for k, spec in enumerate(specs):
        edit = res.faces[0][1][k]
        out = res.outputs[spec.label]
        assert out.shape == image.shape and out.dtype == np.uint8
        np.testing.assert_array_equal(out[~edit.region], image[~edit.region])
        assert (out != image).any(-1).sum() > 500  # and the face did change
        assert edit.region.mean() < 0.2


def test_padding_band_through_the_forehead_stays_untouched(ctx, astronaut_fit, padding_kept):
    """A crop padded with black that cuts through the forehead (as AFLW2000-3D's are): surprise
    raises the brows, but nothing moves into the band or out of it."""
    from editing.api import edit_fitted

    image, faces = astronaut_fit
    spec = parse_expressions("surprise", ctx.fit_model.expression_names)[0]
    out, band = padding_kept(
        image,
        faces[0].fit.landmarks_fitted[0].numpy(),
        lambda padded: edit_fitted(padded, faces, [spec], ctx).outputs["surprise"],
    )
    assert (out[band : band + 4] < 8).all(-1).mean() < 0.01  # and no black was pulled down


def test_profile_face_edits_without_touching_background(ctx, aflw_dir):
    from editing.api import edit_image
    from face3d.eval.aflw import load_aflw
    from face3d.io import read_image

    samples = [s for s in load_aflw(aflw_dir) if abs(s.yaw) >= 60 and abs(s.yaw) <= 80][:1]
    assert samples
    s = samples[0]
    image = read_image(s.image_path)
    specs = parse_expressions("happy", ctx.fit_model.expression_names)
    res = edit_image(image, specs, ctx, box=s.box)
    edit = res.faces[0][1][0]
    np.testing.assert_array_equal(res.outputs["happy"][~edit.region], image[~edit.region])
    assert 0 < edit.region.mean() < 0.5


def test_a_45_degree_nose_keeps_its_silhouette(ctx, aflw_dir):
    """image03209 (held-out, about 45°): the fitted far cheek overlaps the nose's edge; happy
    raises it. Without :func:`editing.warp.hold_behind_occluders` it dragged the nose's dark rim
    into a blob beside the nose (20 pixels darkened by more than 60 levels in the nose's box)."""
    from editing.api import edit_fitted
    from editing.compare.quality import fit_on_box
    from face3d.eval.aflw import load_aflw
    from face3d.io import read_image

    s = next(s for s in load_aflw(aflw_dir) if s.image_path.name == "image03209.jpg")
    image = read_image(s.image_path)
    face = fit_on_box(ctx, image, s.box)
    out = edit_fitted(image, [face], parse_expressions("happy", ctx.fit_model.expression_names), ctx)
    luma = np.array([0.299, 0.587, 0.114])
    darker = image.astype(float) @ luma - out.outputs["happy"].astype(float) @ luma > 60
    lm = face.fit.landmarks_fitted[0].numpy()
    (x0, y0), (x1, y1) = lm[27:36].min(0), lm[27:36].max(0)
    g = 0.3 * (x1 - x0)
    assert darker[int(y0) : int(y1) + 1, int(x0 - g) : int(x1 + g) + 1].sum() <= 5


def test_synthetic_edit_then_refit_recovers_mouth_weights(ctx, astronaut_fit):
    """Render a textured synthetic face with a known expression, edit it, re-fit the output."""
    import torch

    from face3d.camera import camera_rotation, euler_to_pose_matrix, to_camera
    from face3d.fit import fit_image
    from face3d.render import render

    image, faces = astronaut_fit
    ed = ctx.editor
    fit = faces[0].fit
    H = W = 320
    # the astronaut's texture, re-rendered frontal on a grey background with a known expression
    K0 = fit.intrinsics.clone()
    crop = torch.from_numpy(np.array(image, dtype=np.float32))[None] / 255.0
    texture, _ = ed.sample_texture(crop, fit.vertices_cam(ed.model), K0)
    names = ed.model.expression_names
    start = ed.model.expression_vector({"jawOpen": 0.05, "mouthSmile_L": 0.1, "mouthSmile_R": 0.1})
    R = camera_rotation(euler_to_pose_matrix(torch.tensor([0.15]), torch.tensor([0.0]), torch.tensor([0.0])))
    verts = to_camera(fit.vertices(ed.model, start), R, torch.tensor([[0.0, 1.0, 60.0]]))
    K = torch.tensor([[900.0, 900.0, (W - 1) / 2, (H - 1) / 2]])
    skin = ed.faces[: ed.n_skin]
    out = render(verts, skin, K, (H, W), texture=texture, corner_uvs=ed.skin_corner_uvs)
    bg = torch.full_like(out.image, 0.45)
    synth = (torch.where(out.mask[..., None] > 0, out.image, bg)[0].numpy() * 255 + 0.5).astype(np.uint8)

    target = ExpressionSpec(weights={"mouthSmile_L": 0.6, "mouthSmile_R": 0.6, "jawOpen": 0.3}, label="t")
    synth_faces = fit_image(synth, ctx.fit_model, ctx.fit_config, ctx.detector)
    assert synth_faces
    edited = ed.edit_face(synth, synth_faces[0], [target])[0].image
    refit = fit_image(edited, ctx.fit_model, ctx.fit_config, ctx.detector)
    assert refit
    got = refit[0].fit.expression[0].numpy()
    want = target.target(names)
    mouth = [i for i, n in enumerate(names) if n.startswith(("mouth", "jaw"))]
    err = np.abs(got[mouth] - want[mouth])
    assert float(err.mean()) < 0.1, float(err.mean())


@pytest.mark.parametrize("refine", ["none", "auto"])
def test_a_greyscale_photo_stays_grey(ctx, astronaut_fit, refine):
    """An opened mouth in a black-and-white photo is drawn in grey (not the flat red interior),
    with the texture generator's clean-up too."""
    from editing.api import EditContext, edit_fitted

    image, faces = astronaut_fit
    grey = np.repeat(np.round(image @ np.array([0.299, 0.587, 0.114]))[..., None], 3, -1).astype(np.uint8)
    run = ctx if refine == "none" else EditContext.from_dir(refine="auto")
    specs = parse_expressions("surprise", run.fit_model.expression_names)
    res = edit_fitted(grey, faces, specs, run)
    out = res.outputs["surprise"].astype(int)
    assert (out != grey).any(-1).sum() > 500  # the face did change
    assert (out.max(-1) - out.min(-1)).max() == 0


def test_an_opened_mouth_is_drawn_inside_the_lips_and_is_no_hole(ctx, astronaut_fit):
    """Only the interior the photo never showed is drawn, inside the target's inner lips (grown by
    the opening's margin), and it reads as a mouth: neither black nor one flat colour."""
    from editing.api import edit_fitted
    from editing.mouth import mouth_opening

    image, faces = astronaut_fit
    specs = parse_expressions("open_mouth", ctx.fit_model.expression_names)
    edit = edit_fitted(image, faces, specs, ctx).faces[0][1][0]
    synth = edit.synthesized
    assert synth.sum() > 100
    from face3d.render import rasterize

    ed = ctx.editor
    whole = (0, 0, image.shape[1], image.shape[0])
    _, _, _, v_tgts, (x0, y0, x1, y1), K = ed._geometry(faces[0], specs, whole)
    frags = rasterize(v_tgts[0], ed.faces, K, (y1 - y0, x1 - x0), ed.config.render)[0]
    size = float((frags.pix_to_face >= 0).sum()) ** 0.5  # the face size the editor uses
    lips = mouth_opening(ed.model.landmarks(v_tgts[0]), K, (y1 - y0, x1 - x0), size)
    assert lips[synth[y0:y1, x0:x1]].all()
    luma = edit.image[synth] @ np.array([0.299, 0.587, 0.114])
    assert luma.mean() > 25 and luma.std() > 5
    assert (edit.image[synth].max(-1) > 8).all()  # no black pixel


def test_teeth_the_photo_shows_are_moved_not_drawn_over(ctx, astronaut_fit):
    """The demo photo smiles with its teeth showing: happy opens the model's lips where the photo's
    own detected inner lips are apart, so nothing is drawn (43 pixels of drawn throat, slivers
    over her teeth, before the edit read the photo's opening); a wider opening draws only outside
    it, in parts at least 3 px wide."""
    from editing.api import edit_fitted
    from editing.mouth import MIN_DRAWN_PX, drawable

    image, faces = astronaut_fit
    specs = parse_expressions("happy,open_mouth", ctx.fit_model.expression_names)
    happy, wide = edit_fitted(image, faces, specs, ctx).faces[0][1]
    assert happy.synthesized.sum() == 0
    assert wide.synthesized.sum() > 100
    assert np.array_equal(drawable(wide.synthesized), wide.synthesized)  # nothing thin or tiny
    sliver = np.zeros((20, 20), bool)
    sliver[5, 2:18] = sliver[6, 2:18] = True  # 2 px wide
    dot = np.zeros((20, 20), bool)
    dot[8:11, 8:11] = True  # 3 x 3, under MIN_DRAWN_PX
    block = np.zeros((20, 20), bool)
    block[4:9, 4:9] = True
    assert MIN_DRAWN_PX > 9
    assert not drawable(sliver).any() and not drawable(dot).any()
    assert np.array_equal(drawable(block | sliver), block)
    blob = np.zeros((20, 20), bool)
    blob[8:12, 8:12] = True  # 4 x 4: drawn on a small face, a speck on a face of 250 px
    assert np.array_equal(drawable(blob), blob) and np.array_equal(drawable(blob, 150.0), blob)
    assert not drawable(blob, 250.0).any() and np.array_equal(drawable(block, 250.0), block)


def test_the_warp_moves_the_photos_own_pixels(ctx, astronaut_fit):
    """Away from the drawn interior every changed pixel is a resampling of the photo: its colour
    lies within the range of the photo's pixels a few pixels around it."""
    import cv2

    from editing.api import edit_fitted

    image, faces = astronaut_fit
    specs = parse_expressions("smile", ctx.fit_model.expression_names)
    edit = edit_fitted(image, faces, specs, ctx).faces[0][1][0]
    changed = (edit.image != image).any(-1) & ~edit.synthesized
    assert changed.sum() > 1000
    k = np.ones((9, 9), np.uint8)
    lo, hi = cv2.erode(image, k).astype(int), cv2.dilate(image, k).astype(int)
    out = edit.image.astype(int)
    inside = ((out >= lo - 12) & (out <= hi + 12)).all(-1)  # bicubic overshoot and shading aside
    assert inside[changed].mean() > 0.995


def test_shading_strength_scales_the_change_of_shading(ctx, astronaut_fit):
    """Strength 0 is the warp alone (byte-identical to shading off); the full ratio changes the
    warped skin more than the default half-strength one; out-of-range strengths are refused."""
    import dataclasses

    from editing.api import edit_fitted
    from editing.edit3d import EditConfig

    image, faces = astronaut_fit
    spec = parse_expressions("happy", ctx.fit_model.expression_names)[0]
    base = ctx.editor.config
    outs = {}
    try:
        for name, cfg in {
            "off": dataclasses.replace(base, shading=False),
            "zero": dataclasses.replace(base, shading_strength=0.0),
            "half": dataclasses.replace(base, shading_strength=0.5),
            "full": dataclasses.replace(base, shading_strength=1.0),
        }.items():
            ctx.editor.config = cfg
            outs[name] = edit_fitted(image, faces, [spec], ctx).outputs[spec.label].astype(np.int16)
    finally:
        ctx.editor.config = base
    assert (outs["zero"] == outs["off"]).all()
    half, full = np.abs(outs["half"] - outs["off"]).sum(), np.abs(outs["full"] - outs["off"]).sum()
    assert 0 < half < full
    with pytest.raises(ValueError, match="shading_strength"):
        EditConfig(shading_strength=1.5)


def test_a_large_face_is_edited_at_a_smaller_scale_and_applied_at_full_resolution(ctx, astronaut_fit):
    """``max_face_px``: the astronaut's face (93 px of landmarks) edited at 64 px matches the
    full-resolution edit (35.6 / 33.5 dB in the face box when measured), keeps every byte outside
    the edit region and gives the photo back at its own expression."""
    from editing.api import EditContext, edit_fitted
    from editing.edit3d import EditConfig, Editor3D

    image, faces = astronaut_fit
    small = EditContext(ctx.fit_model, Editor3D(ctx.editor.model, EditConfig(max_face_px=64)), ctx.fit_config)
    specs = parse_expressions("surprise,open_mouth", ctx.fit_model.expression_names)
    same = parse_expressions("surprise", ctx.fit_model.expression_names)[0].with_intensity(0.0)
    full, capped = edit_fitted(image, faces, specs, ctx), edit_fitted(image, faces, specs, small)
    box = box_slices(faces[0].fit.landmarks_fitted[0].numpy(), image.shape)
    for k, label in enumerate(full.labels):
        out, edit = capped.outputs[label], capped.faces[0][1][k]
        assert psnr(out[box], full.outputs[label][box]) > 30, label
        assert not np.array_equal(out, full.outputs[label]), label  # made at the smaller scale
        assert psnr(out[box], image[box]) < 25, label  # it did edit
        assert np.array_equal(out[~edit.region], image[~edit.region]), label
        assert edit.synthesized.any() == full.faces[0][1][k].synthesized.any(), label
        x0, y0, x1, y1 = edit.crop
        assert edit.render.shape == (y1 - y0, x1 - x0, 3)
    assert np.array_equal(edit_fitted(image, faces, [same], small).outputs[same.label], image)
    with pytest.raises(ValueError, match="max_face_px"):
        EditConfig(max_face_px=10)
