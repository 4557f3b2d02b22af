"""The one projection: model space -> camera space -> image pixels (OpenCV convention).

Conventions, used by fitting, landmarks, rendering and texture sampling alike:

* Model space (ICT): cm, +y up, the face looks toward +z.
* Camera space (OpenCV): +x right, +y down, +z forward (away from the camera), cm.
* Image pixels: x right, y down, the centre of the top-left pixel is (0, 0).
* Intrinsics ``(fx, fy, cx, cy)`` in pixels: ``u = fx * x / z + cx``, ``v = fy * y / z + cy``.
* Head pose: ``R = FLIP @ Ry(yaw) @ Rx(pitch) @ Rz(roll)`` with ``FLIP = diag(1, -1, -1)``, so
  yaw = pitch = roll = 0 is a frontal face; positive yaw turns the nose toward the image's
  right, positive pitch tilts it down in the image (chin toward the chest), positive roll
  turns the face counter-clockwise in the image.
"""

from __future__ import annotations

import math

import torch

FLIP = (1.0, -1.0, -1.0)


def _check_last(t: torch.Tensor, n: int, name: str) -> None:
    if t.shape[-1] != n:
        raise ValueError(f"{name}: expected last dimension {n}, got shape {tuple(t.shape)}")


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula, safe and differentiable at zero.

    Args:
        axis_angle: (..., 3) rotation vectors, radians.
    Returns:
        (..., 3, 3) rotation matrices.
    """
    _check_last(axis_angle, 3, "axis_angle")
    theta2 = (axis_angle * axis_angle).sum(-1, keepdim=True)
    small = theta2 < 1e-8
    theta2_safe = torch.where(small, torch.ones_like(theta2), theta2)
    theta = theta2_safe.sqrt()
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(theta)) / theta2_safe)
    x, y, z = axis_angle.unbind(-1)
    zero = torch.zeros_like(x)
    K = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(axis_angle.shape[:-1] + (3, 3))
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return eye + a[..., None] * K + b[..., None] * (K @ K)


def matrix_to_axis_angle(R: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`axis_angle_to_matrix` (via quaternions, stable near 0 and pi)."""
    from pytorch3d.transforms import matrix_to_axis_angle as _m2a

    return _m2a(R)


def euler_to_pose_matrix(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """Head rotation in model space, ``Ry(yaw) @ Rx(pitch) @ Rz(roll)``, angles in radians.

    Args:
        yaw, pitch, roll: (B,) tensors.
    Returns:
        (B, 3, 3).
    """
    cy, sy = torch.cos(yaw), torch.sin(yaw)
    cp, sp = torch.cos(pitch), torch.sin(pitch)
    cr, sr = torch.cos(roll), torch.sin(roll)
    o, z = torch.ones_like(yaw), torch.zeros_like(yaw)
    Ry = torch.stack([cy, z, sy, z, o, z, -sy, z, cy], -1).reshape(-1, 3, 3)
    Rx = torch.stack([o, z, z, z, cp, -sp, z, sp, cp], -1).reshape(-1, 3, 3)
    Rz = torch.stack([cr, -sr, z, sr, cr, z, z, z, o], -1).reshape(-1, 3, 3)
    return Ry @ Rx @ Rz


def pose_matrix_to_euler(R_pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inverse of :func:`euler_to_pose_matrix`: (B, 3, 3) -> yaw, pitch, roll (B,) radians."""
    pitch = torch.asin((-R_pose[:, 1, 2]).clamp(-1.0, 1.0))
    yaw = torch.atan2(R_pose[:, 0, 2], R_pose[:, 2, 2])
    roll = torch.atan2(R_pose[:, 1, 0], R_pose[:, 1, 1])
    return yaw, pitch, roll


def flip_matrix(dtype=torch.float32, device=None) -> torch.Tensor:
    """diag(1, -1, -1): model axes (y up, z toward viewer) -> camera axes (y down, z forward)."""
    return torch.diag(torch.tensor(FLIP, dtype=dtype, device=device))


def camera_rotation(R_pose: torch.Tensor) -> torch.Tensor:
    """Model-to-camera rotation for a head pose: ``FLIP @ R_pose``; (B, 3, 3)."""
    return flip_matrix(R_pose.dtype, R_pose.device) @ R_pose


def camera_to_pose(R_cam: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`camera_rotation`."""
    return flip_matrix(R_cam.dtype, R_cam.device) @ R_cam


def euler_degrees(R_cam: torch.Tensor) -> torch.Tensor:
    """Yaw, pitch, roll in degrees of model-to-camera rotations (B, 3, 3) -> (B, 3)."""
    yaw, pitch, roll = pose_matrix_to_euler(camera_to_pose(R_cam))
    return torch.rad2deg(torch.stack([yaw, pitch, roll], -1))


def to_camera(vertices: torch.Tensor, R_cam: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Rigid transform: (B, V, 3) model space -> (B, V, 3) camera space, ``R @ x + t``."""
    _check_last(vertices, 3, "vertices")
    return vertices @ R_cam.transpose(-1, -2) + t[:, None, :]


def project(points: torch.Tensor, intrinsics: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Pinhole projection of camera-space points to image pixels.

    Args:
        points: (B, N, 3) camera space (OpenCV axes), z > 0 in front of the camera.
        intrinsics: (B, 4) ``fx, fy, cx, cy`` in pixels (or (4,), broadcast).
    Returns:
        (B, N, 2) pixel coordinates, top-left pixel centre at (0, 0).
    """
    _check_last(points, 3, "points")
    _check_last(intrinsics, 4, "intrinsics")
    if intrinsics.dim() == 1:
        intrinsics = intrinsics[None].expand(points.shape[0], 4)
    z = points[..., 2:3]
    z = torch.where(z.abs() < eps, torch.full_like(z, eps), z)
    xy = points[..., :2] / z
    return xy * intrinsics[:, None, :2] + intrinsics[:, None, 2:]


def intrinsics_from_fov(
    fov_deg: float, height: int, width: int, batch: int = 1, dtype=torch.float32, device=None
) -> torch.Tensor:
    """(B, 4) intrinsics for a horizontal+vertical field of view over ``max(H, W)`` pixels,
    principal point at the image centre."""
    f = 0.5 * max(height, width) / math.tan(math.radians(fov_deg) / 2)
    row = torch.tensor([f, f, (width - 1) / 2, (height - 1) / 2], dtype=dtype, device=device)
    return row[None].repeat(batch, 1)


def to_pytorch3d_view(points: torch.Tensor) -> torch.Tensor:
    """OpenCV camera space -> PyTorch3D view space (+X left, +Y up, +Z forward)."""
    return points * points.new_tensor((-1.0, -1.0, 1.0))


def pytorch3d_cameras(intrinsics: torch.Tensor, image_size: tuple[int, int]):
    """PyTorch3D ``PerspectiveCameras`` (identity extrinsics, NDC focal/principal point) whose
    rasterisation of :func:`to_pytorch3d_view` points matches :func:`project` exactly.

    PyTorch3D puts pixel ``i``'s centre at NDC ``-(2 i + 1 - W) / S`` with ``S = min(H, W)``;
    solving ``-(2 u + 1 - W) / S`` for ``u = fx x / z + cx`` gives the values below.
    """
    from pytorch3d.renderer import PerspectiveCameras

    H, W = image_size
    S = float(min(H, W))
    fx, fy, cx, cy = intrinsics.unbind(-1)
    focal = torch.stack([2 * fx / S, 2 * fy / S], -1)
    principal = torch.stack([-(2 * cx + 1 - W) / S, -(2 * cy + 1 - H) / S], -1)
    return PerspectiveCameras(
        focal_length=focal, principal_point=principal, in_ndc=True, device=intrinsics.device
    )
