"""face3d.io: image reading (16-bit grey) and the resumable JSONL stream used by the benchmarks."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from face3d.io import encode_png, list_images, read_image, resume_jsonl, write_image


def test_list_images_takes_every_image_suffix_of_a_folder(tmp_path):
    for name in ("a.jpg", "b.PNG", "c.bmp", "d.webp", "e.tif", "sub/f.tiff"):  # listing reads no pixels
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).touch()
    (tmp_path / "notes.txt").write_text("not an image")
    images, problems = list_images([tmp_path, tmp_path / "missing.jpg"])
    assert sorted(p.name for p in images) == ["a.jpg", "b.PNG", "c.bmp", "d.webp", "e.tif", "f.tiff"]
    assert problems == [(str(tmp_path / "missing.jpg"), "no such file or folder")]


def test_resume_jsonl_keeps_or_clears(tmp_path):
    path = tmp_path / "sub" / "bench.jsonl"
    assert resume_jsonl(path, resume=True) == []  # nothing yet; folder created
    path.write_text(json.dumps({"a": 1}) + "\n\n" + json.dumps({"a": 2}) + "\n")
    assert resume_jsonl(path, resume=True) == [{"a": 1}, {"a": 2}]
    assert resume_jsonl(path, resume=False) == [] and not path.exists()


def test_16_bit_grey_png_is_scaled_to_8_bits_not_clipped(tmp_path):
    """A 16-bit PNG (PIL mode I;16) reads as the same picture as its 8-bit version: PIL's own RGB
    conversion clips it to white, which made faces undetectable."""
    from PIL import Image
    from skimage import data

    grey8 = data.astronaut().mean(-1).round().astype(np.uint8)
    grey16 = grey8.astype(np.uint16) * 257  # the same picture, full 16-bit range
    Image.fromarray(grey16).save(tmp_path / "face16.png")
    assert Image.open(tmp_path / "face16.png").mode.startswith("I")
    img = read_image(tmp_path / "face16.png")
    assert img.shape == (*grey8.shape, 3) and img.dtype == np.uint8
    assert np.abs(img[..., 0].astype(int) - grey8).max() == 0
    assert (img[..., 0] == img[..., 2]).all()


@pytest.mark.parametrize(
    ("values", "mode", "expected"),
    [
        ([0, 257, 65535], "I;16", [0, 1, 255]),
        ([0, 100, 255], "I", [0, 100, 255]),  # 8-bit values in a 32-bit image: kept
        ([0, 1000, 65535], "I", [0, 4, 255]),
        ([0.0, 0.5, 1.0], "F", [0, 128, 255]),
    ],
)
def test_high_depth_grey_scaling(values, mode, expected):
    from face3d.io import to_uint8

    assert to_uint8(np.array([values]), mode).tolist() == [expected]


def test_png_is_lossless(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    write_image(tmp_path / "a.png", rgb)
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), rgb)
    from PIL import Image

    grey = rng.integers(0, 256, (9, 11), dtype=np.uint8)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(encode_png(grey)))), grey)
