"""face3d.eval.aflw: the deterministic train / held-out split of the AFLW2000-3D dev set and the
yaw convention."""

from __future__ import annotations

import numpy as np
import pytest

from face3d.eval.aflw import face3d_yaw, select_split, split_aflw
from face3d.eval.metrics import yaw_bin
from tests.eval.test_aflw_crops import _samples


# ----------------------------------------------------------------------------------- split
def test_split_is_deterministic_disjoint_and_balanced_per_bin():
    rng = np.random.default_rng(0)
    names = [f"image{i:05d}.jpg" for i in rng.choice(40000, 301, replace=False)]
    yaws = rng.uniform(-99, 99, len(names))
    a = split_aflw(names, yaws)
    assert np.array_equal(a, split_aflw(names, yaws))
    # independent of the folder and of the order of the list
    perm = rng.permutation(len(names))
    b = split_aflw([f"/elsewhere/{names[i]}" for i in perm], yaws[perm])
    assert np.array_equal(a[perm], b)
    for k in range(3):
        in_bin = np.array([yaw_bin(y) == k for y in yaws])
        assert abs(int(a[in_bin].sum()) - int((~a[in_bin]).sum())) <= 1
    samples = _samples(50, rng)
    train, held = select_split(samples, "train"), select_split(samples, "heldout")
    names_t, names_h = {s.image_path.name for s in train}, {s.image_path.name for s in held}
    assert not names_t & names_h and len(names_t | names_h) == 50
    assert select_split(samples, "all") == samples
    with pytest.raises(ValueError):
        select_split(samples, "test")


def test_face3d_yaw_flips_sign_and_wraps():
    assert face3d_yaw(30.0) == -30.0 and face3d_yaw(-80.0) == 80.0
    assert face3d_yaw(-351.0) == pytest.approx(-9.0) and face3d_yaw(188.0) == pytest.approx(172.0)


def test_loader_reads_3d_landmarks_in_camera_axes(tmp_path):
    from scipy.io import savemat

    from face3d.eval.aflw import load_aflw

    pts = np.stack([np.arange(68) + 10.0, np.arange(68) + 20.0, np.linspace(-50, 80, 68)])  # 3 x 68
    pose = np.array([[0.1, -0.5, 0.0, 0, 0, 0, 1]])  # pitch, yaw, roll (radians), ...
    savemat(tmp_path / "image00001.mat", {"pt3d_68": pts, "Pose_Para": pose})
    (tmp_path / "image00001.jpg").write_bytes(b"")
    (s,) = load_aflw(tmp_path)
    np.testing.assert_allclose(s.landmarks, pts[:2].T - 1.0)  # 1-based MATLAB pixels -> 0-based
    np.testing.assert_allclose(s.landmarks_3d[:, :2], s.landmarks)
    np.testing.assert_allclose(s.landmarks_3d[:, 2], -pts[2])  # z toward the camera -> away from it
    assert s.yaw == pytest.approx(np.rad2deg(-0.5))


def test_lips_apart_measures_the_inner_gap_against_nose_to_chin():
    from face3d.eval.aflw import lips_apart

    lm = np.zeros((68, 2))
    lm[27], lm[8] = (0.0, 0.0), (0.0, 100.0)  # nose top to chin: 100 px
    lm[62], lm[66] = (0.0, 70.0), (0.0, 75.0)
    assert not lips_apart(lm)  # 5 % of it
    lm[66] = (0.0, 77.0)
    assert lips_apart(lm) and not lips_apart(lm, min_gap=0.1)  # 7 %


def test_drawn_samples_are_the_named_images_or_a_stratified_draw():
    from face3d.eval.aflw import drawn_samples, stratified

    samples = _samples(300, np.random.default_rng(3))
    named = drawn_samples(samples, "heldout", 5, "image00007.jpg,image00042.jpg")
    assert [s.image_path.name for s in named] == ["image00007.jpg", "image00042.jpg"]
    drawn = drawn_samples(samples, "heldout", 5)
    assert drawn == stratified(select_split(samples, "heldout"), 5) and 0 < len(drawn) <= 15
