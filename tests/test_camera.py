"""The one projection and the pose conventions."""

from __future__ import annotations

import math

import torch

from face3d.camera import (
    axis_angle_to_matrix,
    camera_rotation,
    euler_degrees,
    euler_to_pose_matrix,
    intrinsics_from_fov,
    matrix_to_axis_angle,
    project,
    to_camera,
)


def test_project_known_values():
    pts = torch.tensor([[[0.0, 0.0, 10.0], [1.0, -2.0, 4.0]]])
    K = torch.tensor([[100.0, 200.0, 50.0, 60.0]])
    uv = project(pts, K)
    torch.testing.assert_close(uv, torch.tensor([[[50.0, 60.0], [75.0, -40.0]]]))


def test_euler_round_trip_and_convention():
    yaw = torch.deg2rad(torch.tensor([0.0, 35.0, -80.0, 10.0]))
    pitch = torch.deg2rad(torch.tensor([0.0, -20.0, 15.0, 5.0]))
    roll = torch.deg2rad(torch.tensor([0.0, 10.0, -25.0, 60.0]))
    R = camera_rotation(euler_to_pose_matrix(yaw, pitch, roll))
    back = euler_degrees(R)
    torch.testing.assert_close(back, torch.rad2deg(torch.stack([yaw, pitch, roll], -1)), atol=1e-4, rtol=0)
    # frontal pose: the nose (+z in model space) points at the camera (-z in camera space)
    nose = to_camera(torch.tensor([[[0.0, 0.0, 10.0]]]), R[:1], torch.tensor([[0.0, 0.0, 50.0]]))
    assert float(nose[0, 0, 2]) == 40.0
    # positive yaw turns the nose toward the image's right (+x)
    nose = to_camera(torch.tensor([[[0.0, 0.0, 10.0]]]), R[1:2], torch.zeros(1, 3))
    assert float(nose[0, 0, 0]) > 0


def test_axis_angle_round_trip_and_small_angles():
    aa = torch.tensor([[0.0, 0.0, 0.0], [1e-6, 0.0, 0.0], [0.3, -1.2, 0.5], [0.0, 3.0, 0.0]])
    R = axis_angle_to_matrix(aa)
    torch.testing.assert_close(R @ R.transpose(1, 2), torch.eye(3).expand(4, 3, 3), atol=1e-6, rtol=0)
    torch.testing.assert_close(matrix_to_axis_angle(R), aa, atol=1e-5, rtol=0)


def test_intrinsics_from_fov():
    K = intrinsics_from_fov(90.0, 100, 200)
    torch.testing.assert_close(K, torch.tensor([[100.0, 100.0, 99.5, 49.5]]))
    assert math.isclose(float(K[0, 0]), 100.0)
