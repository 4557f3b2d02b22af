"""Shared fixtures for the rendering tests (``ict_model`` comes from tests/conftest.py): the ICT
model posed in front of a PyTorch3D camera,
and a session cache of PyTorch3D reference rasterisations (seconds each on a CPU)."""

from __future__ import annotations

import math

import pytest
import torch


@pytest.fixture(scope="session")
def ict_scene(ict_model):
    """``make(yaws_deg, image_size, distances=None, focal=1000.0) -> (Meshes, PerspectiveCameras)``.

    One mesh per yaw (degrees, (B,)) of the neutral ICT template at ``distances`` cm (default
    60) in front of the camera; ``image_size`` int or (H, W); focal ``focal * H / 256`` pixels,
    principal point at the image centre (the face fills the image at 60 cm).
    """
    from pytorch3d.structures import Meshes

    from face3d.camera import (
        camera_rotation,
        euler_to_pose_matrix,
        pytorch3d_cameras,
        to_camera,
        to_pytorch3d_view,
    )

    def make(yaws_deg, image_size, distances=None, focal=1000.0):
        H, W = (image_size, image_size) if isinstance(image_size, int) else image_size
        B = len(yaws_deg)
        yaw = torch.tensor([math.radians(y) for y in yaws_deg])
        zero = torch.zeros(B)
        R = camera_rotation(euler_to_pose_matrix(yaw, zero, zero))
        t = torch.zeros(B, 3)
        t[:, 2] = torch.tensor(distances if distances is not None else [60.0] * B)
        verts = to_pytorch3d_view(to_camera(ict_model.template[None].expand(B, -1, -1), R, t))
        f = focal * H / 256
        K = torch.tensor([[f, f, (W - 1) / 2, (H - 1) / 2]]).repeat(B, 1)
        faces = ict_model.faces[None].expand(B, -1, -1)
        return Meshes(verts=list(verts), faces=list(faces)), pytorch3d_cameras(K, (H, W))

    return make


@pytest.fixture(scope="session")
def p3d_reference():
    """``get(key, meshes, cameras, settings) -> Fragments`` from PyTorch3D's ``MeshRasterizer``
    (no grad), computed once per ``key`` for the whole session."""
    from pytorch3d.renderer import MeshRasterizer

    cache = {}

    def get(key, meshes, cameras, settings):
        if key not in cache:
            with torch.no_grad():
                cache[key] = MeshRasterizer(cameras, settings)(meshes)
        return cache[key]

    return get
