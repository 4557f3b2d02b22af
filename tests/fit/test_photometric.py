"""Photometric refinement: synthetic recovery, gradients, fallback, a real photo, the CLI flag."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from face3d.camera import axis_angle_to_matrix, camera_rotation, euler_to_pose_matrix, project, to_camera
from face3d.fit import FitConfig, FitResult
from face3d.fit.appearance import sh_shading
from face3d.fit.photometric import PhotometricConfig, _Scene, refine_photometric
from face3d.render import render, vertex_normals

pytestmark = pytest.mark.integration

SIZE = 128
LIGHT = (0.8, 0.25, -0.15, -0.35, 0.0, 0.0, 0.0, 0.0, 0.0)  # side light: shading carries pose


def _fit(model, expression: torch.Tensor, yaw=15.0, rotation=None, translation=(0.0, 1.0, 60.0)) -> FitResult:
    g = torch.Generator().manual_seed(0)
    ident = torch.randn(1, 40, generator=g) * 0.5
    angles = (torch.tensor([math.radians(a)]) for a in (yaw, 5.0, 0.0))
    R = camera_rotation(euler_to_pose_matrix(*angles))
    if rotation is not None:
        R = axis_angle_to_matrix(torch.tensor([rotation])) @ R
    t = torch.tensor([translation])
    f = 0.5 * SIZE / math.tan(math.radians(25) / 2)
    K = torch.tensor([[f, f, (SIZE - 1) / 2, (SIZE - 1) / 2]])
    lm = project(model.landmarks(to_camera(model(ident, expression), R, t)), K)
    return FitResult(R, t, K, ident, expression, lm, lm, torch.zeros(1), (SIZE, SIZE))


def _photo(model, fit: FitResult) -> np.ndarray:
    """A face with a blotchy smooth albedo (in the appearance model's span) x SH shading, on grey."""
    scene = _Scene(model, np.zeros((SIZE, SIZE, 3), np.uint8), fit, PhotometricConfig())
    grid = np.random.default_rng(0).uniform(0.25, 0.85, (scene.S.shape[1], 3))
    albedo = torch.zeros(model.n_vertices, 3)
    albedo[scene.ids] = torch.from_numpy(scene.S @ grid).float()
    vc = fit.vertices_cam(model)
    shade = sh_shading(vertex_normals(vc, model.faces)[0], torch.tensor(LIGHT))
    out = render(vc, model.faces, fit.intrinsics, fit.image_size, colors=(albedo * shade[:, None])[None])
    grey = torch.full_like(out.image[0], 0.4)
    img = torch.where(out.mask[0, ..., None] > 0, out.image[0].clamp(0, 1), grey)
    return (img.numpy() * 255 + 0.5).astype(np.uint8)


@pytest.fixture(scope="module")
def synthetic(ict_model):
    torch.set_num_threads(1)
    expr = torch.zeros(1, ict_model.n_expression)
    expr[0, ict_model.expression_index("jawOpen")] = 0.35
    expr[0, ict_model.expression_index("mouthSmile_L")] = 0.5
    expr[0, ict_model.expression_index("mouthSmile_R")] = 0.5
    truth = _fit(ict_model, expr)
    start_expr = expr.clone()
    start_expr[0, ict_model.expression_index("jawOpen")] = 0.1
    start_expr[0, ict_model.expression_index("mouthSmile_L")] = 0.2
    start_expr[0, ict_model.expression_index("mouthSmile_R")] = 0.2
    start = _fit(ict_model, start_expr, rotation=(0.0, 0.04, 0.0), translation=(0.3, 0.8, 60.0))
    start = replace(start, landmarks_target=truth.landmarks_target)
    return truth, start, _photo(ict_model, truth)


def _rot_deg(a: FitResult, b: FitResult) -> float:
    cos = ((a.rotation[0].T @ b.rotation[0]).trace() - 1) / 2
    return math.degrees(math.acos(float(cos.clamp(-1, 1))))


def test_synthetic_photometric_term_alone_corrects_the_pose(ict_model, synthetic):
    truth, start, photo = synthetic
    # photometric only (no landmark term, no priors): whatever it recovers comes from the render
    cfg = PhotometricConfig(landmark=0.0, steps=30, refine=("pose",))
    res = refine_photometric(ict_model, photo, start, cfg, FitConfig(), silhouette=False)
    assert res.accepted and res.photometric[1] < 0.9 * res.photometric[0]
    assert _rot_deg(res.fit, truth) < 0.95 * _rot_deg(start, truth)
    assert torch.equal(res.fit.expression, start.expression.to(res.fit.expression))  # not refined
    assert res.fit.rotation.shape == (1, 3, 3) and res.fit.landmarks_fitted.shape == (1, 68, 2)


def test_synthetic_refinement_reduces_parameter_and_photometric_error(ict_model, synthetic):
    truth, start, photo = synthetic
    res = refine_photometric(ict_model, photo, start, PhotometricConfig(), FitConfig(), silhouette=False)
    assert res.accepted and res.photometric[1] < 0.6 * res.photometric[0]
    assert res.landmark[1] < 0.5 * res.landmark[0]
    assert _rot_deg(res.fit, truth) < 0.95 * _rot_deg(start, truth)
    jaw = ict_model.expression_index("jawOpen")
    assert abs(res.fit.expression[0, jaw] - 0.35) < 0.8 * abs(start.expression[0, jaw] - 0.35)


def test_gradients_reach_every_refined_parameter(ict_model, synthetic):
    _, start, photo = synthetic
    scene = _Scene(ict_model, photo, start, PhotometricConfig())
    rot = torch.zeros(1, 3, requires_grad=True)
    ident = start.identity.clone().requires_grad_(True)
    expr = start.expression.clone().requires_grad_(True)
    R = axis_angle_to_matrix(rot) @ start.rotation
    vc = to_camera(scene.vertices(ident, expr), R, start.translation)
    e0 = scene.error(vc, solve=8)
    e0.backward()
    for name, p in (("rotation", rot), ("identity", ident), ("expression", expr)):
        assert torch.isfinite(p.grad).all() and p.grad.abs().max() > 0, name
    with torch.no_grad():  # a small step down the gradient lowers the error (appearance held)
        step = [p - 0.01 * p.grad / p.grad.norm() for p in (rot, ident, expr)]
        R = axis_angle_to_matrix(step[0]) @ start.rotation
        assert scene.error(to_camera(scene.vertices(step[1], step[2]), R, start.translation)) < e0
    with pytest.raises(ValueError, match="refine"):
        PhotometricConfig(refine=("shape",))


def test_falls_back_when_the_loss_does_not_decrease(ict_model, synthetic):
    truth, _, photo = synthetic
    wild = PhotometricConfig(steps=3, lr_rotation=0.5, lr_translation=20.0, lr_decay=1.0)
    res = refine_photometric(ict_model, photo, truth, wild, FitConfig(), silhouette=False)
    assert not res.accepted and res.fit is truth
    assert res.loss[0] == res.loss[1]


@pytest.fixture(scope="module")
def astronaut(ict_model):
    from face3d.demo import example_image
    from face3d.fit import fit_image

    torch.set_num_threads(1)
    image = example_image()
    return image, fit_image(image, ict_model)[0]


def test_astronaut_refinement_keeps_landmarks_and_lowers_photometric_error(ict_model, astronaut):
    from face3d.fit.photometric import refine_face

    image, face = astronaut
    # in the landmark convention the fit used (the default stage blends dlib's and the network's
    # points near frontal: the network's convention, no silhouette re-selection), as refine_face does
    res = refine_photometric(
        ict_model,
        image,
        face.fit,
        silhouette=face.landmark_source == "dlib",
        landmark_offset=face.landmark_offset,
    )
    assert res.accepted
    assert res.photometric[1] < res.photometric[0]
    assert float(res.fit.error_px[0]) <= 1.1 * float(face.fit.error_px[0])
    assert res.loss[1] < res.loss[0]
    refined = refine_face(ict_model, image, face, PhotometricConfig(steps=2))
    assert "photometric" in refined.timings_ms and refined.landmark_source == face.landmark_source


def test_cli_photometric_flag(tmp_path, ict_model, astronaut):
    from face3d.cli import main
    from face3d.io import write_image

    image, face = astronaut
    write_image(tmp_path / "a.png", image)
    out = tmp_path / "out"
    assert main(["fit", str(tmp_path / "a.png"), "--out", str(out), "--photometric", "--no-mesh",
                 "--no-overlay"]) == 0  # fmt: skip
    rec = json.loads((out / "a_0.json").read_text())
    assert rec["timings_ms"]["photometric"] > 0
    plain = np.asarray(face.fit.landmarks_fitted[0])
    assert np.abs(np.asarray(rec["landmarks_fitted"]) - plain).mean() < 2.0  # refined, not replaced


def test_landmark_term_uses_the_targets_landmark_convention(ict_model, synthetic):
    """Targets in the regressor's convention (landmark vertices + an offset): the refinement's
    landmark term is zero at the true fit when given that offset, not without it."""
    from face3d.fit.photometric import _landmark_problem

    truth = synthetic[0]
    offset = torch.zeros(68, 3)
    offset[:17] = torch.tensor([0.0, -1.0, -1.5])
    cam = truth.vertices_cam(ict_model)[:, ict_model.landmark_ids] + offset @ truth.rotation.transpose(1, 2)
    targets = project(cam, truth.intrinsics)
    fit = replace(truth, landmarks_target=targets)
    cfg = FitConfig(silhouette=False)
    lm_err = []
    for off in (offset, None):
        problem, st0, _ = _landmark_problem(ict_model, fit, cfg, False, off)
        r, _ = problem.residuals(st0, torch.ones(1, 68, dtype=torch.float64), 1.0, jacobian=False)
        lm_err.append(float(r[:, :136].abs().max()))
    assert lm_err[0] < 1e-3 < 0.5 < lm_err[1], lm_err


def test_padding_around_the_photo_is_not_fitted(ict_model, synthetic):
    """A crop padded with black through the face (as AFLW2000-3D's are): the photometric term
    drops the band's pixels and keeps the rest as before."""
    truth, _, photo = synthetic
    band = int(truth.landmarks_target[0, 17:27, 1].min()) + 3  # through the brows
    padded = photo.copy()
    padded[:band] = 0
    clean = _Scene(ict_model, photo, truth, PhotometricConfig())
    scene = _Scene(ict_model, padded, truth, PhotometricConfig())
    y0, sy = scene.box[1], scene.scale[1]
    rows = torch.arange(scene.size[0], dtype=torch.float64)
    in_band = y0 + (rows + 1) / sy <= band  # crop rows wholly in the band
    in_photo = y0 + rows / sy >= band
    assert clean.keep[in_band].sum() > 50  # the face was seen there
    assert scene.keep[in_band].sum() == 0
    assert torch.equal(scene.keep[in_photo], clean.keep[in_photo])
