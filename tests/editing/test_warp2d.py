"""The ``2d-warp`` baseline: its 2D expression model, the warp, its mouth fill, and the method run
end to end on the built-in example with the 3D model unavailable."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from editing.expressions import ARKIT_NAMES, parse_expressions
from editing.landmark_model import FRAME_POINTS, LandmarkModel
from face3d.render.texture_fill import LUMA_601

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def landmark_model() -> LandmarkModel:
    return LandmarkModel.load()


def test_neutral_target_gives_zero_offsets(landmark_model):
    from editing.warp2d import Warp2D

    assert landmark_model.names == ARKIT_NAMES
    assert np.array_equal(landmark_model.offsets(np.zeros(len(ARKIT_NAMES))), np.zeros((68, 2)))
    warp = Warp2D(landmark_model)
    lm = landmark_model.reference * 80.0 + 200.0
    frame = landmark_model.frame(lm)
    for text in ("neutral", "mouthSmile_L=0", "AU12=0"):
        spec = parse_expressions(text, ARKIT_NAMES)[0]
        source, target, dst = warp.target_landmarks(lm, spec, frame)
        assert np.array_equal(source, target) and np.allclose(dst, lm)


def test_happy_moves_the_mouth_corners_outward_and_up(landmark_model):
    w = parse_expressions("happy", ARKIT_NAMES)[0].target(ARKIT_NAMES)
    d = landmark_model.offsets(w)  # normalised frame: x right, y down, unit = inter-ocular distance
    assert d[48, 0] < -0.05 and d[54, 0] > 0.05  # image-left corner left, image-right corner right
    assert d[48, 1] < -0.05 and d[54, 1] < -0.05  # both up
    jaw = landmark_model.offsets(parse_expressions("jawOpen=1", ARKIT_NAMES)[0].target(ARKIT_NAMES))
    assert jaw[8, 1] > 0.3 and jaw[66, 1] > jaw[62, 1] + 0.3  # the chin drops, the lips part
    assert np.allclose(landmark_model.offsets(2 * w), 2 * d)  # linear in the weights


def test_the_face_frame_is_the_similarity_of_its_landmarks(landmark_model):
    angle, scale, shift = 0.3, 57.0, np.array([120.0, 80.0])
    R = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    lm = scale * landmark_model.reference @ R.T + shift
    lm[48:] += 5.0  # the mouth is not part of the frame
    frame = landmark_model.frame(lm)
    assert frame.scale == pytest.approx(scale) and np.allclose(frame.rotation, R)
    ref = landmark_model.reference[list(FRAME_POINTS)]
    assert np.allclose(frame.to_frame(frame.to_image(ref)), ref)


def test_the_asset_is_the_frontal_projection_of_the_ict_model(landmark_model):
    from face3d.errors import ModelNotFoundError
    from face3d.model import MorphableModel

    try:
        model = MorphableModel.from_dir(subset="full")
    except ModelNotFoundError as err:
        pytest.skip(f"ICT model not available: {err}")
    path = ROOT / "scripts" / "rebuild" / "build_landmark_model.py"
    spec = importlib.util.spec_from_file_location("build_landmark_model", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    built, _ = script.build(model)
    assert np.allclose(built.basis, landmark_model.basis, atol=1e-5)
    assert np.allclose(built.reference, landmark_model.reference, atol=1e-5)
    assert 0.0 < landmark_model.upper_teeth < 0.1 and 0.0 < landmark_model.lower_teeth < 0.1


def test_the_smooth_lips_pass_through_the_landmarks():
    from editing.mouth2d import catmull_rom

    pts = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 1.5], [3.0, 1.0], [4.0, 0.0]])
    curve = catmull_rom(pts, steps=4)
    assert np.allclose(curve[::4], pts) and len(curve) == 17


# ------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def example_edit(no_3d_model):
    from editing.api import EditContext, edit_image
    from face3d.demo import example_image

    image = example_image()
    ctx = EditContext.from_dir(method="2d-warp")
    specs = parse_expressions("happy,surprise,open_mouth", ARKIT_NAMES)
    return image, ctx, specs, edit_image(image, specs, ctx)


def test_2d_warp_edits_without_the_3d_model(example_edit):
    image, ctx, specs, result = example_edit
    assert ctx.fit_model is None and ctx.editor is None and ctx.regressor is None
    assert result.labels == ["happy", "surprise", "open_mouth"]
    face, edits = result.faces[0]
    assert not hasattr(face, "fit") and face.landmark_source == "dlib"
    for label, e in zip(result.labels, edits, strict=True):
        out = result.outputs[label]
        changed = (out != image).any(-1)
        assert changed.sum() > 2000, label  # a real edit, not the photo back
        assert not (changed & ~e.region).any(), label  # byte-identical outside the face region
        assert np.array_equal(out[~e.region], image[~e.region])
        assert e.timings_ms["warp_2d"] < 1000


def test_open_mouth_leaves_no_black_or_flat_hole(example_edit):
    from editing.mouth2d import opening_polygon
    from editing.warp2d import polygon_mask

    image, ctx, specs, result = example_edit
    face, edits = result.faces[0]
    e = edits[2]
    lm = face.landmarks_detected
    _, _, dst = ctx.baseline.target_landmarks(lm, specs[2], ctx.baseline.model.frame(lm))
    opening = polygon_mask(image.shape[:2], opening_polygon(dst))
    assert opening.sum() > 300 and e.synthesized.sum() > 100
    assert not (e.synthesized & ~opening).any()  # drawn only inside the lips
    luma = result.outputs["open_mouth"][opening].astype(np.float64) @ np.array(LUMA_601)
    assert (luma < 8).mean() < 0.05  # no black hole
    assert luma.std() > 10  # nor a flat one: teeth, a socket darkening with depth
    drawn = result.outputs["open_mouth"][e.synthesized].astype(np.float64)
    assert drawn[:, 0].mean() > drawn[:, 2].mean()  # the socket is a warm dark red, not grey


def test_compare_runs_2d_warp_on_its_own_landmarks(example_edit):
    from editing.compare import run
    from editing.result import ImageEdit
    from editing.warp2d import Warp2D

    image, ctx, specs, result = example_edit
    assert run.parse_methods("3d,2d-warp") == ["3d", "2d-warp"]
    bundles = run.check_methods(["3d", "2d-warp"])
    assert set(bundles) == {"2d-warp"} and isinstance(bundles["2d-warp"], Warp2D)
    base = ImageEdit(dict(result.outputs), result.faces, result.labels)
    outputs = run.method_outputs("2d-warp", bundles["2d-warp"], image, base, specs)
    assert all(np.array_equal(outputs[k], result.outputs[k]) for k in result.labels)
    with pytest.raises(ValueError, match="specs"):
        run.method_outputs("2d-warp", bundles["2d-warp"], image, base)


def test_cli_edit_2d_warp(example_edit, tmp_path):
    import json

    from face3d.cli import main
    from face3d.io import write_image

    image = example_edit[0]
    write_image(tmp_path / "in.png", image)
    code = main(["edit", str(tmp_path / "in.png"), "--method", "2d-warp", "--expression", "smile",
                 "--out", str(tmp_path / "out")])  # fmt: skip
    assert code == 0
    record = json.loads((tmp_path / "out" / "in_smile.json").read_text())
    assert (
        record["faces"][0]["yaw"] is None and record["faces"][0]["target_expression"]["mouthSmile_L"] == 0.8
    )


def test_2d_warp_leaves_a_padding_band_untouched(example_edit, padding_kept):
    from editing.api import edit_image

    image, ctx, specs, result = example_edit
    landmarks = result.faces[0][0].landmarks_detected
    padding_kept(image, landmarks, lambda padded: edit_image(padded, specs[1:2], ctx).outputs["surprise"])
