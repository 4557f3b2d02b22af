"""The FER2013 expression classifier: persistence, input handling, the FER-style crop and the
shipped checkpoint on a known FER2013 test image (training: tests/editing/train/test_fer_train.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from editing.compare.fer import DEFAULT_DIR, FerClassifier, FerConfig, crop_box, fer_crop
from face3d.errors import Face3DError

FER_NPZ = Path(__file__).resolve().parents[4] / "shared" / "data" / "fer2013" / "fer2013_48.npz"
TINY = FerConfig(channels=(4, 8), convs_per_stage=1, feature_dim=8)

# x_test indices the shipped model (assets/fer) gets right with p > 0.97
KNOWN = {2845: "happy", 5489: "surprise"}


@pytest.fixture
def tiny(tmp_path) -> FerClassifier:
    import torch

    torch.manual_seed(0)
    clf = FerClassifier(TINY)
    for p in clf.net.parameters():  # make BN running stats non-trivial too
        p.data.normal_(0, 0.3)
    clf.net.body[1].running_mean.normal_(0, 0.1)
    return clf


def test_save_load_round_trip(tiny, tmp_path):
    faces = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    tiny.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["channels"] == [4, 8]
    back = FerClassifier.from_pretrained(tmp_path / "m")
    assert back.config == TINY
    np.testing.assert_array_equal(back.predict_batch(faces), tiny.predict_batch(faces))
    np.testing.assert_array_equal(back.features(faces), tiny.features(faces))


def test_missing_or_corrupt_files_are_named(tiny, tmp_path):
    with pytest.raises(Face3DError, match="config.json: FER classifier checkpoint file missing"):
        FerClassifier.from_pretrained(tmp_path / "nothing")
    tiny.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "weights.pt").write_bytes(b"not a torch file")
    with pytest.raises(Face3DError, match="weights.pt: corrupt FER classifier weights"):
        FerClassifier.from_pretrained(tmp_path / "m")
    FerClassifier(FerConfig(channels=(4, 16), convs_per_stage=1, feature_dim=8)).save_pretrained(
        tmp_path / "m"
    )
    (tmp_path / "m" / "config.json").write_text(json.dumps(TINY.to_json()))
    with pytest.raises(Face3DError, match="weights do not match config.json"):
        FerClassifier.from_pretrained(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text('{"channels": [4], "bogus": 1}')
    with pytest.raises(Face3DError, match="config.json: invalid FER classifier config"):
        FerClassifier.from_pretrained(tmp_path / "m")


def test_predict_accepts_grey_and_rgb_crops(tiny):
    grey = np.random.default_rng(1).integers(0, 256, (48, 48), dtype=np.uint8)
    p = tiny.predict(grey)
    assert p.shape == (7,) and p.sum() == pytest.approx(1.0)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    np.testing.assert_allclose(tiny.predict(rgb), p, atol=1e-6)
    big = np.repeat(np.repeat(rgb, 2, axis=0), 2, axis=1)  # (96, 96, 3) is resized to 48
    assert tiny.predict(big).shape == (7,)
    assert tiny.features(grey).shape == (1, 8) and tiny.features([grey, grey]).shape == (2, 8)
    with pytest.raises(ValueError, match="uint8"):
        tiny.predict(grey.astype(np.float32))


def test_fer_crop_frames_the_landmark_box():
    pts = np.array([[100.0 + 60 * (i % 2), 80.0 + 60 * (i // 34)] for i in range(68)])  # box 60 x 60
    cx, cy, side = crop_box(pts, scale=1.2, shift=0.15)
    assert (cx, side) == (130.0, 72.0) and cy == pytest.approx(110.0 - 9.0)
    image = np.zeros((300, 300, 3), np.uint8)
    image[round(cy) - 1 : round(cy) + 2, round(cx) - 1 : round(cx) + 2] = 255
    crop = fer_crop(image, pts)
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    y, x = np.unravel_index(np.argmax(crop), crop.shape)
    assert abs(y - 23.5) <= 1 and abs(x - 23.5) <= 1
    with pytest.raises(ValueError, match="68, 2"):
        fer_crop(image, pts[:5])


def test_shipped_classifier_knows_a_fer_test_image():
    if not FER_NPZ.is_file():
        pytest.skip(f"{FER_NPZ} not available")
    clf = FerClassifier.from_pretrained()  # offline: assets/fer
    assert (DEFAULT_DIR / "metrics.json").is_file()
    with np.load(FER_NPZ) as d:
        faces, labels = d["x_test"][list(KNOWN)], d["y_test"][list(KNOWN)]
    for face, label, name in zip(faces, labels, KNOWN.values(), strict=True):
        probs = clf.predict(face)
        assert clf.classes[int(label)] == name
        assert clf.label(probs) == name and probs.max() > 0.9
