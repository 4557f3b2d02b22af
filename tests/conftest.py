"""Shared fixtures: the real ICT model (integration; skipped when absent), a tiny synthetic
model folder (unit tests), and the shared data sets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def ict_model():
    """The real model, face + head subset (integration tests skip when it cannot be found)."""
    from face3d.errors import ModelNotFoundError
    from face3d.model import MorphableModel

    try:
        return MorphableModel.from_dir()
    except ModelNotFoundError as err:
        pytest.skip(f"ICT model not available: {err}")


@pytest.fixture(scope="session")
def aflw_dir() -> Path:
    d = SHARED_DATA / "aflw2000-3d-dev"
    if not d.is_dir():
        pytest.skip("../shared/data/aflw2000-3d-dev not available")
    return d


def _obj(verts: np.ndarray, faces_text: str = "") -> str:
    return "".join(f"v {x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in verts) + faces_text


@pytest.fixture
def tiny_model_dir(tmp_path: Path) -> Path:
    """A FaceXModel-shaped folder with 6 vertices, a quad and two triangles, 3 identity modes
    and 2 expressions, in the ICT file layout."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "FaceXModel"
    folder.mkdir()
    verts = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [2, 0, 0], [2, 1, 1]], dtype=float)
    faces = (
        "vt 0.1 0.1\nvt 0.9 0.1\nvt 0.9 0.9\nvt 0.1 0.9\nvt 1.5 0.2\nvt 1.6 0.8\n"
        "f 1/1 2/2 3/3 4/4\nf 2/2 5/5 6/6\nf 2/2 6/6 3/3\n"
    )
    (folder / "generic_neutral_mesh.obj").write_text("# tiny\n" + _obj(verts, faces))
    for i in range(3):
        (folder / f"identity{i:03d}.obj").write_text(_obj(verts + rng.normal(0, 0.1, verts.shape), faces))
    names = ["jawOpen", "mouthSmile_L"]
    for name in names:
        delta = np.zeros_like(verts)
        delta[names.index(name) + 1, 1] = -0.5
        (folder / f"{name}.obj").write_text(_obj(verts + delta, faces))
    (folder / "vertex_indices.json").write_text(json.dumps({"expressions": names}))
    return folder
