"""The landmark fitter: synthetic round trips, silhouette handling, a real photo."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from face3d.camera import camera_rotation, euler_to_pose_matrix, project, to_camera
from face3d.fit import FitConfig, fit_landmarks
from face3d.render import render

pytestmark = pytest.mark.integration


def _synthetic(model, yaw, pitch, roll, seed=0, size=256):
    g = torch.Generator().manual_seed(seed)
    B = len(yaw)
    ident = torch.randn(B, 40, generator=g) * 0.5
    expr = torch.zeros(B, 53)
    expr[:, model.expression_index("jawOpen")] = 0.25
    expr[:, model.expression_index("mouthSmile_L")] = 0.4
    R = camera_rotation(euler_to_pose_matrix(*(torch.deg2rad(torch.tensor(a)) for a in (yaw, pitch, roll))))
    t = torch.tensor([[1.0, -1.5, 65.0]]).repeat(B, 1)
    f = 0.5 * size / math.tan(math.radians(30) / 2)
    K = torch.tensor([[f, f, (size - 1) / 2, (size - 1) / 2]]).repeat(B, 1)
    verts = to_camera(model(ident, expr), R, t)
    return verts, K, project(model.landmarks(verts), K)


def test_round_trip_recovers_pose_and_landmarks(ict_model):
    yaw, pitch, roll = [0.0, 25.0, -40.0], [5.0, -10.0, 8.0], [0.0, 6.0, -4.0]
    _, _, lm = _synthetic(ict_model, yaw, pitch, roll)
    noisy = lm + torch.randn(lm.shape, generator=torch.Generator().manual_seed(1)) * 0.5
    res = fit_landmarks(ict_model, noisy, (256, 256), FitConfig(silhouette=False))
    ypr = res.yaw_pitch_roll
    truth = torch.tensor([yaw, pitch, roll]).T
    assert float((ypr - truth).abs().max()) < 2.0, ypr
    err = (res.landmarks_fitted - lm).norm(dim=-1).mean(-1)
    assert float(err.max()) < 1.0, err
    assert float(res.expression.min()) >= 0 and float(res.expression.max()) <= 1


def test_landmark_offset_is_part_of_the_fitted_points(ict_model):
    """Targets in another landmark convention (landmark vertices + a model-space offset): the fit
    given that offset recovers the pose and reproduces them; without it the jaw is missed."""
    yaw, pitch, roll = [0.0, 45.0, -70.0], [5.0, -5.0, 0.0], [0.0, 3.0, -3.0]
    verts, K, _ = _synthetic(ict_model, yaw, pitch, roll)
    offset = torch.zeros(68, 3, dtype=verts.dtype)
    offset[:17] = torch.tensor([0.0, -1.0, -1.5])  # jaw points 1.5 cm deeper and 1 cm lower
    yaw_r, pitch_r, roll_r = (torch.deg2rad(torch.tensor(a)) for a in (yaw, pitch, roll))
    R = camera_rotation(euler_to_pose_matrix(yaw_r, pitch_r, roll_r))
    t = torch.tensor([[1.0, -1.5, 65.0]]).repeat(3, 1)
    g = torch.Generator().manual_seed(0)
    ident = torch.randn(3, 40, generator=g) * 0.5
    expr = torch.zeros(3, 53)
    expr[:, ict_model.expression_index("jawOpen")] = 0.25
    expr[:, ict_model.expression_index("mouthSmile_L")] = 0.4
    lm3d = ict_model.landmarks(ict_model(ident, expr)) + offset
    targets = project(to_camera(lm3d, R, t), K)
    cfg = FitConfig(silhouette=False)
    with_offset = fit_landmarks(ict_model, targets, (256, 256), cfg, landmark_offset=offset)
    without = fit_landmarks(ict_model, targets, (256, 256), cfg)
    err = (with_offset.landmarks_fitted - targets).norm(dim=-1).mean(-1)
    err_without = (without.landmarks_fitted - targets).norm(dim=-1)[:, :17].mean(-1)
    assert float(err.max()) < 1.0, err
    assert float((with_offset.yaw_pitch_roll - torch.tensor([yaw, pitch, roll]).T).abs().max()) < 3.0
    assert float(err_without[1:].min()) > 2 * float(err.max()), err_without
    with pytest.raises(ValueError, match="silhouette=False"):
        fit_landmarks(ict_model, targets, (256, 256), FitConfig(), landmark_offset=offset)
    with pytest.raises(ValueError, match="68, 3"):
        fit_landmarks(ict_model, targets, (256, 256), cfg, landmark_offset=offset[:10])


def _outline_targets(model, verts, K, lm, size=256):
    """What a 2D detector reports at large yaw: jaw points of the far side on the visible outline
    (moved horizontally to the edge of the rendered face)."""
    mask = render(verts, model.faces, K, (size, size)).mask[0].numpy() > 0
    out = lm.clone()
    for p in range(9, 17):  # positive yaw turns the subject's left jaw (9-16) away
        x, y = lm[0, p].tolist()
        row = mask[int(round(min(max(y, 0), size - 1)))]
        cols = np.nonzero(row)[0]
        if len(cols):
            out[0, p, 0] = float(cols.max())
    return out


def test_silhouette_reduces_error_at_70_degrees(ict_model):
    verts, K, lm = _synthetic(ict_model, [70.0], [0.0], [0.0], seed=3)
    targets = _outline_targets(ict_model, verts, K, lm)
    assert float((targets - lm).norm(dim=-1)[0, 9:17].max()) > 3.0  # the outline differs from the anatomy
    errs = {}
    for sil in (False, True):
        res = fit_landmarks(ict_model, targets, (256, 256), FitConfig(silhouette=sil))
        errs[sil] = float((res.landmarks_fitted - lm).norm(dim=-1).mean())
    assert errs[True] < 0.8 * errs[False], errs


def test_real_photo_gives_a_sane_fit(ict_model):
    from face3d.demo import example_image
    from face3d.fit import fit_image

    faces = fit_image(example_image(), ict_model)
    assert len(faces) == 1
    fit = faces[0].fit
    assert float(fit.error_px[0]) < 3.0
    assert abs(float(fit.yaw_pitch_roll[0, 0])) < 20
    x0, y0, x1, y1 = faces[0].bbox
    nose = fit.landmarks_fitted[0, 30]
    assert x0 < float(nose[0]) < x1 and y0 < float(nose[1]) < y1


def test_profile_photo_is_fitted_on_the_regressor_landmarks_in_its_convention(ict_model, aflw_dir):
    """A held-out AFLW2000-3D profile (about 72° of yaw): the default pipeline takes the network's
    landmarks, carries its landmark convention into the fit and lands near the ground truth."""
    from face3d.eval.aflw import load_aflw
    from face3d.eval.metrics import nme
    from face3d.fit import fit_image
    from face3d.fit.pipeline import default_regressor
    from face3d.io import read_image

    regressor = default_regressor()
    if regressor is None:
        pytest.skip("shipped regressor weights (assets/regressor) not available")
    sample = next(s for s in load_aflw(aflw_dir) if s.image_path.name == "image00022.jpg")
    faces = fit_image(read_image(sample.image_path), ict_model, box=sample.box)
    face = faces[0]
    assert face.landmark_source == "regressor"
    assert np.array_equal(face.landmark_offset, regressor.net.lm_offset.double().numpy())
    assert float(np.abs(face.landmark_offset).max()) > 0.5  # a real convention offset, cm
    assert nme(face.fit.landmarks_fitted[0].numpy(), sample.landmarks) < 8.0
    # the fitted points follow the targets (the offset is part of them)
    assert float(face.fit.error_px[0]) < 0.05 * float(np.sqrt(np.prod(np.ptp(sample.landmarks, 0))))


def test_recrop_recovers_from_shifted_detector_boxes(ict_model, aflw_dir):
    """Detector boxes off the face by 15 % of their size (4 directions): re-running the network
    on the box of its own landmarks (``LandmarkConfig.regressor_recrop``) brings the landmarks
    closer on average; a box the caller gives is never re-cropped."""
    from face3d.detect import Detection, dlib_box_from_landmark_box
    from face3d.eval.aflw import load_aflw
    from face3d.eval.metrics import nme
    from face3d.fit.pipeline import LandmarkConfig, default_regressor, detect_and_landmark
    from face3d.io import read_image

    regressor = default_regressor()
    if regressor is None:
        pytest.skip("shipped regressor weights (assets/regressor) not available")
    sample = next(s for s in load_aflw(aflw_dir) if s.image_path.name == "image00022.jpg")
    image = read_image(sample.image_path)
    x0, y0, x1, y1 = dlib_box_from_landmark_box(sample.box)
    w, h = x1 - x0, y1 - y0

    class Shifted:
        def __init__(self, fx, fy):
            self.box = (x0 + fx * w, y0 + fy * h, x1 + fx * w, y1 + fy * h)

        def detect(self, image, max_faces=None):
            return [Detection(self.box, 1.0, "hog")]

    errs = {0: [], 2: []}
    for fx, fy in ((0.15, 0.0), (-0.15, 0.0), (0.0, 0.15), (0.0, -0.15)):
        for n in errs:
            cfg = LandmarkConfig(regressor_min_yaw=0.0, regressor_recrop=n)
            marked = detect_and_landmark(image, Shifted(fx, fy), 1, None, regressor, cfg)
            errs[n].append(nme(marked.landmarks[0], sample.landmarks))
    assert np.mean(errs[2]) < 0.9 * np.mean(errs[0]) and max(errs[2]) < max(errs[0]), errs
    cfg = LandmarkConfig(regressor_recrop=2)
    given = detect_and_landmark(image, Shifted(0.1, 0.0), 1, sample.box, regressor, cfg)
    assert np.allclose(given.regressions[0].box, sample.box)  # not re-cropped


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_turned_photo_is_regressed_upright(aflw_dir, turns):
    """A near-frontal photo turned whole (``np.rot90``): the regressor's upright search turns its
    crops back, the pipeline takes the regressor's landmarks (dlib's predictor cannot read a
    turned face), and they are about as good as on the upright photo."""
    from face3d.detect.boxes import landmark_box
    from face3d.eval.aflw import load_aflw
    from face3d.eval.metrics import nme
    from face3d.fit.pipeline import default_regressor, detect_and_landmark
    from face3d.io import read_image
    from face3d.regress.upright import quarter_turn_affine

    regressor = default_regressor()
    if regressor is None:
        pytest.skip("shipped regressor weights (assets/regressor) not available")
    sample = next(s for s in load_aflw(aflw_dir) if s.image_path.name == "image00064.jpg")
    image = read_image(sample.image_path)
    up = detect_and_landmark(image, None, 1, sample.box, regressor).regressions[0]
    assert up.turns == 0
    H, W = image.shape[:2]
    A = quarter_turn_affine(turns, W, H)
    gt = sample.landmarks @ A[:, :2].T + A[:, 2]
    marked = detect_and_landmark(
        np.ascontiguousarray(np.rot90(image, turns)), None, 1, landmark_box(gt), regressor
    )
    assert marked.sources == ("regressor",)
    assert marked.regressions[0].turns == (4 - turns) % 4
    assert nme(marked.landmarks[0], gt) < nme(up.landmarks, sample.landmarks) + 1.0


def test_regressor_points_are_fitted_with_their_jaw_weight(ict_model):
    """fit_detections fits the network's own points with FitConfig.regressor_jaw_weight (a blend
    with dlib's keeps jaw_weight): with the jaw points pushed off, a heavier jaw follows them closer."""
    from types import SimpleNamespace

    from face3d.fit.pipeline import Landmarked, fit_detections

    _, _, lm = _synthetic(ict_model, [60.0], [0.0], [0.0])
    targets = lm[0].numpy().copy()
    targets[:17] += torch.randn(17, 2, generator=torch.Generator().manual_seed(3)).numpy() * 4.0
    reg = SimpleNamespace(landmark_offset=torch.zeros(68, 3, dtype=torch.float64).numpy())
    image = torch.zeros(256, 256, 3, dtype=torch.uint8).numpy()

    def jaw_error(source, cfg):
        marked = Landmarked(image, (SimpleNamespace(box=(0, 0, 1, 1), source="given", score=1.0),),
                            (targets,), 0.0, 0.0, (source,), (reg,))  # fmt: skip
        fitted = fit_detections(ict_model, marked, cfg)[0].fit.landmarks_fitted[0].numpy()
        return float(((fitted[:17] - targets[:17]) ** 2).sum(-1).mean())

    heavy, light = FitConfig(regressor_jaw_weight=4.0), FitConfig(regressor_jaw_weight=0.1)
    assert jaw_error("regressor", heavy) < 0.8 * jaw_error("regressor", light)
    assert jaw_error("blend", heavy) == pytest.approx(jaw_error("blend", light))
