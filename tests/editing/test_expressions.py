"""Expression presets, AU/ARKit spec parsing and interpolation (pure: no model is loaded)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from editing.expressions import (
    ACTION_UNITS,
    ARKIT_NAMES,
    AU_NAMES,
    ExpressionSpec,
    default_presets_path,
    facs_weights,
    load_presets,
    parse_expression,
    parse_expressions,
    sanitize_label,
    weights_to_vector,
)
from face3d.errors import InputError

NAMES = ARKIT_NAMES
IDX = {n: i for i, n in enumerate(NAMES)}


@pytest.fixture(scope="module")
def presets():
    return load_presets()


def vec(**weights):
    return weights_to_vector(weights, NAMES)


# ------------------------------------------------------------------ tables and presets
def test_names_match_model_file(ict_model):
    assert len(NAMES) == 53 and len(set(NAMES)) == 53
    assert ict_model.expression_names == NAMES  # the order of the model's vertex_indices.json


def test_action_units_use_valid_names():
    assert set(AU_NAMES) == set(ACTION_UNITS)
    for shapes in ACTION_UNITS.values():
        assert shapes and set(shapes) <= set(NAMES)
    assert ACTION_UNITS[12] == ("mouthSmile_L", "mouthSmile_R")
    assert ACTION_UNITS[30] == ("jawLeft",)


def test_presets_load_and_are_valid(presets):
    expected = {"neutral", "happy", "sad", "surprise", "anger", "disgust", "fear", "contempt"}
    expected |= {"smile", "open_mouth", "blink", "raised_brows"}
    assert expected <= set(presets)
    for weights in presets.values():
        for name, value in weights.items():
            assert name in NAMES
            assert 0.0 <= value <= 1.0
    assert presets["neutral"] == {}


def test_presets_follow_their_facs_recipe():
    data = json.loads(default_presets_path().read_text())
    assert data["source"] and data["notes"]
    for name, entry in data["presets"].items():
        recipe = facs_weights(entry["facs"]) if entry["facs"] else {}
        assert entry["weights"] == pytest.approx(recipe), name


def test_happy_is_emfacs_6_plus_12(presets):
    happy = presets["happy"]
    for shape in ("mouthSmile_L", "mouthSmile_R", "cheekSquint_L", "cheekSquint_R"):
        assert happy[shape] > 0
    assert presets["contempt"] == {"mouthSmile_R": 0.2, "mouthDimple_R": 0.2}


def test_facs_codes():
    assert facs_weights("1+2+5B+26") == pytest.approx(
        {"browInnerUp_L": 0.7, "browInnerUp_R": 0.7, "browOuterUp_L": 0.7, "browOuterUp_R": 0.7,
         "eyeWide_L": 0.4, "eyeWide_R": 0.4, "jawOpen": 0.35}
    )  # fmt: skip
    assert facs_weights("au12e+L6a") == {"cheekSquint_L": 0.2, "mouthSmile_L": 1.0, "mouthSmile_R": 1.0}
    assert facs_weights("26+27") == {"jawOpen": 0.7}  # max of 0.35 and 0.7


@pytest.mark.parametrize(
    "content, fragment",
    [
        (None, "not found"),
        ("{not json", "cannot read"),
        ('{"presets": {"x": {"weights": {"mouthSmileL": 0.5}}}}', "unknown ARKit shape"),
        ('{"presets": {"x": {"weights": {"jawOpen": 1.5}}}}', "in [0, 1]"),
        ('{"presets": []}', "'presets' object"),
        ('{"presets": {"R12": {"weights": {}}}}', "FACS"),
    ],
)
def test_bad_preset_file(tmp_path, content, fragment):
    path = tmp_path / "presets.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError) as info:
        load_presets(path)
    assert fragment in str(info.value) and str(path) in str(info.value)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------ parsing
def test_preset_spec(presets):
    spec = parse_expression("Happy", NAMES, intensity=0.5, presets=presets)
    assert spec.weights == presets["happy"] and spec.label == "happy"
    assert spec.mode == "replace" and spec.intensity == 0.5


def test_au_spec_maps_to_shapes(presets):
    spec = parse_expression("AU12=0.8,au6=0.5", NAMES, presets=presets)
    assert spec.weights == {
        "cheekSquint_L": 0.5,
        "cheekSquint_R": 0.5,
        "mouthSmile_L": 0.8,
        "mouthSmile_R": 0.8,
    }
    assert spec.label == "AU12-0.8_AU6-0.5"
    assert parse_expression("AU5=B", NAMES).weights == {"eyeWide_L": 0.4, "eyeWide_R": 0.4}
    assert parse_expression("AU12_R=0.3", NAMES).weights == {"mouthSmile_R": 0.3}
    assert parse_expression("R12=0.3", NAMES).weights == {"mouthSmile_R": 0.3}
    # two AUs on one shape: the larger value wins
    assert parse_expression("AU23=0.3,AU24=0.6", NAMES).weights == {"mouthPress_L": 0.6, "mouthPress_R": 0.6}


def test_arkit_and_mixed_specs():
    spec = parse_expression("mouthSmile_L=0.7, jawopen=0.3", NAMES)
    assert spec.weights == {"jawOpen": 0.3, "mouthSmile_L": 0.7}
    assert spec.label == "mouthSmile_L-0.7_jawOpen-0.3"
    mixed = parse_expression("AU12=0.8,mouthSmile_R=0.2,jawOpen=0.1", NAMES)
    # an explicit ARKit item overrides what an AU set on the same shape
    assert mixed.weights == {"jawOpen": 0.1, "mouthSmile_L": 0.8, "mouthSmile_R": 0.2}


def test_facs_code_spec():
    spec = parse_expression("R12A+R14A", NAMES, presets={})
    assert spec.weights == {"mouthDimple_R": 0.2, "mouthSmile_R": 0.2}
    assert spec.label == "FACS_R12A+R14A"


def test_parse_expressions_splitting(presets):
    specs = parse_expressions("happy,sad,surprise", NAMES, presets=presets)
    assert [s.label for s in specs] == ["happy", "sad", "surprise"]
    one = parse_expressions("AU12=0.8,AU6=0.5", NAMES, presets=presets)
    assert len(one) == 1 and one[0].label == "AU12-0.8_AU6-0.5"
    specs = parse_expressions("happy,AU12=0.8,sad,jawOpen=0.5", NAMES, presets=presets)
    assert [s.label for s in specs] == ["happy", "AU12-0.8_jawOpen-0.5", "sad"]
    specs = parse_expressions("AU12=0.8;jawOpen=0.5;blink", NAMES, intensity=0.3, mode="add", presets=presets)
    assert [s.label for s in specs] == ["AU12-0.8", "jawOpen-0.5", "blink"]
    assert all(s.intensity == 0.3 and s.mode == "add" for s in specs)
    with pytest.raises(InputError, match="expected one"):
        parse_expression("happy,sad", NAMES, presets=presets)


def _valid_presets_listed(msg, presets):
    return all(name in msg for name in presets)


def _valid_arkit_listed(msg):
    return ", ".join(NAMES) in msg


def _valid_aus_listed(msg):
    return all(f"AU{n} " in msg for n in ACTION_UNITS)


@pytest.mark.parametrize(
    "spec, check",
    [
        ("", "presets"),
        ("   ", "presets"),
        ("happy,,sad", "presets"),
        ("hapy", "presets"),
        ("AU13=0.5", "aus"),
        ("AU99", "aus"),
        ("AU26_L=0.5", "aus"),
        ("mouthSmile=0.5", "arkit"),
        ("=0.5", "arkit"),
        ("AU12=0.5=1", "arkit"),
        ("AU12=", "range"),
        ("jawOpen=abc", "range"),
        ("jawOpen=C", "range"),
        ("jawOpen=1.5", "range"),
        ("AU12=-0.1", "range"),
        ("AU12=nan", "range"),
        ("AU12=0.5,AU12=0.6", "twice"),
    ],
)
def test_bad_specs_raise_input_error(presets, spec, check):
    with pytest.raises(InputError) as info:
        parse_expressions(spec, NAMES, presets=presets)
    msg = str(info.value)
    assert "\n" not in msg
    if check == "presets":
        assert _valid_presets_listed(msg, presets) and "AU12=0.8" in msg
    elif check == "aus":
        assert _valid_aus_listed(msg)
    elif check == "arkit":
        assert _valid_arkit_listed(msg) and _valid_aus_listed(msg)
    elif check == "range":
        assert "[0, 1]" in msg
    else:
        assert "twice" in msg


@pytest.mark.parametrize(
    "kwargs, fragment",
    [({"intensity": 1.5}, "[0, 1]"), ({"intensity": -0.1}, "[0, 1]"), ({"mode": "blend"}, "replace, add")],
)
def test_bad_intensity_and_mode(presets, kwargs, fragment):
    with pytest.raises(InputError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        parse_expression("happy", NAMES, presets=presets, **kwargs)
    with pytest.raises(InputError):
        ExpressionSpec({"jawOpen": 0.5}, **kwargs)


def test_spec_validation():
    with pytest.raises(InputError, match="jawOpen"):
        ExpressionSpec({"jawOpen": 2.0})
    with pytest.raises(InputError, match="mouthSmile_L"):
        ExpressionSpec({"nope": 0.5}).apply(np.zeros(len(NAMES)), NAMES)
    with pytest.raises(InputError, match="shape"):
        ExpressionSpec({}).apply(np.zeros(5), NAMES)


# ------------------------------------------------------------------ apply
def test_intensity_interpolation_replace():
    source = vec(jawOpen=0.4, eyeBlink_L=0.2)
    spec = ExpressionSpec({"mouthSmile_L": 0.8, "jawOpen": 0.0}, intensity=0.0)
    np.testing.assert_allclose(spec.apply(source, NAMES), source)
    target = vec(mouthSmile_L=0.8)
    np.testing.assert_allclose(spec.with_intensity(1.0).apply(source, NAMES), target)
    np.testing.assert_allclose(spec.with_intensity(0.5).apply(source, NAMES), (source + target) / 2)


def test_add_mode_clamps():
    source = vec(jawOpen=0.8, mouthSmile_L=0.1)
    spec = ExpressionSpec({"jawOpen": 0.5, "mouthSmile_L": 0.3}, mode="add")
    out = spec.apply(source, NAMES)
    assert out[IDX["jawOpen"]] == 1.0
    assert out[IDX["mouthSmile_L"]] == pytest.approx(0.4)
    half = spec.with_intensity(0.5).apply(source, NAMES)
    assert half[IDX["jawOpen"]] == pytest.approx(1.0) and half[IDX["mouthSmile_L"]] == pytest.approx(0.25)


def test_apply_batched_numpy_and_torch():
    spec = ExpressionSpec({"eyeBlink_L": 1.0}, intensity=0.5)
    batch = np.stack([vec(), vec(eyeBlink_L=0.4)]).astype(np.float32)
    out = spec.apply(batch, NAMES)
    assert out.dtype == np.float32 and out.shape == batch.shape
    assert out[:, IDX["eyeBlink_L"]] == pytest.approx([0.5, 0.7])
    tensor = torch.as_tensor(batch)
    out_t = spec.apply(tensor, NAMES)
    assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch.float32
    np.testing.assert_allclose(out_t.numpy(), out, atol=1e-7)
    # a source outside [0, 1] is clamped too, even at intensity 0
    assert spec.with_intensity(0.0).apply(vec(jawOpen=1.5), NAMES)[IDX["jawOpen"]] == 1.0


def test_sanitize_label():
    assert sanitize_label("AU12=0.8 / x") == "AU12_0.8_x"
    assert sanitize_label("///") == "expression"
    long = sanitize_label("a" * 200)
    assert len(long) == 80 and long != sanitize_label("a" * 199)
