"""Rendering: the rasterizer selection point, shaders, texture sampling."""

from face3d.render.fast import FastMeshRasterizer
from face3d.render.rasterize import RenderConfig, make_rasterizer, rasterize, resolve_backend
from face3d.render.shading import RenderOutput, render, vertex_normals
from face3d.render.texture import TextureSample, UVLayout, atlas_corner_uvs, extract_texture, uv_layout

__all__ = [
    "FastMeshRasterizer",
    "RenderConfig",
    "RenderOutput",
    "TextureSample",
    "UVLayout",
    "atlas_corner_uvs",
    "extract_texture",
    "make_rasterizer",
    "rasterize",
    "render",
    "resolve_backend",
    "uv_layout",
    "vertex_normals",
]
