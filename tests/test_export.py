"""face3d.export: the OBJ text is np.savetxt's, byte for byte, written faster."""

from __future__ import annotations

import io

import numpy as np
import pytest

from face3d.export import _rows, export_obj


def _savetxt(fmt: str, rows: np.ndarray) -> str:
    out = io.StringIO()
    np.savetxt(out, rows, fmt=fmt)
    return out.getvalue()


@pytest.mark.parametrize("n", [0, 1, 7, 8192, 8193, 20000])
def test_rows_match_savetxt(n):
    rng = np.random.default_rng(n)
    floats = rng.normal(scale=30.0, size=(n, 3))
    if n:
        floats[0] = (-0.0, 1e-9, -123456.7891234)
    ints = rng.integers(1, 10**6, size=(n, 6))
    assert _rows("v %.6f %.6f %.6f", floats, chunk=4096) == _savetxt("v %.6f %.6f %.6f", floats)
    assert _rows("f %d/%d %d/%d %d/%d", ints) == _savetxt("f %d/%d %d/%d %d/%d", ints)
    f32 = floats[:, :2].astype(np.float32)
    assert _rows("vt %.6f %.6f", f32.astype(np.float64)) == _savetxt("vt %.6f %.6f", f32)


def test_export_obj_writes_savetxts_lines(tmp_path):
    v = np.array([[0.0, 1.5, -2.25], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    f = np.array([[0, 1, 2], [1, 3, 2]])
    uv = np.random.default_rng(0).random((2, 3, 2)).astype(np.float32)
    path = export_obj(tmp_path / "m.obj", v, f, uv)
    t = np.arange(6).reshape(2, 3) + 1
    expect = (
        "# face3d export\n"
        + _savetxt("v %.6f %.6f %.6f", v)
        + _savetxt("vt %.6f %.6f", uv.reshape(-1, 2))
        + _savetxt("f %d/%d %d/%d %d/%d", np.stack([f + 1, t], -1).reshape(2, 6))
    )
    assert path.read_text() == expect
    plain = export_obj(tmp_path / "p.obj", v, f)
    assert plain.read_text() == "# face3d export\n" + _savetxt("v %.6f %.6f %.6f", v) + _savetxt(
        "f %d %d %d", f + 1
    )
