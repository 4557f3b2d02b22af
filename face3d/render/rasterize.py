"""The render selection point: every rasterisation in the project goes through here.

``backend="auto"`` picks PyTorch3D's ``MeshRasterizer`` on CUDA tensors and the compiled
:class:`face3d.render.fast.FastMeshRasterizer` on the CPU. Both return PyTorch3D
``Fragments``, so shaders and texture samplers do not care which one ran.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from face3d.camera import pytorch3d_cameras, to_pytorch3d_view
from face3d.render.fast import FastMeshRasterizer

BACKENDS = ("auto", "pytorch3d", "fast")


@dataclass(frozen=True)
class RenderConfig:
    """How to rasterise and shade.

    Attributes:
        backend: ``"auto"`` (fast CPU rasteriser on CPU, PyTorch3D on CUDA), ``"pytorch3d"`` or
            ``"fast"``.
        cull_backfaces: skip triangles facing away from the camera.
        background: RGB in [0, 1] where no triangle covers a pixel.
        light_direction: direction *toward* the light, camera space (x right, y down, z forward);
            the default lights the face from the camera, slightly above.
        ambient: ambient term of the Phong shading.
        diffuse: diffuse term of the Phong shading.
        specular: specular term of the Phong shading.
        shininess: Phong exponent.
        albedo: grey level of the shaded (untextured) mode.
    """

    backend: str = "auto"
    cull_backfaces: bool = False
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    light_direction: tuple[float, float, float] = (0.0, -0.4, -1.0)
    ambient: float = 0.35
    diffuse: float = 0.6
    specular: float = 0.15
    shininess: float = 16.0
    albedo: float = 0.8

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")


def resolve_backend(backend: str, device: torch.device) -> str:
    """``"auto"`` -> ``"pytorch3d"`` on CUDA, ``"fast"`` (:class:`FastMeshRasterizer`) elsewhere."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend != "auto":
        return backend
    if device.type == "cuda":
        return "pytorch3d"
    return "fast"


def make_rasterizer(cameras, raster_settings, backend: str = "auto", device: torch.device | None = None):
    """A PyTorch3D-compatible rasterizer for ``backend`` (see :func:`resolve_backend`)."""
    from pytorch3d.renderer import MeshRasterizer

    chosen = resolve_backend(backend, device or cameras.device)
    if chosen == "fast":
        return FastMeshRasterizer(cameras=cameras, raster_settings=raster_settings)
    return MeshRasterizer(cameras=cameras, raster_settings=raster_settings)


def build_meshes(vertices_cam: torch.Tensor, faces: torch.Tensor, textures=None):
    """PyTorch3D ``Meshes`` from OpenCV camera-space vertices (B, V, 3) and faces (F, 3)."""
    from pytorch3d.structures import Meshes

    if vertices_cam.dim() != 3 or vertices_cam.shape[-1] != 3:
        raise ValueError(f"vertices_cam: expected (B, V, 3), got {tuple(vertices_cam.shape)}")
    B = vertices_cam.shape[0]
    verts = to_pytorch3d_view(vertices_cam).float()
    return Meshes(verts=list(verts), faces=[faces] * B, textures=textures)


def rasterize(
    vertices_cam: torch.Tensor,
    faces: torch.Tensor,
    intrinsics: torch.Tensor,
    image_size: tuple[int, int],
    config: RenderConfig = RenderConfig(),
    textures=None,
):
    """Rasterise camera-space meshes.

    Args:
        vertices_cam: (B, V, 3) camera space (OpenCV axes), cm.
        faces: (F, 3) int64.
        intrinsics: (B, 4) fx, fy, cx, cy in pixels.
        image_size: (H, W).
    Returns:
        (fragments, meshes, cameras): PyTorch3D ``Fragments`` ((B, H, W, 1) maps), the ``Meshes``
        in PyTorch3D view space and the matching cameras.
    """
    from pytorch3d.renderer import RasterizationSettings

    if intrinsics.shape != (vertices_cam.shape[0], 4):
        raise ValueError(f"intrinsics: expected ({vertices_cam.shape[0]}, 4), got {tuple(intrinsics.shape)}")
    H, W = int(image_size[0]), int(image_size[1])
    meshes = build_meshes(vertices_cam, faces, textures)
    cameras = pytorch3d_cameras(intrinsics.float(), (H, W))
    settings = RasterizationSettings(
        image_size=(H, W),
        blur_radius=0.0,
        faces_per_pixel=1,
        cull_backfaces=config.cull_backfaces,
        bin_size=0,
    )
    rasterizer = make_rasterizer(cameras, settings, config.backend, vertices_cam.device)
    return rasterizer(meshes), meshes, cameras
