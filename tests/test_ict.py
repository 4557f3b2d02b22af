"""The ICT loader: folder and archives, cache, error messages."""

from __future__ import annotations

import shutil
import tarfile
import zipfile

import numpy as np
import pytest

from face3d import ict
from face3d.errors import ModelFormatError, ModelNotFoundError


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FACE3D_CACHE_DIR", str(tmp_path / "cache"))


def _same(a: ict.ICTArrays, b: ict.ICTArrays) -> None:
    for name in ("template", "identity", "expression", "faces", "face_uvs", "uvs", "face_polygon"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.expression_names == b.expression_names


def test_folder_parse(tiny_model_dir):
    arr = ict.load_ict_arrays(tiny_model_dir, use_cache=False)
    assert arr.template.shape == (6, 3)
    assert arr.identity.shape == (3, 6, 3)
    assert arr.expression_names == ("jawOpen", "mouthSmile_L")
    # the quad is split in two triangles, the two triangles kept
    assert arr.faces.tolist() == [[0, 1, 2], [0, 2, 3], [1, 4, 5], [1, 5, 2]]
    assert arr.face_polygon.tolist() == [0, 0, 1, 2]
    assert arr.face_uvs.tolist()[2] == [1, 4, 5]
    # deltas are shape minus template
    np.testing.assert_allclose(arr.expression[0, 1], [0, -0.5, 0], atol=1e-6)
    np.testing.assert_allclose(arr.expression[0, 0], 0, atol=1e-6)


@pytest.mark.parametrize("kind", ["zip", "tar", "tar.gz", "tar.xz"])
def test_archives_match_folder(tiny_model_dir, tmp_path, kind):
    ref = ict.load_ict_arrays(tiny_model_dir, use_cache=False)
    root = tmp_path / "ICT-FaceKit-master"  # nested, as GitHub's zip download lays it out
    shutil.copytree(tiny_model_dir, root / "FaceXModel")
    (root / "README.md").write_text("not a model file")
    archive = tmp_path / f"model.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(archive, "w") as zf:
            for p in sorted(root.rglob("*")):
                zf.write(p, p.relative_to(tmp_path))
    else:
        mode = {"tar": "w", "tar.gz": "w:gz", "tar.xz": "w:xz"}[kind]
        with tarfile.open(archive, mode) as tf:
            tf.add(root, arcname=root.name)
    _same(ict.load_ict_arrays(archive, use_cache=False), ref)


def test_cache_roundtrip_and_reuse(tiny_model_dir, monkeypatch):
    first = ict.load_ict_arrays(tiny_model_dir)
    assert list(ict.cache_dir().glob("ict-*.npz"))

    def boom(*a, **k):
        raise AssertionError("parsed again despite a valid cache")

    monkeypatch.setattr(ict, "parse_model", boom)
    _same(ict.load_ict_arrays(tiny_model_dir), first)


def test_changed_model_is_reparsed(tiny_model_dir):
    ict.load_ict_arrays(tiny_model_dir)
    p = tiny_model_dir / "jawOpen.obj"
    text = p.read_text()
    assert "v 0.000000 0.000000 0.000000" in text
    p.write_text(text.replace("v 0.000000 0.000000 0.000000", "v 0.000000 -2.000000 0.000000"))
    arr = ict.load_ict_arrays(tiny_model_dir)
    np.testing.assert_allclose(arr.expression[0, 0], [0, -2.0, 0], atol=1e-6)


def test_truncated_obj_names_the_file(tiny_model_dir):
    p = tiny_model_dir / "identity001.obj"
    p.write_text("".join(p.read_text().splitlines(keepends=True)[:3]))
    with pytest.raises(ModelFormatError, match="identity001.obj"):
        ict.load_ict_arrays(tiny_model_dir, use_cache=False)


def test_missing_file_names_it(tiny_model_dir):
    (tiny_model_dir / "mouthSmile_L.obj").unlink()
    with pytest.raises(ModelFormatError, match="mouthSmile_L.obj"):
        ict.load_ict_arrays(tiny_model_dir, use_cache=False)


def test_missing_model_explains_how_to_get_it(tmp_path, monkeypatch):
    with pytest.raises(ModelNotFoundError, match="git clone https://github.com/ICT-VGL/ICT-FaceKit"):
        ict.find_model_source(tmp_path / "nowhere")
    # an empty folder on the search path is passed over, and nothing found says how to get it
    (tmp_path / "env-model").mkdir()
    monkeypatch.setattr(ict, "default_search_paths", lambda: [tmp_path / "env-model", tmp_path / "x.tar.xz"])
    with pytest.raises(ModelNotFoundError, match="--model-dir PATH or FACE3D_ICT_DIR"):
        ict.find_model_source(None)


def test_env_var_is_used(tiny_model_dir, monkeypatch):
    monkeypatch.setenv("FACE3D_ICT_DIR", str(tiny_model_dir.parent))
    assert ict.find_model_source(None) == tiny_model_dir
