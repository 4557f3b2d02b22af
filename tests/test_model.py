"""MorphableModel on the real ICT model (integration) and on the tiny synthetic one."""

from __future__ import annotations

import tarfile

import numpy as np
import pytest
import torch

from face3d import ict
from face3d.camera import axis_angle_to_matrix, camera_rotation, project, to_camera
from face3d.errors import InputError
from face3d.model import MorphableModel


def test_tiny_model_shapes_and_checks(tiny_model_dir):
    m = MorphableModel.from_dir(tiny_model_dir, subset="full", use_cache=False)
    assert list(m.parameters()) == []  # buffers only
    v = m(torch.zeros(2, 3), torch.zeros(2, 2))
    assert v.shape == (2, 6, 3)
    with pytest.raises(ValueError, match="identity"):
        m(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="batch"):
        m(torch.zeros(2, 3), torch.zeros(3, 2))
    with pytest.raises(InputError, match="jawOpen, mouthSmile_L"):
        m.expression_vector({"smile": 1.0})
    m64 = m.to(torch.float64)
    assert m64(torch.zeros(1, 3, dtype=torch.float64)).dtype == torch.float64


@pytest.mark.integration
def test_zero_weights_give_template(ict_model):
    v = ict_model(torch.zeros(1, 100), torch.zeros(1, 53))
    torch.testing.assert_close(v[0], ict_model.template)
    assert ict_model.n_vertices == 11248 and ict_model.n_expression == 53
    # the nose tip sits near (0, 0.4, 13.1) cm as documented
    assert abs(float(v[0, :, 2].max()) - 13.1) < 0.3


@pytest.mark.integration
def test_identity_mode_zero_matches_obj(ict_model):
    source = ict.find_model_source()
    if source.is_dir():
        data = (source / "identity000.obj").read_bytes()
        tmpl = (source / "generic_neutral_mesh.obj").read_bytes()
    else:
        if not source.name.endswith((".tar.xz", ".tar", ".tar.gz")):
            pytest.skip("test reads tar archives or folders")
        wanted, got = {"identity000.obj", "generic_neutral_mesh.obj"}, {}
        with tarfile.open(source, "r|*") as tf:
            for member in tf:
                base = member.name.rsplit("/", 1)[-1]
                if base in wanted:
                    got[base] = tf.extractfile(member).read()
                    if len(got) == 2:
                        break
        data, tmpl = got["identity000.obj"], got["generic_neutral_mesh.obj"]

    def verts(b):
        return np.array(
            [
                [float(x) for x in line.split()[1:4]]
                for line in b.decode().splitlines()
                if line.startswith("v ")
            ]
        )

    expected = verts(data) - verts(tmpl)
    model = MorphableModel.from_dir(subset="full")
    one = torch.zeros(1, 100)
    one[0, 0] = 1.0
    got = (model(one) - model.template)[0].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)


@pytest.mark.integration
def test_expression_by_name_moves_the_right_vertices(ict_model):
    m = ict_model
    lm0 = m.landmarks(m(batch_size=1))[0]
    jaw = m.landmarks(m(expression=m.expression_vector({"jawOpen": 1.0})))[0]
    # chin (8) drops, forehead-side points (brows 17-26) stay
    assert float(jaw[8, 1] - lm0[8, 1]) < -1.0
    assert float((jaw[17:27] - lm0[17:27]).norm(dim=-1).max()) < 0.05
    smile = m.landmarks(m(expression=m.expression_vector({"mouthSmile_L": 1.0})))[0]
    d = smile - lm0
    # _L is the subject's left (+x): mouth corner 54 moves outward and up, corner 48 hardly moves
    assert float(d[54, 0]) > 0.2 and float(d[54, 1]) > 0.2
    assert float(d[48].norm()) < 0.5 * float(d[54].norm())


@pytest.mark.integration
def test_landmarks_are_the_documented_vertices(ict_model):
    v = ict_model(batch_size=2) + torch.randn(2, ict_model.n_vertices, 3)
    torch.testing.assert_close(ict_model.landmarks(v), v[:, list(ict.LANDMARK_IDS)])
    assert ict.LANDMARK_IDS[30] == 4857 and len(ict.LANDMARK_IDS) == 68


@pytest.mark.integration
def test_gradients_reach_identity_expression_and_pose(ict_model):
    ident = torch.zeros(1, 40, requires_grad=True)
    expr = torch.full((1, 53), 0.1, requires_grad=True)
    aa = torch.tensor([[0.1, 0.2, 0.0]], requires_grad=True)
    t = torch.tensor([[0.0, 0.0, 60.0]], requires_grad=True)
    verts = ict_model(ident, expr)
    cam = to_camera(verts, camera_rotation(axis_angle_to_matrix(aa)), t)
    uv = project(ict_model.landmarks(cam), torch.tensor([[800.0, 800.0, 128.0, 128.0]]))
    uv.square().sum().backward()
    for name, p in (("identity", ident), ("expression", expr), ("rotation", aa), ("translation", t)):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


@pytest.mark.integration
def test_subsets_and_regions(ict_model):
    full = MorphableModel.from_dir(subset="full", n_identity=10)
    assert full.n_vertices == 26719 and full.n_identity == 10
    assert int(full.faces.max()) < full.n_vertices
    assert int(ict_model.faces.max()) < 11248
    assert int(full.region_mask("teeth").sum()) == 21450 - 17039 + 1
    with pytest.raises(InputError, match="subset"):
        MorphableModel.from_dir(subset="torso")
